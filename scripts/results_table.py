#!/usr/bin/env python3
"""Markdown tables of `loantwin evaluate` results across runs (docs/results.md).

Usage: scripts/results_table.py NAME=RUN_DIR/evaluation.json [NAME=...]

For every scenario: the all-baseline hierarchy (from the first file) and each run's trained
hierarchy (its learning roles on their policies, the other roles on their baselines):
cumulative net income over the episode (millions), mean ROE, mean of the minimum CET1 ratio and
peak charge-off rate, means over the evaluation paths.
"""
import json
import sys


def main(args):
    if not args:
        sys.exit(__doc__)
    runs = []
    for arg in args:
        name, _, path = arg.partition("=")
        with open(path) as f:
            runs.append((name, {e["scenario"]: e for e in json.load(f)}))
    scenarios = list(runs[0][1].keys())
    metrics = [("cumulative_net_income", "cumulative net income (M)", 1e-6, "{:.2f}"),
               ("mean_roe", "mean ROE", 100, "{:.2f}%"),
               ("min_cet1_ratio_mean", "minimum CET1 (mean over paths)", 100, "{:.1f}%"),
               ("peak_charge_off_rate", "peak charge-off rate", 100, "{:.2f}%")]
    for key, title, scale, fmt in metrics:
        print(f"\n**{title}**\n")
        print("| scenario | all baselines | " + " | ".join(n for n, _ in runs) + " |")
        print("|---" * (len(runs) + 2) + "|")
        for s in scenarios:
            base = runs[0][1][s]["baseline"]["portfolio"][key] * scale
            cells = [fmt.format(base)]
            for _, r in runs:
                cells.append(fmt.format(r[s]["trained"]["portfolio"][key] * scale) if s in r else "-")
            print(f"| {s} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
