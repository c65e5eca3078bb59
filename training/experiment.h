#pragma once
// Experiment configuration: `loantwin train <experiment.yaml>` (docs/training.md). Parsed
// strictly (file, line and key path in every error); every field has a documented default, and
// the resolved configuration (defaults filled in) is written into the run directory.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agents/agent_registry.h"
#include "core/yaml_reader.h"
#include "env/guardrails.h"
#include "training/constraints.h"

namespace loantwin {

/// How a role is driven during training.
struct RoleAgentConfig {
  /// A registered learning algorithm (AgentAlgorithms(): ppo, dqn, muzero, ...), or baseline,
  /// random or frozen.
  std::string agent = "baseline";
  std::string policy;          ///< frozen: path to an exported TorchScript policy (<role>.pt)
  AgentOptionsHolder options;  ///< the algorithm's hyperparameters (learning roles only)
  /// Whether the trainer builds a learning agent for the role: the one predicate every pass over
  /// the roles uses (constraints, agents, checkpoints).
  bool learning() const { return agent != "frozen" && static_cast<bool>(options); }
  /// The typed hyperparameters, e.g. hyperparameters<PpoConfig>() (std::bad_cast for another
  /// algorithm's).
  template <typename Config>
  const Config& hyperparameters() const {
    return OptionsAs<Config>(*options);
  }
  template <typename Config>
  Config& hyperparameters() {
    return OptionsAs<Config>(*options);
  }
  std::vector<std::pair<std::string, double>> rewards;  ///< reward weights (empty = env default)
  bool has_rewards = false;
};

struct ExperimentConfig {
  std::string name = "experiment";  ///< run directory checkpoints/<name>/<run>
  std::string file;                 ///< where it was loaded from
  uint64_t seed = 1;
  int64_t total_steps = 100000;
  bool overlap_updates = false;  ///< off-policy learners update during the next environment step
  // env
  std::string env_name = "cartpole";
  int num_envs = 4;
  int threads = 1;
  int max_episode_steps = 0;
  std::optional<YamlValue> env_config;           ///< the environment's own keys (env.config)
  std::map<std::string, RoleAgentConfig> roles;  ///< by role name; unlisted roles: baseline
  std::map<std::string, YamlValue> role_nodes;   ///< for error messages naming the file line
  // logging and checkpoints (help texts: the Visit*Fields lists below)
  int64_t log_every_steps = 10000;
  int64_t checkpoint_every_steps = 0;
  int keep_checkpoints = 3;
  int return_window = 20;
  std::string output_dir = "checkpoints";
  // periodic evaluation against the baselines
  int64_t eval_every_steps = 0;
  int eval_paths = 16;
  std::vector<std::string> eval_scenarios;
  uint64_t eval_seed = 1000003;
  // constraints priced into the learning roles' rewards (training/constraints.h)
  std::vector<ConstraintConfig> constraints;
  std::vector<YamlValue> constraint_nodes;  ///< for error messages naming the file line
  // guardrails masking actions before any policy acts (env/guardrails.h)
  std::vector<GuardrailRule> guardrails;
  std::optional<YamlValue> guardrails_node;

  /// Loads and validates; ConfigError naming file, line and key on any problem.
  static ExperimentConfig Load(const std::string& file);
  static ExperimentConfig Parse(const YamlValue& root);
  /// The resolved configuration as YAML: every field, defaults included, the roles'
  /// hyperparameters and the environment's own config (env.config) resolved by its registry
  /// entry. Parse reads it back to the same configuration.
  std::string ToYaml() const;
};

/// The scalar fields of each section, listed once (core/config_fields.h): parsing, the resolved
/// config.yaml and docs/training.md's key tables all follow these lists.
template <typename V>
void VisitTopFields(ExperimentConfig& c, V&& v) {
  v("seed", c.seed, uint64_t{0}, uint64_t{INT64_MAX}, "seed of the environment and the agents");
  v("total_steps", c.total_steps, int64_t{1}, int64_t{INT64_MAX},
    "environment steps summed over instances");
  v("overlap_updates", c.overlap_updates,
    "DQN and MuZero roles learn during the next environment step, acting one update behind");
  v("output_dir", c.output_dir, "run directories go to <output_dir>/<name>/<run>");
}
template <typename V>
void VisitEnvFields(ExperimentConfig& c, V&& v) {
  v("num_envs", c.num_envs, 1, 1000000, "environment instances stepped together");
  v("threads", c.threads, 1, 1024,
    "environment worker threads; the learning roles' updates run concurrently on as many");
  v("max_episode_steps", c.max_episode_steps, 0, 100000000, "0 = the environment's default");
}
template <typename V>
void VisitLoggingFields(ExperimentConfig& c, V&& v) {
  v("every_steps", c.log_every_steps, int64_t{1}, int64_t{INT64_MAX},
    "environment steps between metric rows");
  v("return_window", c.return_window, 1, 100000, "episodes averaged in charts/episodic_return");
}
template <typename V>
void VisitCheckpointFields(ExperimentConfig& c, V&& v) {
  v("every_steps", c.checkpoint_every_steps, int64_t{0}, int64_t{INT64_MAX},
    "environment steps between checkpoints (0 = only at the end)");
  v("keep", c.keep_checkpoints, 1, 1000, "newest checkpoints kept");
}
template <typename V>
void VisitEvaluationFields(ExperimentConfig& c, V&& v) {
  v("every_steps", c.eval_every_steps, int64_t{0}, int64_t{INT64_MAX},
    "environment steps between evaluations against the baselines (0 = off)");
  v("paths", c.eval_paths, 1, 100000, "Monte Carlo paths per evaluation");
  v("scenarios", c.eval_scenarios, "twin only; empty = the training mix");
  v("seed", c.eval_seed, uint64_t{0}, uint64_t{INT64_MAX}, "seed of the evaluation paths");
}

}  // namespace loantwin
