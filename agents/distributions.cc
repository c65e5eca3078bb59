#include "agents/distributions.h"

#include <cmath>
#include <stdexcept>

#include "core/check.h"

namespace loantwin {

MultiCategorical::MultiCategorical(torch::Tensor logits, std::vector<int64_t> nvec,
                                   torch::Tensor mask)
    : nvec_(std::move(nvec)) {
  int64_t width = 0;
  for (int64_t n : nvec_) width += n;
  LT_CHECK_EQ(logits.dim(), 2);
  LT_CHECK_EQ(logits.size(1), width);  // logits are [B, sum(nvec)]
  if (mask.defined()) logits = logits.masked_fill(mask.to(torch::kBool).logical_not(), -1e8);
  int64_t offset = 0;
  for (int64_t n : nvec_) {
    log_probs_.push_back(torch::log_softmax(logits.narrow(1, offset, n), 1));
    offset += n;
  }
}

torch::Tensor MultiCategorical::Sample(const torch::Tensor& uniforms) const {
  std::vector<torch::Tensor> out;
  for (size_t d = 0; d < nvec_.size(); ++d) {
    const torch::Tensor cdf = log_probs_[d].exp().cumsum(1);
    const torch::Tensor u = uniforms.select(1, static_cast<int64_t>(d)).unsqueeze(1);
    // Index of the first bucket whose CDF exceeds u; masked buckets have zero width.
    torch::Tensor idx = (cdf <= u).sum(1);
    // Guard against rounding at the top end: fall back to the most likely allowed action.
    idx = torch::where(idx >= nvec_[d], log_probs_[d].argmax(1), idx);
    out.push_back(idx);
  }
  return torch::stack(out, 1);
}

torch::Tensor MultiCategorical::Mode() const {
  std::vector<torch::Tensor> out;
  for (const auto& lp : log_probs_) out.push_back(lp.argmax(1));
  return torch::stack(out, 1);
}

torch::Tensor MultiCategorical::LogProb(const torch::Tensor& actions) const {
  torch::Tensor total;
  for (size_t d = 0; d < nvec_.size(); ++d) {
    const torch::Tensor lp =
        log_probs_[d].gather(1, actions.select(1, static_cast<int64_t>(d)).unsqueeze(1)).squeeze(1);
    total = total.defined() ? total + lp : lp;
  }
  return total;
}

torch::Tensor MultiCategorical::Entropy() const {
  torch::Tensor total;
  for (const auto& lp : log_probs_) {
    const torch::Tensor e = -(lp.exp() * lp).sum(1);
    total = total.defined() ? total + e : e;
  }
  return total;
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
