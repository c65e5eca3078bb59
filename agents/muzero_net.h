#pragma once
// MuZero's three networks (MLPs): representation h(obs) -> latent, dynamics g(latent, action) ->
// (next latent, reward logits), prediction f(latent) -> (policy logits, value logits). Latents are
// min-max normalised per sample to [0, 1] (MuZero appendix G) after the representation and after
// every dynamics step, so unrolled latents stay on the scale the prediction network was trained
// on. Value and reward are categorical over a CategoricalSupport (agents/muzero_support.h).
// TorchSearchModel adapts the networks to the batched search (agents/mcts.h).

#include <torch/torch.h>

#include <vector>

#include "agents/mcts.h"
#include "agents/mlp.h"
#include "agents/muzero_support.h"

namespace loantwin {

struct MuZeroNetConfig {
  int latent_dim = 64;
  std::vector<int64_t> hidden = {64};  ///< hidden widths of each of the three MLPs
  int support_size = 10;               ///< value and reward atoms: -size .. size
};

/// Per-sample min-max scaling of latents [B, L] to [0, 1].
torch::Tensor NormalizeLatent(const torch::Tensor& s);

/// NormalizeLatent in plain C++ for the fused update and the search: rows of x (row stride
/// x_stride, the first L columns) scaled into y [n, L]. `keep`, if not null, receives what the
/// backward pass needs.
struct LatentScaling {
  std::vector<int> lo, hi;         ///< per row, the column of the minimum and of the maximum
  std::vector<float> denom;        ///< max(hi - lo, 1e-5)
  std::vector<uint8_t> unclamped;  ///< hi - lo >= 1e-5 (the divisor depends on x)
};
void NormalizeLatentRows(const float* x, int64_t n, int64_t L, int64_t x_stride, float* y,
                         LatentScaling* keep);
/// dLoss/dx (row stride dx_stride, first L columns written) from dLoss/dy, y and the scaling:
/// autograd's gradient of NormalizeLatent (the min and max pass theirs to the argmin/argmax).
void NormalizeLatentBackward(const float* y, const float* dy, int64_t n, int64_t L,
                             const LatentScaling& keep, float* dx, int64_t dx_stride);

struct MuZeroNetImpl : torch::nn::Module {
  MuZeroNetImpl(int64_t obs_dim, int64_t num_actions, const MuZeroNetConfig& config);
  torch::Tensor Represent(const torch::Tensor& obs);
  /// (next latent, reward logits) for latents [B, L] and int64 actions [B].
  std::pair<torch::Tensor, torch::Tensor> Dynamics(const torch::Tensor& latent,
                                                   const torch::Tensor& actions);
  /// (policy logits [B, A], value logits [B, atoms]).
  std::pair<torch::Tensor, torch::Tensor> Predict(const torch::Tensor& latent);

  Mlp representation{nullptr}, dynamics{nullptr}, prediction{nullptr};
  int64_t obs_dim, num_actions, latent_dim, atoms;
};
TORCH_MODULE(MuZeroNet);

/// The networks as the search's model: inference mode, values and rewards decoded to scalars.
class TorchSearchModel : public SearchModel {
 public:
  TorchSearchModel(MuZeroNet net, const CategoricalSupport& support)
      : net_(std::move(net)), support_(support) {}
  int latent_dim() const override { return static_cast<int>(net_->latent_dim); }
  void Initial(const float* obs, int n, float* latent, float* value, float* logits) override;
  void Recurrent(const float* latent, const int32_t* actions, int n, float* next_latent,
                 float* reward, float* value, float* logits) override;

 private:
  MuZeroNet net_;
  CategoricalSupport support_;
};

/// The same model in plain C++ on the networks' own weights (LinearStack; no LibTorch
/// operations): agrees with TorchSearchModel (MuZeroNet.FastSearchModelMatchesTheTorchModel
/// checks latents and logits to 1e-5, decoded values and rewards to 1e-3). Reads the weights in
/// place: not while another thread updates them.
class FastSearchModel : public SearchModel {
 public:
  FastSearchModel(MuZeroNet net, const CategoricalSupport& support)
      : net_(std::move(net)), support_(support) {}
  int latent_dim() const override { return static_cast<int>(net_->latent_dim); }
  void Initial(const float* obs, int n, float* latent, float* value, float* logits) override;
  void Recurrent(const float* latent, const int32_t* actions, int n, float* next_latent,
                 float* reward, float* value, float* logits) override;

 private:
  /// logits [n, A] and value [n] of latents [n, L] through the prediction network.
  void Predict(const float* latent, int n, float* value, float* logits);

  MuZeroNet net_;
  CategoricalSupport support_;
  std::vector<float> in_, out_, pred_;
};

}  // namespace loantwin
