#pragma once
// The fund's stress report and frontier (docs/fund-model.md, "Stress report and frontier"):
// allocation policies - the equal-weight baseline, fixed weights ("weights:3,3,1,0,3,0") and
// trained home_equity_fund runs - on the same Monte Carlo paths of each scenario, with LP IRR,
// tails, every party's and tranche's outcome, covenant breaches and loss by zone; the report
// says at the top whether a policy breaches more than the baseline.

#include <memory>
#include <string>
#include <vector>

#include "cli/stress_common.h"
#include "env/fund/fund_monte_carlo.h"

namespace loantwin::cli {

/// Whether a policy spec ([label=]spec) names a fund policy: "weights:..." or a run directory
/// of the home_equity_fund environment.
bool IsFundPolicy(const std::string& spec);

/// `loantwin evaluate` on fund policies: runs, prints and writes report.{json,md,html} to out.
int RunFundEvaluate(const std::vector<std::string>& specs,
                    const std::vector<std::string>& scenarios, const std::string& fund_config,
                    bool with_baseline, const StressArgs& args, const std::string& out);
/// `loantwin frontier` on fund policies: return = mean LP IRR (or equity IRR), risk = the LP
/// IRR's 95% expected shortfall as a loss (lp_irr_es95) or a share of paths (breached, oc_fail).
int RunFundFrontier(const std::vector<std::string>& specs, const std::string& scenario,
                    const std::string& fund_config, const std::string& return_metric,
                    const std::string& risk_metric, bool with_baseline, const StressArgs& args,
                    const std::string& out);

/// The frontier axes for the fund.
const std::vector<std::string>& FundFrontierReturns();
const std::vector<std::string>& FundFrontierRisks();

}  // namespace loantwin::cli
