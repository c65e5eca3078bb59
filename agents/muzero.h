#pragma once
// MuZero-style planning agent (Schrittwieser et al. 2020) for roles with Discrete actions:
// decisions come from a batched MCTS (agents/mcts.h) over a learned model (agents/muzero_net.h);
// the model is trained on K-step unrolls of stored episodes (agents/muzero_targets.h) with
// categorical value and reward losses (agents/muzero_support.h). docs/agents/muzero.md.

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "agents/agent.h"
#include "agents/flat_adam.h"
#include "agents/mcts.h"
#include "agents/muzero_net.h"
#include "agents/muzero_targets.h"
#include "agents/normalizer.h"
#include "agents/sum_tree.h"
#include "core/config_fields.h"

namespace loantwin {

/// Defaults; every field's range and meaning: VisitFields below (docs/agents/).
struct MuZeroConfig {
  double learning_rate = 3e-3;
  double weight_decay = 1e-4;
  int latent_dim = 32;
  std::vector<int64_t> hidden = {64};  ///< hidden widths of each network
  int support_size = 10;               ///< value/reward atoms -S..S (|x| <= InverseH(S))
  int num_simulations = 25;            ///< MCTS simulations per decision
  double gamma = 0.997;                ///< discount per environment step
  int unroll_steps = 5;                ///< K
  int td_steps = 10;                   ///< n of the n-step value targets
  int batch_size = 128;                ///< unrolled positions per training step
  int buffer_size = 500;               ///< episodes kept
  double train_ratio = 0.25;           ///< training steps per environment step
  int learning_starts = 1000;          ///< environment steps before training
  int target_update_interval = 100;    ///< training steps between target network copies
  bool use_target_network = true;      ///< bootstrap values from the target network
  bool reanalyse = false;              ///< bootstrap values from the latest network instead
  double value_loss_weight = 0.25;     ///< weight of the value loss
  double max_grad_norm = 5.0;          ///< global gradient-norm clip (0 = off)
  bool prioritized = false;            ///< prioritised replay over positions
  double alpha = 1.0;                  ///< priority exponent
  double beta = 1.0;                   ///< importance-weight exponent
  double root_dirichlet_alpha = 0.25;
  double root_exploration_fraction = 0.25;
  double pb_c_init = 1.25;
  double pb_c_base = 19652;
  double temperature_start = 1.0;  ///< visit-count temperature, halved at 50% and 75% of the run
  bool gumbel = false;             ///< Gumbel MuZero root selection
  int gumbel_max_considered = 16;
  /// sigma(q) = (gumbel_c_visit + max N) x gumbel_c_scale x q with q the completed Q-values
  /// min-max normalised to [0, 1] (Danihelka et al. 2022, eq. 8): how far the search's decision
  /// and policy target move from the prior.
  double gumbel_c_visit = 50;
  double gumbel_c_scale = 1.0;
  bool normalize_obs = false;  ///< running mean/std observation normalisation
  bool fused_update = true;    ///< hand-written backward pass instead of LibTorch's autograd
  /// Imitation warm start: for this share of total_steps the role's rule-based baseline acts
  /// and each stored decision's policy target is the baseline's action (label-smoothed by
  /// imitation_smoothing over the allowed actions) instead of the search's, so the prior policy
  /// learns to copy the baseline and the value and reward heads learn its returns.
  double imitation_fraction = 0.0;
  double imitation_smoothing = 0.0;
  /// After the phase: the policy target is (1 - w) x the search policy + w x the prior of the
  /// network as the phase left it (the anchor); the cross-entropy to it is the search's plus
  /// w x KL(anchor || prior) up to a constant, keeping the policy near the baseline it copied.
  double imitation_anchor_weight = 0.0;
};

/// The hyperparameters of MuZeroConfig, listed once (core/config_fields.h): YAML keys under the
/// role's `muzero:` section, ranges and help texts.
template <typename V>
void VisitFields(MuZeroConfig& c, V&& v) {
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
  v("gumbel_c_visit", c.gumbel_c_visit, 0.0, 1e6,
    "sigma(q) = (gumbel_c_visit + max N) x gumbel_c_scale x normalised q");
  v("gumbel_c_scale", c.gumbel_c_scale, 0.0, 1e6,
    "scale of sigma(q): how far the search's decisions and targets move from the prior");
  v("normalize_obs", c.normalize_obs, "running mean/std observation normalisation");
  v("fused_update", c.fused_update,
    "hand-written backward pass of the unrolled loss (false: LibTorch autograd)");
  v("imitation_fraction", c.imitation_fraction, 0.0, 1.0,
    "share of total_steps in which the rule-based baseline acts and its decisions are the "
    "policy targets (0 = off)");
  v("imitation_smoothing", c.imitation_smoothing, 0.0, 0.5,
    "imitation with label smoothing: the target is the baseline's action with 1 - eps and eps "
    "spread over the allowed actions (needs imitation_fraction > 0)");
  v("imitation_anchor_weight", c.imitation_anchor_weight, 0.0, 1.0,
    "after the imitation phase: share of the prior policy as the phase left it in each policy "
    "target (0 = free; needs imitation_fraction > 0)");
}

/// Cross-field checks ("" or the problem): the imitation options need an imitation phase.
std::string CheckFields(const MuZeroConfig& c);

struct AgentAlgorithm;
/// The registry entry (agents/agent_registry.cc).
AgentAlgorithm MuZeroAlgorithm();

class MuZeroAgent : public Agent {
 public:
  /// cadence: environment steps per decision of the role (search discount gamma^cadence).
  MuZeroAgent(int obs_dim, int num_actions, int num_envs, int cadence, const MuZeroConfig& config,
              uint64_t seed, int64_t total_steps);

