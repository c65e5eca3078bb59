#include "report/render_util.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>

#include "report/stress_report.h"

namespace loantwin {

std::string FormatValue(double v, const std::string& unit) {
  if (!std::isfinite(v)) return "n/a";
  if (unit == "currency") return fmt::format("{:.2f} M", v / 1e6);
  if (unit == "fraction") return fmt::format("{:.2f}%", v * 100);
  if (unit == "month") return fmt::format("{:.0f}", v);
  if (unit == "count") return fmt::format("{:.0f}", v);
  return fmt::format("{:.4g}", v);
}

std::string FormatDifference(double v, const std::string& unit) {
  if (!std::isfinite(v)) return "n/a";
  if (unit == "currency") return fmt::format("{:+.2f} M", v / 1e6);
  if (unit == "fraction") return fmt::format("{:+.2f} pp", v * 100);
  if (unit == "month") return fmt::format("{:+.1f}", v);
  return fmt::format("{:+.4g}", v);
}

std::string HtmlEscape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string Base64(const std::string& in) {
  static const char* table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += table[v >> 18], out += table[(v >> 12) & 63], out += table[(v >> 6) & 63],
        out += table[v & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint8_t(in[i]) << 16;
    out += table[v >> 18], out += table[(v >> 12) & 63], out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += table[v >> 18], out += table[(v >> 12) & 63], out += table[(v >> 6) & 63], out += '=';
  }
  return out;
}

std::string SafeFileName(const std::string& name) {
  std::string out;
  for (char c : name)
    out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '_';
  return out.empty() ? "_" : out;
}

std::string PolicyColor(size_t i) {
  // Okabe-Ito, then darker variants.
  static const std::array<const char*, 10> palette = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                                      "#E69F00", "#56B4E9", "#000000", "#F0E442",
                                                      "#7F3C8D", "#11A579"};
  return palette[i % palette.size()];
}

std::string ChartPreamble(int width, int height) {
  return fmt::format(
      "set terminal svg size {},{} font \"Helvetica,12\" noenhanced background rgb \"white\"\n"
      "set output \"chart.svg\"\n"
      "set grid lc rgb \"#dddddd\"\n"
      "set key top left box opaque font \",10\"\n"
      "set border lc rgb \"#444444\"\n",
      width, height);
}

std::string ReportCss() {
  return R"(body { font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1450px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
.meta { color: #444; } .warn { color: #b2182b; font-weight: bold; }
.sig-good { background: #d9f0d3; font-weight: bold; } .sig-neutral { font-weight: bold; } .sig-bad { background: #f4cccc; font-weight: bold; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.4em; vertical-align: middle; }
figure.chart { margin: 1em 0; } figure.chart img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; } nav a { margin-right: 0.8em; }
dl dt { font-weight: bold; margin-top: 0.5em; } dl dd { margin-left: 1.5em; }
)";
}

