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

/// A log-normal draw, clamped: exp(log_mean + log_sd z) in [min, max].
struct LogNormalDraw {
  double log_mean = 0, log_sd = 0, min = 0, max = 1e9;
};

/// Random macro events laid over a scenario's anchor paths, drawn per episode (docs/scenarios.md,
/// "Generated scenarios"): recessions, policy-rate shocks and house-price corrections arriving
/// as Poisson processes, with sizes and durations from the distributions below (fitted to the
/// Fed's Table 1A by scripts/fit_scenario_generator.py).
struct ScenarioGenerator {
  bool enabled = false;
  struct Recession {
    double rate_per_year = 0;
    LogNormalDraw rise_pp;                ///< trough-to-peak unemployment rise, percentage points
    LogNormalDraw rise_months;            ///< months from trough to peak
    double recovery_pp_per_month = 0.06;  ///< unemployment's fall after the peak
    double okun = 2.0;  ///< GDP growth gap (pp, annualised) per pp/year of unemployment change
    double policy_cut_per_pp = 1.5;  ///< policy-rate cut per pp of unemployment rise
    double long_rate_beta = 0.4;     ///< 10-year and mortgage rates move this x the policy rate
    double spread_per_pp = 0.6;      ///< BBB spread widening per pp of unemployment rise
    double hpi_drag_per_year = 3.0;  ///< percent a year off house prices during the rise
  } recession;
  struct RateShock {
    double rate_per_year = 0;
    LogNormalDraw rise_pp;  ///< policy-rate rise, percentage points
    double pp_per_month = 0.25, hold_months = 12, unwind_pp_per_month = 0.1;
    double long_rate_beta = 0.6;
  } rate_shock;
  struct HousePriceCorrection {
    double rate_per_year = 0;
    LogNormalDraw decline;  ///< peak-to-trough fall of the house price index, fraction
    double decline_per_month = 0.005;
  } house_price_correction;
};

/// One drawn event of a generated scenario.
struct MacroEvent {
  enum Kind : int { kRecession, kRateShock, kHousePriceCorrection } kind = kRecession;
  int start = 0;      ///< month the event begins
  double size = 0;    ///< pp of unemployment or policy rate; fraction of HPI
  double months = 0;  ///< rise (recession), climb (rate shock) or decline (HPI) months
  bool operator==(const MacroEvent& o) const {
    return kind == o.kind && start == o.start && size == o.size && months == o.months;
  }
};

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
  /// Random events over the anchors, drawn per episode (`generator:`); off by default.
  ScenarioGenerator generator;

  /// The events of one episode (key), in start order, up to `months`: what MacroModel lays over
  /// the anchors. Empty without a generator.
  std::vector<MacroEvent> DrawEvents(uint64_t key, int months) const;
  /// The events' deviation at a month, added to the anchors (file units; HPI as a log change).
  static std::array<double, kNumMacroVars> EventOverlay(const ScenarioGenerator& g,
                                                        const std::vector<MacroEvent>& events,
                                                        int month);

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
    events_ = scenario_->DrawEvents(key_, kMaxEventMonths);  // a function of the key
  }
  const std::vector<MacroEvent>& events() const { return events_; }
  /// Events are drawn over this many months (the longest horizon, 1,200 months).
  static constexpr int kMaxEventMonths = 1201;

 private:
  std::shared_ptr<const Scenario> scenario_;
  Eigen::Matrix<double, kNumMacroVars, kNumMacroVars> chol_;  ///< innovation covariance factor
  Eigen::Matrix<double, kNumMacroVars, 1> deviation_;
  uint64_t key_ = 0;
  int month_ = -1;
  double rate_shift_ = 0;
  double hpi0_ = 1;
  MacroState state_;
  std::vector<MacroEvent> events_;
};

}  // namespace loantwin
