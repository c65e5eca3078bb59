// Cost of one policy call of the decision server (PolicyBundle::Decide) by batch size
// (TorchScript interpreter, graph-executor optimisation off, one thread): the module as the
// server holds it (frozen at load: parameters inlined as constants), as exported (loaded
// unfrozen), and through torch::jit::optimize_for_inference.
// Usage: LOANTWIN_BUNDLE=<export dir> serve_policy_bench [--benchmark_...]

#include <benchmark/benchmark.h>
#include <torch/script.h>

#include <cstdlib>
#include <stdexcept>

#include "serve/bundle.h"

namespace {

using loantwin::PolicyBundle;

const PolicyBundle& Bundle() {
  static const auto bundle = [] {
    const char* dir = std::getenv("LOANTWIN_BUNDLE");
    if (!dir) throw std::runtime_error("set LOANTWIN_BUNDLE to an export directory");
    return PolicyBundle::Load(dir, "", 64);
  }();
  return *bundle;
}

void Decide(benchmark::State& state, int variant) {
  loantwin::ConfigureTorchThread();
  const loantwin::ServedRole& role = *Bundle().role("credit");
  loantwin::ServedRole copy = role;
  if (variant != 0) {
    const std::string file = std::string(std::getenv("LOANTWIN_BUNDLE")) + "/" + role.name + ".pt";
    copy.module = torch::jit::load(file);
    copy.module.eval();
    if (variant == 2) copy.module = torch::jit::optimize_for_inference(copy.module);
  }
  const int n = static_cast<int>(state.range(0));
  std::vector<float> obs(static_cast<size_t>(n) * role.features.size(), 0.25f);
  std::vector<uint8_t> mask(static_cast<size_t>(n) * role.mask_width, 1);
  for (int i = 0; i < 5; ++i) Bundle().Decide(copy, obs, mask, n);
  for (auto _ : state) benchmark::DoNotOptimize(Bundle().Decide(copy, obs, mask, n));
  state.SetItemsProcessed(state.iterations() * n);
}

BENCHMARK_CAPTURE(Decide, served_frozen, 0)->Arg(1)->Arg(8)->Arg(16)->Arg(64);
BENCHMARK_CAPTURE(Decide, exported_unfrozen, 1)->Arg(1)->Arg(8)->Arg(16)->Arg(64);
BENCHMARK_CAPTURE(Decide, optimize_for_inference, 2)->Arg(1)->Arg(8)->Arg(16)->Arg(64);

}  // namespace

BENCHMARK_MAIN();