namespace {

/// A row of the per-scenario table: label and, per policy, the cell text.
struct Row {
  std::string label;
  std::function<std::string(const PolicyScenarioResult&)> cell;
};

std::vector<Row> ScenarioRows() {
  std::vector<Row> rows;
  for (const auto& m : StressMetrics()) {
    const std::string key = m.key, unit = m.unit;
    rows.push_back({std::string(m.label) + ": mean / median [5%, 95%]",
                    [key, unit](const PolicyScenarioResult& r) {
                      const Distribution& d = r.metrics.at(key);
                      return fmt::format("{} / {} [{}, {}]", FormatValue(d.mean, unit),
                                         FormatValue(d.median, unit), FormatValue(d.p05, unit),
                                         FormatValue(d.p95, unit));
                    }});
  }
  rows.push_back({"99% VaR of cumulative P&L (loss)",
                  [](const PolicyScenarioResult& r) { return FormatValue(r.var_99, "currency"); }});
  rows.push_back({"97.5% expected shortfall (loss)",
                  [](const PolicyScenarioResult& r) { return FormatValue(r.es_975, "currency"); }});
  rows.push_back({"paths undercapitalised or worse", [](const PolicyScenarioResult& r) {
                    return fmt::format("{} of {}", r.paths_undercapitalised, r.paths);
                  }});
  rows.push_back({"paths below well capitalised", [](const PolicyScenarioResult& r) {
                    return fmt::format("{} of {}", r.paths_below_well_capitalised, r.paths);
                  }});
  rows.push_back({"paths failed (capital ratio below floor or equity <= 0)",
                  [](const PolicyScenarioResult& r) {
                    return fmt::format("{} of {}", r.paths_failed, r.paths);
                  }});
  rows.push_back(
      {"paths short of liquidity (emergency borrowing)", [](const PolicyScenarioResult& r) {
         return fmt::format("{} of {}", r.paths_liquidity_shortfall, r.paths);
       }});
  rows.push_back({"paths breaching an accounting invariant", [](const PolicyScenarioResult& r) {
                    return fmt::format("{} of {}", r.paths_with_invariant_breaches, r.paths);
                  }});
  return rows;
}

std::vector<std::string> RoleNames(const ScenarioReport& s) {
  std::vector<std::string> roles;
  if (!s.results.empty())
    for (const auto& [role, d] : s.results[0].role_returns) roles.push_back(role);
  return roles;
}

/// Difference rows: key, label, unit, higher_is_better.
struct DiffRow {
  std::string key, label, unit;
  bool higher_is_better;
};
std::vector<DiffRow> DiffRows(const ScenarioReport& s) {
  std::vector<DiffRow> rows;
  // Breaches first: a policy that earns more by breaching must read as worse at the top.
  for (const auto& [flag, label] : BreachFlags())
    rows.push_back({"paths/" + flag, label + " (share)", "fraction", false});
  for (const auto& m : StressMetrics())
    rows.push_back({m.key, std::string(m.label) + " (mean)", m.unit, m.higher_is_better});
  rows.push_back({"var_99", "99% VaR (loss)", "currency", false});
  rows.push_back({"es_975", "97.5% expected shortfall (loss)", "currency", false});
  for (const auto& role : RoleNames(s))
    rows.push_back({"role_return/" + role, role + " return", "", true});
  return rows;
}

std::string DiffText(const PairedDifference& d, const std::string& unit) {
  return fmt::format("{} [{}, {}]", FormatDifference(d.mean, unit), FormatDifference(d.low, unit),
                     FormatDifference(d.high, unit));
}

/// "good" / "bad" when the interval excludes zero, else "". Metrics without a better direction
/// (the timing of the capital trough) are "neutral".
std::string Significance(const PairedDifference& d, bool higher_is_better,
                         const std::string& key = "") {
  if (key == "capital_trough_month") return d.low > 0 || d.high < 0 ? "neutral" : "";
  if (d.low > 0) return higher_is_better ? "good" : "bad";
  if (d.high < 0) return higher_is_better ? "bad" : "good";
  return "";
}

struct Headline {
  std::string label, unit;
  bool higher_is_better;
  std::function<double(const PolicyScenarioResult&)> value;
};
std::vector<Headline> Headlines() {
  return {
      {"mean cumulative net income", "currency", true,
       [](const PolicyScenarioResult& r) { return r.metrics.at("cumulative_net_income").mean; }},
      {"mean ROE", "fraction", true,
       [](const PolicyScenarioResult& r) { return r.metrics.at("roe").mean; }},
      {"97.5% ES (loss)", "currency", false,
       [](const PolicyScenarioResult& r) { return r.es_975; }},
      {"minimum capital ratio, 5% worst", "fraction", true,
       [](const PolicyScenarioResult& r) { return r.metrics.at("min_capital_ratio").p05; }},
      {"paths below well capitalised", "count", false,
       [](const PolicyScenarioResult& r) { return double(r.paths_below_well_capitalised); }},
  };
}

/// Diverging red-yellow-green for t in [0, 1] (1 = best).
std::string HeatColor(double t) {
  const std::array<std::array<double, 3>, 3> stops = {
      {{{215, 48, 39}}, {{255, 255, 191}}, {{26, 152, 80}}}};
  t = std::clamp(t, 0.0, 1.0);
  const int k = t < 0.5 ? 0 : 1;
  const double u = t < 0.5 ? t * 2 : (t - 0.5) * 2;
  std::array<int, 3> c{};
  for (int i = 0; i < 3; ++i)
    c[i] = static_cast<int>(std::lround(stops[k][i] + u * (stops[k + 1][i] - stops[k][i])));
  // Soften towards white so text stays readable.
  for (int& x : c) x = (x + 2 * 255) / 3;
  return fmt::format("#{:02x}{:02x}{:02x}", c[0], c[1], c[2]);
}

}  // namespace

