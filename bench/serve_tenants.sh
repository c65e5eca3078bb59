#!/usr/bin/env bash
# Tenant isolation under load (docs/serving.md, "Multi-tenant serving"): `loantwin serve
# --tenants` with two tenants on the same bundle. Tenant "quiet" sends single credit decisions
# on QUIET_CONNECTIONS (2) connections; its p50/p99 are measured alone, then while tenant "noisy"
# saturates its queue (--max-queue of its own, NOISY_QUEUE observations) with batches of
# BATCH (64) observations on NOISY_CONNECTIONS (32) connections. Target: quiet's p99 rises by
# at most 50%. NOISY_INFLIGHT (2) and NOISY_RATE (0: none) set the noisy tenant's max_inflight and
# max_requests_per_second, NOISY_NICE (0) the nice value of its policy thread, NOISY_CPU_QUOTA
# (0: none) its cpu_quota in cores, QUIET_DELAY_MS (0) the pause of each quiet connection between
# requests, ROUNDS (1) the rounds whose median change is printed.
# Usage: [PORT=18092] bench/serve_tenants.sh [build-dir] [bundle dir] [seconds]
# Without a bundle, trains and exports a short quickstart run first.
set -euo pipefail
BUILD=${1:-build}
BUNDLE=${2:-}
SECONDS_PER_CASE=${3:-10}
PORT=${PORT:-18092}
QUIET_CONNECTIONS=${QUIET_CONNECTIONS:-2}
# Milliseconds each quiet connection waits between requests (0: a closed loop, as fast as the
# server answers, which on 2 cores leaves no CPU to spare and so measures CPU sharing).
QUIET_DELAY_MS=${QUIET_DELAY_MS:-0}
NOISY_CONNECTIONS=${NOISY_CONNECTIONS:-32}
NOISY_QUEUE=${NOISY_QUEUE:-128}
NOISY_INFLIGHT=${NOISY_INFLIGHT:-2}
NOISY_RATE=${NOISY_RATE:-0}  # the noisy tenant's max_requests_per_second (0: no limit)
NOISY_NICE=${NOISY_NICE:-0}  # the nice value of the noisy tenant's policy threads (tenants file)
NOISY_CPU_QUOTA=${NOISY_CPU_QUOTA:-0}  # the noisy tenant's cpu_quota in cores (0: none)
NOISY_WRK_NICE=${NOISY_WRK_NICE:-0}  # the nice value of the noisy load generator
ROUNDS=${ROUNDS:-1}  # rounds of (quiet alone, quiet beside noisy); the median change is printed
BATCH=${BATCH:-64}
SERVE_OPTIONS=${SERVE_OPTIONS:-}
# CPU lists for taskset (empty: no pinning), e.g. SERVER_CPUS=0 WRK_CPUS=1 on 2 cores.
SERVER_CPUS=${SERVER_CPUS:-}
WRK_CPUS=${WRK_CPUS:-}
# Only in a subshell (a background job or $(...)): it execs, so $! is the program's PID.
pin() { local cpus=$1; shift; if [[ -n "$cpus" ]]; then exec taskset -c "$cpus" "$@"; else exec "$@"; fi; }
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
WORK=$(mktemp -d)
SERVER_PID=
NOISY_PID=
cleanup() {
  [[ -n "$NOISY_PID" ]] && kill "$NOISY_PID" 2>/dev/null
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null
  wait 2>/dev/null
  [[ -n "${KEEP:-}" ]] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # runs cleanup: no server left behind on the port
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "port $PORT is in use (a server left from another run?): set PORT" >&2
  exit 1
fi
if [[ -z "$BUNDLE" ]]; then
  "$BUILD/bin/loantwin" train configs/quickstart_unconstrained.yaml --out "$WORK/run" --total-steps 20000 >/dev/null 2>&1
  "$BUILD/bin/loantwin" export "$WORK/run" --out "$WORK/bundle" >/dev/null
  BUNDLE="$WORK/bundle"
fi
BUNDLE=$(cd "$BUNDLE" && pwd)
python3 bench/serve_bodies.py "$BUNDLE/manifest.json" "$WORK" "$BATCH"
echo "quiet-token-0123456789" >"$WORK/quiet.token"
echo "noisy-token-0123456789" >"$WORK/noisy.token"
cat >"$WORK/tenants.yaml" <<YAML
tenants:
  - name: quiet
    bundle: $BUNDLE
    token_file: quiet.token
  - name: noisy
    bundle: $BUNDLE
    token_file: noisy.token
    max_queue: $NOISY_QUEUE
    max_inflight: $NOISY_INFLIGHT
    max_requests_per_second: $NOISY_RATE
    nice: $NOISY_NICE
    cpu_quota: $NOISY_CPU_QUOTA
YAML
# shellcheck disable=SC2086
pin "$SERVER_CPUS" "$BUILD/bin/loantwin" serve --tenants "$WORK/tenants.yaml" --port "$PORT" --threads 2 $SERVE_OPTIONS \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }  # e.g. port in use
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && grep -q '"ready"' <&3) 2>/dev/null; then
    break
  fi
  sleep 0.1
