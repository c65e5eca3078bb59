#include "training/export.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "agents/ppo.h"
#include "env/atomic_file.h"
#include "env/multi_agent_env.h"
#include "training/trainer.h"

namespace loantwin {
namespace {

torch::Tensor ToTensor(const std::vector<double>& v) {
  return torch::tensor(v, torch::kFloat64).to(torch::kFloat32);
}

}  // namespace

torch::jit::Module BuildPolicyModule(const PpoAgent& agent, const RoleSpec& role) {
  torch::jit::Module m(c10::QualifiedName("loantwin_policy"));
  const bool normalize = agent.config().normalize_obs;
  m.register_buffer("obs_mean",
                    normalize ? ToTensor(agent.obs_rms().mean()) : torch::zeros({agent.obs_dim()}));
  m.register_buffer("obs_var",
                    normalize ? ToTensor(agent.obs_rms().var()) : torch::ones({agent.obs_dim()}));
  // Actor weights (copies: the exported module does not share memory with the trainer).
  auto& actor = const_cast<PpoAgent&>(agent).net()->actor;
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

std::vector<std::string> ExportRun(Trainer& trainer, const std::string& run_dir,
                                   const std::string& checkpoint, const std::string& out_dir) {
  std::filesystem::create_directories(out_dir);
  MultiAgentEnv& env = trainer.env();
  nlohmann::json manifest;
  manifest["format_version"] = 1;
  manifest["loantwin_version"] = "0.1.0";
  manifest["torch_version"] = TORCH_VERSION;
  manifest["environment"] = trainer.config().env_name;
  manifest["experiment"] = trainer.config().name;
  manifest["source_run"] = run_dir;
  manifest["checkpoint"] = checkpoint;
  manifest["global_step"] = trainer.global_step();
  std::vector<std::string> files;
  for (int r = 0; r < env.num_roles(); ++r) {
    PpoAgent* agent = trainer.agent(r);
    if (!agent) continue;
    const RoleSpec& spec = env.role(r);
    const std::string file = out_dir + "/" + spec.name + ".pt";
    const std::string tmp = file + ".tmp";
    BuildPolicyModule(*agent, spec).save(tmp);
    std::filesystem::rename(tmp, file);
    files.push_back(file);
    nlohmann::json role;
    role["file"] = spec.name + ".pt";
    role["algorithm"] = agent->algorithm();
    role["cadence"] = spec.cadence;
    role["observation"] = {{"dtype", "float32"},
                           {"shape", {"batch", spec.obs_dim()}},
                           {"features", spec.features.names()},
                           {"normalised_inside", agent->config().normalize_obs}};
    role["mask"] = {{"dtype", "uint8 or bool (1 = allowed)"},
                    {"shape", {"batch", spec.action_space.mask_width()}}};
    nlohmann::json components = nlohmann::json::array();
    for (int d = 0; d < spec.action_space.action_dims(); ++d) {
      nlohmann::json c;
      c["name"] = d < static_cast<int>(spec.action_dim_names.size()) ? spec.action_dim_names[d]
                                                                     : std::to_string(d);
      c["size"] = spec.action_space.dims().nvec()[d];
      c["mask_offset"] = spec.action_space.dims().mask_offset(d);
      if (d < static_cast<int>(spec.action_meanings.size()))
        c["meanings"] = spec.action_meanings[d];
      if (d < static_cast<int>(spec.action_values.size())) c["values"] = spec.action_values[d];
      components.push_back(c);
    }
    role["actions"] = components;
    role["methods"] = {"forward(obs, mask) -> int64 [batch, components]",
                       "act_values(obs, mask) -> float64 [batch, components]",
                       "logits(obs) -> float32 [batch, mask_width]"};
    role["hyperparameters"] = {{"hidden", agent->config().hidden},
                               {"activation", agent->config().activation}};
    manifest["roles"][spec.name] = role;
  }
  if (files.empty()) throw std::invalid_argument("the run has no learning roles to export");
  const std::string path = out_dir + "/manifest.json";
  WriteFileAtomically(path, [&](std::ostream& out) { out << manifest.dump(2) << "\n"; });
  files.push_back(path);
  return files;
}

}  // namespace loantwin
