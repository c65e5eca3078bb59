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
#include "core/config_fields.h"

namespace loantwin {

/// Defaults; every field's range and meaning: VisitFields below (docs/agents/).
struct DqnConfig {
  double learning_rate = 2.5e-4;
  int buffer_size = 10000;
  double gamma = 0.99;
  double tau = 1.0;
  int target_network_frequency = 500;
  int batch_size = 128;
  double start_e = 1.0;
  double end_e = 0.05;
  double exploration_fraction = 0.5;
  int learning_starts = 10000;
  int train_frequency = 10;
  int gradient_steps = 1;
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
  /// The TD loss gradient from a hand-written backward pass in plain C++ (false: LibTorch
  /// autograd). The same gradient to float rounding.
  bool fused_update = true;
  /// Imitation warm start (DQfD, Hester et al. 2018): for this share of total_steps the role's
  /// rule-based baseline acts, its transitions fill the replay and the Q-network learns them by
  /// TD and the large-margin loss max_a [Q(s, a) + margin 1(a != a_E)] - Q(s, a_E), so its
  /// greedy action is the baseline's. Epsilon's schedule starts when the phase ends.
  double imitation_fraction = 0.0;
  double imitation_margin = 0.8;  ///< DQfD's margin l(a_E, a) for a != a_E
  double imitation_coef = 1.0;    ///< weight of the margin loss in the phase (DQfD's lambda_2)
  /// After the phase: weight of the same margin loss towards the greedy action of the Q-network
  /// as the phase left it (the anchor), keeping the learner near the baseline it copied.
  double imitation_anchor_coef = 0.0;
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

/// The hyperparameters of DqnConfig, listed once (core/config_fields.h): YAML keys under the
/// role's `dqn:` section, ranges and help texts.
template <typename V>
void VisitFields(DqnConfig& c, V&& v) {
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
  v("fused_update", c.fused_update,
    "TD gradients from a hand-written backward pass (false: autograd)");
  v("imitation_fraction", c.imitation_fraction, 0.0, 1.0,
    "share of total_steps in which the rule-based baseline acts and the Q-network learns its "
    "transitions with the large-margin loss (DQfD); epsilon decays after it (0 = off)");
  v("imitation_margin", c.imitation_margin, 0.0, 1e6,
    "margin of the large-margin loss: Q of every other action is pushed this far below the "
    "imitated one's");
  v("imitation_coef", c.imitation_coef, 0.0, 1000.0,
    "weight of the large-margin loss during the imitation phase");
  v("imitation_anchor_coef", c.imitation_anchor_coef, 0.0, 1000.0,
    "after the imitation phase: weight of the large-margin loss towards the greedy action of "
    "the Q-network as the phase left it (0 = free; needs imitation_fraction > 0)");
}

/// Cross-field checks ("" or the problem): batch_size <= buffer_size, end_e <= start_e.
std::string CheckFields(const DqnConfig& c);

struct AgentAlgorithm;
/// The registry entry (agents/agent_registry.cc).
AgentAlgorithm DqnAlgorithm();

class DqnAgent : public Agent {
 public:
  /// total_steps drives the epsilon and beta schedules (environment steps over the run).
  DqnAgent(int obs_dim, std::vector<int64_t> nvec, int num_envs, const DqnConfig& config,
           uint64_t seed, int64_t total_steps);

  std::string algorithm() const override { return "dqn"; }
  /// While the imitation phase lasts (imitation_fraction of total_steps).
  bool wants_demonstrations() const override { return env_steps_ < imitation_steps_; }
  /// Environment steps of the imitation phase.
  int64_t imitation_steps() const { return imitation_steps_; }
  /// True once the phase has ended and the anchor (imitation_anchor_coef) has been taken.
  bool anchored() const { return static_cast<bool>(anchor_); }
  ExportSummary Summary() const override;
  std::vector<torch::Tensor> Parameters() const override { return q_->parameters(); }

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
  const std::vector<int64_t>& nvec() const { return nvec_; }
  int obs_dim() const { return obs_dim_; }
  int64_t updates() const { return updates_; }

