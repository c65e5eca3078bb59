// DQN family: n-step accumulation, replay (uniform and prioritised), targets, branching heads,
// the flat Adam optimiser, checkpoints, export and learning CartPole.

#include "agents/dqn.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "agents/flat_adam.h"
#include "agents/replay_buffer.h"
#include "core/config_error.h"
#include "core/counter_rng.h"
#include "tests/agent_test_util.h"
#include "tests/test_util.h"
#include "training/checkpoint.h"
#include "training/export.h"
#include "training/trainer.h"

namespace loantwin {
namespace {

struct Captured {
  std::vector<float> obs, next_obs;
  int32_t action;
  float reward, discount;
};

TEST(NStep, ReturnsOnAHandBuiltTrajectoryWithTruncationAndTermination) {
  // One instance, n = 3, gamma = 0.5. Observations are scalars (the step index), actions = 10 t.
  const double g = 0.5;
  NStepAccumulator acc(/*num_envs=*/1, /*obs_dim=*/1, /*action_dims=*/1, /*n=*/3, g);
  std::vector<Captured> out;
  const NStepAccumulator::Sink sink = [&](const TransitionView& t) {
    out.push_back({{t.obs[0]}, {t.next_obs[0]}, t.action[0], t.reward, t.discount});
  };
  const uint8_t mask[2] = {1, 1};
  // Episode 1: decisions at t = 0..4 with rewards 1, 2, 3, 4, 5; truncated after t = 4 with final
  // observation 99.
  for (int t = 0; t < 5; ++t) {
    const float obs = static_cast<float>(t);
    const int32_t action = 10 * t;
    acc.Advance(0, &obs, mask, sink);
    acc.Open(0, &obs, &action);
    acc.AddReward(0, static_cast<float>(t + 1));
  }
  const float final_obs = 99;
  acc.End(0, /*truncated=*/true, &final_obs, mask, sink);
  ASSERT_EQ(out.size(), 5u);
  // Complete 3-step transitions: t = 0 -> next obs 3, R = 1 + .5 * 2 + .25 * 3, discount .125.
  EXPECT_FLOAT_EQ(out[0].reward, 1 + 0.5f * 2 + 0.25f * 3);
  EXPECT_FLOAT_EQ(out[0].discount, 0.125f);
  EXPECT_FLOAT_EQ(out[0].next_obs[0], 3);
  EXPECT_EQ(out[0].action, 0);
  EXPECT_FLOAT_EQ(out[1].reward, 2 + 0.5f * 3 + 0.25f * 4);
  EXPECT_FLOAT_EQ(out[1].next_obs[0], 4);
  // Truncation: the pending decisions t = 2, 3, 4 bootstrap from the final observation with
  // shorter returns.
  EXPECT_FLOAT_EQ(out[2].obs[0], 2);
  EXPECT_FLOAT_EQ(out[2].reward, 3 + 0.5f * 4 + 0.25f * 5);
  EXPECT_FLOAT_EQ(out[2].discount, 0.125f);
  EXPECT_FLOAT_EQ(out[2].next_obs[0], 99);
  EXPECT_FLOAT_EQ(out[3].reward, 4 + 0.5f * 5);
  EXPECT_FLOAT_EQ(out[3].discount, 0.25f);
  EXPECT_FLOAT_EQ(out[4].reward, 5);
  EXPECT_FLOAT_EQ(out[4].discount, 0.5f);
  EXPECT_EQ(out[4].action, 40);
  EXPECT_EQ(acc.pending(0), 0);
  // Episode 2: two decisions, then termination: no bootstrap (discount 0).
  out.clear();
  for (int t = 0; t < 2; ++t) {
    const float obs = 100.0f + t;
    const int32_t action = t;
    acc.Advance(0, &obs, mask, sink);
    acc.Open(0, &obs, &action);
    acc.AddReward(0, 1.0f);
  }
  acc.End(0, /*truncated=*/false, &final_obs, mask, sink);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_FLOAT_EQ(out[0].reward, 1.5f);
  EXPECT_FLOAT_EQ(out[0].discount, 0.0f);
  EXPECT_FLOAT_EQ(out[1].reward, 1.0f);
  EXPECT_FLOAT_EQ(out[1].discount, 0.0f);
}

TEST(NStep, DecisionsWithACadenceCollectEveryStepsReward) {
  // A quarterly role (decides every third step), n = 1, gamma = 0.9: one transition per quarter
  // with three months of discounted reward and discount 0.9^3.
  NStepAccumulator acc(1, 1, 1, 1, 0.9);
  std::vector<Captured> out;
  const NStepAccumulator::Sink sink = [&](const TransitionView& t) {
    out.push_back({{t.obs[0]}, {t.next_obs[0]}, t.action[0], t.reward, t.discount});
  };
  const uint8_t mask[1] = {1};
  for (int month = 0; month < 7; ++month) {
    const float obs = static_cast<float>(month);
    const int32_t a = 0;
    if (month % 3 == 0) {
      acc.Advance(0, &obs, mask, sink);
      acc.Open(0, &obs, &a);
    }
    acc.AddReward(0, 1.0f);
  }
  ASSERT_EQ(out.size(), 2u);
  EXPECT_FLOAT_EQ(out[0].reward, 1 + 0.9f + 0.81f);
  EXPECT_NEAR(out[0].discount, 0.729f, 1e-6);
  EXPECT_FLOAT_EQ(out[0].next_obs[0], 3);
}

TransitionView Transition(const float* obs, const int32_t* a, float r, const uint8_t* m) {
  return TransitionView{obs, a, r, 0.99f, obs, m};
}

TEST(ReplayBuffer, BoundedOverwritesTheOldestAndSamplesUniformly) {
  ReplayBuffer::Options o;
  o.capacity = 100;
  ReplayBuffer rb(2, 1, 3, o);
  const int64_t bytes = rb.bytes();
  EXPECT_EQ(bytes, 100 * (2 * 2 * 4 + 8 + 4 + 4 + 3));
  const uint8_t mask[3] = {1, 0, 1};
  for (int k = 0; k < 250; ++k) {
    const float obs[2] = {static_cast<float>(k), 0};
    const int32_t a = k % 3;
    rb.Add(Transition(obs, &a, static_cast<float>(k), mask));
  }
  EXPECT_EQ(rb.size(), 100);
  EXPECT_EQ(rb.bytes(), bytes);  // memory stays at its capacity
  uint64_t counter = 0;
  const auto b = rb.Sample(20000, 0.4, 42, &counter);
  const torch::Tensor r = b.rewards;
  EXPECT_GE(r.min().item<float>(), 150.0f);  // only the newest 100 remain
  EXPECT_NEAR(r.mean().item<double>(), 199.5, 1.0);
  EXPECT_TRUE(torch::equal(b.obs.select(1, 0), r));
  EXPECT_TRUE(torch::all(b.weights == 1).item<bool>());  // uniform: no importance weights
  EXPECT_FALSE(b.next_masks[0][1].item<bool>());
}

TEST(ReplayBuffer, PrioritisedSamplingWeightsAndPriorityUpdates) {
  ReplayBuffer::Options o;
  o.capacity = 4;
  o.prioritized = true;
  o.alpha = 0.5;
  o.priority_eps = 0.0;
  ReplayBuffer rb(1, 1, 1, o);
  const uint8_t mask[1] = {1};
  for (int k = 0; k < 4; ++k) {
    const float obs = static_cast<float>(k);
    const int32_t a = 0;
    rb.Add(Transition(&obs, &a, static_cast<float>(k), mask));
  }
  // New transitions get the largest priority so far (1): uniform.
  for (int k = 0; k < 4; ++k) EXPECT_DOUBLE_EQ(rb.priority(k), 1.0);
  // |TD| 1, 4, 9, 16 with alpha 0.5 -> priorities 1, 2, 3, 4 (probabilities 0.1 .. 0.4).
  const float td[4] = {1, 4, 9, 16};
  rb.UpdatePriorities({0, 1, 2, 3}, td);
  EXPECT_DOUBLE_EQ(rb.priority(2), 3.0);
  uint64_t counter = 0;
  const double beta = 0.5;
  const auto b = rb.Sample(40000, beta, 7, &counter);
  std::vector<int> counts(4, 0);
  for (int64_t i : b.indices) counts[i] += 1;
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(counts[k] / 40000.0, (k + 1) / 10.0, 0.01) << k;
  // w_i = (N P(i))^-beta / max_j w_j: the rarest (P = 0.1) has weight 1.
  for (int k = 0; k < 8; ++k) {
    const int64_t i = b.indices[k];
    const double want = std::pow(4 * (i + 1) / 10.0, -beta) / std::pow(4 * 0.1, -beta);
    EXPECT_NEAR(b.weights[k].item<float>(), want, 1e-5);
  }
  // A new transition enters at the maximum priority seen (4).
  const float obs = 9;
  const int32_t a = 0;
  rb.Add(Transition(&obs, &a, 9, mask));
  EXPECT_DOUBLE_EQ(rb.priority(0), 4.0);
}

TEST(DqnTarget, DoubleAndPlainTargetsOnFixedValues) {
  // Two branches (3 and 2 values); online and target networks give fixed Q-values.
  const std::vector<int64_t> nvec = {3, 2};
  const torch::Tensor q_target = torch::tensor({{1.0f, 5.0f, 3.0f, 2.0f, 0.0f}});
  const torch::Tensor q_online = torch::tensor({{9.0f, 0.0f, 1.0f, 0.0f, 7.0f}});
  const torch::Tensor all = torch::ones({1, 5}, torch::kBool);
  const torch::Tensor r = torch::tensor({1.0f}), d = torch::tensor({0.5f});
  // Plain: max of the target per branch (5, 2), mean 3.5 -> 1 + 0.5 * 3.5.
  EXPECT_FLOAT_EQ(DqnTarget(r, d, q_target, q_target, all, nvec).item<float>(), 2.75f);
  // Double: the online network picks (0, 1), the target evaluates (1, 0) -> mean 0.5.
  EXPECT_FLOAT_EQ(DqnTarget(r, d, q_target, q_online, all, nvec).item<float>(), 1.25f);
  // Masks: value 1 of branch 0 not allowed -> plain max (3, 2) -> 1 + 0.5 * 2.5.
  const torch::Tensor mask = torch::tensor({{1, 0, 1, 1, 1}}, torch::kUInt8).to(torch::kBool);
  EXPECT_FLOAT_EQ(DqnTarget(r, d, q_target, q_target, mask, nvec).item<float>(), 2.25f);
  // Termination (discount 0) ignores the next state entirely, even with infinite values.
  const torch::Tensor inf = torch::full({1, 5}, std::numeric_limits<float>::infinity());
  EXPECT_FLOAT_EQ(DqnTarget(r, torch::zeros({1}), inf, inf, all, nvec).item<float>(), 1.0f);
}

TEST(DqnAgent, DoubleDqnUpdateUsesTheOnlineArgmaxAndTargetValues) {
  // A fixed network: after a hard target copy the online network is changed; the TD target of a
  // sampled transition must follow the double-DQN rule computed by hand from the two networks.
  DqnConfig c;
  c.hidden = {8};
  c.double_q = true;
  c.buffer_size = 4;
  c.batch_size = 1;
  DqnAgent agent(3, {4}, 1, c, 5, 1000);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : agent.q()->parameters()) p.add_(0.3 * torch::randn_like(p));
  }
  const float obs[3] = {0.1f, -0.2f, 0.3f}, next[3] = {1.0f, 0.5f, -1.0f};
  const uint8_t mask[4] = {1, 1, 0, 1};
  const int32_t a = 2;
  agent.replay().Add(TransitionView{obs, &a, 0.7f, 0.9f, next, mask});
  const torch::Tensor x = torch::from_blob(const_cast<float*>(next), {1, 3}).clone();
  torch::Tensor q_online, q_target;
  {
    torch::NoGradGuard no_grad;
    q_online = agent.q()->forward(x);
    q_target = agent.target()->forward(x);
  }
  int best = -1;
  for (int v = 0; v < 4; ++v)
    if (mask[v] && (best < 0 || q_online[0][v].item<float>() > q_online[0][best].item<float>()))
      best = v;
  const float y = 0.7f + 0.9f * q_target[0][best].item<float>();
  const float q_sa = agent.q()
                         ->forward(torch::from_blob(const_cast<float*>(obs), {1, 3}).clone())[0][2]
                         .item<float>();
  const auto stats = agent.TrainStep();
  EXPECT_NEAR(stats.at("losses/td_loss"), (y - q_sa) * (y - q_sa), 1e-4);
}

