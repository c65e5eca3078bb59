// manifest.json of an export bundle: parsed and validated against this loantwin's twin (the
// checks that keep a bad component offset from reaching a request); errors, never crashes.

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_common.h"

using namespace loantwin;

namespace {

ExportManifest Described() {
  ExportManifest m;
  EnvOptions options;
  options.num_envs = 1;
  TwinEnv env(options, TwinEnvConfig{});
  m.environment = "twin";
  m.environment_version = env.version();
  m.experiment = "fuzz";
  for (int r = 0; r < env.num_roles(); ++r) {
    ManifestRole role = ExportManifest::DescribeRole(env.role(r));
    role.file = role.name + ".pt";
    role.algorithm = "ppo";
    m.module_sha256[role.file] = std::string(64, '0');
    m.roles.emplace(role.name, role);
  }
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ExportManifest m = Described();
  std::vector<std::string> seeds = {m.ToJson().dump(1)};
  // The probe's case: a component offset far outside the mask.
  nlohmann::json bad = m.ToJson();
  for (auto& [name, role] : bad["roles"].items()) {
    role["actions"][0]["mask_offset"] = 2000000000;
    break;
  }
  seeds.push_back(bad.dump());
  fuzz::WriteSeeds("manifest", seeds);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static TwinEnv* env = [] {
    EnvOptions options;
    options.num_envs = 1;
    return new TwinEnv(options, TwinEnvConfig{});
  }();
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    const ExportManifest m = ExportManifest::FromJson(j, "manifest.json");
    m.Validate(*env, "manifest.json");
    // A manifest that validates describes roles a server can answer with.
    for (const auto& [name, role] : m.roles) {
      const ServedRole served = DescribeServedRole(name, role, "fuzz");
      for (const auto& c : served.components)
        if (c.mask_offset < 0 || c.mask_offset + c.size > served.mask_width) __builtin_trap();
    }
  } catch (const std::exception&) {
  }
  return 0;
}
