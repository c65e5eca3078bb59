#!/usr/bin/env python3
"""Estimates the twin's default macro noise from the Federal Reserve's Table 1A history.

The twin's stochastic macro component (env/twin/scenario.cc, docs/twin-model.md "Macro and the
credit factor") is a monthly VAR(1) with diagonal persistence and correlated innovations around
a scenario's anchor paths:

    e_t = Phi e_{t-1} + u_t,   u_t ~ N(0, S_m),   Phi = diag(phi_m)

This script estimates the same model on the quarterly history, then converts it to months:

1. Series (quarterly, Table 1A "Actual" rows): unemployment rate, real GDP growth (annualised),
   3-month Treasury rate, 10-year Treasury yield, mortgage rate, log house price index, and the
   credit spread (BBB corporate yield minus the 10-year yield; Table 1A has BBB from 1988 Q4).
2. Diagonal VAR(1) by OLS, equation by equation: x_t = c + a x_{t-1} + u_t (the log HPI equation
   also has a linear trend, house prices drift upward). Residual covariance S_q over the quarters
   where every variable's residual exists (spread: 1989 Q1 onward) for the correlations, each
   variance over its own full sample. The pandemic quarters whose dependent or lagged value is
   2020 Q2-Q3 (2020 Q2-Q4 as dependent) are left out: lockdown moved unemployment 9 pp and GDP
   growth 63 pp in a quarter, a one-off no AR(1) describes; with them the unemployment sd triples.
3. Months: phi_m = a^(1/3) (capped at 0.995), and S_m[i][j] = S_q[i][j] / (1 + r + r^2) with
   r = phi_i phi_j, so that three months of monthly innovations add up to the quarterly
   innovation covariance exactly.

For comparison it also prints the residual sds of the unrestricted VAR(1) (all seven lags in
every equation), which are a little smaller (lagged cross-effects explain part of each quarter).

Usage: python3 scripts/estimate_macro_noise.py [path/to/shared/data/dfast-2025]
Prints the C++ constants for env/twin/scenario.cc and the table for docs/twin-model.md.
"""
import csv
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ["unemployment", "gdp_growth", "policy_rate", "rate_10y", "mortgage_rate", "hpi",
         "credit_spread"]
COLUMNS = ["Unemployment rate", "Real GDP growth", "3-month Treasury rate",
           "10-year Treasury yield", "Mortgage rate", "House Price Index (Level)", None]
EXCLUDED = {"2020 Q2", "2020 Q3", "2020 Q4"}  # dependent quarters left out (see above)
LAG_EXCLUDED = {"2020 Q2", "2020 Q3"}          # lagged quarters left out
PHI_CAP = 0.995


def solve(a, b):
    """Solves a x = b (small dense systems) by Gaussian elimination with partial pivoting."""
    n = len(a)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        if abs(m[c][c]) < 1e-12:
            raise ValueError("singular regression")
        for r in range(c + 1, n):
            f = m[r][c] / m[c][c]
            for k in range(c, n + 1):
                m[r][k] -= f * m[c][k]
    x = [0.0] * n
    for r in range(n - 1, -1, -1):
        x[r] = (m[r][n] - sum(m[r][k] * x[k] for k in range(r + 1, n))) / m[r][r]
    return x


def ols(rows, ys):
    """OLS coefficients and residuals of ys on rows (each a list of regressors)."""
    k = len(rows[0])
    xtx = [[sum(r[i] * r[j] for r in rows) for j in range(k)] for i in range(k)]
    xty = [sum(r[i] * y for r, y in zip(rows, ys)) for i in range(k)]
    beta = solve(xtx, xty)
    return beta, [y - sum(b * x for b, x in zip(beta, r)) for r, y in zip(rows, ys)]


def cholesky(s):
    n = len(s)
    low = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            v = s[i][j] - sum(low[i][k] * low[j][k] for k in range(j))
            if i == j:
                if v <= 0:
                    raise ValueError("covariance is not positive definite")
                low[i][i] = math.sqrt(v)
            else:
                low[i][j] = v / low[j][j]
    return low


