// Constraints (training/constraints.h): the multiplier's update rules on hand-computed cases,
// config errors, the Lagrangian-shaped learners on a constrained bandit whose unconstrained
// optimum violates, and exact resume of the multipliers on the twin.

#include <gtest/gtest.h>

#include <map>
#include <mutex>

#include "agents/export_manifest.h"
#include "core/config_error.h"
#include "core/counter_rng.h"
#include "env/env_registry.h"
#include "env/twin/metrics.h"
#include "tests/agent_test_util.h"
#include "tests/json_schema.h"
#include "training/checkpoint.h"
#include "training/export.h"
#include "training/trainer.h"

namespace loantwin {
namespace {

ConstraintConfig Gradient(double limit, double lr, double cap = 1e4) {
  ConstraintConfig c;
  c.name = "c", c.metric = "m", c.max = 0.0;
  c.limit = limit, c.lambda_lr = lr, c.lambda_max = cap;
  return c;
}

TEST(Constraints, GradientMultiplierOnAHandComputedCase) {
  // lambda <- clamp(lambda + lr (J - limit), 0, max), limit 0.5, lr 0.1.
  const ConstraintConfig c = Gradient(0.5, 0.1);
  Multiplier m;
  m.Update(c, 1.5);
  EXPECT_DOUBLE_EQ(m.lambda, 0.1);
  m.Update(c, 0.2);
  EXPECT_DOUBLE_EQ(m.lambda, 0.07);
  m.Update(c, 0.0);
  EXPECT_NEAR(m.lambda, 0.02, 1e-15);
  m.Update(c, 0.0);  // would be -0.03: held at 0
  EXPECT_EQ(m.lambda, 0.0);
  // The cap.
  Multiplier capped;
  capped.Update(Gradient(0, 10, 2.5), 1.0);
  EXPECT_EQ(capped.lambda, 2.5);
  // fixed: never moves.
  ConstraintConfig fixed = Gradient(0, 10);
  fixed.update = "fixed";
  Multiplier f;
  f.lambda = 0.3;
  f.Update(fixed, 5.0);
  EXPECT_EQ(f.lambda, 0.3);
}

TEST(Constraints, PidMultiplierOnAHandComputedCase) {
  // Stooke et al. (2020): I <- (I + e)+, D = (J - J_prev)+, lambda = (Kp e + Ki I + Kd D)+.
  ConstraintConfig c = Gradient(1.0, 0);
  c.update = "pid", c.pid_kp = 1, c.pid_ki = 0.5, c.pid_kd = 2;
  Multiplier m;
  m.Update(c, 3);  // e 2, I 2, D 0 (no previous): 2 + 1 + 0
  EXPECT_DOUBLE_EQ(m.lambda, 3.0);
  m.Update(c, 4);  // e 3, I 5, D 1: 3 + 2.5 + 2
  EXPECT_DOUBLE_EQ(m.lambda, 7.5);
  m.Update(c, 0);  // e -1, I 4, D 0: -1 + 2
  EXPECT_DOUBLE_EQ(m.lambda, 1.0);
  m.Update(c, 0);  // e -1, I 3: -1 + 1.5
  EXPECT_DOUBLE_EQ(m.lambda, 0.5);
  m.Update(c, -10);  // e -11, I 0 (kept >= 0): -11 -> 0
  EXPECT_EQ(m.lambda, 0.0);
  EXPECT_EQ(m.integral, 0.0);
  c.lambda_max = 4;
  Multiplier capped;
  capped.Update(c, 5);  // 4 + 2 = 6 -> 4
  EXPECT_EQ(capped.lambda, 4.0);
}

// A one-step bandit: arm 0 pays 1.0 and is risky (metric risk = 1), arm 1 pays 0.6, arm 2 pays
// 0.2, both safe. A constraint risk <= 0.5 makes arm 1 the best feasible arm.
class BanditEnv : public MultiAgentEnv {
 public:
  explicit BanditEnv(const EnvOptions& o) : MultiAgentEnv("constrained_bandit", {Role()}, o, 1) {
    arm_.assign(num_envs(), 0);
  }
  const std::vector<std::string>& metric_names() const override {
    static const std::vector<std::string> names = {"risk"};
    return names;
  }
  double metric(int i, int) const override { return arm_[i] == 0 ? 1.0 : 0.0; }
  std::string instance_label(int i) const override { return i % 2 ? "odd" : "even"; }