// The hand-written TD gradient (fused_update) against LibTorch autograd: branching heads with
// masks, plain and double targets, MSE and Huber, uniform and prioritised replay, terminal and
// bootstrapped transitions, with the imitation phase's large-margin loss. Same losses and
// parameters after a few Adam steps.
TEST(DqnAgent, FusedUpdateMatchesAutograd) {
  const std::vector<int64_t> nvec = {3, 2};
  const int obs_dim = 5, width = 5, dims = 2;
  // Variants 2, 3 and 4: the dueling head (shared value, per-branch centred advantages);
  // 4 and 5: in the imitation phase (the margin loss on the stored actions).
  for (int variant = 0; variant < 6; ++variant) {
    DqnConfig c;
    c.hidden = {16, 12};
    c.dueling = variant >= 2 && variant <= 4;
    if (variant >= 4) {
      c.imitation_fraction = 0.5;
      c.imitation_margin = 0.7;
      c.imitation_coef = 1.5;
    }
    c.buffer_size = 64;
    c.batch_size = 32;
    c.learning_rate = 1e-3;
    c.double_q = variant % 2 == 1;
    c.loss = variant % 2 == 1 ? "huber" : "mse";
    c.prioritized = variant % 2 == 1;
    c.activation = variant == 1 || variant == 2 ? "tanh" : "relu";
    c.max_grad_norm = variant % 2 == 1 ? 0.5 : 0.0;
    c.fused_update = false;
    DqnAgent reference(obs_dim, nvec, 1, c, 9, 1000);
    c.fused_update = true;
    DqnAgent fused(obs_dim, nvec, 1, c, 9, 1000);
    {
      // Move the online networks away from the targets (the same change in both).
      torch::NoGradGuard no_grad;
      torch::manual_seed(3);
      auto pa = reference.q()->parameters(), pb = fused.q()->parameters();
      for (size_t k = 0; k < pa.size(); ++k) {
        const torch::Tensor delta = 0.3 * torch::randn_like(pa[k]);
        pa[k].add_(delta), pb[k].add_(delta);
      }
    }
    uint64_t counter = 0;
    auto uniform = [&] { return static_cast<float>(ToUniform(RandomBits(41, counter++))); };
    for (int t = 0; t < 64; ++t) {
      float obs[obs_dim], next[obs_dim];
      for (int k = 0; k < obs_dim; ++k) obs[k] = 4 * uniform() - 2, next[k] = 4 * uniform() - 2;
      uint8_t mask[width];
      for (uint8_t& m : mask) m = uniform() < 0.7f;
      const int32_t action[dims] = {static_cast<int32_t>(3 * uniform()),
                                    static_cast<int32_t>(2 * uniform())};
      const float reward = 6 * uniform() - 3, discount = t % 5 == 0 ? 0.0f : 0.97f;
      const TransitionView tr{obs, action, reward, discount, next, mask};
      reference.replay().Add(tr);
      fused.replay().Add(tr);
    }
    for (int step = 0; step < 4; ++step) {
      const UpdateStats want = reference.TrainStep(), got = fused.TrainStep();
      for (const char* key : {"losses/td_loss", "losses/q_values", "losses/grad_norm"})
        EXPECT_NEAR(got.at(key), want.at(key), 1e-5 * std::max(1.0, std::abs(want.at(key))))
            << key << " variant " << variant << " step " << step;
      if (variant >= 4) {
        ASSERT_TRUE(fused.wants_demonstrations());
        EXPECT_NEAR(got.at("losses/margin_loss"), want.at("losses/margin_loss"), 1e-5)
            << " variant " << variant << " step " << step;
        EXPECT_GT(got.at("losses/margin_loss"), 0.0);
      }
    }
    const auto a = reference.Parameters(), b = fused.Parameters();
    for (size_t k = 0; k < a.size(); ++k)
      EXPECT_LT((a[k] - b[k]).abs().max().item<float>(), 2e-6f) << "parameter " << k;
    if (c.prioritized) {
      for (int64_t i = 0; i < 64; ++i)
        EXPECT_NEAR(fused.replay().priority(i), reference.replay().priority(i),
                    1e-5 * reference.replay().priority(i));
    }
  }
}

