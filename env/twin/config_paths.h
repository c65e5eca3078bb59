#pragma once
// Resolving "a name or a path" for presets and scenarios.

#include <string>
#include <vector>

namespace loantwin {

/// The directory holding configs/ (institutions/, scenarios/). Order: $LOANTWIN_CONFIG_DIR, the
/// source tree's configs/ (compiled in), ./configs.
std::string ConfigRoot();

/// `name_or_path` is a path if it contains '/' or ends in ".yaml"/".yml"; otherwise it is looked
/// up as <ConfigRoot()>/<kind>/<name>.yaml. Unknown names -> ConfigError listing the known ones.
std::string ResolveConfig(const std::string& kind, const std::string& name_or_path);

/// Names of the built-in configs of a kind ("institutions", "scenarios"), sorted.
std::vector<std::string> ListConfigs(const std::string& kind);

}  // namespace loantwin
