#!/usr/bin/env python3
"""Draws the historic backtest chart of docs/twin-model.md from `loantwin backtest --out` CSV.

    loantwin backtest --out backtest.csv
    python3 scripts/backtest_chart.py backtest.csv docs/images/backtest/cu_mid.svg

Two panels (cards, first-lien home loans): the twin's mean-path quarterly charge-off rate (line)
and the Federal Reserve's published rate for all US commercial banks (dots), 2006Q1-2012Q4,
with unemployment (grey, right scale). Plain SVG, no dependencies.
"""
import csv
import sys


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{path}: no rows")
    for need in ("quarter", "unemployment", "card", "card_fed", "home", "home_fed"):
        if need not in rows[0]:
            sys.exit(f"{path}: column '{need}' missing (expected `loantwin backtest --out` CSV)")

    def num(v):
        return None if v in ("-", "") else float(v)

    return rows, num


def panel(out, rows, num, key, title, x0, y0, w, h):
    n = len(rows)
    sim = [num(r[key]) for r in rows]
    fed = [num(r[key + "_fed"]) for r in rows]
    unemp = [num(r["unemployment"]) for r in rows]
    top = max(v for v in sim + fed if v is not None) * 1.15
    xs = lambda i: x0 + w * (i + 0.5) / n
    ys = lambda v: y0 + h - h * v / top
    yu = lambda v: y0 + h - h * v / 12.0
    out.append(f'<text x="{x0}" y="{y0 - 8}" font-size="13" font-weight="bold">{title}</text>')
    out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#999"/>')
    step = 2 if top < 6 else (5 if top < 20 else 10)
    t = 0.0
    while t <= top:
        out.append(f'<line x1="{x0}" x2="{x0 + w}" y1="{ys(t):.1f}" y2="{ys(t):.1f}" '
                   f'stroke="#eee"/><text x="{x0 - 6}" y="{ys(t) + 4:.1f}" font-size="10" '
                   f'text-anchor="end">{t:g}%</text>')
        t += step / 2 if top < 6 else step
    for i, r in enumerate(rows):
        if r["quarter"].endswith("Q1"):
            out.append(f'<text x="{xs(i):.1f}" y="{y0 + h + 14}" font-size="10" '
                       f'text-anchor="middle">{r["quarter"][:4]}</text>')
    pts = " ".join(f"{xs(i):.1f},{yu(v):.1f}" for i, v in enumerate(unemp) if v is not None)
    out.append(f'<polyline points="{pts}" fill="none" stroke="#bbb" stroke-dasharray="4 3"/>')
    pts = " ".join(f"{xs(i):.1f},{ys(v):.1f}" for i, v in enumerate(sim) if v is not None)
    out.append(f'<polyline points="{pts}" fill="none" stroke="#1f77b4" stroke-width="2"/>')
    for i, v in enumerate(fed):
        if v is not None:
            out.append(f'<circle cx="{xs(i):.1f}" cy="{ys(v):.1f}" r="3.5" fill="#d62728"/>')


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: backtest_chart.py BACKTEST.csv OUT.svg")
    rows, num = load(sys.argv[1])
    w, h = 420, 220
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * w + 140}" height="{h + 90}" '
           f'font-family="sans-serif">', '<rect width="100%" height="100%" fill="white"/>']
    panel(out, rows, num, "card", "Cards: charge-off rate, annualised", 50, 30, w, h)
    panel(out, rows, num, "home", "First-lien home loans: charge-off rate", w + 110, 30, w, h)
    y = h + 75
    out.append(f'<line x1="50" x2="75" y1="{y}" y2="{y}" stroke="#1f77b4" stroke-width="2"/>'
               f'<text x="80" y="{y + 4}" font-size="11">twin, mean of paths</text>'
               f'<circle cx="220" cy="{y}" r="3.5" fill="#d62728"/>'
               f'<text x="228" y="{y + 4}" font-size="11">Federal Reserve, all US commercial '
               f'banks (published quarters)</text>'
               f'<line x1="540" x2="565" y1="{y}" y2="{y}" stroke="#bbb" '
               f'stroke-dasharray="4 3"/><text x="570" y="{y + 4}" font-size="11">'
               f'unemployment (0-12%)</text>')
    out.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
