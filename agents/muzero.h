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
#include "agents/mcts.h"
#include "agents/muzero_net.h"
#include "agents/muzero_targets.h"
#include "agents/normalizer.h"
#include "agents/sum_tree.h"

namespace loantwin {

struct MuZeroConfig {
  double learning_rate = 3e-3;         ///< Adam step size
  double weight_decay = 1e-4;          ///< L2 penalty
  int latent_dim = 32;                 ///< latent state size
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
  bool normalize_obs = false;  ///< running mean/std observation normalisation
};

class MuZeroAgent : public Agent {
 public:
  /// cadence: environment steps per decision of the role (search discount gamma^cadence).
  MuZeroAgent(int obs_dim, int num_actions, int num_envs, int cadence, const MuZeroConfig& config,
              uint64_t seed, int64_t total_steps);

  std::string algorithm() const override { return "muzero"; }
  /// Deterministic: search without noise, most visited action. Otherwise as in training.
  void Act(const float* obs, const uint8_t* masks, int n, bool deterministic,
           int32_t* actions) override;
  void ActAndRecord(const AgentBatch& batch, int32_t* actions) override;
  void Observe(const AgentFeedback& feedback) override;
  UpdateStats MaybeUpdate(const AgentBatch& current) override;
  /// The acting path: masked argmax of the prediction network's policy on the representation.
  torch::jit::Module Export(const RoleSpec& role) const override;
  /// The full model (initial_inference, recurrent_inference) for planners.
  torch::jit::Module ExportModel() const;
  ExportSummary Summary() const override;
  std::vector<torch::Tensor> Parameters() const override { return net_->parameters(); }
  void Save(torch::serialize::OutputArchive& archive) const override;
  void Load(torch::serialize::InputArchive& archive) override;

  UpdateStats TrainStep();
  /// Greedy action of the prediction network (no search), [n]; the exported acting path.
  void PriorActions(const float* obs, const uint8_t* masks, int n, int32_t* actions);
  double temperature() const;
  int64_t games() const { return static_cast<int64_t>(games_.size()); }
  int64_t training_steps() const { return training_steps_; }
  const MuZeroConfig& config() const { return config_; }
  MuZeroNet& net() { return net_; }
  const RunningMeanStd& obs_rms() const { return obs_rms_; }

 private:
  void Search(const float* obs, const uint8_t* masks, int n, bool explore, int32_t* actions,
              bool record, const uint8_t* acting);
  void CloseGame(int i, bool terminated, float final_value);
  std::pair<int, int> SamplePosition(double* probability);
  /// Normalised copy of raw observation rows [n, obs_dim] (identity when normalize_obs is off).
  std::vector<float> Normalized(const float* obs, int64_t n) const;

  int obs_dim_, num_actions_, num_envs_, cadence_;
  MuZeroConfig config_;
  int64_t total_steps_;
  CategoricalSupport support_;
  MuZeroNet net_{nullptr}, target_{nullptr};
  std::unique_ptr<torch::optim::Adam> optimizer_;
  std::unique_ptr<BatchedMcts> mcts_;
  std::vector<GameHistory> open_;               ///< per instance, the episode being played
  std::vector<uint8_t> pending_;                ///< a decision awaits its rewards
  std::vector<double> pending_discount_;        ///< gamma^(steps since the decision)
  std::vector<GameHistory> games_;              ///< ring of finished episodes
  std::vector<std::vector<float>> priorities_;  ///< per game and position (prioritised)
  std::unique_ptr<SumTree> game_tree_;          ///< per game: sum of its priorities (or its length)
  int64_t next_game_ = 0;
  uint64_t rng_key_;
  uint64_t rng_counter_ = 0, search_counter_ = 0;
  int64_t env_steps_ = 0, training_steps_ = 0;
  RunningMeanStd obs_rms_;
  std::vector<float> scratch_obs_;
  std::vector<uint8_t> scratch_masks_;
  std::vector<int> rows_;
};

}  // namespace loantwin
