#include "agents/mlp.h"

#include <Eigen/Core>
#include <cmath>
#include <stdexcept>

namespace loantwin {

Activation ParseActivation(const std::string& name) {
  if (name == "tanh") return Activation::kTanh;
  if (name == "relu") return Activation::kRelu;
  throw std::invalid_argument("unknown activation '" + name + "' (tanh, relu)");
}

MlpImpl::MlpImpl(int64_t in, const std::vector<int64_t>& hidden, int64_t out, double output_gain,
                 Activation act)
    : activation(act) {
  layers = register_module("layers", torch::nn::ModuleList());
  int64_t width = in;
  for (size_t i = 0; i <= hidden.size(); ++i) {
    const bool last = i == hidden.size();
    const int64_t next = last ? out : hidden[i];
    auto linear = torch::nn::Linear(width, next);
    torch::NoGradGuard no_grad;
    torch::nn::init::orthogonal_(linear->weight, last ? output_gain : std::sqrt(2.0));
    linear->bias.zero_();
    layers->push_back(linear);
    width = next;
  }
}

torch::Tensor MlpImpl::forward(torch::Tensor x) {
  const size_t n = layers->size();
  for (size_t i = 0; i < n; ++i) {
    x = layers[i]->as<torch::nn::Linear>()->forward(x);
    if (i + 1 < n) x = activation == Activation::kTanh ? torch::tanh(x) : torch::relu(x);
  }
  return x;
}

void MlpImpl::ForwardFast(const float* x, int64_t n, float* out) {
  using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const size_t count = layers->size();
  const float* in = x;
  for (size_t i = 0; i < count; ++i) {
    const auto& l = *layers[i]->as<torch::nn::Linear>();
    const int64_t in_w = l.weight.size(1), out_w = l.weight.size(0);
    const bool last = i + 1 == count;
    float* dst = out;
    if (!last) {
      scratch_[i % 2].resize(static_cast<size_t>(n * out_w));
      dst = scratch_[i % 2].data();
    }
    const Eigen::Map<const RowMajor> xin(in, n, in_w);
    const Eigen::Map<const RowMajor> w(l.weight.data_ptr<float>(), out_w, in_w);
    const Eigen::Map<const Eigen::RowVectorXf> b(l.bias.data_ptr<float>(), out_w);
    Eigen::Map<RowMajor> y(dst, n, out_w);
    y.noalias() = xin * w.transpose();
    y.rowwise() += b;
    if (!last) {
      if (activation == Activation::kTanh)
        y = y.array().tanh();
      else
        y = y.cwiseMax(0.0f);
    }
    in = dst;
  }
}

}  // namespace loantwin
