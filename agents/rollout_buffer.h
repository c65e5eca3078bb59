#pragma once
// On-policy rollout storage for one role with GAE(lambda).
//
// A sample starts when the role decides for an instance (Open) and collects the rewards of the
// following steps, discounted, until the role decides again (a quarterly role's sample spans
// three months; its bootstrap uses gamma^3). Steps where the role does not act add no sample.
// An episode end closes the instance's sample: terminated -> no bootstrap; truncated -> the
// value of the final observation is added, discounted (CleanRL/SB3 style time-limit handling).
// Finish() bootstraps samples still open at the end of the rollout from V(current state) and
// computes advantages and returns per instance.

#include <cstdint>
#include <vector>

#include "core/binary_state.h"

namespace loantwin {

class RolloutBuffer {
 public:
  RolloutBuffer(int num_envs, int obs_dim, int critic_dim, int action_dims, int mask_width,
                double gamma, double gae_lambda);

  void Clear();
  /// The role decided for instance i: starts a sample (closing the previous open one).
  void Open(int i, const float* obs, const float* critic_obs, const uint8_t* mask,
            const int32_t* action, float log_prob, float value);
  /// Reward of the step just taken for instance i (added to its open sample, discounted).
  void AddReward(int i, float reward);
  /// Instance i's episode ended this step; final_value = V(final observation) if truncated.
  void EndEpisode(int i, bool truncated, float final_value);
  /// True if instance i has a sample still collecting rewards.
  bool IsOpen(int i) const { return open_[i] >= 0; }
  /// Computes advantages and returns; last_values[i] = V(current state) of instance i.
  void Finish(const float* last_values);

  /// In-progress rollouts are part of a checkpoint (resume continues exactly).
  void SaveState(StateWriter& w) const;
  void LoadState(StateReader& r);

  int size() const { return static_cast<int>(log_probs_.size()); }
  int obs_dim() const { return obs_dim_; }
  int critic_dim() const { return critic_dim_; }
  int action_dims() const { return action_dims_; }
  int mask_width() const { return mask_width_; }
  const std::vector<float>& obs() const { return obs_; }
  const std::vector<float>& critic_obs() const { return critic_obs_; }
  const std::vector<uint8_t>& masks() const { return masks_; }
  const std::vector<int32_t>& actions() const { return actions_; }
  const std::vector<float>& log_probs() const { return log_probs_; }
  const std::vector<float>& values() const { return values_; }
  const std::vector<float>& advantages() const { return advantages_; }
  const std::vector<float>& returns() const { return returns_; }

 private:
  int n_, obs_dim_, critic_dim_, action_dims_, mask_width_;
  double gamma_, lambda_;
  std::vector<float> obs_, critic_obs_, log_probs_, values_, rewards_, discounts_;
  std::vector<float> advantages_, returns_;
  std::vector<uint8_t> masks_, dones_;
  std::vector<int32_t> actions_;
  std::vector<std::vector<int>> sequence_;  ///< per instance, its samples in order
  std::vector<int> open_;                   ///< open sample per instance, -1 if none
  std::vector<double> running_discount_;    ///< gamma^k of the open sample
};

}  // namespace loantwin