namespace {

/// One verdict row's cells after scenario and policy: verdict, the four breach counts, mean
/// cumulative net income, and what is significantly worse than the first policy.
std::vector<std::string> VerdictCells(const PolicyScenarioResult& r, bool first) {
  const Verdict v = JudgeResult(r);
  auto count = [&](int n) { return fmt::format("{} of {}", n, r.paths); };
  std::string worse;
  for (const auto& flag : v.worse) worse += (worse.empty() ? "" : ", ") + flag;
  if (first) worse = "(reference)";
  std::string own;
  for (const ConstraintOutcome& c : r.constraints)
    own += fmt::format("{}{} {:.4g} / {:.4g}{}", own.empty() ? "" : "; ", c.name, c.mean_cost,
                       c.limit, c.pass() ? "" : " over");
  return {v.pass ? "PASS" : "FAIL",
          count(r.paths_undercapitalised),
          count(r.paths_failed),
          count(r.paths_liquidity_shortfall),
          count(r.paths_below_well_capitalised),
          FormatValue(r.metrics.at("cumulative_net_income").mean, "currency"),
          worse.empty() ? "-" : worse,
          own.empty() ? "-" : own};
}

const std::vector<std::string>& VerdictHeaders() {
  static const std::vector<std::string> h = {"verdict",
                                             "below the minimum",
                                             "failed",
                                             "short of liquidity",
                                             "below min + buffer",
                                             "mean cumulative net income",
                                             "significantly worse than the first",
                                             "own constraints: mean cost / limit"};
  return h;
}

const char* kVerdictNote =
    "A policy fails a scenario when any path falls below the capital regime's minimum "
    "(undercapitalised or worse), fails, or runs short of liquidity (emergency borrowing). "
    "\"Significantly worse\": the paired difference in the share of paths with that breach is "
    "above zero at 95% (same paths as the first policy). A policy trained under constraints "
    "also fails where a constraint's mean cost over the report's horizon exceeds its limit (the "
    "limit was set per training episode: over a longer horizon the test is stricter). Income "
    "comes after the breaches.";

}  // namespace

std::string VerdictMarkdown(const StressReport& r) {
  std::string md = "| scenario | policy |";
  for (const auto& h : VerdictHeaders()) md += " " + h + " |";
  md += "\n|---|---|";
  for (size_t i = 0; i < VerdictHeaders().size(); ++i) md += i == 0 ? "---|" : "---:|";
  md += "\n";
  for (const auto& sc : r.scenarios)
    for (size_t i = 0; i < sc.results.size(); ++i) {
      const auto cells = VerdictCells(sc.results[i], i == 0);
      md += fmt::format("| {} | {} |", sc.name, sc.results[i].policy);
      for (size_t c = 0; c < cells.size(); ++c)
        md += " " + (c == 0 ? "**" + cells[c] + "**" : cells[c]) + " |";
      md += "\n";
    }
  return md + "\n" + kVerdictNote + "\n";
}

std::string VerdictHtml(const StressReport& r) {
  std::string t = "<table><tr><th>scenario</th><th>policy</th>";
  for (const auto& h : VerdictHeaders()) t += "<th>" + HtmlEscape(h) + "</th>";
  t += "</tr>\n";
  for (const auto& sc : r.scenarios)
    for (size_t i = 0; i < sc.results.size(); ++i) {
      const auto cells = VerdictCells(sc.results[i], i == 0);
      t += fmt::format("<tr><td>{}</td><td>{}</td>", HtmlEscape(sc.name),
                       HtmlEscape(sc.results[i].policy));
      for (size_t c = 0; c < cells.size(); ++c) {
        std::string cls;
        if (c == 0) cls = cells[0] == "PASS" ? "sig-good" : "sig-bad";
        if (c == cells.size() - 2 && i > 0 && cells[c] != "-") cls = "sig-bad";
        if (c == cells.size() - 1 && cells[c].find(" over") != std::string::npos) cls = "sig-bad";
        t += fmt::format("<td{}>{}</td>", cls.empty() ? "" : " class=\"" + cls + "\"",
                         HtmlEscape(cells[c]));
      }
      t += "</tr>\n";
    }
  return t + "</table>\n<p class=\"meta\">" + HtmlEscape(kVerdictNote) + "</p>\n";
}

