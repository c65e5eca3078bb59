#include "report/fairness.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "report/render_util.h"
#include "report/stress_report.h"

namespace loantwin {

namespace {

constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

double Ratio(double a, double b) {
  return b > 0 ? a / b : kNan;
}

nlohmann::json Num(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json();
}

std::string Pct(double v) {
  return std::isfinite(v) ? fmt::format("{:.1f}%", 100 * v) : "-";
}

std::string Diff(const PairedDifference& d, double scale, const char* unit) {
  return fmt::format("{:+.2f}{} [{:+.2f}, {:+.2f}]", d.mean * scale, unit, d.low * scale,
                     d.high * scale);
}

/// (policy, scenario result) pairs with fairness, per scenario.
template <typename Fn>
bool ForEachFairness(const StressReport& r, Fn&& fn) {
  bool any = false;
  for (const auto& sc : r.scenarios)
    for (const auto& pr : sc.results)
      if (pr.fairness) any = true;
  if (!any) return false;
  for (const auto& sc : r.scenarios) fn(sc);
  return true;
}

}  // namespace

FairnessResult BuildFairness(const std::vector<GroupOutcomes>& paths,
                             const ApplicantGroupTable& table, const std::vector<double>& income) {
  FairnessResult r;
  r.table = table.name;
  const int n = table.num_groups();
  GroupOutcomes pooled;
  pooled.Resize(n);
  auto& min_air = r.per_path["min_air"];
  auto& eo_gap = r.per_path["eo_gap"];
  for (const GroupOutcomes& p : paths) {
    pooled.Add(p);
    const FairnessSummary s = Summarise(p, table);
    min_air.push_back(s.min_air);
    eo_gap.push_back(s.eo_gap);
    for (int g = 0; g < n; ++g)
      r.per_path["approval_rate/" + table.groups[g]].push_back(
          std::isnan(s.approval_rate[g]) ? 0.0 : s.approval_rate[g]);
  }
  r.per_path["cumulative_net_income"] = income;
  const FairnessSummary s = Summarise(pooled, table);
  r.reference = s.reference;
  r.min_air = s.min_air;
  r.eo_gap = s.eo_gap;
  const double num_paths = std::max<double>(1, static_cast<double>(paths.size()));
  for (int g = 0; g < n; ++g) {
    const GroupCell c = pooled.Group(g);
    FairnessGroupRow row;
    row.group = table.groups[g];
    row.applications = c.applications / num_paths;
    row.approval_rate = s.approval_rate[g];
    row.air = s.air[g];
    row.below_four_fifths = std::isfinite(row.air) && row.air < 0.8;
    row.tpr = s.tpr[g];
    row.mean_apr = Ratio(c.rate_amount, c.amount);
    row.bad_rate = Ratio(c.bad_approvals, c.approvals);
    row.margin_rate = Ratio(c.margin, c.amount);
    row.score_change = Ratio(c.score_change, c.applications);
    row.mean_score = Ratio(c.score_sum, c.applications);
    r.groups.push_back(row);
  }
  r.band_approval_diff.assign(n, {});
  r.band_apr_diff.assign(n, {});
  // Matched pairs: within each product and band (the same score slice, the same cutoff), the
  // group's approval rate and APR minus the reference group's, averaged over products with the
  // group's applications (approvals for the APR) as weights.
  for (int g = 0; g < n; ++g)
    for (int b = 0; b < kNumBands; ++b) {
      double d = 0, w = 0, da = 0, wa = 0;
      for (int p = 0; p < kNumProducts; ++p) {
        const GroupCell& c = pooled.at(p, g, b);
        const GroupCell& ref = pooled.at(p, r.reference, b);
        if (c.applications > 0 && ref.applications > 0) {
          d += c.applications * (c.approvals / c.applications - ref.approvals / ref.applications);
          w += c.applications;
        }
        if (c.amount > 0 && ref.amount > 0) {
          da += c.approvals * (c.rate_amount / c.amount - ref.rate_amount / ref.amount);
          wa += c.approvals;
        }
      }
      r.band_approval_diff[g][b] = Ratio(d, w);
      r.band_apr_diff[g][b] = Ratio(da, wa);
      if (w > 0) r.max_matched_pair_gap = std::max(r.max_matched_pair_gap, std::abs(d / w));
    }
  return r;
}

void PairFairness(const FairnessResult& first, FairnessResult* result) {
  for (const auto& [key, values] : result->per_path) {
    auto it = first.per_path.find(key);
    if (it == first.per_path.end() || it->second.size() != values.size() || values.size() < 2)
      continue;
    result->vs_first[key] = PairedMeanDifference(values, it->second);
  }
}

nlohmann::json FairnessJson(const FairnessResult& r) {
  nlohmann::json j;
  j["table"] = r.table;
  j["reference_group"] = r.groups.empty() ? "" : r.groups[r.reference].group;
  j["min_adverse_impact_ratio"] = r.min_air;
  j["equal_opportunity_difference"] = r.eo_gap;
  j["max_matched_pair_gap"] = r.max_matched_pair_gap;
  j["groups"] = nlohmann::json::array();
  for (size_t g = 0; g < r.groups.size(); ++g) {
    const FairnessGroupRow& row = r.groups[g];
    nlohmann::json band_approval = nlohmann::json::array(), band_apr = nlohmann::json::array();
    for (int b = 0; b < kNumBands; ++b) {
      band_approval.push_back(Num(r.band_approval_diff[g][b]));
      band_apr.push_back(Num(r.band_apr_diff[g][b]));
    }
    j["groups"].push_back({{"group", row.group},
                           {"applications_per_path", row.applications},
                           {"approval_rate", Num(row.approval_rate)},
                           {"adverse_impact_ratio", Num(row.air)},
                           {"below_four_fifths", row.below_four_fifths},
                           {"approval_rate_among_repayers", Num(row.tpr)},
                           {"mean_apr", Num(row.mean_apr)},
                           {"expected_bad_rate", Num(row.bad_rate)},
                           {"expected_margin_rate", Num(row.margin_rate)},
                           {"score_change_per_applicant", Num(row.score_change)},
                           {"mean_score", Num(row.mean_score)},
                           {"matched_pair_approval_difference_by_band", band_approval},
                           {"matched_pair_apr_difference_by_band", band_apr}});
  }
  j["vs_first"] = nlohmann::json::object();
  for (const auto& [k, d] : r.vs_first)
    j["vs_first"][k] = {
        {"difference", d.mean}, {"low", d.low}, {"high", d.high}, {"method", d.method}};
  return j;
}

std::string FairnessMarkdown(const StressReport& report) {
  std::string md;
  const bool any = ForEachFairness(report, [&](const ScenarioReport& sc) {
    md += fmt::format("\n### Fair lending: scenario `{}`\n\n", sc.name);
    md +=
        "| policy | group | applicants/path | approval rate | AIR | four-fifths | approval among "
        "repayers | mean APR | expected bad rate | expected margin | score change/applicant |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& pr : sc.results) {
      if (!pr.fairness) continue;
      const FairnessResult& f = *pr.fairness;
      for (size_t g = 0; g < f.groups.size(); ++g) {
        const FairnessGroupRow& row = f.groups[g];
        md += fmt::format(
            "| {} | {}{} | {:.0f} | {} | {:.3f} | {} | {} | {} | {} | {} | {:+.2f} |\n", pr.policy,
            row.group, static_cast<int>(g) == f.reference ? " (ref)" : "", row.applications,
            Pct(row.approval_rate), row.air, row.below_four_fifths ? "**below 0.8**" : "ok",
            Pct(row.tpr), Pct(row.mean_apr), Pct(row.bad_rate), Pct(row.margin_rate),
            row.score_change);
      }
    }
    md +=
        "\n| policy | min AIR | equal-opportunity difference | max matched-pair gap | vs first: "
        "min AIR | vs first: EO difference | vs first: net income (M) |\n"
        "|---|---|---|---|---|---|---|\n";
    for (const auto& pr : sc.results) {
      if (!pr.fairness) continue;
      const FairnessResult& f = *pr.fairness;
      auto vs = [&](const char* key, double scale, const char* unit) {
        auto it = f.vs_first.find(key);
        return it == f.vs_first.end() ? std::string("-") : Diff(it->second, scale, unit);
      };
      md +=
          fmt::format("| {} | {:.3f} | {:.1f} pp | {:.1f} pp | {} | {} | {} |\n", pr.policy,
                      f.min_air, 100 * f.eo_gap, 100 * f.max_matched_pair_gap, vs("min_air", 1, ""),
                      vs("eo_gap", 100, " pp"), vs("cumulative_net_income", 1e-6, ""));
    }
  });
  if (!any) return "";
  return "## Fair lending\n\nApplicant groups drawn from public score distributions by group "
         "(never observed by any policy). AIR: a group's approval rate over the reference "
         "group's; \"below 0.8\" is the four-fifths rule as a flag for review, not a finding of "
         "discrimination. Approval among repayers: the equal-opportunity measure of Hardt et al. "
         "(2016); the matched-pair gap compares approval rates at the same score band. Score "
         "change: expected change per applicant (repay +gain, default -loss; Liu et al. 2018). "
         "Intervals: paired 95% over the same paths. docs/governance.md.\n" +
         md;
}

