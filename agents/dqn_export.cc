// DqnAgent::Export: the greedy policy (masked argmax of Q per action component) as a TorchScript
// module built in C++ (docs/export.md).

#include <fmt/format.h>

#include "agents/dqn.h"
#include "agents/export_common.h"
#include "env/multi_agent_env.h"

namespace loantwin {
namespace {

void AddLinear(torch::jit::Module& m, const std::string& name, const torch::nn::LinearImpl& l) {
  m.register_parameter("w_" + name, l.weight.detach().clone(), false);
  m.register_parameter("b_" + name, l.bias.detach().clone(), false);
}

}  // namespace

torch::jit::Module DqnAgent::DoExport(const RoleSpec& role) const {
  torch::jit::Module m(c10::QualifiedName("loantwin_q_policy"));
  std::string body = AddObservationInput(m, config_.normalize_obs, obs_rms_, obs_dim_);
  QNetwork net = const_cast<QNetwork&>(q_);  // read-only use of the weights
  const std::string act = config_.activation == "relu" ? "torch.relu" : "torch.tanh";
  for (size_t k = 0; k < net->trunk->size(); ++k) {
    AddLinear(m, fmt::format("trunk{}", k), *net->trunk[k]->as<torch::nn::Linear>());
    body += fmt::format("    x = {}(torch.matmul(x, self.w_trunk{}.t()) + self.b_trunk{})\n", act,
                        k, k);
  }
  AddLinear(m, "advantage", *net->advantage);
  AddActionValues(m, nvec_, role);
  body += "    a = torch.matmul(x, self.w_advantage.t()) + self.b_advantage\n";
  if (config_.dueling) {  // Q_d = V + A_d - mean(A_d), per action component
    AddLinear(m, "value", *net->value);
    body += "    v = torch.matmul(x, self.w_value.t()) + self.b_value\n";
    std::string parts;
    int64_t off = 0;
    for (size_t d = 0; d < nvec_.size(); ++d) {
      body += fmt::format(
          "    a{0} = a[:, {1}:{2}]\n    q{0} = v + a{0} - a{0}.mean(dim=1, keepdim=True)\n", d,
          off, off + nvec_[d]);
      parts += fmt::format("{}q{}", d ? ", " : "", d);
      off += nvec_[d];
    }
    body += fmt::format("    return torch.cat([{}], dim=1)\n", parts);
  } else {
    body += "    return a\n";
  }
  m.define("def q_values(self, obs: Tensor) -> Tensor:\n" + body +
           GreedyDecodingSource("q_values", nvec_, "-3.0e38"));
  m.eval();
  return m;
}

ExportSummary DqnAgent::Summary() const {
  ExportSummary s;
  s.methods = {"forward(obs, mask) -> int64 [batch, components]",
               "act_values(obs, mask) -> float64 [batch, components]",
               "q_values(obs) -> float32 [batch, mask_width]"};
  s.normalises_inside = config_.normalize_obs;
  s.hidden = config_.hidden;
  s.activation = config_.activation;
  s.options = {{"dueling", config_.dueling ? "true" : "false"},
               {"double_q", config_.double_q ? "true" : "false"},
               {"n_step", std::to_string(config_.n_step)}};
  return s;
}

}  // namespace loantwin