namespace {
bool AnyGuardrails(const StressReport& r) {
  for (const auto& sc : r.scenarios)
    for (const auto& res : sc.results)
      if (!res.guardrail_fired_rate.empty()) return true;
  return false;
}
}  // namespace

std::string GuardrailMarkdown(const StressReport& r) {
  if (!AnyGuardrails(r)) return "";
  std::string md = "| scenario | policy | guardrail | decisions restricted |\n|---|---|---|---:|\n";
  for (const auto& sc : r.scenarios)
    for (const auto& res : sc.results)
      for (const auto& [name, rate] : res.guardrail_fired_rate)
        md += fmt::format("| {} | {} | {} | {:.1f}% |\n", sc.name, res.policy, name, 100 * rate);
  return md;
}

std::string GuardrailHtml(const StressReport& r) {
  if (!AnyGuardrails(r)) return "";
  std::string t =
      "<table><tr><th>scenario</th><th>policy</th><th>guardrail</th><th>decisions "
      "restricted</th></tr>\n";
  for (const auto& sc : r.scenarios)
    for (const auto& res : sc.results)
      for (const auto& [name, rate] : res.guardrail_fired_rate)
        t += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1f}%</td></tr>\n",
                         HtmlEscape(sc.name), HtmlEscape(res.policy), HtmlEscape(name), 100 * rate);
  return t + "</table>\n";
}

namespace {

/// The nine-quarter view's cells: 9-quarter minimum capital (mean, 5% worst), 9-quarter loss
/// rate (mean, 95% worst) and the whole horizon's minimum capital (mean, 5% worst).
std::vector<std::string> NineQuarterCells(const PolicyScenarioResult& r) {
  const Distribution& c9 = r.metrics.at("min_capital_ratio_9q");
  const Distribution& l9 = r.metrics.at("cumulative_loss_rate_9q");
  const Distribution& c = r.metrics.at("min_capital_ratio");
  return {FormatValue(c9.mean, "fraction"), FormatValue(c9.p05, "fraction"),
          FormatValue(l9.mean, "fraction"), FormatValue(l9.p95, "fraction"),
          FormatValue(c.mean, "fraction"),  FormatValue(c.p05, "fraction")};
}

const std::vector<std::string>& NineQuarterHeaders() {
  static const std::vector<std::string> h = {"min capital, Q1-9: mean",          "5% worst",
                                             "cumulative loss rate, Q1-9: mean", "95% worst",
                                             "min capital, whole horizon: mean", "5% worst"};
  return h;
}

}  // namespace

std::string NineQuarterMarkdown(const StressReport& r) {
  std::string md = "| scenario | policy |";
  for (const auto& h : NineQuarterHeaders()) md += " " + h + " |";
  md += "\n|---|---|";
  for (size_t i = 0; i < NineQuarterHeaders().size(); ++i) md += "---:|";
  md += "\n";
  for (const auto& sc : r.scenarios)
    for (const auto& res : sc.results) {
      md += fmt::format("| {} | {} |", sc.name, res.policy);
      for (const auto& cell : NineQuarterCells(res)) md += " " + cell + " |";
      md += "\n";
    }
  return md;
}

std::string NineQuarterHtml(const StressReport& r) {
  std::string t = "<table><tr><th>scenario</th><th>policy</th>";
  for (const auto& h : NineQuarterHeaders()) t += "<th>" + HtmlEscape(h) + "</th>";
  t += "</tr>\n";
  for (const auto& sc : r.scenarios)
    for (const auto& res : sc.results) {
      t += fmt::format("<tr><td>{}</td><td>{}</td>", HtmlEscape(sc.name), HtmlEscape(res.policy));
      for (const auto& cell : NineQuarterCells(res)) t += "<td>" + cell + "</td>";
      t += "</tr>\n";
    }
  return t + "</table>\n";
}

