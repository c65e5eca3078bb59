#pragma once
// The base of every learning agent (PPO, DQN, MuZero; agents/agent_registry.h lists them). One
// agent drives one role of a vectorised environment. A trainer's loop, per environment step:
//
//   agent.ActAndRecord(batch, actions);   // explore; remember the decisions of acting instances
//   env.Act(role, actions); ... env.Step();
//   agent.Observe(feedback);              // the role's rewards and the episode ends
//   agent.MaybeUpdate(current);           // learn when enough experience has been collected
//
// (or PrepareUpdate after Observe and RunPreparedUpdate during the next environment step: the
// trainer's `overlap_updates`)
//
// Inference (evaluation, serving) uses Act(..., deterministic = true) or the Export()ed module.
//
// The public methods are non-virtual: they check their arguments, keep what every agent shares
// (the random stream's counter, the environment-step counter, the observation normaliser and
// their checkpointing) and call one protected hook each (DoAct, DoObserve, ...), which is all
// an algorithm implements (docs/architecture.md, "How to add an agent").

#include <torch/script.h>
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "agents/normalizer.h"
#include "core/counter_rng.h"

namespace loantwin {

class Collective;
struct RoleSpec;

/// Scalars an update reports (CleanRL names: "losses/value_loss", "losses/approx_kl", ...).
using UpdateStats = std::map<std::string, double>;

/// One decision point of a role over n instances (row-major buffers of the environment).
struct AgentBatch {
  int n = 0;
  const float* obs = nullptr;         ///< [n, obs_dim], raw (the agent normalises)
  const float* critic_obs = nullptr;  ///< [n, critic_dim]: the global state for a centralised
                                      ///< critic, else the same as obs
  const uint8_t* masks = nullptr;     ///< [n, mask_width], 1 = allowed
  const uint8_t* acting = nullptr;    ///< [n], instances where the role decides this step
  /// [n, action_dims]: the role's rule-based baseline decisions for this step, given to
  /// ActAndRecord while the agent wants_demonstrations() (the imitation warm start).
  const int32_t* demonstrations = nullptr;
};

/// What followed the last recorded decision: the environment step's outcome for the role.
struct AgentFeedback {
  int n = 0;
  const float* rewards = nullptr;           ///< [n], the role's scalar reward
  const uint8_t* terminated = nullptr;      ///< [n]
  const uint8_t* truncated = nullptr;       ///< [n]
  const float* final_critic_obs = nullptr;  ///< [n, critic_dim], rows valid where truncated
  const float* final_obs = nullptr;         ///< [n, obs_dim], rows valid where the episode ended
  const uint8_t* final_masks = nullptr;     ///< [n, mask_width], rows valid where it ended
  /// Agents that learn costs apart from rewards (learns_costs()): [n, num_costs], the step's
  /// cost of each constraint pricing the role, and [num_costs] their multipliers (lambda).
  const float* costs = nullptr;
  const float* cost_weights = nullptr;
};

/// What an exported policy looks like, for the manifest (docs/export.md).
struct ExportSummary {
  std::vector<std::string> methods;  ///< TorchScript methods and their signatures
  bool normalises_inside = false;    ///< observation normalisation is part of the module
  std::vector<int64_t> hidden;       ///< hidden layer widths
  std::string activation;
  std::map<std::string, std::string> options;  ///< algorithm options that shape the network
};

class Agent {
 public:
  virtual ~Agent() = default;
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  /// The registry name of the algorithm ("ppo", "dqn", "muzero", ...).
  virtual std::string algorithm() const = 0;
  /// True if the agent wants the global state (all roles' observations) as critic_obs.
  virtual bool wants_global_state() const { return false; }
  /// True if the agent takes constraint costs and multipliers in AgentFeedback and prices them
  /// itself (PPO's cost critic); otherwise the trainer hands it the Lagrangian reward
  /// r - sum_k lambda_k c_k.
  virtual bool learns_costs() const { return false; }
  /// True while the agent imitates the role's rule-based baseline (PPO's imitation_fraction):
  /// the next ActAndRecord needs batch.demonstrations, and the actions it returns are those.
  virtual bool wants_demonstrations() const { return false; }

