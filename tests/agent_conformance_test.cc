// The conformance suite every registered learning algorithm passes (agents/agent_registry.h),
// parametrised over the registry: hyperparameters round-trip through YAML, masks are respected
// (greedy and exploring), a saved agent loads into a fresh one and acts the same, a resumed run
// continues bit for bit, the export decides like the agent, and the algorithm learns CartPole
// to a threshold. A new algorithm gets the suite by registering and adding its settings to
// kSettings below (the first test fails until it does).

#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <sstream>
#include <string>

#include "agents/agent_registry.h"
#include "agents/numerics.h"
#include "core/counter_rng.h"
#include "env/cartpole.h"
#include "env/env_registry.h"
#include "tests/agent_test_util.h"
#include "tests/test_util.h"
#include "training/checkpoint.h"
#include "training/trainer.h"

namespace loantwin {
namespace {

struct Settings {
  /// The role's section of a small CartPole run (resume, save/load, export).
  std::string small_role;
  int64_t small_total = 0, resume_at = 0;
  /// A run that learns: experiment YAML (or a shipped config under configs/), steps, threshold
  /// on the 20-episode mean return.
  std::string learn_yaml, learn_config;
  int64_t learn_steps = 0;
  double learn_threshold = 0;
  /// Greedy episodes after learning must average at least this (0 = not checked).
  double greedy_threshold = 0;
};

const std::map<std::string, Settings>& AllSettings() {
  static const std::map<std::string, Settings> settings = {
      {"ppo",
       // CleanRL's defaults with the schedule annealed over 100k steps.
       {"{agent: ppo, ppo: {num_steps: 64, normalize_obs: true, normalize_reward: true}}", 4000,
        1500,
        "name: cartpole_test\nseed: 1\ntotal_steps: 100000\nenv: {name: cartpole, num_envs: 4}\n"
        "roles:\n  agent: {agent: ppo}\nlogging: {every_steps: 100000000}\n",
        "", 100000, 195.0, 195.0}},
      {"dqn",
       {"{algorithm: dqn, dqn: {learning_starts: 500, train_frequency: 2, batch_size: 32, "
        "buffer_size: 2000, hidden: [32], n_step: 3, prioritized: true, double_q: true, "
        "dueling: true, target_network_frequency: 100, normalize_obs: true, "
        "checkpoint_replay: true}}",
        6000, 1502, "",
        // The shipped configuration (schedules over 100k steps), stopped at 60k: it solves
        // CartPole at about 50k.
        "configs/cartpole_rainbow_lite.yaml", 60000, 400.0, 0.0}},
      {"muzero",
       {"{algorithm: muzero, muzero: {num_simulations: 6, batch_size: 16, learning_starts: 200, "
        "train_ratio: 0.1, latent_dim: 8, hidden: [16], support_size: 12, unroll_steps: 3, "
        "td_steps: 5, target_update_interval: 5, prioritized: true, normalize_obs: true}}",
        1600, 800, "",
        // The shipped configuration, stopped at 16k of its 50k steps (seeds 1-10 solve at
        // 24k-45k or end at 180-460; docs/agents/muzero.md).
        "configs/cartpole_muzero.yaml", 16000, 120.0, 0.0}},
  };
  return settings;
}

class AgentConformance : public ::testing::TestWithParam<std::string> {
 protected:
  const Settings& settings() const { return AllSettings().at(GetParam()); }
  ExperimentConfig Small(int num_envs = 4) const {
    return ExperimentConfig::Parse(YamlValue::LoadString(
        "name: conformance\nseed: 3\ntotal_steps: " + std::to_string(settings().small_total) +
            "\nenv: {name: cartpole, num_envs: " + std::to_string(num_envs) +
            "}\nroles:\n  agent: " + settings().small_role + "\n",
        "conformance.yaml"));
  }
  /// A fresh agent of the algorithm for a synthetic role: 5 features, actions {3, 4} (or a
  /// single Discrete(5) for algorithms that need one).
  std::unique_ptr<Agent> Make(AgentSpec* spec) const {
    const AgentAlgorithm algo = AgentAlgorithms().Get(GetParam());
    auto options = algo.defaults();
    spec->role = "agent";
    spec->obs_dim = spec->global_state_dim = 5;
    spec->num_envs = 8;
    spec->seed = 11;
    spec->total_steps = 1000;
    spec->nvec = {3, 4};
    try {
      return algo.make(*spec, *options);
    } catch (const std::invalid_argument&) {
      spec->nvec = {5};
      return algo.make(*spec, *options);
    }
  }
};

TEST(AgentRegistry, EveryAlgorithmHasConformanceSettings) {
  const auto names = AgentAlgorithms().Names();
  EXPECT_EQ(names, (std::vector<std::string>{"ppo", "dqn", "muzero"}));
  for (const auto& name : names) EXPECT_TRUE(AllSettings().count(name)) << name;
  EXPECT_THROW(AgentAlgorithms().Get("a2c"), std::invalid_argument);
  EXPECT_THROW(AgentAlgorithms().Add("ppo", {}), std::invalid_argument);
}

TEST_P(AgentConformance, HyperparametersRoundTripThroughYaml) {
  const AgentAlgorithm algo = AgentAlgorithms().Get(GetParam());
  auto defaults = algo.defaults();
  EXPECT_EQ(defaults->Check(), "");
  YAML::Emitter out;
  out << YAML::BeginMap;
  defaults->Write(out);
  out << YAML::EndMap;
  auto again = algo.defaults();
  const YamlValue value = YamlValue::LoadString(out.c_str(), "defaults.yaml");
  YamlMap map(value);
  again->Read(map);
  map.Done();  // every written key is a known key
  YAML::Emitter out2;
  out2 << YAML::BeginMap;
  again->Write(out2);
  out2 << YAML::EndMap;
  EXPECT_EQ(std::string(out.c_str()), std::string(out2.c_str()));
  // The resolved experiment config names the algorithm's section.
  const ExperimentConfig c = Small();
  EXPECT_NE(c.ToYaml().find(GetParam() + ":"), std::string::npos);
  EXPECT_EQ(ExperimentConfig::Parse(YamlValue::LoadString(c.ToYaml(), "r.yaml")).ToYaml(),
            c.ToYaml());
}

TEST_P(AgentConformance, ActingRespectsMasksGreedyAndExploring) {
  AgentSpec spec;
  auto agent = Make(&spec);
  EXPECT_EQ(agent->algorithm(), GetParam());
  int width = 0;
  for (int64_t k : spec.nvec) width += static_cast<int>(k);
  const int n = spec.num_envs, dims = static_cast<int>(spec.nvec.size());
  CounterRng rng(3);
  for (int round = 0; round < 20; ++round) {
    std::vector<float> obs(static_cast<size_t>(n) * spec.obs_dim);
    for (auto& x : obs) x = static_cast<float>(rng.Normal());
    std::vector<uint8_t> mask(static_cast<size_t>(n) * width);
    for (int i = 0; i < n; ++i) {
      int off = 0;
      for (int64_t k : spec.nvec) {
        for (int v = 0; v < k; ++v) mask[i * width + off + v] = rng.Uniform() < 0.4;
        mask[i * width + off + static_cast<int>(rng.Uniform() * k)] = 1;
        off += static_cast<int>(k);
      }
    }
    for (bool deterministic : {true, false}) {
      std::vector<int32_t> actions(static_cast<size_t>(n) * dims, -1);
      agent->Act(obs.data(), mask.data(), n, deterministic, actions.data());
      for (int i = 0; i < n; ++i) {
        int off = 0;
        for (int d = 0; d < dims; ++d) {
          const int a = actions[i * dims + d];
          ASSERT_GE(a, 0);
          ASSERT_LT(a, spec.nvec[d]);
          EXPECT_EQ(mask[i * width + off + a], 1) << "row " << i << " component " << d;
          off += static_cast<int>(spec.nvec[d]);
        }
      }
    }
  }
}

TEST_P(AgentConformance, SavedAgentLoadsIntoAFreshOneAndActsTheSame) {
  Trainer t(Small());
  t.Train(settings().resume_at);
  Agent* trained = t.agent(0);
  ASSERT_NE(trained, nullptr);
  torch::serialize::OutputArchive out;
  trained->Save(out);
  std::ostringstream bytes;
  out.save_to(bytes);
  Trainer fresh(Small());
  Agent* loaded = fresh.agent(0);
  torch::serialize::InputArchive in;
  std::istringstream source(bytes.str());
  in.load_from(source);
  loaded->Load(in);
  EXPECT_EQ(loaded->env_steps(), trained->env_steps());
  const auto a = trained->Parameters(), b = loaded->Parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k) EXPECT_TRUE(torch::equal(a[k], b[k])) << k;
  CounterRng rng(9);
  const int n = 16;
  std::vector<float> obs(n * 4);
  for (auto& x : obs) x = static_cast<float>(rng.Normal());
  std::vector<uint8_t> mask(n * 2, 1);
  std::vector<int32_t> x(n), y(n);
  trained->Act(obs.data(), mask.data(), n, true, x.data());
  loaded->Act(obs.data(), mask.data(), n, true, y.data());
  EXPECT_EQ(x, y);
}

/// CartPole whose rewards turn NaN once an episode reaches its 12th step.
class NanRewardCartPole : public CartPoleEnv {
 public:
  using CartPoleEnv::CartPoleEnv;

