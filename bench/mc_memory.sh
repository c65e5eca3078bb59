#!/usr/bin/env bash
# Peak resident memory of `loantwin simulate` and `loantwin evaluate` as the number of paths
# grows: paths are streamed batch by batch and reduced as they arrive, so memory stays flat
# (docs/operations.md, "Monte Carlo memory").
# Usage: bench/mc_memory.sh [build-dir] [paths list]
set -euo pipefail
BUILD=${1:-build}
PATHS_LIST=${2:-"10 1000 10000"}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
peak() {  # peak RSS in MB of the command, its wall time
  /usr/bin/time -f "%M %e" "$@" >/dev/null 2>"$OUT/time.txt" || { cat "$OUT/time.txt" >&2; exit 1; }
  tail -1 "$OUT/time.txt" | awk '{printf "%6.0f MB peak RSS, %6.1f s", $1 / 1024, $2}'
}
for n in $PATHS_LIST; do
  echo "simulate --policy static --output bands, cu_small, 60 months, $n paths: $(peak \
    "$BUILD/bin/loantwin" simulate --policy static --institution cu_small --months 60 --paths "$n" \
    --output bands --out "$OUT/bands.csv")"
  echo "simulate (baseline policies) --output paths, cu_small, 60 months, $n paths: $(peak \
    "$BUILD/bin/loantwin" simulate --institution cu_small --months 60 --paths "$n" \
    --out "$OUT/paths.csv")"
  echo "evaluate baseline, steady_state, cu_small, 60 months, $n paths: $(peak \
    "$BUILD/bin/loantwin" evaluate baseline --scenarios steady_state --institution cu_small \
    --months 60 --paths "$n" --no-charts --out "$OUT/report")"
done
