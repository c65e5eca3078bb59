#pragma once
// Formatting helpers shared by the stress and frontier reports (Markdown, HTML, gnuplot).

#include <cstddef>
#include <string>

namespace loantwin {

struct StressReport;
struct ScenarioReport;

/// "12.34 M" (currency, millions), "5.21%" (fraction), "37" (month), else "%.4g".
std::string FormatValue(double value, const std::string& unit);
/// Differences: currency in millions, fractions in percentage points ("+0.41 pp").
std::string FormatDifference(double value, const std::string& unit);

std::string HtmlEscape(const std::string& text);
std::string Base64(const std::string& bytes);
/// Letters, digits, '-' and '_' kept; anything else becomes '_'.
std::string SafeFileName(const std::string& name);
/// Colour of the i-th policy in every chart and table (colour-blind safe palette).
std::string PolicyColor(size_t i);
/// gnuplot: SVG terminal of the given size, plain (noenhanced) text, grid, key.
std::string ChartPreamble(int width, int height);
std::string ReportCss();

/// The verdict table (first in every report): per scenario and policy, pass/fail on capital
/// breaches, failures and liquidity shortfalls, the breach counts, then income.
std::string VerdictMarkdown(const StressReport& report);
std::string VerdictHtml(const StressReport& report);
/// Per scenario and policy with guardrails, the share of decisions each guardrail restricted;
/// empty when no policy has any.
std::string GuardrailMarkdown(const StressReport& report);
std::string GuardrailHtml(const StressReport& report);
/// DFAST-style nine-quarter view (quarters 1-9) beside the whole horizon: minimum capital ratio
/// and cumulative loss rate per scenario and policy.
std::string NineQuarterMarkdown(const StressReport& report);
std::string NineQuarterHtml(const StressReport& report);
std::string HeadlineMarkdown(const StressReport& report);
std::string ScenarioTableMarkdown(const ScenarioReport& scenario);
std::string DifferenceTableMarkdown(const ScenarioReport& scenario);
std::string HeadlineHeatmapHtml(const StressReport& report);
std::string ScenarioTableHtml(const ScenarioReport& scenario);
std::string DifferenceTableHtml(const ScenarioReport& scenario);
std::string MetricDefinitionsHtml();

}  // namespace loantwin
