// MuZero building blocks: the h transform and two-hot supports, and the batched MCTS (lookahead,
// masks, Gumbel policy improvement, determinism across batch splits).

#include "agents/muzero.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "agents/mcts.h"
#include "agents/muzero_net.h"
#include "agents/muzero_support.h"
#include "agents/muzero_targets.h"
#include "core/config_error.h"
#include "core/counter_rng.h"
#include "tests/agent_test_util.h"
#include "training/checkpoint.h"
#include "training/export.h"
#include "training/trainer.h"

namespace loantwin {
namespace {

TEST(MuZeroSupport, HAndItsInverseRoundTrip) {
  for (double x : {-1e5, -1234.5, -10.0, -1.0, -1e-4, 0.0, 1e-4, 0.5, 1.0, 3.0, 42.0, 1e4, 3e5}) {
    const double y = TransformH(x);
    EXPECT_NEAR(InverseH(y), x, 1e-9 * std::max(1.0, std::abs(x))) << x;
    EXPECT_EQ(y < 0, x < 0) << x;
  }
  EXPECT_DOUBLE_EQ(TransformH(0.0), 0.0);
  // h(3) = sqrt(4) - 1 + 0.003.
  EXPECT_NEAR(TransformH(3.0), 1.003, 1e-12);
  // Monotone.
  double prev = -1e300;
  for (double x = -50; x <= 50; x += 0.25) {
    EXPECT_GT(TransformH(x), prev);
    prev = TransformH(x);
  }
}

TEST(MuZeroSupport, TwoHotEncodingAndDecoding) {
  const CategoricalSupport support(10);
  EXPECT_EQ(support.atoms(), 21);
  // h(x) = 2.25 -> atom 2 gets 0.75 and atom 3 gets 0.25.
  const double x = InverseH(2.25);
  const torch::Tensor t = support.TwoHot(torch::tensor({x, 0.0, -InverseH(4.0)}));
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{3, 21}));
  EXPECT_NEAR(t[0][10 + 2].item<float>(), 0.75f, 1e-5);
  EXPECT_NEAR(t[0][10 + 3].item<float>(), 0.25f, 1e-5);
  EXPECT_NEAR(t[0].sum().item<float>(), 1.0f, 1e-6);
  EXPECT_FLOAT_EQ(t[1][10].item<float>(), 1.0f);        // 0 is the middle atom
  EXPECT_NEAR(t[2][10 - 4].item<float>(), 1.0f, 1e-5);  // exactly on atom -4
  // Decoding the two-hot distribution (as logits) gives the value back.
  const torch::Tensor values = torch::tensor({x, 0.0, -InverseH(4.0), 7.5, -0.3});
  const torch::Tensor decoded = support.Decode(torch::log(support.TwoHot(values) + 1e-12));
  for (int i = 0; i < values.size(0); ++i)
    EXPECT_NEAR(decoded[i].item<float>(), values[i].item<double>(),
                1e-3 * std::max(1.0, std::abs(values[i].item<double>())))
        << i;
  std::vector<float> probs(21, 0.0f);
  probs[10 + 2] = 0.75f, probs[10 + 3] = 0.25f;
  EXPECT_NEAR(support.DecodeProbabilities(probs.data()), x, 1e-5);
  // Outside the support: an error naming the value, not a clamp.
  const double too_big = support.max_abs_value() * 1.01;
  try {
    support.TwoHot(torch::tensor({1.0, too_big}));
    FAIL() << "no error for a value outside the support";
  } catch (const std::out_of_range& e) {
    EXPECT_NE(std::string(e.what()).find("outside the categorical support"), std::string::npos);
  }
  EXPECT_NO_THROW(support.TwoHot(torch::tensor({support.max_abs_value() * 0.999})));
  // Sizing: a support for returns up to 500 covers 500 and is the smallest that does.
  const int s = SupportSizeFor(500.0);
  EXPECT_GE(CategoricalSupport(s).max_abs_value(), 500.0);
  EXPECT_LT(CategoricalSupport(s - 1).max_abs_value(), 500.0);
}

GameHistory HandBuilt(bool terminated) {
  GameHistory h;
  h.obs_dim = 1, h.num_actions = 2;
  h.obs = {0, 1, 2, 3};
  h.actions = {1, 0, 1, 1};
  h.rewards = {1, 2, 3, 4};
  h.discounts = {0.5f, 0.5f, 0.5f, 0.5f};
  h.root_values = {10, 20, 30, 40};
  h.policies = {0.9f, 0.1f, 0.8f, 0.2f, 0.7f, 0.3f, 0.6f, 0.4f};
  h.terminated = terminated;
  h.final_value = 100;
  return h;
}

