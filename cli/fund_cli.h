#pragma once
// The home-equity fund's side of the commands (docs/fund-model.md): `simulate --env
// home_equity_fund` and the fund's stress report and frontier.

#include <cstdint>
#include <string>
#include <vector>

#include "env/fund/fund_monte_carlo.h"

namespace loantwin::cli {

struct FundSimulateArgs {
  std::string config;    ///< fund YAML (env.config keys); "" = the built-in default
  std::string scenario;  ///< overrides the config's scenario when not empty
  std::string policy = "baseline";
  int paths = 1000;
  uint64_t seed = 1;
  int threads = 1;
  int batch = 256;
  bool profile = false;
  std::string out;  ///< CSV of monthly bands
};

/// Loads the fund config (the file's keys are env.config's; an experiment file's env.config
/// is accepted too); ConfigError naming the file and key.
FundEnvConfig LoadFundConfig(const std::string& path);
int RunFundSimulate(const FundSimulateArgs& args);

/// Per-path summary table of a run (stdout): IRRs, multiples, tails, breaches.
void PrintFundSummary(const FundRun& run);
/// Loss by zone table (stdout).
void PrintZoneLosses(const FundRun& run);

}  // namespace loantwin::cli
