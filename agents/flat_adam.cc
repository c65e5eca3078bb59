#include "agents/flat_adam.h"

#include <cmath>
#include <stdexcept>

#include "core/collective.h"

namespace loantwin {

FlatAdam::FlatAdam(std::vector<torch::Tensor> params, double lr, double eps, double beta1,
                   double beta2, double weight_decay)
    : params_(std::move(params)),
      lr_(lr),
      eps_(eps),
      beta1_(beta1),
      beta2_(beta2),
      weight_decay_(weight_decay) {
  int64_t total = 0;
  for (const auto& p : params_) {
    if (p.scalar_type() != torch::kFloat32 || !p.device().is_cpu())
      throw std::invalid_argument("FlatAdam: float32 CPU parameters only");
    total += p.numel();
  }
  flat_ = torch::empty({total});
  grad_ = torch::zeros({total});
  exp_avg_ = torch::zeros({total});
  exp_avg_sq_ = torch::zeros({total});
  torch::NoGradGuard no_grad;
  int64_t off = 0;
  for (auto& p : params_) {
    const int64_t n = p.numel();
    torch::Tensor view = flat_.slice(0, off, off + n).view(p.sizes());
    view.copy_(p);
    p.set_data(view);
    p.mutable_grad() = grad_.slice(0, off, off + n).view(p.sizes());
    off += n;
  }
}

void FlatAdam::ReduceGrad() {
  if (group_ == nullptr || reduced_) return;
  group_->AllReduceMean(grad_.data_ptr<float>(), static_cast<size_t>(grad_.numel()));
  reduced_ = true;
}

double FlatAdam::GradNorm() {
  ReduceGrad();
  return grad_.norm().item<double>();
}

double FlatAdam::ClipGradNorm(double max_norm) {
  ReduceGrad();
  const double norm = grad_.norm().item<double>();
  if (norm > max_norm) grad_.mul_(max_norm / (norm + 1e-6));
  return norm;
}

void FlatAdam::Step() {
  torch::NoGradGuard no_grad;
  ReduceGrad();
  reduced_ = false;
  ++step_;
  if (weight_decay_ != 0) grad_.add_(flat_, weight_decay_);
  const double bc1 = 1.0 - std::pow(beta1_, static_cast<double>(step_));
  const double bc2 = 1.0 - std::pow(beta2_, static_cast<double>(step_));
  exp_avg_.mul_(beta1_).add_(grad_, 1.0 - beta1_);
  exp_avg_sq_.mul_(beta2_).addcmul_(grad_, grad_, 1.0 - beta2_);
  const torch::Tensor denom = (exp_avg_sq_.sqrt() / std::sqrt(bc2)).add_(eps_);
  flat_.addcdiv_(exp_avg_, denom, -lr_ / bc1);
}

void FlatAdam::Save(torch::serialize::OutputArchive& a) const {
  a.write("exp_avg", exp_avg_);
  a.write("exp_avg_sq", exp_avg_sq_);
  a.write("step", torch::tensor(step_));
}

void FlatAdam::Load(torch::serialize::InputArchive& a) {
  for (auto [name, dst] : {std::pair<const char*, torch::Tensor*>{"exp_avg", &exp_avg_},
                           {"exp_avg_sq", &exp_avg_sq_}}) {
    torch::Tensor t;  // fresh: reading into a defined tensor re-seats its storage
    a.read(name, t);
    if (t.sizes() != dst->sizes())
      throw std::runtime_error(std::string("optimizer state '") + name +
                               "' does not match the network");
    dst->copy_(t);
  }
  torch::Tensor t;
  a.read("step", t);
  step_ = t.item<int64_t>();
}

}  // namespace loantwin
