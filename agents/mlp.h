#pragma once
// Multilayer perceptron with orthogonal initialisation (weights orthogonal with gain sqrt(2) in
// hidden layers and a chosen gain on the output layer, biases 0), as in CleanRL's layer_init.

#include <torch/torch.h>

#include <string>
#include <vector>

namespace loantwin {

enum class Activation { kTanh, kRelu };
Activation ParseActivation(const std::string& name);  // "tanh" | "relu"

/// A stack of linear layers with the activation after every layer but the last, evaluated in
/// plain C++ on the layers' own weights (matrix products of useful size go to the BLAS, the rest
/// to Eigen): no LibTorch per-operation overhead. Used for acting and for the hand-written
/// backward passes of PPO and DQN. Holds pointers to the layers, which must outlive it; reads
/// the weights in place (not while another thread updates them).
class LinearStack {
 public:
  /// What one ForwardTrain call keeps for its BackwardTrain: the input (not copied; it must stay
  /// valid) and every hidden layer's output. Several tapes let one stack be applied several
  /// times in one loss (MuZero's unrolled dynamics), each call differentiated on its own.
  struct Tape {
    const float* in = nullptr;
    std::vector<std::vector<float>> acts;
  };

  LinearStack() = default;
  LinearStack(std::vector<torch::nn::LinearImpl*> layers, Activation activation);
  /// out [n, out] = the stack applied to x [n, in].
  void Forward(const float* x, int64_t n, float* out);
  /// Forward that keeps every hidden layer's output for BackwardTrain; x must stay valid until
  /// then.
  void ForwardTrain(const float* x, int64_t n, float* out);
  /// Adds dLoss/dW and dLoss/db of the last ForwardTrain batch into the parameters' gradient
  /// tensors (which must exist, e.g. FlatAdam's views), given dLoss/dout [n, out].
  void BackwardTrain(const float* dout, int64_t n);
  /// The same with an explicit tape; dx, if not null, receives dLoss/dx [n, in].
  void ForwardTrain(const float* x, int64_t n, float* out, Tape* tape) const;
  void BackwardTrain(const float* dout, int64_t n, const Tape& tape, float* dx);

 private:
  /// One layer: out = act(in * W^T + b) (no activation on the last layer).
  void Layer(size_t i, const float* in, int64_t n, float* out) const;

  std::vector<torch::nn::LinearImpl*> layers_;
  Activation activation_ = Activation::kTanh;
  std::vector<float> scratch_[2];
  Tape tape_;  ///< of the last ForwardTrain without an explicit tape
  std::vector<float> train_grad_[2];
};

struct MlpImpl : torch::nn::Module {
  MlpImpl(int64_t in, const std::vector<int64_t>& hidden, int64_t out, double output_gain,
          Activation activation = Activation::kTanh);
  torch::Tensor forward(torch::Tensor x);
  /// The same function for acting, without LibTorch's per-operation overhead (LinearStack).
  /// Agrees with forward() to float rounding (different summation order; Eigen's tanh is a
  /// rational approximation within a few ulp): MlpTest.FastForwardMatchesLibTorch checks 1e-5.
  /// Reads the weights in place; not for use while another thread updates them.
  void ForwardFast(const float* x, int64_t n, float* out) { stack_.Forward(x, n, out); }
  /// Training without autograd (PPO's fused update): LinearStack::ForwardTrain/BackwardTrain.
  /// Matches LibTorch's autograd to float rounding: Ppo.FusedUpdateMatchesAutograd checks it.
  void ForwardTrain(const float* x, int64_t n, float* out) { stack_.ForwardTrain(x, n, out); }
  void BackwardTrain(const float* dout, int64_t n) { stack_.BackwardTrain(dout, n); }
  /// With an explicit tape and the input's gradient (MuZero's fused update).
  void ForwardTrain(const float* x, int64_t n, float* out, LinearStack::Tape* tape) const {
    stack_.ForwardTrain(x, n, out, tape);
  }
  void BackwardTrain(const float* dout, int64_t n, const LinearStack::Tape& tape, float* dx) {
    stack_.BackwardTrain(dout, n, tape, dx);
  }

  torch::nn::ModuleList layers;
  Activation activation;

 private:
  LinearStack stack_;
};
TORCH_MODULE(Mlp);

}  // namespace loantwin
