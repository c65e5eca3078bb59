#pragma once
// `loantwin serve`: the reference decision engine over an export bundle (docs/serving.md).
// HTTP/1.1 with keep-alive on Boost.Asio/Beast, one event loop per I/O thread: a connection's
// requests are parsed, micro-batched per role (max batch, max delay; bounded by max queue),
// run through the policy and answered on its own thread. Bundles reload atomically; every
// decision can be written to a hash-chained audit log.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/config_fields.h"

namespace loantwin {

/// Defaults; ranges and meanings: VisitFields below (the CLI's options are made from it).
struct ServerOptions {
  std::string tenants;
  std::string bundle;
  std::string institution;
  std::string address = "127.0.0.1";
  int port = 8080;
  int threads = 2;
  std::string audit_log;
  bool audit_fsync = false;
  int max_batch = 64;
  int max_delay_us = 0;
  int max_queue = 4096;
  uint64_t body_limit = 8 << 20;
  uint64_t max_inflight_body = uint64_t{256} << 20;
  int max_connections = 10000;
  int max_batch_request = 1024;
  int read_timeout_ms = 10000;
  int idle_timeout_ms = 30000;
  std::string admin_token_file;
  std::string admin_address;
  int admin_port = 0;
  std::string bundle_root;
  bool insecure_admin = false;
  bool handle_signals = false;  ///< not an option: SIGHUP reloads, SIGINT/SIGTERM drain
};

/// The server's options, listed once (core/config_fields.h): `loantwin serve --<name>` (with
/// '_' as '-'), their ranges (checked by the Server constructor) and help texts.
template <typename V>
void VisitFields(ServerOptions& o, V&& v) {
  v("tenants", o.tenants,
    "YAML file of tenants, each with its bundle, token, audit log, queue limit and metrics "
    "label, served under /v1/tenants/<name>/ (instead of --bundle; docs/serving.md)");
  v("bundle", o.bundle, "export directory (manifest.json + <role>.pt)");
  v("institution", o.institution, "products and underwriting rules (default: the bundle's)");
  v("address", o.address, "address to listen on");
  v("port", o.port, 0, 65535, "TCP port (0: any free port)");
  v("threads", o.threads, 1, 256, "I/O threads (each also runs its connections' policy calls)");
  v("audit_log", o.audit_log, "append every decision to this hash-chained log");
  v("audit_fsync", o.audit_fsync,
    "fsync the audit log after every decision (survives power loss; slower)");
  v("max_batch", o.max_batch, 1, 65536, "observations per policy call");
  v("max_delay_us", o.max_delay_us, 0, 60000000,
    "longest wait to fill a batch (0: a batch holds what one round of I/O read)");
  v("max_queue", o.max_queue, 1, 10000000, "observations waiting per role before 503");
  v("max_body", o.body_limit, uint64_t{64}, uint64_t{1} << 30,
    "largest request body in bytes (413 beyond)");
  v("max_inflight_body", o.max_inflight_body, uint64_t{64}, uint64_t{1} << 40,
    "request-body bytes held by all connections together (503 beyond; docs/operations.md)");
  v("max_batch_request", o.max_batch_request, 1, 1000000, "observations in one request");
  v("max_connections", o.max_connections, 1, 1000000,
    "open connections; new ones beyond are closed at once");
  v("read_timeout_ms", o.read_timeout_ms, 1, 3600000, "a request must arrive within this");
  v("idle_timeout_ms", o.idle_timeout_ms, 1, 3600000,
    "keep-alive connections idle longer are closed");
  v("admin_token_file", o.admin_token_file,
    "file whose first line is the token /admin/ routes require as 'Authorization: Bearer "
    "<token>' (default: the LOANTWIN_ADMIN_TOKEN environment variable; none: no token)");
  v("admin_address", o.admin_address,
    "serve /admin/ routes on this address only (and not on the decision port)");
  v("admin_port", o.admin_port, 0, 65535, "port of the admin listener (0: any free port)");
  v("bundle_root", o.bundle_root,
    "/admin/reload loads bundles under this directory only (default: the parent directory of "
    "--bundle)");
  v("insecure_admin", o.insecure_admin,
    "allow /admin/ routes without a token on an address beyond loopback (refused otherwise)");
}

class Server {
 public:
  /// Loads and warms up the bundle (throws with the reason when it cannot).
  explicit Server(ServerOptions options);
  ~Server();
  /// Binds and starts the I/O and batching threads.
  void Start();
  /// The bound port (after Start).
  int port() const;
  /// The admin listener's bound port (after Start; 0 without --admin-address).
  int admin_port() const;
  /// Loads `dir` (empty: the current bundle's directory), warms it up and swaps it in; on
  /// failure the old bundle keeps serving. Returns "" or the error.
  std::string Reload(const std::string& dir = "");
  /// The same for one tenant (--tenants); "" or the error.
  std::string ReloadTenant(const std::string& tenant, const std::string& dir = "");
  /// The tenants' names (--tenants; empty without).
  std::vector<std::string> Tenants() const;
  /// A tenant's bundle version (std::invalid_argument for an unknown tenant).
  std::string TenantBundleVersion(const std::string& tenant) const;
  /// Graceful: stop accepting, answer requests already received, close connections, flush
  /// the audit log. Idempotent.
  void Shutdown();
  /// Blocks until the server has shut down.
  void Wait();
  std::string BundleVersion() const;
  /// Observations waiting in the micro-batches, all roles and threads (also /metrics'
  /// loantwin_queue_depth); tests use it as a readiness signal.
  int QueuedObservations() const;
  /// Request-body bytes held by connections (also /metrics' loantwin_request_body_bytes).
  int64_t RequestBodyBytes() const;
  /// Open connections (also /metrics' loantwin_connections).
  int OpenConnections() const;

  struct Impl;  // opaque (serve/server.cc)

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace loantwin
