#include "agents/mlp.h"

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

}  // namespace loantwin
