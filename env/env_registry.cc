#include "env/env_registry.h"

#include <fmt/format.h>

#include <mutex>
#include <stdexcept>

#include "env/cartpole.h"
#include "env/twin_env.h"
#include "env/yaml_reader.h"

namespace loantwin {
namespace {

CartPoleConfig ParseCartPole(const YamlValue& value) {
  CartPoleConfig c;
  YamlMap m(value);
  m.Read("gravity", &c.gravity, 0.0, 100.0);
  m.Read("cart_mass", &c.cart_mass, 1e-6, 1e3);
  m.Read("pole_mass", &c.pole_mass, 1e-6, 1e3);
  m.Read("pole_half_length", &c.pole_half_length, 1e-6, 1e3);
  m.Read("force", &c.force, 0.0, 1e4);
  m.Read("tau", &c.tau, 1e-6, 1.0);
  m.Read("x_limit", &c.x_limit, 1e-6, 1e3);
  m.Read("theta_limit", &c.theta_limit, 1e-6, 3.2);
  m.Read("reset_noise", &c.reset_noise, 0.0, 1.0);
  m.Read("max_episode_steps", &c.max_episode_steps, 1, 1000000);
  m.Done();
  return c;
}

// The registry lives in a function-local static (no static-initialisation order issues) and
// registers the built-ins itself, so no self-registering object can be dropped by the linker.
struct Registry {
  std::mutex mu;
  std::vector<std::pair<std::string, EnvFactory>> entries;
  Registry() {
    entries.emplace_back("twin", [](const EnvOptions& o, const YamlValue* config) {
      return std::make_unique<TwinEnv>(o, config ? TwinEnvConfig::Parse(*config) : TwinEnvConfig{});
    });
    entries.emplace_back("cartpole", [](const EnvOptions& o, const YamlValue* config) {
      return std::make_unique<CartPoleEnv>(o, config ? ParseCartPole(*config) : CartPoleConfig{});
    });
  }
};

Registry& GetRegistry() {
  static Registry registry;
  return registry;
}

}  // namespace

void RegisterEnv(const std::string& name, EnvFactory factory) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  for (const auto& e : r.entries)
    if (e.first == name)
      throw std::invalid_argument("environment '" + name + "' is already registered");
  r.entries.emplace_back(name, std::move(factory));
}

std::unique_ptr<MultiAgentEnv> MakeEnv(const std::string& name, const EnvOptions& options,
                                       const YamlValue* config) {
  EnvFactory factory;
  std::string known;
  {
    Registry& r = GetRegistry();
    std::lock_guard<std::mutex> lock(r.mu);
    for (const auto& e : r.entries) {
      if (e.first == name) factory = e.second;
      known += (known.empty() ? "" : ", ") + e.first;
    }
  }
  if (!factory)
    throw std::invalid_argument(
        fmt::format("unknown environment '{}' (registered: {})", name, known));
  return factory(options, config);
}

std::vector<std::string> RegisteredEnvs() {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> names;
  for (const auto& e : r.entries) names.push_back(e.first);
  return names;
}

}  // namespace loantwin
