#pragma once
// Named factories (environments, reward modules, agent algorithms), one template for all.
// Each registry is a function-local static of its owner that adds its built-ins in its
// initialiser, so neither static-initialisation order nor a linker dropping a self-registering
// object can lose an entry:
//
//   Registry<EnvFactory>& Envs() {
//     static Registry<EnvFactory> r("environment", {{"twin", MakeTwin}, {"cartpole", ...}});
//     return r;
//   }
//
// Thread-safe. Entries keep their registration order (built-ins first).

#include <fmt/format.h>

#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace loantwin {

template <typename Value>
class Registry {
 public:
  /// `kind` names the entries in error messages ("environment", "reward module", ...).
  explicit Registry(std::string kind, std::vector<std::pair<std::string, Value>> builtins = {})
      : kind_(std::move(kind)) {
    for (auto& [name, value] : builtins) Add(name, std::move(value));
  }
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  /// std::invalid_argument "<kind> '<name>' is already registered" if the name is taken.
  void Add(const std::string& name, Value value) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& e : entries_)
      if (e.first == name)
        throw std::invalid_argument(fmt::format("{} '{}' is already registered", kind_, name));
    entries_.emplace_back(name, std::move(value));
  }

  /// A copy of the entry; std::invalid_argument "unknown <kind> '<name>' (registered: ...)".
  Value Get(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& e : entries_)
      if (e.first == name) return e.second;
    throw std::invalid_argument(
        fmt::format("unknown {} '{}' (registered: {})", kind_, name, JoinedNamesLocked()));
  }

  bool Has(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& e : entries_)
      if (e.first == name) return true;
    return false;
  }

  /// Registered names in registration order.
  std::vector<std::string> Names() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> names;
    for (const auto& e : entries_) names.push_back(e.first);
    return names;
  }

  const std::string& kind() const { return kind_; }

 private:
  std::string JoinedNamesLocked() const {
    std::string out;
    for (const auto& e : entries_) out += (out.empty() ? "" : ", ") + e.first;
    return out;
  }

  mutable std::mutex mu_;
  std::string kind_;
  std::vector<std::pair<std::string, Value>> entries_;
};

}  // namespace loantwin
