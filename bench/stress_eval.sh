#!/usr/bin/env bash
# Wall time of the board-report stress evaluation (target: < 5 minutes on 2 cores):
#   loantwin evaluate baseline --scenarios all --paths 1000 --months 120 --institution cu_mid
# Prints wall seconds, loan-months/s (from report.json) and peak memory.
# Usage: bench/stress_eval.sh [build-dir] [policies...]   (default policy: baseline)
set -euo pipefail
BUILD=${1:-build}
shift || true
POLICIES=("$@")
((${#POLICIES[@]} == 0)) && POLICIES=(baseline)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
TIME=()
[[ -x /usr/bin/time ]] && TIME=(/usr/bin/time -f "%M" -o "$OUT/rss")
start=$(date +%s.%N)
"${TIME[@]}" "$BUILD/bin/loantwin" evaluate "${POLICIES[@]}" --scenarios all --paths 1000 \
  --months 120 --institution cu_mid --out "$OUT/report" >"$OUT/log" 2>&1 || {
  cat "$OUT/log"
  exit 1
}
end=$(date +%s.%N)
python3 - "$OUT/report/report.json" "$start" "$end" "$OUT/rss" <<'PY'
import json, os, sys
r = json.load(open(sys.argv[1]))
t = r["timing"]
wall = float(sys.argv[3]) - float(sys.argv[2])
rss = open(sys.argv[4]).read().strip() if os.path.exists(sys.argv[4]) else "?"
print(f"policies: {', '.join(p['name'] for p in r['policies'])}; {len(r['scenarios'])} scenarios "
      f"x {r['settings']['paths']} paths x {r['settings']['months']} months, {r['settings']['institution']}")
print(f"wall {wall:.1f} s (simulation {t['wall_seconds']:.1f} s, report + charts "
      f"{wall - t['wall_seconds']:.1f} s); {t['loan_months']:.3g} loan-months, "
      f"{t['loan_months'] / t['wall_seconds']:.3g} loan-months/s; "
      f"{t['instance_months'] / t['wall_seconds']:.0f} instance-months/s; peak RSS {rss} KB")
PY
