#pragma once
// Fair-lending analysis of a policy's Monte Carlo run (docs/governance.md): approval rates and
// adverse-impact ratios by applicant group (the four-fifths rule as a flag), matched-pair
// approval and price differences at equal score band, pricing, expected default and margin by
// group, the equal-opportunity difference (Hardt, Price & Srebro 2016) and the expected score
// change of each group (the delayed-impact question of Liu et al. 2018), with paired intervals
// against the first policy on the same paths. Analysis support, not a legal conclusion.

#include <array>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "env/twin/applicant_groups.h"
#include "report/risk.h"

namespace loantwin {

struct StressReport;

struct FairnessGroupRow {
  std::string group;
  double applications = 0;   ///< per path
  double approval_rate = 0;  ///< approvals / applications (pooled over paths)
  double air = 0;            ///< approval rate / the reference group's
  bool below_four_fifths = false;
  double tpr = 0;           ///< approval rate among would-be repayers
  double mean_apr = 0;      ///< amount-weighted APR of approvals
  double bad_rate = 0;      ///< expected bad rate of approvals (performance window)
  double margin_rate = 0;   ///< expected annual margin / approved amount
  double score_change = 0;  ///< expected score change per applicant over the horizon
  double mean_score = 0;    ///< mean applicant score (TransRisk 0-100)
};

struct FairnessResult {
  std::string table;  ///< the group table (preset or file)
  int reference = 0;  ///< reference group (highest approval rate unless the table names one)
  std::vector<FairnessGroupRow> groups;
  double min_air = 1, eo_gap = 0;
  /// Matched pairs: per group and score band, approval rate and mean APR minus the reference
  /// group's in the same band (NaN where either has no applicants / approvals).
  std::vector<std::array<double, kNumBands>> band_approval_diff, band_apr_diff;
  /// The largest |approval difference| at equal band over groups and bands.
  double max_matched_pair_gap = 0;
  /// Per path: min_air, eo_gap, cumulative_net_income, approval_rate/<group>.
  std::map<std::string, std::vector<double>> per_path;
  /// Versus the first policy on the same paths (empty for the first).
  std::map<std::string, PairedDifference> vs_first;
};

/// Pools the per-path outcomes into the result; `income` is each path's cumulative net income.
FairnessResult BuildFairness(const std::vector<GroupOutcomes>& paths,
                             const ApplicantGroupTable& table, const std::vector<double>& income);
/// Paired differences of every per-path figure against `first`.
void PairFairness(const FairnessResult& first, FairnessResult* result);

nlohmann::json FairnessJson(const FairnessResult& result);
/// The report section over every scenario and policy with a fairness result; "" when none.
std::string FairnessMarkdown(const StressReport& report);
std::string FairnessHtml(const StressReport& report);

}  // namespace loantwin
