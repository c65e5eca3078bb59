#pragma once
// Subcommands of the `loantwin` CLI. Each registers its options and returns the function that
// runs it (exit code).

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdint>
#include <functional>
#include <string>

namespace loantwin {
class Collective;
struct ExperimentConfig;
}  // namespace loantwin

namespace loantwin::cli {

using Runner = std::function<int()>;

/// Trains `config` into `run_dir` (logs, metrics, checkpoints; resumes from its latest
/// checkpoint when `resume`), as `loantwin train` does.
/// With a group (distributed training) every rank calls it; rank 0 writes the run directory.
void TrainInto(const ExperimentConfig& config, const std::string& run_dir, bool resume,
               Collective* group = nullptr, bool check_parameters = false);

/// A seed option's check: a whole number from 0 to 2^64 - 1 (CLI11 alone lets a larger number
/// through, wrapped).
inline CLI::Validator SeedValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        uint64_t v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (text.empty() || ec != std::errc() || end != text.data() + text.size())
          return "'" + text + "' is not a whole number from 0 to 18446744073709551615";
        return "";
      },
      "UINT64");
}

/// The run-size options of the calibration commands: --paths, --seed and --threads.
inline void AddRunSizeOptions(CLI::App* cmd, int* paths, uint64_t* seed, int* threads) {
  cmd->add_option("--paths", *paths, "Monte Carlo paths")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--seed", *seed, "seed (>= 0)")->check(SeedValidator())->capture_default_str();
  cmd->add_option("--threads", *threads, "worker threads")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
}

Runner RegisterSimulate(CLI::App& app);
Runner RegisterList(CLI::App& app);
Runner RegisterCalibrate(CLI::App& app);
Runner RegisterBacktest(CLI::App& app);
Runner RegisterTrain(CLI::App& app);
Runner RegisterEvaluate(CLI::App& app);
Runner RegisterExport(CLI::App& app);
Runner RegisterFrontier(CLI::App& app);
Runner RegisterSweep(CLI::App& app);
Runner RegisterServe(CLI::App& app);
Runner RegisterFairness(CLI::App& app);
Runner RegisterExplain(CLI::App& app);
Runner RegisterValidate(CLI::App& app);
Runner RegisterAudit(CLI::App& app);
Runner RegisterLaunch(CLI::App& app);
Runner RegisterSync(CLI::App& app);
Runner RegisterSnapshot(CLI::App& app);
Runner RegisterMonitor(CLI::App& app);

}  // namespace loantwin::cli
