// PpoAgent::Export: the greedy policy as a TorchScript module built in C++ (docs/export.md).

#include <fmt/format.h>

#include "agents/ppo.h"
#include "env/multi_agent_env.h"

namespace loantwin {
namespace {

torch::Tensor ToTensor(const std::vector<double>& v) {
  return torch::tensor(v, torch::kFloat64).to(torch::kFloat32);
}

}  // namespace

torch::jit::Module PpoAgent::Export(const RoleSpec& role) const {
  const PpoAgent& agent = *this;
  torch::jit::Module m(c10::QualifiedName("loantwin_policy"));
  const bool normalize = agent.config().normalize_obs;
  m.register_buffer("obs_mean",
                    normalize ? ToTensor(agent.obs_rms().mean()) : torch::zeros({agent.obs_dim()}));
  m.register_buffer("obs_var",
                    normalize ? ToTensor(agent.obs_rms().var()) : torch::ones({agent.obs_dim()}));
  // Actor weights (copies: the exported module does not share memory with the trainer).
  Mlp actor = const_cast<ActorCritic&>(net_)->actor;  // read-only use of the weights
  const size_t layers = actor->layers->size();
  for (size_t k = 0; k < layers; ++k) {
    auto* linear = actor->layers[k]->as<torch::nn::Linear>();
    m.register_parameter(fmt::format("w{}", k), linear->weight.detach().clone(), false);
    m.register_parameter(fmt::format("b{}", k), linear->bias.detach().clone(), false);
  }
  // Action value table [D, max_n] (index -> numeric value), padded with 0.
  const auto& nvec = agent.nvec();
  int64_t max_n = 0;
  for (int64_t n : nvec) max_n = std::max(max_n, n);
  torch::Tensor values = torch::zeros({static_cast<int64_t>(nvec.size()), max_n}, torch::kFloat64);
  for (size_t d = 0; d < nvec.size(); ++d)
    for (int64_t v = 0; v < nvec[d]; ++v)
      values[d][v] =
          d < role.action_values.size() ? role.action_values[d][v] : static_cast<double>(v);
  m.register_buffer("action_values", values);

  const std::string act = agent.config().activation == "relu" ? "torch.relu" : "torch.tanh";
  std::string body;
  body += "    x = obs.float()\n";
  if (normalize)
    body +=
        "    x = torch.clamp((x - self.obs_mean) / torch.sqrt(self.obs_var + 1e-8), -10.0, 10.0)\n";
  for (size_t k = 0; k < layers; ++k) {
    body += fmt::format("    x = torch.matmul(x, self.w{0}.t()) + self.b{0}\n", k);
    if (k + 1 < layers) body += fmt::format("    x = {}(x)\n", act);
  }
  std::string argmax;
  int64_t off = 0;
  for (size_t d = 0; d < nvec.size(); ++d) {
    argmax += fmt::format("    a{} = torch.argmax(z[:, {}:{}], dim=1)\n", d, off, off + nvec[d]);
    off += nvec[d];
  }
  std::string stack;
  for (size_t d = 0; d < nvec.size(); ++d) stack += fmt::format("{}a{}", d ? ", " : "", d);
  const std::string src = fmt::format(R"(
def logits(self, obs: Tensor) -> Tensor:
{0}    return x

def forward(self, obs: Tensor, mask: Tensor) -> Tensor:
    z = self.logits(obs).masked_fill(mask == 0, -1.0e8)
{1}    return torch.stack([{2}], dim=1)

def act_values(self, obs: Tensor, mask: Tensor) -> Tensor:
    a = self.forward(obs, mask)
    rows = torch.arange(a.size(1)).unsqueeze(0).expand(a.size(0), a.size(1))
    return self.action_values[rows, a]
)",
                                      body, argmax, stack);
  m.define(src);
  m.eval();
  return m;
}

}  // namespace loantwin
