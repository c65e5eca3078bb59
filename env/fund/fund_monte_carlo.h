#pragma once
// Monte Carlo of the home-equity fund environment (docs/fund-model.md): `paths` fund lives on
// one scenario, decided by the roles' fallbacks (baseline: equal weight; random) or a policy
// (RoleDriver), reduced into per-path results and monthly bands. Path p is instance p of the
// seed whatever the batch size or thread count, so results do not depend on either.

#include <functional>
#include <string>
#include <vector>

#include "env/fund_env.h"
#include "env/policy_monte_carlo.h"

namespace loantwin {

/// One fund life's results (IRRs annualised; NaN where undefined).
struct FundPathResult {
  double lp_irr = 0, lp_multiple = 0, gp_irr = 0, gp_multiple = 0, equity_irr = 0;
  double senior_irr = 0, senior_multiple = 0, mezzanine_irr = 0, mezzanine_multiple = 0;
  double lp_distributions = 0, gp_distributions = 0, gp_promote = 0, fees = 0;
  double default_losses = 0;
  int breach_months = 0, oc_fail_months = 0;
  double max_leverage = 0;                     ///< drawn / borrowing base, the largest month
  double senior_loss = 0, mezzanine_loss = 0;  ///< principal not repaid at the end
};

struct FundRun {
  std::string scenario;
  int paths = 0, months = 0;
  std::vector<std::string> zones;
  std::vector<FundPathResult> results;  ///< per path
  /// Per zone: invested, defaulted cost and losses summed over paths.
  std::vector<double> zone_invested, zone_defaults, zone_losses;
  /// Monthly series [month][path]: NAV, equity NAV, distributions to the LPs, drawn balance.
  std::vector<std::vector<double>> nav, equity_nav, lp_distributions, drawn;
  FundTimers timers;
  double seconds = 0;
};

struct FundMonteCarloOptions {
  int paths = 1000;
  uint64_t seed = 1;
  int threads = 1;
  int batch = 256;       ///< instances alive at once
  bool profile = false;  ///< time the stages (FundTimers)
  bool keep_series = true;
  std::function<void(int done)> progress;
};

/// Runs the fund: roles the driver decides (when not null), the others by `fallback`.
FundRun RunFundMonteCarlo(const FundEnvConfig& config, FallbackPolicy fallback,
                          const FundMonteCarloOptions& options, RoleDriver* driver = nullptr);

/// Value at risk and expected shortfall of a return across paths at level alpha (0.95): the
/// alpha-tail of *low* returns: VaR = the (1 - alpha) quantile, ES = the mean below it. NaNs
/// (undefined IRRs: nothing back) count as -100%.
struct TailRisk {
  double var = 0, es = 0;
};
TailRisk ReturnTail(std::vector<double> returns, double alpha);

}  // namespace loantwin