std::string FairnessHtml(const StressReport& report) {
  std::string h;
  const bool any = ForEachFairness(report, [&](const ScenarioReport& sc) {
    h += fmt::format(
        "<h3>Scenario: {}</h3>\n<table><tr><th>policy</th><th>group</th>"
        "<th>approval rate</th><th>AIR</th><th>approval among repayers</th>"
        "<th>mean APR</th><th>expected bad rate</th><th>score change</th></tr>\n",
        HtmlEscape(sc.name));
    for (const auto& pr : sc.results) {
      if (!pr.fairness) continue;
      for (const auto& row : pr.fairness->groups)
        h += fmt::format(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td{}>{:.3f}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{:+.2f}</td></tr>\n",
            HtmlEscape(pr.policy), HtmlEscape(row.group), Pct(row.approval_rate),
            row.below_four_fifths ? " class=\"bad\"" : "", row.air, Pct(row.tpr), Pct(row.mean_apr),
            Pct(row.bad_rate), row.score_change);
    }
    h += "</table>\n";
  });
  if (!any) return "";
  return "<h2>Fair lending</h2>\n<p>Applicant groups are never observed by any policy. An AIR "
         "below 0.8 (four-fifths rule) is a flag for review, not a finding. See "
         "docs/governance.md.</p>\n" +
         h;
}

}  // namespace loantwin
