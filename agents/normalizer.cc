#include "agents/normalizer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/collective.h"

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
    if (tracking_) {  // the same batch, merged into this rank's additions since the last Sync
      const double pd = m - pending_mean_[k], pt = pending_count_ + n;
      const double pm2 =
          pending_var_[k] * pending_count_ + s * n + pd * pd * pending_count_ * n / pt;
      pending_mean_[k] += pd * n / pt;
      pending_var_[k] = pm2 / pt;
    }
  }
  count_ += n;
  if (tracking_) pending_count_ += n;
}

void RunningMeanStd::Merge(std::vector<double>& mean, std::vector<double>& var, double& count,
                           const double* batch_mean, const double* batch_var, double n) {
  if (n <= 0) return;
  const double total = count + n;
  for (size_t k = 0; k < mean.size(); ++k) {
    const double delta = batch_mean[k] - mean[k];
    const double m2 = var[k] * count + batch_var[k] * n + delta * delta * count * n / total;
    mean[k] += delta * n / total;
    var[k] = m2 / total;
  }
  count = total;
}

void RunningMeanStd::TrackForSync() {
  tracking_ = true;
  base_mean_ = mean_, base_var_ = var_, base_count_ = count_;
  pending_mean_.assign(mean_.size(), 0.0), pending_var_.assign(var_.size(), 0.0);
  pending_count_ = 0;
}

void RunningMeanStd::Sync(Collective& group) {
  if (!tracking_) TrackForSync();
  const size_t d = mean_.size(), row = 1 + 2 * d;
  const int w = group.world_size();
  // Every rank's additions, in rank order (zeros elsewhere: the sum is exact).
  std::vector<double> all(row * w, 0.0);
  double* mine = &all[row * group.rank()];
  mine[0] = pending_count_;
  std::copy(pending_mean_.begin(), pending_mean_.end(), mine + 1);
  std::copy(pending_var_.begin(), pending_var_.end(), mine + 1 + d);
  group.AllReduceSum(all.data(), all.size());
  mean_ = base_mean_, var_ = base_var_, count_ = base_count_;
  for (int r = 0; r < w; ++r) {
    const double* rr = &all[row * r];
    Merge(mean_, var_, count_, rr + 1, rr + 1 + d, rr[0]);
  }
  TrackForSync();
}

void RunningMeanStd::RevertToSynced() {
  if (!tracking_) return;
  mean_ = base_mean_, var_ = base_var_, count_ = base_count_;
  TrackForSync();
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
  if (tracking_) {  // distributed training: the statistics of the last Sync and the additions
    std::vector<double> sync = base_mean_;
    sync.insert(sync.end(), base_var_.begin(), base_var_.end());
    sync.push_back(base_count_);
    sync.insert(sync.end(), pending_mean_.begin(), pending_mean_.end());
    sync.insert(sync.end(), pending_var_.begin(), pending_var_.end());
    sync.push_back(pending_count_);
    a.write(prefix + ".sync", ToTensor(sync));
  }
}

void RunningMeanStd::Load(torch::serialize::InputArchive& a, const std::string& prefix) {
  torch::Tensor t;
  a.read(prefix + ".mean", t);
  FromTensor(t, &mean_);
  a.read(prefix + ".var", t);
  FromTensor(t, &var_);
  a.read(prefix + ".count", t);
  count_ = t.item<double>();
  torch::Tensor sync;
  if (tracking_ && a.try_read(prefix + ".sync", sync)) {
    std::vector<double> v;
    FromTensor(sync, &v);
    const size_t d = mean_.size();
    if (v.size() != 4 * d + 2) throw std::runtime_error(prefix + ".sync: wrong size");
    base_mean_.assign(v.begin(), v.begin() + d);
    base_var_.assign(v.begin() + d, v.begin() + 2 * d);
    base_count_ = v[2 * d];
    pending_mean_.assign(v.begin() + 2 * d + 1, v.begin() + 3 * d + 1);
    pending_var_.assign(v.begin() + 3 * d + 1, v.begin() + 4 * d + 1);
    pending_count_ = v[4 * d + 1];
  } else if (tracking_) {
    TrackForSync();  // a checkpoint of one process: its statistics are everyone's
  }
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