std::string HeadlineMarkdown(const StressReport& r) {
  std::string md = "| scenario | policy |";
  for (const auto& h : Headlines()) md += " " + h.label + " |";
  md += "\n|---|---|";
  for (size_t i = 0; i < Headlines().size(); ++i) md += "---:|";
  md += "\n";
  for (const auto& sc : r.scenarios)
    for (const auto& res : sc.results) {
      md += fmt::format("| {} | {} |", sc.name, res.policy);
      for (const auto& h : Headlines()) md += " " + FormatValue(h.value(res), h.unit) + " |";
      md += "\n";
    }
  return md;
}

std::string ScenarioTableMarkdown(const ScenarioReport& s) {
  std::string md = "| metric |";
  for (const auto& r : s.results) md += " " + r.policy + " |";
  md += "\n|---|";
  for (size_t i = 0; i < s.results.size(); ++i) md += "---:|";
  md += "\n";
  for (const auto& row : ScenarioRows()) {
    md += "| " + row.label + " |";
    for (const auto& r : s.results) md += " " + row.cell(r) + " |";
    md += "\n";
  }
  for (const auto& role : RoleNames(s)) {
    md += "| " + role + " return: mean [5%, 95%] |";
    for (const auto& r : s.results) {
      const Distribution& d = r.role_returns.at(role);
      md += fmt::format(" {:.3f} [{:.3f}, {:.3f}] |", d.mean, d.p05, d.p95);
    }
    md += "\n";
  }
  return md;
}

std::string DifferenceTableMarkdown(const ScenarioReport& s) {
  std::string md = "| metric |";
  for (size_t i = 1; i < s.results.size(); ++i) md += " " + s.results[i].policy + " |";
  md += "\n|---|";
  for (size_t i = 1; i < s.results.size(); ++i) md += "---:|";
  md += "\n";
  for (const auto& row : DiffRows(s)) {
    md += "| " + row.label + " |";
    for (size_t i = 1; i < s.results.size(); ++i) {
      const auto it = s.results[i].vs_first.find(row.key);
      if (it == s.results[i].vs_first.end()) {
        md += " n/a |";
        continue;
      }
      const std::string sig = Significance(it->second, row.higher_is_better, row.key);
      const std::string text = DiffText(it->second, row.unit);
      md += " " + (sig.empty() ? text : "**" + text + "**") + " |";
    }
    md += "\n";
  }
  md +=
      "\nBold: the 95% interval excludes zero. Means: paired t interval over paths; VaR and "
      "ES: paired bootstrap (1,000 resamples).\n";
  return md;
}

std::string HeadlineHeatmapHtml(const StressReport& r) {
  const auto heads = Headlines();
  // Range of each headline over every cell.
  std::vector<std::pair<double, double>> range(heads.size(), {1e300, -1e300});
  for (const auto& sc : r.scenarios)
    for (const auto& res : sc.results)
      for (size_t h = 0; h < heads.size(); ++h) {
        const double v = heads[h].value(res);
        if (!std::isfinite(v)) continue;
        range[h].first = std::min(range[h].first, v);
        range[h].second = std::max(range[h].second, v);
      }
  std::string t = "<table class=\"heatmap\"><tr><th rowspan=\"2\">scenario</th>";
  for (const auto& h : heads)
    t += fmt::format("<th colspan=\"{}\">{}</th>", r.policies.size(), HtmlEscape(h.label));
  t += "</tr><tr>";
  for (size_t h = 0; h < heads.size(); ++h)
    for (const auto& p : r.policies) t += "<th>" + HtmlEscape(p.name) + "</th>";
  t += "</tr>\n";
  for (const auto& sc : r.scenarios) {
    t += fmt::format("<tr><td><a href=\"#s-{}\">{}</a></td>", SafeFileName(sc.name),
                     HtmlEscape(sc.name));
    for (size_t h = 0; h < heads.size(); ++h)
      for (const auto& res : sc.results) {
        const double v = heads[h].value(res);
        const double span = range[h].second - range[h].first;
        double good = span > 0 ? (v - range[h].first) / span : 0.5;
        if (!heads[h].higher_is_better) good = 1 - good;
        t += fmt::format("<td style=\"background:{}\">{}</td>", HeatColor(good),
                         FormatValue(v, heads[h].unit));
      }
    t += "</tr>\n";
  }
  t += "</table>\n<p class=\"meta\">Colour per column group across all scenarios: green = best, "
       "red = worst.</p>\n";
  return t;
}

