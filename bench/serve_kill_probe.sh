#!/usr/bin/env bash
# Durability probe of the audit log (docs/operations.md, "kill -9 or power loss"): the server
# answers batched decisions from 16 connections with --audit-log, is killed with SIGKILL at a
# random moment, restarted on the same log, and `loantwin audit verify` checks the chain, ROUNDS
# times. Reports per round the records kept, a torn tail removed at restart (if any) and the
# verification result. Needs wrk and python3.
# Usage: [ROUNDS=10] bench/serve_kill_probe.sh [build dir] [bundle dir]
set -u
BIN=$(cd "${1:-build}" && pwd)/bin/loantwin
BUNDLE=${2:-}
ROUNDS=${ROUNDS:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
W=$(mktemp -d)
PID=
trap '[[ -n "$PID" ]] && kill -9 $PID 2>/dev/null; rm -rf "$W"' EXIT
cd "$W"
if [[ -z "$BUNDLE" ]]; then
  "$BIN" train "$ROOT/configs/quickstart_unconstrained.yaml" --total-steps 2000 --out run >/dev/null 2>&1 || exit 1
  "$BIN" export run --out run/export >/dev/null 2>&1 || exit 1
  BUNDLE=run/export
fi
python3 "$ROOT/bench/serve_bodies.py" "$BUNDLE/manifest.json" "$W" 32
failures=0
for round in $(seq "$ROUNDS"); do
  "$BIN" serve --bundle "$BUNDLE" --port 18097 --threads 2 --audit-log audit.log >/dev/null 2>serve.log &
  PID=$!
  for _ in $(seq 1 200); do curl -s localhost:18097/readyz | grep -q ready && break; sleep 0.05; done
  if ! curl -s localhost:18097/readyz | grep -q ready; then
    echo "round $round: the server did not start on the log:"; tail -3 serve.log; failures=$((failures + 1)); break
  fi
  torn=$(grep -o 'removed an interrupted final record[^"]*' serve.log | head -1)
  BODY="$W/batch.json" wrk -t1 -c16 -d5s -s "$ROOT/bench/serve_post.lua" \
    http://127.0.0.1:18097/v1/roles/credit/decide >/dev/null 2>&1 &
  WRK=$!
  sleep "0.$((RANDOM % 9 + 1))"
  sleep 1
  kill -9 "$PID"; wait "$PID" 2>/dev/null; PID=
  kill "$WRK" 2>/dev/null; wait "$WRK" 2>/dev/null
  verify=$("$BIN" audit verify audit.log 2>&1 | grep -E "lines|broken|error" | head -1)
  tail=$("$BIN" audit verify audit.log 2>&1 | grep -o "[0-9]* bytes after the last line" | head -1)
  echo "round $round: ${verify}${tail:+; torn tail: $tail}${torn:+; at its start the server $torn...)}"
  case "$verify" in *broken*|*error*) failures=$((failures + 1)) ;; esac
done
# The last kill's torn tail (if any) is removed by one more start.
"$BIN" serve --bundle "$BUNDLE" --port 18097 --audit-log audit.log >/dev/null 2>serve.log &
PID=$!
for _ in $(seq 1 200); do curl -s localhost:18097/readyz | grep -q ready && break; sleep 0.05; done
kill "$PID"; wait "$PID" 2>/dev/null; PID=
echo "final restart: $(grep -o 'removed an interrupted final record[^"]*' serve.log | head -1 || true)"
echo "final verify: $("$BIN" audit verify audit.log 2>&1 | grep -E "lines|broken|error" | head -1)"
echo "rounds with a broken chain or a refused restart: $failures of $ROUNDS"