TEST(BranchingQNetwork, ShapesDuelingAndMaskedActions) {
  const std::vector<int64_t> nvec = {4, 4, 4};  // the collection role's three buckets
  QNetwork net(6, nvec, std::vector<int64_t>{16, 16}, Activation::kRelu, /*dueling=*/true);
  const torch::Tensor x = torch::randn({5, 6});
  const torch::Tensor q = net->forward(x);
  ASSERT_EQ(q.sizes(), (std::vector<int64_t>{5, 12}));
  // Dueling per branch: Q_d - V has mean zero over each branch, and V is shared.
  torch::NoGradGuard no_grad;
  const torch::Tensor trunk = torch::relu(net->trunk[1]->as<torch::nn::Linear>()->forward(
      torch::relu(net->trunk[0]->as<torch::nn::Linear>()->forward(x))));
  const torch::Tensor v = net->value->forward(trunk);
  for (int d = 0; d < 3; ++d)
    EXPECT_TRUE(
        torch::allclose((q.slice(1, 4 * d, 4 * d + 4) - v).mean(1), torch::zeros({5}), 1e-5, 1e-5));
  // Masked argmax per branch never picks a masked value.
  CounterRng rng(3);
  torch::Tensor mask = torch::zeros({5, 12}, torch::kBool);
  for (int i = 0; i < 5; ++i)
    for (int d = 0; d < 3; ++d) {
      for (int v2 = 0; v2 < 4; ++v2) mask[i][4 * d + v2] = rng.Uniform() < 0.5;
      mask[i][4 * d + static_cast<int>(rng.Uniform() * 4)] = true;
    }
  const torch::Tensor a = MaskedArgmax(q, mask, nvec);
  ASSERT_EQ(a.sizes(), (std::vector<int64_t>{5, 3}));
  for (int i = 0; i < 5; ++i)
    for (int d = 0; d < 3; ++d) EXPECT_TRUE(mask[i][4 * d + a[i][d].item<int64_t>()].item<bool>());
}