TEST(MuZeroTargets, UnrollAlignmentWithTermination) {
  const GameHistory h = HandBuilt(/*terminated=*/true);
  CounterRng rng(1);
  const auto u = MakeUnrollTargets(h, /*t=*/1, /*K=*/3, /*n=*/2, nullptr, h.final_value, rng);
  EXPECT_EQ(u.actions, (std::vector<int32_t>{0, 1, 1}));  // actions at t = 1, 2, 3
  // k = 0 (state 1): r1 + .5 r2 + .25 v3.
  EXPECT_FLOAT_EQ(u.values[0], 2 + 0.5f * 3 + 0.25f * 40);
  EXPECT_EQ(u.reward_weight[0], 0.0f);  // no reward into the root
  EXPECT_FLOAT_EQ(u.policies[0], 0.8f);
  // k = 1 (state 2): the window reaches the termination: r2 + .5 r3, no bootstrap.
  EXPECT_FLOAT_EQ(u.values[1], 3 + 0.5f * 4);
  EXPECT_FLOAT_EQ(u.rewards[1], 2);  // reward of the transition 1 -> 2
  // k = 2 (state 3): r3.
  EXPECT_FLOAT_EQ(u.values[2], 4);
  EXPECT_FLOAT_EQ(u.rewards[2], 3);
  // k = 3 (state 4, past the end): absorbing, value 0, uniform policy, all trained.
  EXPECT_FLOAT_EQ(u.values[3], 0);
  EXPECT_EQ(u.value_weight[3], 1.0f);
  EXPECT_FLOAT_EQ(u.rewards[3], 4);  // the last real transition
  EXPECT_FLOAT_EQ(u.policies[3 * 2], 0.5f);
  EXPECT_EQ(u.policy_weight[3], 1.0f);
  // Further past the end: reward 0 and still trained.
  const auto far = MakeUnrollTargets(h, 3, 3, 2, nullptr, h.final_value, rng);
  EXPECT_FLOAT_EQ(far.values[0], 4);
  EXPECT_FLOAT_EQ(far.rewards[2], 0);
  EXPECT_EQ(far.reward_weight[2], 1.0f);
  EXPECT_EQ(far.value_weight[3], 1.0f);
  for (int32_t a : far.actions) EXPECT_TRUE(a == 0 || a == 1);
}

TEST(MuZeroTargets, UnrollAlignmentWithTruncationBootstraps) {
  const GameHistory h = HandBuilt(/*terminated=*/false);
  CounterRng rng(1);
  const auto u = MakeUnrollTargets(h, /*t=*/2, /*K=*/3, /*n=*/2, nullptr, h.final_value, rng);
  EXPECT_FLOAT_EQ(u.values[0], 3 + 0.5f * 4 + 0.25f * 100);  // bootstraps from the final value
  EXPECT_FLOAT_EQ(u.values[1], 4 + 0.5f * 100);
  EXPECT_FLOAT_EQ(u.rewards[1], 3);
  // k = 2 is the final observation: its value is the final value; its reward is trained; no
  // policy is known there.
  EXPECT_FLOAT_EQ(u.values[2], 100);
  EXPECT_EQ(u.value_weight[2], 1.0f);
  EXPECT_FLOAT_EQ(u.rewards[2], 4);
  EXPECT_EQ(u.policy_weight[2], 0.0f);
  // Beyond it nothing is known: not trained.
  EXPECT_EQ(u.value_weight[3], 0.0f);
  EXPECT_EQ(u.reward_weight[3], 0.0f);
  EXPECT_EQ(u.policy_weight[3], 0.0f);
  // Bootstrap values from elsewhere (a target network) replace the stored search values.
  const float target_net[4] = {-1, -2, -3, -4};
  const auto b = MakeUnrollTargets(h, 0, 1, 2, target_net, 7.0f, rng);
  EXPECT_FLOAT_EQ(b.values[0], 1 + 0.5f * 2 + 0.25f * -3);
  EXPECT_FLOAT_EQ(b.values[1], 2 + 0.5f * 3 + 0.25f * -4);
}

