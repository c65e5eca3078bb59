#pragma once
// Shared by the libFuzzer targets (docs/operations.md, "Fuzzing"): the twin's roles as a
// bundle serves them, and seed inputs written where LOANTWIN_FUZZ_SEEDS points.

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "agents/export_manifest.h"
#include "env/twin_env.h"
#include "serve/bundle.h"

namespace loantwin::fuzz {

/// The twin's roles, described as an export describes them (features, bounds, actions).
inline const std::map<std::string, ServedRole>& TwinRoles() {
  static const std::map<std::string, ServedRole> roles = [] {
    std::map<std::string, ServedRole> out;
    EnvOptions options;
    options.num_envs = 1;
    TwinEnv env(options, TwinEnvConfig{});
    for (int r = 0; r < env.num_roles(); ++r)
      out.emplace(
          env.role(r).name,
          DescribeServedRole(env.role(r).name, ExportManifest::DescribeRole(env.role(r)), "fuzz"));
    return out;
  }();
  return roles;
}

/// Writes `inputs` as seed files <dir>/<name>-<i> when LOANTWIN_FUZZ_SEEDS names a directory.
inline void WriteSeeds(const std::string& name, const std::vector<std::string>& inputs) {
  const char* dir = std::getenv("LOANTWIN_FUZZ_SEEDS");
  if (!dir || !*dir) return;
  for (size_t i = 0; i < inputs.size(); ++i)
    std::ofstream(std::string(dir) + "/" + name + "-" + std::to_string(i), std::ios::binary)
        << inputs[i];
}

/// An observation object of `role` with every feature at `value` (clamped to its bounds).
inline std::string Observation(const ServedRole& role, double value) {
  nlohmann::json obs = nlohmann::json::object();
  for (size_t k = 0; k < role.features.size(); ++k) {
    double v = value;
    if (v < role.low[k]) v = role.low[k];
    if (v > role.high[k]) v = role.high[k];
    obs[role.features[k]] = v;
  }
  return obs.dump();
}

}  // namespace loantwin::fuzz
