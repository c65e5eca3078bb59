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
//
// With num_costs > 0 every sample also carries that many cost channels (constraint costs,
// docs/training.md "Constraints"): discounted cost sums, cost values, and their own GAE
// advantages and returns, for PPO-Lagrangian's cost critic.

#include <cstdint>
#include <vector>

#include "core/binary_state.h"

namespace loantwin {

class RolloutBuffer {
 public:
  RolloutBuffer(int num_envs, int obs_dim, int critic_dim, int action_dims, int mask_width,
                double gamma, double gae_lambda, int num_costs = 0);

  void Clear();
  /// The role decided for instance i: starts a sample (closing the previous open one).
  /// cost_values: [num_costs] cost values of the state (null if num_costs is 0).
  void Open(int i, const float* obs, const float* critic_obs, const uint8_t* mask,
            const int32_t* action, float log_prob, float value, const float* cost_values = nullptr);
  /// Reward (and [num_costs] costs) of the step just taken for instance i (added to its open
  /// sample, discounted).
  void AddReward(int i, float reward, const float* costs = nullptr);
  /// Instance i's episode ended this step; final_value = V(final observation) if truncated,
  /// final_cost_values likewise for the cost channels.
  void EndEpisode(int i, bool truncated, float final_value,
                  const float* final_cost_values = nullptr);
  /// True if instance i has a sample still collecting rewards.
  bool IsOpen(int i) const { return open_[i] >= 0; }
  /// Computes advantages and returns; last_values[i] = V(current state) of instance i and
  /// last_cost_values [n, num_costs] the cost values.
  void Finish(const float* last_values, const float* last_cost_values = nullptr);

  /// In-progress rollouts are part of a checkpoint (resume continues exactly).
  void SaveState(StateWriter& w) const;
  void LoadState(StateReader& r);

  int size() const { return static_cast<int>(log_probs_.size()); }
  int obs_dim() const { return obs_dim_; }
  int critic_dim() const { return critic_dim_; }
  int action_dims() const { return action_dims_; }
  int mask_width() const { return mask_width_; }
  int num_costs() const { return num_costs_; }
  const std::vector<float>& obs() const { return obs_; }
  const std::vector<float>& critic_obs() const { return critic_obs_; }
  const std::vector<uint8_t>& masks() const { return masks_; }
  const std::vector<int32_t>& actions() const { return actions_; }
  const std::vector<float>& log_probs() const { return log_probs_; }
  const std::vector<float>& values() const { return values_; }
  const std::vector<float>& advantages() const { return advantages_; }
  const std::vector<float>& returns() const { return returns_; }
  /// [size, num_costs] each.
  const std::vector<float>& cost_values() const { return cost_values_; }
  const std::vector<float>& cost_advantages() const { return cost_advantages_; }
  const std::vector<float>& cost_returns() const { return cost_returns_; }

 private:
  /// GAE over one channel: rewards r[k * stride], values v[k * stride], bootstrap last[i *
  /// stride]; advantages and returns at the same offsets.
  void Gae(const float* r, const float* v, const float* last, int stride, float* adv,
           float* ret) const;

  int n_, obs_dim_, critic_dim_, action_dims_, mask_width_, num_costs_;
  double gamma_, lambda_;
  std::vector<float> obs_, critic_obs_, log_probs_, values_, rewards_, discounts_;
  std::vector<float> advantages_, returns_;
  std::vector<float> costs_, cost_values_, cost_advantages_, cost_returns_;
  std::vector<uint8_t> masks_, dones_;
  std::vector<int32_t> actions_;
  std::vector<std::vector<int>> sequence_;  ///< per instance, its samples in order
  std::vector<int> open_;                   ///< open sample per instance, -1 if none
  std::vector<double> running_discount_;    ///< gamma^k of the open sample
};

}  // namespace loantwin
