#pragma once
// The static-pool backtest's report (report.md, report.html, report.json, charts) and the
// fitting table, shared by `loantwin backtest --performance` and `loantwin calibrate --fit`.

#include <string>
#include <vector>

#include "env/twin/book_backtest.h"

namespace loantwin::cli {

/// Markdown: the error table per product and metric, PD calibration, PSI.
std::string BookBacktestMarkdown(const BookBacktestResult& r);
/// Writes report.md, report.json, report.html (+ one SVG chart per product when `charts`).
void WriteBookBacktestReport(const BookBacktestResult& r, const std::string& dir, bool charts);
/// Markdown table of fitted multipliers.
std::string FitMarkdown(const std::vector<ProductFit>& fits);

}  // namespace loantwin::cli
