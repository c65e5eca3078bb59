#include "agents/muzero_net.h"

#include <algorithm>

namespace loantwin {

torch::Tensor NormalizeLatent(const torch::Tensor& s) {
  const torch::Tensor lo = std::get<0>(s.min(1, true)), hi = std::get<0>(s.max(1, true));
  return (s - lo) / (hi - lo).clamp_min(1e-5);
}

void NormalizeLatentRows(const float* x, int64_t n, int64_t L, int64_t x_stride, float* y,
                         LatentScaling* keep) {
  if (keep != nullptr) {
    keep->lo.resize(n), keep->hi.resize(n), keep->denom.resize(n), keep->unclamped.resize(n);
  }
  for (int64_t i = 0; i < n; ++i) {
    const float* r = x + i * x_stride;
    int lo = 0, hi = 0;
    for (int j = 1; j < L; ++j) {
      if (r[j] < r[lo]) lo = j;
      if (r[j] > r[hi]) hi = j;
    }
    const float span = r[hi] - r[lo];
    const float d = std::max(span, 1e-5f);
    float* out = y + i * L;
    for (int j = 0; j < L; ++j) out[j] = (r[j] - r[lo]) / d;
    if (keep != nullptr) {
      keep->lo[i] = lo, keep->hi[i] = hi, keep->denom[i] = d;
      keep->unclamped[i] = span >= 1e-5f;
    }
  }
}

void NormalizeLatentBackward(const float* y, const float* dy, int64_t n, int64_t L,
                             const LatentScaling& keep, float* dx, int64_t dx_stride) {
  // y_j = (x_j - lo) / d, d = hi - lo (unclamped): dx_j = dy_j / d; the minimum also gets
  // (sum dy y - sum dy) / d and the maximum -(sum dy y) / d.
  for (int64_t i = 0; i < n; ++i) {
    const float* g = dy + i * L;
    const float* yi = y + i * L;
    float* out = dx + i * dx_stride;
    const float d = keep.denom[i];
    float sum = 0, sum_y = 0;
    for (int j = 0; j < L; ++j) {
      out[j] = g[j] / d;
      sum += g[j];
      sum_y += g[j] * yi[j];
    }
    out[keep.lo[i]] += (keep.unclamped[i] ? sum_y - sum : -sum) / d;
    if (keep.unclamped[i]) out[keep.hi[i]] -= sum_y / d;
  }
}

MuZeroNetImpl::MuZeroNetImpl(int64_t obs, int64_t actions, const MuZeroNetConfig& c)
    : obs_dim(obs), num_actions(actions), latent_dim(c.latent_dim), atoms(2 * c.support_size + 1) {
  const Activation relu = Activation::kRelu;
  representation = register_module("representation", Mlp(obs, c.hidden, latent_dim, 1.0, relu));
  dynamics = register_module("dynamics",
                             Mlp(latent_dim + actions, c.hidden, latent_dim + atoms, 1.0, relu));
  prediction =
      register_module("prediction", Mlp(latent_dim, c.hidden, actions + atoms, 0.01, relu));
}

torch::Tensor MuZeroNetImpl::Represent(const torch::Tensor& obs) {
  return NormalizeLatent(representation->forward(obs));
}

std::pair<torch::Tensor, torch::Tensor> MuZeroNetImpl::Dynamics(const torch::Tensor& latent,
                                                                const torch::Tensor& actions) {
  const torch::Tensor one_hot = torch::one_hot(actions, num_actions).to(latent.scalar_type());
  const torch::Tensor out = dynamics->forward(torch::cat({latent, one_hot}, 1));
  return {NormalizeLatent(out.slice(1, 0, latent_dim)), out.slice(1, latent_dim)};
}

std::pair<torch::Tensor, torch::Tensor> MuZeroNetImpl::Predict(const torch::Tensor& latent) {
  const torch::Tensor out = prediction->forward(latent);
  return {out.slice(1, 0, num_actions), out.slice(1, num_actions)};
}

void TorchSearchModel::Initial(const float* obs, int n, float* latent, float* value,
                               float* logits) {
  torch::InferenceMode guard;
  const torch::Tensor s =
      net_->Represent(torch::from_blob(const_cast<float*>(obs), {n, net_->obs_dim})).contiguous();
  const auto [policy, v] = net_->Predict(s);
  const torch::Tensor p = policy.contiguous(), vs = support_.Decode(v).contiguous();
  std::copy(s.data_ptr<float>(), s.data_ptr<float>() + s.numel(), latent);
  std::copy(p.data_ptr<float>(), p.data_ptr<float>() + p.numel(), logits);
  std::copy(vs.data_ptr<float>(), vs.data_ptr<float>() + n, value);
}

void TorchSearchModel::Recurrent(const float* latent, const int32_t* actions, int n,
                                 float* next_latent, float* reward, float* value, float* logits) {
  torch::InferenceMode guard;
  const torch::Tensor s = torch::from_blob(const_cast<float*>(latent), {n, net_->latent_dim});
  const torch::Tensor a =
      torch::from_blob(const_cast<int32_t*>(actions), {n}, torch::kInt32).to(torch::kLong);
  const auto [next, r] = net_->Dynamics(s, a);
  const auto [policy, v] = net_->Predict(next);
  const torch::Tensor nx = next.contiguous(), p = policy.contiguous(),
                      rs = support_.Decode(r).contiguous(), vs = support_.Decode(v).contiguous();
  std::copy(nx.data_ptr<float>(), nx.data_ptr<float>() + nx.numel(), next_latent);
  std::copy(p.data_ptr<float>(), p.data_ptr<float>() + p.numel(), logits);
  std::copy(rs.data_ptr<float>(), rs.data_ptr<float>() + n, reward);
  std::copy(vs.data_ptr<float>(), vs.data_ptr<float>() + n, value);
}

void FastSearchModel::Predict(const float* latent, int n, float* value, float* logits) {
  const int64_t A = net_->num_actions, Z = net_->atoms;
  pred_.resize(static_cast<size_t>(n) * (A + Z));
  net_->prediction->ForwardFast(latent, n, pred_.data());
  for (int i = 0; i < n; ++i) {
    const float* row = &pred_[static_cast<size_t>(i) * (A + Z)];
    std::copy(row, row + A, logits + static_cast<size_t>(i) * A);
    value[i] = support_.DecodeLogits(row + A);
  }
}

void FastSearchModel::Initial(const float* obs, int n, float* latent, float* value, float* logits) {
  const int64_t L = net_->latent_dim;
  out_.resize(static_cast<size_t>(n) * L);
  net_->representation->ForwardFast(obs, n, out_.data());
  NormalizeLatentRows(out_.data(), n, L, L, latent, nullptr);
  Predict(latent, n, value, logits);
}

void FastSearchModel::Recurrent(const float* latent, const int32_t* actions, int n,
                                float* next_latent, float* reward, float* value, float* logits) {
  const int64_t L = net_->latent_dim, A = net_->num_actions, Z = net_->atoms;
  in_.assign(static_cast<size_t>(n) * (L + A), 0.0f);
  for (int i = 0; i < n; ++i) {
    std::copy(latent + static_cast<size_t>(i) * L, latent + static_cast<size_t>(i + 1) * L,
              &in_[static_cast<size_t>(i) * (L + A)]);
    in_[static_cast<size_t>(i) * (L + A) + L + actions[i]] = 1.0f;
  }
  out_.resize(static_cast<size_t>(n) * (L + Z));
  net_->dynamics->ForwardFast(in_.data(), n, out_.data());
  NormalizeLatentRows(out_.data(), n, L, L + Z, next_latent, nullptr);
  for (int i = 0; i < n; ++i)
    reward[i] = support_.DecodeLogits(&out_[static_cast<size_t>(i) * (L + Z) + L]);
  Predict(next_latent, n, value, logits);
}

}  // namespace loantwin
