#include "training/export.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "agents/muzero.h"
#include "env/atomic_file.h"
#include "env/multi_agent_env.h"
#include "env/twin_env.h"
#include "training/trainer.h"

namespace loantwin {
std::vector<std::string> ExportRun(Trainer& trainer, const std::string& run_dir,
                                   const std::string& checkpoint, const std::string& out_dir) {
  std::filesystem::create_directories(out_dir);
  MultiAgentEnv& env = trainer.env();
  nlohmann::json manifest;
  manifest["format_version"] = 1;
  manifest["loantwin_version"] = "0.1.0";
  manifest["torch_version"] = TORCH_VERSION;
  manifest["environment"] = trainer.config().env_name;
  manifest["environment_version"] = env.version();
  if (const auto* twin = dynamic_cast<const TwinEnv*>(&env))
    manifest["institution"] = twin->config().institution;  // served products and rules
  manifest["experiment"] = trainer.config().name;
  manifest["source_run"] = run_dir;
  manifest["checkpoint"] = checkpoint;
  manifest["global_step"] = trainer.global_step();
  std::vector<std::string> files;
  for (int r = 0; r < env.num_roles(); ++r) {
    Agent* agent = trainer.agent(r);
    if (!agent) continue;
    const RoleSpec& spec = env.role(r);
    const ExportSummary summary = agent->Summary();
    const std::string file = out_dir + "/" + spec.name + ".pt";
    const std::string tmp = file + ".tmp";
    agent->Export(spec).save(tmp);
    std::filesystem::rename(tmp, file);
    files.push_back(file);
    std::string model_file;
    if (const auto* mz = dynamic_cast<const MuZeroAgent*>(agent)) {  // planning needs the model
      model_file = spec.name + "_model.pt";
      const std::string path = out_dir + "/" + model_file;
      mz->ExportModel().save(path + ".tmp");
      std::filesystem::rename(path + ".tmp", path);
      files.push_back(path);
    }
    nlohmann::json role;
    role["file"] = spec.name + ".pt";
    if (!model_file.empty()) role["model_file"] = model_file;
    role["algorithm"] = agent->algorithm();
    role["cadence"] = spec.cadence;
    role["observation"] = {{"dtype", "float32"},
                           {"shape", {"batch", spec.obs_dim()}},
                           {"features", spec.features.names()},
                           {"normalised_inside", summary.normalises_inside}};
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
    role["methods"] = summary.methods;
    role["hyperparameters"] = {{"hidden", summary.hidden}, {"activation", summary.activation}};
    for (const auto& [k, v] : summary.options) role["hyperparameters"][k] = v;
    manifest["roles"][spec.name] = role;
  }
  if (files.empty()) throw std::invalid_argument("the run has no learning roles to export");
  const std::string path = out_dir + "/manifest.json";
  WriteFileAtomically(path, [&](std::ostream& out) { out << manifest.dump(2) << "\n"; });
  files.push_back(path);
  return files;
}

}  // namespace loantwin
