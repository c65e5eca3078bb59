#!/usr/bin/env python3
"""Writes configs/applicant_groups/fed2007.yaml: applicant score distributions and bad rates by
group, derived from the Federal Reserve's 2007 report to Congress on credit scoring (TransRisk
score, SSA-CBR sample) as published in ../shared/data/credit/fico_transrisk_*_by_race_ssa.csv.

The table keeps every integer score 0..100 of the files (the half-point rows are dropped):
`cdf` is the share of the group with a score at or below the point, `bad_rate` the share of the
group's accounts at that score that went 90+ days past due within the report's performance
window. Group shares are the SSA-CBR sample's group sizes (Non-Hispanic white 133,165, Black
18,274, Hispanic 14,702, Asian 7,906; the sample sizes reported with the TransRisk tables and
used by Hardt, Price & Srebro 2016).

Usage: python3 scripts/make_applicant_groups.py [path/to/shared/data/credit]
"""
import csv
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "configs", "applicant_groups", "fed2007.yaml")
NAMES = {"Non- Hispanic white": "white", "Black": "black", "Hispanic": "hispanic",
         "Asian": "asian"}
SIZES = {"white": 133165, "black": 18274, "hispanic": 14702, "asian": 7906}


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = [NAMES[h.strip()] if h.strip() in NAMES else h.strip() for h in rows[0]]
    table = {}
    for row in rows[1:]:
        score = float(row[0])
        if score != int(score):
            continue
        table[int(score)] = {header[k]: float(row[k]) / 100 for k in range(1, len(header))}
    return table


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "data",
                                                            "credit")
    cdf = read(os.path.join(src, "fico_transrisk_cdf_by_race_ssa.csv"))
    bad = read(os.path.join(src, "fico_transrisk_performance_by_race_ssa.csv"))
    scores = sorted(cdf)
    total = sum(SIZES.values())
    lines = [
        "# Applicant score distributions and bad rates by group (TransRisk score 0-100).",
        "# Derived by scripts/make_applicant_groups.py from the Federal Reserve's 2007 report to",
        "# Congress on credit scoring (SSA-CBR sample; ../shared/data/credit/fico_transrisk_*).",
        "# Used for fair-lending analysis only: no policy observes an applicant's group",
        "# (docs/governance.md).",
        "scores: [" + ", ".join(str(s) for s in scores) + "]",
        "groups:",
    ]
    for g in ["white", "black", "hispanic", "asian"]:
        lines.append(f"  - name: {g}")
        lines.append(f"    share: {SIZES[g] / total:.5f}")
        lines.append("    cdf: [" + ", ".join(f"{cdf[s][g]:.4f}" for s in scores) + "]")
        lines.append("    bad_rate: [" + ", ".join(f"{bad[s][g]:.4f}" for s in scores) + "]")
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
