#pragma once
// Macro scenarios: anchor paths of seven variables plus a stochastic component, and the
// monthly macro model that turns them into Monte Carlo paths. Format: docs/scenarios.md.

#include <Eigen/Core>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace loantwin {

enum MacroVar : int {
  kUnemploymentVar = 0,  ///< percent
  kGdpGrowthVar,         ///< real GDP growth, annualised percent
  kPolicyRateVar,        ///< 3-month treasury / policy rate, percent
  kRate10yVar,           ///< 10-year treasury yield, percent
  kMortgageRateVar,      ///< mortgage rate, percent
  kHpiVar,               ///< house price index level (any base)
  kCreditSpreadVar,      ///< BBB corporate yield minus 10-year yield, percentage points
  kNumMacroVars
};
inline constexpr std::array<const char*, kNumMacroVars> kMacroVarNames = {
    "unemployment",  "gdp_growth", "policy_rate",  "rate_10y",
    "mortgage_rate", "hpi",        "credit_spread"};

struct Scenario {
  std::string name, description, source, file;
  int step_months = 3;  ///< spacing of the anchor points
  /// Where each point sits in its period: true (`anchor_placement: middle`, the default) puts
  /// point i at month step*i + (step-1)/2, the middle of the period whose average it is (a
  /// quarterly value at the quarter's second month); false (`start`) at month step*i. Before
  /// the first point's month its value holds.
  bool mid_period = true;
  std::array<std::vector<double>, kNumMacroVars> anchors;  ///< file units (percent, index)
  std::vector<double> fraud_multiplier;                    ///< optional, same spacing; empty = 1
  /// Optional reversion after the last anchor point: each variable moves linearly to its
  /// long-run value over `reversion_months` (HPI instead grows at long_run[kHpiVar] percent a
  /// year). Without it the last point holds.
  bool has_long_run = false;
  std::array<double, kNumMacroVars> long_run{};
  int reversion_months = 24;
  double shock_scale = 1.0;  ///< multiplies every innovation sd (0 = deterministic)
  std::array<double, kNumMacroVars> shock_sd;           ///< monthly innovation sd, file units
  std::array<double, kNumMacroVars> shock_persistence;  ///< AR(1) coefficient of the deviation

  /// Anchor value at a month (linear interpolation; after the end the last point holds, or
  /// reverts to long_run when given).
  double AnchorAt(int var, int month) const;
  double FraudMultiplierAt(int month) const;
  /// Month at which anchor point i sits.
  double AnchorMonth(size_t i) const;
  /// Months covered by the anchor points (every month of every period they average).
  int LengthMonths() const;
};

/// Default stochastic component (sd and persistence per variable): see docs/scenarios.md.
std::array<double, kNumMacroVars> DefaultShockSd();
std::array<double, kNumMacroVars> DefaultShockPersistence();

std::shared_ptr<const Scenario> LoadScenario(const std::string& name_or_path);
std::shared_ptr<const Scenario> ParseScenario(const std::string& yaml, const std::string& name);

/// Macro state for one month, in model units (fractions; hpi relative to month 0).
struct MacroState {
  double unemployment = 0, gdp_growth = 0, policy_rate = 0, rate_10y = 0, mortgage_rate = 0;
  double hpi = 1, credit_spread = 0;
  double fraud_multiplier = 1;
};

/// Anchor paths + correlated AR(1) deviations (VAR(1) with diagonal persistence and correlated
/// innovations). Draws come from a counter-based stream: (key, month) -> innovations.
class MacroModel {
 public:
  explicit MacroModel(std::shared_ptr<const Scenario> scenario);
  void Reset(uint64_t key);
  /// Advances to `month` (must be the previous month + 1, starting at 0) and returns its state.
  const MacroState& Step(int month);
  const MacroState& state() const { return state_; }
  /// Shifts the policy, 10-year and mortgage rates by `pp` percentage points from month 1 on
  /// (month 0, the opening balance sheet, is unshifted): the sensitivity measures' shock.
  void set_rate_shift(double pp) { rate_shift_ = pp; }
  /// Raw state for checkpoints: deviation, key, month, base HPI, current state.
  template <typename W>
  void Save(W& w) const {
    for (int v = 0; v < kNumMacroVars; ++v) w.Put(deviation_(v));
    w.Put(key_), w.Put(month_), w.Put(hpi0_), w.Put(state_);
  }
  template <typename R>
  void Load(R& r) {
    for (int v = 0; v < kNumMacroVars; ++v) r.Get(&deviation_(v));
    r.Get(&key_), r.Get(&month_), r.Get(&hpi0_), r.Get(&state_);
  }

 private:
  std::shared_ptr<const Scenario> scenario_;
  Eigen::Matrix<double, kNumMacroVars, kNumMacroVars> chol_;  ///< innovation covariance factor
  Eigen::Matrix<double, kNumMacroVars, 1> deviation_;
  uint64_t key_ = 0;
  int month_ = -1;
  double rate_shift_ = 0;
  double hpi0_ = 1;
  MacroState state_;
};

}  // namespace loantwin
