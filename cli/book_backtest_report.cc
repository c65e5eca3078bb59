#include "cli/book_backtest_report.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "report/gnuplot.h"

namespace loantwin::cli {
namespace {

std::string Num(double v, int metric) {
  if (std::isnan(v)) return "-";
  if (metric == kBmBalance) return fmt::format("{:.0f}", v);
  return fmt::format("{:.3f}%", 100 * v);
}

std::string Pct(double v) {
  return std::isnan(v) ? "-" : fmt::format("{:.1f}%", 100 * v);
}

nlohmann::json JsonNum(double v) {
  return std::isnan(v) ? nlohmann::json() : nlohmann::json(v);
}

std::string Chart(const BookBacktestResult& r, int p) {
  std::vector<std::pair<std::string, std::string>> files;
  std::string script =
      "set terminal svg size 900,560 font 'sans,11'\nset output 'chart.svg'\n"
      "set multiplot layout 2,2\nset key top left\nset grid\nset xlabel 'month'\n";
  const int panels[] = {kBmDq30Rate, kBmChargeOffRate, kBmEntryRate, kBmPrepayRate};
  for (int metric : panels) {
    const MetricComparison* c = nullptr;
    for (const auto& m : r.metrics)
      if (m.product == p && m.metric == metric) c = &m;
    if (!c) continue;
    std::string data;
    for (size_t t = 0; t < c->actual.size(); ++t) {
      auto v = [](double x) {
        return std::isnan(x) ? std::string("NaN") : fmt::format("{}", 100 * x);
      };
      data += fmt::format("{} {} {} {} {}\n", t + 1, v(c->p05[t]), v(c->mean[t]), v(c->p95[t]),
                          v(c->actual[t]));
    }
    const std::string name = fmt::format("m{}.dat", metric);
    files.emplace_back(name, data);
    script += fmt::format(
        "set title {}\nset ylabel '%'\nplot '{}' using 1:2:4 with filledcurves fc rgb '#4393c3' "
        "fs transparent solid 0.2 noborder title 'twin 5-95%', '{}' using 1:3 with lines lw 2 "
        "lc rgb '#2166ac' title 'twin mean', '{}' using 1:5 with linespoints pt 7 ps 0.5 lw 1.5 "
        "lc rgb '#b2182b' title 'actual'\n",
        GnuplotQuote(fmt::format("{}: {}", kProductNames[p], BookMetricNames()[metric])), name,
        name, name);
  }
  script += "unset multiplot\n";
  return RunGnuplot(script, files, "chart.svg");
}

}  // namespace

std::string BookBacktestMarkdown(const BookBacktestResult& r) {
  std::string md = fmt::format(
      "Static-pool backtest of {} ({}): {} months of {} against {} twin paths under {} (seed "
      "{}). Transition MAPE (mean over products of entry, roll, cure and prepayment MAPE): "
      "{} monthly, {} on quarters (three months' transitions pooled)\n\n",
      r.institution, r.performance, r.months, r.performance, r.paths, r.scenario, r.seed,
      Pct(r.transition_mape), Pct(r.quarterly_transition_mape));
  md += "| product | metric | actual (mean) | twin (mean) | bias | MAPE | MAE | 5-95% coverage |\n";
  md += "|---|---|---|---|---|---|---|---|\n";
  for (const auto& c : r.metrics) {
    double a = 0, m = 0;
    int n = 0;
    for (size_t t = 0; t < c.actual.size(); ++t)
      if (!std::isnan(c.actual[t]) && !std::isnan(c.mean[t])) a += c.actual[t], m += c.mean[t], ++n;
    md += fmt::format("| {} | {} | {} | {} | {} | {} | {} | {} |\n", kProductNames[c.product],
                      BookMetricNames()[c.metric], Num(n ? a / n : NAN, c.metric),
                      Num(n ? m / n : NAN, c.metric), Num(c.bias, c.metric), Pct(c.mape),
                      Num(c.mae, c.metric), Pct(c.coverage));
  }
  md +=
      "\nBalances by product and score band (the as-of book's segments):\n\n"
      "| product | band | actual, last month | twin, last month | 5-95% | MAPE | coverage |\n"
      "|---|---|---|---|---|---|---|\n";
  for (const auto& c : r.segments)
    md += fmt::format("| {} | {} | {:.0f} | {:.0f} | {:.0f} - {:.0f} | {} | {} |\n",
                      kProductNames[c.product], kBandNames[c.band], c.actual.back(), c.mean.back(),
                      c.p05.back(), c.p95.back(), Pct(c.mape), Pct(c.coverage));
  md += fmt::format(
      "\nPD calibration: loans current at the as-of date reaching 90+ days past due or charged "
      "off within {} months, observed (Wilson 95% interval) vs the twin's mean.\n\n"
      "| product | band | loans | defaults | observed | interval | twin | within |\n"
      "|---|---|---|---|---|---|---|---|\n",
      r.horizon_pd);
  for (const auto& b : r.calibration)
    md += fmt::format("| {} | {} | {} | {} | {} | {} - {} | {} | {} |\n", kProductNames[b.product],
                      kBandNames[b.band], b.loans, b.defaults, Pct(b.observed), Pct(b.lo),
                      Pct(b.hi), Pct(b.predicted), b.within() ? "yes" : "NO");
  md +=
      "\nPopulation stability of the book's score-band mix against the preset's approved "
      "applicants (PSI; < 0.10 stable, 0.10-0.25 moderate shift, > 0.25 major shift):\n\n"
      "| product | PSI |\n|---|---|\n";
  for (int p = 0; p < kNumProducts; ++p)
    if (r.offered[p]) md += fmt::format("| {} | {:.3f} |\n", kProductNames[p], r.psi_band[p]);
  return md;
}

void WriteBookBacktestReport(const BookBacktestResult& r, const std::string& dir, bool charts) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  std::string md = "# Backtest: " + r.institution + "\n\n" + BookBacktestMarkdown(r);
  std::string html_charts;
  if (charts) {
    md += "\n## Charts\n\n";
    for (int p = 0; p < kNumProducts; ++p) {
      if (!r.offered[p]) continue;
      const std::string name = fmt::format("{}.svg", kProductNames[p]);
      const std::string svg = Chart(r, p);
      WriteFileAtomically((fs::path(dir) / name).string(), [&](std::ostream& o) { o << svg; });
      md += fmt::format("![{}]({})\n", kProductNames[p], name);
      html_charts += fmt::format("<h2>{}</h2>\n<img src=\"{}\" alt=\"{}\">\n", kProductNames[p],
                                 name, kProductNames[p]);
    }
  }
  WriteFileAtomically((fs::path(dir) / "report.md").string(), [&](std::ostream& o) { o << md; });
  nlohmann::json j;
  j["institution"] = r.institution;
  j["scenario"] = r.scenario;
  j["performance"] = r.performance;
  j["months"] = r.months;
  j["paths"] = r.paths;
  j["seed"] = r.seed;
  j["transition_mape"] = JsonNum(r.transition_mape);
  j["quarterly_transition_mape"] = JsonNum(r.quarterly_transition_mape);
  for (const auto& c : r.segments)
    j["segments"].push_back({{"product", kProductNames[c.product]},
                             {"band", kBandNames[c.band]},
                             {"actual", c.actual},
                             {"mean", c.mean},
                             {"p05", c.p05},
                             {"p95", c.p95},
                             {"mape", JsonNum(c.mape)},
                             {"coverage", c.coverage}});
  for (const auto& c : r.metrics) {
    nlohmann::json m;
    m["product"] = kProductNames[c.product];
    m["metric"] = BookMetricNames()[c.metric];
    for (const char* k : {"actual", "mean", "p05", "p95"}) m[k] = nlohmann::json::array();
    for (size_t t = 0; t < c.actual.size(); ++t) {
      m["actual"].push_back(JsonNum(c.actual[t]));
      m["mean"].push_back(JsonNum(c.mean[t]));
      m["p05"].push_back(JsonNum(c.p05[t]));
      m["p95"].push_back(JsonNum(c.p95[t]));
    }
    m["bias"] = JsonNum(c.bias);
    m["mape"] = JsonNum(c.mape);
    m["mae"] = JsonNum(c.mae);
    m["coverage"] = JsonNum(c.coverage);
    j["metrics"].push_back(m);
  }
  for (const auto& b : r.calibration)
    j["pd_calibration"].push_back({{"product", kProductNames[b.product]},
                                   {"band", kBandNames[b.band]},
                                   {"loans", b.loans},
                                   {"defaults", b.defaults},
                                   {"observed", b.observed},
                                   {"interval", {b.lo, b.hi}},
                                   {"predicted", b.predicted}});
  for (int p = 0; p < kNumProducts; ++p)
    if (r.offered[p]) j["psi_band"][kProductNames[p]] = r.psi_band[p];
  WriteFileAtomically((fs::path(dir) / "report.json").string(),
                      [&](std::ostream& o) { o << j.dump(2) << '\n'; });
  // HTML: the Markdown tables as HTML tables, then the charts.
  std::string html =
      "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Backtest: " + r.institution +
      "</title><style>body{font-family:sans-serif;max-width:1000px;margin:auto}"
      "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px "
      "6px;text-align:right}</style></head><body>\n<h1>Backtest: " +
      r.institution + "</h1>\n";
  bool in_table = false;
  std::istringstream lines(BookBacktestMarkdown(r));
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("|", 0) == 0) {
      if (line.rfind("|---", 0) == 0) continue;
      if (!in_table) html += "<table>\n", in_table = true;
      html += "<tr>";
      size_t start = 1;
      while (true) {
        const size_t end = line.find('|', start);
        if (end == std::string::npos) break;
        html += "<td>" + line.substr(start, end - start) + "</td>";
        start = end + 1;
      }
      html += "</tr>\n";
    } else {
      if (in_table) html += "</table>\n", in_table = false;
      if (!line.empty()) html += "<p>" + line + "</p>\n";
    }
  }
  if (in_table) html += "</table>\n";
  html += html_charts + "</body></html>\n";
  WriteFileAtomically((fs::path(dir) / "report.html").string(),
                      [&](std::ostream& o) { o << html; });
}

std::string FitMarkdown(const std::vector<ProductFit>& fits) {
  std::string md =
      "| product | transition | multiplier | std. error | trials | events |\n"
      "|---|---|---|---|---|---|\n";
  for (const auto& f : fits) {
    auto row = [&](const char* name, const FittedMultiplier& m) {
      md += fmt::format("| {} | {} | {:.3f} | {} | {} | {} |\n", kProductNames[f.product], name,
                        m.value, std::isnan(m.se) ? "-" : fmt::format("{:.3f}", m.se), m.trials,
                        m.events);
    };
    row("entry into 30 dpd", f.entry);
    row("roll 30->60->90", f.roll);
    row("cure", f.cure);
    row("prepayment", f.prepay);
  }
  return md;
}

}  // namespace loantwin::cli