TEST(MuZeroNet, ShapesNormalisedLatentsAndSearchAdapter) {
  MuZeroNetConfig c;
  c.latent_dim = 8;
  c.hidden = {16};
  c.support_size = 5;
  MuZeroNet net(4, 3, c);
  const torch::Tensor s = net->Represent(torch::randn({6, 4}));
  ASSERT_EQ(s.sizes(), (std::vector<int64_t>{6, 8}));
  EXPECT_NEAR(s.min().item<float>(), 0.0f, 1e-6);
  EXPECT_NEAR(s.max().item<float>(), 1.0f, 1e-6);
  const auto [next, reward] = net->Dynamics(s, torch::tensor({0, 1, 2, 0, 1, 2}, torch::kLong));
  EXPECT_EQ(next.sizes(), s.sizes());
  EXPECT_EQ(reward.size(1), 11);
  const auto [policy, value] = net->Predict(next);
  EXPECT_EQ(policy.size(1), 3);
  EXPECT_EQ(value.size(1), 11);
  // The search runs on the networks.
  TorchSearchModel model(net, CategoricalSupport(5));
  MctsConfig mc;
  mc.num_simulations = 10;
  BatchedMcts mcts(6, 3, 8, mc);
  std::vector<float> obs(24, 0.5f);
  std::vector<uint8_t> masks(18, 1);
  masks[1] = 0;
  mcts.Search(model, obs.data(), masks.data(), 6, true, 1.0, 3);
  EXPECT_NE(mcts.action(0), 1);
  EXPECT_GT(mcts.model_seconds(), 0.0);
}

TEST(MuZeroNet, FastSearchModelMatchesTheTorchModel) {
  MuZeroNetConfig c;
  c.latent_dim = 12;
  c.hidden = {24};
  c.support_size = 6;
  torch::manual_seed(2);
  MuZeroNet net(5, 4, c);
  {
    torch::NoGradGuard no_grad;  // output layers away from their small initial gain
    for (auto& p : net->parameters()) p.add_(0.2 * torch::randn_like(p));
  }
  const CategoricalSupport support(6);
  TorchSearchModel slow(net, support);
  FastSearchModel fast(net, support);
  const int n = 20;
  CounterRng rng(8);
  std::vector<float> obs(n * 5);
  for (auto& x : obs) x = static_cast<float>(2 * rng.Normal());
  std::vector<int32_t> actions(n);
  for (int i = 0; i < n; ++i) actions[i] = i % 4;
  struct Out {
    std::vector<float> latent, value, logits, next, reward, value2, logits2;
  } a, b;
  for (Out* o : {&a, &b}) {
    o->latent.resize(n * 12), o->value.resize(n), o->logits.resize(n * 4);
    o->next.resize(n * 12), o->reward.resize(n), o->value2.resize(n), o->logits2.resize(n * 4);
    SearchModel& m = o == &a ? static_cast<SearchModel&>(slow) : fast;
    m.Initial(obs.data(), n, o->latent.data(), o->value.data(), o->logits.data());
    m.Recurrent(o->latent.data(), actions.data(), n, o->next.data(), o->reward.data(),
                o->value2.data(), o->logits2.data());
  }
  // Latents and logits to float rounding; decoded values and rewards to 1e-3 (LibTorch decodes
  // in float, where the inverse of h cancels about four digits; the plain path uses double).
  auto close = [](const std::vector<float>& x, const std::vector<float>& y, double tol,
                  const char* what) {
    ASSERT_EQ(x.size(), y.size());
    for (size_t i = 0; i < x.size(); ++i)
      EXPECT_NEAR(x[i], y[i], tol * std::max(1.0f, std::abs(x[i]))) << what << " " << i;
  };
  close(a.latent, b.latent, 1e-5, "latent");
  close(a.value, b.value, 1e-3, "value");
  close(a.logits, b.logits, 1e-5, "logits");
  close(a.next, b.next, 1e-5, "next latent");
  close(a.reward, b.reward, 1e-3, "reward");
  close(a.value2, b.value2, 1e-3, "value after");
  close(a.logits2, b.logits2, 1e-5, "logits after");
  // The values are not all alike (the comparison means something).
  EXPECT_GT(std::abs(a.value[0] - a.value[1]) + std::abs(a.reward[0] - a.reward[1]), 1e-3);
}

