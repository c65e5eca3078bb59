#pragma once
// Adam (Kingma & Ba 2015; torch.optim.Adam's update without weight decay or amsgrad) over
// parameters that share one flat buffer. The constructor moves the parameters' values into a
// contiguous tensor and makes each parameter (and its gradient) a view of it, so a step is six
// tensor operations however many layers the network has, instead of eight per parameter: small
// networks trained on small batches (DQN) are dominated by per-operation overhead.
//
// Loading a module replaces its parameters' storage (InputArchive uses set_), which would detach
// them from the flat buffer: restore weights by copying into the existing parameters instead.

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace loantwin {

class Collective;

class FlatAdam {
 public:
  /// weight_decay: L2 penalty added to the gradient before the moments (torch.optim.Adam's
  /// weight_decay, not AdamW's decoupled decay).
  FlatAdam(std::vector<torch::Tensor> params, double lr, double eps = 1e-8, double beta1 = 0.9,
           double beta2 = 0.999, double weight_decay = 0.0);
  void ZeroGrad() {
    grad_.zero_();
    reduced_ = false;
  }
  /// Scales the gradient so its global L2 norm is at most max_norm; returns the norm before.
  double ClipGradNorm(double max_norm);
  /// The gradient's L2 norm (averaged over the group first, as ClipGradNorm and Step do).
  double GradNorm();
  void Step();
  /// Data-parallel training (DD-PPO style, docs/distributed.md): the gradient is averaged over
  /// the group's ranks - one all-reduce of the flat buffer - before it is clipped or applied, so
  /// every rank takes the same step. Null: this process alone.
  void set_group(Collective* group) { group_ = group; }
  void set_lr(double lr) { lr_ = lr; }
  const torch::Tensor& flat() const { return flat_; }
  const torch::Tensor& grad() const { return grad_; }
  int64_t steps() const { return step_; }

  void Save(torch::serialize::OutputArchive& archive) const;
  void Load(torch::serialize::InputArchive& archive);

 private:
  std::vector<torch::Tensor> params_;
  torch::Tensor flat_, grad_, exp_avg_, exp_avg_sq_;
  double lr_, eps_, beta1_, beta2_, weight_decay_;
  int64_t step_ = 0;
  Collective* group_ = nullptr;
  bool reduced_ = false;  ///< the gradient since ZeroGrad has been averaged over the group
  void ReduceGrad();
};

}  // namespace loantwin
