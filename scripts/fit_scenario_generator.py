#!/usr/bin/env python3
"""Fits the generated-scenario distributions to the Fed's Table 1A and writes
configs/generators/us_postwar.yaml (docs/scenarios.md, "Generated scenarios").

From the quarterly US history 1976 Q1 - 2024 Q4 (DFAST 2025 Table 1A):

- Recessions: every trough-to-peak rise of the unemployment rate of at least 1 point (the trough
  being the lowest quarter since the previous peak). Their count over the sample gives the
  arrival rate; log-normal fits (mean and sample sd of the logs) give the rise in points and the
  months from trough to peak, leaving out 2020 (a pandemic shutdown reversed within two years,
  not a credit cycle; it counts as an arrival). The recovery pace is the mean fall per month from each peak to the
  next trough (the 2020 recovery left out: a policy-made rebound, not a recovery pace).
  The policy-rate cut per point of rise is the median over the recessions of (3-month rate at the
  trough - its minimum up to 3 quarters after the peak) / rise, counting only recessions that did
  not hit the zero bound (1980s-2001).
- Rate shocks: policy-rate rises of at least 2 points within 4 quarters, merged when they
  overlap; the rise is from the start to the maximum within the episode.
- House-price corrections: peak-to-trough falls of the nominal house price index of more than
  5%. Table 1A holds one (2006 Q1 - 2011 Q1, -31%): its count gives the arrival rate and its fall
  per month the pace; one episode cannot give a spread, so the size is log-normal with the
  median set to 20% and a log sd of 0.5 (the 2006-2011 fall at the 80th percentile), a judgement
  stated in docs/scenarios.md.
- The month-to-month noise (the default VAR, estimated on the same history including its
  recessions) is halved: the events now carry the cycle.

Usage: python3 scripts/fit_scenario_generator.py [path/to/shared/data/dfast-2025]
"""
import csv
import math
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "configs", "generators", "us_postwar.yaml")


