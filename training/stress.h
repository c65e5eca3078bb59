#pragma once
// Stress evaluation (docs/stress-testing.md): policy sets - the rule-based baselines, trained
// runs (latest checkpoint) or exported TorchScript policies - run on the same seeded Monte
// Carlo paths of each scenario (common random numbers), reduced into a StressReport.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "env/policy_monte_carlo.h"
#include "env/twin_env.h"
#include "report/stress_report.h"

namespace loantwin {

class Collective;
class Trainer;

/// One policy set: roles decided by a run's agents or an export's TorchScript modules, the
/// others by their fallbacks (baseline, or random where the run said so).
class StressPolicy : public RoleDriver {
 public:
  /// "baseline", "cutoff:<band>" (the baseline with every product's credit cutoff fixed at a
  /// band A..G, or "none", within the masks: a rule-based policy family for frontiers), a run
  /// directory (config.yaml + checkpoints/), or an export directory (manifest.json);
  /// "label=<spec>" names it. Clear errors for anything else.
  static std::unique_ptr<StressPolicy> Load(const std::string& spec);
  ~StressPolicy() override;

  bool Decides(int role) const override;
  void Decide(int role, const float* obs, const uint8_t* masks, int n, int32_t* actions) override;

  PolicyInfo info;
  /// A run's environment config (reward weights, floor, ...); empty for baseline and exports.
  std::optional<TwinEnvConfig> env_config;
  std::array<FallbackPolicy, kNumTwinRoles> fallbacks{};
  /// Its guardrails (the run's experiment or the export's manifest), applied on its paths.
  std::vector<GuardrailRule> guardrails;
  /// The institutions the policy was trained on (empty when unknown).
  std::vector<std::string> trained_institutions;
  /// What its pricing offsets are measured from (env.config.pricing_reference of the run, or
  /// the export's manifest): its paths decode its actions against the same reference.
  std::string pricing_reference = "standard";

 private:
  StressPolicy();
  std::unique_ptr<Trainer> trainer_;
  int fixed_cutoff_ = -2;  ///< cutoff:<band>: the credit role's action (0 = none .. 7 = G)
};

struct StressProgress {
  int scenario = 0, scenarios = 0, policy = 0, policies = 0;
  std::string scenario_name, policy_name;
  int64_t done = 0, total = 0;  ///< path-months
};

struct StressOptions {
  /// Scenario names or YAML files; "all" expands to every built-in scenario.
  std::vector<std::string> scenarios;
  int paths = 1000, months = 120;
  std::string institution;  ///< "" = the first run's institution, else cu_mid
  uint64_t seed = 1;
  int threads = 2;
  int batch = 64;  ///< instances alive at once; does not change results
  /// Band quantiles are exact up to this many paths, a t-digest beyond (memory bound).
  int exact_band_paths = 1000;
  /// Applicant groups for the fair-lending section (a table preset or file; "" = none).
  std::string applicant_groups;
  /// Non-empty: every twin metric's mean and 5/50/95% bands per month for each scenario and
  /// policy, written to <dir>/<scenario>/<policy>.csv (month,metric,mean,p05,p50,p95; names
  /// outside [A-Za-z0-9_-] become '_'): the trajectories behind the report's figures.
  std::string metric_bands_dir;
  std::function<void(const StressProgress&)> progress;
  /// Distributed evaluation (docs/distributed.md): the ranks split each run's batches of paths
  /// (path i is still instance i of the seed), rank 0 reduces every path in path order and
  /// returns the report - identical to one process's for the same seed and paths, apart from
  /// provenance and timing; the other ranks return a report without scenarios. Every rank
  /// calls RunStress with the same policies and options. Null: one process.
  Collective* group = nullptr;
};

/// Expands "all" and checks every scenario loads (ConfigError naming the bad one).
std::vector<std::string> ResolveScenarios(const std::vector<std::string>& names);

/// The report's provenance now: UTC time, version, the source tree's git revision.
Provenance CurrentProvenance();

/// Runs every policy on every scenario with the same paths. Policies must have unique names.
StressReport RunStress(const std::vector<std::unique_ptr<StressPolicy>>& policies,
                       const StressOptions& options);

}  // namespace loantwin
