#pragma once
// Helpers for tests of learning agents: checkpoint/resume comparisons (train 2n steps straight,
// and n steps, checkpoint, resume in a fresh trainer and train to 2n) and export parity.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/counter_rng.h"
#include "tests/test_util.h"
#include "training/checkpoint.h"
#include "training/export.h"
#include "training/trainer.h"

namespace loantwin::testing {

/// A small twin experiment (cu_small, 8 envs, 24-month episodes) whose credit role learns with
/// PPO and pricing role with `pricing` ("ppo" or "dqn"): fast runs to evaluate, export, serve.
inline std::string TinyTwinExperiment(const std::string& name, int seed, int64_t total_steps,
                                      const std::string& pricing) {
  const std::string pricing_options =
      pricing == "dqn" ? "dqn: {learning_starts: 64, buffer_size: 1000, batch_size: 16}"
                       : "ppo: {num_steps: 16, num_minibatches: 2, update_epochs: 1}";
  return "name: " + name + "\nseed: " + std::to_string(seed) +
         "\ntotal_steps: " + std::to_string(total_steps) +
         "\nenv:\n  name: twin\n  num_envs: 8\n  threads: 1\n"
         "  config: {institution: cu_small, horizon_months: 24}\n"
         "roles:\n  credit:\n    agent: ppo\n"
         "    ppo: {num_steps: 16, num_minibatches: 2, update_epochs: 1}\n"
         "  pricing:\n    agent: " +
         pricing + "\n    " + pricing_options + "\n";
}

inline std::vector<torch::Tensor> LearnedParameters(Trainer& t) {
  std::vector<torch::Tensor> out;
  for (int r = 0; r < t.env().num_roles(); ++r)
    if (auto* a = t.agent(r))
      for (const auto& p : a->Parameters()) out.push_back(p.detach().clone());
  return out;
}

struct ResumeComparison {
  bool identical_parameters = false;
  double straight_return = 0, resumed_return = 0;  ///< role 0's mean episodic return
};

inline ResumeComparison CompareStraightAndResumed(const ExperimentConfig& config, int64_t n) {
  Trainer straight(config);
  straight.Train(2 * n);
  TempDir dir;
  CheckpointManager ckpt(dir.path(), 2);
  std::string path;
  int64_t first_steps = 0;
  {
    Trainer first(config);
    first.Train(n);  // may stop mid-rollout: the checkpoint carries the rollout in progress
    first_steps = first.global_step();
    path = ckpt.Save(first);
  }
  Trainer resumed(config);
  LoadCheckpoint(resumed, path);
  EXPECT_EQ(resumed.global_step(), first_steps);
  resumed.Train(2 * n);
  EXPECT_EQ(resumed.global_step(), straight.global_step());
  const auto a = LearnedParameters(straight), b = LearnedParameters(resumed);
  ResumeComparison c;
  c.identical_parameters = a.size() == b.size() && !a.empty();
  for (size_t k = 0; c.identical_parameters && k < a.size(); ++k)
    c.identical_parameters = torch::equal(a[k], b[k]);
  c.straight_return = straight.MeanEpisodicReturn(0);
  c.resumed_return = resumed.MeanEpisodicReturn(0);
  return c;
}

/// Trains, exports, reloads each role's module and checks its greedy decisions equal the agent's
/// ActAsExported (Act(deterministic) unless the algorithm exports another path) on random
/// observations and masks (small and large batches: agents may take different inference
/// paths); act_values decodes through the action value table.
inline void ExpectExportParity(const std::string& yaml, int64_t steps) {
  Trainer t(ExperimentConfig::Parse(YamlValue::LoadString(yaml, "exp.yaml")));
  t.Train(steps);
  TempDir dir;
  CheckpointManager ckpt(dir.path() + "/checkpoints", 1);
  const auto files = ExportRun(t, dir.path(), ckpt.Save(t), dir.path() + "/export");
  const std::string manifest = ReadFile(dir.path() + "/export/manifest.json");
  CounterRng rng(77);
  for (int r = 0; r < t.env().num_roles(); ++r) {
    Agent* agent = t.agent(r);
    if (!agent) continue;
    const RoleSpec& spec = t.env().role(r);
    EXPECT_NE(manifest.find("\"" + spec.name + "\""), std::string::npos);
    EXPECT_NE(manifest.find(spec.features.names().back()), std::string::npos);
    torch::jit::Module m = torch::jit::load(dir.path() + "/export/" + spec.name + ".pt");
    const int d = spec.obs_dim(), w = spec.action_space.mask_width();
    const int dims = spec.action_space.action_dims();
    for (int n : {4, 256}) {
      std::vector<float> obs(static_cast<size_t>(n) * d);
      for (auto& x : obs) x = static_cast<float>(3 * rng.Normal());
      // Random masks that allow at least one value per component.
      std::vector<uint8_t> mask(static_cast<size_t>(n) * w);
      for (int i = 0; i < n; ++i)
        for (int c = 0; c < dims; ++c) {
          const int off = spec.action_space.dims().mask_offset(c),
                    k = spec.action_space.dims().nvec()[c];
          for (int v = 0; v < k; ++v) mask[i * w + off + v] = rng.Uniform() < 0.6;
          mask[i * w + off + static_cast<int>(rng.Uniform() * k)] = 1;
        }
      std::vector<int32_t> expected(static_cast<size_t>(n) * dims);
      agent->ActAsExported(obs.data(), mask.data(), n, expected.data());
      const torch::Tensor obs_t = torch::from_blob(obs.data(), {n, d}).clone();
      const torch::Tensor mask_t = torch::from_blob(mask.data(), {n, w}, torch::kUInt8).clone();
      const torch::Tensor got = m.forward({obs_t, mask_t}).toTensor().contiguous();
      ASSERT_EQ(got.sizes(), (std::vector<int64_t>{n, dims}));
      for (int k = 0; k < n * dims; ++k)
        ASSERT_EQ(got.data_ptr<int64_t>()[k], expected[k]) << spec.name << " " << k;
      // act_values decodes indices through the action value table.
      const torch::Tensor values = m.get_method("act_values")({obs_t, mask_t}).toTensor();
      for (int c = 0; c < dims; ++c) {
        const int64_t idx = got[0][c].item<int64_t>();
        const double want =
            c < static_cast<int>(spec.action_values.size()) ? spec.action_values[c][idx] : idx;
        EXPECT_DOUBLE_EQ(values[0][c].item<double>(), want);
      }
    }
  }
}

}  // namespace loantwin::testing
