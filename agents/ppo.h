#pragma once
// Proximal Policy Optimisation (Schulman et al. 2017) for discrete and multi-discrete actions
// with masks, following CleanRL's ppo.py: clipped surrogate, GAE(lambda), value clipping,
// advantage normalisation, entropy bonus, linear LR annealing, minibatch epochs, gradient-norm
// clipping, optional KL early stop, optional observation and reward normalisation, truncation
// bootstrapping (RolloutBuffer), optional centralised critic, Adam with eps 1e-5.
//
// Under an experiment's constraints the agent is PPO-Lagrangian (the structure of OmniSafe's
// PPOLag and safety-starter-agents' ppo_lagrangian, Ray et al. 2019): a separate cost critic
// with one output per constraint pricing the role, cost GAE advantages and returns from the
// rollout's own cost channels, and the surrogate's advantage A_r - sum_k lambda_k A_c,k with
// the trainer's multipliers. Unlike those implementations the combined advantage is then
// standardised (norm_adv) rather than divided by 1 + lambda, so lambda carries the same units
// (reward per unit of cost) as the Lagrangian reward r - lambda c that DQN and MuZero learn
// from. cost_critic: false makes PPO learn from that shaped reward too.

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "agents/agent.h"
#include "agents/flat_adam.h"
#include "agents/mlp.h"
#include "agents/normalizer.h"
#include "agents/rollout_buffer.h"
#include "core/config_fields.h"

namespace loantwin {

/// Defaults; every field's range and meaning: VisitFields below (docs/agents/).
struct PpoConfig {
  double learning_rate = 2.5e-4;
  bool anneal_lr = true;
  int num_steps = 128;
  double gamma = 0.99;
  double gae_lambda = 0.95;
  int num_minibatches = 4;
  int update_epochs = 4;
  bool norm_adv = true;
  double clip_coef = 0.2;
  bool clip_vloss = true;
  double ent_coef = 0.01;
  double vf_coef = 0.5;
  double max_grad_norm = 0.5;
  double target_kl = 0.0;
  std::vector<int64_t> hidden = {64, 64};  ///< hidden widths of actor and critic
  std::string activation = "tanh";         ///< tanh | relu
  bool normalize_obs = false;              ///< running mean/std observation normalisation
  bool normalize_reward = false;           ///< scale rewards by the std of the discounted return
  bool centralized_critic = false;  ///< critic sees the global state (all roles' observations)
  /// The minibatch gradient from a hand-written backward pass in plain C++/Eigen (false:
  /// LibTorch autograd). The same loss and gradient to float rounding.
  bool fused_update = true;
  /// With constraints: a separate cost critic and cost advantages (PPO-Lagrangian).
  bool cost_critic = true;
  /// The first fraction of the run's rollouts in which the role's rule-based baseline acts and
  /// the actor learns to copy it (behaviour cloning) while the critics learn its values.
  double imitation_fraction = 0.0;
  /// After the imitation phase: weight of KL(imitated policy || policy) in the actor's loss.
  double imitation_kl_coef = 0.0;
  /// Imitation with label smoothing: the copied target per action component is the baseline's
  /// action with 1 - eps and eps spread evenly over the component's allowed values, so the copy
  /// decides greedily as the baseline but keeps exploring around it for PPO (0 = exact copy).
  double imitation_smoothing = 0.0;
};

struct ActorCriticImpl : torch::nn::Module {
  /// num_costs > 0 adds the cost critic (one output per constraint).
  ActorCriticImpl(int64_t obs_dim, int64_t critic_dim, int64_t logits, const PpoConfig& c,
                  int64_t num_costs = 0);
  Mlp actor{nullptr}, critic{nullptr}, cost_critic{nullptr};
};
TORCH_MODULE(ActorCritic);

/// The hyperparameters of PpoConfig, listed once (core/config_fields.h): YAML keys under the
/// role's `ppo:` section, ranges and help texts.
template <typename V>
void VisitFields(PpoConfig& c, V&& v) {
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
  v("fused_update", c.fused_update,
    "minibatch gradients from a hand-written backward pass (false: LibTorch autograd)");
  v("cost_critic", c.cost_critic,
    "with constraints: a separate cost critic and cost advantages (PPO-Lagrangian); false: "
    "learn from the shaped reward r - lambda c");
  v("imitation_fraction", c.imitation_fraction, 0.0, 1.0,
    "the first fraction of the run's rollouts in which the role's rule-based baseline acts and "
    "the actor learns to copy it (cross-entropy on its actions) while the critics learn its "
    "values; PPO's own updates follow (0 = off)");
  v("imitation_kl_coef", c.imitation_kl_coef, 0.0, 1000.0,
    "after the imitation phase: weight of KL(imitated policy || policy) in the actor's loss, "
    "keeping PPO near the baseline it copied (0 = free; needs imitation_fraction > 0)");
  v("imitation_smoothing", c.imitation_smoothing, 0.0, 0.5,
    "imitation with label smoothing: the target is the baseline's action with 1 - eps and eps "
    "spread over the allowed values, so the copy decides greedily as the baseline but keeps "
    "sampling around it for PPO to learn from (0 = exact copy; needs imitation_fraction > 0)");
}

struct AgentAlgorithm;
/// The registry entry (agents/agent_registry.cc).
AgentAlgorithm PpoAlgorithm();

class PpoAgent : public Agent {
 public:
  /// nvec: values per action component (Discrete(n) -> {n}); critic_dim = obs_dim unless the
  /// critic is centralised. The seed sets network initialisation and the agent's random stream.
  /// planned_updates: the number of updates over the whole run (learning-rate annealing).
  PpoAgent(int obs_dim, int critic_dim, std::vector<int64_t> nvec, int num_envs,
           const PpoConfig& config, uint64_t seed, int64_t planned_updates = 1, int num_costs = 0);

