#pragma once
// Experiment configuration: `loantwin train <experiment.yaml>` (docs/training.md). Parsed
// strictly (file, line and key path in every error); every field has a documented default, and
// the resolved configuration (defaults filled in) is written into the run directory.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agents/ppo.h"
#include "env/yaml_reader.h"

namespace loantwin {

/// How a role is driven during training.
struct RoleAgentConfig {
  std::string agent = "baseline";  ///< ppo | baseline | random | frozen
  std::string policy;              ///< frozen: path to an exported TorchScript policy (<role>.pt)
  PpoConfig ppo;                   ///< when agent = ppo
  std::vector<std::pair<std::string, double>> rewards;  ///< reward weights (empty = env default)
  bool has_rewards = false;
};

struct ExperimentConfig {
  std::string name = "experiment";  ///< run directory checkpoints/<name>/<run>
  std::string file;                 ///< where it was loaded from
  uint64_t seed = 1;
  int64_t total_steps = 100000;  ///< environment steps summed over instances
  // env
  std::string env_name = "cartpole";
  int num_envs = 4;
  int threads = 1;                               ///< env worker threads (and the trainer's)
  int max_episode_steps = 0;                     ///< 0 = environment default
  std::optional<YamlValue> env_config;           ///< the environment's own keys (env.config)
  std::map<std::string, RoleAgentConfig> roles;  ///< by role name; unlisted roles: baseline
  std::map<std::string, YamlValue> role_nodes;   ///< for error messages naming the file line
  // logging and checkpoints
  int64_t log_every_steps = 10000;
  int64_t checkpoint_every_steps = 0;  ///< 0 = only at the end
  int keep_checkpoints = 3;
  int return_window = 20;  ///< episodes averaged in charts/episodic_return
  std::string output_dir = "checkpoints";
  // periodic evaluation against the baselines (0 = off)
  int64_t eval_every_steps = 0;
  int eval_paths = 16;
  std::vector<std::string> eval_scenarios;  ///< twin only; empty = the training mix
  uint64_t eval_seed = 1000003;

  /// Loads and validates; ConfigError naming file, line and key on any problem.
  static ExperimentConfig Load(const std::string& file);
  static ExperimentConfig Parse(const YamlValue& root);
  /// The resolved configuration as YAML (every field, defaults included).
  std::string ToYaml() const;
};

/// Visits every PPO hyperparameter: v(name, field, lo, hi, help) for numbers,
/// v(name, field, help) for booleans, strings and lists. One list serves parsing, the resolved
/// config and the docs.
template <typename V>
void VisitPpoConfig(PpoConfig& c, V&& v) {
  v("learning_rate", c.learning_rate, 0.0, 1.0, "Adam step size (start of the linear schedule)");
  v("anneal_lr", c.anneal_lr, "anneal the learning rate linearly to 0");
  v("num_steps", c.num_steps, 1, 1000000, "environment steps per rollout, per instance");
  v("gamma", c.gamma, 0.0, 1.0, "discount per environment step");
  v("gae_lambda", c.gae_lambda, 0.0, 1.0, "GAE lambda");
  v("num_minibatches", c.num_minibatches, 1, 100000, "minibatches per epoch");
  v("update_epochs", c.update_epochs, 1, 1000, "passes over each rollout");
  v("norm_adv", c.norm_adv, "normalise advantages per minibatch");
  v("clip_coef", c.clip_coef, 0.0, 10.0, "surrogate clipping");
  v("clip_vloss", c.clip_vloss, "clip the value loss like the surrogate");
  v("ent_coef", c.ent_coef, 0.0, 10.0, "entropy bonus");
  v("vf_coef", c.vf_coef, 0.0, 100.0, "value loss weight");
  v("max_grad_norm", c.max_grad_norm, 0.0, 1e6, "global gradient-norm clip");
  v("target_kl", c.target_kl, 0.0, 10.0, "stop the epochs when approx KL exceeds it (0 = off)");
  v("hidden", c.hidden, "hidden layer widths of actor and critic");
  v("activation", c.activation, "tanh | relu");
  v("normalize_obs", c.normalize_obs, "running mean/std observation normalisation");
  v("normalize_reward", c.normalize_reward, "scale rewards by the std of the discounted return");
  v("centralized_critic", c.centralized_critic,
    "critic sees the global state (all roles' observations)");
}

}  // namespace loantwin
