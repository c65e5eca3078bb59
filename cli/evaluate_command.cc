// `loantwin evaluate <run dir>`: the trained roles against the baselines on held-out seeds.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <sstream>

#include "cli/commands.h"
#include "env/atomic_file.h"
#include "training/checkpoint.h"
#include "training/evaluation.h"
#include "training/trainer.h"

namespace fs = std::filesystem;

namespace loantwin::cli {

Runner RegisterEvaluate(CLI::App& app) {
  struct Args {
    std::string run_dir, scenarios, out;
    int paths = 50, threads = 2;
    uint64_t seed = 1000003;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "evaluate", "Compare a run's trained roles with the baselines on held-out seeds");
  cmd->add_option("run_dir", a->run_dir, "run directory written by loantwin train")->required();
  cmd->add_option("--scenarios", a->scenarios,
                  "comma-separated scenario names or paths (twin; default: the training mix)");
  cmd->add_option("--paths", a->paths, "instances (episodes) per scenario and policy")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "evaluation seed (held out from training)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--threads", a->threads, "environment threads")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  cmd->add_option("--out", a->out, "JSON file (default: <run dir>/evaluation.json)");
  return [a] {
    const std::string config_path = a->run_dir + "/config.yaml";
    if (!fs::is_regular_file(config_path))
      throw std::invalid_argument(a->run_dir + ": not a run directory (no config.yaml)");
    Trainer trainer(ExperimentConfig::Load(config_path));
    CheckpointManager checkpoints(a->run_dir + "/checkpoints", 1000);
    const std::string latest = checkpoints.Latest();
    if (latest.empty()) throw std::invalid_argument(a->run_dir + ": no checkpoint to evaluate");
    LoadCheckpoint(trainer, latest);
    if (trainer.config().seed == a->seed)
      spdlog::warn("evaluation seed {} equals the training seed: results are not held out",
                   a->seed);
    EvaluationOptions o;
    o.paths = a->paths;
    o.threads = a->threads;
    o.seed = a->seed;
    std::stringstream ss(a->scenarios);
    for (std::string s; std::getline(ss, s, ',');)
      if (!s.empty()) o.scenarios.push_back(s);
    const auto results = Evaluate(trainer, o);
    std::vector<std::string> learning;
    for (int r = 0; r < trainer.env().num_roles(); ++r)
      if (trainer.HasPolicy(r)) learning.push_back(trainer.env().role(r).name);
    fmt::print("evaluation of {} (checkpoint {}), {} paths per policy, seed {}\n", a->run_dir,
               fs::path(latest).filename().string(), a->paths, a->seed);
    for (const auto& e : results) {
      fmt::print("\nscenario: {}\n", e.scenario.empty() ? "(training configuration)" : e.scenario);
      fmt::print("  {:<11} {:>22} {:>22} {:>10}\n", "role", "trained return", "baseline return",
                 "diff");
      for (const auto& [role, m] : e.trained.mean_return) {
        const bool learns = std::find(learning.begin(), learning.end(), role) != learning.end();
        fmt::print("  {:<11} {:>12.3f} +- {:<7.3f} {:>12.3f} +- {:<7.3f} {:>+10.3f}{}\n", role, m,
                   e.trained.std_return.at(role), e.baseline.mean_return.at(role),
                   e.baseline.std_return.at(role), m - e.baseline.mean_return.at(role),
                   learns ? "  (policy)" : "");
      }
      for (const auto& [k, v] : e.trained.mean_decision)
        fmt::print("  decision {:<31} trained mean {:>9.4f}\n", k, v);
      for (const auto& [k, v] : e.trained.portfolio)
        fmt::print("  {:<24} trained {:>14.4f}   baseline {:>14.4f}\n", k, v,
                   e.baseline.portfolio.at(k));
    }
    const std::string out = a->out.empty() ? a->run_dir + "/evaluation.json" : a->out;
    WriteFileAtomically(out, [&](std::ostream& s) { s << EvaluationJson(results, learning); });
    fmt::print("\nwrote {}\n", out);
    return 0;
  };
}

}  // namespace loantwin::cli