std::string ScenarioTableHtml(const ScenarioReport& s) {
  std::string t = "<table><tr><th>metric</th>";
  for (size_t i = 0; i < s.results.size(); ++i)
    t += fmt::format("<th><span class=\"swatch\" style=\"background:{}\"></span>{}</th>",
                     PolicyColor(i), HtmlEscape(s.results[i].policy));
  t += "</tr>\n";
  for (const auto& row : ScenarioRows()) {
    t += "<tr><td>" + HtmlEscape(row.label) + "</td>";
    for (const auto& r : s.results) t += "<td>" + HtmlEscape(row.cell(r)) + "</td>";
    t += "</tr>\n";
  }
  for (const auto& role : RoleNames(s)) {
    t += "<tr><td>" + HtmlEscape(role) + " return: mean [5%, 95%]</td>";
    for (const auto& r : s.results) {
      const Distribution& d = r.role_returns.at(role);
      t += fmt::format("<td>{:.3f} [{:.3f}, {:.3f}]</td>", d.mean, d.p05, d.p95);
    }
    t += "</tr>\n";
  }
  return t + "</table>\n";
}

std::string DifferenceTableHtml(const ScenarioReport& s) {
  std::string t = "<table><tr><th>metric</th>";
  for (size_t i = 1; i < s.results.size(); ++i)
    t += "<th>" + HtmlEscape(s.results[i].policy) + "</th>";
  t += "</tr>\n";
  for (const auto& row : DiffRows(s)) {
    t += "<tr><td>" + HtmlEscape(row.label) + "</td>";
    for (size_t i = 1; i < s.results.size(); ++i) {
      const auto it = s.results[i].vs_first.find(row.key);
      if (it == s.results[i].vs_first.end()) {
        t += "<td>n/a</td>";
        continue;
      }
      const std::string sig = Significance(it->second, row.higher_is_better, row.key);
      t += fmt::format("<td{}>{}</td>", sig.empty() ? "" : " class=\"sig-" + sig + "\"",
                       HtmlEscape(DiffText(it->second, row.unit)));
    }
    t += "</tr>\n";
  }
  return t +
         "</table>\n<p class=\"meta\">Shaded: the 95% interval excludes zero (green = "
         "better, red = worse). Means: paired t interval; VaR and ES: paired bootstrap "
         "(1,000 resamples).</p>\n";
}

std::string MetricDefinitionsHtml() {
  std::string h = "<h2>Definitions</h2>\n<dl>\n";
  for (const auto& m : StressMetrics())
    h += fmt::format("<dt>{}</dt><dd>{}</dd>\n", HtmlEscape(m.label), HtmlEscape(m.definition));
  h += fmt::format(
      "<dt>VaR and expected shortfall</dt><dd>Of the cumulative P&amp;L (net income over the "
      "horizon) across paths, as losses (positive = money lost, negative = even the tail paths "
      "are profitable). With n paths and level a the tail holds the k = ceil((1 - a) n) worst "
      "paths; VaR is the smallest loss in the tail, ES the mean loss over it. Levels: VaR "
      "{:.0f}%, ES {:.1f}%.</dd>\n",
      kVarLevel * 100, kEsLevel * 100);
  h += "<dt>Breaches</dt><dd>Paths that were undercapitalised or worse, or not well "
       "capitalised, in at least one month, by the prompt corrective action categories of the "
       "institution's regime (ncua: net worth ratio 7% well, 6% adequately capitalised, and the "
       "risk-based capital ratio of complex credit unions; basel: US PCA with all capital CET1, "
       "10% well, 8% adequately, and the leverage tests); failed: below the environment's "
       "capital floor or equity at or below zero; accounting invariants are checked every month "
       "of every path (must be zero).</dd>\n";
  return h + "</dl>\n";
}

}  // namespace loantwin