TEST(MuZeroAgent, FusedUpdateMatchesAutograd) {
  // Two agents with the same networks and the same stored games: one training step by LibTorch's
  // autograd, the other by the hand-written backward pass; losses, gradient norms (through the
  // clip), parameters after four Adam steps and the priorities agree to float rounding.
  const int obs_dim = 6, A = 3, n = 4;
  for (int variant = 0; variant < 2; ++variant) {
    MuZeroConfig c;
    c.latent_dim = 10;
    c.hidden = {16};
    c.support_size = 8;
    c.unroll_steps = 3;
    c.td_steps = 4;
    c.batch_size = 24;
    c.learning_starts = 1000000;  // TrainStep is called by hand
    c.target_update_interval = 2;
    c.prioritized = variant == 1;
    c.max_grad_norm = variant == 1 ? 0.05 : 0.0;
    c.normalize_obs = variant == 1;
    c.num_simulations = 4;
    c.fused_update = false;
    MuZeroAgent reference(obs_dim, A, n, 1, c, 5, 1000);
    c.fused_update = true;
    MuZeroAgent fused(obs_dim, A, n, 1, c, 5, 1000);
    {
      torch::NoGradGuard no_grad;  // the same perturbation of both (small initial output gains)
      torch::manual_seed(3);
      auto pa = reference.Parameters(), pb = fused.Parameters();
      for (size_t k = 0; k < pa.size(); ++k) {
        const torch::Tensor delta = 0.2 * torch::randn_like(pa[k]);
        pa[k].add_(delta), pb[k].add_(delta);
      }
    }
    CounterRng rng(17);
    std::vector<float> obs(n * obs_dim), rewards(n), final_obs(n * obs_dim);
    std::vector<uint8_t> masks(n * A, 1), terminated(n), truncated(n), acting(n, 1);
    std::vector<int32_t> act_a(n), act_b(n);
    for (int t = 0; t < 60; ++t) {
      for (auto& x : obs) x = static_cast<float>(rng.Normal());
      masks[(t % n) * A + t % A] = 0;
      const AgentBatch batch{n, obs.data(), obs.data(), masks.data(), acting.data()};
      reference.ActAndRecord(batch, act_a.data());
      fused.ActAndRecord(batch, act_b.data());
      ASSERT_EQ(act_a, act_b) << "the same search on the same networks";
      masks[(t % n) * A + t % A] = 1;
      for (int i = 0; i < n; ++i) {
        rewards[i] = static_cast<float>(3 * rng.Normal());
        terminated[i] = (t + i) % 9 == 8;
        truncated[i] = !terminated[i] && (t + 2 * i) % 13 == 12;
      }
      for (auto& x : final_obs) x = static_cast<float>(rng.Normal());
      AgentFeedback f;
      f.n = n, f.rewards = rewards.data(), f.terminated = terminated.data();
      f.truncated = truncated.data(), f.final_obs = final_obs.data();
      f.final_critic_obs = final_obs.data(), f.final_masks = masks.data();
      reference.Observe(f);
      fused.Observe(f);
    }
    ASSERT_GT(reference.games(), 10);
    const torch::Tensor before = fused.Parameters()[0].clone();
    for (int step = 0; step < 4; ++step) {
      const UpdateStats want = reference.TrainStep(), got = fused.TrainStep();
      for (const char* key :
           {"losses/value_loss", "losses/reward_loss", "losses/policy_loss", "losses/total_loss"})
        EXPECT_NEAR(got.at(key), want.at(key), 2e-5 * std::max(1.0, std::abs(want.at(key))))
            << key << " variant " << variant << " step " << step;
    }
    const auto a = reference.Parameters(), b = fused.Parameters();
    for (size_t k = 0; k < a.size(); ++k)
      EXPECT_LT((a[k] - b[k]).abs().max().item<float>(), 5e-6f)
          << "parameter " << k << " variant " << variant;
    EXPECT_GT((b[0] - before).abs().max().item<float>(), 1e-4f) << "the steps moved it";
  }
}

TEST(SequentialHalving, VisitsAreBalancedWithinPhases) {
  const auto seq = SequentialHalvingVisits(4, 8);
  ASSERT_EQ(seq.size(), 8u);
  // Phase 1: 4 candidates once each (visit count 0); then 2 candidates brought to 1, 2, ...
  EXPECT_EQ(std::vector<int32_t>(seq.begin(), seq.begin() + 4), (std::vector<int32_t>{0, 0, 0, 0}));
  EXPECT_EQ(seq[4], 1);
  EXPECT_EQ(seq[5], 1);
  const auto single = SequentialHalvingVisits(1, 3);
  EXPECT_EQ(single, (std::vector<int32_t>{0, 1, 2}));
}

