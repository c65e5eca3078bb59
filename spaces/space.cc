#include "spaces/space.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

namespace loantwin {

const char* DTypeName(DType d) {
  return d == DType::kFloat32 ? "float32" : "int32";
}

namespace {

/// Uniform choice among the allowed values of one dimension.
int32_t SampleAllowed(CounterRng& rng, int n, const uint8_t* mask) {
  if (!mask) return static_cast<int32_t>(rng.Uniform() * n);
  int allowed = 0;
  for (int i = 0; i < n; ++i) allowed += mask[i] != 0;
  if (allowed == 0) throw std::invalid_argument("action mask allows no action");
  int k = static_cast<int>(rng.Uniform() * allowed);
  for (int i = 0; i < n; ++i)
    if (mask[i] && k-- == 0) return i;
  return n - 1;  // unreachable
}

}  // namespace

Discrete::Discrete(int n) : n_(n) {
  if (n < 1) throw std::invalid_argument(fmt::format("Discrete(n) needs n >= 1, got {}", n));
}
int32_t Discrete::Sample(CounterRng& rng, const uint8_t* mask) const {
  return SampleAllowed(rng, n_, mask);
}
std::string Discrete::ToString() const {
  return fmt::format("Discrete({})", n_);
}

MultiDiscrete::MultiDiscrete(std::vector<int> nvec) : nvec_(std::move(nvec)) {
  if (nvec_.empty()) throw std::invalid_argument("MultiDiscrete needs at least one dimension");
  for (int n : nvec_) {
    if (n < 1)
      throw std::invalid_argument(fmt::format("MultiDiscrete: every n must be >= 1, got {}", n));
    offsets_.push_back(mask_width_);
    mask_width_ += n;
  }
}
bool MultiDiscrete::Contains(const int32_t* a) const {
  for (size_t d = 0; d < nvec_.size(); ++d)
    if (a[d] < 0 || a[d] >= nvec_[d]) return false;
  return true;
}
void MultiDiscrete::Sample(CounterRng& rng, int32_t* out, const uint8_t* mask) const {
  for (size_t d = 0; d < nvec_.size(); ++d)
    out[d] = SampleAllowed(rng, nvec_[d], mask ? mask + offsets_[d] : nullptr);
}
std::string MultiDiscrete::ToString() const {
  return fmt::format("MultiDiscrete([{}])", fmt::join(nvec_, ", "));
}

bool ActionSpace::Allows(const uint8_t* mask, const int32_t* a, int* bad_dim) const {
  for (int d = 0; d < space_.size(); ++d) {
    if (a[d] < 0 || a[d] >= space_.nvec()[d] || !mask[space_.mask_offset(d) + a[d]]) {
      if (bad_dim) *bad_dim = d;
      return false;
    }
  }
  return true;
}

Box::Box(std::vector<int> shape, std::vector<float> low, std::vector<float> high, DType dtype)
    : shape_(std::move(shape)), low_(std::move(low)), high_(std::move(high)), dtype_(dtype) {
  size_t n = 1;
  for (int s : shape_) {
    if (s < 0) throw std::invalid_argument("Box: negative dimension");
    n *= static_cast<size_t>(s);
  }
  if (low_.size() != n || high_.size() != n)
    throw std::invalid_argument(fmt::format("Box: shape has {} elements but bounds have {} / {}", n,
                                            low_.size(), high_.size()));
  for (size_t i = 0; i < n; ++i)
    if (!(low_[i] <= high_[i]))
      throw std::invalid_argument(
          fmt::format("Box: low[{}] = {} > high[{}] = {}", i, low_[i], i, high_[i]));
}

bool Box::Contains(const float* x, int* bad_index) const {
  for (size_t i = 0; i < low_.size(); ++i) {
    if (!std::isfinite(x[i]) || x[i] < low_[i] || x[i] > high_[i]) {
      if (bad_index) *bad_index = static_cast<int>(i);
      return false;
    }
  }
  return true;
}

void Box::Sample(CounterRng& rng, float* out) const {
  for (size_t i = 0; i < low_.size(); ++i) {
    const bool lo = std::isfinite(low_[i]), hi = std::isfinite(high_[i]);
    double v;
    if (lo && hi)
      v = low_[i] + (static_cast<double>(high_[i]) - low_[i]) * rng.Uniform();
    else if (lo)
      v = low_[i] - std::log(1 - rng.Uniform());
    else if (hi)
      v = high_[i] + std::log(1 - rng.Uniform());
    else
      v = rng.Normal();
    out[i] = static_cast<float>(v);
    if (dtype_ == DType::kInt32) out[i] = std::floor(out[i]);
  }
}

std::string Box::ToString() const {
  return fmt::format("Box(shape=[{}], {})", fmt::join(shape_, ", "), DTypeName(dtype_));
}

int FeatureLayout::Add(const std::string& name, float low, float high, double center,
                       double scale) {
  if (Find(name) >= 0)
    throw std::invalid_argument("FeatureLayout: duplicate feature '" + name + "'");
  if (!(scale > 0)) throw std::invalid_argument("FeatureLayout: scale of '" + name + "' <= 0");
  names_.push_back(name);
  low_.push_back(low);
  high_.push_back(high);
  center_.push_back(center);
  scale_.push_back(scale);
  return size() - 1;
}

int FeatureLayout::Find(const std::string& name) const {
  for (size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == name) return static_cast<int>(i);
  return -1;
}

}  // namespace loantwin
