// MuZeroAgent::Export (the acting path: prediction on the representation, masked argmax) and
// ExportModel (the full model for planners), as TorchScript modules built in C++.

#include <fmt/format.h>

#include "agents/export_common.h"
#include "agents/muzero.h"
#include "agents/normalizer.h"
#include "env/multi_agent_env.h"

namespace loantwin {
namespace {

/// Registers an Mlp's weights as <prefix>_w<k>, <prefix>_b<k>; returns the TorchScript lines
/// computing `out` from `in` (ReLU between layers, none after the last).
std::string AddMlp(torch::jit::Module& m, const std::string& prefix, Mlp& mlp,
                   const std::string& in, const std::string& out) {
  std::string src = fmt::format("    {} = {}\n", out, in);
  const size_t layers = mlp->layers->size();
  for (size_t k = 0; k < layers; ++k) {
    auto* l = mlp->layers[k]->as<torch::nn::Linear>();
    m.register_parameter(fmt::format("{}_w{}", prefix, k), l->weight.detach().clone(), false);
    m.register_parameter(fmt::format("{}_b{}", prefix, k), l->bias.detach().clone(), false);
    src += fmt::format("    {0} = torch.matmul({0}, self.{1}_w{2}.t()) + self.{1}_b{2}\n", out,
                       prefix, k);
    if (k + 1 < layers) src += fmt::format("    {0} = torch.relu({0})\n", out);
  }
  return src;
}

const char* kNormalizeLatent =
    "    lo = torch.min(s, dim=1, keepdim=True)[0]\n"
    "    hi = torch.max(s, dim=1, keepdim=True)[0]\n"
    "    s = (s - lo) / torch.clamp(hi - lo, min=1e-5)\n";

}  // namespace

torch::jit::Module MuZeroAgent::DoExport(const RoleSpec& role) const {
  torch::jit::Module m(c10::QualifiedName("loantwin_muzero_policy"));
  std::string body = AddObservationInput(m, config_.normalize_obs, obs_rms_, obs_dim_);
  MuZeroNet net = const_cast<MuZeroNet&>(net_);  // read-only use of the weights
  body += AddMlp(m, "repr", net->representation, "x", "s");
  body += kNormalizeLatent;
  body += AddMlp(m, "pred", net->prediction, "s", "y");
  body += fmt::format("    return y[:, 0:{}]\n", num_actions_);
  AddActionValues(m, {num_actions_}, role);
  m.define("def policy_logits(self, obs: Tensor) -> Tensor:\n" + body +
           GreedyDecodingSource("policy_logits", {num_actions_}, "-1.0e30"));
  m.eval();
  return m;
}

torch::jit::Module MuZeroAgent::ExportModel() const {
  torch::jit::Module m(c10::QualifiedName("loantwin_muzero_model"));
  MuZeroNet net = const_cast<MuZeroNet&>(net_);
  const int A = num_actions_;
  m.register_buffer("atoms", torch::arange(-support_.size(), support_.size() + 1, torch::kFloat32));
  std::string repr = AddObservationInput(m, config_.normalize_obs, obs_rms_, obs_dim_) +
                     AddMlp(m, "repr", net->representation, "x", "s");
  std::string dyn = AddMlp(m, "dyn", net->dynamics,
                           "torch.cat([s, (action.long().unsqueeze(1) == torch.arange(" +
                               std::to_string(A) + ").unsqueeze(0)).float()], dim=1)",
                           "z");
  std::string pred = AddMlp(m, "pred", net->prediction, "s", "y");
  const std::string decode = fmt::format(R"(
def decode(self, logits: Tensor) -> Tensor:
    y = torch.sum(torch.softmax(logits, dim=1) * self.atoms, dim=1)
    r = (torch.sqrt(1.0 + 4.0 * {0} * (torch.abs(y) + 1.0 + {0})) - 1.0) / (2.0 * {0})
    return torch.sign(y) * (r * r - 1.0)
)",
                                         kHEpsilon);
  const std::string src =
      decode + "\ndef initial_inference(self, obs: Tensor) -> Tuple[Tensor, Tensor, Tensor]:\n" +
      repr + kNormalizeLatent + pred +
      fmt::format("    return s, self.decode(y[:, {0}:]), y[:, 0:{0}]\n", A) +
      "\ndef recurrent_inference(self, s: Tensor, action: Tensor) -> Tuple[Tensor, Tensor, "
      "Tensor, Tensor]:\n" +
      dyn + fmt::format("    r = self.decode(z[:, {0}:])\n    s = z[:, 0:{0}]\n", net->latent_dim) +
      kNormalizeLatent + pred +
      fmt::format("    return s, r, self.decode(y[:, {0}:]), y[:, 0:{0}]\n", A);
  m.define(src);
  m.eval();
  return m;
}

ExportSummary MuZeroAgent::Summary() const {
  ExportSummary s;
  s.methods = {"forward(obs, mask) -> int64 [batch, 1] (prediction policy, no search)",
               "act_values(obs, mask) -> float64 [batch, 1]",
               "policy_logits(obs) -> float32 [batch, actions]"};
  s.hidden = config_.hidden;
  s.activation = "relu";
  s.normalises_inside = config_.normalize_obs;
  s.options = {{"latent_dim", std::to_string(config_.latent_dim)},
               {"support_size", std::to_string(config_.support_size)},
               {"num_simulations", std::to_string(config_.num_simulations)},
               {"planning",
                "decisions in training and evaluation come from MCTS over the full model "
                "(<role>_model.pt: initial_inference(obs) -> (latent, value, policy_logits), "
                "recurrent_inference(latent, action) -> (latent, reward, value, policy_logits)); "
                "<role>.pt is the search-free acting path"}};
  return s;
}

}  // namespace loantwin
