#pragma once
// Proximal Policy Optimisation (Schulman et al. 2017) for discrete and multi-discrete actions
// with masks, following CleanRL's ppo.py: clipped surrogate, GAE(lambda), value clipping,
// advantage normalisation, entropy bonus, linear LR annealing, minibatch epochs, gradient-norm
// clipping, optional KL early stop, optional observation and reward normalisation, truncation
// bootstrapping (RolloutBuffer), optional centralised critic, Adam with eps 1e-5.

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "agents/agent.h"
#include "agents/mlp.h"
#include "agents/normalizer.h"
#include "agents/rollout_buffer.h"

namespace loantwin {

struct PpoConfig {
  double learning_rate = 2.5e-4;           ///< Adam step size (start of the linear schedule)
  bool anneal_lr = true;                   ///< anneal the learning rate linearly to 0
  int num_steps = 128;                     ///< environment steps per rollout (per instance)
  double gamma = 0.99;                     ///< discount per environment step
  double gae_lambda = 0.95;                ///< GAE lambda
  int num_minibatches = 4;                 ///< minibatches per epoch
  int update_epochs = 4;                   ///< passes over each rollout
  bool norm_adv = true;                    ///< normalise advantages per minibatch
  double clip_coef = 0.2;                  ///< surrogate clipping
  bool clip_vloss = true;                  ///< clip the value loss like the surrogate
  double ent_coef = 0.01;                  ///< entropy bonus
  double vf_coef = 0.5;                    ///< value loss weight
  double max_grad_norm = 0.5;              ///< global gradient-norm clip
  double target_kl = 0.0;                  ///< stop the epochs when approx KL exceeds it (0 = off)
  std::vector<int64_t> hidden = {64, 64};  ///< hidden widths of actor and critic
  std::string activation = "tanh";         ///< tanh | relu
  bool normalize_obs = false;              ///< running mean/std observation normalisation
  bool normalize_reward = false;           ///< scale rewards by the std of the discounted return
  bool centralized_critic = false;  ///< critic sees the global state (all roles' observations)
};

struct ActorCriticImpl : torch::nn::Module {
  ActorCriticImpl(int64_t obs_dim, int64_t critic_dim, int64_t logits, const PpoConfig& c);
  Mlp actor{nullptr}, critic{nullptr};
};
TORCH_MODULE(ActorCritic);

class PpoAgent : public Agent {
 public:
  /// nvec: values per action component (Discrete(n) -> {n}); critic_dim = obs_dim unless the
  /// critic is centralised. The seed sets network initialisation and the agent's random stream.
  /// planned_updates: the number of updates over the whole run (learning-rate annealing).
  PpoAgent(int obs_dim, int critic_dim, std::vector<int64_t> nvec, int num_envs,
           const PpoConfig& config, uint64_t seed, int64_t planned_updates = 1);

  std::string algorithm() const override { return "ppo"; }
  bool wants_global_state() const override { return config_.centralized_critic; }
  void Act(const float* obs, const uint8_t* masks, int n, bool deterministic,
           int32_t* actions) override;
  void ActAndRecord(const AgentBatch& batch, int32_t* actions) override;
  void Observe(const AgentFeedback& feedback) override;
  /// Updates after every num_steps environment steps (one rollout).
  UpdateStats MaybeUpdate(const AgentBatch& current) override;
  torch::jit::Module Export(const RoleSpec& role) const override;
  ExportSummary Summary() const override;
  std::vector<torch::Tensor> Parameters() const override { return net_->parameters(); }

  /// V(critic observation) for raw observations, [n].
  void Values(const float* critic_obs, int n, float* out);
  /// PPO epochs over a finished buffer; progress in [0, 1) drives LR annealing.
  UpdateStats Update(const RolloutBuffer& buffer, double progress);

  void Save(torch::serialize::OutputArchive& archive) const override;
  void Load(torch::serialize::InputArchive& archive) override;

  const PpoConfig& config() const { return config_; }
  ActorCritic& net() { return net_; }
  const RunningMeanStd& obs_rms() const { return obs_rms_; }
  const RunningMeanStd& critic_rms() const { return critic_rms_; }
  const std::vector<int64_t>& nvec() const { return nvec_; }
  int obs_dim() const { return obs_dim_; }
  int critic_dim() const { return critic_dim_; }
  int64_t updates() const { return updates_; }
  const RolloutBuffer& buffer() const { return buffer_; }

 private:
  /// Training-time decision: updates the observation statistics, normalises, samples.
  /// Writes the normalised observations (what the buffer stores) to norm_obs / norm_critic.
  void ActForTraining(const float* obs, const float* critic_obs, const uint8_t* masks, int n,
                      int32_t* actions, float* log_probs, float* values, float* norm_obs,
                      float* norm_critic);
  /// Scales a step's rewards when normalize_reward is on (in place).
  void ScaleRewards(float* rewards, const uint8_t* done, int n);
  torch::Tensor Uniforms(int64_t rows, int64_t cols);
  void NormalizeObs(const float* in, int n, float* out) const;
  void NormalizeCritic(const float* in, int n, float* out) const;

  int obs_dim_, critic_dim_, mask_width_ = 0;
  std::vector<int64_t> nvec_;
  PpoConfig config_;
  ActorCritic net_{nullptr};
  std::unique_ptr<torch::optim::Adam> optimizer_;
  RunningMeanStd obs_rms_, critic_rms_;
  RewardScaler reward_scaler_;
  uint64_t rng_key_;
  uint64_t rng_counter_ = 0;
  int64_t updates_ = 0;
  int64_t planned_updates_;
  int num_envs_;
  RolloutBuffer buffer_;
  int steps_in_rollout_ = 0;
  std::vector<float> scratch_obs_, scratch_critic_, uniforms_;
  std::vector<float> step_log_probs_, step_values_, step_obs_, step_critic_, step_rewards_,
      final_values_;
  std::vector<uint8_t> step_done_;
  std::vector<int32_t> step_actions_;
};

}  // namespace loantwin
