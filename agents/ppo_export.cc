// PpoAgent::Export: the greedy policy as a TorchScript module built in C++ (docs/export.md).

#include <fmt/format.h>

#include "agents/export_common.h"
#include "agents/ppo.h"
#include "env/multi_agent_env.h"

namespace loantwin {

torch::jit::Module PpoAgent::DoExport(const RoleSpec& role) const {
  torch::jit::Module m(c10::QualifiedName("loantwin_policy"));
  std::string body = AddObservationInput(m, config_.normalize_obs, obs_rms_, obs_dim_);
  // Actor weights (copies: the exported module does not share memory with the trainer).
  Mlp actor = const_cast<ActorCritic&>(net_)->actor;  // read-only use of the weights
  const size_t layers = actor->layers->size();
  for (size_t k = 0; k < layers; ++k) {
    auto* linear = actor->layers[k]->as<torch::nn::Linear>();
    m.register_parameter(fmt::format("w{}", k), linear->weight.detach().clone(), false);
    m.register_parameter(fmt::format("b{}", k), linear->bias.detach().clone(), false);
  }
  AddActionValues(m, nvec_, role);
  const std::string act = config_.activation == "relu" ? "torch.relu" : "torch.tanh";
  for (size_t k = 0; k < layers; ++k) {
    body += fmt::format("    x = torch.matmul(x, self.w{0}.t()) + self.b{0}\n", k);
    if (k + 1 < layers) body += fmt::format("    x = {}(x)\n", act);
  }
  m.define("def logits(self, obs: Tensor) -> Tensor:\n" + body + "    return x\n" +
           GreedyDecodingSource("logits", nvec_, "-1.0e8"));
  m.eval();
  return m;
}

ExportSummary PpoAgent::Summary() const {
  ExportSummary s;
  s.methods = {"forward(obs, mask) -> int64 [batch, components]",
               "act_values(obs, mask) -> float64 [batch, components]",
               "logits(obs) -> float32 [batch, mask_width]"};
  s.normalises_inside = config_.normalize_obs;
  s.hidden = config_.hidden;
  s.activation = config_.activation;
  return s;
}

}  // namespace loantwin
