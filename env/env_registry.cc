#include "env/env_registry.h"

#include <fmt/format.h>

#include "core/registry.h"
#include "core/yaml_reader.h"
#include "env/cartpole.h"
#include "env/fund_env.h"
#include "env/twin_env.h"

namespace loantwin {
namespace {

struct EnvEntry {
  EnvFactory make;
  EnvConfigResolver resolve;
};

template <typename Config, typename Env>
EnvEntry BuiltinEnv() {
  auto parse = [](const YamlValue* config) { return config ? Config::Parse(*config) : Config{}; };
  return {[parse](const EnvOptions& o, const YamlValue* config) -> std::unique_ptr<MultiAgentEnv> {
            return std::make_unique<Env>(o, parse(config));
          },
          [parse](const YamlValue* config) { return parse(config).ToYaml(); }};
}

// The built-ins are added in the registry's initialiser (core/registry.h).
Registry<EnvEntry>& Envs() {
  static Registry<EnvEntry> registry(
      "environment", {{"twin", BuiltinEnv<TwinEnvConfig, TwinEnv>()},
                      {"cartpole", BuiltinEnv<CartPoleConfig, CartPoleEnv>()},
                      {"home_equity_fund", BuiltinEnv<FundEnvConfig, HomeEquityFundEnv>()}});
  return registry;
}

}  // namespace

void RegisterEnv(const std::string& name, EnvFactory factory, EnvConfigResolver resolver) {
  if (!factory && !Envs().Has(name))
    throw std::invalid_argument("environment '" + name + "': no factory");
  Envs().Add(name, {std::move(factory), std::move(resolver)});
}

std::unique_ptr<MultiAgentEnv> MakeEnv(const std::string& name, const EnvOptions& options,
                                       const YamlValue* config) {
  return Envs().Get(name).make(options, config);
}

std::string ResolvedEnvConfig(const std::string& name, const YamlValue* config) {
  const EnvEntry entry = Envs().Get(name);
  if (entry.resolve) return entry.resolve(config);
  if (!config) return "{}";
  YAML::Emitter out;
  out << config->node();
  return out.c_str();
}

std::vector<std::string> RegisteredEnvs() {
  return Envs().Names();
}

}  // namespace loantwin
