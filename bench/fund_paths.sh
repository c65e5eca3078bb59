#!/usr/bin/env bash
# Home-equity fund paths per second (docs/fund-model.md, "Performance"): `simulate --env
# home_equity_fund` on the built-in fund, 10,000 paths x 120 months by default, baseline
# (equal-weight) decisions through the environment API, 2 threads. Prints wall seconds and paths/s
# and the stage profile. Usage: bench/fund_paths.sh [paths] [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
paths=${1:-10000}
threads=${2:-2}
bin=build/bin/loantwin
[ -x "$bin" ] || { echo "build first: make build" >&2; exit 1; }
start=$(date +%s.%N)
"$bin" simulate --env home_equity_fund --paths "$paths" --threads "$threads" --profile \
  > /tmp/fund_paths.$$.txt 2>/dev/null
end=$(date +%s.%N)
grep -E "loantwin simulate|^LP IRR|profile|  (paths|exits|leverage|waterfall|metrics|total)" /tmp/fund_paths.$$.txt
rm -f /tmp/fund_paths.$$.txt
awk -v s="$start" -v e="$end" -v p="$paths" \
  'BEGIN { printf "wall (process): %.2f s, %.0f paths/s (%d paths x 120 months)\n", e - s, p / (e - s), p }'
