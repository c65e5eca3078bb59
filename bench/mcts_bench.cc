// Batched MCTS throughput: 64 environments x 50 simulations per search with a CartPole-sized
// MuZero network (obs 4, 2 actions, latent 64, one hidden layer of 64 per network, support 10).
// items_per_second = simulations per second (64 x 50 per search); counters split the time into
// network calls and tree work. MctsTreeOnly replaces the network by a trivial model to show the
// tree's own throughput. BM_MctsCartPoleFastNetwork evaluates the same networks in plain C++
// (FastSearchModel, the agent's search model) instead of LibTorch.

#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <vector>

#include "agents/mcts.h"
#include "agents/muzero_net.h"

namespace loantwin {
namespace {

constexpr int kEnvs = 64, kSims = 50, kActions = 2, kObs = 4;

void Run(benchmark::State& state, SearchModel& model, bool gumbel) {
  MctsConfig c;
  c.num_simulations = kSims;
  c.gumbel = gumbel;
  BatchedMcts mcts(kEnvs, kActions, model.latent_dim(), c);
  std::vector<float> obs(kEnvs * kObs);
  for (size_t k = 0; k < obs.size(); ++k) obs[k] = 0.01f * static_cast<float>(k % 17);
  const std::vector<uint8_t> masks(kEnvs * kActions, 1);
  double model_s = 0, tree_s = 0;
  uint64_t key = 0;
  for (auto _ : state) {
    mcts.Search(model, obs.data(), masks.data(), kEnvs, true, 1.0, key++);
    model_s += mcts.model_seconds();
    tree_s += mcts.tree_seconds();
  }
  state.SetItemsProcessed(state.iterations() * kEnvs * kSims);
  state.counters["network_share"] = model_s / (model_s + tree_s);
  state.counters["tree_us_per_sim"] =
      1e6 * tree_s / (static_cast<double>(state.iterations()) * kEnvs * kSims);
  state.counters["network_us_per_call"] =
      1e6 * model_s / (static_cast<double>(state.iterations()) * (kSims + 1));
}

MuZeroNet CartPoleNet() {
  at::set_num_threads(1);
  torch::manual_seed(1);
  MuZeroNetConfig c;
  c.latent_dim = 64;
  c.hidden = {64};
  c.support_size = 10;
  return MuZeroNet(kObs, kActions, c);
}

/// The networks through LibTorch (TorchSearchModel).
void BM_MctsCartPoleNetwork(benchmark::State& state) {
  TorchSearchModel model(CartPoleNet(), CategoricalSupport(10));
  Run(state, model, state.range(0) != 0);
}
BENCHMARK(BM_MctsCartPoleNetwork)
    ->Arg(0)
    ->Arg(1)
    ->ArgNames({"gumbel"})
    ->Unit(benchmark::kMillisecond);

/// The same networks in plain C++ (FastSearchModel, what the agent searches with).
void BM_MctsCartPoleFastNetwork(benchmark::State& state) {
  FastSearchModel model(CartPoleNet(), CategoricalSupport(10));
  Run(state, model, state.range(0) != 0);
}
BENCHMARK(BM_MctsCartPoleFastNetwork)
    ->Arg(0)
    ->Arg(1)
    ->ArgNames({"gumbel"})
    ->Unit(benchmark::kMillisecond);

/// Constant predictions: the tree's own cost.
class TrivialModel : public SearchModel {
 public:
  int latent_dim() const override { return 8; }
  void Initial(const float*, int n, float* latent, float* value, float* logits) override {
    std::fill(latent, latent + n * 8, 0.5f);
    std::fill(value, value + n, 0.0f);
    std::fill(logits, logits + n * kActions, 0.0f);
  }
  void Recurrent(const float* latent, const int32_t* actions, int n, float* next, float* reward,
                 float* value, float* logits) override {
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < 8; ++j) next[i * 8 + j] = latent[i * 8 + j] * 0.9f + 0.01f * actions[i];
      reward[i] = 0.1f * actions[i];
      value[i] = next[i * 8];
      logits[i * kActions] = 0, logits[i * kActions + 1] = 0.1f;
    }
  }
};

void BM_MctsTreeOnly(benchmark::State& state) {
  TrivialModel model;
  Run(state, model, state.range(0) != 0);
}
BENCHMARK(BM_MctsTreeOnly)->Arg(0)->Arg(1)->ArgNames({"gumbel"})->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace loantwin

BENCHMARK_MAIN();
