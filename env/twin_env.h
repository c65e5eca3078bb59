#pragma once
// The twin as a five-role multi-agent environment (docs/environment.md).
//
// Roles, top-down, with their cadence and action:
//   risk        quarterly  Discrete(5)            risk appetite level
//   portfolio   monthly    MultiDiscrete([8] x 5) origination budget per product
//   pricing     monthly    MultiDiscrete([9] x 5) spread offset per product (-200..+200 bp)
//   credit      monthly    MultiDiscrete([8] x 5) approval cutoff per product (none, A..G)
//   collection  monthly    MultiDiscrete([4] x 3) treatment of 30 / 60 / 90+ dpd
// The risk appetite masks the budgets and cutoffs below it; products an institution does not
// offer are masked to "no lending". One step is one month.

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "env/multi_agent_env.h"
#include "env/twin/applicant_groups.h"
#include "env/twin/institution.h"
#include "env/twin/levers.h"
#include "env/twin/metrics.h"
#include "env/twin/scenario.h"
#include "env/twin/twin.h"
#include "rewards/reward.h"

namespace loantwin {

class YamlValue;

enum TwinRole : int { kRiskRole, kPortfolioRole, kPricingRole, kCreditRole, kCollectionRole };
inline constexpr int kNumTwinRoles = 5;
inline constexpr std::array<const char*, kNumTwinRoles> kTwinRoleNames = {
    "risk", "portfolio", "pricing", "credit", "collection"};

/// Origination budget levels (multiples of the baseline application flow).
inline constexpr std::array<double, 8> kBudgetLevels = {0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0};
/// Spread offsets from the product's standard spread.
inline constexpr std::array<double, 9> kSpreadOffsets = {-0.02, -0.015, -0.01, -0.005, 0.0,
                                                         0.005, 0.01,   0.015, 0.02};

/// The cost-plus rule's spread of a product over its index (annual): funding cost (deposit beta x
/// policy rate + deposit spread) + expected loss of the applicants within the default cutoff at
/// the credit factor + servicing cost - the index rate (policy, or mortgage for mortgage-indexed
/// products). The baseline pricing moves the standard spread by this spread's change.
double CostPlusSpread(const InstitutionConfig& institution, int product, double policy_rate,
                      double mortgage_rate, double credit_factor);
/// The rule's move of a cost-plus spread from `base`: rounded to the pricing offsets' 50 bp steps
/// within +-2 points.
double CostPlusMove(double spread, double base);
/// Each product's cost-plus spread in the institution's calibration economy: the first month of
/// the steady state (seed 0, instance 0). pricing_reference: cost_plus measures the rule's move
/// from it, in the environment and in the server alike.
std::array<double, kNumProducts> CostPlusCalibrationBase(
    const std::shared_ptr<const InstitutionConfig>& institution);

struct TwinRoleConfig {
  FallbackPolicy fallback = FallbackPolicy::kBaseline;
  std::vector<std::pair<std::string, double>> reward_weights;  ///< objective -> weight
};

struct TwinEnvConfig {
  std::string institution = "cu_small";  ///< with `institutions`: its first entry
  /// Institution mix (overrides `institution` when non-empty): with k scenarios, instance i runs
  /// institutions[(i / k) mod n], so every scenario meets every institution once there are
  /// k x n instances. One policy then learns on several product sets and balance sheets.
  std::vector<std::string> institutions;
  std::string scenario = "steady_state";  ///< scenario name or path
  /// Scenario mix (overrides `scenario` when non-empty): instance i runs scenarios[i mod k].
  std::vector<std::string> scenarios;
  int horizon_months = 120;
  double capital_floor = 0.02;  ///< on the regime's capital ratio
  bool terminate_on_failure = true;
  /// With terminate_on_failure: the failure month is resolved as in stress reports
  /// (ResolveFailureMonth: net income falls by the remaining equity, the capital ratios to
  /// min(value, 0)) before rewards, costs and the last observation read it.
  bool resolve_failures = false;
  bool check_invariants = false;
  /// Not a YAML key: with check_invariants, count breaches per instance (Twin::
  /// invariant_breaches) instead of throwing; set by stress evaluation.
  bool count_invariant_breaches = false;
  /// Not a YAML key (the experiment's `guardrails:`): the policy's guardrails, set by stress
  /// evaluation for the policy evaluated (MultiAgentEnv::SetGuardrails).
  std::vector<GuardrailRule> guardrails;
  std::array<TwinRoleConfig, kNumTwinRoles> roles = DefaultRoles();
  /// Applicant groups for fair-lending analysis (applicant_groups.h): a table preset
  /// (configs/applicant_groups/) or file; "" = off. Adds the metrics fairness/min_air and
  /// fairness/eo_gap (episode to date); no observation changes.
  std::string applicant_groups;
  /// What the pricing role's spread offsets are measured from: "standard" (each product's
  /// standard spread) or "cost_plus" (the standard spread moved by the cost-plus rule's change
  /// from the institution's calibration economy, CostPlusCalibrationBase, in 50 bp steps within
  /// +-2 points; the fallback pricing is then offset 0).
  std::string pricing_reference = "standard";

