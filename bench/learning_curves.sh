#!/usr/bin/env bash
# Learning curves of an experiment over several seeds: trains the experiment once per seed with
# periodic evaluation against the baselines (`evaluation.every_steps`, 16 held-out paths per
# scenario), then prints, per evaluation step and learning role, each seed's evaluation return,
# their mean and the baselines' mean return on the same paths. Run it with two builds (before
# and after a change) to check that learning per step did not get worse (docs/performance.md,
# "Learning per step"). Usage:
#   bench/learning_curves.sh <build-dir> <experiment.yaml> <total-steps> <eval-every> [seeds...]
# Default seeds: 1 2 3. Runs are written under ${OUT:-/tmp/loantwin-curves}/<name>-s<seed>;
# REPORT_ONLY=1 prints the table of runs already there without training.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 4 ]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
BUILD=$1 EXPERIMENT=$2 STEPS=$3 EVERY=$4
shift 4
SEEDS=("$@")
[ ${#SEEDS[@]} -gt 0 ] || SEEDS=(1 2 3)
OUT=${OUT:-/tmp/loantwin-curves}
mkdir -p "$OUT"
if grep -q '^evaluation:' "$EXPERIMENT"; then
  echo "$EXPERIMENT already has an evaluation section; remove it to use this script" >&2
  exit 2
fi
name=$(sed -n 's/^name: *//p' "$EXPERIMENT")
for seed in "${SEEDS[@]}"; do
  cfg="$OUT/$name-s$seed.yaml"
  sed -e "s/^seed: .*/seed: $seed/" -e "s/^total_steps: .*/total_steps: $STEPS/" \
    "$EXPERIMENT" > "$cfg"
  printf 'evaluation:\n  every_steps: %s\n  paths: 16\n' "$EVERY" >> "$cfg"
  [ "${REPORT_ONLY:-0}" = 1 ] && continue
  echo "== seed $seed: $BUILD/bin/loantwin train $cfg" >&2
  "$BUILD/bin/loantwin" train "$cfg" --out "$OUT/$name-s$seed" --overwrite > "$OUT/$name-s$seed.log" 2>&1
done
# metrics.csv rows: step,wall_seconds,eval/<scenario>/<role>/return|baseline_return,value
for seed in "${SEEDS[@]}"; do
  awk -F, -v seed="$seed" '$3 ~ /^eval\// { print seed "," $1 "," $3 "," $4 }' \
    "$OUT/$name-s$seed/metrics.csv"
done | awk -F, -v n="${#SEEDS[@]}" '
  {
    split($3, k, "/"); key = $2 "," k[2] "," k[3];
    if (k[4] == "return") { ret[key] = ret[key] sprintf(" %8.2f", $4); sum[key] += $4 }
    else { base[key] += $4 }
    keys[key] = 1
  }
  END {
    print "| step | scenario | role | return per seed | mean | baselines (mean) |"
    print "|---|---|---|---|---|---|"
    m = 0; for (key in keys) order[++m] = key
    for (i = 2; i <= m; ++i) {  # insertion sort by step, then scenario and role
      v = order[i]; split(v, a, ","); j = i - 1
      while (j > 0) { split(order[j], b, ","); if (b[1] + 0 < a[1] + 0 || (b[1] == a[1] && b[2] b[3] <= a[2] a[3])) break; order[j + 1] = order[j]; --j }
      order[j + 1] = v
    }
    for (i = 1; i <= m; ++i) {
      split(order[i], a, ",")
      printf "| %d | %s | %s |%s | %.2f | %.2f |\n", a[1], a[2], a[3], ret[order[i]], sum[order[i]] / n, base[order[i]] / n
    }
  }'