 protected:
  static RoleSpec Role() {
    RoleSpec r;
    r.name = "agent";
    r.features.Add("bias", 0.0f, 2.0f);
    r.action_space = Discrete(3);
    r.action_dim_names = {"arm"};
    r.action_meanings = {{"risky", "safe", "poor"}};
    r.objectives = {"payoff"};
    return r;
  }
  void ResetInstance(int i, uint64_t) override { obs_row(0, i)[0] = 1.0f; }
  void StepInstances(int begin, int end) override {
    static constexpr float kPay[3] = {1.0f, 0.6f, 0.2f};
    for (int i = begin; i < end; ++i) {
      arm_[i] = action_row(0, i)[0];
      reward_vec_row(0, i)[0] = kPay[arm_[i]];
      set_reward(0, i, kPay[arm_[i]]);
      obs_row(0, i)[0] = 1.0f;
      set_terminated(i);
    }
  }
  void WriteMasks(int, int begin, int end) override {
    for (int i = begin; i < end; ++i) std::fill_n(mask_row(0, i), 3, uint8_t{1});
  }
  void BaselineActions(int, int begin, int end, int32_t* out) override {
    for (int i = begin; i < end; ++i) out[i] = 1;
  }
  void SaveInstances(StateWriter& w) const override { w.PutVector(arm_); }
  void LoadInstances(StateReader& r) override { r.GetVector(&arm_); }