  /// Default reward weights per role (docs/environment.md).
  static std::array<TwinRoleConfig, kNumTwinRoles> DefaultRoles();
  /// Strict parse; unknown keys, bad values, unknown objectives -> ConfigError with file:line.
  static TwinEnvConfig Parse(const YamlValue& value);
  /// Every key, defaults included (each role's fallback and reward weights), as a YAML mapping
  /// that Parse reads back to the same config.
  std::string ToYaml() const;
  /// The institutions the instances run: `institutions`, or {institution}.
  std::vector<std::string> InstitutionList() const {
    return institutions.empty() ? std::vector<std::string>{institution} : institutions;
  }
};

/// The scalar fields of TwinEnvConfig, listed once (core/config_fields.h); institutions,
/// scenario/scenarios and roles are structured and handled by Parse / ToYaml.
template <typename V>
void VisitFields(TwinEnvConfig& c, V&& v) {
  v("institution", c.institution, "preset name or path");
  v("horizon_months", c.horizon_months, 1, 1200, "truncation horizon");
  v("capital_floor", c.capital_floor, -1.0, 0.5,
    "terminated (institution fails) below this capital ratio (the regime's: net worth or CET1)");
  v("terminate_on_failure", c.terminate_on_failure, "false: failed institutions run on");
  v("resolve_failures", c.resolve_failures,
    "true: the failure month carries the loss at resolution (the owners' remaining equity) in "
    "its rewards and costs, as stress reports count it");
  v("check_invariants", c.check_invariants, "check the accounting invariants every month");
  v("applicant_groups", c.applicant_groups,
    "applicant groups for fair-lending analysis (a preset in configs/applicant_groups/ or a "
    "file; empty: off): adds fairness/min_air and fairness/eo_gap, never observed");
  v("pricing_reference", c.pricing_reference, std::vector<std::string>{"standard", "cost_plus"},
    "what spread offsets are measured from: the standard spread, or the standard spread moved "
    "by the cost-plus rule (the baseline's pricing)");
}

class TwinEnv : public MultiAgentEnv {
 public:
  TwinEnv(const EnvOptions& options, const TwinEnvConfig& config = {});
  ~TwinEnv() override;
  int version() const override { return kVersion; }
  static constexpr int kVersion = 1;
  std::string ConfigYaml() const override { return config_.ToYaml(); }

