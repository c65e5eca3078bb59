#pragma once
// The interface every learning agent implements (PPO, DQN; MuZero-style next). One agent
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
#include <vector>

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
  const float* final_obs = nullptr;         ///< [n, obs_dim], rows valid where the episode ended
  const uint8_t* final_masks = nullptr;     ///< [n, mask_width], rows valid where it ended
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
  virtual std::string algorithm() const = 0;
  /// True if the agent wants the global state (all roles' observations) as critic_obs.
  virtual bool wants_global_state() const { return false; }
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
  virtual ExportSummary Summary() const = 0;
  /// The learnable tensors of the online networks (tests compare them across resumes).
  virtual std::vector<torch::Tensor> Parameters() const = 0;
  /// Saves / restores everything needed to continue training exactly: networks, optimiser,
  /// normalisers, random-stream positions, collected experience, counters.
  virtual void Save(torch::serialize::OutputArchive& archive) const = 0;
  virtual void Load(torch::serialize::InputArchive& archive) = 0;
};

}  // namespace loantwin