 protected:
  void StepInstances(int begin, int end) override {
    CartPoleEnv::StepInstances(begin, end);
    for (int i = begin; i < end; ++i)
      if (episode_steps()[i] >= 12) set_reward(0, i, std::numeric_limits<float>::quiet_NaN());
  }
};

TEST_P(AgentConformance, NonFiniteRewardsStopTheRunNamingTheStepAndRole) {
  static const bool registered = [] {
    RegisterEnv("nan_reward_cartpole", [](const EnvOptions& o, const YamlValue*) {
      return std::unique_ptr<MultiAgentEnv>(new NanRewardCartPole(o));
    });
    return true;
  }();
  ASSERT_TRUE(registered);
  std::string yaml = Small().ToYaml();
  yaml.replace(yaml.find("name: cartpole"), 14, "name: nan_reward_cartpole");
  Trainer t(ExperimentConfig::Parse(YamlValue::LoadString(yaml, "nan.yaml")));
  try {
    t.Train();
    FAIL() << "trained through NaN rewards";
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("training stopped at step "), std::string::npos) << m;
    EXPECT_NE(m.find("role agent (" + GetParam() + "): non-finite reward (instance "),
              std::string::npos)
        << m;
  }
  EXPECT_GT(t.global_step(), 0);
  EXPECT_LT(t.global_step(), Small().total_steps);
}

