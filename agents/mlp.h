#pragma once
// Multilayer perceptron with orthogonal initialisation (weights orthogonal with gain sqrt(2) in
// hidden layers and a chosen gain on the output layer, biases 0), as in CleanRL's layer_init.

#include <torch/torch.h>

#include <string>
#include <vector>

namespace loantwin {

enum class Activation { kTanh, kRelu };
Activation ParseActivation(const std::string& name);  // "tanh" | "relu"

struct MlpImpl : torch::nn::Module {
  MlpImpl(int64_t in, const std::vector<int64_t>& hidden, int64_t out, double output_gain,
          Activation activation = Activation::kTanh);
  torch::Tensor forward(torch::Tensor x);

  torch::nn::ModuleList layers;
  Activation activation;
};
TORCH_MODULE(Mlp);

}  // namespace loantwin