def log_fit(values):
    logs = [math.log(v) for v in values]
    return statistics.mean(logs), statistics.stdev(logs)


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "data",
                                                              "dfast-2025")
    table = next(f for f in sorted(os.listdir(data)) if "Table_1A" in f)
    rows = list(csv.DictReader(open(os.path.join(data, table))))
    dates = [r["Date"] for r in rows]
    u = [float(r["Unemployment rate"]) for r in rows]
    rate = [float(r["3-month Treasury rate"]) for r in rows]
    hpi = [float(r["House Price Index (Level)"]) for r in rows]
    n = len(rows)
    years = n / 4

    # Recessions: trough -> peak rises of >= 1 point.
    recessions, trough, k = [], 0, 1
    while k < n:
        if u[k] < u[trough]:
            trough = k
        if u[k] - u[trough] >= 1.0:
            peak = k
            while peak + 1 < n and u[peak + 1] >= u[peak] - 0.05:
                peak += 1
            peak = max(range(trough, peak + 1), key=lambda j: u[j])
            recessions.append((trough, peak))
            trough = k = peak
        k += 1
    # Sizes and durations leave out 2020: a pandemic shutdown, +9.4 points in a year and mostly
    # reversed within two, not a credit cycle; it still counts as an arrival.
    cycles = [(t, p) for t, p in recessions if not dates[p].startswith("2020")]
    rises = [u[p] - u[t] for t, p in cycles]
    months = [3 * (p - t) for t, p in cycles]
    recovery = []
    for i, (t, p) in enumerate(recessions):
        end = recessions[i + 1][0] if i + 1 < len(recessions) else n - 1
        low = min(range(p, end + 1), key=lambda j: u[j])
        if dates[p].startswith("2020"):
            continue
        if low > p:
            recovery.append((u[p] - u[low]) / (3 * (low - p)))
    cuts = []
    for t, p in recessions:
        floor = min(rate[t:min(n, p + 4)])
        if floor > 0.5:  # away from the zero bound
            cuts.append((rate[t] - floor) / (u[p] - u[t]))
    rise_mu, rise_sd = log_fit(rises)
    months_mu, months_sd = log_fit(months)

    # Rate shocks: >= 2 points within 4 quarters, merged.
    shocks, k = [], 0
    while k < n - 1:
        window = rate[k + 1:k + 5]
        if window and max(window) - rate[k] >= 2.0:
            end = k + 1 + window.index(max(window))
            while end + 1 < n and max(rate[end + 1:end + 5] or [0]) > rate[end]:
                end = end + 1 + rate[end + 1:end + 5].index(max(rate[end + 1:end + 5]))
            shocks.append((k, end, rate[end] - rate[k]))
            k = end
        k += 1
    shock_mu, shock_sd = log_fit([s[2] for s in shocks])
    shock_pace = statistics.mean([s[2] / (3 * (s[1] - s[0])) for s in shocks])

    # House-price corrections: nominal falls of more than 5%.
    corrections, peak, k = [], 0, 1
    while k < n:
        if hpi[k] >= hpi[peak]:
            peak, k = k, k + 1
            continue
        back = next((j for j in range(k, n) if hpi[j] >= hpi[peak]), n)  # regained, or the end
        low = min(range(k, back), key=lambda j: hpi[j])
        if 1 - hpi[low] / hpi[peak] > 0.05:
            corrections.append((peak, low, 1 - hpi[low] / hpi[peak]))
        k = back
    pace = statistics.mean([c[2] / (3 * (c[1] - c[0])) for c in corrections])

    print(f"{table}: {dates[0]} - {dates[-1]}, {years:.2f} years")
    for (t, p), r in zip(recessions, rises):
        print(f"  recession {dates[t]} -> {dates[p]}: +{r:.1f} pp in {3 * (p - t)} months")
    for s in shocks:
        print(f"  rate shock {dates[s[0]]} -> {dates[s[1]]}: +{s[2]:.1f} pp")
    for c in corrections:
        print(f"  house prices {dates[c[0]]} -> {dates[c[1]]}: -{100 * c[2]:.0f}%")

    text = f"""# Generated by scripts/fit_scenario_generator.py from {table} - edit there, not here.
# A steady economy (configs/scenarios/steady_state.yaml) with random recessions, policy-rate
# shocks and house-price corrections drawn per episode (docs/scenarios.md, "Generated scenarios").
name: us_postwar
description: "Random recessions, rate shocks and house-price corrections at the US {dates[0][:4]}-{dates[-1][:4]} frequencies and sizes"
source: "fitted to the Fed's DFAST 2025 Table 1A, {dates[0]} - {dates[-1]} (scripts/fit_scenario_generator.py)"
step_months: 3
paths:
  unemployment: [4.5]
  gdp_growth: [2.0]
  policy_rate: [3.5]
  rate_10y: [4.0]
  mortgage_rate: [6.0]
  hpi: [100]
  credit_spread: [1.5]
long_run:
  unemployment: 4.5
  gdp_growth: 2.0
  policy_rate: 3.5
  rate_10y: 4.0
  mortgage_rate: 6.0
  hpi_growth: 3.0
  credit_spread: 1.5
  reversion_months: 24
# The default month-to-month noise (docs/twin-model.md) was estimated on the same history with
# its recessions in it; with the recessions drawn as events, half its sd is left as noise.
shocks: {{scale: 0.5}}
generator:
  recession:                      # {len(recessions)} in {years:.0f} years
    rate_per_year: {len(recessions) / years:.4f}
    rise_pp: {{log_mean: {rise_mu:.4f}, log_sd: {rise_sd:.4f}, min: 1.0, max: 12.0}}
    rise_months: {{log_mean: {months_mu:.4f}, log_sd: {months_sd:.4f}, min: 3, max: 60}}
    recovery_pp_per_month: {statistics.mean(recovery):.4f}
    okun: 2.0                     # Okun's law: 1 pp of unemployment ~ 2 pp of output
    policy_cut_per_pp: {statistics.median(cuts):.4f}
    long_rate_beta: 0.4
    spread_per_pp: 0.6
    hpi_drag_per_year: 3.0        # nominal house-price growth stalls while unemployment rises
  rate_shock:                     # {len(shocks)} in {years:.0f} years
    rate_per_year: {len(shocks) / years:.4f}
    rise_pp: {{log_mean: {shock_mu:.4f}, log_sd: {shock_sd:.4f}, min: 1.0, max: 10.0}}
    pp_per_month: {shock_pace:.4f}
    hold_months: 12
    unwind_pp_per_month: 0.1
    long_rate_beta: 0.6
  house_price_correction:         # {len(corrections)} in {years:.0f} years
    rate_per_year: {len(corrections) / years:.4f}
    decline: {{log_mean: {math.log(0.20):.4f}, log_sd: 0.5, min: 0.03, max: 0.5}}
    decline_per_month: {pace:.4f}
"""
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write(text)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
