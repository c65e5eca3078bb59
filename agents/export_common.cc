#include "agents/export_common.h"

#include <fmt/format.h>

#include <algorithm>

#include "agents/normalizer.h"
#include "env/multi_agent_env.h"

namespace loantwin {
namespace {

torch::Tensor ToTensor(const std::vector<double>& v) {
  return torch::tensor(v, torch::kFloat64).to(torch::kFloat32);
}

}  // namespace

std::string AddObservationInput(torch::jit::Module& m, bool normalize, const RunningMeanStd& rms,
                                int64_t obs_dim) {
  m.register_buffer("obs_mean", normalize ? ToTensor(rms.mean()) : torch::zeros({obs_dim}));
  m.register_buffer("obs_var", normalize ? ToTensor(rms.var()) : torch::ones({obs_dim}));
  std::string src = "    x = obs.float()\n";
  if (normalize)
    src +=
        "    x = torch.clamp((x - self.obs_mean) / torch.sqrt(self.obs_var + 1e-8), -10.0, 10.0)\n";
  return src;
}

void AddActionValues(torch::jit::Module& m, const std::vector<int64_t>& nvec,
                     const RoleSpec& role) {
  int64_t max_n = 0;
  for (int64_t n : nvec) max_n = std::max(max_n, n);
  torch::Tensor values = torch::zeros({static_cast<int64_t>(nvec.size()), max_n}, torch::kFloat64);
  for (size_t d = 0; d < nvec.size(); ++d)
    for (int64_t v = 0; v < nvec[d]; ++v)
      values[d][v] =
          d < role.action_values.size() ? role.action_values[d][v] : static_cast<double>(v);
  m.register_buffer("action_values", values);
}

std::string GreedyDecodingSource(const std::string& scores_method, const std::vector<int64_t>& nvec,
                                 const std::string& masked_fill) {
  std::string argmax, stack;
  int64_t off = 0;
  for (size_t d = 0; d < nvec.size(); ++d) {
    argmax += fmt::format("    a{} = torch.argmax(z[:, {}:{}], dim=1)\n", d, off, off + nvec[d]);
    stack += fmt::format("{}a{}", d ? ", " : "", d);
    off += nvec[d];
  }
  return fmt::format(R"(
def forward(self, obs: Tensor, mask: Tensor) -> Tensor:
    z = self.{0}(obs).masked_fill(mask == 0, {1})
{2}    return torch.stack([{3}], dim=1)

def act_values(self, obs: Tensor, mask: Tensor) -> Tensor:
    a = self.forward(obs, mask)
    rows = torch.arange(a.size(1)).unsqueeze(0).expand(a.size(0), a.size(1))
    return self.action_values[rows, a]
)",
                     scores_method, masked_fill, argmax, stack);
}

}  // namespace loantwin