TEST(DqnAgent, ActingRespectsMasksExploringAndGreedy) {
  DqnConfig c;
  c.hidden = {16};
  c.dueling = true;
  // The small-batch scalar path, the LinearStack path (dueling head stacked) and the tensor path.
  for (int n : {3, 40, 300}) {
    DqnAgent agent(5, {3, 4}, n, c, 9, 1000);
    CounterRng rng(11);
    std::vector<float> obs(static_cast<size_t>(n) * 5);
    std::vector<uint8_t> mask(static_cast<size_t>(n) * 7);
    std::vector<int32_t> actions(static_cast<size_t>(n) * 2), greedy(actions.size());
    for (int round = 0; round < 50; ++round) {
      if (round % 10 == 5) {  // as a gradient step would: acting must see the new weights
        torch::NoGradGuard no_grad;
        for (auto& p : agent.q()->parameters()) p.add_(0.3 * torch::randn_like(p));
      }
      for (auto& v : obs) v = static_cast<float>(rng.Normal());
      for (int i = 0; i < n; ++i) {
        for (int k = 0; k < 7; ++k) mask[i * 7 + k] = rng.Uniform() < 0.4;
        mask[i * 7 + static_cast<int>(rng.Uniform() * 3)] = 1;
        mask[i * 7 + 3 + static_cast<int>(rng.Uniform() * 4)] = 1;
      }
      for (bool deterministic : {false, true}) {
        agent.Act(obs.data(), mask.data(), n, deterministic, actions.data());
        for (int i = 0; i < n; ++i) {
          ASSERT_TRUE(mask[i * 7 + actions[i * 2]]) << "n " << n;
          ASSERT_TRUE(mask[i * 7 + 3 + actions[i * 2 + 1]]) << "n " << n;
        }
      }
      // Greedy = masked argmax of the Q-values.
      agent.Act(obs.data(), mask.data(), n, true, greedy.data());
      const torch::Tensor q = agent.QValues(obs.data(), n);
      const torch::Tensor m = torch::from_blob(mask.data(), {n, 7}, torch::kUInt8).to(torch::kBool);
      const torch::Tensor want = MaskedArgmax(q, m, {3, 4});
      for (int k = 0; k < n * 2; ++k)
        ASSERT_EQ(greedy[k], want.view({-1})[k].item<int64_t>()) << "n " << n;
    }
  }
}

