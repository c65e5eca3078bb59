// TwinBatch scaling: 16 cu_small instances stepped on 1 and 2 threads. Target: 2 threads >= 1.7x
// one thread (compare items_per_second = instance-months per second).

#include <benchmark/benchmark.h>

#include "env/twin/institution.h"
#include "env/twin/levers.h"
#include "env/twin/scenario.h"
#include "env/twin/twin_batch.h"

namespace {

void BM_TwinBatchStep(benchmark::State& state) {
  using namespace loantwin;
  const auto inst = LoadInstitution("cu_small");
  TwinBatchOptions o;
  o.num_envs = 16;
  o.num_threads = static_cast<int>(state.range(0));
  o.seed = 1;
  TwinBatch env(inst, LoadScenario("steady_state"), o);
  const std::vector<Levers> levers{DefaultLevers(*inst)};
  int64_t steps = 0;
  for (auto _ : state) {
    if (env.twin(0).month() >= 120) {
      state.PauseTiming();
      env.Reset(env.twin(0).month());
      state.ResumeTiming();
    }
    env.Step(levers);
    steps += o.num_envs;
  }
  state.SetItemsProcessed(steps);
}

BENCHMARK(BM_TwinBatchStep)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
