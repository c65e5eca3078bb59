// `loantwin train <experiment.yaml>`: trains the experiment's learning roles and writes a run
// directory (docs/training.md).

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>
#include <vector>

#include "cli/commands.h"
#include "cli/distributed_common.h"
#include "core/atomic_file.h"
#include "core/collective.h"
#include "training/checkpoint.h"
#include "training/metrics_logger.h"
#include "training/trainer.h"

namespace fs = std::filesystem;

namespace loantwin::cli {
namespace {

struct TrainArgs {
  std::string experiment;
  std::string out;
  std::string resume;
  bool overwrite = false;
  int threads = 0;
  int64_t total_steps = 0;
  DistributedArgs dist;
  bool check_parameters = false;
};

std::string NewRunDir(const ExperimentConfig& c) {
  char stamp[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", std::gmtime(&now));
  const fs::path base = fs::path(c.output_dir) / c.name / (std::string("run-") + stamp);
  fs::path dir = base;
  for (int k = 2; fs::exists(dir); ++k) dir = base.string() + "-" + std::to_string(k);
  return dir.string();
}

void PrintProgress(const TrainProgress& p, bool tty) {
  std::string returns;
  for (const auto& [role, r] : p.episodic_return)
    if (!std::isnan(r)) returns += fmt::format(" {}={:.2f}", role, r);
  const double eta = p.steps_per_second > 0 ? (p.total - p.step) / p.steps_per_second : 0;
  if (tty) {
    const int width = 30;
    const int filled =
        static_cast<int>(width * std::min(1.0, static_cast<double>(p.step) / p.total));
    fmt::print(stderr, "\r[{}{}] {}/{} steps  {:.0f} steps/s  ETA {:.0f}s  return{}   ",
               std::string(filled, '#'), std::string(width - filled, '.'), p.step, p.total,
               p.steps_per_second, eta, returns.empty() ? " n/a" : returns);
    std::fflush(stderr);
  } else {
    spdlog::info("step {}/{} ({:.0f} steps/s, ETA {:.0f}s) episodic return{}", p.step, p.total,
                 p.steps_per_second, eta, returns.empty() ? " n/a" : returns);
  }
}

/// "a.b.c" -> scalar text of every leaf of a YAML tree (sequences as their flow text).
void Flatten(const YAML::Node& node, const std::string& path,
             std::map<std::string, std::string>* out) {
  if (node.IsMap()) {
    for (auto it = node.begin(); it != node.end(); ++it)
      Flatten(it->second, path.empty() ? it->first.Scalar() : path + "." + it->first.Scalar(), out);
    return;
  }
  YAML::Emitter e;
  e << YAML::Flow << node;
  (*out)[path] = e.c_str();
}

/// Keys a resumed run may change: how long it runs and what it logs, not what it learns.
bool ChangeAllowedOnResume(const std::string& key) {
  for (const char* prefix : {"logging.", "checkpoint.", "evaluation."})
    if (key.rfind(prefix, 0) == 0) return true;
  return key == "total_steps" || key == "output_dir" || key == "env.threads";
}

/// Run files a used directory holds (what --overwrite removes).
const char* kRunFiles[] = {"config.yaml", "train.log",       "metrics.csv", "checkpoints",
                           "report",      "evaluation.json", "export"};

/// The accepted differences between `config` and the run's config.yaml; std::invalid_argument
/// listing the refused ones (the environment, roles, hyperparameters, seed: what is learned).
std::vector<std::string> CheckResumable(const ExperimentConfig& config,
                                        const std::string& run_dir) {
  const std::string file = run_dir + "/config.yaml";
  if (!fs::exists(file)) return {};
  std::map<std::string, std::string> before, after;
  Flatten(YAML::Load(ExperimentConfig::Load(file).ToYaml()), "", &before);
  Flatten(YAML::Load(config.ToYaml()), "", &after);
  std::vector<std::string> refused, accepted;
  std::set<std::string> keys;
  for (const auto& [k, v] : before) keys.insert(k);
  for (const auto& [k, v] : after) keys.insert(k);
  for (const auto& k : keys) {
    const auto b = before.find(k), a = after.find(k);
    const std::string was = b == before.end() ? "(absent)" : b->second;
    const std::string now = a == after.end() ? "(absent)" : a->second;
    if (was == now) continue;
    (ChangeAllowedOnResume(k) ? accepted : refused)
        .push_back(fmt::format("{}: {} -> {}", k, was, now));
  }
  if (!refused.empty())
    throw std::invalid_argument(fmt::format(
        "--resume {}: the experiment differs from the run's config.yaml in what the run learns "
        "({}); resume with the run's experiment, or start a new run (only total_steps, "
        "env.threads, output_dir, logging, checkpoint and evaluation may change)",
        run_dir, fmt::join(refused, "; ")));
  return accepted;
}

}  // namespace

void TrainInto(const ExperimentConfig& config, const std::string& run_dir, bool resume,
               Collective* group, bool check_parameters) {
  // Distributed: rank 0 owns the run directory (config, logs, metrics, checkpoints); every
  // rank trains its shard and takes part in the checkpoints.
  const bool root = group == nullptr || group->rank() == 0;
  // Everything that can be refused is checked before the run directory is touched.
  const std::vector<std::string> changes =
      resume && root ? CheckResumable(config, run_dir) : std::vector<std::string>{};
  Trainer trainer(config, group);
  trainer.SetParameterCheck(check_parameters);
  CheckpointManager checkpoints(run_dir + "/checkpoints", config.keep_checkpoints);
  RestoredCheckpoint restored;
  if (resume) {
    if (root && checkpoints.Latest().empty())
      throw std::invalid_argument("--resume " + run_dir + ": no checkpoint to resume from");
    restored = LoadNewestReadableCheckpoint(trainer, run_dir + "/checkpoints", /*resume=*/true);
  }
  if (root) {
    fs::create_directories(run_dir);
    auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(run_dir + "/train.log");
    auto logger =
        std::make_shared<spdlog::logger>("loantwin", spdlog::sinks_init_list{console, file});
    logger->flush_on(spdlog::level::info);
    if (group != nullptr)
      logger->set_pattern(
          fmt::format("[%Y-%m-%d %H:%M:%S.%e] [rank {}] [%^%l%$] %v", group->rank()));
    spdlog::set_default_logger(logger);
  } else {
    spdlog::set_level(spdlog::level::warn);  // rank 0 speaks for the run
  }
  if (!root) {
    trainer.SetCheckpointCallback([&](int64_t) { checkpoints.Save(trainer); });
    trainer.Train();
    checkpoints.Save(trainer);
    group->Barrier();  // rank 0 has written the last checkpoint
    return;
  }

  WriteFileAtomically(run_dir + "/config.yaml", [&](std::ostream& out) { out << config.ToYaml(); });
  for (const std::string& dir : {run_dir, run_dir + "/checkpoints"})
    for (const auto& f : RemoveStaleTemporaries(dir))
      spdlog::info("removed {} (a write interrupted in an earlier run)", f);
  if (resume) {
    for (const auto& s : restored.skipped)
      spdlog::warn("resume: passed over an unreadable checkpoint: {}", s);
    spdlog::info("resumed {} at step {}{}", restored.path, trainer.global_step(),
                 restored.skipped.empty() ? "" : " (the previous checkpoint)");
    for (const auto& c : changes) spdlog::info("resume: accepted change {}", c);
  }
  // Rows the interrupted run logged after the checkpoint are logged again as training redoes
  // those steps: the CSV drops them first.
  MetricsLogger metrics(run_dir, resume ? trainer.global_step() : -1);
  trainer.SetLogger(&metrics);
  const bool tty = ::isatty(STDERR_FILENO);
  trainer.SetProgressCallback([tty](const TrainProgress& p) { PrintProgress(p, tty); });
  trainer.SetCheckpointCallback([&](int64_t step) {
    const std::string path = checkpoints.Save(trainer);
    if (!tty) spdlog::info("checkpoint {} (step {})", path, step);
  });
  spdlog::info("training {} ({}; {} envs, {} threads{}) for {} steps into {}", config.name,
               config.env_name, config.num_envs, config.threads,
               group != nullptr ? fmt::format(" per rank, {} ranks", group->world_size()) : "",
               config.total_steps, run_dir);
  if (group != nullptr) {
    // The gradient all-reduce's message: one flat buffer of a role's parameters per update.
    for (int r = 0; r < trainer.env().num_roles(); ++r)
      if (trainer.agent(r) != nullptr) {
        const int64_t count = trainer.ParameterCount(r);
        spdlog::info("role {}: {} parameters ({} bytes per gradient all-reduce)",
                     trainer.env().role(r).name, count, 4 * count);
      }
  }
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t start = trainer.global_step();
  const Collective::Stats before = group != nullptr ? group->stats() : Collective::Stats{};
  trainer.Train();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (tty) fmt::print(stderr, "\n");
  const std::string last = checkpoints.Save(trainer);
  const TrainProgress p = trainer.Progress();
  if (group != nullptr) {
    const Collective::Stats after = group->stats();
    const int64_t calls = after.all_reduces - before.all_reduces;
    const double secs = after.all_reduce_seconds - before.all_reduce_seconds;
    spdlog::info(
        "all-reduces on rank 0: {} calls, {:.1f} MB, {:.2f} s ({:.0f}% of the run; {:.3f} ms "
        "per call)",
        calls, (after.all_reduce_bytes - before.all_reduce_bytes) / 1e6, secs,
        seconds > 0 ? 100 * secs / seconds : 0.0, calls > 0 ? 1e3 * secs / calls : 0.0);
  }
  if (check_parameters && group != nullptr)
    spdlog::info("parameters identical on all {} ranks after every update ({} checks)",
                 group->world_size(), trainer.parameter_checks());
  fmt::print("\ntrained {}: {} steps in {:.1f} s ({:.0f} steps/s)\n", config.name,
             trainer.global_step() - start, seconds, (trainer.global_step() - start) / seconds);
  for (const auto& [role, r] : p.episodic_return)
    fmt::print("  {:<11} mean episodic return (last {} episodes): {:.3f}\n", role,
               config.return_window, r);
  fmt::print(
      "run directory: {}\n  config.yaml, train.log, metrics.csv, events.out.tfevents.* "
      "(tensorboard --logdir {})\n  checkpoint: {}\n",
      run_dir, run_dir, last);
  if (group != nullptr) group->Barrier();
}

Runner RegisterTrain(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Train the learning roles of an experiment YAML");
  cmd->add_option("experiment", a->experiment, "experiment YAML (docs/training.md)")->required();
  cmd->add_option("--out", a->out, "run directory (default: <output_dir>/<name>/run-<time>)");
  cmd->add_option("--resume", a->resume,
                  "continue the run in this directory from its latest checkpoint");
  cmd->add_flag("--overwrite", a->overwrite,
                "with --out: replace a used run directory's files (config, logs, checkpoints)");
  cmd->add_option("--threads", a->threads, "environment threads (overrides env.threads)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--total-steps", a->total_steps, "override total_steps")
      ->check(CLI::Range(int64_t{1}, INT64_MAX));
  AddDistributedOptions(cmd, a->dist);
  cmd->add_flag("--check-parameters", a->check_parameters,
                "distributed: compare a hash of every updated role's parameters across the "
                "ranks after every update (debugging; one small all-reduce per update)");
  return [a] {
    if (a->dist.enabled && a->resume.empty() && a->out.empty())
      throw std::invalid_argument(
          "--distributed needs --out <run directory> (or --resume): every rank must name the "
          "same run");
    if (!a->dist.enabled && a->check_parameters)
      throw std::invalid_argument("--check-parameters compares ranks: it needs --distributed");
    ExperimentConfig config = ExperimentConfig::Load(a->experiment);
    Collective* group = JoinProcessGroup(a->dist);
    const bool root = group == nullptr || group->rank() == 0;  // owns the run directory
    if (a->threads > 0) config.threads = a->threads;
    if (a->total_steps > 0) config.total_steps = a->total_steps;
    if (!a->resume.empty() && !a->out.empty() && a->resume != a->out)
      throw std::invalid_argument(
          "give either --out or --resume, not both with different directories");
    const std::string run_dir = !a->resume.empty() ? a->resume
                                : !a->out.empty()  ? a->out
                                                   : NewRunDir(config);
    if (root && !a->resume.empty() && !fs::is_directory(run_dir))
      throw std::invalid_argument("--resume " + run_dir + ": no such run directory");
    if (a->overwrite && !a->resume.empty())
      throw std::invalid_argument("--overwrite starts a run afresh; it does not go with --resume");
    if (root && a->resume.empty() && fs::exists(run_dir)) {
      if (!fs::is_directory(run_dir))
        throw std::invalid_argument("--out " + run_dir + ": a file, not a directory");
      const bool used =
          fs::exists(run_dir + "/config.yaml") || fs::exists(run_dir + "/checkpoints");
      if (used && !a->overwrite)
        throw std::invalid_argument(
            "--out " + run_dir +
            ": a used run directory (config.yaml, checkpoints/); continue it with --resume " +
            run_dir + ", or replace it with --overwrite");
      if (used) {
        ExperimentConfig::Load(a->experiment);  // the new experiment is valid before we delete
        for (const char* f : kRunFiles) fs::remove_all(fs::path(run_dir) / f);
        for (const auto& e : fs::directory_iterator(run_dir))
          if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0)
            fs::remove(e.path());
      }
    }
    TrainInto(config, run_dir, !a->resume.empty(), group, a->check_parameters);
    return 0;
  };
}

}  // namespace loantwin::cli
