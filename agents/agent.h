#pragma once
// The interface every learning agent implements (PPO now; DQN and MuZero-style next). One agent
// drives one role of a vectorised environment. A trainer's loop, per environment step:
//
//   agent.ActAndRecord(batch, actions);   // explore; remember the decisions of acting instances
//   env.Act(role, actions); ... env.Step();
//   agent.Observe(feedback);              // the role's rewards and the episode ends
//   agent.MaybeUpdate(current);           // learn when enough experience has been collected
//
// Inference (evaluation, serving) uses Act(..., deterministic = true) or the Export()ed module.

#include <torch/script.h>
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>

namespace loantwin {

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
};

/// What followed the last recorded decision: the environment step's outcome for the role.
struct AgentFeedback {
  int n = 0;
  const float* rewards = nullptr;           ///< [n], the role's scalar reward
  const uint8_t* terminated = nullptr;      ///< [n]
  const uint8_t* truncated = nullptr;       ///< [n]
  const float* final_critic_obs = nullptr;  ///< [n, critic_dim], rows valid where truncated
};

class Agent {
 public:
  virtual ~Agent() = default;
  virtual std::string algorithm() const = 0;
  /// Batched decision for n instances, masked; exploration when `deterministic` is false.
  virtual void Act(const float* obs, const uint8_t* masks, int n, bool deterministic,
                   int32_t* actions) = 0;
  /// Training-time decision: explores and records what learning needs for acting instances.
  virtual void ActAndRecord(const AgentBatch& batch, int32_t* actions) = 0;
  /// Rewards and episode ends of the step after the last ActAndRecord.
  virtual void Observe(const AgentFeedback& feedback) = 0;
  /// Learns if enough experience has been collected; `current` is the state after the step (for
  /// bootstrapping). Returns the update's statistics, empty when nothing was learned.
  virtual UpdateStats MaybeUpdate(const AgentBatch& current) = 0;
  /// The greedy policy as a self-contained TorchScript module (docs/export.md).
  virtual torch::jit::Module Export(const RoleSpec& role) const = 0;
  /// Saves / restores everything needed to continue training exactly: networks, optimiser,
  /// normalisers, random-stream positions, collected experience, counters.
  virtual void Save(torch::serialize::OutputArchive& archive) const = 0;
  virtual void Load(torch::serialize::InputArchive& archive) = 0;
};

}  // namespace loantwin
