// Agents: distributions, normalisers, GAE, and PPO learning CartPole.

#include <gtest/gtest.h>

#include <cmath>

#include "agents/distributions.h"
#include "agents/mlp.h"
#include "agents/normalizer.h"
#include "agents/ppo.h"
#include "agents/rollout_buffer.h"
#include "agents/sum_tree.h"
#include "core/counter_rng.h"
#include "training/trainer.h"

namespace loantwin {
namespace {

TEST(Distributions, MaskedCategoricalNeverSamplesMaskedActions) {
  const torch::Tensor logits = torch::tensor({{5.0f, 0.0f, 0.0f, 1.0f}}).repeat({2000, 1});
  const torch::Tensor mask = torch::tensor({{0, 1, 1, 0}}, torch::kUInt8).repeat({2000, 1});
  const auto dist = MaskedCategorical(logits, mask);
  const torch::Tensor a = dist.Sample(torch::rand({2000, 1})).squeeze(1);
  EXPECT_EQ(((a == 0) | (a == 3)).sum().item<int64_t>(), 0);
  EXPECT_GT((a == 1).sum().item<int64_t>(), 800);  // ~uniform over the two allowed actions
  EXPECT_GT((a == 2).sum().item<int64_t>(), 800);
  EXPECT_NEAR(dist.Entropy()[0].item<float>(), std::log(2.0f), 1e-5);  // masked ones add nothing
  EXPECT_NEAR(dist.LogProb(torch::tensor({{1}}).repeat({2000, 1}))[0].item<float>(), std::log(0.5f),
              1e-5);
  EXPECT_EQ(dist.Mode()[0][0].item<int64_t>(), 1);
}

TEST(Distributions, MultiCategoricalSumsOverComponents) {
  const torch::Tensor logits = torch::zeros({3, 5});  // nvec {2, 3}: uniform components
  const MultiCategorical dist(logits, {2, 3});
  EXPECT_NEAR(dist.Entropy()[0].item<float>(), std::log(2.0f) + std::log(3.0f), 1e-5);
  const torch::Tensor a = torch::tensor({{1, 2}, {0, 0}, {1, 1}});
  EXPECT_NEAR(dist.LogProb(a)[2].item<float>(), std::log(1.0 / 6), 1e-5);
  // Inverse CDF: u just below 1/2 picks 0 in the first component, 0.99 picks the last value.
  const torch::Tensor s = dist.Sample(torch::tensor({{0.49f, 0.99f}, {0.51f, 0.0f}, {0.0f, 0.5f}}));
  EXPECT_EQ(s[0][0].item<int64_t>(), 0);
  EXPECT_EQ(s[0][1].item<int64_t>(), 2);
  EXPECT_EQ(s[1][0].item<int64_t>(), 1);
  EXPECT_EQ(s[2][1].item<int64_t>(), 1);
}

TEST(Distributions, DiagGaussianLogProbAndEntropy) {
  const DiagGaussian g(torch::zeros({1, 2}), torch::zeros({2}));
  EXPECT_NEAR(g.LogProb(torch::zeros({1, 2}))[0].item<float>(), -std::log(2 * M_PI), 1e-5);
  EXPECT_NEAR(g.Entropy()[0].item<float>(), 1.0 + std::log(2 * M_PI), 1e-5);
}

TEST(Mlp, OrthogonalInitWithGains) {
  torch::manual_seed(0);
  Mlp mlp(8, std::vector<int64_t>{16}, 4, 0.01);
  auto* hidden = mlp->layers[0]->as<torch::nn::Linear>();
  auto* out = mlp->layers[1]->as<torch::nn::Linear>();
  // Orthogonal rows scaled by the gain: W W^T = gain^2 I for a wide-enough matrix.
  const torch::Tensor wwt = out->weight.matmul(out->weight.t());
  EXPECT_TRUE(torch::allclose(wwt, 1e-4 * torch::eye(4), 1e-6, 1e-6));
  EXPECT_EQ(hidden->bias.abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(mlp->forward(torch::zeros({3, 8})).sizes(), (std::vector<int64_t>{3, 4}));
}

TEST(Distributions, UnequalComponentsMatchEachComponentAlone) {
  // The padded [B, D, max n_d] block must give each component's own log-softmax, entropy and
  // gradients: compare with the components computed one by one.
  torch::manual_seed(3);
  const std::vector<int64_t> nvec = {2, 5, 3};
  const torch::Tensor logits = torch::randn({4, 10}).requires_grad_(true);
  torch::Tensor mask = torch::ones({4, 10}, torch::kUInt8);
  mask[1][3] = 0, mask[2][9] = 0;
  const MultiCategorical dist(logits, nvec, mask);
  const torch::Tensor a = torch::tensor({{1, 4, 2}, {0, 0, 1}, {1, 2, 0}, {0, 3, 2}});
  torch::Tensor want_lp = torch::zeros({4}), want_ent = torch::zeros({4});
  const torch::Tensor masked = logits.masked_fill(mask.to(torch::kBool).logical_not(), -1e8);
  int64_t off = 0;
  for (size_t d = 0; d < nvec.size(); ++d) {
    const torch::Tensor lp = torch::log_softmax(masked.narrow(1, off, nvec[d]), 1);
    want_lp = want_lp + lp.gather(1, a.select(1, d).unsqueeze(1)).squeeze(1);
    want_ent = want_ent - (lp.exp() * lp).sum(1);
    off += nvec[d];
  }
  EXPECT_TRUE(torch::allclose(dist.LogProb(a), want_lp, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(dist.Entropy(), want_ent, 1e-5, 1e-6));
  const torch::Tensor g =
      torch::autograd::grad({(dist.LogProb(a) + dist.Entropy()).sum()}, {logits})[0];
  const torch::Tensor want_g = torch::autograd::grad({(want_lp + want_ent).sum()}, {logits})[0];
  EXPECT_TRUE(torch::allclose(g, want_g, 1e-5, 1e-6));
  // Sampling never picks a masked value or a padding slot; u near 1 picks the last allowed one.
  const torch::Tensor s = dist.Sample(torch::full({4, 3}, 0.999999f));
  EXPECT_EQ(s[2][2].item<int64_t>(), 1);  // value 2 of the third component is masked in row 2
  EXPECT_TRUE((s.select(1, 0) < 2).all().item<bool>());
  EXPECT_TRUE((s.select(1, 2) < 3).all().item<bool>());
  EXPECT_NE(dist.Mode()[1][1].item<int64_t>(), 1);  // column 3 = second component's value 1
}

TEST(Mlp, FastForwardMatchesLibTorch) {
  torch::manual_seed(1);
  for (const Activation act : {Activation::kTanh, Activation::kRelu}) {
    Mlp mlp(37, std::vector<int64_t>{64, 64}, 11, 1.0, act);
    const torch::Tensor x = torch::randn({33, 37}) * 3;
    const torch::Tensor want = mlp->forward(x).detach();
    std::vector<float> got(33 * 11);
    mlp->ForwardFast(x.data_ptr<float>(), 33, got.data());
    const torch::Tensor diff = (torch::from_blob(got.data(), {33, 11}) - want).abs();
    EXPECT_LT(diff.max().item<float>(), 1e-5f * std::max(1.0f, want.abs().max().item<float>()));
  }
}

// The hand-written PPO gradient (fused_update) against LibTorch autograd on the same rollout:
// masked multi-discrete actions, ratios inside and outside the clip range, clipped and plain
// value loss, tanh and relu; and the imitation phase's cross-entropy loss (variants 4, 5; 5 with
// label smoothing). Same losses, gradient norms and parameters after four Adam steps.
TEST(Ppo, FusedUpdateMatchesAutograd) {
  const std::vector<int64_t> nvec = {3, 5, 2};
  const int obs_dim = 6, envs = 4, steps = 16, width = 10, dims = 3;
  // Variants 2 and 3 add two cost channels (PPO-Lagrangian's cost critic and advantages).
  for (int variant = 0; variant < 8; ++variant) {
    const int costs = variant == 2 || variant == 3 || variant == 5 || variant == 7 ? 2 : 0;
    const bool imitation = variant == 4 || variant == 5;
    const bool anchored = variant >= 6;  // PPO after an imitation update, near its policy
    RolloutBuffer buffer(envs, obs_dim, obs_dim, dims, width, 0.99, 0.95, costs);
    uint64_t counter = 0;
    auto uniform = [&] { return ToUniform(RandomBits(77, counter++)); };
    for (int t = 0; t < steps; ++t)
      for (int i = 0; i < envs; ++i) {
        float obs[obs_dim];
        for (float& o : obs) o = static_cast<float>(4 * uniform() - 2);
        uint8_t mask[width];
        int32_t action[dims];
        double logp = 0;
        int off = 0;
        for (int d = 0; d < dims; ++d) {
          int allowed = 0;
          for (int v = 0; v < nvec[d]; ++v) allowed += mask[off + v] = uniform() < 0.7 || v == 0;
          action[d] = 0;
          for (int v = 0; v < nvec[d]; ++v)
            if (mask[off + v] && uniform() < 0.5) action[d] = v;
          logp += -std::log(static_cast<double>(allowed));
          off += static_cast<int>(nvec[d]);
        }
        // Near the (almost uniform) initial policy: ratios both inside and outside the clip.
        const float old_logp = static_cast<float>(logp + 0.6 * (uniform() - 0.5));
        const float cost_values[2] = {static_cast<float>(uniform()),
                                      static_cast<float>(0.2 * uniform())};
        buffer.Open(i, obs, obs, mask, action, old_logp, static_cast<float>(uniform() - 0.5),
                    costs ? cost_values : nullptr);
        const float step_costs[2] = {static_cast<float>(uniform() < 0.3),
                                     static_cast<float>(0.05 * uniform())};
        buffer.AddReward(i, static_cast<float>(2 * uniform() - 1), costs ? step_costs : nullptr);
        const float final_costs[2] = {0.5f, 0.01f};
        if (t % 7 == 6) buffer.EndEpisode(i, t % 2 == 0, 0.3f, costs ? final_costs : nullptr);
      }
    const float last[envs] = {0.1f, -0.2f, 0.3f, 0.0f};
    const float last_costs[2 * envs] = {0.2f, 0.0f, 0.4f, 0.1f, 0.0f, 0.0f, 1.0f, 0.02f};
    buffer.Finish(last, costs ? last_costs : nullptr);
    const float lambdas[2] = {1.5f, 20.0f};
    PpoConfig c;
    c.learning_rate = 1e-3;
    c.num_minibatches = 2;
    c.update_epochs = 2;
    c.max_grad_norm = variant % 2 == 0 ? 1e9 : 0.5;  // no clip / clipped
    c.clip_vloss = variant % 2 == 0;
    c.activation = variant % 2 == 0 ? "tanh" : "relu";
    c.ent_coef = 0.05;
    c.imitation_fraction = imitation || anchored ? 1.0 : 0.0;
    c.imitation_kl_coef = anchored ? 3.0 : 0.0;
    c.imitation_smoothing = variant == 5 ? 0.2 : 0.0;  // smoothed targets (masked components)
    c.fused_update = false;
    PpoAgent reference(obs_dim, obs_dim, nvec, envs, c, 5, 1, costs);
    c.fused_update = true;
    PpoAgent fused(obs_dim, obs_dim, nvec, envs, c, 5, 1, costs);
    EXPECT_EQ(fused.learns_costs(), costs > 0);
    if (anchored) {  // the one planned update imitates; the next ones stay near its result
      reference.Update(buffer, 0.0, costs ? lambdas : nullptr);
      fused.Update(buffer, 0.0, costs ? lambdas : nullptr);
    }
    const UpdateStats want = reference.Update(buffer, 0.0, costs ? lambdas : nullptr);
    const UpdateStats got = fused.Update(buffer, 0.0, costs ? lambdas : nullptr);
    for (const char* key :
         {"losses/policy_loss", "losses/value_loss", "losses/entropy", "losses/grad_norm",
          "losses/approx_kl", "losses/clipfrac", "losses/cost_value_loss", "losses/imitation_loss",
          "losses/imitation_accuracy", "losses/anchor_kl"}) {
      if (!costs && std::string(key) == "losses/cost_value_loss") continue;
      if ((!imitation && std::string(key).find("imitation") != std::string::npos) ||
          (!anchored && std::string(key) == "losses/anchor_kl")) {
        EXPECT_FALSE(want.count(key)) << key;
        continue;
      }
      ASSERT_TRUE(want.count(key)) << key;
      EXPECT_NEAR(got.at(key), want.at(key), 1e-5 * std::max(1.0, std::abs(want.at(key))))
          << key << " variant " << variant;
    }
    if (imitation) {  // the actor's loss is the demonstrations' cross-entropy
      EXPECT_DOUBLE_EQ(want.at("losses/policy_loss"), want.at("losses/imitation_loss"));
      EXPECT_GT(want.at("losses/imitation_loss"), 0.5);
    } else if (anchored) {
      EXPECT_GT(want.at("losses/anchor_kl"), 1e-6);  // the policy moved away and was pulled back
    } else {
      EXPECT_GT(want.at("losses/clipfrac"), 0.05);  // the clipped branch is exercised
      EXPECT_LT(want.at("losses/clipfrac"), 0.95);
    }
    const auto a = reference.Parameters(), b = fused.Parameters();
    ASSERT_EQ(a.size(), b.size());
    for (size_t k = 0; k < a.size(); ++k)
      EXPECT_LT((a[k] - b[k]).abs().max().item<float>(), 2e-6f) << "parameter " << k;
  }
}

// imitation_smoothing: the copy converges to the smoothed target - greedy on the demonstrated
// action, with the target's entropy left to explore with - where the exact copy's entropy
// collapses. Cross-entropy is at least the target's entropy, so the loss is bounded below by
// H(t) = sum_d H((1 - eps) 1[a] + eps / K_d) and reaches it only when the policy is the target.
TEST(Ppo, SmoothedImitationKeepsTheTargetsEntropy) {
  const std::vector<int64_t> nvec = {3, 5, 2};
  const int obs_dim = 4, envs = 4, steps = 16, width = 10, dims = 3;
  RolloutBuffer buffer(envs, obs_dim, obs_dim, dims, width, 0.99, 0.95, 0);
  uint64_t counter = 0;
  auto uniform = [&] { return ToUniform(RandomBits(91, counter++)); };
  for (int t = 0; t < steps; ++t)
    for (int i = 0; i < envs; ++i) {
      float obs[obs_dim];
      for (float& o : obs) o = static_cast<float>(4 * uniform() - 2);
      uint8_t mask[width];
      std::fill_n(mask, width, uint8_t{1});
      int32_t action[dims];
      for (int d = 0; d < dims; ++d)
        action[d] = std::min<int32_t>(static_cast<int32_t>(uniform() * nvec[d]), nvec[d] - 1);
      buffer.Open(i, obs, obs, mask, action, -2.0f, 0.0f);
      buffer.AddReward(i, 0.0f);
    }
  const float last[envs] = {0, 0, 0, 0};
  buffer.Finish(last);
  const double eps = 0.2;
  double target_entropy = 0;
  for (int64_t k : nvec) {
    const double on = 1 - eps + eps / k, off = eps / k;
    target_entropy -= on * std::log(on) + (k - 1) * off * std::log(off);
  }
  for (const double smoothing : {0.0, eps}) {
    PpoConfig c;
    c.learning_rate = 3e-3;
    c.num_minibatches = 2;
    c.anneal_lr = false;
    c.imitation_fraction = 1.0;
    c.imitation_smoothing = smoothing;
    const int updates = 300;
    PpoAgent agent(obs_dim, obs_dim, nvec, envs, c, 3, updates, 0);
    UpdateStats last_stats;
    for (int u = 0; u < updates; ++u) last_stats = agent.Update(buffer, 0.0, nullptr);
    EXPECT_EQ(last_stats.at("losses/imitation_accuracy"), 1.0) << smoothing;
    if (smoothing > 0) {
      EXPECT_GE(last_stats.at("losses/imitation_loss"), target_entropy - 1e-4);
      EXPECT_LT(last_stats.at("losses/imitation_loss"), target_entropy + 0.05);
      EXPECT_NEAR(last_stats.at("losses/entropy"), target_entropy, 0.1);
    } else {
      EXPECT_LT(last_stats.at("losses/entropy"), 0.2 * target_entropy);
    }
  }
}

TEST(Normalizer, RunningMeanStdMatchesBatchStatistics) {
  RunningMeanStd rms(2, 0.0);
  std::vector<float> a = {1, 10, 2, 20, 3, 30}, b = {4, 40, 5, 50};
  rms.Update(a.data(), 3);
  rms.Update(b.data(), 2);
  EXPECT_NEAR(rms.mean()[0], 3.0, 1e-9);
  EXPECT_NEAR(rms.var()[0], 2.0, 1e-9);  // population variance of 1..5
  EXPECT_NEAR(rms.var()[1], 200.0, 1e-6);
  float out[2];
  const float x[2] = {3, 30};
  rms.Normalize(x, 1, out);
  EXPECT_NEAR(out[0], 0.0f, 1e-6);
}

TEST(RolloutBuffer, GaeWithTerminationTruncationAndMultiStepSamples) {
  const double g = 0.9, lam = 0.8;
  RolloutBuffer b(2, 1, 1, 1, 2, g, lam);
  const float o = 0;
  const uint8_t m[2] = {1, 1};
  const int32_t a = 0;
  // Instance 0: two one-step samples, the second terminates.
  b.Open(0, &o, &o, m, &a, 0, /*value=*/1.0f);
  b.AddReward(0, 1.0f);
  b.Open(0, &o, &o, m, &a, 0, 2.0f);
  b.AddReward(0, 3.0f);
  b.EndEpisode(0, /*truncated=*/false, 0);
  // Instance 1: one sample over two steps (a slow role), truncated with V(final) = 10.
  b.Open(1, &o, &o, m, &a, 0, 0.5f);
  b.AddReward(1, 1.0f);
  b.AddReward(1, 2.0f);
  b.EndEpisode(1, /*truncated=*/true, 10.0f);
  const float last[2] = {0, 0};
  b.Finish(last);
  ASSERT_EQ(b.size(), 3);
  // Sample 1 (terminal): delta = 3 - 2 = 1, A = 1.
  EXPECT_NEAR(b.advantages()[1], 1.0, 1e-6);
  // Sample 0: delta = 1 + 0.9 * 2 - 1 = 1.8; A = 1.8 + 0.9 * 0.8 * 1 = 2.52.
  EXPECT_NEAR(b.advantages()[0], 2.52, 1e-6);
  EXPECT_NEAR(b.returns()[0], 3.52, 1e-6);
  // Sample 2: reward 1 + 0.9 * 2 + 0.81 * 10 (bootstrap) = 10.9; A = 10.9 - 0.5.
  EXPECT_NEAR(b.advantages()[2], 10.4, 1e-5);
}

TEST(RolloutBuffer, OpenSamplesBootstrapAtTheRolloutEnd) {
  RolloutBuffer b(1, 1, 1, 1, 2, 0.5, 1.0);
  const float o = 0;
  const uint8_t m[2] = {1, 1};
  const int32_t a = 0;
  b.Open(0, &o, &o, m, &a, 0, 0.0f);
  b.AddReward(0, 1.0f);
  b.AddReward(0, 1.0f);  // still open: 1 + 0.5 = 1.5, discount 0.25 for the bootstrap
  const float last = 4.0f;
  b.Finish(&last);
  EXPECT_NEAR(b.returns()[0], 1.5 + 0.25 * 4.0, 1e-6);
}

TEST(RolloutBuffer, CostChannelsRunTheirOwnGae) {
  // Each cost channel's advantages and returns are those of a buffer whose rewards and values
  // were that channel's costs and cost values: same samples, discounts, ends and bootstraps.
  const double g = 0.9, lam = 0.8;
  RolloutBuffer both(2, 1, 1, 1, 2, g, lam, 2);
  RolloutBuffer plain[2] = {RolloutBuffer(2, 1, 1, 1, 2, g, lam),
                            RolloutBuffer(2, 1, 1, 1, 2, g, lam)};
  const float o = 0;
  const uint8_t m[2] = {1, 1};
  const int32_t a = 0;
  auto open = [&](int i, float v, float c0, float c1) {
    const float cv[2] = {c0, c1};
    both.Open(i, &o, &o, m, &a, 0, v, cv);
    plain[0].Open(i, &o, &o, m, &a, 0, c0);
    plain[1].Open(i, &o, &o, m, &a, 0, c1);
  };
  auto step = [&](int i, float r, float c0, float c1) {
    const float c[2] = {c0, c1};
    both.AddReward(i, r, c);
    plain[0].AddReward(i, c0);
    plain[1].AddReward(i, c1);
  };
  open(0, 1.0f, 0.5f, 0.0f);
  step(0, 1.0f, 1.0f, 0.1f);
  open(0, 2.0f, 0.7f, 0.2f);
  step(0, 3.0f, 0.0f, 0.3f);
  {
    const float fc[2] = {9.0f, 9.0f};  // terminated: not used
    both.EndEpisode(0, false, 0, fc);
    plain[0].EndEpisode(0, false, 0);
    plain[1].EndEpisode(0, false, 0);
  }
  open(1, 0.5f, 0.3f, 0.05f);
  step(1, 1.0f, 1.0f, 0.0f);
  step(1, 2.0f, 0.0f, 0.4f);
  {
    const float fc[2] = {2.0f, 0.25f};  // truncated: bootstrapped
    both.EndEpisode(1, true, 10.0f, fc);
    plain[0].EndEpisode(1, true, 2.0f);
    plain[1].EndEpisode(1, true, 0.25f);
  }
  open(1, 0.0f, 0.4f, 0.6f);
  step(1, 0.0f, 1.0f, 1.0f);  // open at the rollout end
  const float last[2] = {0, 3.0f}, last_c[4] = {0, 0, 1.5f, 0.75f};
  both.Finish(last, last_c);
  const float last0[2] = {0, 1.5f}, last1[2] = {0, 0.75f};
  plain[0].Finish(last0);
  plain[1].Finish(last1);
  ASSERT_EQ(both.size(), 4);
  EXPECT_NEAR(both.advantages()[1], 1.0, 1e-6);  // the reward channel is unchanged
  for (int k = 0; k < 4; ++k)
    for (int c = 0; c < 2; ++c) {
      EXPECT_FLOAT_EQ(both.cost_advantages()[k * 2 + c], plain[c].advantages()[k]) << k << c;
      EXPECT_FLOAT_EQ(both.cost_returns()[k * 2 + c], plain[c].returns()[k]) << k << c;
    }
  // By hand, channel 0 of sample 2 (truncated): 1 + 0.9 * 0 + 0.81 * 2 - 0.3 = 2.32.
  EXPECT_NEAR(both.cost_advantages()[2 * 2], 2.32, 1e-5);
  // And a checkpointed buffer finishes the same.
  StateWriter w;
  both.SaveState(w);
  RolloutBuffer copy(2, 1, 1, 1, 2, g, lam, 2);
  StateReader r(w.bytes().data(), w.bytes().size());
  copy.LoadState(r);
  copy.Finish(last, last_c);
  EXPECT_EQ(copy.cost_advantages(), both.cost_advantages());
}

TEST(SumTree, TotalsMinimumAndUpdates) {
  SumTree t(5);  // not a power of two
  EXPECT_EQ(t.Total(), 0.0);
  EXPECT_TRUE(std::isinf(t.Min()));
  t.Set(0, 1.0), t.Set(1, 2.0), t.Set(2, 3.0), t.Set(4, 4.0);
  EXPECT_DOUBLE_EQ(t.Total(), 10.0);
  EXPECT_DOUBLE_EQ(t.Min(), 1.0);
  t.Set(0, 0.5);  // update
  EXPECT_DOUBLE_EQ(t.Total(), 9.5);
  EXPECT_DOUBLE_EQ(t.Min(), 0.5);
  EXPECT_DOUBLE_EQ(t.Get(2), 3.0);
  // Prefix intervals: [0, .5) -> 0, [.5, 2.5) -> 1, [2.5, 5.5) -> 2, slot 3 empty, [5.5, 9.5) -> 4.
  EXPECT_EQ(t.Find(0.0), 0);
  EXPECT_EQ(t.Find(0.49), 0);
  EXPECT_EQ(t.Find(0.5), 1);
  EXPECT_EQ(t.Find(2.4), 1);
  EXPECT_EQ(t.Find(2.5), 2);
  EXPECT_EQ(t.Find(5.49), 2);
  EXPECT_EQ(t.Find(5.5), 4);
  EXPECT_EQ(t.Find(100.0), 4);  // clamped
  EXPECT_THROW(t.Set(5, 1.0), std::invalid_argument);
  EXPECT_THROW(t.Set(1, -1.0), std::invalid_argument);
  EXPECT_THROW(t.Set(1, std::nan("")), std::invalid_argument);
}

TEST(SumTree, SamplingFollowsPriorities) {
  SumTree t(1000);
  for (int i = 0; i < 1000; ++i) t.Set(i, i % 4 == 0 ? 3.0 : (i % 4 == 1 ? 1.0 : 0.0));
  CounterRng rng(5);
  std::vector<int> counts(4, 0);
  const int draws = 200000;
  for (int k = 0; k < draws; ++k) counts[t.Find(rng.Uniform() * t.Total()) % 4] += 1;
  EXPECT_EQ(counts[2] + counts[3], 0);  // zero priority: never sampled
  EXPECT_NEAR(static_cast<double>(counts[0]) / draws, 0.75, 0.01);
  EXPECT_NEAR(static_cast<double>(counts[1]) / draws, 0.25, 0.01);
  // After an update the proportions follow the new priorities.
  for (int i = 0; i < 1000; i += 4) t.Set(i, 1.0);
  std::fill(counts.begin(), counts.end(), 0);
  for (int k = 0; k < draws; ++k) counts[t.Find(rng.Uniform() * t.Total()) % 4] += 1;
  EXPECT_NEAR(static_cast<double>(counts[0]) / draws, 0.5, 0.01);
}

}  // namespace
}  // namespace loantwin