  std::string algorithm() const override { return "ppo"; }
  bool wants_global_state() const override { return config_.centralized_critic; }
  bool learns_costs() const override { return num_costs_ > 0; }
  /// While the rollouts of the imitation phase last (imitation_fraction).
  bool wants_demonstrations() const override { return updates_ < imitation_updates_; }
  /// Rollouts (updates) of the imitation phase.
  int64_t imitation_updates() const { return imitation_updates_; }
  int num_costs() const { return num_costs_; }
  ExportSummary Summary() const override;
  std::vector<torch::Tensor> Parameters() const override { return net_->parameters(); }

  /// V(critic observation) for raw observations, [n].
  void Values(const float* critic_obs, int n, float* out);
  /// Cost values for raw critic observations, [n, num_costs].
  void CostValues(const float* critic_obs, int n, float* out);
  /// PPO epochs over a finished buffer; progress in [0, 1) drives LR annealing. With cost
  /// channels, cost_weights [num_costs] are the multipliers of the Lagrangian advantage.
  UpdateStats Update(const RolloutBuffer& buffer, double progress,
                     const float* cost_weights = nullptr);

  const PpoConfig& config() const { return config_; }
  ActorCritic& net() { return net_; }
  const RunningMeanStd& critic_rms() const { return critic_rms_; }
  const std::vector<int64_t>& nvec() const { return nvec_; }
  int obs_dim() const { return obs_dim_; }
  int critic_dim() const { return critic_dim_; }
  int64_t updates() const { return updates_; }
  const RolloutBuffer& buffer() const { return buffer_; }