/// A model given by functions of (state, action): the latent is the state id.
class TableModel : public SearchModel {
 public:
  int num_actions;
  std::function<void(int state, float* logits, float* value)> predict;
  std::function<std::pair<int, float>(int state, int action)> step;  // next state, reward
  std::vector<std::pair<int, int>> calls;                            // (row, action) seen
  int latent_dim() const override { return 1; }
  void Initial(const float* obs, int n, float* latent, float* value, float* logits) override {
    for (int i = 0; i < n; ++i) {
      latent[i] = obs[i];
      predict(static_cast<int>(obs[i]), logits + i * num_actions, value + i);
    }
  }
  void Recurrent(const float* latent, const int32_t* actions, int n, float* next, float* reward,
                 float* value, float* logits) override {
    for (int i = 0; i < n; ++i) {
      calls.emplace_back(i, actions[i]);
      const auto [s, r] = step(static_cast<int>(latent[i]), actions[i]);
      next[i] = static_cast<float>(s);
      reward[i] = r;
      predict(s, logits + i * num_actions, value + i);
    }
  }
};

TEST(Mcts, LookaheadFindsTheDelayedReward) {
  // State 0: action 0 pays 1 now and leads to a dead end; action 1 pays 0 now but reaches
  // state 2, where action 0 pays 10. A one-step (greedy on reward) choice takes action 0; the
  // uniform prior and zero value estimates give no hint: only lookahead finds action 1.
  TableModel model;
  model.num_actions = 2;
  model.predict = [](int, float* logits, float* value) {
    logits[0] = logits[1] = 0;
    *value = 0;
  };
  model.step = [](int s, int a) -> std::pair<int, float> {
    if (s == 0) return a == 0 ? std::make_pair(1, 1.0f) : std::make_pair(2, 0.0f);
    if (s == 2) return a == 0 ? std::make_pair(3, 10.0f) : std::make_pair(3, 0.0f);
    return {3, 0.0f};  // 1 and 3: absorbing, nothing more to earn
  };
  MctsConfig c;
  c.num_simulations = 40;
  c.discount = 0.99;
  BatchedMcts mcts(1, 2, 1, c);
  const float obs = 0;
  const uint8_t mask[2] = {1, 1};
  mcts.Search(model, &obs, mask, 1, /*explore=*/false, 0.0, 7);
  EXPECT_EQ(mcts.action(0), 1);
  EXPECT_GT(mcts.visits(0, 1), mcts.visits(0, 0));
  EXPECT_GT(mcts.policy(0)[1], 0.5f);
  EXPECT_GT(mcts.root_value(0), 5.0f);  // ~ 0.99 * 10 along the best line
  EXPECT_EQ(mcts.visits(0, 0) + mcts.visits(0, 1), c.num_simulations);
}

TEST(Mcts, MasksHoldAtEveryNodeAndForEveryVariant) {
  const int A = 6, n = 5;
  for (bool gumbel : {false, true}) {
    TableModel model;
    model.num_actions = A;
    model.predict = [&](int s, float* logits, float* value) {
      CounterRng rng(static_cast<uint64_t>(s) * 7919 + 1);
      for (int a = 0; a < A; ++a) logits[a] = static_cast<float>(2 * rng.Normal());
      *value = static_cast<float>(rng.Normal());
    };
    model.step = [&](int s, int a) -> std::pair<int, float> {
      CounterRng rng(static_cast<uint64_t>(s) * 31 + a);
      return {(s * A + a + 1) % 100000, static_cast<float>(rng.Normal())};
    };
    MctsConfig c;
    c.num_simulations = 30;
    c.gumbel = gumbel;
    c.gumbel_max_considered = 4;
    BatchedMcts mcts(n, A, 1, c);
    CounterRng rng(3);
    std::vector<uint8_t> masks(n * A);
    for (int round = 0; round < 20; ++round) {
      for (int i = 0; i < n; ++i) {
        for (int a = 0; a < A; ++a) masks[i * A + a] = rng.Uniform() < 0.5;
        masks[i * A + static_cast<int>(rng.Uniform() * A)] = 1;
      }
      std::vector<float> obs(n);
      for (int i = 0; i < n; ++i) obs[i] = static_cast<float>(round * n + i);
      model.calls.clear();
      mcts.Search(model, obs.data(), masks.data(), n, /*explore=*/true, 1.0, round);
      for (const auto& [row, a] : model.calls)
        ASSERT_TRUE(masks[row * A + a]) << "expanded a masked action, gumbel " << gumbel;
      for (int i = 0; i < n; ++i) {
        ASSERT_TRUE(masks[i * A + mcts.action(i)]);
        for (int a = 0; a < A; ++a)
          if (!masks[i * A + a]) {
            EXPECT_EQ(mcts.visits(i, a), 0);
            EXPECT_EQ(mcts.policy(i)[a], 0.0f);
            EXPECT_EQ(mcts.root_prior(i)[a], 0.0f);  // also after Dirichlet noise
          }
      }
    }
  }
}

