#pragma once
// The `roles:` section of an environment's config, shared by the environments with named roles
// (the twin, the home-equity fund): per role its fallback (baseline | random) and reward
// weights (objective -> weight; objectives not listed weigh 0).
//
//   roles:
//     portfolio: {fallback: baseline, rewards: {equity_value: 1, covenant: 0.5}}

#include <yaml-cpp/yaml.h>

#include <array>
#include <string>
#include <vector>

#include "core/yaml_reader.h"
#include "env/multi_agent_env.h"

namespace loantwin {

/// Reads `roles:` of `m` into roles[r] (.fallback, .reward_weights) for the roles named;
/// ConfigError naming the key for an unknown role, fallback or objective.
template <typename RoleConfig, size_t N>
void ReadRoleConfigs(YamlMap& m, const std::array<const char*, N>& names,
                     const std::vector<std::string>& objectives, std::array<RoleConfig, N>* roles) {
  auto section = m.Get("roles");
  if (!section) return;
  YamlMap rm(*section);
  for (size_t r = 0; r < N; ++r) {
    auto node = rm.Get(names[r]);
    if (!node) continue;
    YamlMap role(*node);
    if (auto f = role.Get("fallback"))
      (*roles)[r].fallback = f->AsEnum({"baseline", "random"}) == "baseline"
                                 ? FallbackPolicy::kBaseline
                                 : FallbackPolicy::kRandom;
    if (auto w = role.Get("rewards")) {
      YamlMap wm(*w);
      (*roles)[r].reward_weights.clear();
      for (const auto& name : objectives)
        if (wm.Has(name)) {
          double weight = 0;
          wm.Read(name, &weight, -1e6, 1e6);
          (*roles)[r].reward_weights.emplace_back(name, weight);
        }
      wm.Done();
    }
    role.Done();
  }
  rm.Done();
}

/// Writes the `roles:` key (every role, fallback and weights) into an open YAML map.
template <typename RoleConfig, size_t N>
void EmitRoleConfigs(YAML::Emitter& out, const std::array<const char*, N>& names,
                     const std::array<RoleConfig, N>& roles) {
  out << YAML::Key << "roles" << YAML::Value << YAML::BeginMap;
  for (size_t r = 0; r < N; ++r) {
    out << YAML::Key << names[r] << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "fallback" << YAML::Value
        << (roles[r].fallback == FallbackPolicy::kBaseline ? "baseline" : "random");
    out << YAML::Key << "rewards" << YAML::Value << YAML::BeginMap;
    for (const auto& [name, weight] : roles[r].reward_weights)
      out << YAML::Key << name << YAML::Value << weight;
    out << YAML::EndMap << YAML::EndMap;
  }
  out << YAML::EndMap;
}

}  // namespace loantwin
