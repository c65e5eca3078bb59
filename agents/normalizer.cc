#include "agents/normalizer.h"

#include <algorithm>
#include <cmath>

namespace loantwin {
namespace {

torch::Tensor ToTensor(const std::vector<double>& v) {
  return torch::from_blob(const_cast<double*>(v.data()), {static_cast<int64_t>(v.size())},
                          torch::kFloat64)
      .clone();
}

void FromTensor(const torch::Tensor& t, std::vector<double>* v) {
  const torch::Tensor c = t.to(torch::kFloat64).contiguous();
  v->assign(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

}  // namespace

RunningMeanStd::RunningMeanStd(int64_t dim, double epsilon)
    : mean_(dim, 0.0), var_(dim, 1.0), count_(epsilon) {}

void RunningMeanStd::Update(const float* batch, int64_t n) {
  if (n <= 0) return;
  const int64_t d = dim();
  for (int64_t k = 0; k < d; ++k) {
    double m = 0, s = 0;
    for (int64_t i = 0; i < n; ++i) m += batch[i * d + k];
    m /= n;
    for (int64_t i = 0; i < n; ++i) s += (batch[i * d + k] - m) * (batch[i * d + k] - m);
    s /= n;
    const double delta = m - mean_[k], total = count_ + n;
    const double m2 = var_[k] * count_ + s * n + delta * delta * count_ * n / total;
    mean_[k] += delta * n / total;
    var_[k] = m2 / total;
  }
  count_ += n;
}

void RunningMeanStd::Normalize(const float* x, int64_t n, float* out, double clip) const {
  const int64_t d = dim();
  std::vector<double> inv(d);
  for (int64_t k = 0; k < d; ++k) inv[k] = 1.0 / std::sqrt(var_[k] + 1e-8);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < d; ++k)
      out[i * d + k] =
          static_cast<float>(std::clamp((x[i * d + k] - mean_[k]) * inv[k], -clip, clip));
}

void RunningMeanStd::Save(torch::serialize::OutputArchive& a, const std::string& prefix) const {
  a.write(prefix + ".mean", ToTensor(mean_));
  a.write(prefix + ".var", ToTensor(var_));
  a.write(prefix + ".count", torch::tensor(count_, torch::kFloat64));
}

void RunningMeanStd::Load(torch::serialize::InputArchive& a, const std::string& prefix) {
  torch::Tensor t;
  a.read(prefix + ".mean", t);
  FromTensor(t, &mean_);
  a.read(prefix + ".var", t);
  FromTensor(t, &var_);
  a.read(prefix + ".count", t);
  count_ = t.item<double>();
}

RewardScaler::RewardScaler(int num_envs, double gamma)
    : gamma_(gamma), returns_(num_envs, 0.0), rms_(1) {}

void RewardScaler::Scale(float* rewards, const uint8_t* done, int n, double clip) {
  std::vector<float> ret(n);
  for (int i = 0; i < n; ++i) {
    returns_[i] = returns_[i] * gamma_ + rewards[i];
    ret[i] = static_cast<float>(returns_[i]);
  }
  rms_.Update(ret.data(), n);
  const double scale = 1.0 / std::sqrt(rms_.var()[0] + 1e-8);
  last_scale_ = scale;
  for (int i = 0; i < n; ++i) {
    rewards[i] = static_cast<float>(std::clamp(rewards[i] * scale, -clip, clip));
    if (done[i]) returns_[i] = 0;
  }
}

void RewardScaler::Save(torch::serialize::OutputArchive& a, const std::string& prefix) const {
  rms_.Save(a, prefix + ".rms");
  a.write(prefix + ".returns", ToTensor(returns_));
}

void RewardScaler::Load(torch::serialize::InputArchive& a, const std::string& prefix) {
  rms_.Load(a, prefix + ".rms");
  torch::Tensor t;
  a.read(prefix + ".returns", t);
  FromTensor(t, &returns_);
}

}  // namespace loantwin
