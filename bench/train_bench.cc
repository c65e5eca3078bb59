// Training throughput of an experiment against its environment-only bound, with the time budget
// of the training loop per component (docs/performance.md, "Training time budget").
//
//   train_bench <experiment.yaml> [steps=200000] [env-only steps=50000] [--distributed]
//
// --distributed: one rank of a distributed run (launched by `loantwin launch` or torchrun;
// docs/distributed.md): steps count every rank's, and each rank prints its own budget
// (collectives are inside the updates).
//
// 1. Environment only: the experiment's environment (same instances, threads, seed) stepped with
//    every role on its rule-based baseline - the bound a training loop can approach.
// 2. Training: the experiment's Trainer for its first `steps` environment steps (steps summed
//    over instances, as total_steps counts them) with metrics logged to a temporary run
//    directory as `loantwin train` does; checkpoints are not written (their cost is reported
//    separately: one Save of the trained state).
// Prints steps/s of both and the training loop's budget.

#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "agents/agent.h"
#include "core/collective.h"
#include "distributed/process_group.h"
#include "training/experiment.h"
#include "training/metrics_logger.h"
#include "training/trainer.h"

namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace loantwin;
  bool distributed = false;
  if (argc > 1 && std::string(argv[argc - 1]) == "--distributed") distributed = true, --argc;
  if (argc < 2 || argc > 4) {
    std::fprintf(stderr,
                 "usage: %s <experiment.yaml> [steps=200000] [env-only steps=50000] "
                 "[--distributed]\n",
                 argv[0]);
    return 2;
  }
  try {
    std::unique_ptr<Collective> group;
    if (distributed) group = CreateProcessGroup(ReadLaunchEnv(), GroupOptions{});
    ExperimentConfig config = ExperimentConfig::Load(argv[1]);
    const int64_t steps = argc > 2 ? std::stoll(argv[2]) : 200000;
    const int64_t env_steps = argc > 3 ? std::stoll(argv[3]) : 50000;
    config.total_steps = steps;
    config.checkpoint_every_steps = 0;
    config.eval_every_steps = 0;

    Trainer trainer(config, group.get());
    MultiAgentEnv& env = trainer.env();
    const int n = env.num_envs();
    double env_rate = 0;
    {  // environment only, on a second environment built like the trainer's
      ExperimentConfig bare = config;
      for (auto& [name, rc] : bare.roles) {
        rc.agent = "baseline";
        rc.options = {};
        rc.has_rewards = false;
      }
      Trainer baseline(bare);
      MultiAgentEnv& e = baseline.env();
      const int64_t iters = std::max<int64_t>(1, env_steps / n);
      for (int64_t k = 0; k < std::min<int64_t>(iters / 10, 50); ++k) e.Step();  // warm-up
      const double t0 = Now();
      for (int64_t k = 0; k < iters; ++k) e.Step();
      env_rate = static_cast<double>(iters * n) / (Now() - t0);
    }

    const std::string dir = fmt::format("/tmp/loantwin-train-bench-{}", ::getpid());
    std::filesystem::create_directories(dir);
    MetricsLogger logger(dir);
    trainer.SetLogger(&logger);
    const double t0 = Now();
    trainer.Train();
    const double seconds = Now() - t0;
    const double rate = static_cast<double>(trainer.global_step()) / seconds;
    double save_seconds = 0;
    {
      torch::serialize::OutputArchive archive;
      const double s0 = Now();
      trainer.Save(archive);
      archive.save_to(dir + "/state.pt");
      save_seconds = Now() - s0;
    }
    std::filesystem::remove_all(dir);

    const TimeBudget& b = trainer.budget();
    if (group) std::printf("rank %d of %d:\n", group->rank(), group->world_size());
    std::printf("experiment %s: %d instances, %d env threads\n", config.name.c_str(), n,
                config.threads);
    std::printf("environment only (baselines): %.0f steps/s\n", env_rate);
    std::printf(
        "training, first %lld steps: %.0f steps/s (%.1f s; %.0f%% of the environment-only "
        "rate)\n",
        static_cast<long long>(trainer.global_step()), rate, seconds, 100.0 * rate / env_rate);
    std::printf("\n| component | seconds | share | us per vector step |\n|---|---|---|---|\n");
    const double vsteps =
        static_cast<double>(trainer.global_step()) / n / (group ? group->world_size() : 1);
    auto Row = [&](const std::string& name, double s) {
      std::printf("| %s | %.2f | %.1f%% | %.0f |\n", name.c_str(), s, 100.0 * s / b.total,
                  1e6 * s / vsteps);
    };
    Row("environment step", b.env_step);
    double accounted = b.env_step;
    for (int r = 0; r < env.num_roles(); ++r) {
      const std::string& role = env.role(r).name;
      Agent* agent = trainer.agent(r);
      const std::string how = agent ? agent->algorithm() : "baseline/frozen";
      Row(role + " act (" + how + ")", b.act[r]);
      accounted += b.act[r];
      if (!agent) continue;
      Row(role + " observe", b.observe[r]);
      Row(role + " update (its thread)", b.update[r]);
      accounted += b.observe[r];
    }
    Row("updates, wall (roles concurrently on the learner threads)", b.update_wall);
    accounted += b.update_wall;
    Row("bookkeeping (returns, global state)", b.bookkeeping);
    Row("logging", b.logging);
    accounted += b.bookkeeping + b.logging;
    Row("unaccounted", b.total - accounted);
    Row("total", b.total);
    std::printf("\none checkpoint (Save + write): %.3f s\n", save_seconds);
    if (group) {
      const Collective::Stats st = group->stats();
      std::printf(
          "all-reduces: %lld calls, %.1f MB (%.0f bytes per call), %.2f s (%.3f ms per call, "
          "%.0f%% of training)\n",
          static_cast<long long>(st.all_reduces), st.all_reduce_bytes / 1e6,
          st.all_reduces ? static_cast<double>(st.all_reduce_bytes) / st.all_reduces : 0.0,
          st.all_reduce_seconds,
          st.all_reduces ? 1e3 * st.all_reduce_seconds / st.all_reduces : 0.0,
          100.0 * st.all_reduce_seconds / seconds);
      for (int r = 0; r < env.num_roles(); ++r)
        if (trainer.agent(r) != nullptr)
          std::printf("role %s: %lld parameters\n", env.role(r).name.c_str(),
                      static_cast<long long>(trainer.ParameterCount(r)));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
