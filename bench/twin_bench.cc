// Single-thread step throughput of one twin instance, in loan-months per second
// (items_per_second). Target: >= 20 million loan-months/s per core for cu_mid.

#include <benchmark/benchmark.h>

#include "env/twin/institution.h"
#include "env/twin/levers.h"
#include "env/twin/scenario.h"
#include "env/twin/twin.h"

namespace {

void BM_TwinStep(benchmark::State& state, const char* preset, bool check) {
  using namespace loantwin;
  const auto inst = LoadInstitution(preset);
  TwinOptions opt;
  opt.check_invariants = check;
  Twin twin(inst, LoadScenario("steady_state"), 1, 0, opt);
  const Levers levers = DefaultLevers(*inst);
  std::vector<double> row(kNumMetrics);
  int64_t loan_months = 0;
  for (auto _ : state) {
    if (twin.month() >= 120) {
      state.PauseTiming();
      twin.Reset(twin.month());
      state.ResumeTiming();
    }
    loan_months += twin.num_loans();
    twin.Step(levers, row.data());
    benchmark::DoNotOptimize(row.data());
  }
  state.SetItemsProcessed(loan_months);
  state.counters["loans"] = static_cast<double>(twin.num_loans());
}

BENCHMARK_CAPTURE(BM_TwinStep, cu_small, "cu_small", false)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_TwinStep, cu_mid, "cu_mid", false)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_TwinStep, cu_large, "cu_large", false)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_TwinStep, cu_mid_checked, "cu_mid", true)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
