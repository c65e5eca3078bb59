#include "agents/distributions.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/check.h"

namespace loantwin {

MultiCategorical::MultiCategorical(torch::Tensor logits, std::vector<int64_t> nvec,
                                   torch::Tensor mask)
    : nvec_(std::move(nvec)) {
  int64_t total = 0;
  for (int64_t n : nvec_) total += n, width_ = std::max(width_, n);
  LT_CHECK_EQ(logits.dim(), 2);
  LT_CHECK_EQ(logits.size(1), total);  // logits are [B, sum(nvec)]
  const int64_t b = logits.size(0), d = static_cast<int64_t>(nvec_.size());
  if (mask.defined()) logits = logits.masked_fill(mask.to(torch::kBool).logical_not(), -1e8);
  if (total != d * width_) {
    // Gather into the padded block: column `total` (appended, -1e8) fills the padding.
    std::vector<int64_t> columns;
    columns.reserve(static_cast<size_t>(d * width_));
    int64_t offset = 0;
    for (int64_t n : nvec_) {
      for (int64_t v = 0; v < width_; ++v) columns.push_back(v < n ? offset + v : total);
      offset += n;
    }
    logits = torch::cat({logits, torch::full({b, 1}, -1e8, logits.options())}, 1)
                 .index_select(1, torch::tensor(columns, torch::kLong));
  }
  log_probs_ = torch::log_softmax(logits.reshape({b, d, width_}), 2);
}

torch::Tensor MultiCategorical::Sample(const torch::Tensor& uniforms) const {
  const torch::Tensor cdf = log_probs_.exp().cumsum(2);
  // Index of the first bucket whose CDF exceeds u; masked and padding buckets have zero width.
  const torch::Tensor idx = (cdf <= uniforms.unsqueeze(2)).sum(2);
  // Guard against rounding at the top end: fall back to the most likely allowed action.
  return torch::where(idx >= torch::tensor(nvec_, torch::kLong), log_probs_.argmax(2), idx);
}

torch::Tensor MultiCategorical::Mode() const {
  return log_probs_.argmax(2);
}

torch::Tensor MultiCategorical::LogProb(const torch::Tensor& actions) const {
  return log_probs_.gather(2, actions.unsqueeze(2)).sum({1, 2});
}

torch::Tensor MultiCategorical::Entropy() const {
  return -(log_probs_.exp() * log_probs_).sum({1, 2});
}

DiagGaussian::DiagGaussian(torch::Tensor mean, torch::Tensor log_std)
    : mean_(std::move(mean)), log_std_(std::move(log_std)) {}

torch::Tensor DiagGaussian::Sample(const torch::Tensor& normals) const {
  return mean_ + log_std_.exp() * normals;
}

torch::Tensor DiagGaussian::LogProb(const torch::Tensor& actions) const {
  const torch::Tensor z = (actions - mean_) / log_std_.exp();
  return (-0.5 * z * z - log_std_ - 0.5 * std::log(2 * M_PI)).sum(1);
}

torch::Tensor DiagGaussian::Entropy() const {
  return (log_std_ + 0.5 * (1.0 + std::log(2 * M_PI))).sum().expand({mean_.size(0)});
}

}  // namespace loantwin
