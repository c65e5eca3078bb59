#pragma once
// Running mean / variance (parallel Welford update in double precision), used to normalise
// observations and to scale rewards by the standard deviation of the discounted return.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace loantwin {

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

 private:
  std::vector<double> mean_, var_;
  double count_;
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

 private:
  double gamma_;
  std::vector<double> returns_;
  RunningMeanStd rms_;
  double last_scale_ = 1.0;
};

}  // namespace loantwin