TEST_P(AgentConformance, DivergedParametersStopTheUpdateAndAreNeverCheckpointed) {
  // The agent learns from finite experience, but its parameters are NaN whenever MaybeUpdate
  // runs: the first update must stop with the loss, gradient norm or a parameter named.
  AgentSpec spec;
  auto agent = Make(&spec);
  int width = 0;
  for (int64_t k : spec.nvec) width += static_cast<int>(k);
  const int n = spec.num_envs, dims = static_cast<int>(spec.nvec.size());
  CounterRng rng(5);
  std::vector<float> obs(static_cast<size_t>(n) * spec.obs_dim), rewards(n, 1.0f);
  std::vector<uint8_t> masks(static_cast<size_t>(n) * width, 1), acting(n, 1), ended(n, 0);
  std::vector<int32_t> actions(static_cast<size_t>(n) * dims);
  auto fill = [&] {
    for (auto& x : obs) x = static_cast<float>(rng.Normal());
  };
  fill();
  std::string quantity;
  for (int step = 0; step < 2000 && quantity.empty(); ++step) {
    agent->ActAndRecord({n, obs.data(), obs.data(), masks.data(), acting.data()}, actions.data());
    fill();
    for (int i = 0; i < n; ++i) ended[i] = (step + i) % 25 == 24;
    agent->Observe(
        {n, rewards.data(), ended.data(), ended.data() + 0, obs.data(), obs.data(), masks.data()});
    std::vector<torch::Tensor> saved;
    {
      torch::NoGradGuard no_grad;
      for (auto& p : agent->Parameters()) {
        saved.push_back(p.detach().clone());
        p.detach().fill_(std::numeric_limits<float>::quiet_NaN());
      }
    }
    try {
      const UpdateStats stats =
          agent->MaybeUpdate({n, obs.data(), obs.data(), masks.data(), acting.data()});
      ASSERT_TRUE(stats.empty()) << "an update with NaN parameters went through";
    } catch (const NonFiniteError& e) {
      quantity = e.quantity();
    }
    torch::NoGradGuard no_grad;
    const auto params = agent->Parameters();
    for (size_t k = 0; k < params.size(); ++k) params[k].detach().copy_(saved[k]);
  }
  EXPECT_TRUE(quantity == "loss" || quantity == "gradient norm" ||
              quantity.rfind("parameter ", 0) == 0)
      << "no update stopped; quantity '" << quantity << "'";
  // A trainer never writes a checkpoint holding them.
  Trainer t(Small());
  t.Train(settings().resume_at);
  {
    torch::NoGradGuard no_grad;
    t.agent(0)->Parameters().back().detach().fill_(std::numeric_limits<float>::infinity());
  }
  testing::TempDir dir;
  CheckpointManager ckpt(dir.path() + "/checkpoints", 2);
  try {
    ckpt.Save(t);
    FAIL() << "wrote a checkpoint with infinite parameters";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("role agent: non-finite parameter"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(ckpt.Latest(), "");
}

TEST_P(AgentConformance, ResumeIsExact) {
  const auto c = testing::CompareStraightAndResumed(Small(), settings().resume_at);
  EXPECT_TRUE(c.identical_parameters);
  EXPECT_EQ(c.straight_return, c.resumed_return);
}

TEST_P(AgentConformance, ExportDecidesLikeTheAgent) {
  testing::ExpectExportParity(Small().ToYaml(), settings().resume_at);
}

TEST_P(AgentConformance, LearnsCartPole) {
  const Settings& s = settings();
  ExperimentConfig c =
      s.learn_config.empty()
          ? ExperimentConfig::Parse(YamlValue::LoadString(s.learn_yaml, "learn.yaml"))
          : ExperimentConfig::Load(std::string(LOANTWIN_SOURCE_DIR) + "/" + s.learn_config);
  c.log_every_steps = 100000000;
  Trainer trainer(c);
  trainer.Train(s.learn_steps);
  const double ret = trainer.MeanEpisodicReturn(0);
  RecordProperty("mean_return", std::to_string(ret));
  EXPECT_GE(ret, s.learn_threshold) << GetParam() << " after " << s.learn_steps << " steps";
  if (s.greedy_threshold <= 0) return;
  // The greedy policy keeps the pole up on fresh episodes.
  auto& env = trainer.env();
  env.Reset();
  std::vector<int32_t> actions(env.num_envs());
  int64_t steps = 0, ends = 0;
  while (ends < 8 && steps < env.num_envs() * 600) {
    trainer.agent(0)->Act(env.observations(0), env.action_masks(0), env.num_envs(), true,
                          actions.data());
    env.Act(0, actions.data());
    env.Step();
    steps += env.num_envs();
    for (int i = 0; i < env.num_envs(); ++i) ends += env.terminated()[i] || env.truncated()[i];
  }
  EXPECT_GE(static_cast<double>(steps) / std::max<int64_t>(ends, 1), s.greedy_threshold);
}

INSTANTIATE_TEST_SUITE_P(Registered, AgentConformance,
                         ::testing::ValuesIn(AgentAlgorithms().Names()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace loantwin
