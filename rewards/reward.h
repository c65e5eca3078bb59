#pragma once
// Reward modules: each computes one objective from a step's P&L and state. Registered by name;
// a role's scalar reward is a weighted sum over the full objective vector, which is always
// reported. Formulas and scales: docs/environment.md ("Rewards").

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace loantwin {

/// Everything a reward module may read for one instance and one step. Monetary flows are the
/// month's; ratios are fractions. Filled by the environment.
struct RewardInput {
  double net_income = 0;   ///< month's net income
  double equity_open = 0;  ///< equity at the start of the month
  double nii = 0, fees = 0, opex = 0;
  double expected_loss = 0;       ///< 12-month expected loss of the book at month end
  double loan_balance = 0;        ///< month-end loan balance
  double rwa = 0;                 ///< month-end risk-weighted assets
  double capital_ratio = 0;       ///< the regime's ratio: net worth (ncua) or CET1 (basel)
  double capital_buffer = 0.07;   ///< the regime's well-capitalised target for it
  double liquidity_ratio = 0;     ///< liquid assets / stressed run-off (>= 1 is compliant)
  double approval_rate = 0;       ///< approvals / applications this month
  std::vector<double> exposures;  ///< exposure per segment (products) for concentration
  double policy_churn = 0;        ///< share of this role's action components that changed, 0..1
};

/// One objective. Implementations override DoCompute; Compute checks the result is finite.
class RewardModule {
 public:
  virtual ~RewardModule() = default;
  const std::string& name() const { return name_; }
  /// Formula and scale in words (docs, --help).
  virtual std::string formula() const = 0;
  double Compute(const RewardInput& in) const;

 protected:
  explicit RewardModule(std::string name) : name_(std::move(name)) {}
  virtual double DoCompute(const RewardInput& in) const = 0;

 private:
  std::string name_;
};

using RewardFactory = std::function<std::unique_ptr<RewardModule>()>;

/// Adds a module to the registry (built-ins are registered on first use).
void RegisterReward(const std::string& name, RewardFactory factory);
/// Creates a registered module; std::invalid_argument listing the known names otherwise.
std::unique_ptr<RewardModule> MakeReward(const std::string& name);
/// Registered names in registration order (built-ins: profit, raroc, expected_loss, capital,
/// liquidity, concentration, customer, stability).
std::vector<std::string> RegisteredRewards();

/// A fixed list of objectives with per-objective weights: the reward vector and its scalar.
class RewardSet {
 public:
  /// All registered objectives, weights zero.
  RewardSet();
  /// Sets one objective's weight; std::invalid_argument for an unknown objective.
  void SetWeight(const std::string& objective, double weight);
  int size() const { return static_cast<int>(modules_.size()); }
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<double>& weights() const { return weights_; }
  /// Writes size() objective values to `vec` and returns the weighted sum.
  double Compute(const RewardInput& in, float* vec) const;

 private:
  std::vector<std::unique_ptr<RewardModule>> modules_;
  std::vector<std::string> names_;
  std::vector<double> weights_;
};

}  // namespace loantwin
