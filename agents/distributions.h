#pragma once
// Action distributions over batches. Categorical and MultiCategorical take logits laid out like
// the environment's action masks (one block of n_d logits per action component) and an
// optional mask (uint8/bool, 1 = allowed): masked logits are set to -1e8, so masked actions get
// probability 0 and contribute nothing to the entropy. Sampling takes uniforms from the
// caller (a counter-based stream) so results are reproducible and resumable.

#include <torch/torch.h>

#include <vector>

namespace loantwin {

class MultiCategorical {
 public:
  /// logits [B, sum(nvec)]; mask [B, sum(nvec)] or undefined.
  MultiCategorical(torch::Tensor logits, std::vector<int64_t> nvec, torch::Tensor mask = {});
  /// uniforms [B, D] in [0, 1) -> actions [B, D] int64 (inverse CDF per component).
  torch::Tensor Sample(const torch::Tensor& uniforms) const;
  /// Most likely allowed action per component, [B, D].
  torch::Tensor Mode() const;
  /// Sum over components of log p(a_d), [B]; actions [B, D] int64.
  torch::Tensor LogProb(const torch::Tensor& actions) const;
  /// Sum over components of the entropies, [B].
  torch::Tensor Entropy() const;
  /// Log-probabilities of every component at once, [B, D, max n_d]: a component with fewer
  /// values than the widest is padded with probability 0 (log-probability about -1e8).
  const torch::Tensor& log_probs() const { return log_probs_; }

 private:
  // All components in one [B, D, max n_d] block, so every method is a fixed handful of tensor
  // operations however many components the action has (a per-component loop made PPO's update
  // cost grow with D: LibTorch's per-operation overhead dominates small networks). Padding
  // entries hold the masked value -1e8: exp() of them is exactly 0, so log-softmax, entropy and
  // sampling are those of the components alone.
  std::vector<int64_t> nvec_;
  int64_t width_ = 0;        ///< max n_d
  torch::Tensor log_probs_;  ///< [B, D, width_]
};

/// Categorical = MultiCategorical with one component.
inline MultiCategorical MaskedCategorical(torch::Tensor logits, torch::Tensor mask = {}) {
  const int64_t n = logits.size(1);
  return MultiCategorical(std::move(logits), {n}, std::move(mask));
}

/// Diagonal Gaussian for continuous actions: mean [B, D], log_std [D] (state-independent).
class DiagGaussian {
 public:
  DiagGaussian(torch::Tensor mean, torch::Tensor log_std);
  /// normals [B, D] standard normal draws -> actions.
  torch::Tensor Sample(const torch::Tensor& normals) const;
  torch::Tensor Mode() const { return mean_; }
  torch::Tensor LogProb(const torch::Tensor& actions) const;  ///< [B]
  torch::Tensor Entropy() const;                              ///< [B]

 private:
  torch::Tensor mean_, log_std_;
};

}  // namespace loantwin
