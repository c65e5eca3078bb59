#pragma once
// Errors raised at config, file and API boundaries. Messages name the file, line and key path.

#include <stdexcept>
#include <string>

namespace loantwin {

/// A configuration problem a user can fix: unknown key, wrong type, out-of-range value, missing
/// file. what() reads like "configs/x.yaml:12:3: key 'products.card.lgd': 1.7 is out of [0, 1]".
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(const std::string& msg) : std::runtime_error(msg) {}
};

}  // namespace loantwin
