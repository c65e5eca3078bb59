#include "agents/muzero_net.h"

#include <algorithm>

namespace loantwin {

torch::Tensor NormalizeLatent(const torch::Tensor& s) {
  const torch::Tensor lo = std::get<0>(s.min(1, true)), hi = std::get<0>(s.max(1, true));
  return (s - lo) / (hi - lo).clamp_min(1e-5);
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

}  // namespace loantwin
