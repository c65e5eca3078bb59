// The conformance suite every registered environment passes: random rollouts stay inside the
// spaces, masks are respected and enforced, seeding is deterministic (also across thread
// counts), and reset / auto-reset semantics hold.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "env/env_registry.h"

namespace loantwin {
namespace {

constexpr int kEpisodeSteps = 15;

std::unique_ptr<MultiAgentEnv> Make(const std::string& name, int n, int threads, uint64_t seed,
                                    FallbackPolicy policy = FallbackPolicy::kRandom) {
  EnvOptions o;
  o.num_envs = n;
  o.num_threads = threads;
  o.seed = seed;
  o.max_episode_steps = kEpisodeSteps;
  auto env = MakeEnv(name, o);
  for (int r = 0; r < env->num_roles(); ++r) env->SetFallback(r, policy);
  return env;
}

/// Everything an agent sees after a step, flattened (for determinism checks).
std::vector<float> Snapshot(const MultiAgentEnv& env) {
  std::vector<float> out;
  const int n = env.num_envs();
  for (int r = 0; r < env.num_roles(); ++r) {
    const RoleSpec& s = env.role(r);
    out.insert(out.end(), env.observations(r), env.observations(r) + n * s.obs_dim());
    out.insert(out.end(), env.rewards(r), env.rewards(r) + n);
    out.insert(out.end(), env.reward_vectors(r), env.reward_vectors(r) + n * s.objectives.size());
    for (int i = 0; i < n * s.action_space.action_dims(); ++i) out.push_back(env.actions(r)[i]);
  }
  for (int i = 0; i < n; ++i) out.push_back(env.terminated()[i]), out.push_back(env.truncated()[i]);
  return out;
}

class Conformance : public ::testing::TestWithParam<std::string> {};

TEST(EnvRegistry, BuiltinsRegisteredAndUnknownNamesRejected) {
  const auto names = RegisteredEnvs();
  EXPECT_NE(std::find(names.begin(), names.end(), "twin"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "cartpole"), names.end());
  try {
    MakeEnv("cartpoel", EnvOptions{});
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("unknown environment 'cartpoel'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("cartpole"), std::string::npos);
  }
  EXPECT_THROW(RegisterEnv("twin", nullptr), std::invalid_argument);
}

TEST_P(Conformance, RandomRolloutsStayInsideSpacesAndRespectMasks) {
  auto env = Make(GetParam(), 6, 2, 7);
  const int n = env->num_envs();
  env->Reset();
  for (int step = 0; step < 3 * kEpisodeSteps; ++step) {
    for (int r = 0; r < env->num_roles(); ++r) {
      const RoleSpec& spec = env->role(r);
      const int width = spec.action_space.mask_width(), dims = spec.action_space.action_dims();
      // Masks as seen when the role decides (after the roles above acted).
      std::vector<uint8_t> mask(env->action_masks(r), env->action_masks(r) + n * width);
      for (int i = 0; i < n; ++i) {
        int allowed = 0;
        for (int k = 0; k < width; ++k) allowed += mask[i * width + k];
        ASSERT_GE(allowed, spec.action_space.action_dims()) << spec.name;
      }
      env->Act(r, nullptr);
      for (int i = 0; i < n; ++i) {
        if (!env->acting(r)[i]) continue;
        ASSERT_TRUE(spec.action_space.Allows(&mask[i * width], env->actions(r) + i * dims))
            << spec.name << " instance " << i << " step " << step;
      }
    }
    env->Step();
    for (int r = 0; r < env->num_roles(); ++r) {
      const RoleSpec& spec = env->role(r);
      const Box box = spec.observation_space();
      for (int i = 0; i < n; ++i) {
        int bad = -1;
        ASSERT_TRUE(box.Contains(env->observations(r) + i * spec.obs_dim(), &bad))
            << spec.name << " feature " << spec.features.names()[bad] << " = "
            << env->observations(r)[i * spec.obs_dim() + bad];
        if (env->terminated()[i] || env->truncated()[i]) {
          ASSERT_TRUE(box.Contains(env->final_observations(r) + i * spec.obs_dim(), &bad))
              << spec.name << " final " << spec.features.names()[bad];
          // The final state's masks allow at least one value per component.
          const MultiDiscrete& md = spec.action_space.dims();
          const uint8_t* fm = env->final_action_masks(r) + i * md.mask_width();
          for (int c = 0; c < md.size(); ++c) {
            int allowed = 0;
            for (int v = 0; v < md.nvec()[c]; ++v) allowed += fm[md.mask_offset(c) + v];
            ASSERT_GT(allowed, 0) << spec.name << " component " << c;
          }
        }
        ASSERT_TRUE(std::isfinite(env->rewards(r)[i]));
        for (size_t k = 0; k < spec.objectives.size(); ++k)
          ASSERT_TRUE(std::isfinite(env->reward_vectors(r)[i * spec.objectives.size() + k]));
      }
    }
    for (int i = 0; i < n; ++i) ASSERT_FALSE(env->terminated()[i] && env->truncated()[i]);
  }
}

TEST_P(Conformance, SeedingIsDeterministicAcrossThreadCounts) {
  auto run = [&](uint64_t seed, int threads) {
    auto env = Make(GetParam(), 5, threads, seed);
    env->Reset();
    std::vector<float> all = Snapshot(*env);
    for (int step = 0; step < 2 * kEpisodeSteps; ++step) {
      env->Step();
      auto s = Snapshot(*env);
      all.insert(all.end(), s.begin(), s.end());
    }
    return all;
  };
  const auto a = run(3, 1), b = run(3, 2), c = run(4, 2);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  EXPECT_NE(a, c);
}

TEST_P(Conformance, ResetAndAutoResetSemantics) {
  auto env = Make(GetParam(), 4, 1, 11, FallbackPolicy::kBaseline);
  const int n = env->num_envs();
  env->Reset();
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(env->episode_steps()[i], 0);
    EXPECT_EQ(env->episodes()[i], 0);
    for (int r = 0; r < env->num_roles(); ++r) EXPECT_EQ(env->acting(r)[i], 1);
  }
  int ends = 0;
  for (int step = 1; step <= 2 * kEpisodeSteps; ++step) {
    std::vector<std::vector<float>> before;
    env->Step();
    for (int i = 0; i < n; ++i) {
      const bool done = env->terminated()[i] || env->truncated()[i];
      if (!done) {
        EXPECT_GT(env->episode_steps()[i], 0);
        continue;
      }
      ++ends;
      // Same-step auto-reset: a fresh episode, everyone acts, the final observation is kept.
      EXPECT_EQ(env->episode_steps()[i], 0);
      EXPECT_GE(env->episodes()[i], 1);
      bool differs = false;
      for (int r = 0; r < env->num_roles(); ++r) {
        EXPECT_EQ(env->acting(r)[i], 1);
        const int d = env->role(r).obs_dim();
        differs |= std::memcmp(env->observations(r) + i * d, env->final_observations(r) + i * d,
                               d * sizeof(float)) != 0;
      }
      EXPECT_TRUE(differs) << "final observation not kept, instance " << i;
      if (env->truncated()[i]) {
        EXPECT_EQ(step % kEpisodeSteps, 0) << "truncated off-horizon";
      }
    }
  }
  EXPECT_GT(ends, 0);
  // A later Reset starts new episodes (indices keep counting).
  const int64_t before = env->episodes()[0];
  env->Reset();
  EXPECT_EQ(env->episodes()[0], before + 1);
  EXPECT_EQ(env->episode_steps()[0], 0);
}

TEST_P(Conformance, ActionsOutsideTheMaskAreRejected) {
  auto env = Make(GetParam(), 3, 1, 2, FallbackPolicy::kBaseline);
  for (int r = 0; r < env->num_roles(); ++r) {
    const RoleSpec& spec = env->role(r);
    const MultiDiscrete& dims = spec.action_space.dims();
    const int nd = dims.size(), width = dims.mask_width();
    env->Reset();
    for (int above = 0; above < r; ++above) env->Act(above, nullptr);
    // Valid actions: the first allowed value of every component.
    std::vector<int32_t> valid(3 * nd);
    for (int i = 0; i < 3; ++i)
      for (int d = 0; d < nd; ++d)
        for (int v = dims.nvec()[d] - 1; v >= 0; --v)
          if (env->action_masks(r)[i * width + dims.mask_offset(d) + v]) valid[i * nd + d] = v;
    // Instance 1 gets a masked-out value if its mask has one, else an out-of-range value.
    std::vector<int32_t> invalid = valid;
    int bad_dim = 0, bad_value = dims.nvec()[0];
    for (int d = 0; d < nd && bad_value == dims.nvec()[0]; ++d)
      for (int v = 0; v < dims.nvec()[d]; ++v)
        if (!env->action_masks(r)[1 * width + dims.mask_offset(d) + v]) {
          bad_dim = d, bad_value = v;
          break;
        }
    invalid[1 * nd + bad_dim] = bad_value;
    try {
      env->Act(r, invalid.data());
      FAIL() << "expected rejection for role " << spec.name;
    } catch (const std::invalid_argument& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("role '" + spec.name + "'"), std::string::npos) << msg;
      EXPECT_NE(msg.find("instance 1"), std::string::npos) << msg;
    }
    // Nothing was applied and the environment stays usable.
    EXPECT_NO_THROW(env->Act(r, valid.data()));
    for (int i = 0; i < 3; ++i)
      for (int d = 0; d < nd; ++d) EXPECT_EQ(env->actions(r)[i * nd + d], valid[i * nd + d]);
    EXPECT_NO_THROW(env->Step());
  }
}

TEST_P(Conformance, SavedStateContinuesBitForBit) {
  auto env = Make(GetParam(), 3, 2, 21);
  env->Reset();
  for (int step = 0; step < kEpisodeSteps + 3; ++step) env->Step();  // past an auto-reset
  StateWriter w;
  env->SaveState(w);
  std::vector<float> expected;
  for (int step = 0; step < kEpisodeSteps; ++step) {
    env->Step();
    auto s = Snapshot(*env);
    expected.insert(expected.end(), s.begin(), s.end());
  }
  auto restored = Make(GetParam(), 3, 1, 21);
  StateReader r(w.bytes().data(), w.bytes().size());
  restored->LoadState(r);
  EXPECT_TRUE(r.done());
  std::vector<float> got;
  for (int step = 0; step < kEpisodeSteps; ++step) {
    restored->Step();
    auto s = Snapshot(*restored);
    got.insert(got.end(), s.begin(), s.end());
  }
  ASSERT_EQ(expected.size(), got.size());
  EXPECT_EQ(std::memcmp(expected.data(), got.data(), got.size() * sizeof(float)), 0);
  // A state from another environment shape is refused.
  auto other = Make(GetParam(), 2, 1, 21);
  StateReader bad(w.bytes().data(), w.bytes().size());
  EXPECT_THROW(other->LoadState(bad), std::runtime_error);
}

INSTANTIATE_TEST_SUITE_P(AllRegistered, Conformance, ::testing::ValuesIn(RegisteredEnvs()));

}  // namespace
}  // namespace loantwin