def load(data):
    path = os.path.join(data, "2025-Table_1A_Historic_Domestic.csv")
    dates, series = [], [[] for _ in NAMES]
    with open(path) as f:
        for line, r in enumerate(csv.DictReader(f), start=2):
            if r["Scenario Name"] != "Actual":
                continue
            dates.append(r["Date"])
            for v, col in enumerate(COLUMNS):
                try:
                    if col is None:
                        bbb = r["BBB corporate yield"]
                        x = float(bbb) - float(r["10-year Treasury yield"]) if bbb else None
                    elif col.startswith("House"):
                        x = math.log(float(r[col]))
                    else:
                        x = float(r[col])
                except ValueError as e:
                    sys.exit(f"{path}:{line}: column '{col}': {e}")
                series[v].append(x)
    return dates, series


def main():
    data = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "data",
                                                                 "dfast-2025")
    dates, series = load(data)
    ok = [t > 0 and dates[t] not in EXCLUDED and dates[t - 1] not in LAG_EXCLUDED
          for t in range(len(dates))]
    a, resid, sample = [], [], []
    for v, x in enumerate(series):
        ts = [t for t in range(len(dates)) if ok[t] and x[t] is not None and x[t - 1] is not None]
        rows = [[1.0, x[t - 1]] + ([float(t)] if NAMES[v] == "hpi" else []) for t in ts]
        beta, u = ols(rows, [x[t] for t in ts])
        a.append(beta[1])
        resid.append(dict(zip(ts, u)))
        sample.append((dates[ts[0]], dates[ts[-1]], len(ts)))
    n = len(NAMES)
    common = sorted(set.intersection(*(set(r) for r in resid)))
    sd_q = [math.sqrt(sum(u * u for u in r.values()) / (len(r) - 2)) for r in resid]
    corr = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            ci = [resid[i][t] for t in common]
            cj = [resid[j][t] for t in common]
            mi, mj = sum(ci) / len(ci), sum(cj) / len(cj)
            sij = sum((p - mi) * (q - mj) for p, q in zip(ci, cj))
            sii = sum((p - mi) ** 2 for p in ci)
            sjj = sum((q - mj) ** 2 for q in cj)
            corr[i][j] = sij / math.sqrt(sii * sjj)
    cholesky(corr)  # the correlation matrix the twin factors must be positive definite
    phi_m = [min(PHI_CAP, max(0.0, x) ** (1 / 3)) for x in a]
    sd_m = [sd_q[i] / math.sqrt(1 + phi_m[i] ** 2 + phi_m[i] ** 4) for i in range(n)]

    # Unrestricted VAR(1) on the common sample, for comparison.
    full_ts = [t for t in common if all(series[v][t - 1] is not None for v in range(n))]
    full_sd = []
    for v in range(n):
        rows = [[1.0] + [series[w][t - 1] for w in range(n)] +
                ([float(t)] if NAMES[v] == "hpi" else []) for t in full_ts]
        _, u = ols(rows, [series[v][t] for t in full_ts])
        full_sd.append(math.sqrt(sum(e * e for e in u) / (len(u) - len(rows[0]))))

    print("# Diagonal VAR(1) on Table 1A, quarterly (pandemic quarters 2020 Q2-Q4 left out)")
    print(f"# correlations over {dates[common[0]]} - {dates[common[-1]]} ({len(common)} quarters)")
    print("| variable | sample | quarterly AR | quarterly sd | unrestricted VAR sd | "
          "monthly persistence | monthly sd |")
    print("|---|---|---|---|---|---|---|")
    unit = lambda v: "(log)" if NAMES[v] == "hpi" else "pp"
    for v in range(n):
        s0, s1, cnt = sample[v]
        print(f"| {NAMES[v]} | {s0} - {s1} ({cnt}) | {a[v]:.3f} | {sd_q[v]:.4f} {unit(v)} | "
              f"{full_sd[v]:.4f} | {phi_m[v]:.3f} | {sd_m[v]:.4f} {unit(v)} |")
    print()
    print("// Generated by scripts/estimate_macro_noise.py from the Fed's 2025 Table 1A.")
    print("sd: {" + ", ".join(f"{x:.4f}" for x in sd_m) + "}")
    print("persistence: {" + ", ".join(f"{x:.3f}" for x in phi_m) + "}")
    print("correlation:")
    for row in corr:
        print("  {" + ", ".join(f"{x:+.2f}" for x in row) + "},")


if __name__ == "__main__":
    main()