TEST(FlatAdam, MatchesTorchAdam) {
  // With and without L2 weight decay, with gradient clipping.
  for (const double decay : {0.0, 0.01}) {
    torch::manual_seed(1);
    auto make = [] {
      return torch::nn::Sequential(torch::nn::Linear(3, 5), torch::nn::Linear(5, 2));
    };
    auto a = make(), b = make();
    {
      torch::NoGradGuard no_grad;
      for (size_t k = 0; k < a->parameters().size(); ++k)
        b->parameters()[k].copy_(a->parameters()[k]);
    }
    torch::optim::Adam reference(a->parameters(),
                                 torch::optim::AdamOptions(1e-2).weight_decay(decay));
    FlatAdam flat(b->parameters(), 1e-2, 1e-8, 0.9, 0.999, decay);
    const torch::Tensor x = torch::randn({16, 3}), y = torch::randn({16, 2});
    for (int step = 0; step < 20; ++step) {
      reference.zero_grad();
      (a->forward(x) - y).pow(2).mean().backward();
      const double want = torch::nn::utils::clip_grad_norm_(a->parameters(), 0.3);
      reference.step();
      flat.ZeroGrad();
      (b->forward(x) - y).pow(2).mean().backward();
      EXPECT_NEAR(flat.ClipGradNorm(0.3), want, 1e-5 * want);
      flat.Step();
    }
    for (size_t k = 0; k < a->parameters().size(); ++k)
      EXPECT_TRUE(torch::allclose(a->parameters()[k], b->parameters()[k], 1e-5, 1e-6))
          << k << " decay " << decay;
    // The parameters are views of the flat buffer.
    EXPECT_EQ(b->parameters()[0].data_ptr<float>(), flat.flat().data_ptr<float>());
  }
}