 protected:
  void DoAct(const float* obs, const uint8_t* masks, int n, bool deterministic,
             int32_t* actions) override;
  void DoActAndRecord(const AgentBatch& batch, int32_t* actions) override;
  void DoObserve(const AgentFeedback& feedback) override;
  /// Updates after every num_steps environment steps (one rollout).
  UpdateStats DoMaybeUpdate(const AgentBatch& current) override;
  torch::jit::Module DoExport(const RoleSpec& role) const override;
  void SaveState(torch::serialize::OutputArchive& archive) const override;
  void LoadState(torch::serialize::InputArchive& archive) override;
  void OnGroup(Collective* group) override;
  void SyncStatistics(Collective& group) override;
  bool CanReshard() const override { return true; }
  void OnReshard(int from, int to, bool fresh) override;

 private:
  /// Training-time decision: updates the observation statistics, normalises, samples.
  /// Writes the normalised observations (what the buffer stores) to norm_obs / norm_critic.
  /// With `given` (demonstrations): takes those actions instead of sampling (their log-probs).
  void ActForTraining(const float* obs, const float* critic_obs, const uint8_t* masks, int n,
                      int32_t* actions, float* log_probs, float* values, float* norm_obs,
                      float* norm_critic, const int32_t* given = nullptr);
  /// Scales a step's rewards when normalize_reward is on (in place).
  void ScaleRewards(float* rewards, const uint8_t* done, int n);
  torch::Tensor Uniforms(int64_t rows, int64_t cols);
  void NormalizeObs(const float* in, int n, float* out) const;
  void NormalizeCritic(const float* in, int n, float* out) const;
  struct MinibatchLosses {
    double policy = 0, value = 0, entropy = 0, cost_value = 0;
    double matches = 0;    ///< imitation: rows whose greedy action is the demonstration
    double anchor_kl = 0;  ///< KL(anchor || policy), mean over rows
  };
  /// The critic observations of Values() and CostValues(), normalised, into scratch_critic_.
  const float* NormalizedCriticInput(const float* critic_obs, int n);
  /// Loss and gradient of one gathered minibatch of m rows (into the optimiser's gradient
  /// buffer, zeroed first); log_ratio receives new minus old log-probabilities, [m].
  MinibatchLosses MinibatchGradAutograd(int64_t m, float* log_ratio);
  MinibatchLosses MinibatchGradFused(int64_t m, float* log_ratio);

  int obs_dim_, critic_dim_, mask_width_ = 0, num_costs_ = 0;
  std::vector<int64_t> nvec_;
  PpoConfig config_;
  ActorCritic net_{nullptr};
  std::unique_ptr<FlatAdam> optimizer_;
  RunningMeanStd critic_rms_;
  RewardScaler reward_scaler_;
  int64_t updates_ = 0;
  int64_t planned_updates_;
  int64_t imitation_updates_ = 0;
  /// The actor as the imitation phase left it (imitation_kl_coef > 0, after the phase).
  Mlp anchor_{nullptr};
  /// A network shaped as the actor (the anchor's architecture).
  Mlp NewActorShaped() const;
  void MakeAnchor();
  int num_envs_;
  RolloutBuffer buffer_;
  int steps_in_rollout_ = 0;
  std::vector<float> scratch_obs_, scratch_critic_, uniforms_, logits_;
  struct MinibatchBuffers {
    std::vector<float> obs, critic, old_logp, old_values, adv, returns;
    std::vector<uint8_t> masks;
    std::vector<int64_t> actions;
    std::vector<float> logits, values, dlogits, dvalues, log_ratio;        // fused update
    std::vector<float> anchor_logits;                                      // [m, width]
    std::vector<float> old_cost_values, cost_returns, cost_values, dcost;  // [m, num_costs]
  } minibatch_;
  std::vector<float> step_log_probs_, step_values_, step_obs_, step_critic_, step_rewards_,
      final_values_;
  std::vector<float> step_cost_values_, step_costs_, final_cost_values_;
  std::vector<float> cost_weights_;  ///< the multipliers of the last feedback
  std::vector<uint8_t> step_done_;
  std::vector<int32_t> step_actions_;
};

}  // namespace loantwin
