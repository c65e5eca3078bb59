#pragma once
// Deep Q-learning (Mnih et al. 2015) for Discrete and MultiDiscrete actions with masks, following
// CleanRL's dqn.py by default, with the Rainbow components that matter most as options: double
// Q-learning targets (van Hasselt et al. 2016), a dueling head (Wang et al. 2016), n-step returns
// and proportional prioritised replay (Schaul et al. 2016). MultiDiscrete actions use action
// branching (Tavakoli et al. 2018, Branching Dueling Q-Networks): one Q head per action
// component over a shared trunk (and shared state value when dueling); each branch is trained
// towards a common target, the mean over branches of the next state's (masked) maximum.
// docs/agents/dqn.md describes every option.

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "agents/agent.h"
#include "agents/flat_adam.h"
#include "agents/mlp.h"
#include "agents/normalizer.h"
#include "agents/replay_buffer.h"

namespace loantwin {

struct DqnConfig {
  double learning_rate = 2.5e-4;            ///< Adam step size
  int buffer_size = 10000;                  ///< replay capacity (transitions)
  double gamma = 0.99;                      ///< discount per environment step
  double tau = 1.0;                         ///< target update: target <- tau q + (1 - tau) target
  int target_network_frequency = 500;       ///< environment steps between target updates
  int batch_size = 128;                     ///< transitions per gradient step
  double start_e = 1.0;                     ///< epsilon at the start
  double end_e = 0.05;                      ///< epsilon after the exploration phase
  double exploration_fraction = 0.5;        ///< share of total_steps over which epsilon decays
  int learning_starts = 10000;              ///< environment steps before learning starts
  int train_frequency = 10;                 ///< environment steps per training round
  int gradient_steps = 1;                   ///< gradient steps per training round
  std::vector<int64_t> hidden = {120, 84};  ///< hidden layer widths
  std::string activation = "relu";          ///< relu | tanh
  bool double_q = false;                    ///< double Q-learning targets
  bool dueling = false;                     ///< dueling head (shared state value)
  int n_step = 1;                           ///< n-step returns
  bool prioritized = false;                 ///< proportional prioritised replay
  double alpha = 0.6;                       ///< priority exponent
  double beta_start = 0.4;                  ///< importance-weight exponent, annealed to 1
  double priority_eps = 1e-6;               ///< added to |TD error|
  std::string loss = "mse";                 ///< mse | huber
  double max_grad_norm = 0.0;               ///< global gradient-norm clip (0 = off)
  bool normalize_obs = false;               ///< running mean/std observation normalisation
  bool checkpoint_replay = true;            ///< checkpoints include the replay buffer
};

/// Q-network with one head per action component over a shared trunk. forward -> [B, sum(nvec)]
/// Q-values, the components' heads side by side (the layout of the action mask).
struct QNetworkImpl : torch::nn::Module {
  QNetworkImpl(int64_t obs_dim, std::vector<int64_t> nvec, const std::vector<int64_t>& hidden,
               Activation activation, bool dueling);
  torch::Tensor forward(torch::Tensor x);

  torch::nn::ModuleList trunk;
  torch::nn::Linear advantage{nullptr};  ///< Q (plain) or advantages (dueling), [W]
  torch::nn::Linear value{nullptr};      ///< dueling only: state value, [1]
  std::vector<int64_t> nvec;
  Activation activation;
  bool dueling;
};
TORCH_MODULE(QNetwork);

/// Per-component masked argmax / max of Q-values [B, W] with boolean masks [B, W].
torch::Tensor MaskedArgmax(const torch::Tensor& q, const torch::Tensor& mask,
                           const std::vector<int64_t>& nvec);  ///< int64 [B, D]
/// Q-values of the given actions per component, int64 actions [B, D] -> [B, D].
torch::Tensor GatherBranches(const torch::Tensor& q, const torch::Tensor& actions,
                             const std::vector<int64_t>& nvec);
/// The bootstrapped target r + discount * mean_d Q_target,d(s', a*_d) with a* the masked
/// argmax of `q_select` (the online network for double Q-learning, else the target itself).
torch::Tensor DqnTarget(const torch::Tensor& rewards, const torch::Tensor& discounts,
                        const torch::Tensor& q_next_target, const torch::Tensor& q_select,
                        const torch::Tensor& next_masks, const std::vector<int64_t>& nvec);

class DqnAgent : public Agent {
 public:
  /// total_steps drives the epsilon and beta schedules (environment steps over the run).
  DqnAgent(int obs_dim, std::vector<int64_t> nvec, int num_envs, const DqnConfig& config,
           uint64_t seed, int64_t total_steps);

  std::string algorithm() const override { return "dqn"; }
  void Act(const float* obs, const uint8_t* masks, int n, bool deterministic,
           int32_t* actions) override;
  void ActAndRecord(const AgentBatch& batch, int32_t* actions) override;
  void Observe(const AgentFeedback& feedback) override;
  /// Completes transitions (next decision reached), then trains every train_frequency
  /// environment steps once learning_starts steps have passed.
  UpdateStats MaybeUpdate(const AgentBatch& current) override;
  torch::jit::Module Export(const RoleSpec& role) const override;
  ExportSummary Summary() const override;
  std::vector<torch::Tensor> Parameters() const override { return q_->parameters(); }
  void Save(torch::serialize::OutputArchive& archive) const override;
  void Load(torch::serialize::InputArchive& archive) override;

  /// One gradient step on a sampled batch (public for tests).
  UpdateStats TrainStep();
  /// Q-values [n, W] of raw observations (normalised inside).
  torch::Tensor QValues(const float* obs, int n);
  double epsilon() const;
  double beta() const;

  const DqnConfig& config() const { return config_; }
  QNetwork& q() { return q_; }
  QNetwork& target() { return target_; }
  ReplayBuffer& replay() { return replay_; }
  const RunningMeanStd& obs_rms() const { return obs_rms_; }
  const std::vector<int64_t>& nvec() const { return nvec_; }
  int obs_dim() const { return obs_dim_; }
  int64_t env_steps() const { return env_steps_; }
  int64_t updates() const { return updates_; }

 private:
  torch::Tensor Normalize(const torch::Tensor& raw) const;
  void Greedy(const float* obs, const uint8_t* masks, int n, int32_t* actions);
  /// Q-values of a few normalised rows in plain C++ (cheaper than tensor operations there).
  void ForwardSmall(const float* x, int n, float* q) const;
  void UpdateTarget();

  int obs_dim_, mask_width_ = 0;
  std::vector<int64_t> nvec_;
  DqnConfig config_;
  int64_t total_steps_;
  QNetwork q_{nullptr}, target_{nullptr};
  std::unique_ptr<FlatAdam> optimizer_;
  RunningMeanStd obs_rms_;
  NStepAccumulator nstep_;
  ReplayBuffer replay_;
  uint64_t rng_key_;
  uint64_t rng_counter_ = 0;
  int64_t env_steps_ = 0, updates_ = 0;
  std::vector<uint8_t> explore_;
  static constexpr int kSmallBatch = 8;
  std::vector<float> small_q_;
  mutable std::vector<float> small_in_, small_out_;
  std::vector<float> scratch_;
};

}  // namespace loantwin
