#pragma once
// The interface every learning agent implements (PPO now; DQN and MuZero-style next). One agent
// drives one role of a vectorised environment.

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>

namespace loantwin {

/// Scalars an update reports (CleanRL names: "losses/value_loss", "losses/approx_kl", ...).
using UpdateStats = std::map<std::string, double>;

class Agent {
 public:
  virtual ~Agent() = default;
  virtual std::string algorithm() const = 0;
  /// Batched decision for n instances: obs [n, obs_dim] (raw: the agent normalises),
  /// masks [n, mask_width] (1 = allowed) -> actions [n, action_dims]. Exploration when
  /// `deterministic` is false.
  virtual void Act(const float* obs, const uint8_t* masks, int n, bool deterministic,
                   int32_t* actions) = 0;
  /// Saves / restores everything needed to continue training exactly: networks, optimiser,
  /// normalisers, random-stream positions, counters.
  virtual void Save(torch::serialize::OutputArchive& archive) const = 0;
  virtual void Load(torch::serialize::InputArchive& archive) = 0;
};

}  // namespace loantwin
