// `loantwin fairness <policies...>`: fair-lending analysis of policy sets on the same Monte Carlo
// paths (docs/governance.md): approval, pricing, expected default and margin by applicant group,
// adverse-impact ratios, equal opportunity, matched pairs, score change, paired intervals and
// the income-fairness frontier; fairness.json and fairness.md.

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/stress_common.h"
#include "core/atomic_file.h"
#include "report/fairness.h"
#include "report/risk.h"
#include "report/stress_report.h"
#include "training/stress.h"

namespace fs = std::filesystem;

namespace loantwin::cli {
namespace {

constexpr const char* kFairnessSchema = "loantwin.fairness";
constexpr int kFairnessSchemaVersion = 1;

struct FrontierPoint {
  std::string policy;
  double min_air = 0, eo_gap = 0, income = 0;
  bool efficient = false;
};

/// Per scenario: every policy's (min AIR, mean income); efficient = no other policy has at
/// least as high both, one strictly.
std::vector<FrontierPoint> Frontier(const ScenarioReport& sc) {
  std::vector<FrontierPoint> pts;
  for (const auto& pr : sc.results) {
    if (!pr.fairness) continue;
    pts.push_back({pr.policy, pr.fairness->min_air, pr.fairness->eo_gap,
                   Describe(pr.per_path.at("cumulative_net_income")).mean});
  }
  for (auto& p : pts) {
    p.efficient = true;
    for (const auto& q : pts)
      if (&q != &p && q.min_air >= p.min_air && q.income >= p.income &&
          (q.min_air > p.min_air || q.income > p.income))
        p.efficient = false;
  }
  std::sort(pts.begin(), pts.end(),
            [](const FrontierPoint& a, const FrontierPoint& b) { return a.min_air < b.min_air; });
  return pts;
}

std::string FrontierMarkdown(const StressReport& r) {
  std::string md =
      "## Income and fairness frontier\n\nPer scenario, every policy's smallest adverse-impact "
      "ratio against its mean cumulative net income (M) over the paths; *efficient*: no other "
      "policy is at least as fair and as profitable. The income given up for fairness is the "
      "income difference between efficient points.\n";
  for (const auto& sc : r.scenarios) {
    md += fmt::format(
        "\n### `{}`\n\n| policy | min AIR | EO difference | mean net income (M) | efficient |\n"
        "|---|---|---|---|---|\n",
        sc.name);
    for (const auto& p : Frontier(sc))
      md += fmt::format("| {} | {:.3f} | {:.1f} pp | {:.2f} | {} |\n", p.policy, p.min_air,
                        100 * p.eo_gap, p.income / 1e6, p.efficient ? "yes" : "");
  }
  return md;
}

nlohmann::json ReportJson(const StressReport& r, const std::string& table) {
  nlohmann::json j;
  j["schema"] = kFairnessSchema;
  j["schema_version"] = kFairnessSchemaVersion;
  j["provenance"] = {{"generated_at", r.provenance.generated_at},
                     {"loantwin_version", r.provenance.loantwin_version},
                     {"source_revision", r.provenance.source_revision}};
  j["settings"] = {{"institution", r.settings.institution},
                   {"applicant_groups", table},
                   {"paths", r.settings.paths},
                   {"months", r.settings.months},
                   {"seed", r.settings.seed}};
  j["policies"] = nlohmann::json::array();
  for (const auto& p : r.policies)
    j["policies"].push_back({{"name", p.name}, {"kind", p.kind}, {"source", p.source}});
  j["scenarios"] = nlohmann::json::array();
  for (const auto& sc : r.scenarios) {
    nlohmann::json js = {{"name", sc.name}, {"results", nlohmann::json::array()}};
    for (const auto& pr : sc.results) {
      if (!pr.fairness) continue;
      nlohmann::json jr = FairnessJson(*pr.fairness);
      jr["policy"] = pr.policy;
      jr["mean_cumulative_net_income"] = Describe(pr.per_path.at("cumulative_net_income")).mean;
      js["results"].push_back(jr);
    }
    js["frontier"] = nlohmann::json::array();
    for (const auto& p : Frontier(sc))
      js["frontier"].push_back({{"policy", p.policy},
                                {"min_adverse_impact_ratio", p.min_air},
                                {"equal_opportunity_difference", p.eo_gap},
                                {"mean_cumulative_net_income", p.income},
                                {"efficient", p.efficient}});
    j["scenarios"].push_back(js);
  }
  return j;
}

}  // namespace

Runner RegisterFairness(CLI::App& app) {
  struct Args {
    std::vector<std::string> policies;
    std::string scenarios = "severe_recession", out = "fairness-report";
    bool no_baseline = false;
    StressArgs stress;
  };
  auto a = std::make_shared<Args>();
  a->stress.paths = 200;
  a->stress.months = 60;
  a->stress.no_charts = true;
  a->stress.applicant_groups = "fed2007";
  auto* cmd = app.add_subcommand(
      "fairness",
      "Fair-lending analysis of policies (baseline, cutoff:<band>, run or export directories) "
      "on the same Monte Carlo paths: approval, pricing, default and margin by applicant group, "
      "adverse-impact ratios, equal opportunity, matched pairs, score change, frontier; writes "
      "fairness.json and fairness.md");
  cmd->add_option("policies", a->policies,
                  "policy sets: 'baseline', 'cutoff:<A..G|none>', run directories, export "
                  "directories ([label=]spec)")
      ->required();
  cmd->add_option("--scenarios", a->scenarios, "comma-separated scenario names or files, or 'all'")
      ->capture_default_str();
  cmd->add_option("--applicant-groups", a->stress.applicant_groups,
                  "group table: a preset in configs/applicant_groups/ or a file")
      ->capture_default_str();
  cmd->add_option("--out", a->out, "report directory")->capture_default_str();
  cmd->add_flag("--no-baseline", a->no_baseline,
                "do not prepend the rule-based baseline when no baseline is listed");
  AddStressOptions(cmd, a->stress);
  return [a] {
    if (a->stress.applicant_groups.empty())
      throw std::invalid_argument("--applicant-groups must name a group table (e.g. fed2007)");
    a->stress.no_charts = true;
    auto policies = LoadPolicies(WithBaseline(a->policies, a->no_baseline), a->stress);
    const std::vector<std::string> scenarios = SplitCommaList(a->scenarios);
    const StressReport report = RunStressWithProgress(policies, scenarios, a->stress);
    for (const auto& sc : report.scenarios) {
      fmt::print("\nscenario {} ({} paths x {} months, groups {}):\n", sc.name,
                 report.settings.paths, report.settings.months, a->stress.applicant_groups);
      fmt::print("  {:<22} {:>8} {:>9} {:>12} {:>16}  {}\n", "policy", "min AIR", "EO diff",
                 "income (M)", "vs first: AIR", "groups below 0.8");
      for (const auto& pr : sc.results) {
        const FairnessResult& f = *pr.fairness;
        std::string flagged;
        for (const auto& g : f.groups)
          if (g.below_four_fifths) flagged += (flagged.empty() ? "" : ", ") + g.group;
        auto it = f.vs_first.find("min_air");
        fmt::print("  {:<22} {:>8.3f} {:>7.1f}pp {:>12.2f} {:>16}  {}\n", pr.policy, f.min_air,
                   100 * f.eo_gap, Describe(pr.per_path.at("cumulative_net_income")).mean / 1e6,
                   it == f.vs_first.end() ? "-"
                                          : fmt::format("{:+.3f}+-{:.3f}", it->second.mean,
                                                        (it->second.high - it->second.low) / 2),
                   flagged.empty() ? "none" : flagged);
      }
    }
    fs::create_directories(a->out);
    const std::string json_file = (fs::path(a->out) / "fairness.json").string();
    const std::string md_file = (fs::path(a->out) / "fairness.md").string();
    WriteFileAtomically(json_file, [&](std::ostream& s) {
      s << ReportJson(report, a->stress.applicant_groups).dump(2) << "\n";
    });
    WriteFileAtomically(md_file, [&](std::ostream& s) {
      s << fmt::format(
          "# Fair-lending report\n\nInstitution **{}**; {} paths x {} months per scenario and "
          "policy; seed {}; applicant groups `{}`. Analysis support, not legal advice "
          "(docs/governance.md).\n\n",
          report.settings.institution, report.settings.paths, report.settings.months,
          report.settings.seed, a->stress.applicant_groups);
      s << FairnessMarkdown(report) << "\n" << FrontierMarkdown(report);
    });
    fmt::print("\nwrote {} and {}\n", json_file, md_file);
    return 0;
  };
}

}  // namespace loantwin::cli