  std::string algorithm() const override { return "muzero"; }
  /// While the imitation phase lasts (imitation_fraction of total_steps).
  bool wants_demonstrations() const override { return env_steps_ < imitation_steps_; }
  int64_t imitation_steps() const { return imitation_steps_; }
  bool anchored() const { return static_cast<bool>(anchor_); }
  /// The full model (initial_inference, recurrent_inference) for planners.
  torch::jit::Module ExportModel() const;
  /// The exported module is the prior policy: PriorActions, not the search.
  void ActAsExported(const float* obs, const uint8_t* masks, int n, int32_t* actions) override {
    PriorActions(obs, masks, n, actions);
  }
  /// {"model", ExportModel()}: planning needs the model beside the acting path.
  std::vector<std::pair<std::string, torch::jit::Module>> ExtraExports() const override {
    return {{"model", ExportModel()}};
  }
  ExportSummary Summary() const override;
  std::vector<torch::Tensor> Parameters() const override { return net_->parameters(); }

  UpdateStats TrainStep();
  /// Greedy action of the prediction network (no search), [n]; the exported acting path.
  void PriorActions(const float* obs, const uint8_t* masks, int n, int32_t* actions);
  double temperature() const;
  int64_t games() const { return static_cast<int64_t>(games_.size()); }
  int64_t training_steps() const { return training_steps_; }
  const MuZeroConfig& config() const { return config_; }
  MuZeroNet& net() { return net_; }

 protected:
  /// Deterministic: search without noise, most visited action. Otherwise as in training.
  void DoAct(const float* obs, const uint8_t* masks, int n, bool deterministic,
             int32_t* actions) override;
  void DoActAndRecord(const AgentBatch& batch, int32_t* actions) override;
  void DoObserve(const AgentFeedback& feedback) override;
  UpdateStats DoMaybeUpdate(const AgentBatch& current) override;
  /// overlap_updates: the training steps due follow from the environment steps observed, which
  /// only the next Observe changes, so the first half has nothing to note.
  bool can_defer_update() const override { return true; }
  void DoPrepareUpdate(const AgentBatch&) override {}
  UpdateStats DoRunPreparedUpdate() override { return DoMaybeUpdate(AgentBatch{}); }
  /// The acting path: masked argmax of the prediction network's policy on the representation.
  torch::jit::Module DoExport(const RoleSpec& role) const override;
  void SaveState(torch::serialize::OutputArchive& archive) const override;
  void LoadState(torch::serialize::InputArchive& archive) override;
  void OnGroup(Collective* group) override;

