#!/usr/bin/env bash
# Throughput of `loantwin sync` on a synthetic loan tape (docs/digital-twin.md, "Performance").
#   bench/tape_ingest.sh [loans, default 1000000]
# Writes a tape of personal, auto, home and card loans in the loantwin schema and a balance sheet
# that balances with it, then times sync (parse + validate + write the book + reload it and open
# the twin on it, as every command will).
set -euo pipefail
BIN=${LOANTWIN:-build/bin/loantwin}
N=${1:-1000000}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$dir" "$N" <<'PY'
import random, sys
d, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
total = 0.0
with open(f"{d}/tape.csv", "w") as f:
    f.write("loan_id,product,origination_date,current_balance,rate,rate_type,term_months,score,"
            "days_past_due,status,collateral_value,credit_limit\n")
    for i in range(n):
        k = i % 4
        y, m = rng.randint(2018, 2024), rng.randint(1, 12)
        score = rng.randint(560, 840)
        dpd = 0 if rng.random() < 0.97 else 30
        st = "current" if dpd == 0 else "delinquent"
        if k == 0:
            b = round(rng.uniform(1000, 30000), 2)
            f.write(f"P{i},personal,{y}-{m:02d},{b},0.11,fixed,84,{score},{dpd},{st},,\n")
        elif k == 1:
            b = round(rng.uniform(5000, 40000), 2)
            f.write(f"A{i},auto,{y}-{m:02d},{b},0.07,fixed,84,{score},{dpd},{st},{b*1.3:.2f},\n")
        elif k == 2:
            b = round(rng.uniform(50000, 500000), 2)
            f.write(f"H{i},home,{y}-{m:02d},{b},0.05,fixed,360,{score},{dpd},{st},{b*1.4:.2f},\n")
        else:
            b = round(rng.uniform(0, 8000), 2)
            f.write(f"C{i},card,{y}-{m:02d},{b},0.18,variable,,{score},{dpd},{st},,{b+5000:.2f}\n")
        total += b
cash, sec = 0.05 * total, 0.15 * total
equity = 0.10 * (total + cash + sec)
with open(f"{d}/bs.yaml", "w") as f:
    f.write(f"name: bench_cu\nmembers: {n}\nbase: cu_mid\nassets:\n  cash: {cash}\n"
            f"  securities: {sec}\n  allowance: 0\nliabilities:\n  shares: "
            f"{0.7 * (total + cash + sec - equity)}\n  certificates: "
            f"{0.3 * (total + cash + sec - equity)}\nequity: {equity}\n")
PY
echo "tape: $N loans, $(du -h "$dir/tape.csv" | cut -f1)"
/usr/bin/time -f "sync: %e s wall, %M KB peak memory" "$BIN" sync --tape "$dir/tape.csv" \
  --balance-sheet "$dir/bs.yaml" --as-of 2024-12 --out "$dir/out" | tail -n 3
