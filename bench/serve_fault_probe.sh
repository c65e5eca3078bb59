#!/usr/bin/env bash
# Probes of the decision server at its limits (docs/operations.md): trains and exports a small
# quickstart bundle, then
#   1. memory: 1,000 connections each uploading a ~1 MiB body at once; resident memory at
#      ready, while they are held, and 3 s after they close;
#   2. descriptors: the server started with `ulimit -n 64` and 200 connections opened at once;
#      its CPU time and log lines over 5 s, then whether it answers again.
# Needs python3 and curl. Usage: bench/serve_fault_probe.sh [build dir, default build]
set -u
BIN=$(cd "${1:-build}" && pwd)/bin/loantwin
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d)
trap 'kill $PID 2>/dev/null; rm -rf "$W"' EXIT
cd "$W"
"$BIN" train "$ROOT/configs/quickstart_unconstrained.yaml" --total-steps 2000 --out run >/dev/null 2>&1 || exit 1
"$BIN" export run --out run/export >/dev/null 2>&1 || exit 1
start() {  # fd limit, port
  (ulimit -n "$1"; exec "$BIN" serve --bundle run/export --port "$2" --threads 2) >/dev/null 2>serve.log &
  PID=$!
  for _ in $(seq 1 200); do curl -s "localhost:$2/readyz" >/dev/null && return; sleep 0.1; done
}
rss() { awk '/VmRSS/{print int($2/1024)}' "/proc/$PID/status"; }

start 4096 18098
echo "memory: ready at $(rss) MB"
python3 - "$PID" 18098 <<'PY'
import socket, sys, time
pid, port = sys.argv[1], int(sys.argv[2])
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1]) // 1024
head = b"POST /v1/roles/credit/decide HTTP/1.1\r\nHost: x\r\nContent-Length: 1048000\r\n\r\n"
body = b" " * 1040000
conns = []
for _ in range(1000):
    c = socket.create_connection(("127.0.0.1", port)); c.setblocking(False)
    try: c.send(head); c.send(body)
    except OSError: pass
    conns.append(c)
time.sleep(3)
peak, busy = rss(), 0
for c in conns:
    try: busy += c.recv(64).startswith(b"HTTP/1.1 503")
    except OSError: pass
print(f"memory: 1,000 connections holding ~1 MiB bodies: {peak} MB ({busy} answered 503)")
for c in conns: c.close()
time.sleep(3)
print(f"memory: 3 s after they closed: {rss()} MB")
PY
kill $PID; wait $PID 2>/dev/null

start 64 18099
python3 -c '
import socket, time
s = []
for _ in range(200):
    try: s.append(socket.create_connection(("127.0.0.1", 18099)))
    except OSError: pass
time.sleep(7)' &
FLOOD=$!
sleep 1
t0=$(awk '{print $14+$15}' "/proc/$PID/stat"); l0=$(wc -l <serve.log)
sleep 5
t1=$(awk '{print $14+$15}' "/proc/$PID/stat"); l1=$(wc -l <serve.log)
echo "descriptors: CPU over 5 s out of descriptors: $(( (t1 - t0) * 1000 / $(getconf CLK_TCK) )) ms; log lines: $((l1 - l0))"
wait $FLOOD
echo "descriptors: /readyz after the flood: $(curl -s -o /dev/null -w '%{http_code}' localhost:18099/readyz)"
