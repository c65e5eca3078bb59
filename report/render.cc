// report.md, report.html (self-contained: styles inline, charts as SVG data URIs) and the
// gnuplot charts of a stress report.

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/atomic_file.h"
#include "report/gnuplot.h"
#include "report/render_util.h"
#include "report/stress_report.h"

namespace fs = std::filesystem;

namespace loantwin {
namespace {

struct Chart {
  std::string id, title, file, svg;  ///< file: charts/<id>.svg
};

/// One panel of a multiplot: a band series, its title, y label (with units) and scale.
struct Panel {
  const char* series;
  const char* title;
  const char* ylabel;
  double scale;
};

std::string SeriesData(const Band& band, double scale) {
  std::string out;
  for (size_t m = 0; m < band.p50.size(); ++m)
    out += fmt::format("{} {:.8g} {:.8g} {:.8g}\n", m + 1, band.p05[m] * scale, band.p50[m] * scale,
                       band.p95[m] * scale);
  return out;
}

std::string FanChart(const StressReport& report, const ScenarioReport& sc) {
  const Panel panels[] = {
      {"capital_ratio", "Capital ratio", "capital ratio (%)", 100.0},
      {"charge_off_rate", "Net charge-off rate", "charge-off rate (% of loans, annualised)", 100.0},
      {"cumulative_net_income", "Cumulative net income", "cumulative net income (millions)", 1e-6},
  };
  std::vector<std::pair<std::string, std::string>> files;
  std::string script = ChartPreamble(1400, 520);
  script += fmt::format(
      "set key below horizontal box font \",10\"\nset bmargin 8\nset multiplot layout 1,3 title "
      "{}\n",
      GnuplotQuote(fmt::format("{} - {} paths x {} months, {}: median (line) and 5-95% band",
                               sc.name, report.settings.paths, report.settings.months,
                               report.settings.institution)));
  for (const Panel& panel : panels) {
    const bool capital = std::string(panel.series) == "capital_ratio";
    const CapitalRegime regime = report.settings.regime;
    const std::string ratio_name = CapitalRatioName(regime);
    script += fmt::format("set title {}\nset xlabel \"month\"\nset ylabel {}\n",
                          GnuplotQuote(capital ? fmt::format("Capital: {} ({})", ratio_name,
                                                             CapitalRegimeName(regime))
                                               : panel.title),
                          GnuplotQuote(capital ? ratio_name + " (%)" : panel.ylabel));
    std::string plot;
    for (size_t i = 0; i < sc.results.size(); ++i) {
      const std::string name = fmt::format("{}_{}.dat", panel.series, i);
      files.emplace_back(name, SeriesData(sc.results[i].bands.at(panel.series), panel.scale));
      const std::string color = PolicyColor(i);
      plot += fmt::format(
          "{}\"{}\" using 1:2:4 with filledcurves fc rgb \"{}\" fs transparent solid 0.15 "
          "noborder notitle, \"{}\" using 1:3 with lines lw 2 lc rgb \"{}\" title {}",
          plot.empty() ? "" : ", ", name, color, name, color, GnuplotQuote(sc.results[i].policy));
    }
    if (std::string(panel.series) == "capital_ratio")
      plot += fmt::format(
          ", {:.1f} with lines dt 2 lw 1.5 lc rgb \"#b2182b\" title \"well capitalised "
          "({:.1f}%)\", {:.1f} with lines dt 3 lw 1.5 lc rgb \"#67001f\" title \"adequately "
          "capitalised ({:.1f}%)\"",
          CapitalBuffer(report.settings.regime) * 100, CapitalBuffer(report.settings.regime) * 100,
          CapitalMinimum(report.settings.regime) * 100,
          CapitalMinimum(report.settings.regime) * 100);
    if (std::string(panel.series) == "cumulative_net_income")
      plot += ", 0 with lines dt 2 lc rgb \"#555555\" notitle";
    script += "plot " + plot + "\n";
  }
  script += "unset multiplot\n";
  return RunGnuplot(script, files, "chart.svg");
}

std::string MacroChart(const StressReport& report, const ScenarioReport& sc) {
  const Panel panels[] = {
      {"unemployment", "Unemployment rate", "unemployment (%)", 100.0},
      {"gdp_growth", "Real GDP growth", "GDP growth (% annualised)", 100.0},
      {"policy_rate", "Policy (3-month) rate", "rate (%)", 100.0},
      {"rate_10y", "10-year government yield", "yield (%)", 100.0},
      {"hpi", "House price index", "index (month 0 = 100)", 100.0},
      {"credit_spread", "BBB corporate spread", "spread (%)", 100.0},
  };
  std::vector<std::pair<std::string, std::string>> files;
  std::string script = ChartPreamble(1400, 720);
  script += fmt::format(
      "set multiplot layout 2,3 title {}\nunset key\n",
      GnuplotQuote(fmt::format("{} - macro paths: median (line) and 5-95% band over {} paths "
                               "(identical for every policy)",
                               sc.name, report.settings.paths)));
  for (const Panel& panel : panels) {
    const std::string name = std::string(panel.series) + ".dat";
    files.emplace_back(name, SeriesData(sc.macro.at(panel.series), panel.scale));
    script += fmt::format(
        "set title {}\nset xlabel \"month\"\nset ylabel {}\nplot \"{}\" using 1:2:4 with "
        "filledcurves fc rgb \"#4d4d4d\" fs transparent solid 0.2 noborder, \"{}\" using 1:3 "
        "with lines lw 2 lc rgb \"#1a1a1a\"\n",
        GnuplotQuote(panel.title), GnuplotQuote(panel.ylabel), name, name);
  }
  script += "unset multiplot\n";
  return RunGnuplot(script, files, "chart.svg");
}

std::vector<Chart> DrawCharts(const StressReport& report) {
  std::vector<Chart> charts;
  for (const auto& sc : report.scenarios) {
    const std::string base = SafeFileName(sc.name);
    charts.push_back({base + "-fan", "Fan charts: " + sc.name, "charts/" + base + "-fan.svg",
                      FanChart(report, sc)});
    charts.push_back({base + "-macro", "Macro paths: " + sc.name, "charts/" + base + "-macro.svg",
                      MacroChart(report, sc)});
  }
  return charts;
}

const Chart* FindChart(const std::vector<Chart>& charts, const std::string& id) {
  for (const auto& c : charts)
    if (c.id == id) return &c;
  return nullptr;
}

/// A policy's checkpoint and weights, short: "step_...pt (sha256 1a2b3c4d5e6f)".
std::string PolicyProvenance(const PolicyInfo& p) {
  std::string out = p.checkpoint.empty() ? "" : fs::path(p.checkpoint).filename().string();
  if (!p.checkpoint_sha256.empty())
    out += fmt::format(" (sha256 {})", p.checkpoint_sha256.substr(0, 12));
  for (const auto& [file, digest] : p.module_sha256)
    out += fmt::format("{}{} {}", out.empty() ? "" : "; ", file, digest.substr(0, 12));
  return out.empty() ? "-" : out;
}

std::string ProvenanceLine(const StressReport& r) {
  return fmt::format(
      "Generated {} by loantwin {} (source revision {}){}.", r.provenance.generated_at,
      r.provenance.loantwin_version, r.provenance.source_revision,
      r.provenance.ranks > 1 ? fmt::format(" on {} processes", r.provenance.ranks) : std::string());
}

// ---- Markdown ----

std::string Markdown(const StressReport& r, const std::vector<Chart>& charts) {
  std::string md;
  const StressSettings& s = r.settings;
  md += "# Stress-test report\n\n";
  md += fmt::format(
      "Institution **{}**; amounts in {} (M = millions); {} Monte Carlo paths x {} months per "
      "scenario and policy; seed {} (common random numbers: every policy sees the same paths). "
      "Schema {} v{}.\n\n",
      s.institution, s.currency, s.paths, s.months, s.seed, kStressReportSchema,
      kStressReportSchemaVersion);
  md += ProvenanceLine(r) + "\n\n";
  md += "## Verdict\n\n" + VerdictMarkdown(r) + "\n";
  if (const std::string g = GuardrailMarkdown(r); !g.empty())
    md +=
        "## Guardrails\n\nShare of the decisions of the roles each guardrail limits that it "
        "restricted (docs/training.md, \"Guardrails\").\n\n" +
        g + "\n";
  md +=
      "## Policies\n\n| policy | kind | source | roles | checkpoint and weights |\n"
      "|---|---|---|---|---|\n";
  for (const auto& p : r.policies) {
    std::string roles;
    for (const auto& [role, driver] : p.roles)
      roles += (roles.empty() ? "" : ", ") + role + ": " + driver;
    md += fmt::format("| {} | {} | `{}` | {} | {} |\n", p.name, p.kind, p.source, roles,
                      PolicyProvenance(p));
  }
  md += "\n## Headline metrics (mean over paths unless stated)\n\n";
  md += HeadlineMarkdown(r);
  md += "\n## DFAST-style nine-quarter view\n\n";
  md += NineQuarterMarkdown(r);
  for (const auto& sc : r.scenarios) {
    md += fmt::format("\n## Scenario `{}`\n\n{}\n\n", sc.name, sc.description);
    md += ScenarioTableMarkdown(sc);
    if (sc.results.size() > 1) {
      md +=
          fmt::format("\nDifferences versus `{}` (same paths), with 95% confidence intervals:\n\n",
                      sc.results[0].policy);
      md += DifferenceTableMarkdown(sc);
    }
    for (const char* kind : {"-fan", "-macro"})
      if (const Chart* c = FindChart(charts, SafeFileName(sc.name) + kind))
        md += fmt::format("\n![{}]({})\n", c->title, c->file);
  }
  if (const std::string f = FairnessMarkdown(r); !f.empty()) md += "\n" + f;
  md += fmt::format(
      "\n## Run\n\n{:.1f} s wall, {:.3g} loan-months ({:.3g} loan-months/s), {} instance-months.\n",
      r.wall_seconds, r.loan_months, r.wall_seconds > 0 ? r.loan_months / r.wall_seconds : 0.0,
      r.instance_months);
  md += "\nMetric definitions: docs/stress-testing.md.\n";
  return md;
}

// ---- HTML ----

std::string Html(const StressReport& r, const std::vector<Chart>& charts, bool charts_on) {
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  h += "<title>loantwin stress-test report</title>\n<style>\n" + ReportCss() + "</style>\n";
  h += "</head>\n<body>\n";
  const StressSettings& s = r.settings;
  h += "<h1>Stress-test report</h1>\n";
  h += fmt::format(
      "<p class=\"meta\">Institution <b>{}</b>; amounts in {} (M = millions); {} Monte Carlo "
      "paths &times; {} months per scenario and policy; seed {}. Every policy sees the same seeded "
      "paths (common random "
      "numbers), so differences between policies are not sampling noise. Schema {} v{}; {:.1f} "
      "s wall; {:.3g} loan-months/s.</p>\n",
      HtmlEscape(s.institution), HtmlEscape(s.currency), s.paths, s.months, s.seed,
      kStressReportSchema, kStressReportSchemaVersion, r.wall_seconds,
      r.wall_seconds > 0 ? r.loan_months / r.wall_seconds : 0.0);
  h += "<p class=\"meta\">" + HtmlEscape(ProvenanceLine(r)) + "</p>\n";
  h += "<h2>Verdict</h2>\n" + VerdictHtml(r);
  if (const std::string g = GuardrailHtml(r); !g.empty()) h += "<h2>Guardrails</h2>\n" + g;
  h += "<h2>Policies</h2>\n<table><tr><th>policy</th><th>kind</th><th>source</th><th>roles</th>"
       "<th>checkpoint and weights</th></tr>\n";
  for (const auto& p : r.policies) {
    std::string roles;
    for (const auto& [role, driver] : p.roles)
      roles += (roles.empty() ? "" : ", ") + role + ": " + driver;
    h += fmt::format(
        "<tr><td><span class=\"swatch\" "
        "style=\"background:{}\"></span>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td>"
        "<td><code>{}</code></td></tr>\n",
        PolicyColor(&p - r.policies.data()), HtmlEscape(p.name), p.kind, HtmlEscape(p.source),
        HtmlEscape(roles), HtmlEscape(PolicyProvenance(p)));
  }
  h += "</table>\n";
  h += "<h2>Scenario &times; policy heatmap</h2>\n" + HeadlineHeatmapHtml(r);
  h += "<h2>DFAST-style nine-quarter view</h2>\n" + NineQuarterHtml(r);
  h += "<nav><b>Scenarios:</b> ";
  for (const auto& sc : r.scenarios)
    h += fmt::format("<a href=\"#s-{}\">{}</a> ", SafeFileName(sc.name), HtmlEscape(sc.name));
  h += "</nav>\n";
  for (const auto& sc : r.scenarios) {
    h += fmt::format("<section id=\"s-{}\">\n<h2>Scenario: {}</h2>\n<p>{}</p>\n",
                     SafeFileName(sc.name), HtmlEscape(sc.name), HtmlEscape(sc.description));
    if (!sc.macro_paths_identical)
      h += "<p class=\"warn\">The policies' runs saw different macro paths.</p>\n";
    h += ScenarioTableHtml(sc);
    if (sc.results.size() > 1) {
      h += fmt::format("<h3>Differences versus {} (paired, 95% confidence interval)</h3>\n",
                       HtmlEscape(sc.results[0].policy));
      h += DifferenceTableHtml(sc);
    }
    for (const char* kind : {"-fan", "-macro"}) {
      const Chart* c = FindChart(charts, SafeFileName(sc.name) + kind);
      if (!c) continue;
      h += fmt::format(
          "<figure class=\"chart\" id=\"chart-{}\"><img alt=\"{}\" "
          "src=\"data:image/svg+xml;base64,{}\">"
          "<figcaption>{}</figcaption></figure>\n",
          c->id, HtmlEscape(c->title), Base64(c->svg), HtmlEscape(c->title));
    }
    if (!charts_on) h += "<p class=\"warn\">Charts were not drawn (--no-charts).</p>\n";
    h += "</section>\n";
  }
  h += FairnessHtml(r);
  h += MetricDefinitionsHtml();
  h += "</body>\n</html>\n";
  return h;
}

}  // namespace

std::vector<std::string> WriteStressReport(const StressReport& report, const std::string& dir,
                                           bool charts_on) {
  fs::create_directories(dir);
  std::vector<std::string> written;
  std::vector<Chart> charts;
  if (charts_on) {
    charts = DrawCharts(report);
    fs::create_directories(fs::path(dir) / "charts");
    for (const auto& c : charts) {
      const std::string path = (fs::path(dir) / c.file).string();
      WriteFileAtomically(path, [&](std::ostream& out) { out << c.svg; });
      written.push_back(path);
    }
  }
  auto write = [&](const std::string& name, const std::string& text) {
    const std::string path = (fs::path(dir) / name).string();
    WriteFileAtomically(path, [&](std::ostream& out) { out << text; });
    written.push_back(path);
  };
  write("report.json", StressReportJson(report));
  write("report.md", Markdown(report, charts));
  write("report.html", Html(report, charts, charts_on));
  return written;
}

}  // namespace loantwin
