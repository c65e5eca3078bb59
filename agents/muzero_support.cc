#include "agents/muzero_support.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace loantwin {

double TransformH(double x, double eps) {
  const double s = x < 0 ? -1.0 : 1.0;
  return s * (std::sqrt(std::abs(x) + 1.0) - 1.0) + eps * x;
}

double InverseH(double y, double eps) {
  // Solving y = sign(x) (sqrt(|x| + 1) - 1) + eps x for x (same sign as y).
  const double s = y < 0 ? -1.0 : 1.0;
  const double r = (std::sqrt(1.0 + 4.0 * eps * (std::abs(y) + 1.0 + eps)) - 1.0) / (2.0 * eps);
  return s * (r * r - 1.0);
}

CategoricalSupport::CategoricalSupport(int size) : size_(size) {
  if (size < 1) throw std::invalid_argument("categorical support size must be >= 1");
}

double CategoricalSupport::max_abs_value() const {
  return InverseH(size_);
}

torch::Tensor CategoricalSupport::TwoHot(const torch::Tensor& values) const {
  const torch::Tensor v = values.to(torch::kFloat64).contiguous();
  const int64_t n = v.numel();
  torch::Tensor out = torch::zeros({n, atoms()});
  const double* x = v.data_ptr<double>();
  for (int64_t i = 0; i < n; ++i) TwoHotRow(x[i], out.data_ptr<float>() + i * atoms());
  return out;
}

void CategoricalSupport::TwoHotInto(const float* values, int64_t n, float* out) const {
  std::fill(out, out + n * atoms(), 0.0f);
  for (int64_t i = 0; i < n; ++i) TwoHotRow(values[i], out + i * atoms());
}

void CategoricalSupport::TwoHotRow(double x, float* o) const {
  const double y = TransformH(x);
  if (!std::isfinite(y) || y < -size_ - 1e-9 || y > size_ + 1e-9)
    throw std::out_of_range(
        fmt::format("value {} is outside the categorical support (size {}, |value| <= {:.6g}): "
                    "raise the support size",
                    x, size_, max_abs_value()));
  const double yc = std::min<double>(std::max<double>(y, -size_), size_);
  const double lo = std::floor(yc);
  const double frac = yc - lo;
  const int64_t k = static_cast<int64_t>(lo) + size_;
  o[k] += static_cast<float>(1.0 - frac);
  if (frac > 0) o[k + 1] += static_cast<float>(frac);
}

torch::Tensor CategoricalSupport::Decode(const torch::Tensor& logits) const {
  const torch::Tensor atoms_t = torch::arange(-size_, size_ + 1, torch::kFloat32);
  const torch::Tensor y = (torch::softmax(logits, 1) * atoms_t).sum(1);
  // Inverse of h, elementwise (same closed form as InverseH).
  const double eps = kHEpsilon;
  const torch::Tensor r =
      (torch::sqrt(1.0 + 4.0 * eps * (y.abs() + 1.0 + eps)) - 1.0) / (2.0 * eps);
  return torch::sign(y) * (r * r - 1.0);
}

double CategoricalSupport::DecodeProbabilities(const float* probs) const {
  double y = 0;
  for (int k = 0; k < atoms(); ++k) y += probs[k] * (k - size_);
  return InverseH(y);
}

float CategoricalSupport::DecodeLogits(const float* logits) const {
  const int n = atoms();
  float m = logits[0];
  for (int k = 1; k < n; ++k) m = std::max(m, logits[k]);
  double total = 0, y = 0;
  for (int k = 0; k < n; ++k) {
    const double e = std::exp(static_cast<double>(logits[k]) - m);
    total += e;
    y += e * (k - size_);
  }
  return static_cast<float>(InverseH(y / total));
}

int SupportSizeFor(double max_abs_return) {
  return static_cast<int>(std::ceil(TransformH(std::abs(max_abs_return))));
}

}  // namespace loantwin