 protected:
  void DoAct(const float* obs, const uint8_t* masks, int n, bool deterministic,
             int32_t* actions) override;
  void DoActAndRecord(const AgentBatch& batch, int32_t* actions) override;
  void DoObserve(const AgentFeedback& feedback) override;
  /// Completes transitions (next decision reached), then trains every train_frequency
  /// environment steps once learning_starts steps have passed.
  UpdateStats DoMaybeUpdate(const AgentBatch& current) override;
  /// The halves of DoMaybeUpdate: transitions completed and the gradient rounds and target
  /// updates due noted; then those rounds learned (overlap_updates).
  bool can_defer_update() const override { return true; }
  void DoPrepareUpdate(const AgentBatch& current) override;
  UpdateStats DoRunPreparedUpdate() override;
  torch::jit::Module DoExport(const RoleSpec& role) const override;
  void SaveState(torch::serialize::OutputArchive& archive) const override;
  void LoadState(torch::serialize::InputArchive& archive) override;
  void OnGroup(Collective* group) override;

 private:
  torch::Tensor Normalize(const torch::Tensor& raw) const;
  void Greedy(const float* obs, const uint8_t* masks, int n, int32_t* actions);
  /// Q-values of a few normalised rows in plain C++ (cheaper than tensor operations there):
  /// LinearStack without the dueling head, scalar loops with it.
  void ForwardSmall(const float* x, int n, float* q) const;
  void UpdateTarget();
  /// One gradient step on a replay sample: LibTorch autograd, or the hand-written backward pass.
  UpdateStats TrainStepAutograd();
  UpdateStats TrainStepFused();
  /// Gradient-norm clip (or just the norm), finiteness check, Adam step; returns the norm.
  double ClipAndStep();

  int obs_dim_, mask_width_ = 0;
  std::vector<int64_t> nvec_;
  DqnConfig config_;
  int64_t total_steps_;
  int64_t imitation_steps_ = 0;
  QNetwork q_{nullptr}, target_{nullptr};
  /// The Q-network as the imitation phase left it (imitation_anchor_coef > 0, after the phase).
  QNetwork anchor_{nullptr};
  void MakeAnchor();
  /// The action each sampled row's margin loss imitates, [B, D], and the loss's weight; false
  /// when no margin loss applies (no imitation, or after the phase without an anchor).
  bool MarginTargets(const float* obs_normalised, const int64_t* stored_actions, int64_t bs,
                     std::vector<int64_t>* expert, double* coef);
  std::unique_ptr<FlatAdam> optimizer_;
  bool replay_ready_ = false;  ///< every rank's replay holds a batch (latched)
  NStepAccumulator nstep_;
  ReplayBuffer replay_;
  int64_t updates_ = 0;
  int64_t due_rounds_ = 0, due_target_updates_ = 0;  ///< noted by DoPrepareUpdate, checkpointed
  std::vector<uint8_t> explore_;
  static constexpr int kSmallBatch = 8;
  /// Greedy Q-values of up to this many rows without LibTorch (dueling networks above
  /// kSmallBatch rows: LinearStack and DuelingCombine; within float rounding of QValues).
  static constexpr int kStackBatch = 256;
  std::vector<float> small_raw_;
  std::vector<float> small_q_;
  mutable std::vector<float> small_in_, small_out_;
  std::vector<float> scratch_;
  /// Dueling networks in the fused update: the advantage and value layers side by side in one
  /// layer of W + 1 outputs (copied from the network before each update), the dueling
  /// combination and its gradient by hand.
  void RefreshDuelingHeads();
  /// q [n, W] = V + A - mean_branch(A) from the stacked head's output raw [n, W + 1].
  void DuelingCombine(const float* raw, int64_t n, float* q) const;
  /// The networks' layers (the trunk and the plain or stacked dueling head): the fused update,
  /// and greedy acting without the dueling head.
  mutable LinearStack q_stack_;
  LinearStack target_stack_;
  torch::nn::Linear q_head_{nullptr}, target_head_{nullptr};  ///< dueling: [A; V] stacked
  struct FusedBuffers {
    ReplayBuffer::RawBatch batch;
    std::vector<float> q, q_next_target, q_next_select, dq, td, raw, draw;
    std::vector<int64_t> expert;
  } fused_;
};

}  // namespace loantwin
