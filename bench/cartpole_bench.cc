// Vectorised CartPole through the multi-agent API: items_per_second = environment steps/s.
// Target: >= 20 million steps/s per core (single thread; EnvPool's C++ CartPole is the
// yardstick). Actions come from outside (the agent's path), validated against the masks.

#include <benchmark/benchmark.h>

#include <vector>

#include "env/cartpole.h"

namespace {

void BM_CartPoleStep(benchmark::State& state) {
  using namespace loantwin;
  EnvOptions o;
  o.num_envs = static_cast<int>(state.range(0));
  o.num_threads = static_cast<int>(state.range(1));
  o.seed = 1;
  CartPoleEnv env(o);
  env.Reset();
  std::vector<int32_t> actions(o.num_envs);
  for (int i = 0; i < o.num_envs; ++i) actions[i] = i & 1;
  for (auto _ : state) {
    env.Act(0, actions.data());
    env.Step();
  }
  state.SetItemsProcessed(state.iterations() * o.num_envs);
}

BENCHMARK(BM_CartPoleStep)
    ->ArgNames({"envs", "threads"})
    ->Args({256, 1})
    ->Args({4096, 1})
    ->Args({4096, 2})
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
