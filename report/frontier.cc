#include "report/frontier.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/atomic_file.h"
#include "report/gnuplot.h"
#include "report/render_util.h"

namespace fs = std::filesystem;

namespace loantwin {

std::vector<bool> ParetoEfficient(const std::vector<std::pair<double, double>>& pts) {
  std::vector<bool> out(pts.size(), true);
  for (size_t i = 0; i < pts.size(); ++i)
    for (size_t j = 0; j < pts.size() && out[i]; ++j) {
      if (i == j) continue;
      const bool no_worse = pts[j].first >= pts[i].first && pts[j].second <= pts[i].second;
      const bool better = pts[j].first > pts[i].first || pts[j].second < pts[i].second;
      if (no_worse && better) out[i] = false;
    }
  return out;
}

const std::vector<std::string>& FrontierRiskMetrics() {
  static const std::vector<std::string> metrics = [] {
    std::vector<std::string> m = {"es_975"};
    for (const auto& [key, label] : BreachFlags()) m.push_back(key);
    return m;
  }();
  return metrics;
}

namespace {

bool IsProbability(const std::string& risk_metric) {
  return risk_metric != "es_975";
}

}  // namespace

std::string FrontierRiskUnit(const std::string& risk_metric) {
  return IsProbability(risk_metric) ? "fraction" : "currency";
}

std::string FrontierRiskLabel(const std::string& risk_metric) {
  if (!IsProbability(risk_metric)) return "97.5% expected shortfall of cumulative P&L (a loss)";
  for (const auto& [key, label] : BreachFlags())
    if (key == risk_metric) return "share of " + label;
  return risk_metric;
}

namespace {

std::string RiskShort(const std::string& risk_metric) {
  return IsProbability(risk_metric) ? "P(" + risk_metric + ")" : "ES 97.5%";
}

}  // namespace

FrontierReport BuildFrontier(StressReport stress, const std::string& return_metric,
                             const std::string& risk_metric) {
  if (stress.scenarios.size() != 1)
    throw std::invalid_argument("a frontier is drawn for exactly one scenario");
  if (return_metric != "cumulative_net_income" && return_metric != "roe")
    throw std::invalid_argument("--return must be cumulative_net_income or roe, not '" +
                                return_metric + "'");
  const auto& risks = FrontierRiskMetrics();
  if (std::find(risks.begin(), risks.end(), risk_metric) == risks.end())
    throw std::invalid_argument("--risk must be one of " +
                                fmt::format("{}", fmt::join(risks, ", ")) + ", not '" +
                                risk_metric + "'");
  FrontierReport f;
  f.return_metric = return_metric;
  f.risk_metric = risk_metric;
  const ScenarioReport& sc = stress.scenarios[0];
  std::vector<std::pair<double, double>> pts;
  for (size_t i = 0; i < sc.results.size(); ++i) {
    FrontierPoint p;
    p.policy = sc.results[i].policy;
    p.kind = stress.policies.at(i).kind;
    p.return_value = sc.results[i].metrics.at(return_metric).mean;
    if (IsProbability(risk_metric)) {
      const auto& flags = sc.results[i].path_flags.at(risk_metric);
      double sum = 0;
      for (double x : flags) sum += x;
      p.risk = flags.empty() ? 0.0 : sum / static_cast<double>(flags.size());
    } else {
      p.risk = sc.results[i].es_975;
    }
    pts.emplace_back(p.return_value, p.risk);
    f.points.push_back(p);
  }
  const auto eff = ParetoEfficient(pts);
  for (size_t i = 0; i < eff.size(); ++i) f.points[i].efficient = eff[i];
  f.stress = std::move(stress);
  return f;
}

namespace {

std::string ReturnUnit(const std::string& metric) {
  return metric == "roe" ? "fraction" : "currency";
}

std::string FrontierChart(const FrontierReport& f) {
  const bool roe = f.return_metric == "roe";
  const double yscale = roe ? 100.0 : 1e-6;
  const double xscale = IsProbability(f.risk_metric) ? 100.0 : 1e-6;
  std::string eff, other, base, labels;
  std::vector<const FrontierPoint*> efficient;
  for (const auto& p : f.points) {
    const std::string row =
        fmt::format("{:.8g} {:.8g}\n", p.risk * xscale, p.return_value * yscale);
    if (p.kind == "baseline") base += row;
    if (p.efficient) efficient.push_back(&p);
    (p.efficient ? eff : other) += row;
    labels += fmt::format("{:.8g} {:.8g} {}\n", p.risk * xscale, p.return_value * yscale,
                          GnuplotQuote(p.policy));
  }
  std::sort(efficient.begin(), efficient.end(),
            [](const FrontierPoint* a, const FrontierPoint* b) { return a->risk < b->risk; });
  std::string line;
  for (const auto* p : efficient)
    line += fmt::format("{:.8g} {:.8g}\n", p->risk * xscale, p->return_value * yscale);
  std::vector<std::pair<std::string, std::string>> files = {
      {"efficient.dat", eff}, {"line.dat", line}, {"labels.dat", labels}};
  if (!other.empty()) files.emplace_back("other.dat", other);
  if (!base.empty()) files.emplace_back("baseline.dat", base);
  const ScenarioReport& sc = f.stress.scenarios[0];
  std::string script = ChartPreamble(1000, 650);
  script += fmt::format(
      "set title {}\nset xlabel {}\nset ylabel {}\nset key below horizontal box spacing 1.6 "
      "samplen 2\nset bmargin "
      "7\nset offsets graph 0.1, "
      "graph 0.15, graph 0.1, graph 0.1\n",
      GnuplotQuote(fmt::format("Efficient frontier under {} ({} paths x {} months, {})", sc.name,
                               f.stress.settings.paths, f.stress.settings.months,
                               f.stress.settings.institution)),
      GnuplotQuote(IsProbability(f.risk_metric)
                       ? "risk: " + FrontierRiskLabel(f.risk_metric) + " (%)"
                       : std::string("risk: 97.5% expected shortfall of cumulative P&L (loss, "
                                     "millions)")),
      GnuplotQuote(roe ? "return: mean ROE (% annualised)"
                       : "return: mean cumulative net income (millions)"));
  // Baselines underneath, efficient points on top (a baseline can be efficient too).
  std::string plot =
      "plot \"line.dat\" using 1:2 with lines lw 2 lc rgb \"#0072B2\" title "
      "\"efficient frontier\"";
  if (!base.empty())
    plot +=
        ", \"baseline.dat\" using 1:2 with points pt 13 ps 2.4 lc rgb \"#D55E00\" title "
        "\"rule-based baseline\"";
  if (!other.empty())
    plot +=
        ", \"other.dat\" using 1:2 with points pt 6 ps 1.6 lc rgb \"#666666\" title "
        "\"dominated\"";
  plot +=
      ", \"efficient.dat\" using 1:2 with points pt 7 ps 1.6 lc rgb \"#0072B2\" title "
      "\"Pareto-efficient\"";
  plot += ", \"labels.dat\" using 1:2:3 with labels offset 1.2,0.8 left font \",10\" notitle\n";
  script += plot;
  return RunGnuplot(script, files, "chart.svg");
}

}  // namespace

std::vector<std::string> WriteFrontier(const FrontierReport& f, const std::string& dir,
                                       bool charts) {
  std::vector<std::string> written = WriteStressReport(f.stress, dir, charts);
  const std::string unit = ReturnUnit(f.return_metric);
  const ScenarioReport& sc = f.stress.scenarios[0];
  nlohmann::json j;
  j["schema"] = "loantwin.frontier";
  j["schema_version"] = 1;
  j["scenario"] = sc.name;
  j["return_metric"] = f.return_metric;
  j["risk_metric"] = f.risk_metric;
  j["settings"] = {{"institution", f.stress.settings.institution},
                   {"paths", f.stress.settings.paths},
                   {"months", f.stress.settings.months},
                   {"seed", f.stress.settings.seed}};
  j["points"] = nlohmann::json::array();
  for (const auto& p : f.points)
    j["points"].push_back({{"policy", p.policy},
                           {"kind", p.kind},
                           {"return", p.return_value},
                           {"risk", p.risk},
                           {"efficient", p.efficient}});
  std::string svg;
  if (charts) svg = FrontierChart(f);
  const std::string risk_unit = FrontierRiskUnit(f.risk_metric);
  std::string md = fmt::format(
      "# Efficient frontier: `{}`\n\n{} paths x {} months, institution {}, seed {}. Return: mean "
      "{}; risk: {}. Efficient: no other "
      "policy has at least the return and at most the risk.\n\n",
      sc.name, f.stress.settings.paths, f.stress.settings.months, f.stress.settings.institution,
      f.stress.settings.seed, f.return_metric, FrontierRiskLabel(f.risk_metric));
  md +=
      fmt::format("| policy | kind | return | risk ({}) | efficient |\n|---|---|---:|---:|:---:|\n",
                  RiskShort(f.risk_metric));
  for (const auto& p : f.points)
    md += fmt::format("| {} | {} | {} | {} | {} |\n", p.policy, p.kind,
                      FormatValue(p.return_value, unit), FormatValue(p.risk, risk_unit),
                      p.efficient ? "yes" : "no");
  if (charts) md += "\n![efficient frontier](frontier.svg)\n";
  md += "\nFull stress report of the same runs: report.md / report.html.\n";
  std::string html =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>loantwin "
      "efficient frontier</title>\n<style>\n" +
      ReportCss() + "</style>\n</head>\n<body>\n";
  html += fmt::format("<h1>Efficient frontier: {}</h1>\n<p class=\"meta\">{}</p>\n",
                      HtmlEscape(sc.name),
                      HtmlEscape(fmt::format("{} paths x {} months, institution {}, seed {}. "
                                             "Return: mean {}; risk: {}.",
                                             f.stress.settings.paths, f.stress.settings.months,
                                             f.stress.settings.institution, f.stress.settings.seed,
                                             f.return_metric, FrontierRiskLabel(f.risk_metric))));
  if (charts)
    html +=
        "<figure class=\"chart\" id=\"chart-frontier\"><img alt=\"efficient frontier\" "
        "src=\"data:image/svg+xml;base64," +
        Base64(svg) + "\"><figcaption>Efficient frontier</figcaption></figure>\n";
  html += fmt::format(
      "<table><tr><th>policy</th><th>kind</th><th>return</th><th>risk ({})</th>"
      "<th>efficient</th></tr>\n",
      HtmlEscape(RiskShort(f.risk_metric)));
  for (const auto& p : f.points)
    html += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                        HtmlEscape(p.policy), p.kind, FormatValue(p.return_value, unit),
                        FormatValue(p.risk, risk_unit), p.efficient ? "yes" : "no");
  html +=
      "</table>\n<p>Full stress report: report.html in the same directory.</p>\n</body>\n</html>\n";
  auto write = [&](const std::string& name, const std::string& text) {
    const std::string path = (fs::path(dir) / name).string();
    WriteFileAtomically(path, [&](std::ostream& out) { out << text; });
    written.push_back(path);
  };
  if (charts) write("frontier.svg", svg);
  write("frontier.json", j.dump(1) + "\n");
  write("frontier.md", md);
  write("frontier.html", html);
  return written;
}

}  // namespace loantwin
