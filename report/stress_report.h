#pragma once
// Stress-test reports: Monte Carlo runs of policy sets on scenarios, reduced to per-path
// metrics, distributions, tail risk, paired differences to the first policy, monthly bands for
// fan charts and the scenarios' macro paths; written as report.json (schema
// docs/stress-report.schema.json), report.md and a self-contained report.html
// (docs/stress-testing.md). No LibTorch here: policies are driven from training/stress.h.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/sha256.h"
#include "env/policy_monte_carlo.h"
#include "env/twin/capital.h"
#include "report/fairness.h"
#include "report/risk.h"

namespace loantwin {

inline constexpr const char* kStressReportSchema = "loantwin.stress_report";
inline constexpr int kStressReportSchemaVersion = 2;
inline constexpr double kVarLevel = 0.99;
inline constexpr double kEsLevel = 0.975;

/// A per-path metric of the report.
struct StressMetric {
  const char* key;
  const char* label;  ///< short human name
  const char* unit;   ///< "currency", "fraction", "month"
  bool higher_is_better;
  const char* definition;
};
const std::vector<StressMetric>& StressMetrics();
/// Monthly series with fan-chart bands, and the macro series of each scenario.
const std::vector<std::pair<std::string, int>>& BandSeries();  ///< name -> metric column
const std::vector<std::pair<std::string, int>>& MacroSeries();

/// 5%, median and 95% (and mean) across paths, per month.
struct Band {
  std::vector<double> p05, p50, p95, mean;
};

/// A constraint a policy was trained under (its run's experiment or its export's manifest;
/// docs/training.md, "Constraints"), judged on the stress paths the way training counts it.
struct PolicyConstraint {
  std::string name, metric;
  int column = -1;  ///< metrics-row column; -1 = max_product_share (derived)
  std::optional<double> min, max;
  bool indicator = false;  ///< cost 1 per month outside; else the distance outside
  double limit = 0, discount = 1;
};

/// A constraint's outcome over one policy's paths of a scenario.
struct ConstraintOutcome {
  std::string name;
  double limit = 0;
  double mean_cost = 0;       ///< mean over paths of sum_t discount^t c_t over the horizon
  int paths_over_limit = 0;   ///< paths whose cost exceeds the limit
  double violation_rate = 0;  ///< share of path-months outside [min, max]
  bool pass() const { return mean_cost <= limit; }
};

struct PolicyScenarioResult {
  std::string policy;
  int paths = 0;
  std::map<std::string, std::vector<double>> per_path;  ///< metric -> value per path
  std::map<std::string, Distribution> metrics;
  double var_99 = 0, es_975 = 0;   ///< of cumulative net income (losses)
  int paths_undercapitalised = 0;  ///< capital category undercapitalised or worse in some month
  int paths_below_well_capitalised = 0;  ///< not well capitalised in some month
  int paths_failed = 0;                  ///< capital ratio < the environment's floor or equity <= 0
  int paths_liquidity_shortfall = 0;  ///< cash below the floor after the secured line (some month)
  /// Per path 0/1: breach_minimum (undercapitalised or worse in some month), breach_buffer (not
  /// well capitalised in some month), failed, liquidity_shortfall - paired across policies.
  std::map<std::string, std::vector<double>> path_flags;
  /// The policy's own constraints (PolicyInfo::constraints), in its order.
  std::vector<ConstraintOutcome> constraints;
  /// The policy's guardrails: name -> share of the decisions of the roles it limits that it
  /// restricted (over every path and month).
  std::vector<std::pair<std::string, double>> guardrail_fired_rate;
  int paths_with_invariant_breaches = 0;  ///< must be 0
  std::string first_invariant_breach;
  std::map<std::string, std::vector<double>> role_return_paths;  ///< role -> return per path
  std::map<std::string, Distribution> role_returns;
  std::map<std::string, Band> bands;  ///< BandSeries()
  double loan_months = 0;             ///< open loans summed over paths and months
  /// Versus the first policy (empty for the first): metric / "var_99" / "es_975" /
  /// "role_return/<role>" -> difference with a 95% interval.
  std::map<std::string, PairedDifference> vs_first;
  /// Fair-lending analysis (StressOptions::applicant_groups; report/fairness.h).
  std::optional<FairnessResult> fairness;
};

/// The flags of PolicyScenarioResult::path_flags, breaches first: key, label.
const std::vector<std::pair<std::string, std::string>>& BreachFlags();

/// The verdict on one policy in one scenario (the report's first table): it fails when a path
/// falls below the regime's minimum, fails or runs short of liquidity; `worse` lists the flags
/// whose paired difference to the first policy is significantly higher (95% interval above 0).
struct Verdict {
  bool pass = true;
  std::vector<std::string> reasons, worse;
};
Verdict JudgeResult(const PolicyScenarioResult& r);

struct ScenarioReport {
  std::string name, source, description;
  std::map<std::string, Band> macro;  ///< MacroSeries(), from the first policy's run
  /// True when every policy's run saw bit-identical macro paths (common random numbers).
  bool macro_paths_identical = true;
  std::vector<PolicyScenarioResult> results;  ///< one per policy, in the report's order
};

struct PolicyInfo {
  std::string name;                          ///< unique label in tables and charts
  std::string kind;                          ///< baseline | run | export
  std::string source;                        ///< directory, or "built-in"
  std::map<std::string, std::string> roles;  ///< role -> driver (ppo, dqn, baseline, ...)
  /// Provenance: a run's checkpoint (path and SHA-256 of the file), an export's checkpoint
  /// (as its manifest names it) and the SHA-256 of each module file; empty for the baseline.
  std::string checkpoint, checkpoint_sha256;
  std::map<std::string, std::string> module_sha256;
  std::vector<PolicyConstraint> constraints;  ///< what it was trained to respect
  std::vector<std::string> guardrails;        ///< its guardrails, as JSON objects
};

/// When, by which build and from which source revision a report was made.
struct Provenance {
  std::string generated_at;  ///< UTC, ISO 8601
  std::string loantwin_version;
  /// git revision of the source tree the binary was built from ("unknown" when it cannot be
  /// read); "-dirty" when that tree has uncommitted changes.
  std::string source_revision;
  /// Processes that ran it (distributed evaluation; 1 for one process).
  int ranks = 1;
};

struct StressSettings {
  std::string institution;
  std::string currency = "USD";  ///< the institution's ISO 4217 code: every amount is in it
  /// The institution's capital regime: the ratio's name and thresholds derive from it.
  CapitalRegime regime = CapitalRegime::kBasel;
  int paths = 0, months = 0, threads = 1;
  uint64_t seed = 0;
  std::string reward_weights_from;
};

struct StressReport {
  StressSettings settings;
  Provenance provenance;
  std::vector<PolicyInfo> policies;
  std::vector<ScenarioReport> scenarios;
  double wall_seconds = 0;
  double loan_months = 0;
  int64_t instance_months = 0;
};

/// A Band reduced value by value: a QuantileSketch and a sum per month.
struct BandSketch {
  BandSketch(int months, size_t exact_paths);
  void Add(int month_index, double value);
  Band ToBand() const;
  std::vector<QuantileSketch> cells;
  std::vector<double> sums;
};

/// Reduces one policy's Monte Carlo run as its blocks stream in (MonteCarloOptions::sink), so a
/// run's memory is the per-path figures (a few values per path) and the band sketches, not
/// paths x months x metrics. Quantiles of the bands are exact up to `exact_paths` paths
/// (core/quantile_sketch.h beyond); per-path metrics and VaR/ES are always exact.
class PolicyRunReducer {
 public:
  /// macro: also reduce the macro bands (MacroSeries()).
  PolicyRunReducer(std::string policy, int months, bool macro, size_t exact_paths = 1000);
  /// The policy's constraints, judged path by path (call before the first Add).
  void SetConstraints(std::vector<PolicyConstraint> constraints);
  /// Blocks in path order.
  void Add(const PathBlock& block);
  /// Adds what the run kept per path (failures, invariant breaches, role rewards).
  PolicyScenarioResult Finish(const PolicyRun& run);
  std::map<std::string, Band> MacroBands() const;
  /// SHA-256 of the macro columns of every path and month in path order (after Finish): two
  /// runs saw bit-identical macro paths when their digests are equal.
  const std::string& macro_digest() const { return macro_digest_hex_; }

 private:
  int months_;
  bool macro_;
  PolicyScenarioResult r_;
  std::map<std::string, std::vector<double>> per_path_;
  std::vector<PolicyConstraint> constraint_specs_;
  std::vector<double> constraint_cost_;                    ///< [k], summed over paths
  std::vector<int64_t> constraint_over_, constraint_bad_;  ///< [k]: paths over limit, months out
  std::vector<BandSketch> bands_, macro_bands_;
  Sha256 macro_digest_;
  std::string macro_digest_hex_;
};

/// Reduces one policy's Monte Carlo run kept whole (exact bands).
PolicyScenarioResult ReducePolicyRun(const std::string& policy, const PolicyRun& run);
/// Fills vs_first of results[1..] against results[0] (same paths), deterministic.
void CompareToFirst(ScenarioReport& scenario, uint64_t seed);

/// report.json (the documented schema).
std::string StressReportJson(const StressReport& report);

/// Writes report.json, report.md, report.html (and charts/*.svg unless charts is false) into
/// `dir`, atomically per file. Returns the written paths.
std::vector<std::string> WriteStressReport(const StressReport& report, const std::string& dir,
                                           bool charts);

}  // namespace loantwin