 private:
  std::vector<int32_t> arm_;
};

void RegisterBandit() {
  static std::once_flag once;
  std::call_once(once, [] {
    RegisterEnv("constrained_bandit", [](const EnvOptions& o, const YamlValue*) {
      return std::unique_ptr<MultiAgentEnv>(new BanditEnv(o));
    });
  });
}

std::string ErrorOf(const std::string& yaml) {
  RegisterBandit();
  try {
    Trainer t(ExperimentConfig::Parse(YamlValue::LoadString(yaml, "exp.yaml")));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

/// Every step costs 1 (metric 1, max 0); instance 0 fails (terminates) at its second step,
/// instance 1 runs to the horizon of 6 steps.
class FailingEnv : public MultiAgentEnv {
 public:
  explicit FailingEnv(const EnvOptions& o) : MultiAgentEnv("failing", {Role()}, o, 6) {
    count_.assign(num_envs(), 0);
  }
  const std::vector<std::string>& metric_names() const override {
    static const std::vector<std::string> names = {"breach"};
    return names;
  }
  double metric(int, int) const override { return 1.0; }

 protected:
  static RoleSpec Role() {
    RoleSpec r;
    r.name = "agent";
    r.features.Add("bias", 0.0f, 2.0f);
    r.action_space = Discrete(2);
    r.action_dim_names = {"a"};
    r.action_meanings = {{"x", "y"}};
    r.objectives = {"payoff"};
    return r;
  }
  void ResetInstance(int i, uint64_t) override { count_[i] = 0, obs_row(0, i)[0] = 1.0f; }
  void StepInstances(int begin, int end) override {
    for (int i = begin; i < end; ++i) {
      set_reward(0, i, 0.0f);
      if (++count_[i] == 2 && i == 0) set_terminated(i);
    }
  }
  void WriteMasks(int, int begin, int end) override {
    for (int i = begin; i < end; ++i) std::fill_n(mask_row(0, i), 2, uint8_t{1});
  }
  void BaselineActions(int, int begin, int end, int32_t* out) override {
    for (int i = begin; i < end; ++i) out[i] = 0;
  }
  void SaveInstances(StateWriter& w) const override { w.PutVector(count_); }
  void LoadInstances(StateReader& r) override { r.GetVector(&count_); }

 private:
  std::vector<int32_t> count_;
};

TEST(Constraints, FailureIsAbsorbingNotAnEscapeFromCosts) {
  EnvOptions o;
  o.num_envs = 2;
  o.num_threads = 1;
  o.seed = 3;
  // costs(absorbing, discount): the step costs of instances 0 and 1 over two steps, and the
  // finished episode's J_c.
  const auto run = [&](bool absorbing, double discount) {
    FailingEnv env(o);
    ConstraintConfig c = Gradient(0.0, 0.0);
    c.metric = "breach", c.absorbing = absorbing, c.discount = discount;
    ConstraintTracker t({c}, {}, env, {true}, 10);
    env.Reset();
    std::vector<double> costs;
    for (int step = 0; step < 2; ++step) {
      env.Step();
      t.Observe(env);
      costs.push_back(t.cost(0, 0)), costs.push_back(t.cost(0, 1));
    }
    for (const auto& [key, value] : t.Metrics())
      if (key == "constraints/c/cost") costs.push_back(value);
    return costs;
  };
  // Absorbing: the failure step is charged for itself and the 4 steps it took away; J_c = 6,
  // as if the breach had lasted the whole 6-step horizon. The running instance pays 1 a step.
  EXPECT_EQ(run(true, 1.0), (std::vector<double>{1, 1, 5, 1, 6}));
  // Discounted as J_c is: 1 + 0.5 + 0.25 + 0.125 + 0.0625 at the failure step; J_c = 1 + 0.5 x
  // 1.9375.
  EXPECT_EQ(run(true, 0.5), (std::vector<double>{1, 1, 1.9375, 1, 1.96875}));
  // absorbing: false (the default) - failing ends the costs: J_c = 2, a third of staying in
  // breach.
  EXPECT_EQ(run(false, 1.0), (std::vector<double>{1, 1, 1, 1, 2}));
  EXPECT_FALSE(ConstraintConfig{}.absorbing);
}

TEST(Constraints, ConfigErrorsNameTheLineAndTheProblem) {
  const std::string base = "name: x\nenv: {name: constrained_bandit}\nroles: {agent: ppo}\n";
  std::string msg = ErrorOf(base + "constraints:\n  - {name: c, metric: risk}\n");
  EXPECT_NE(msg.find("exp.yaml:5:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("needs 'min', 'max' or both"), std::string::npos) << msg;
  msg = ErrorOf(base + "constraints:\n  - {name: c, metric: riks, max: 0.5}\n");
  EXPECT_NE(msg.find("has no metric 'riks' (metrics: risk)"), std::string::npos) << msg;
  msg = ErrorOf(
      "name: x\nenv: {name: cartpole}\nroles: {agent: ppo}\n"
      "constraints:\n  - {name: c, metric: x, max: 0.5}\n");
  EXPECT_NE(msg.find("it has no metrics"), std::string::npos) << msg;
  msg = ErrorOf(base + "constraints:\n  - {name: c, metric: risk, max: 0.5, roles: [pilot]}\n");
  EXPECT_NE(msg.find("unknown role 'pilot'"), std::string::npos) << msg;
  msg = ErrorOf(
      "name: x\nenv: {name: constrained_bandit}\n"
      "constraints:\n  - {name: c, metric: risk, max: 0.5, roles: [agent]}\n");
  EXPECT_NE(msg.find("role 'agent' has no learning agent"), std::string::npos) << msg;
  msg = ErrorOf(base + "constraints:\n  - {name: c, metric: risk, min: 1, max: 0.5}\n");
  EXPECT_NE(msg.find("min 1 is above max 0.5"), std::string::npos) << msg;
  msg = ErrorOf(base +
                "constraints:\n  - {name: c, metric: risk, max: 1}\n"
                "  - {name: c, metric: risk, max: 2}\n");
  EXPECT_NE(msg.find("exp.yaml:6:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'c' is used twice"), std::string::npos) << msg;
  msg = ErrorOf(base + "constraints:\n  - {name: c, metric: risk, max: 1, cost: linear}\n");
  EXPECT_NE(msg.find("'linear' is not one of: shortfall, indicator"), std::string::npos) << msg;
  msg = ErrorOf(base + "constraints:\n  - {name: c, metric: risk, max: 1, limt: 0}\n");
  EXPECT_NE(msg.find("limt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key"), std::string::npos) << msg;
  msg = ErrorOf(base + "constraints:\n  - {name: c, metric: risk, max: 1, discount: 2}\n");
  EXPECT_NE(msg.find("out of range [0, 1]"), std::string::npos) << msg;
}

TEST(Constraints, ResolvedConfigRoundTrips) {
  const auto c = ExperimentConfig::Parse(YamlValue::LoadString(
      "name: x\nenv: {name: cartpole}\nconstraints:\n"
      "  - {name: floor, metric: capital_ratio, min: 0.08, update: pid, pid_kp: 2}\n"
      "  - {name: cap, metric: risk, max: 0.5, cost: indicator, roles: [credit, pricing]}\n",
      "exp.yaml"));
  ASSERT_EQ(c.constraints.size(), 2u);
  EXPECT_EQ(*c.constraints[0].min, 0.08);
  EXPECT_FALSE(c.constraints[0].max.has_value());
  EXPECT_EQ(c.constraints[1].roles, (std::vector<std::string>{"credit", "pricing"}));
  const auto again = ExperimentConfig::Parse(YamlValue::LoadString(c.ToYaml(), "resolved.yaml"));
  EXPECT_EQ(c.ToYaml(), again.ToYaml());
  EXPECT_EQ(again.constraints[0].update, "pid");
  EXPECT_EQ(again.constraints[0].pid_kp, 2);
  EXPECT_EQ(again.constraints[1].cost, "indicator");
}

/// Trains on the bandit and returns the share of the last 2,000 steps' decisions on each arm
/// and the trainer's last multiplier.
struct BanditResult {
  std::array<double, 3> share{};
  double lambda = 0, violation_rate = 0;
  bool learns_costs = false;  ///< the agent took the costs apart (PPO's cost critic)
};
BanditResult TrainBandit(const std::string& agent, bool constrained, int64_t steps) {
  RegisterBandit();
  std::string yaml = "name: b\nseed: 3\ntotal_steps: " + std::to_string(steps) +
                     "\nenv: {name: constrained_bandit, num_envs: 16}\n"
                     "logging: {return_window: 200}\nroles:\n  agent: " +
                     agent + "\n";
  if (constrained)
    yaml +=
        "constraints:\n  - {name: safe, metric: risk, max: 0.5, cost: indicator, limit: 0.0,"
        " lambda_lr: 0.05}\n";
  Trainer t(ExperimentConfig::Parse(YamlValue::LoadString(yaml, "exp.yaml")));
  t.Train(steps - 2000);
  BanditResult out;
  const int64_t start = t.global_step();
  std::array<int64_t, 3> count{};
  while (t.global_step() < start + 2000) {
    t.Train(t.global_step() + 16);
    for (int i = 0; i < 16; ++i) ++count[t.env().actions(0)[i]];
  }
  out.learns_costs = t.agent(0)->learns_costs();
  const double total = count[0] + count[1] + count[2];
  for (int a = 0; a < 3; ++a) out.share[a] = count[a] / total;
  if (constrained) {
    out.lambda = t.constraints().lambda(0);
    for (const auto& [k, v] : t.constraints().Metrics())
      if (k == "constraints/safe/violation_rate") out.violation_rate = v;
  }
  return out;
}

TEST(Constraints, PpoLagrangianFindsTheBestFeasibleArm) {
  const std::string ppo =
      "{agent: ppo, ppo: {num_steps: 8, num_minibatches: 2, update_epochs: 4, learning_rate: 0.01,"
      " ent_coef: 0.0, hidden: [16]}}";
  const BanditResult free = TrainBandit(ppo, false, 12000);
  EXPECT_GT(free.share[0], 0.9) << "the unconstrained optimum is the risky arm";
  EXPECT_FALSE(free.learns_costs);
  // PPO-Lagrangian with its cost critic (the default), then learning from r - lambda c.
  for (const std::string critic : {"true", "false"}) {
    const std::string agent = ppo.substr(0, ppo.size() - 2) + ", cost_critic: " + critic + "}}";
    const BanditResult safe = TrainBandit(agent, true, 12000);
    EXPECT_EQ(safe.learns_costs, critic == "true");
    EXPECT_GT(safe.share[1], 0.9) << critic << ": " << safe.share[0] << " " << safe.share[1] << " "
                                  << safe.share[2];
    EXPECT_LT(safe.share[0], 0.05) << critic;
    EXPECT_GT(safe.lambda, 0.4) << "a multiplier above the risky arm's premium (1.0 - 0.6)";
    EXPECT_LT(safe.violation_rate, 0.05) << critic;
  }
}

TEST(Constraints, DqnLagrangianFindsTheBestFeasibleArm) {
  const std::string dqn =
      "{agent: dqn, dqn: {learning_starts: 500, train_frequency: 1, buffer_size: 4000,"
      " exploration_fraction: 0.3, end_e: 0.02, learning_rate: 0.005, target_network_frequency:"
      " 100, hidden: [16], gamma: 0.0}}";
  const BanditResult free = TrainBandit(dqn, false, 16000);
  EXPECT_GT(free.share[0], 0.9);
  const BanditResult safe = TrainBandit(dqn, true, 16000);
  EXPECT_GT(safe.share[1], 0.9) << safe.share[0] << " " << safe.share[1] << " " << safe.share[2];
  EXPECT_LT(safe.share[0], 0.05);
}

TEST(Constraints, MuZeroLagrangianFindsTheBestFeasibleArm) {
  // MuZero plans on the Lagrangian reward r - lambda c: its model learns the shaped reward. (With
  // 6 simulations and little root noise the search never tries the other arms once its prior
  // has settled: 16 simulations with the default noise explore enough.)
  const std::string muzero =
      "{agent: muzero, muzero: {unroll_steps: 1, td_steps: 1, gamma: 0.0, num_simulations: 16,"
      " batch_size: 64, buffer_size: 3000, train_ratio: 0.1, learning_starts: 500,"
      " learning_rate: 0.005, hidden: [16], latent_dim: 8}}";
  const BanditResult free = TrainBandit(muzero, false, 10000);
  EXPECT_GT(free.share[0], 0.9) << "the unconstrained optimum is the risky arm";
  const BanditResult safe = TrainBandit(muzero, true, 10000);
  EXPECT_GT(safe.share[1], 0.9) << safe.share[0] << " " << safe.share[1] << " " << safe.share[2];
  EXPECT_LT(safe.share[0], 0.05);
  EXPECT_GT(safe.lambda, 0.4) << "a multiplier above the risky arm's premium (1.0 - 0.6)";
  EXPECT_LT(safe.violation_rate, 0.05);
}

TEST(Constraints, TwinCostsFollowTheMetricAndResumeIsExactWithMultipliers) {
  // A capital floor above every instance's ratio: each month costs the shortfall, the
  // multiplier rises every num_envs episodes, and a resumed run continues bit for bit.
  const std::string yaml =
      "name: r\nseed: 5\ntotal_steps: 400\nenv: {name: twin, num_envs: 4, config: "
      "{horizon_months: 12}}\nroles:\n  credit: {agent: ppo, ppo: {num_steps: 16}}\n"
      "constraints:\n  - {name: floor, metric: capital_ratio, min: 0.5, lambda_lr: 0.2,"
      " episodes_per_update: 4}\n"
      "  - {name: liquidity, metric: liquidity_ratio, min: 0.0, cost: indicator}\n";
  const ExperimentConfig config = ExperimentConfig::Parse(YamlValue::LoadString(yaml, "e.yaml"));
  {
    Trainer t(config);
    t.Train(4);  // one month of 4 instances
    const int capital = FindMetric("capital_ratio");
    for (int i = 0; i < 4; ++i) {
      const double ratio = t.env().metric(i, capital);
      EXPECT_NEAR(t.constraints().cost(0, i), 0.5 - ratio, 1e-12);
      EXPECT_EQ(t.constraints().cost(1, i), 0.0);
    }
    EXPECT_EQ(t.constraints().lambda(0), 0.0);
    t.Train(48);  // 12 months: every instance's first episode ends, one update
    EXPECT_GT(t.constraints().lambda(0), 0.0);
    EXPECT_TRUE(t.constraints().applies(0, t.env().FindRole("credit")));
    EXPECT_FALSE(t.constraints().applies(0, t.env().FindRole("risk")));
  }
  const auto c = testing::CompareStraightAndResumed(config, 100);
  EXPECT_TRUE(c.identical_parameters);
  EXPECT_EQ(c.straight_return, c.resumed_return);
  // The multipliers and every constraint statistic continue exactly too.
  Trainer straight(config);
  straight.Train(200);
  testing::TempDir dir;
  CheckpointManager ckpt(dir.path(), 1);
  std::string path;
  {
    Trainer first(config);
    first.Train(102);  // mid-episode: the episodes' running costs are in the checkpoint
    path = ckpt.Save(first);
  }
  Trainer resumed(config);
  LoadCheckpoint(resumed, path);
  resumed.Train(200);
  EXPECT_GT(straight.constraints().lambda(0), 0.0);
  EXPECT_EQ(straight.constraints().Metrics(), resumed.constraints().Metrics());
  // The exported manifest carries the constraints and their multipliers.
  ExportRun(resumed, dir.path(), path, dir.path() + "/export");
  const ExportManifest m = ExportManifest::Load(dir.path() + "/export");
  ASSERT_EQ(m.constraints.size(), 2u);
  EXPECT_EQ(m.constraints[0]["name"], "floor");
  EXPECT_EQ(m.constraints[0]["min"], 0.5);
  EXPECT_FALSE(m.constraints[0].contains("max"));
  EXPECT_EQ(m.constraints[0]["lambda"].get<double>(), resumed.constraints().lambda(0));
  EXPECT_EQ(m.constraints[0]["roles"], nlohmann::json::array({"credit"}));
  EXPECT_EQ(m.constraints[1]["cost"], "indicator");
  const auto schema = nlohmann::json::parse(
      testing::ReadFile(std::string(LOANTWIN_SOURCE_DIR) + "/docs/schemas/manifest.schema.json"));
  EXPECT_EQ(testing::ValidateJson(
                nlohmann::json::parse(testing::ReadFile(dir.path() + "/export/manifest.json")),
                schema, schema),
            "");
}

}  // namespace
}  // namespace loantwin
