#!/usr/bin/env bash
# Wall time of `loantwin simulate` on cu_large, 120 months, 100 paths (target: < 30 s on 2 cores).
# Usage: bench/simulate_wall.sh [build-dir] [runs]
set -euo pipefail
BUILD=${1:-build}
RUNS=${2:-3}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for i in $(seq "$RUNS"); do
  start=$(date +%s.%N)
  "$BUILD/bin/loantwin" simulate --institution cu_large --scenario severe_recession --months 120 \
    --paths 100 --seed "$i" --out "$OUT/run.csv" >/dev/null 2>&1
  end=$(date +%s.%N)
  echo "run $i: $(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.2f", b - a}') s wall (cu_large, 120 months x 100 paths, CSV written)"
done
