#pragma once
// `loantwin serve --tenants tenants.yaml`: several institutions' bundles in one process. Each
// tenant has its own bundle, API token, audit log, queue limit and metrics label, and is reached
// under /v1/tenants/<name>/ with its own token only (docs/serving.md, "Multi-tenant serving").

#include <string>
#include <vector>

namespace loantwin {

struct TenantConfig {
  std::string name;          ///< [A-Za-z0-9_-], 1..64 characters; the route segment
  std::string bundle;        ///< export directory (relative paths: to the tenants file)
  std::string institution;   ///< "" = the bundle's
  std::string token;         ///< read from token_file or token_env; >= 16 characters
  std::string token_source;  ///< "token_file <path>" or "token_env <NAME>" (messages)
  std::string audit_log;     ///< "" = no audit log
  bool audit_fsync = false;
  int max_queue = 0;     ///< observations waiting per role (default: --max-queue)
  int max_inflight = 0;  ///< decision requests admitted and not yet answered (0: no limit)
  int threads = 1;       ///< the tenant's own policy threads
  int nice = 0;          ///< their nice value, 0..19 (higher: yields the cores to other tenants)
  double cpu_quota = 0;  ///< cores of CPU its policy threads may use (0: no limit; <= threads)
  double max_requests_per_second = 0;  ///< decision requests admitted per second (0: no limit)
  double burst = 1;                    ///< admitted at once after a quiet spell (default rate/10)
  std::string metrics_label;           ///< the tenant="..." label on /metrics (default: name)
  std::string bundle_root;             ///< reloads stay under it (default: the bundle's parent)
};

/// Reads and checks the tenants file: known keys only, names, tokens, audit logs and labels
/// unique, tokens present and long enough, directories that exist. ConfigError names the
/// file, line and key. `default_max_queue` fills max_queue where a tenant does not set it;
/// `max_batch` is the smallest max_queue allowed.
std::vector<TenantConfig> LoadTenants(const std::string& file, int default_max_queue,
                                      int max_batch);

/// A token file's first line without trailing whitespace ("" for an empty file): the admin
/// token and the tenants' tokens are read alike. std::invalid_argument "<file> is not a file"
/// when it is missing or a directory.
std::string ReadTokenFile(const std::string& file);

}  // namespace loantwin
