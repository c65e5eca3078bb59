#include "env/twin/config_paths.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "core/config_error.h"

namespace fs = std::filesystem;

namespace loantwin {

std::string ConfigRoot() {
  if (const char* env = std::getenv("LOANTWIN_CONFIG_DIR"); env && *env) return env;
#ifdef LOANTWIN_CONFIG_DIR
  if (fs::is_directory(LOANTWIN_CONFIG_DIR)) return LOANTWIN_CONFIG_DIR;
#endif
  return "configs";
}

std::vector<std::string> ListConfigs(const std::string& kind) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fs::path(ConfigRoot()) / kind, ec))
    if (entry.path().extension() == ".yaml") names.push_back(entry.path().stem().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string ResolveConfig(const std::string& kind, const std::string& name_or_path) {
  const bool is_path = name_or_path.find('/') != std::string::npos ||
                       fs::path(name_or_path).extension() == ".yaml" ||
                       fs::path(name_or_path).extension() == ".yml";
  if (is_path) {
    if (fs::is_directory(name_or_path))
      throw ConfigError(
          fmt::format("{}: is a directory; a YAML file is expected here", name_or_path));
    if (!fs::is_regular_file(name_or_path))
      throw ConfigError(fmt::format("{}: no such file", name_or_path));
    return name_or_path;
  }
  const fs::path file = fs::path(ConfigRoot()) / kind / (name_or_path + ".yaml");
  if (fs::is_regular_file(file)) return file.string();
  std::string known;
  for (const auto& n : ListConfigs(kind)) known += (known.empty() ? "" : ", ") + n;
  throw ConfigError(fmt::format("unknown {} '{}' (built-in: {}; or give a path to a .yaml file)",
                                kind.substr(0, kind.size() - 1), name_or_path, known));
}

}  // namespace loantwin
