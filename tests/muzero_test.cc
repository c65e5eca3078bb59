// MuZero building blocks: the h transform and two-hot supports, and the batched MCTS (lookahead,
// masks, Gumbel policy improvement, determinism across batch splits).

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "agents/mcts.h"
#include "agents/muzero_support.h"
#include "env/counter_rng.h"

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
}

}  // namespace
}  // namespace loantwin