 private:
  /// demonstrations (the imitation phase, recording only): the actions taken and imitated.
  void Search(const float* obs, const uint8_t* masks, int n, bool explore, int32_t* actions,
              bool record, const uint8_t* acting, const int32_t* demonstrations = nullptr);
  void CloseGame(int i, bool terminated, float final_value);
  std::pair<int, int> SamplePosition(double* probability);
  /// One training step's unrolled targets, per sample b and step k at b (K + 1) + k.
  struct UnrollBatch {
    const std::vector<float>& obs0;                            ///< [B, obs] normalised
    const std::vector<int64_t>& actions;                       ///< [B, K]
    const std::vector<float>&values, &rewards, &vw, &rw, &pw;  ///< [B, K + 1]
    const std::vector<float>& policies;                        ///< [B, K + 1, A]
    const std::vector<float>& weights;                         ///< [B] importance weights
  };
  struct UnrollLosses {
    double value = 0, reward = 0, policy = 0, total = 0;  ///< batch means (total: weighted)
    std::vector<float> root_values;                       ///< [B] decoded root value predictions
  };
  /// The loss of a batch and its gradient in the optimiser's (zeroed) gradient buffer, by
  /// LibTorch's autograd or by the hand-written backward pass (MuZeroAgent.FusedUpdateMatches...).
  UnrollLosses UnrollGradAutograd(const UnrollBatch& batch);
  UnrollLosses UnrollGradFused(const UnrollBatch& batch);
  /// Normalised copy of raw observation rows [n, obs_dim] (identity when normalize_obs is off).
  std::vector<float> Normalized(const float* obs, int64_t n) const;

  int obs_dim_, num_actions_, num_envs_, cadence_;
  MuZeroConfig config_;
  int64_t total_steps_;
  CategoricalSupport support_;
  MuZeroNetConfig net_config_;
  MuZeroNet net_{nullptr}, target_{nullptr};
  int64_t imitation_steps_ = 0;
  /// The network as the imitation phase left it (imitation_anchor_weight > 0, after the phase).
  MuZeroNet anchor_{nullptr};
  void MakeAnchor();
  std::vector<float> anchor_latent_, anchor_value_, anchor_logits_, policy_target_;
  std::unique_ptr<FlatAdam> optimizer_;
  bool games_ready_ = false;  ///< every rank has stored a game (latched)
  std::unique_ptr<BatchedMcts> mcts_;
  std::vector<GameHistory> open_;               ///< per instance, the episode being played
  std::vector<uint8_t> pending_;                ///< a decision awaits its rewards
  std::vector<double> pending_discount_;        ///< gamma^(steps since the decision)
  std::vector<GameHistory> games_;              ///< ring of finished episodes
  std::vector<std::vector<float>> priorities_;  ///< per game and position (prioritised)
  std::unique_ptr<SumTree> game_tree_;          ///< per game: sum of its priorities (or its length)
  int64_t next_game_ = 0;
  uint64_t search_counter_ = 0;
  int64_t training_steps_ = 0;
  /// Buffers of the hand-written update, reused between steps.
  struct FusedScratch {
    std::vector<float> value_t, reward_t, latent, repr_out, pred_out, d_pred, d_latent, d_in,
        d_repr;
    std::vector<std::vector<float>> dyn_in, dyn_out, d_dyn;
    std::vector<LatentScaling> scaling;
    LinearStack::Tape repr_tape, pred_tape;
    std::vector<LinearStack::Tape> dyn_tape;
  } fused_;
  std::vector<float> scratch_obs_;
  std::vector<uint8_t> scratch_masks_;
  std::vector<int> rows_;
};

}  // namespace loantwin
