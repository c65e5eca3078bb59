// Training pipeline: experiment config errors, exact resume, TensorBoard record framing.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "agents/dqn.h"
#include "agents/export_manifest.h"
#include "agents/muzero.h"
#include "agents/ppo.h"
#include "core/collective.h"
#include "core/config_error.h"
#include "core/counter_rng.h"
#include "core/version.h"
#include "tests/agent_test_util.h"
#include "tests/json_schema.h"
#include "tests/test_util.h"
#include "training/checkpoint.h"
#include "training/export.h"
#include "training/metrics_logger.h"
#include "training/tensorboard.h"
#include "training/trainer.h"

namespace loantwin {
namespace {

using testing::TempDir;

std::string ErrorOf(const std::string& yaml) {
  try {
    Trainer t(ExperimentConfig::Parse(YamlValue::LoadString(yaml, "exp.yaml")));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no error>";
}

const char* kBase = "name: x\nenv: {name: cartpole}\n";

TEST(ExperimentConfig, ErrorsNameFileLineAndKey) {
  std::string msg =
      ErrorOf(std::string(kBase) + "roles:\n  agent: {agent: ppo, ppo: {learning_rat: 0.1}}\n");
  EXPECT_NE(msg.find("exp.yaml:4:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("roles.agent.ppo.learning_rat"), std::string::npos) << msg;
  msg = ErrorOf(std::string(kBase) + "roles:\n  agent: {agent: dqnn}\n");
  EXPECT_NE(msg.find("'dqnn' is not one of: ppo, dqn, muzero, baseline, random"), std::string::npos)
      << msg;
  msg = ErrorOf(std::string(kBase) + "roles:\n  pilot: ppo\n");
  EXPECT_NE(msg.find("exp.yaml:4:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown role 'pilot' for environment 'cartpole' (roles: agent)"),
            std::string::npos)
      << msg;
  msg = ErrorOf(std::string(kBase) + "total_steps: many\n");
  EXPECT_NE(msg.find("'total_steps'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected an integer"), std::string::npos) << msg;
  msg = ErrorOf(std::string(kBase) + "roles:\n  agent: {agent: ppo, ppo: {gamma: 1.5}}\n");
  EXPECT_NE(msg.find("1.5 is out of range [0, 1]"), std::string::npos) << msg;
  msg = ErrorOf("name: x\nenv: {name: cartpool}\n");
  EXPECT_NE(msg.find("unknown environment 'cartpool'"), std::string::npos) << msg;
  msg = ErrorOf(std::string(kBase) + "roles:\n  agent: {agent: ppo, rewards: {profit: 1}}\n");
  EXPECT_NE(msg.find("fixed rewards"), std::string::npos) << msg;
  msg = ErrorOf("name: x\nenv: {name: twin, config: {institution: cu_nope}}\n");
  EXPECT_NE(msg.find("unknown institution 'cu_nope'"), std::string::npos) << msg;
  msg = ErrorOf(std::string(kBase) + "surprise: 1\n");
  EXPECT_NE(msg.find("'surprise': unknown key"), std::string::npos) << msg;
}

TEST(ExperimentConfig, ResolvedConfigRoundTrips) {
  const auto c = ExperimentConfig::Parse(YamlValue::LoadString(
      std::string(kBase) +
          "roles:\n  agent: {agent: ppo, ppo: {num_steps: 64, hidden: [32, 16]}}\n",
      "exp.yaml"));
  const auto again = ExperimentConfig::Parse(YamlValue::LoadString(c.ToYaml(), "resolved.yaml"));
  EXPECT_EQ(again.roles.at("agent").hyperparameters<PpoConfig>().num_steps, 64);
  EXPECT_EQ(again.roles.at("agent").hyperparameters<PpoConfig>().hidden,
            (std::vector<int64_t>{32, 16}));
  EXPECT_DOUBLE_EQ(again.roles.at("agent").hyperparameters<PpoConfig>().learning_rate,
                   2.5e-4);  // default written out
  EXPECT_EQ(c.ToYaml(), again.ToYaml());
}

void ResumeIsExact(const std::string& yaml, int64_t n) {
  const auto c = testing::CompareStraightAndResumed(
      ExperimentConfig::Parse(YamlValue::LoadString(yaml, "exp.yaml")), n);
  EXPECT_TRUE(c.identical_parameters);
  EXPECT_EQ(c.straight_return, c.resumed_return);
}

TEST(Checkpoint, ResumeContinuesExactlyOnTheTwin) {
  ResumeIsExact(
      "name: r\nseed: 5\ntotal_steps: 400\nenv: {name: twin, num_envs: 4, config: {horizon_months: "
      "24}}\n"
      "roles:\n  credit: {agent: ppo, ppo: {num_steps: 16, normalize_obs: true}}\n"
      "  risk: {agent: ppo, ppo: {num_steps: 24, centralized_critic: true}}\n",
      100);
}

// Every learning algorithm on the twin: MuZero (risk), two PPO roles, DQN (collection).
ExperimentConfig AllAlgorithmsConfig(int threads, bool overlap = false, int64_t total_steps = 480) {
  return ExperimentConfig::Parse(YamlValue::LoadString(
      "name: c\nseed: 3\ntotal_steps: " + std::to_string(total_steps) +
          "\noverlap_updates: " + (overlap ? "true" : "false") +
          "\nenv: {name: twin, num_envs: 4, threads: " + std::to_string(threads) +
          ", config: {institution: cu_small, horizon_months: 24}}\n"
          "roles:\n"
          "  risk: {agent: muzero, muzero: {num_simulations: 4, batch_size: 8, unroll_steps: 2, "
          "td_steps: 2, buffer_size: 50, learning_starts: 16, train_ratio: 0.5, latent_dim: 8, "
          "hidden: [16], support_size: 5}}\n"
          "  pricing: {agent: ppo, ppo: {num_steps: 8, num_minibatches: 2, update_epochs: 2}}\n"
          "  credit: {agent: ppo, ppo: {num_steps: 12, num_minibatches: 2, normalize_obs: true}}\n"
          "  collection: {agent: dqn, dqn: {learning_starts: 32, buffer_size: 500, batch_size: "
          "8, train_frequency: 2, target_network_frequency: 40}}\n",
      "c.yaml"));
}

// Two runs learned the same: every parameter and every role's mean episodic return.
void ExpectSameRun(Trainer& x, Trainer& y) {
  const auto a = testing::LearnedParameters(x), b = testing::LearnedParameters(y);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  for (size_t k = 0; k < a.size(); ++k) EXPECT_TRUE(torch::equal(a[k], b[k])) << "tensor " << k;
  for (int r = 0; r < x.env().num_roles(); ++r)
    EXPECT_EQ(x.MeanEpisodicReturn(r), y.MeanEpisodicReturn(r)) << r;
}

// The time budget's components (measured apart, never overlapping) add up to at most its total.
void ExpectBudgetWithinTotal(const Trainer& trainer) {
  const TimeBudget& t = trainer.budget();
  double parts = t.env_step + t.update_wall + t.bookkeeping + t.logging;
  for (size_t r = 0; r < t.act.size(); ++r) parts += t.act[r] + t.observe[r];
  EXPECT_LE(parts, t.total * 1.001);
}

// The learning agent of the named role as its algorithm's class (null if it is not one).
template <typename A>
A* AgentOf(Trainer& trainer, const std::string& role) {
  for (int r = 0; r < trainer.env().num_roles(); ++r)
    if (trainer.env().role(r).name == role) return dynamic_cast<A*>(trainer.agent(r));
  return nullptr;
}

TEST(Trainer, ConcurrentUpdatesGiveTheSameRunAsSequentialOnes) {
  // Four learning algorithms update concurrently on two learner threads (env.threads: 2) or in
  // turn (threads: 1): every parameter and the time budget's accounting must agree.
  Trainer one(AllAlgorithmsConfig(1)), two(AllAlgorithmsConfig(2));
  one.Train();
  two.Train();
  ExpectSameRun(one, two);
  EXPECT_GT(two.budget().update_wall, 0);
  ExpectBudgetWithinTotal(two);
}

// overlap_updates: the DQN and MuZero roles learn during the next environment step, the PPO
// roles as before.
TEST(Trainer, OverlappedUpdatesAreDeterministicActOneUpdateBehindAndLearnEveryUpdate) {
  Trainer sync(AllAlgorithmsConfig(2)), one(AllAlgorithmsConfig(1, true)),
      two(AllAlgorithmsConfig(2, true));
  sync.Train();
  one.Train();
  two.Train();
  // The same run on one or two threads, whatever the timing.
  ExpectSameRun(one, two);
  // Acting one update behind changes the run; every update is still learned (the last one at
  // the final step): the DQN role made as many gradient steps and the MuZero role as many
  // training steps as without overlap.
  const auto s = testing::LearnedParameters(sync), b = testing::LearnedParameters(two);
  bool differs = false;
  for (size_t k = 0; k < b.size(); ++k) differs = differs || !torch::equal(b[k], s[k]);
  EXPECT_TRUE(differs);
  auto* dqn_sync = AgentOf<DqnAgent>(sync, "collection");
  auto* dqn_two = AgentOf<DqnAgent>(two, "collection");
  auto* mz_sync = AgentOf<MuZeroAgent>(sync, "risk");
  auto* mz_two = AgentOf<MuZeroAgent>(two, "risk");
  ASSERT_TRUE(dqn_sync && dqn_two && mz_sync && mz_two);
  EXPECT_GT(dqn_two->updates(), 0);
  EXPECT_EQ(dqn_two->updates(), dqn_sync->updates());
  EXPECT_GT(mz_two->training_steps(), 0);
  EXPECT_EQ(mz_two->training_steps(), mz_sync->training_steps());
  // The time budget's parts still fit in the total (the updates overlap the environment step).
  ExpectBudgetWithinTotal(two);
}

TEST(Checkpoint, ResumeContinuesExactlyWithOverlappedUpdates) {
  // The checkpoint falls between the halves of an update (noted, not yet learned); 250 steps:
  // a step where the DQN role has rounds due. Straight and resumed runs both end at 500.
  const auto c = testing::CompareStraightAndResumed(AllAlgorithmsConfig(2, true, 1000), 252);
  EXPECT_TRUE(c.identical_parameters);
  EXPECT_EQ(c.straight_return, c.resumed_return);
}

TEST(Trainer, OverlappedUpdatesAreRefusedInDistributedTraining) {
  // Checked by the trainer before any step (a group is only built by distributed runs; the
  // error names the key and the file).
  struct OneRank : Collective {  // a group of one: its collectives have nothing to exchange
    int rank() const override { return 0; }
    int world_size() const override { return 1; }
    void AllReduceSum(float*, size_t) override {}
    void AllReduceSum(double*, size_t) override {}
    void AllReduceSum(int64_t*, size_t) override {}
    void Broadcast(void*, size_t, int) override {}
    void Send(const void*, size_t, int, int) override {}
    void Recv(void*, size_t, int, int) override {}
    void Barrier() override {}
    Stats stats() const override { return {}; }
  } group;
  try {
    Trainer t(AllAlgorithmsConfig(1, true), &group);
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("c.yaml: overlap_updates"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, KeepsTheLastKAndRejectsGarbage) {
  TempDir dir;
  const auto config = ExperimentConfig::Parse(YamlValue::LoadString(
      "name: k\ntotal_steps: 100000\nenv: {name: cartpole, num_envs: 2}\nroles: {agent: ppo}\n",
      "exp.yaml"));
  Trainer t(config);
  CheckpointManager ckpt(dir.path() + "/ck", 2);
  for (int k = 1; k <= 4; ++k) {
    t.Train(k * 100);
    ckpt.Save(t);
  }
  const auto files = ckpt.List();
  ASSERT_EQ(files.size(), 2u);
  EXPECT_NE(files.back().find("step_000000000400.pt"), std::string::npos);
  EXPECT_EQ(ckpt.Latest(), files.back());
  for (const auto& e : std::filesystem::directory_iterator(dir.path() + "/ck"))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos);  // no temp files left
  const std::string junk = dir.File("junk.pt", "not a checkpoint");
  EXPECT_THROW(LoadCheckpoint(t, junk), std::runtime_error);
}

TEST(Export, TorchScriptMatchesThePolicyOnTheTwin) {
  testing::ExpectExportParity(
      "name: e\nseed: 2\ntotal_steps: 2000\nenv: {name: twin, num_envs: 4, config: "
      "{horizon_months: 12}}\n"
      "roles:\n  credit: {agent: ppo, ppo: {num_steps: 12, normalize_obs: true, hidden: [32]}}\n"
      "  collection: {agent: ppo, ppo: {num_steps: 12, activation: relu}}\n",
      400);
}

TEST(ExportManifest, SchemaRoundTripValidationAndModuleHashes) {
  Trainer t(ExperimentConfig::Parse(YamlValue::LoadString(
      "name: e\nseed: 2\ntotal_steps: 400\nenv: {name: twin, num_envs: 4, config: "
      "{horizon_months: 12}}\nroles:\n  credit: {agent: ppo, ppo: {num_steps: 12, hidden: [16]}}\n",
      "exp.yaml")));
  t.Train(100);
  testing::TempDir dir;
  CheckpointManager ckpt(dir.path() + "/checkpoints", 1);
  const std::string out = dir.path() + "/export";
  ExportRun(t, dir.path(), ckpt.Save(t), out);
  const auto doc = nlohmann::json::parse(testing::ReadFile(out + "/manifest.json"));
  const auto schema = nlohmann::json::parse(
      testing::ReadFile(std::string(LOANTWIN_SOURCE_DIR) + "/docs/schemas/manifest.schema.json"));
  EXPECT_EQ(testing::ValidateJson(doc, schema, schema), "");
  auto broken = doc;
  broken.erase("module_sha256");
  EXPECT_NE(testing::ValidateJson(broken, schema, schema), "");
  broken = doc;
  broken["roles"]["credit"]["observation"]["feature_bounds"][0].erase("scale");
  EXPECT_NE(testing::ValidateJson(broken, schema, schema), "");
  // One type reads what it wrote; it fits this environment; the hashes match the files.
  const ExportManifest m = ExportManifest::Load(out);
  EXPECT_EQ(m.ToJson(), doc);
  EXPECT_EQ(m.loantwin_version, LoantwinVersion());
  EXPECT_NO_THROW(m.Validate(t.env(), "manifest"));
  EXPECT_NO_THROW(m.VerifyFiles(out));
  const int credit = t.env().FindRole("credit");
  const ManifestRole& role = m.roles.at("credit");
  const Box box = t.env().role(credit).features.ToBox();
  ASSERT_EQ(role.features.size(), box.low().size());
  for (size_t k = 0; k < role.features.size(); ++k) {
    EXPECT_EQ(static_cast<float>(role.features[k].low), box.low()[k]);
    EXPECT_EQ(static_cast<float>(role.features[k].high), box.high()[k]);
  }
  EXPECT_DOUBLE_EQ(role.features[role.FindFeature("macro/policy_rate")].scale, 0.02);
  auto expect_error = [](const std::function<void()>& f, const std::string& text) {
    try {
      f();
      ADD_FAILURE() << "no error, expected: " << text;
    } catch (const ManifestError& e) {
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  };
  // Action components that do not match the environment (an out-of-range mask offset).
  auto edited = doc;
  edited["roles"]["credit"]["actions"][1]["mask_offset"] = 2000000000;
  expect_error([&] { ExportManifest::FromJson(edited, "m").Validate(t.env(), "m"); },
               "action component 1");
  edited = doc;
  edited["roles"]["credit"]["observation"]["feature_bounds"][2]["high"] = 99.0;
  expect_error([&] { ExportManifest::FromJson(edited, "m").Validate(t.env(), "m"); }, "bounds");
  edited = doc;
  edited["format_version"] = 1;
  expect_error([&] { ExportManifest::FromJson(edited, "m"); }, "format_version 1");
  // A module modified after export is refused, naming the file.
  {
    std::ofstream f(out + "/credit.pt", std::ios::app | std::ios::binary);
    f << 'x';
  }
  expect_error([&] { m.VerifyFiles(out); }, "credit.pt was modified after export");
  std::filesystem::remove(out + "/credit.pt");
  expect_error([&] { m.VerifyFiles(out); }, "credit.pt: cannot be read");
}

// The imitation warm start (ppo.imitation_fraction): while it lasts the baseline itself acts
// (the run is the all-baseline run, step for step), the actor learns to copy it and the critic
// its values; then PPO's own updates take over. Pricing measured from cost-plus: the rule is
// offset 0, which the observation shows (under the standard reference the rule's move depends on
// the episode's first month, which the observation does not carry; docs/agents/ppo.md).
std::string ImitationExperiment(const std::string& roles, int64_t total_steps) {
  return "name: im\nseed: 6\ntotal_steps: " + std::to_string(total_steps) +
         "\nenv: {name: twin, num_envs: 8, config: {institution: cu_small, horizon_months: 24, "
         "pricing_reference: cost_plus}}\n"
         "roles:\n" +
         roles;
}

// The share of a role's decisions (acting instances) on which `decide` agrees with the
// baseline, over 24 fresh months of the trainer's environment driven by the baselines.
template <typename Decide>
double AgreementWithBaseline(Trainer& t, const std::string& role, Decide decide) {
  MultiAgentEnv& env = t.env();
  const int r = env.FindRole(role), n = env.num_envs();
  const int dims = env.role(r).action_space.action_dims();
  std::vector<int32_t> want(static_cast<size_t>(n) * dims), got(want.size());
  int rows = 0, same = 0;
  for (int month = 0; month < 24; ++month) {
    for (int k = 0; k < env.num_roles(); ++k) {
      if (k != r) {
        env.Act(k, nullptr);
        continue;
      }
      env.BaselineDecisions(r, want.data());
      decide(env.observations(r), env.action_masks(r), n, got.data());
      for (int i = 0; i < n; ++i) {
        if (!env.acting(r)[i]) continue;
        ++rows;
        same += std::equal(&want[i * dims], &want[i * dims] + dims, &got[i * dims]);
      }
      env.Act(r, want.data());
    }
    env.Step();
  }
  EXPECT_GT(rows, 0);
  return rows > 0 ? static_cast<double>(same) / rows : 0.0;
}

TEST(Imitation, TheBaselineActsAndThePolicyLearnsToCopyIt) {
  const std::string ppo =
      "ppo: {num_steps: 12, num_minibatches: 2, learning_rate: 1.0e-3, normalize_obs: true, "
      "anneal_lr: false, imitation_fraction: 1.0}";
  Trainer learner(ExperimentConfig::Parse(YamlValue::LoadString(
      ImitationExperiment(
          "  pricing: {agent: ppo, " + ppo + "}\n  credit: {agent: ppo, " + ppo + "}\n", 9600),
      "im.yaml")));
  Trainer baseline(ExperimentConfig::Parse(YamlValue::LoadString(
      ImitationExperiment("  pricing: baseline\n  credit: baseline\n", 9600), "base.yaml")));
  learner.Train();
  baseline.Train();
  // The same run as the baselines': every role's episodic returns, bit for bit.
  for (int r = 0; r < learner.env().num_roles(); ++r) {
    ASSERT_FALSE(std::isnan(baseline.MeanEpisodicReturn(r)));
    EXPECT_EQ(learner.MeanEpisodicReturn(r), baseline.MeanEpisodicReturn(r)) << r;
  }
  for (const char* role : {"pricing", "credit"}) {
    PpoAgent* agent = AgentOf<PpoAgent>(learner, role);
    ASSERT_NE(agent, nullptr);
    EXPECT_EQ(agent->updates(), 100);  // 9600 / (12 x 8), every one imitated
    EXPECT_EQ(agent->imitation_updates(), 100);
    // The greedy policy decides as the baseline on states it has not trained on.
    const double agree = AgreementWithBaseline(
        learner, role,
        [&](const float* o, const uint8_t* m, int n, int32_t* a) { agent->Act(o, m, n, true, a); });
    EXPECT_GE(agree, 0.9) << role << ": " << agree;
  }
}

TEST(Imitation, PpoTakesOverAfterThePhaseAndResumesExactly) {
  const std::string yaml = ImitationExperiment(
      "  credit: {agent: ppo, ppo: {num_steps: 8, num_minibatches: 2, imitation_fraction: "
      "0.5}}\n",
      1280);
  Trainer t(ExperimentConfig::Parse(YamlValue::LoadString(yaml, "im.yaml")));
  t.Train();
  PpoAgent* agent = AgentOf<PpoAgent>(t, "credit");
  ASSERT_NE(agent, nullptr);
  EXPECT_EQ(agent->imitation_updates(), 10);  // half of 1280 / (8 x 8)
  EXPECT_EQ(agent->updates(), 20);
  EXPECT_FALSE(agent->wants_demonstrations());
  // Checkpointed inside the phase, resumed across its end.
  ResumeIsExact(yaml, 600);
  // Held near the imitated policy (imitation_kl_coef), a smoothed copy (imitation_smoothing):
  // checkpointed after the phase, the anchor travels with the checkpoint.
  ResumeIsExact(ImitationExperiment("  credit: {agent: ppo, ppo: {num_steps: 8, num_minibatches: "
                                    "2, imitation_fraction: 0.25, imitation_kl_coef: 0.5, "
                                    "imitation_smoothing: 0.2}}\n",
                                    2560),
                800);
  const std::string alone =
      ErrorOf(ImitationExperiment("  credit: {agent: ppo, ppo: {imitation_kl_coef: 0.5}}\n", 1000));
  EXPECT_NE(alone.find("imitation_kl_coef needs an imitation phase"), std::string::npos) << alone;
  EXPECT_NE(alone.find("exp.yaml:"), std::string::npos) << alone;
  const std::string smooth_alone = ErrorOf(
      ImitationExperiment("  credit: {agent: ppo, ppo: {imitation_smoothing: 0.1}}\n", 1000));
  EXPECT_NE(smooth_alone.find("imitation_smoothing needs an imitation phase"), std::string::npos)
      << smooth_alone;
  const std::string too_smooth = ErrorOf(ImitationExperiment(
      "  credit: {agent: ppo, ppo: {imitation_fraction: 0.5, imitation_smoothing: 0.9}}\n", 1000));
  EXPECT_NE(too_smooth.find("roles.credit.ppo.imitation_smoothing"), std::string::npos)
      << too_smooth;
}

// A run of `role` (spec: its YAML mapping) imitating for `steps`, checked against the
// all-baseline run: the same run, every role's episodic returns bit for bit.
std::unique_ptr<Trainer> TrainedInThePhase(const std::string& role, const std::string& spec,
                                           int64_t steps) {
  auto learner = std::make_unique<Trainer>(ExperimentConfig::Parse(YamlValue::LoadString(
      ImitationExperiment("  " + role + ": " + spec + "\n", steps), "im.yaml")));
  Trainer baseline(ExperimentConfig::Parse(YamlValue::LoadString(
      ImitationExperiment("  " + role + ": baseline\n", steps), "base.yaml")));
  learner->Train();
  baseline.Train();
  for (int r = 0; r < learner->env().num_roles(); ++r) {
    EXPECT_FALSE(std::isnan(baseline.MeanEpisodicReturn(r)));
    EXPECT_EQ(learner->MeanEpisodicReturn(r), baseline.MeanEpisodicReturn(r)) << r;
  }
  return learner;
}

// DQN's warm start (DQfD): in the phase the baseline acts (the run is the all-baseline run),
// the Q-network's greedy action becomes the baseline's through the large-margin loss; after it
// epsilon-greedy takes over, held near the phase's network by the anchor, resumed exactly.
TEST(Imitation, DqnCopiesTheBaselineWithTheMarginLossAndResumesExactly) {
  const std::string dqn =
      "dqn: {learning_starts: 64, buffer_size: 4000, batch_size: 32, train_frequency: 2, "
      "learning_rate: 1.0e-3, normalize_obs: true, dueling: true, imitation_fraction: 1.0, "
      "imitation_margin: 0.5, imitation_coef: 2.0}";
  auto trained = TrainedInThePhase("collection", "{agent: dqn, " + dqn + "}", 4000);
  Trainer& learner = *trained;
  DqnAgent* agent = AgentOf<DqnAgent>(learner, "collection");
  ASSERT_NE(agent, nullptr);
  EXPECT_EQ(agent->imitation_steps(), 4000);  // the phase is the whole run
  EXPECT_GT(agent->updates(), 500);
  const double agree = AgreementWithBaseline(
      learner, "collection",
      [&](const float* o, const uint8_t* m, int n, int32_t* a) { agent->Act(o, m, n, true, a); });
  EXPECT_GE(agree, 0.9) << agree;
  // The phase ends half-way: epsilon's schedule starts there, the anchor is taken and travels
  // with the checkpoint (checkpointed inside the phase, then after it).
  const std::string half = ImitationExperiment(
      "  collection: {agent: dqn, dqn: {learning_starts: 32, buffer_size: 500, "
      "batch_size: 8, train_frequency: 2, imitation_fraction: 0.5, "
      "imitation_anchor_coef: 0.5, start_e: 0.2}}\n",
      1600);
  Trainer t(ExperimentConfig::Parse(YamlValue::LoadString(half, "im.yaml")));
  t.Train(800);
  DqnAgent* d = AgentOf<DqnAgent>(t, "collection");
  EXPECT_EQ(d->imitation_steps(), 800);
  EXPECT_FALSE(d->wants_demonstrations());
  EXPECT_TRUE(d->anchored());           // taken as the phase ended
  EXPECT_DOUBLE_EQ(d->epsilon(), 0.2);  // the schedule starts there
  t.Train();
  EXPECT_LT(d->epsilon(), 0.2);
  ResumeIsExact(half, 600);
  ResumeIsExact(half, 1200);
  const std::string alone = ErrorOf(
      ImitationExperiment("  collection: {agent: dqn, dqn: {imitation_anchor_coef: 0.5}}\n", 1000));
  EXPECT_NE(alone.find("imitation_anchor_coef needs an imitation phase"), std::string::npos)
      << alone;
}

// MuZero's warm start: in the phase the baseline acts and its decisions are the policy
// targets, so the prior policy (the exported acting path) copies it; after it the search acts,
// the targets mixed with the anchor's prior; resumed exactly across the phase's end.
TEST(Imitation, MuZeroPriorCopiesTheBaselineAndResumesExactly) {
  const std::string muzero =
      "muzero: {num_simulations: 4, batch_size: 32, unroll_steps: 2, td_steps: 2, buffer_size: "
      "200, learning_starts: 64, train_ratio: 0.1, latent_dim: 16, hidden: [32], support_size: "
      "5, normalize_obs: true, imitation_fraction: 1.0}";
  auto trained = TrainedInThePhase("risk", "{agent: muzero, " + muzero + "}", 4000);
  Trainer& learner = *trained;
  MuZeroAgent* agent = AgentOf<MuZeroAgent>(learner, "risk");
  ASSERT_NE(agent, nullptr);
  EXPECT_GT(agent->training_steps(), 100);
  const double agree = AgreementWithBaseline(
      learner, "risk", [&](const float* o, const uint8_t* m, int n, int32_t* a) {
        agent->PriorActions(o, m, n, a);
      });
  EXPECT_GE(agree, 0.9) << agree;
  const std::string half = ImitationExperiment(
      "  risk: {agent: muzero, muzero: {num_simulations: 4, batch_size: 8, unroll_steps: 2, "
      "td_steps: 2, buffer_size: 50, learning_starts: 16, train_ratio: 0.5, latent_dim: 8, "
      "hidden: [16], support_size: 5, imitation_fraction: 0.5, imitation_smoothing: 0.2, "
      "imitation_anchor_weight: 0.3}}\n",
      1600);
  Trainer t(ExperimentConfig::Parse(YamlValue::LoadString(half, "im.yaml")));
  t.Train();
  MuZeroAgent* mz = AgentOf<MuZeroAgent>(t, "risk");
  EXPECT_EQ(mz->imitation_steps(), 800);
  EXPECT_TRUE(mz->anchored());
  ResumeIsExact(half, 600);
  ResumeIsExact(half, 1200);
  const std::string alone = ErrorOf(
      ImitationExperiment("  risk: {agent: muzero, muzero: {imitation_smoothing: 0.1}}\n", 1000));
  EXPECT_NE(alone.find("imitation_smoothing needs an imitation phase"), std::string::npos) << alone;
}

TEST(Frozen, ExportedPolicyDrivesARole) {
  TempDir dir;
  Trainer t(ExperimentConfig::Parse(
      YamlValue::LoadString("name: f\nseed: 4\ntotal_steps: 3000\nenv: {name: cartpole, num_envs: "
                            "4}\nroles: {agent: ppo}\n",
                            "a.yaml")));
  t.Train(2048);
  CheckpointManager ckpt(dir.path() + "/ck", 1);
  ExportRun(t, dir.path(), ckpt.Save(t), dir.path() + "/export");
  const std::string policy = dir.path() + "/export/agent.pt";
  Trainer frozen(ExperimentConfig::Parse(YamlValue::LoadString(
      "name: g\nseed: 9\ntotal_steps: 400\nenv: {name: cartpole, num_envs: 4}\n"
      "roles:\n  agent: {agent: frozen, policy: " +
          policy + "}\n",
      "b.yaml")));
  EXPECT_TRUE(frozen.HasPolicy(0));
  EXPECT_EQ(frozen.agent(0), nullptr);
  frozen.Train();
  // The frozen role acted like the exported policy: its decisions equal the trained agent's.
  auto& env = frozen.env();
  std::vector<int32_t> a(4), b(4);
  frozen.Decide(0, env.observations(0), env.action_masks(0), 4, true, a.data());
  t.agent(0)->Act(env.observations(0), env.action_masks(0), 4, true, b.data());
  EXPECT_EQ(a, b);

  auto error = [](const std::string& yaml) {
    try {
      Trainer x(ExperimentConfig::Parse(YamlValue::LoadString(yaml, "c.yaml")));
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  std::string msg = error("name: h\nenv: {name: cartpole}\nroles: {agent: {agent: frozen}}\n");
  EXPECT_NE(msg.find("a frozen role needs 'policy"), std::string::npos) << msg;
  msg = error(
      "name: h\nenv: {name: cartpole}\nroles: {agent: {agent: frozen, policy: /no/such.pt}}\n");
  EXPECT_NE(msg.find("c.yaml:3:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cannot load frozen policy '/no/such.pt'"), std::string::npos) << msg;
  msg = error("name: h\nenv: {name: twin}\nroles: {credit: {agent: frozen, policy: " + policy +
              "}}\n");
  EXPECT_NE(msg.find("does not fit role 'credit'"), std::string::npos) << msg;
}

TEST(Evaluation, PeriodicEvaluationIsLogged) {
  TempDir dir;
  Trainer t(ExperimentConfig::Parse(YamlValue::LoadString(
      "name: e\nseed: 1\ntotal_steps: 480\nenv: {name: twin, num_envs: 4, config: {horizon_months: "
      "12}}\n"
      "roles: {credit: {agent: ppo, ppo: {num_steps: 12}}}\n"
      "evaluation: {every_steps: 240, paths: 4, scenarios: [steady_state, rate_shock]}\n",
      "e.yaml")));
  MetricsLogger logger(dir.path());
  t.SetLogger(&logger);
  t.Train();
  logger.Flush();
  const std::string csv = testing::ReadFile(dir.path() + "/metrics.csv");
  EXPECT_NE(csv.find("eval/steady_state/credit/return"), std::string::npos);
  EXPECT_NE(csv.find("eval/rate_shock/credit/baseline_return"), std::string::npos);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n') > 4, true);
}

TEST(TensorBoard, Crc32cKnownVectors) {
  // RFC 3720 (iSCSI) test vectors and the standard check value.
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  const std::string zeros(32, '\0'), ones(32, '\xff');
  EXPECT_EQ(Crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(ones.data(), 32), 0x62A8AB43u);
  const uint32_t crc = 0xE3069283u;
  EXPECT_EQ(MaskedCrc32c("123456789", 9), ((crc >> 15) | (crc << 17)) + 0xa282ead8u);
}

TEST(TensorBoard, RecordFramingAndScalarEvent) {
  const std::string event = ScalarEvent(1.5, 42, "charts/x", 2.0f);
  const std::string record = TfRecord(event);
  ASSERT_EQ(record.size(), 8 + 4 + event.size() + 4);
  uint64_t length;
  std::memcpy(&length, record.data(), 8);
  EXPECT_EQ(length, event.size());
  uint32_t len_crc, data_crc;
  std::memcpy(&len_crc, record.data() + 8, 4);
  std::memcpy(&data_crc, record.data() + 12 + event.size(), 4);
  EXPECT_EQ(len_crc, MaskedCrc32c(record.data(), 8));
  EXPECT_EQ(data_crc, MaskedCrc32c(event.data(), event.size()));
  // Event: wall_time (field 1, fixed64) = 1.5, step (field 2, varint) = 42, summary (field 5).
  EXPECT_EQ(static_cast<uint8_t>(event[0]), 0x09);
  double wall;
  std::memcpy(&wall, event.data() + 1, 8);
  EXPECT_EQ(wall, 1.5);
  EXPECT_EQ(static_cast<uint8_t>(event[9]), 0x10);
  EXPECT_EQ(static_cast<uint8_t>(event[10]), 42);
  EXPECT_EQ(static_cast<uint8_t>(event[11]), 0x2a);
  EXPECT_NE(event.find("charts/x"), std::string::npos);
  float v;
  std::memcpy(&v, event.data() + event.size() - 4, 4);  // simple_value is the last field
  EXPECT_EQ(v, 2.0f);
}

}  // namespace
}  // namespace loantwin
