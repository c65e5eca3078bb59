// The five-role multi-agent API on 64 cu_small instances and 2 threads, against the bare twin
// TwinBatch stepping the same instances with fixed levers. items_per_second = instance-steps/s.
// Overhead of the multi-agent layer = 1 - marl / bare (target: under 10%).

#include <benchmark/benchmark.h>

#include "env/twin/institution.h"
#include "env/twin/scenario.h"
#include "env/twin/twin_batch.h"
#include "env/twin_env.h"

namespace {

constexpr int kEnvs = 64;
constexpr int kThreads = 2;

void BM_MarlEnvStep(benchmark::State& state) {
  using namespace loantwin;
  EnvOptions o;
  o.num_envs = kEnvs;
  o.num_threads = kThreads;
  o.seed = 1;
  TwinEnvConfig c;
  c.institution = "cu_small";
  c.horizon_months = 100000;  // no resets inside the measurement
  TwinEnv env(o, c);
  env.Reset();
  for (auto _ : state) env.Step();  // every role on its rule-based baseline
  state.SetItemsProcessed(state.iterations() * kEnvs);
}

void BM_BareTwinStep(benchmark::State& state) {
  using namespace loantwin;
  const auto inst = LoadInstitution("cu_small");
  TwinBatchOptions o;
  o.num_envs = kEnvs;
  o.num_threads = kThreads;
  o.seed = 1;
  TwinBatch env(inst, LoadScenario("steady_state"), o);
  const std::vector<Levers> levers{DefaultLevers(*inst)};
  for (auto _ : state) env.Step(levers);
  state.SetItemsProcessed(state.iterations() * kEnvs);
}

// Both run the same number of months from the same initial books, so their loan books match
// in size over the measurement.
BENCHMARK(BM_MarlEnvStep)->Iterations(600)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_BareTwinStep)->Iterations(600)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
