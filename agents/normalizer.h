#pragma once
// Running mean / variance (parallel Welford update in double precision), used to normalise
// observations and to scale rewards by the standard deviation of the discounted return.

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace loantwin {

class Collective;

class RunningMeanStd {
 public:
  explicit RunningMeanStd(int64_t dim = 1, double epsilon = 1e-4);
  /// Adds a batch [n, dim] (row-major).
  void Update(const float* batch, int64_t n);
  /// out = clip((x - mean) / sqrt(var + 1e-8), -clip, clip), [n, dim].
  void Normalize(const float* x, int64_t n, float* out, double clip = 10.0) const;
  int64_t dim() const { return static_cast<int64_t>(mean_.size()); }
  const std::vector<double>& mean() const { return mean_; }
  const std::vector<double>& var() const { return var_; }
  double count() const { return count_; }
  void Save(torch::serialize::OutputArchive& a, const std::string& prefix) const;
  void Load(torch::serialize::InputArchive& a, const std::string& prefix);

  /// Data-parallel training: from now on also keeps the moments this rank added since the last
  /// Sync, so Sync can merge every rank's additions into the statistics of the last Sync.
  void TrackForSync();
  /// Every rank ends with the same statistics: those of the last Sync merged with each rank's
  /// additions since, in rank order (a collective: every rank calls it at the same point).
  void Sync(Collective& group);
  /// Distributed: drops this rank's additions since the last Sync (every rank then holds the
  /// merged statistics of the last Sync; resuming on another number of ranks). No-op untracked.
  void RevertToSynced();

 private:
  /// Merges n samples with these per-feature moments into (mean, var, count).
  static void Merge(std::vector<double>& mean, std::vector<double>& var, double& count,
                    const double* batch_mean, const double* batch_var, double n);
  std::vector<double> mean_, var_;
  double count_;
  bool tracking_ = false;
  std::vector<double> base_mean_, base_var_, pending_mean_, pending_var_;
  double base_count_ = 0, pending_count_ = 0;
};

/// Scales rewards by the running std of the discounted return per environment instance (as
/// SB3 VecNormalize / CleanRL NormalizeReward); returns are reset at episode ends.
class RewardScaler {
 public:
  RewardScaler(int num_envs, double gamma);
  /// Scales rewards in place; `done` marks instances whose episode ended at this step.
  void Scale(float* rewards, const uint8_t* done, int n, double clip = 10.0);
  /// The factor of the last Scale() call (1 before any).
  double last_scale() const { return last_scale_; }
  void Save(torch::serialize::OutputArchive& a, const std::string& prefix) const;
  void Load(torch::serialize::InputArchive& a, const std::string& prefix);
  /// The return statistics' RunningMeanStd::TrackForSync / Sync (the per-instance returns stay
  /// each rank's own).
  void TrackForSync() { rms_.TrackForSync(); }
  void Sync(Collective& group) { rms_.Sync(group); }
  /// Resuming on another number of ranks: the statistics of the last Sync; `fresh` (a new
  /// shard of environments): the per-instance returns start at zero.
  void Reshard(bool fresh) {
    rms_.RevertToSynced();
    if (fresh) std::fill(returns_.begin(), returns_.end(), 0.0);
  }

 private:
  double gamma_;
  std::vector<double> returns_;
  RunningMeanStd rms_;
  double last_scale_ = 1.0;
};

}  // namespace loantwin