TEST(Mcts, ResultsDoNotDependOnTheBatchSplit) {
  const int A = 4, n = 3;
  TableModel model;
  model.num_actions = A;
  model.predict = [&](int s, float* logits, float* value) {
    CounterRng rng(static_cast<uint64_t>(s) + 11);
    for (int a = 0; a < A; ++a) logits[a] = static_cast<float>(rng.Normal());
    *value = static_cast<float>(rng.Normal());
  };
  model.step = [&](int s, int a) -> std::pair<int, float> {
    return {(s * A + a + 1) % 9973, static_cast<float>((s + a) % 5) * 0.1f};
  };
  MctsConfig c;
  c.num_simulations = 25;
  BatchedMcts all(n, A, 1, c);
  const std::vector<float> obs = {1, 2, 3};
  const std::vector<uint8_t> masks(n * A, 1);
  all.Search(model, obs.data(), masks.data(), n, true, 1.0, 99);
  // Row i's random streams derive from (key, i): a smaller batch that ends at row i searches
  // row i exactly as the full batch did.
  for (int i = 0; i < n; ++i) {
    BatchedMcts single(n, A, 1, c);
    single.Search(model, obs.data(), masks.data(), i + 1, true, 1.0, 99);
    EXPECT_EQ(single.action(i), all.action(i));
    for (int a = 0; a < A; ++a) EXPECT_EQ(single.visits(i, a), all.visits(i, a));
  }
}

TEST(Mcts, GumbelImprovesOnThePriorOnABandit) {
  // 8 arms paying a / 7; the prior strongly prefers the worst arm. With as many simulations as
  // arms, the completed-Q policy target puts most mass on the best arm and its expected payoff
  // beats the prior's, whatever the Gumbel draw.
  const int A = 8;
  TableModel model;
  model.num_actions = A;
  model.predict = [&](int, float* logits, float* value) {
    for (int a = 0; a < A; ++a) logits[a] = a == 0 ? 3.0f : 0.0f;
    *value = 0;
  };
  model.step = [](int, int a) -> std::pair<int, float> { return {1, a / 7.0f}; };
  for (int sims : {4, 8}) {
    MctsConfig c;
    c.num_simulations = sims;
    c.gumbel = true;
    c.gumbel_max_considered = sims;
    c.gumbel_c_visit = 50;
    c.gumbel_c_scale = 0.1;
    BatchedMcts mcts(1, A, 1, c);
    const float obs = 0;
    const std::vector<uint8_t> mask(A, 1);
    double prior_value = 0;
    {
      double z = std::exp(3.0) + (A - 1);
      for (int a = 0; a < A; ++a) prior_value += (a == 0 ? std::exp(3.0) : 1.0) / z * a / 7.0;
    }
    double mean_improved = 0;
    for (uint64_t key = 0; key < 50; ++key) {
      mcts.Search(model, &obs, mask.data(), 1, /*explore=*/true, 1.0, key);
      double improved = 0;
      for (int a = 0; a < A; ++a) improved += mcts.policy(0)[a] * a / 7.0;
      EXPECT_GT(improved, prior_value) << "sims " << sims << " key " << key;
      mean_improved += improved / 50;
    }
    EXPECT_GT(mean_improved, prior_value + 0.2) << sims;
    if (sims == A) {
      // Every arm visited once: the chosen action is the best arm.
      mcts.Search(model, &obs, mask.data(), 1, false, 0.0, 1);
      EXPECT_EQ(mcts.action(0), A - 1);
    }
  }
  // A small gumbel_c_scale keeps the search at the prior: sigma(q) <= (50 + 1) x 0.005 = 0.26
  // is less than the prior's 3-logit preference for arm 0, which the decision keeps.
  MctsConfig c;
  c.num_simulations = A;
  c.gumbel = true;
  c.gumbel_max_considered = A;
  c.gumbel_c_scale = 0.005;
  BatchedMcts mcts(1, A, 1, c);
  const float obs = 0;
  const std::vector<uint8_t> mask(A, 1);
  mcts.Search(model, &obs, mask.data(), 1, false, 0.0, 1);
  EXPECT_EQ(mcts.action(0), 0);
  EXPECT_GT(mcts.policy(0)[0], 0.5f);
}

