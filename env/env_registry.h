#pragma once
// Environments by name. Built-ins: "twin" (the five-role lending twin), "cartpole"
// (CartPole-v1) and "home_equity_fund" (a leveraged fund, docs/fund-model.md). All come out as the same vectorised multi-agent API.
//
//   auto env = MakeEnv("twin", {.num_envs = 64, .num_threads = 2, .seed = 1});
//
// A config (YAML mapping) is optional; its keys are the environment's (docs/environment.md).

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "env/multi_agent_env.h"

namespace loantwin {

class YamlValue;

using EnvFactory =
    std::function<std::unique_ptr<MultiAgentEnv>(const EnvOptions&, const YamlValue* config)>;

/// The environment's config (nullptr: defaults) parsed and written back with every default, as
/// a YAML mapping; ConfigError for a bad config.
using EnvConfigResolver = std::function<std::string(const YamlValue* config)>;

/// Registers a new environment; std::invalid_argument if the name is taken. Without a
/// resolver, ResolvedEnvConfig returns the config as given.
void RegisterEnv(const std::string& name, EnvFactory factory, EnvConfigResolver resolver = {});
/// Creates a registered environment; std::invalid_argument listing the names if unknown.
std::unique_ptr<MultiAgentEnv> MakeEnv(const std::string& name, const EnvOptions& options,
                                       const YamlValue* config = nullptr);
/// The resolved env.config of a registered environment (every default filled in), YAML text.
std::string ResolvedEnvConfig(const std::string& name, const YamlValue* config);
/// Registered names, built-ins first.
std::vector<std::string> RegisteredEnvs();

}  // namespace loantwin
