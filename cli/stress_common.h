#pragma once
// Options, policy loading, progress bar and console summary shared by `evaluate`, `frontier`
// and `sweep`.

#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/collective.h"
#include "report/stress_report.h"
#include "training/stress.h"

namespace loantwin::cli {

struct StressArgs {
  int paths = 1000, months = 120, threads = 0;
  int batch = 0;  ///< instances alive at once; 0: the environment's (twin 64, fund 256)
  int exact_band_paths = 1000;
  std::string institution;
  uint64_t seed = 1000003;
  bool no_charts = false;
  std::string applicant_groups;  ///< fair-lending section ("" = none)
  std::string metric_bands_dir;  ///< every metric's bands per scenario and policy ("" = none)
};

void AddStressOptions(CLI::App* cmd, StressArgs& args);
/// Loads the policy sets; warns when a run's training seed equals the evaluation seed or when
/// it was trained on another institution.
std::vector<std::unique_ptr<StressPolicy>> LoadPolicies(const std::vector<std::string>& specs,
                                                        const StressArgs& args);
/// RunStress with a progress bar over paths x scenarios x policies (on a terminal) or log lines.
/// With a group (distributed evaluation) only rank 0 shows progress and gets the report.
StressReport RunStressWithProgress(const std::vector<std::unique_ptr<StressPolicy>>& policies,
                                   const std::vector<std::string>& scenarios,
                                   const StressArgs& args, Collective* group = nullptr);
void PrintStressSummary(const StressReport& report);
/// "a,b,c" -> {"a", "b", "c"} (empty items dropped): the --scenarios lists.
std::vector<std::string> SplitCommaList(const std::string& text);
/// The policy specs with "baseline" first, unless one is listed or `no_baseline`.
std::vector<std::string> WithBaseline(std::vector<std::string> specs, bool no_baseline);

}  // namespace loantwin::cli
