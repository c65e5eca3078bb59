#include "agents/numerics.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

namespace loantwin {

NonFiniteError::NonFiniteError(std::string quantity, double value)
    : std::runtime_error(fmt::format("non-finite {} ({})", quantity, value)),
      quantity_(std::move(quantity)),
      value_(value) {}

void CheckFiniteParameters(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < params.size(); ++k) {
    const torch::Tensor& p = params[k];
    if (!p.defined() || p.numel() == 0) continue;
    if (p.scalar_type() == torch::kFloat32 && p.is_contiguous() && p.device().is_cpu()) {
      // A plain scan: after every update of a small network, three tensor operations per
      // parameter cost more than the check itself.
      const float* v = p.data_ptr<float>();
      const int64_t n = p.numel();
      int64_t i = 0;
      while (i < n && std::isfinite(v[i])) ++i;
      if (i == n) continue;
    } else if (torch::isfinite(p).all().item<bool>()) {
      continue;
    }
    const torch::Tensor flat = p.detach().flatten();
    const torch::Tensor bad = flat.masked_select(torch::logical_not(torch::isfinite(flat)));
    throw NonFiniteError(fmt::format("parameter {} (shape [{}], {} of {} values)", k,
                                     fmt::join(p.sizes(), ", "), bad.numel(), flat.numel()),
                         bad[0].item<double>());
  }
}

double GradNorm(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  double sum = 0;
  for (const auto& p : params)
    if (p.grad().defined()) sum += p.grad().to(torch::kFloat64).pow(2).sum().item<double>();
  return std::sqrt(sum);
}

}  // namespace loantwin