done
URL="http://127.0.0.1:$PORT/v1/tenants"
quiet() {  # seconds -> RESULT line
  BODY="$WORK/single.json" TOKEN=quiet-token-0123456789 DELAY_MS=$QUIET_DELAY_MS pin "$WRK_CPUS" wrk -t1 -c"$QUIET_CONNECTIONS" -d"$1s" \
    --latency -s bench/serve_post.lua "$URL/quiet/roles/credit/decide" | grep RESULT
}
show() {  # name RESULT-line
  python3 - "$1" "$2" <<'PY'
import sys
name, line = sys.argv[1], sys.argv[2]
kv = dict(x.split("=") for x in line.split()[1:])
print(f"{name:<44} {float(kv['rps']):>8.0f} req/s  p50 {float(kv['p50_ms']):6.3f} ms  "
      f"p99 {float(kv['p99_ms']):6.3f} ms  non-2xx/errors {kv['errors']}")
PY
}
quiet 2 >/dev/null  # warm-up
echo "loantwin serve --tenants, 2 I/O threads, wrk -t1 per tenant, ${SECONDS_PER_CASE}s per case, $ROUNDS round(s)"
changes=()
for round in $(seq "$ROUNDS"); do
  alone=$(quiet "$SECONDS_PER_CASE")
  show "quiet alone (c$QUIET_CONNECTIONS, single decisions, pause ${QUIET_DELAY_MS} ms)" "$alone"
  BODY="$WORK/batch.json" TOKEN=noisy-token-0123456789 pin "$WRK_CPUS" nice -n "$NOISY_WRK_NICE" \
    wrk -t1 -c"$NOISY_CONNECTIONS" -d"$((SECONDS_PER_CASE + 4))s" --latency -s bench/serve_post.lua \
    "$URL/noisy/roles/credit/decide" >"$WORK/noisy.txt" &
  NOISY_PID=$!
  sleep 2
  loaded=$(quiet "$SECONDS_PER_CASE")
  wait "$NOISY_PID"
  NOISY_PID=
  show "quiet while noisy saturates its queue" "$loaded"
  show "noisy (c$NOISY_CONNECTIONS, batch $BATCH, inflight $NOISY_INFLIGHT, rate $NOISY_RATE/s, nice $NOISY_NICE, cpu $NOISY_CPU_QUOTA)" "$(grep RESULT "$WORK/noisy.txt")"
  change=$(python3 - "$alone" "$loaded" <<'PY'
import sys
p99 = [float(dict(x.split("=") for x in l.split()[1:])["p99_ms"]) for l in sys.argv[1:]]
print(f"{100 * (p99[1] / p99[0] - 1):+.0f}")
PY
)
  echo "round $round: quiet p99 $change% beside the noisy tenant (target <= +50%)"
  changes+=("$change")
done
python3 - "${changes[@]}" <<'PY'
import statistics, sys
c = [float(x) for x in sys.argv[1:]]
print(f"quiet p99 change over {len(c)} round(s): median {statistics.median(c):+.0f}%, "
      f"range {min(c):+.0f}% to {max(c):+.0f}% (target <= +50%)")
PY
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E 'loantwin_requests_total\{tenant' || true