ExperimentConfig Parse(const std::string& yaml) {
  return ExperimentConfig::Parse(YamlValue::LoadString(yaml, "exp.yaml"));
}

std::string ConfigErrorOf(const std::string& yaml) {
  try {
    Trainer t(Parse(yaml));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(DqnConfig, StrictParsingAndResolvedConfig) {
  const std::string base = "name: d\nenv: {name: cartpole}\nroles:\n  agent: ";
  auto msg = ConfigErrorOf(base + "{algorithm: dqn, dqn: {n_stepz: 3}}\n");
  EXPECT_NE(msg.find("exp.yaml:4"), std::string::npos) << msg;
  EXPECT_NE(msg.find("n_stepz"), std::string::npos) << msg;
  msg = ConfigErrorOf(base + "{agent: ppo, dqn: {n_step: 3}}\n");
  EXPECT_NE(msg.find("'dqn' hyperparameters given for a role whose agent is 'ppo'"),
            std::string::npos)
      << msg;
  msg = ConfigErrorOf(base + "{agent: ppo, algorithm: dqn}\n");
  EXPECT_NE(msg.find("conflicts"), std::string::npos) << msg;
  msg = ConfigErrorOf(base + "{algorithm: dqn, dqn: {batch_size: 64, buffer_size: 32}}\n");
  EXPECT_NE(msg.find("larger than buffer_size"), std::string::npos) << msg;
  msg = ConfigErrorOf(base + "{algorithm: dqn, dqn: {loss: l1}}\n");
  EXPECT_NE(msg.find("l1"), std::string::npos) << msg;
  msg = ConfigErrorOf(base + "{algorithm: dqn, dqn: {n_step: 0}}\n");
  EXPECT_NE(msg.find("n_step"), std::string::npos) << msg;
  msg = ConfigErrorOf(base + "{algorithm: dqn, dqn: {start_e: 0.1, end_e: 0.5}}\n");
  EXPECT_NE(msg.find("end_e"), std::string::npos) << msg;
  const auto c = Parse(base + "{algorithm: dqn, dqn: {n_step: 3, prioritized: true}}\n");
  const auto again = Parse(c.ToYaml());
  EXPECT_EQ(again.roles.at("agent").agent, "dqn");
  EXPECT_EQ(again.roles.at("agent").hyperparameters<DqnConfig>().n_step, 3);
  EXPECT_TRUE(again.roles.at("agent").hyperparameters<DqnConfig>().prioritized);
  EXPECT_EQ(again.roles.at("agent").hyperparameters<DqnConfig>().buffer_size, 10000);
  EXPECT_EQ(c.ToYaml(), again.ToYaml());
}

/// Trains 2n steps straight and n + n with a checkpoint in between; true if identical.
bool ResumesExactly(const std::string& yaml, int64_t n) {
  return testing::CompareStraightAndResumed(Parse(yaml), n).identical_parameters;
}

const char* kResumeYaml =
    "name: r\nseed: 3\ntotal_steps: 6000\nenv: {name: cartpole, num_envs: 2}\n"
    "roles:\n  agent: {algorithm: dqn, dqn: {learning_starts: 500, train_frequency: 2, "
    "batch_size: 32, buffer_size: 2000, hidden: [32], n_step: 3, prioritized: true, double_q: "
    "true, dueling: true, target_network_frequency: 100, normalize_obs: true, checkpoint_replay: ";

TEST(DqnCheckpoint, WithoutTheReplayBufferTheRunGoesOnAndRefills) {
  // Smaller checkpoints; the resumed run refills the buffer (not the same numbers).
  EXPECT_FALSE(ResumesExactly(std::string(kResumeYaml) + "false}}\n", 1502));
}

void ExpectDqnExportParity(const std::string& yaml, int64_t steps) {
  testing::ExpectExportParity(yaml, steps);
  // The manifest says DQN and lists q_values; the module's Q-values have the mask's layout.
  Trainer t(Parse(yaml));
  testing::TempDir dir;
  CheckpointManager ckpt(dir.path() + "/checkpoints", 1);
  ExportRun(t, dir.path(), ckpt.Save(t), dir.path() + "/export");
  const std::string manifest = testing::ReadFile(dir.path() + "/export/manifest.json");
  EXPECT_NE(manifest.find("\"algorithm\": \"dqn\""), std::string::npos);
  EXPECT_NE(manifest.find("q_values(obs)"), std::string::npos);
  for (int r = 0; r < t.env().num_roles(); ++r) {
    if (!t.agent(r)) continue;
    const RoleSpec& spec = t.env().role(r);
    torch::jit::Module m = torch::jit::load(dir.path() + "/export/" + spec.name + ".pt");
    const torch::Tensor q =
        m.get_method("q_values")({torch::zeros({2, spec.obs_dim()})}).toTensor();
    EXPECT_EQ(q.size(1), spec.action_space.mask_width());
  }
}

TEST(DqnExport, TorchScriptMatchesThePolicyOnCartPole) {
  ExpectDqnExportParity(
      "name: e\nseed: 2\ntotal_steps: 3000\nenv: {name: cartpole, num_envs: 1}\n"
      "roles:\n  agent: {algorithm: dqn, dqn: {learning_starts: 500, batch_size: 32, "
      "train_frequency: 1}}\n",
      3000);
}

TEST(DqnExport, BranchingDuelingPolicyMatchesOnTheCollectionRole) {
  ExpectDqnExportParity(
      "name: e\nseed: 2\ntotal_steps: 2000\nenv: {name: twin, num_envs: 4, config: "
      "{horizon_months: 12}}\n"
      "roles:\n  collection: {algorithm: dqn, dqn: {learning_starts: 100, batch_size: 16, "
      "train_frequency: 4, hidden: [32, 32], dueling: true, double_q: true, normalize_obs: "
      "true}}\n",
      600);
}

TEST(ShippedExperiments, EveryConfigLoadsAndBuilds) {
  int configs = 0;
  for (const auto& e :
       std::filesystem::directory_iterator(std::string(LOANTWIN_SOURCE_DIR) + "/configs")) {
    if (e.path().extension() != ".yaml") continue;
    const auto c = ExperimentConfig::Load(e.path().string());
    Trainer t(c);  // environment, roles and agents resolve
    EXPECT_EQ(t.global_step(), 0) << e.path();
    ++configs;
  }
  EXPECT_GE(configs, 5);
}

}  // namespace
}  // namespace loantwin
