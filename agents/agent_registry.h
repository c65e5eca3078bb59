#pragma once
// Learning algorithms by name. Each entry holds the algorithm's hyperparameters (defaults, and
// the one list of fields that drives parsing and the resolved config) and its factory; the
// trainer, the experiment parser and export look algorithms up here and nowhere else.
//
// Adding an algorithm = one file (agents/<name>.{h,cc}: the Agent subclass, its config struct
// with a VisitFields overload, and `AgentAlgorithm <Name>Algorithm()`) and one line in
// agents/agent_registry.cc. docs/architecture.md walks through it.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agents/agent.h"
#include "core/config_fields.h"
#include "core/registry.h"

namespace loantwin {

/// An algorithm's hyperparameters, type-erased. Created with their defaults by the registry,
/// read and written through the config's VisitFields, handed back to the factory.
class AgentOptions {
 public:
  virtual ~AgentOptions() = default;
  virtual std::unique_ptr<AgentOptions> Clone() const = 0;
  /// Reads the keys present (strict: the caller's YamlMap::Done rejects the others).
  virtual void Read(YamlMap& map) = 0;
  /// Writes every field (inside an open YAML map).
  virtual void Write(YAML::Emitter& out) const = 0;
  /// Cross-field problems after reading ("" = none).
  virtual std::string Check() const { return ""; }
};

/// Checks that span several fields of a config; overload for configs that have them.
template <typename Config>
std::string CheckFields(const Config&) {
  return "";
}

/// AgentOptions over a plain config struct with a VisitFields overload.
template <typename Config>
class AgentOptionsOf : public AgentOptions {
 public:
  Config config;
  std::unique_ptr<AgentOptions> Clone() const override {
    return std::make_unique<AgentOptionsOf>(*this);
  }
  void Read(YamlMap& map) override { VisitFields(config, FieldReader{map}); }
  void Write(YAML::Emitter& out) const override {
    Config copy = config;
    VisitFields(copy, FieldWriter{out});
  }
  std::string Check() const override { return CheckFields(config); }
};

/// The typed config inside AgentOptions (std::bad_cast if it holds another algorithm's).
template <typename Config>
const Config& OptionsAs(const AgentOptions& options) {
  return dynamic_cast<const AgentOptionsOf<Config>&>(options).config;
}
template <typename Config>
Config& OptionsAs(AgentOptions& options) {
  return dynamic_cast<AgentOptionsOf<Config>&>(options).config;
}

/// What a factory knows about the role it drives.
struct AgentSpec {
  std::string role;           ///< role name (for errors)
  int obs_dim = 0;            ///< the role's observation width
  int global_state_dim = 0;   ///< all roles' observations side by side (centralised critics)
  std::vector<int64_t> nvec;  ///< values per action component
  int num_envs = 0;           ///< environment instances
  int cadence = 1;            ///< environment steps per decision of the role
  uint64_t seed = 0;          ///< network initialisation and the agent's random stream
  int64_t total_steps = 0;    ///< environment steps of the whole run (schedules)
  int num_costs = 0;          ///< constraints pricing the role (docs/training.md, Constraints)
};

struct AgentAlgorithm {
  /// Default hyperparameters.
  std::function<std::unique_ptr<AgentOptions>()> defaults;
  /// Builds an agent; std::invalid_argument when the role does not suit the algorithm.
  std::function<std::unique_ptr<Agent>(const AgentSpec&, const AgentOptions&)> make;
};

/// The registry of learning algorithms (built-ins: ppo, dqn, muzero).
Registry<AgentAlgorithm>& AgentAlgorithms();

/// A copyable holder of AgentOptions (deep copies).
class AgentOptionsHolder {
 public:
  AgentOptionsHolder() = default;
  explicit AgentOptionsHolder(std::unique_ptr<AgentOptions> p) : p_(std::move(p)) {}
  AgentOptionsHolder(const AgentOptionsHolder& o) : p_(o.p_ ? o.p_->Clone() : nullptr) {}
  AgentOptionsHolder& operator=(const AgentOptionsHolder& o) {
    p_ = o.p_ ? o.p_->Clone() : nullptr;
    return *this;
  }
  AgentOptionsHolder(AgentOptionsHolder&&) = default;
  AgentOptionsHolder& operator=(AgentOptionsHolder&&) = default;
  explicit operator bool() const { return static_cast<bool>(p_); }
  AgentOptions& operator*() const { return *p_; }
  AgentOptions* operator->() const { return p_.get(); }

 private:
  std::unique_ptr<AgentOptions> p_;
};

}  // namespace loantwin
