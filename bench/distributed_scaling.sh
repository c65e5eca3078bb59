#!/usr/bin/env bash
# Scaling over processes on this machine (docs/distributed.md, "Performance"):
# 1. training: an experiment's steps/s with 1 rank x 2 env threads vs 2 ranks x 1 thread
#    (`loantwin launch --nproc 2 -- train_bench ... --distributed`), each rank with the
#    experiment's env.num_envs; and 2 ranks with half the instances each (the same instances in
#    all as one process). Prints each run's all-reduce count, bytes and time.
# 2. stress evaluation: paths/s of `loantwin evaluate` with 1 rank x 1 thread, 1 rank x 2
#    threads and 2 ranks x 1 thread (the reports are identical).
# Usage: bench/distributed_scaling.sh [build-dir] [experiment.yaml] [train steps] [paths]
#   defaults: build configs/quickstart.yaml 200000 1000
set -euo pipefail
BUILD=${1:-build}
EXPERIMENT=${2:-configs/quickstart.yaml}
STEPS=${3:-200000}
PATHS=${4:-1000}
CLI="$BUILD/bin/loantwin"
BENCH="$BUILD/bin/train_bench"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# variant <envs|same> <threads> <file>: the experiment with env.threads (and num_envs halved).
variant() {
  python3 - "$EXPERIMENT" "$1" "$2" "$3" <<'PY'
import re, sys
src, envs, threads, dst = sys.argv[1:]
text = open(src).read()
text = re.sub(r"(?m)^(\s+threads:\s*)\d+", lambda m: m.group(1) + threads, text, count=1)
if envs == "half":
    text = re.sub(r"(?m)^(\s+num_envs:\s*)(\d+)", lambda m: m.group(1) + str(int(m.group(2)) // 2),
                  text, count=1)
open(dst, "w").write(text)
PY
}
rate() { grep -o 'training, first [0-9]* steps: [0-9]* steps/s' "$1" | awk '{print $5}'; }

echo "== training: $EXPERIMENT, $STEPS steps"
variant same 2 "$OUT/one.yaml"
variant same 1 "$OUT/two.yaml"
variant half 1 "$OUT/half.yaml"
"$BENCH" "$OUT/one.yaml" "$STEPS" 1000 >"$OUT/one.log"
"$CLI" launch --nproc 2 -- "$BENCH" "$OUT/two.yaml" "$STEPS" 1000 --distributed >"$OUT/two.log" 2>&1
"$CLI" launch --nproc 2 -- "$BENCH" "$OUT/half.yaml" "$STEPS" 1000 --distributed >"$OUT/half.log" 2>&1
one=$(rate "$OUT/one.log")
two=$(rate "$OUT/two.log" | head -1)
half=$(rate "$OUT/half.log" | head -1)
echo "1 rank x 2 threads:                 $one steps/s"
echo "2 ranks x 1 thread:                 $two steps/s ($(awk "BEGIN{printf \"%.0f\", 100*$two/$one}")% of 1 x 2)"
echo "2 ranks x 1 thread, half instances: $half steps/s ($(awk "BEGIN{printf \"%.0f\", 100*$half/$one}")% of 1 x 2)"
grep -m1 "all-reduces" "$OUT/two.log" | sed 's/^/  2 ranks: /'
grep -m1 "all-reduces" "$OUT/half.log" | sed 's/^/  2 ranks, half: /'
grep "^role .* parameters" "$OUT/two.log" | sort -u | sed 's/^/  /'

echo "== stress evaluation: baseline, severe_recession, $PATHS paths x 120 months"
EVAL=(evaluate baseline --scenarios severe_recession --paths "$PATHS" --months 120 --no-charts
  --institution cu_mid)
timed() {  # label, command...
  local label=$1
  shift
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$OUT/eval.log" 2>&1 || {
    cat "$OUT/eval.log"
    exit 1
  }
  t1=$(date +%s.%N)
  awk -v l="$label" -v p="$PATHS" -v a="$t0" -v b="$t1" \
    'BEGIN{printf "%-22s %6.1f s  %6.0f paths/s\n", l, b - a, p / (b - a)}'
}
timed "1 rank x 1 thread" "$CLI" "${EVAL[@]}" --threads 1 --out "$OUT/r1"
timed "1 rank x 2 threads" "$CLI" "${EVAL[@]}" --threads 2 --out "$OUT/r2"
timed "2 ranks x 1 thread" "$CLI" launch --nproc 2 -- "$CLI" "${EVAL[@]}" --threads 1 \
  --out "$OUT/d2" --distributed
python3 - "$OUT/r1/report.json" "$OUT/d2/report.json" <<'PY'
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:])
for r in (a, b):
    r.pop("provenance"), r.pop("timing")
print("2-rank report equals the single-process report:", a == b)
PY
