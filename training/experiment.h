#pragma once
// Experiment configuration: `loantwin train <experiment.yaml>` (docs/training.md). Parsed
// strictly (file, line and key path in every error); every field has a documented default, and
// the resolved configuration (defaults filled in) is written into the run directory.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agents/dqn.h"
#include "agents/muzero.h"
#include "agents/ppo.h"
#include "env/yaml_reader.h"

namespace loantwin {

/// How a role is driven during training.
struct RoleAgentConfig {
  std::string agent = "baseline";  ///< ppo | dqn | muzero | baseline | random | frozen
  std::string policy;              ///< frozen: path to an exported TorchScript policy (<role>.pt)
  PpoConfig ppo;                   ///< when agent = ppo
  DqnConfig dqn;                   ///< when agent = dqn
  MuZeroConfig muzero;             ///< when agent = muzero
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

/// Visits every PPO hyperparameter: v(name, field, lo, hi, help) for numbers, v(name, field,
/// choices, help) for strings, v(name, field, help) for booleans and lists. One list serves
/// parsing and the resolved config.
using Choices = std::vector<std::string>;

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
  v("activation", c.activation, Choices{"tanh", "relu"}, "hidden-layer activation");
  v("normalize_obs", c.normalize_obs, "running mean/std observation normalisation");
  v("normalize_reward", c.normalize_reward, "scale rewards by the std of the discounted return");
  v("centralized_critic", c.centralized_critic,
    "critic sees the global state (all roles' observations)");
}

/// Visits every DQN hyperparameter (same conventions as VisitPpoConfig).
template <typename V>
void VisitDqnConfig(DqnConfig& c, V&& v) {
  v("learning_rate", c.learning_rate, 0.0, 1.0, "Adam step size");
  v("buffer_size", c.buffer_size, 1, 100000000, "replay capacity in transitions");
  v("gamma", c.gamma, 0.0, 1.0, "discount per environment step");
  v("tau", c.tau, 0.0, 1.0, "target update weight (1 = hard copy)");
  v("target_network_frequency", c.target_network_frequency, 1, 100000000,
    "environment steps between target updates");
  v("batch_size", c.batch_size, 1, 1000000, "transitions per gradient step");
  v("start_e", c.start_e, 0.0, 1.0, "epsilon at the start");
  v("end_e", c.end_e, 0.0, 1.0, "epsilon after the exploration phase");
  v("exploration_fraction", c.exploration_fraction, 0.0, 1.0,
    "share of total_steps over which epsilon decays linearly");
  v("learning_starts", c.learning_starts, 0, 1000000000, "environment steps before learning");
  v("train_frequency", c.train_frequency, 1, 1000000, "environment steps per training round");
  v("gradient_steps", c.gradient_steps, 1, 10000, "gradient steps per training round");
  v("hidden", c.hidden, "hidden layer widths");
  v("activation", c.activation, Choices{"relu", "tanh"}, "hidden-layer activation");
  v("double_q", c.double_q, "double Q-learning targets");
  v("dueling", c.dueling, "dueling head: state value + per-component advantages");
  v("n_step", c.n_step, 1, 1000, "n-step returns");
  v("prioritized", c.prioritized, "proportional prioritised replay");
  v("alpha", c.alpha, 0.0, 10.0, "priority exponent");
  v("beta_start", c.beta_start, 0.0, 1.0, "importance-weight exponent at the start (-> 1)");
  v("priority_eps", c.priority_eps, 1e-12, 1.0, "added to |TD error| in priorities");
  v("loss", c.loss, Choices{"mse", "huber"}, "TD loss");
  v("max_grad_norm", c.max_grad_norm, 0.0, 1e6, "global gradient-norm clip (0 = off)");
  v("normalize_obs", c.normalize_obs, "running mean/std observation normalisation");
  v("checkpoint_replay", c.checkpoint_replay,
    "checkpoints include the replay buffer (exact resume)");
}

/// Visits every MuZero hyperparameter (same conventions as VisitPpoConfig).
template <typename V>
void VisitMuZeroConfig(MuZeroConfig& c, V&& v) {
  v("learning_rate", c.learning_rate, 0.0, 1.0, "Adam step size");
  v("weight_decay", c.weight_decay, 0.0, 1.0, "L2 penalty");
  v("latent_dim", c.latent_dim, 1, 4096, "latent state size");
  v("hidden", c.hidden, "hidden layer widths of each network");
  v("support_size", c.support_size, 1, 1000, "value and reward atoms -S..S");
  v("num_simulations", c.num_simulations, 1, 10000, "MCTS simulations per decision");
  v("gamma", c.gamma, 0.0, 1.0, "discount per environment step");
  v("unroll_steps", c.unroll_steps, 0, 100, "K: model steps unrolled in training");
  v("td_steps", c.td_steps, 1, 10000, "n of the n-step value targets");
  v("batch_size", c.batch_size, 1, 100000, "unrolled positions per training step");
  v("buffer_size", c.buffer_size, 1, 1000000, "episodes kept in the replay");
  v("train_ratio", c.train_ratio, 0.0, 100.0, "training steps per environment step");
  v("learning_starts", c.learning_starts, 0, 1000000000, "environment steps before training");
  v("target_update_interval", c.target_update_interval, 1, 100000000,
    "training steps between target network copies");
  v("use_target_network", c.use_target_network, "bootstrap values from the target network");
  v("reanalyse", c.reanalyse, "bootstrap values from the latest network");
  v("value_loss_weight", c.value_loss_weight, 0.0, 100.0, "weight of the value loss");
  v("max_grad_norm", c.max_grad_norm, 0.0, 1e6, "global gradient-norm clip (0 = off)");
  v("prioritized", c.prioritized, "prioritised replay over positions");
  v("alpha", c.alpha, 0.0, 10.0, "priority exponent");
  v("beta", c.beta, 0.0, 1.0, "importance-weight exponent");
  v("root_dirichlet_alpha", c.root_dirichlet_alpha, 1e-6, 100.0, "root noise concentration");
  v("root_exploration_fraction", c.root_exploration_fraction, 0.0, 1.0, "root noise weight");
  v("pb_c_init", c.pb_c_init, 0.0, 100.0, "pUCT c1");
  v("pb_c_base", c.pb_c_base, 1.0, 1e9, "pUCT c2");
  v("temperature_start", c.temperature_start, 0.0, 100.0,
    "visit-count temperature (halved at 50% and 75% of the run)");
  v("gumbel", c.gumbel, "Gumbel MuZero root selection");
  v("gumbel_max_considered", c.gumbel_max_considered, 1, 10000, "actions considered at the root");
  v("normalize_obs", c.normalize_obs, "running mean/std observation normalisation");
}

}  // namespace loantwin