  /// The first (with `institutions`) or only institution.
  const InstitutionConfig& institution() const { return *lenders_[0].config; }
  /// The institution instance i runs.
  const InstitutionConfig& institution(int i) const { return *states_[i].lender->config; }
  const TwinEnvConfig& config() const { return config_; }
  /// Twin metrics of instance i's last step, [kNumMetrics] (unchanged by an auto-reset).
  const double* step_metrics(int i) const { return states_[i].metrics.data(); }
  /// The state the current observations describe: the last step, or the month-0 snapshot
  /// right after a reset.
  const double* current_metrics(int i) const { return states_[i].current; }
  /// The levers applied in the last step of instance i.
  const Levers& levers(int i) const { return states_[i].levers; }
  const Twin& twin(int i) const { return *states_[i].twin; }
  /// Instance i's applicant lens (null without applicant_groups).
  const ApplicantLens* applicant_lens(int i) const { return states_[i].lens.get(); }
  const ApplicantGroupTable* applicant_groups() const { return groups_.get(); }
  /// Reward weights of a role, in the order of role(r).objectives.
  const RewardSet& reward_set(int role) const { return reward_sets_[role]; }
  void SetRewardWeights(int role,
                        const std::vector<std::pair<std::string, double>>& weights) override;
  /// Every metrics-row column (MetricName) and then max_product_share: the largest product's
  /// share of the loan balance (concentration).
  const std::vector<std::string>& metric_names() const override;
  double metric(int i, int k) const override;
  /// The scenario's name; with several institutions, "<institution>/<scenario>".
  std::string instance_label(int i) const override;
  /// pricing_reference cost_plus: the spread move the cost-plus rule adds to product p's
  /// standard spread in instance i's current state (0 otherwise or for products not offered).
  double reference_move(int i, int p) const;
  /// Decodes role actions into levers (the mapping documented in docs/environment.md).
  Levers DecodeLevers(int i) const;

 protected:
  void ResetInstance(int i, uint64_t episode) override;
  void StepInstances(int begin, int end) override;
  void WriteMasks(int role, int begin, int end) override;
  void BaselineActions(int role, int begin, int end, int32_t* out) override;
  /// The baseline's decision of role r for instance i into a (action_dims values).
  void BaselineRow(int role, int i, int32_t* a) const;
  void OnDecision(int role, int begin, int end) override;
  std::string ExplainMask(int role, int i, int dim) const override;
  void SaveInstances(StateWriter& w) const override;
  void LoadInstances(StateReader& r) override;

 private:
  /// An institution the instances run, with what the environment derives from it once.
  struct Lender {
    std::shared_ptr<const InstitutionConfig> config;
    Levers defaults;                                      ///< DefaultLevers
    std::array<double, kNumProducts> calibration_base{};  ///< with pricing_reference cost_plus
  };
  struct Instance {
    const Lender* lender = nullptr;
    std::unique_ptr<Twin> twin;
    std::unique_ptr<ApplicantLens> lens;  ///< with applicant_groups
    std::vector<double> metrics;          ///< last step
    std::vector<double> reset_metrics;    ///< month-0 snapshot of the current episode
    const double* current = nullptr;      ///< metrics or reset_metrics
    Levers levers;
    double initial_balance = 1, initial_equity = 1;
    std::array<double, kNumProducts> cost_plus_base{};         ///< cost-plus spread at reset
    std::array<std::vector<int32_t>, kNumTwinRoles> previous;  ///< previous decisions (churn)
    bool fresh = true;                                         ///< no decision yet in this episode
  };
  int AppetiteLevel(int i) const { return action_row(kRiskRole, i)[0]; }
  void WriteObservations(int i, int steps_done);
  void WriteDirectives(int i);
  double CostPlusSpread(int i, int product) const;

  TwinEnvConfig config_;
  std::vector<Lender> lenders_;  ///< InstitutionList(), in order
  std::vector<std::shared_ptr<const Scenario>> scenarios_;
  std::vector<Instance> states_;
  std::shared_ptr<const ApplicantGroupTable> groups_;
  std::vector<std::string> metric_names_;
  std::array<RewardSet, kNumTwinRoles> reward_sets_;
  bool cost_plus_reference_ = false;  ///< pricing_reference: cost_plus
  int shared_dim_ = 0;  ///< features shared by every role (macro, portfolio, products, time)
  std::array<int, kNumTwinRoles> directive_offset_{}, self_offset_{};
};

}  // namespace loantwin
