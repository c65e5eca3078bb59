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
  /// The same function for acting, without LibTorch's per-operation overhead: one Eigen matrix
  /// product per layer on the module's own weights, Eigen's vectorised tanh. out is [n, out].
  /// Agrees with forward() to float rounding (different summation order; Eigen's tanh is a
  /// rational approximation within a few ulp): MlpTest.FastForwardMatchesLibTorch checks 1e-5.
  /// Reads the weights in place; not for use while another thread updates them.
  void ForwardFast(const float* x, int64_t n, float* out);

  torch::nn::ModuleList layers;
  Activation activation;

 private:
  std::vector<float> scratch_[2];
};
TORCH_MODULE(Mlp);

}  // namespace loantwin
