#!/usr/bin/env bash
# Load test of `loantwin serve` on loopback with wrk (Debian package wrk): the credit role,
# single and batched decisions, with and without the audit log. Prints requests/s, decisions/s,
# p50 and p99 latency per case (targets: >= 50,000 decisions/s, p99 <= 2 ms).
# Each with --max-delay-us 0 (the default) and 200, and without the audit log also with
# --threads 1 (leaves a core to wrk). Single decisions run on `connections` (32) connections,
# batches of BATCH (16) observations on BATCH_CONNECTIONS (4).
# Usage: [BATCH=16] [BATCH_CONNECTIONS=4] [PORT=18090] bench/serve_load.sh [build-dir] [bundle dir] [seconds] [connections]
# Without a bundle, trains and exports a short quickstart run first. Ends with
# serve_policy_bench (the policy call alone, by batch size) on the same bundle.
set -euo pipefail
BUILD=${1:-build}
BUNDLE=${2:-}
SECONDS_PER_CASE=${3:-10}
CONNECTIONS=${4:-32}
BATCH=${BATCH:-16}
BATCH_CONNECTIONS=${BATCH_CONNECTIONS:-4}
PORT=${PORT:-18090}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
WORK=$(mktemp -d)
SERVER_PID=
cleanup() { [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
if [[ -z "$BUNDLE" ]]; then
  "$BUILD/bin/loantwin" train configs/quickstart_unconstrained.yaml --out "$WORK/run" --total-steps 20000 >/dev/null 2>&1
  "$BUILD/bin/loantwin" export "$WORK/run" --out "$WORK/bundle" >/dev/null
  BUNDLE="$WORK/bundle"
fi
python3 bench/serve_bodies.py "$BUNDLE/manifest.json" "$WORK" "$BATCH"
start_server() {  # [serve options]; --threads 2 unless given
  local threads=(--threads 2)
  [[ " $* " == *" --threads "* ]] && threads=()
  "$BUILD/bin/loantwin" serve --bundle "$BUNDLE" --port "$PORT" "${threads[@]}" "$@" >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && grep -q '"ready"' <&3) 2>/dev/null; then
      # Warm-up (not reported): the first seconds of a fresh process run slower.
      BODY="$WORK/single.json" wrk -t1 -c"$CONNECTIONS" -d2s -s bench/serve_post.lua \
        "http://127.0.0.1:$PORT/v1/roles/credit/decide" >/dev/null
      return 0
    fi
    sleep 0.1
  done
  cat "$WORK/server.log" >&2
  exit 1
}
stop_server() { kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=; }
# Verifies and removes an audit log, then lets the disk settle: gigabytes of dirty pages being
# written back would otherwise stall the next case.
finish_audit() {
  "$BUILD/bin/loantwin" audit verify "$WORK/audit.log"
  rm -f "$WORK/audit.log"
  sync
}
run_case() {  # name body decisions-per-request connections
  local line
  line=$(BODY="$WORK/$2" wrk -t1 -c"$4" -d"${SECONDS_PER_CASE}s" --latency -s bench/serve_post.lua \
    "http://127.0.0.1:$PORT/v1/roles/credit/decide" | grep RESULT)
  python3 - "$1" "$3" "$line" <<'PY'
import sys
name, per, line = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kv = dict(x.split("=") for x in line.split()[1:])
print(f"{name:<38} {float(kv['rps']):>9.0f} req/s {float(kv['rps']) * per:>10.0f} decisions/s "
      f"p50 {float(kv['p50_ms']):6.2f} ms  p99 {float(kv['p99_ms']):6.2f} ms  errors {kv['errors']}")
PY
}
echo "loantwin serve, credit role, wrk -t1, ${SECONDS_PER_CASE}s per case after 2s of warm-up, --threads 2 unless named"
sync
# Cases without the audit log first: the audit cases write gigabytes, whose write-back would
# disturb whatever runs next.
echo "without the audit log:"
start_server
run_case "single, --max-delay-us 0, c$CONNECTIONS" single.json 1 "$CONNECTIONS"
run_case "batch of $BATCH, --max-delay-us 0, c$BATCH_CONNECTIONS" batch.json "$BATCH" "$BATCH_CONNECTIONS"
stop_server
start_server --max-delay-us 200
run_case "single, --max-delay-us 200, c$CONNECTIONS" single.json 1 "$CONNECTIONS"
run_case "batch of $BATCH, --max-delay-us 200, c$BATCH_CONNECTIONS" batch.json "$BATCH" "$BATCH_CONNECTIONS"
stop_server
start_server --threads 1
run_case "single, --threads 1, c$CONNECTIONS" single.json 1 "$CONNECTIONS"
run_case "batch of $BATCH, --threads 1, c$BATCH_CONNECTIONS" batch.json "$BATCH" "$BATCH_CONNECTIONS"
stop_server
echo "with the audit log (no fsync):"
start_server --audit-log "$WORK/audit.log"
run_case "single, --max-delay-us 0, c$CONNECTIONS" single.json 1 "$CONNECTIONS"
run_case "batch of $BATCH, --max-delay-us 0, c$BATCH_CONNECTIONS" batch.json "$BATCH" "$BATCH_CONNECTIONS"
stop_server
finish_audit
start_server --max-delay-us 200 --audit-log "$WORK/audit.log"
run_case "single, --max-delay-us 200, c$CONNECTIONS" single.json 1 "$CONNECTIONS"
run_case "batch of $BATCH, --max-delay-us 200, c$BATCH_CONNECTIONS" batch.json "$BATCH" "$BATCH_CONNECTIONS"
stop_server
finish_audit
if [[ -x "$BUILD/bin/serve_policy_bench" ]]; then
  echo "policy call cost by batch size (bench/serve_policy_bench.cc):"
  LOANTWIN_BUNDLE="$BUNDLE" "$BUILD/bin/serve_policy_bench" --benchmark_min_time=0.5
fi
