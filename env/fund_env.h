#pragma once
// The leveraged home-equity fund (env/fund/fund_model.h) as a two-role environment
// (docs/fund-model.md):
//   risk       quarterly  MultiDiscrete([5, 4, 4])   leverage target, max CLTV, min headroom
//   portfolio  monthly    MultiDiscrete([4] x Z, 2)  relative weight per zone, reinvest or not
// The risk role's levels mask the portfolio's zones (a zone whose lowest-LTV bucket is above the
// max CLTV, or whose share of the book is at max_zone_share, can only get weight 0). One step is
// one month; the episode ends (terminated) at the fund's term, when every contract is sold and
// the waterfall distributes everything.

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "env/fund/fund_model.h"
#include "env/multi_agent_env.h"

namespace loantwin {

class YamlValue;

enum FundRole : int { kFundRiskRole, kFundPortfolioRole };
inline constexpr int kNumFundRoles = 2;
inline constexpr std::array<const char*, kNumFundRoles> kFundRoleNames = {"risk", "portfolio"};
inline constexpr std::array<double, 5> kFundLeverageLevels = {0.0, 0.25, 0.5, 0.75, 1.0};
inline constexpr std::array<double, 4> kFundMaxCltvLevels = {0.6, 0.7, 0.8, 0.9};
inline constexpr std::array<double, 4> kFundHeadroomLevels = {0.0, 0.1, 0.2, 0.3};
inline constexpr std::array<double, 4> kFundZoneWeights = {0.0, 1.0, 2.0, 3.0};
/// Reward objectives of both roles: equity value created (per cent of the commitment per month),
/// covenant (-1 per month with a facility breach, -1 with a failing coverage test) and loss
/// (default losses, per cent of the commitment).
inline const std::vector<std::string> kFundObjectives = {"equity_value", "covenant", "loss"};

/// Columns of metric(): final-month IRRs and multiple of an episode (0 before its end), then
/// the month's state.
enum FundMetric : int {
  kLpIrr,
  kLpMultiple,
  kGpIrr,
  kEquityIrr,
  kSeniorIrr,
  kMezzanineIrr,
  kNav,
  kEquityNav,
  kLeverage,
  kFacilityBreach,
  kOcFail,
  kBreachMonths,
  kBreached,
  kDefaultLosses,
  kNumFundMetrics
};

/// What a finished episode leaves (read after the step that ended it, before the next).
struct FundEpisodeTotals {
  double gp_multiple = 0, senior_multiple = 0, mezzanine_multiple = 0;
  double lp_distributions = 0, gp_distributions = 0, gp_promote = 0, fees = 0;
  double default_losses = 0, senior_loss = 0, mezzanine_loss = 0;
  double final_lp_distribution = 0;  ///< the LPs' share of the liquidation
  int breach_months = 0, oc_fail_months = 0;
  std::vector<double> zone_invested, zone_defaults, zone_losses;
};

struct FundRoleConfig {
  FallbackPolicy fallback = FallbackPolicy::kBaseline;
  std::vector<std::pair<std::string, double>> reward_weights;
};

struct FundEnvConfig {
  std::string scenario = "steady_state";
  std::vector<std::string> scenarios;  ///< a mix: instance i runs scenarios[i mod k]
  FundConfig fund;
  std::array<FundRoleConfig, kNumFundRoles> roles = DefaultRoles();

  static std::array<FundRoleConfig, kNumFundRoles> DefaultRoles();
  /// Strict parse of env.config; ConfigError naming file, line and key.
  static FundEnvConfig Parse(const YamlValue& value);
  /// Loads a YAML file (ConfigError if missing or bad).
  static FundEnvConfig Load(const std::string& path);
  std::string ToYaml() const;
};

class HomeEquityFundEnv : public MultiAgentEnv {
 public:
  HomeEquityFundEnv(const EnvOptions& options, const FundEnvConfig& config = {});
  int version() const override { return 1; }
  std::string ConfigYaml() const override { return config_.ToYaml(); }
  const FundEnvConfig& config() const { return config_; }
  const FundPath& path(int i) const { return *paths_[i]; }
  void SetRewardWeights(int role,
                        const std::vector<std::pair<std::string, double>>& weights) override;
  /// lp_irr, lp_multiple, gp_irr, equity_irr, senior_irr, mezzanine_irr (final month of an
  /// episode; 0 before), nav, equity_nav, leverage (drawn / borrowing base), facility_breach,
  /// oc_fail (this month), breach_months, breached (1 once the facility was breached in the
  /// episode), default_losses (so far), each value in currency or fraction.
  const std::vector<std::string>& metric_names() const override;
  double metric(int i, int k) const override;
  std::string instance_label(int i) const override;
  /// The decisions role actions stand for on instance i.
  FundDecision Decode(int i) const;
  /// Totals of instance i's last finished episode.
  const FundEpisodeTotals& episode_totals(int i) const { return totals_[i]; }
  /// Wall time per stage of every step so far (simulate --profile); instance timers summed.
  FundTimers timers() const;
  void set_profile(bool on) { profile_ = on; }

 protected:
  void ResetInstance(int i, uint64_t episode) override;
  void StepInstances(int begin, int end) override;
  void WriteMasks(int role, int begin, int end) override;
  void BaselineActions(int role, int begin, int end, int32_t* out) override;
  void OnDecision(int role, int begin, int end) override;
  std::string ExplainMask(int role, int i, int dim) const override;
  void SaveInstances(StateWriter& w) const override;
  void LoadInstances(StateReader& r) override;

 private:
  void WriteObservations(int i);
  void Finalise(int i);

  FundEnvConfig config_;
  std::shared_ptr<const FundConfig> fund_;
  std::vector<std::shared_ptr<const Scenario>> scenarios_;
  std::vector<std::unique_ptr<FundPath>> paths_;
  std::vector<std::vector<double>> metrics_;  ///< [instance][metric] after the last step
  std::vector<FundTimers> timers_;
  std::vector<FundEpisodeTotals> totals_;
  std::array<std::vector<double>, kNumFundRoles> weights_;  ///< per objective
  int shared_dim_ = 0;
  bool profile_ = false;
};

}  // namespace loantwin
