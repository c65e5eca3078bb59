#pragma once
// Experience replay for value-based agents.
//
// NStepAccumulator turns a role's decisions into n-step transitions per environment instance. A
// decision's return collects every environment step's reward until the n-th later decision of
// the same instance, discounted per environment step, so roles with a cadence (a quarterly role
// collects three months of reward per decision) and n-step returns compose:
//   R = sum_t gamma^(t - t0) r_t,   discount = gamma^(steps elapsed),   next = obs at decision n.
// At an episode end every pending decision is emitted with a shorter return: bootstrapped from
// the final observation when the episode was truncated (time limit), with discount 0 when it
// terminated.
//
// ReplayBuffer stores transitions in tensors allocated once at the buffer's capacity (memory is
// bounded; the oldest transitions are overwritten) and samples uniformly or proportionally to
// priority (Schaul et al. 2016) with importance-sampling weights.

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "agents/sum_tree.h"

namespace loantwin {

class StateWriter;
class StateReader;

/// A finished transition, as the accumulator hands it to its sink (pointers valid during the call).
struct TransitionView {
  const float* obs;
  const int32_t* action;
  float reward;    ///< discounted sum of the rewards between the decision and `next_obs`
  float discount;  ///< gamma^(steps elapsed); 0 when the episode terminated
  const float* next_obs;
  const uint8_t* next_mask;
};

class NStepAccumulator {
 public:
  using Sink = std::function<void(const TransitionView&)>;
  NStepAccumulator(int num_envs, int obs_dim, int action_dims, int n, double gamma);

  /// Instance i decides again (its episode goes on): if n decisions are pending, the oldest is
  /// complete and goes to the sink with next = (obs, mask).
  void Advance(int i, const float* obs, const uint8_t* mask, const Sink& sink);
  /// Records instance i's decision (call after Advance).
  void Open(int i, const float* obs, const int32_t* action);
  /// Reward of one environment step for instance i (every pending decision collects it).
  void AddReward(int i, float reward);
  /// Episode end: every pending decision goes to the sink, next = the final observation.
  void End(int i, bool truncated, const float* final_obs, const uint8_t* final_mask,
           const Sink& sink);
  int pending(int i) const { return count_[i]; }
  void Clear();

  void SaveState(StateWriter& w) const;
  void LoadState(StateReader& r);

 private:
  void Emit(int i, int slot, float discount, const float* next_obs, const uint8_t* next_mask,
            const Sink& sink);
  int num_envs_, obs_dim_, action_dims_, n_;
  double gamma_;
  std::vector<int> head_, count_;   ///< ring of n pending decisions per instance
  std::vector<float> obs_;          ///< [num_envs, n, obs_dim]
  std::vector<int32_t> actions_;    ///< [num_envs, n, action_dims]
  std::vector<double> ret_, disc_;  ///< [num_envs, n] return so far, gamma^(steps so far)
};

class ReplayBuffer {
 public:
  struct Options {
    int64_t capacity = 10000;
    bool prioritized = false;
    double alpha = 0.6;          ///< priority exponent
    double priority_eps = 1e-6;  ///< added to |TD error| so no transition gets priority 0
  };
  ReplayBuffer(int obs_dim, int action_dims, int mask_width, const Options& options);

  void Add(const TransitionView& t);
  int64_t size() const { return size_; }
  int64_t capacity() const { return options_.capacity; }
  /// Bytes held by the transition tensors (constant: allocated at construction).
  int64_t bytes() const;

  struct Batch {
    torch::Tensor obs, actions, rewards, discounts, next_obs, next_masks, weights;
    std::vector<int64_t> indices;
  };
  /// Samples `batch` transitions with the counter-based stream (key, *counter): uniformly with
  /// replacement, or proportionally to priority (one stratum per sample) with importance
  /// weights (N P(i))^-beta normalised by the largest possible weight. Requires size() > 0.
  Batch Sample(int64_t batch, double beta, uint64_t key, uint64_t* counter) const;
  /// The same sample (same stream, same transitions and weights) copied into plain arrays
  /// reused between calls: the DQN's fused update, without a dozen tensor operations.
  struct RawBatch {
    std::vector<float> obs, next_obs, rewards, discounts, weights;
    std::vector<int64_t> actions, indices;
    std::vector<uint8_t> next_masks;
  };
  void SampleInto(int64_t batch, double beta, uint64_t key, uint64_t* counter, RawBatch* out) const;
  /// New priorities (|TD error| + eps)^alpha for sampled transitions.
  void UpdatePriorities(const std::vector<int64_t>& indices, const float* abs_td);
  double priority(int64_t i) const { return tree_ ? tree_->Get(i) : 1.0; }
  void Clear();

  void Save(torch::serialize::OutputArchive& archive) const;
  void Load(torch::serialize::InputArchive& archive);

 private:
  /// Indices and importance weights of a sample (Sample and SampleInto).
  void SampleIndices(int64_t batch, double beta, uint64_t key, uint64_t* counter,
                     std::vector<int64_t>* indices, float* weights) const;

  int obs_dim_, action_dims_, mask_width_;
  Options options_;
  torch::Tensor obs_, next_obs_, actions_, rewards_, discounts_, next_masks_;
  std::unique_ptr<SumTree> tree_;
  double max_priority_ = 1.0;
  int64_t pos_ = 0, size_ = 0;
};

}  // namespace loantwin
