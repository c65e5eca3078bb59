#include "training/export.h"

#include <torch/torch.h>

#include <filesystem>

#include "agents/export_manifest.h"
#include "core/atomic_file.h"
#include "core/version.h"
#include "env/multi_agent_env.h"
#include "env/twin_env.h"
#include "training/trainer.h"

namespace loantwin {

std::vector<std::string> ExportRun(Trainer& trainer, const std::string& run_dir,
                                   const std::string& checkpoint, const std::string& out_dir) {
  std::filesystem::create_directories(out_dir);
  MultiAgentEnv& env = trainer.env();
  ExportManifest manifest;
  manifest.loantwin_version = LoantwinVersion();
  manifest.torch_version = TORCH_VERSION;
  manifest.environment = trainer.config().env_name;
  manifest.environment_version = env.version();
  if (const auto* twin = dynamic_cast<const TwinEnv*>(&env)) {
    manifest.institution = twin->config().institution;  // served products and rules (the first)
    if (twin->config().institutions.size() > 1) manifest.institutions = twin->config().institutions;
    manifest.pricing_reference = twin->config().pricing_reference;  // served offered rates
  }
  manifest.experiment = trainer.config().name;
  manifest.source_run = run_dir;
  manifest.checkpoint = checkpoint;
  manifest.global_step = trainer.global_step();
  const ConstraintTracker& constraints = trainer.constraints();
  for (int k = 0; k < constraints.size(); ++k) {
    const ConstraintConfig& c = constraints.config(k);
    nlohmann::json item = {{"name", c.name},         {"metric", c.metric},
                           {"cost", c.cost},         {"limit", c.limit},
                           {"discount", c.discount}, {"lambda", constraints.lambda(k)}};
    if (c.min) item["min"] = *c.min;
    if (c.max) item["max"] = *c.max;
    std::vector<std::string> roles;
    for (int r = 0; r < env.num_roles(); ++r)
      if (constraints.applies(k, r)) roles.push_back(env.role(r).name);
    item["roles"] = roles;
    manifest.constraints.push_back(std::move(item));
  }
  manifest.guardrails = trainer.config().guardrails;
  std::vector<std::string> files;
  auto write_module = [&](const torch::jit::Module& module, const std::string& name) {
    const std::string path = out_dir + "/" + name;
    WriteFileAtomically(path, [&](std::ostream& out) { module.save(out); });
    manifest.module_sha256[name] = FileSha256(path);
    files.push_back(path);
  };
  for (int r = 0; r < env.num_roles(); ++r) {
    Agent* agent = trainer.agent(r);
    if (!agent) continue;
    const RoleSpec& spec = env.role(r);
    const ExportSummary summary = agent->Summary();
    ManifestRole role = ExportManifest::DescribeRole(spec);
    role.file = spec.name + ".pt";
    write_module(agent->Export(spec), role.file);
    for (const auto& [name, module] : agent->ExtraExports()) {
      role.extra_files[name] = spec.name + "_" + name + ".pt";
      write_module(module, role.extra_files[name]);
    }
    role.algorithm = agent->algorithm();
    role.normalised_inside = summary.normalises_inside;
    role.methods = summary.methods;
    role.hyperparameters = {{"hidden", summary.hidden}, {"activation", summary.activation}};
    for (const auto& [k, v] : summary.options) role.hyperparameters[k] = v;
    manifest.roles.emplace(spec.name, std::move(role));
  }
  if (files.empty()) throw std::invalid_argument("the run has no learning roles to export");
  manifest.Save(out_dir);
  files.push_back(out_dir + "/manifest.json");
  return files;
}

}  // namespace loantwin