ExperimentConfig Parse(const std::string& yaml) {
  return ExperimentConfig::Parse(YamlValue::LoadString(yaml, "exp.yaml"));
}

const char* kSmallMuZero =
    "name: m\nseed: 4\ntotal_steps: 1600\nenv: {name: cartpole, num_envs: 4}\n"
    "roles:\n  agent: {algorithm: muzero, muzero: {num_simulations: 6, batch_size: 16, "
    "learning_starts: 200, train_ratio: 0.1, latent_dim: 8, hidden: [16], support_size: 12, "
    "unroll_steps: 3, td_steps: 5, target_update_interval: 5, prioritized: true, normalize_obs: "
    "true}}\n";

TEST(MuZeroAgent, ConfigErrors) {
  auto error = [](const std::string& yaml) {
    try {
      Trainer t(Parse(yaml));
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  std::string msg =
      error("name: m\nenv: {name: twin, num_envs: 2}\nroles:\n  credit: {algorithm: muzero}\n");
  EXPECT_NE(msg.find("Discrete"), std::string::npos) << msg;
  EXPECT_NE(msg.find("exp.yaml:4"), std::string::npos) << msg;
  msg = error(
      "name: m\nenv: {name: cartpole}\nroles:\n  agent: {algorithm: muzero, muzero: "
      "{num_simulations: 0}}\n");
  EXPECT_NE(msg.find("num_simulations"), std::string::npos) << msg;
  msg = error("name: m\nenv: {name: cartpole}\nroles:\n  agent: {agent: dqn, muzero: {}}\n");
  EXPECT_NE(msg.find("'muzero' hyperparameters"), std::string::npos) << msg;
  const auto c = Parse(kSmallMuZero);
  EXPECT_EQ(Parse(c.ToYaml()).ToYaml(), c.ToYaml());
  EXPECT_EQ(Parse(c.ToYaml()).roles.at("agent").hyperparameters<MuZeroConfig>().num_simulations, 6);
}

// gumbel_c_scale reaches the search: at 0 the Gumbel root's deterministic decision is the
// prior's greedy action (sequential halving by log prior alone).
TEST(MuZeroAgent, GumbelScaleZeroDecidesAsThePrior) {
  std::string yaml = kSmallMuZero;
  yaml.replace(yaml.find("prioritized"), 0, "gumbel: true, gumbel_c_scale: 0, ");
  Trainer t(Parse(yaml));
  t.Train(400);
  auto* agent = dynamic_cast<MuZeroAgent*>(t.agent(0));
  ASSERT_NE(agent, nullptr);
  EXPECT_EQ(agent->config().gumbel_c_scale, 0.0);
  CounterRng rng(7);
  const int n = 4;  // the agent's trees hold num_envs roots; Act splits larger batches
  std::vector<float> obs(n * 4);
  std::vector<uint8_t> mask(n * 2, 1);
  for (int round = 0; round < 8; ++round) {
    for (auto& x : obs) x = static_cast<float>(rng.Normal());
    std::vector<int32_t> searched(n), prior(n);
    agent->Act(obs.data(), mask.data(), n, /*deterministic=*/true, searched.data());
    agent->PriorActions(obs.data(), mask.data(), n, prior.data());
    EXPECT_EQ(searched, prior) << round;
  }
}

TEST(MuZeroAgent, ExportsTheActingPathAndTheModel) {
  Trainer t(Parse(kSmallMuZero));
  t.Train(1200);
  auto* agent = dynamic_cast<MuZeroAgent*>(t.agent(0));
  ASSERT_NE(agent, nullptr);
  EXPECT_GT(agent->training_steps(), 0);
  testing::TempDir dir;
  CheckpointManager ckpt(dir.path() + "/ck", 1);
  ExportRun(t, dir.path(), ckpt.Save(t), dir.path() + "/export");
  const std::string manifest = testing::ReadFile(dir.path() + "/export/manifest.json");
  EXPECT_NE(manifest.find("\"model_file\": \"agent_model.pt\""), std::string::npos);
  EXPECT_NE(manifest.find("planning"), std::string::npos);
  torch::jit::Module policy = torch::jit::load(dir.path() + "/export/agent.pt");
  torch::jit::Module model = torch::jit::load(dir.path() + "/export/agent_model.pt");
  CounterRng rng(5);
  const int n = 64;
  std::vector<float> obs(n * 4);
  for (auto& x : obs) x = static_cast<float>(rng.Normal());
  std::vector<uint8_t> mask(n * 2, 1);
  for (int i = 0; i < n; i += 3) mask[i * 2 + (i % 2)] = 0;
  std::vector<int32_t> expected(n);
  agent->PriorActions(obs.data(), mask.data(), n, expected.data());
  const torch::Tensor obs_t = torch::from_blob(obs.data(), {n, 4}).clone();
  const torch::Tensor got =
      policy.forward({obs_t, torch::from_blob(mask.data(), {n, 2}, torch::kUInt8).clone()})
          .toTensor();
  for (int i = 0; i < n; ++i) EXPECT_EQ(got[i][0].item<int64_t>(), expected[i]) << i;
  // The exported model reproduces the search model's numbers.
  TorchSearchModel search(agent->net(), CategoricalSupport(agent->config().support_size));
  std::vector<float> latent(n * 8), value(n), logits(n * 2), normalized(n * 4);
  agent->obs_rms().Normalize(obs.data(), n, normalized.data());  // the modules normalise inside
  EXPECT_GT(agent->obs_rms().count(), 100.0);
  search.Initial(normalized.data(), n, latent.data(), value.data(), logits.data());
  const auto init = model.get_method("initial_inference")({obs_t}).toTuple();
  const torch::Tensor s = init->elements()[0].toTensor();
  for (int k = 0; k < n * 8; k += 7) EXPECT_NEAR(s.view({-1})[k].item<float>(), latent[k], 1e-5);
  for (int i = 0; i < n; i += 5)
    EXPECT_NEAR(init->elements()[1].toTensor()[i].item<float>(), value[i], 1e-3);
  std::vector<int32_t> actions(n, 1);
  std::vector<float> next(n * 8), reward(n), v2(n), l2(n * 2);
  search.Recurrent(latent.data(), actions.data(), n, next.data(), reward.data(), v2.data(),
                   l2.data());
  const auto rec =
      model.get_method("recurrent_inference")({s, torch::ones({n}, torch::kLong)}).toTuple();
  for (int i = 0; i < n; i += 5) {
    EXPECT_NEAR(rec->elements()[1].toTensor()[i].item<float>(), reward[i], 1e-3);
    EXPECT_NEAR(rec->elements()[2].toTensor()[i].item<float>(), v2[i], 1e-3);
  }
}

TEST(MixedHierarchy, ResumesAndExportsEveryRole) {
  // MuZero, PPO and DQN roles learning together on the twin: exact resume, and every role
  // exports (the small version of configs/full_hierarchy.yaml and configs/full_hierarchy_scratch.yaml).
  const std::string yaml =
      "name: h\nseed: 6\ntotal_steps: 2000\nenv: {name: twin, num_envs: 4, config: "
      "{horizon_months: 12}}\nroles:\n"
      "  risk: {algorithm: muzero, muzero: {num_simulations: 4, batch_size: 8, learning_starts: "
      "40, train_ratio: 0.1, latent_dim: 8, hidden: [16], unroll_steps: 2, td_steps: 3}}\n"
      "  credit: {algorithm: ppo, ppo: {num_steps: 12, normalize_obs: true}}\n"
      "  collection: {algorithm: dqn, dqn: {learning_starts: 40, batch_size: 8, train_frequency: "
      "4, hidden: [16], dueling: true, normalize_obs: true}}\n";
  const auto c = testing::CompareStraightAndResumed(Parse(yaml), 100);
  EXPECT_TRUE(c.identical_parameters);
  Trainer t(Parse(yaml));
  t.Train(200);
  testing::TempDir dir;
  CheckpointManager ckpt(dir.path() + "/ck", 1);
  const auto files = ExportRun(t, dir.path(), ckpt.Save(t), dir.path() + "/export");
  const std::string manifest = testing::ReadFile(dir.path() + "/export/manifest.json");
  for (const char* algo : {"\"muzero\"", "\"ppo\"", "\"dqn\""})
    EXPECT_NE(manifest.find(algo), std::string::npos) << algo;
  EXPECT_EQ(files.size(), 5u);  // risk.pt, risk_model.pt, credit.pt, collection.pt, manifest
}

}  // namespace
}  // namespace loantwin
