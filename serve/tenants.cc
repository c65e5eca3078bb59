#include "serve/tenants.h"

#include <fmt/format.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include "core/yaml_reader.h"

namespace loantwin {
namespace {

namespace fs = std::filesystem;

bool IsName(const std::string& s, bool allow_dash) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && !(allow_dash && c == '-'))
      return false;
  return true;
}

/// A path from the tenants file: relative ones are relative to the file's directory.
std::string Resolve(const std::string& base_dir, const std::string& path) {
  const fs::path p(path);
  return (p.is_absolute() ? p : fs::path(base_dir) / p).lexically_normal().string();
}

}  // namespace

std::vector<TenantConfig> LoadTenants(const std::string& file, int default_max_queue,
                                      int max_batch) {
  const YamlValue root = YamlValue::LoadFile(file);
  YamlMap top(root);
  const YamlValue list = top.Require("tenants");
  top.Done();
  if (!list.IsSequence()) list.Fail("must be a list of tenants");
  const auto items = list.Items();
  if (items.empty()) list.Fail("lists no tenant");
  if (items.size() > 1000) list.Fail("lists more than 1,000 tenants");
  const std::string base = fs::path(file).parent_path().string();
  std::vector<TenantConfig> out;
  std::map<std::string, std::string> seen_token, seen_audit, seen_label, seen_name;
  for (const auto& item : items) {
    YamlMap m(item);
    TenantConfig t;
    const YamlValue name = m.Require("name");
    t.name = name.AsString();
    if (!IsName(t.name, true))
      name.Fail("'" + t.name + "' must be 1 to 64 letters, digits, '_' or '-' (a URL segment)");
    if (!seen_name.emplace(t.name, name.Where()).second)
      name.Fail("tenant '" + t.name + "' is listed twice (first at " + seen_name[t.name] + ")");
    const YamlValue bundle = m.Require("bundle");
    t.bundle = Resolve(base, bundle.AsString());
    std::error_code ec;
    if (!fs::is_directory(t.bundle, ec)) bundle.Fail("bundle " + t.bundle + " is not a directory");
    m.Read("institution", &t.institution);
    const auto token_file = m.Get("token_file");
    const auto token_env = m.Get("token_env");
    if (token_file.has_value() == token_env.has_value())
      item.Fail("tenant '" + t.name + "' needs exactly one of token_file and token_env");
    if (token_file) {
      const std::string path = Resolve(base, token_file->AsString());
      try {
        t.token = ReadTokenFile(path);
      } catch (const std::invalid_argument& e) {
        token_file->Fail(std::string("token file ") + e.what());
      }
      t.token_source = "token_file " + path;
      if (t.token.empty()) token_file->Fail("token file " + path + " is empty");
    } else {
      const std::string var = token_env->AsString();
      const char* value = std::getenv(var.c_str());
      t.token = value ? value : "";
      t.token_source = "token_env " + var;
      if (t.token.empty()) token_env->Fail("environment variable " + var + " is not set or empty");
    }
    const YamlValue& token_where = token_file ? *token_file : *token_env;
    if (t.token.size() < 16)
      token_where.Fail("the token of tenant '" + t.name + "' must be at least 16 characters");
    for (char c : t.token)
      if (c < 0x21 || c > 0x7e)
        token_where.Fail("the token of tenant '" + t.name +
                         "' must be printable ASCII without spaces (an HTTP header value)");
    if (const auto [it, fresh] = seen_token.emplace(t.token, t.name); !fresh)
      token_where.Fail("tenants '" + it->second + "' and '" + t.name +
                       "' have the same token: a token must reach one tenant only");
    if (auto audit = m.Get("audit_log")) {
      t.audit_log = Resolve(base, audit->AsString());
      const std::string key = fs::weakly_canonical(t.audit_log, ec).string();
      if (const auto [it, fresh] = seen_audit.emplace(key, t.name); !fresh)
        audit->Fail("tenants '" + it->second + "' and '" + t.name +
                    "' would write the same audit log " + t.audit_log);
    }
    m.Read("audit_fsync", &t.audit_fsync);
    t.max_queue = default_max_queue;
    m.Read("max_queue", &t.max_queue, std::max(1, max_batch), 10000000);
    m.Read("max_inflight", &t.max_inflight, 0, 1000000);
    m.Read("threads", &t.threads, 1, 64);
    m.Read("nice", &t.nice, 0, 19);
    m.Read("cpu_quota", &t.cpu_quota, 0.0, 64.0);
    if (t.cpu_quota > 0 && t.cpu_quota < 0.01)
      m.Get("cpu_quota")
          ->Fail("cpu_quota " + std::to_string(t.cpu_quota) +
                 " is below 0.01 cores: the tenant could hardly decide at all");
    if (t.cpu_quota > t.threads)
      m.Get("cpu_quota")
          ->Fail("cpu_quota " + std::to_string(t.cpu_quota) + " exceeds the " +
                 std::to_string(t.threads) +
                 " policy thread(s) of the tenant: a thread uses at most one core");
    m.Read("max_requests_per_second", &t.max_requests_per_second, 0.0, 1e7);
    t.burst = std::max(1.0, t.max_requests_per_second / 10);
    m.Read("burst", &t.burst, 1.0, 1e7);
    t.metrics_label = t.name;
    if (auto label = m.Get("metrics_label")) {
      t.metrics_label = label->AsString();
      if (!IsName(t.metrics_label, true))
        label->Fail("'" + t.metrics_label + "' must be 1 to 64 letters, digits, '_' or '-'");
    }
    if (const auto [it, fresh] = seen_label.emplace(t.metrics_label, t.name); !fresh)
      item.Fail("tenants '" + it->second + "' and '" + t.name + "' have the same metrics label '" +
                t.metrics_label + "'");
    if (auto root = m.Get("bundle_root")) {
      t.bundle_root = Resolve(base, root->AsString());
      if (!fs::is_directory(t.bundle_root, ec))
        root->Fail("bundle_root " + t.bundle_root + " is not a directory");
    }
    m.Done();
    out.push_back(std::move(t));
  }
  return out;
}

std::string ReadTokenFile(const std::string& file) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) throw std::invalid_argument(file + " is not a file");
  std::ifstream in(file);
  std::string token;
  std::getline(in, token);
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  return token;
}

}  // namespace loantwin