  /// Batched decision for n instances, masked; exploration when `deterministic` is false.
  void Act(const float* obs, const uint8_t* masks, int n, bool deterministic, int32_t* actions);
  /// Training-time decision: explores and records what learning needs for acting instances.
  void ActAndRecord(const AgentBatch& batch, int32_t* actions);
  /// Rewards and episode ends of the step after the last ActAndRecord; counts env_steps.
  void Observe(const AgentFeedback& feedback);
  /// Learns if enough experience has been collected; `current` is the state after the step (for
  /// bootstrapping). Returns the update's statistics, empty when nothing was learned.
  UpdateStats MaybeUpdate(const AgentBatch& current);
  /// Overlapped learning (`overlap_updates`, docs/training.md): MaybeUpdate in two halves.
  /// PrepareUpdate does, right after Observe, what must see this step's state (`current`) and
  /// notes the learning due; RunPreparedUpdate learns it later - in the trainer, during the next
  /// environment step, after the next ActAndRecord (the policy acts one update behind). The two
  /// in turn do exactly what MaybeUpdate does. Only algorithms that learn off-policy from a
  /// replay (can_defer_update(): DQN, MuZero) split it; not with a group (distributed).
  virtual bool can_defer_update() const { return false; }
  void PrepareUpdate(const AgentBatch& current);
  UpdateStats RunPreparedUpdate();
  /// The greedy policy as a self-contained TorchScript module (docs/export.md).
  torch::jit::Module Export(const RoleSpec& role) const;
  /// The decisions the Export()ed module makes, computed by the agent: Act(deterministic) for
  /// algorithms that export their acting path as is; a planner that exports its prior policy
  /// (MuZero) overrides it. Export parity is checked against this.
  virtual void ActAsExported(const float* obs, const uint8_t* masks, int n, int32_t* actions) {
    Act(obs, masks, n, /*deterministic=*/true, actions);
  }
  /// Further modules an export carries beside the policy, by name (MuZero: "model", the
  /// planning model); written as <role>_<name>.pt and listed as "<name>_file" in the manifest.
  virtual std::vector<std::pair<std::string, torch::jit::Module>> ExtraExports() const {
    return {};
  }
  virtual ExportSummary Summary() const = 0;
  /// The learnable tensors of the online networks (tests compare them across resumes).
  virtual std::vector<torch::Tensor> Parameters() const = 0;
  /// Saves / restores everything needed to continue training exactly: the shared state (random
  /// stream position, step counter, observation statistics), then the algorithm's (networks,
  /// optimiser, experience, its own counters).
  void Save(torch::serialize::OutputArchive& archive) const;
  void Load(torch::serialize::InputArchive& archive);

  /// Data-parallel training (DD-PPO style, docs/distributed.md): every rank holds an identical
  /// agent (same seed, same initial parameters) driving its own shard of environments; the
  /// gradients are averaged over the group before each optimiser step, so the parameters stay
  /// identical, and after each update the normalisers merge every rank's statistics. Ranks
  /// above 0 draw their own exploration stream. Call once, before training.
  void SetGroup(Collective* group);
  Collective* group() const { return group_; }
  /// Whether a distributed run of this algorithm can resume on another number of ranks: true
  /// where every rank's state is the shared agent plus experience it can drop (PPO, on-policy).
  /// DQN and MuZero keep each rank's replay, whose schedules count the rank's own steps.
  virtual bool CanReshard() const { return false; }
  /// After Load, resuming a run of `from` ranks on `to` (CanReshard()): the per-rank step
  /// counters are rescaled so schedules keep their place (global steps / to), the normalisers
  /// return to their last merged statistics, experience in progress is dropped; `fresh`: the
  /// state loaded was another rank's (this rank's environments start afresh).
  void Reshard(int from, int to, bool fresh);

  int obs_features() const { return static_cast<int>(obs_rms_.dim()); }
  /// Environment steps observed (summed over instances).
  int64_t env_steps() const { return env_steps_; }
  const RunningMeanStd& obs_rms() const { return obs_rms_; }

 protected:
  /// obs_dim: observation width; rng_key: the agent's counter-based random stream.
  Agent(int obs_dim, uint64_t rng_key) : obs_rms_(obs_dim), rng_key_(rng_key) {}

  virtual void DoAct(const float* obs, const uint8_t* masks, int n, bool deterministic,
                     int32_t* actions) = 0;
  virtual void DoActAndRecord(const AgentBatch& batch, int32_t* actions) = 0;
  virtual void DoObserve(const AgentFeedback& feedback) = 0;
  virtual UpdateStats DoMaybeUpdate(const AgentBatch& current) = 0;
  /// Algorithms that can_defer_update(): the halves of DoMaybeUpdate (the learning noted as due
  /// by DoPrepareUpdate is part of the algorithm's checkpointed state).
  virtual void DoPrepareUpdate(const AgentBatch& current);
  virtual UpdateStats DoRunPreparedUpdate();
  virtual torch::jit::Module DoExport(const RoleSpec& role) const = 0;
  virtual void SaveState(torch::serialize::OutputArchive& archive) const = 0;
  virtual void LoadState(torch::serialize::InputArchive& archive) = 0;

  /// Algorithms: hand the group to their optimisers and start their own normalisers' tracking
  /// (RunningMeanStd::TrackForSync).
  virtual void OnGroup(Collective* /*group*/) {}
  /// Algorithms: merge their own normalisers after an update (obs_rms_ is merged by the base).
  virtual void SyncStatistics(Collective& /*group*/) {}
  /// Algorithms that CanReshard(): rescale their own counters and drop what Reshard says.
  virtual void OnReshard(int /*from*/, int /*to*/, bool /*fresh*/) {}
  /// True on every rank when `local` holds on every rank (a collective); `local` without a group.
  bool AllRanks(bool local);

  /// The next draw of the agent's random stream.
  uint64_t NextBits() { return RandomBits(rng_key_, rng_counter_++); }

  RunningMeanStd obs_rms_;  ///< observation statistics (used when the algorithm normalises)
  uint64_t rng_key_;
  uint64_t rng_counter_ = 0;
  int64_t env_steps_ = 0;  ///< environment steps observed, summed over instances
  Collective* group_ = nullptr;
};

}  // namespace loantwin
