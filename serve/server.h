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

#include "core/config_fields.h"

namespace loantwin {

/// Defaults; ranges and meanings: VisitFields below (the CLI's options are made from it).
struct ServerOptions {
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
  uint64_t body_limit = 1 << 20;
  int max_batch_request = 1024;
  int read_timeout_ms = 10000;
  int idle_timeout_ms = 30000;
  bool handle_signals = false;  ///< not an option: SIGHUP reloads, SIGINT/SIGTERM drain
};

/// The server's options, listed once (core/config_fields.h): `loantwin serve --<name>` (with
/// '_' as '-'), their ranges (checked by the Server constructor) and help texts.
template <typename V>
void VisitFields(ServerOptions& o, V&& v) {
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
  v("max_batch_request", o.max_batch_request, 1, 1000000, "observations in one request");
  v("read_timeout_ms", o.read_timeout_ms, 1, 3600000, "a request must arrive within this");
  v("idle_timeout_ms", o.idle_timeout_ms, 1, 3600000,
    "keep-alive connections idle longer are closed");
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
  /// Loads `dir` (empty: the current bundle's directory), warms it up and swaps it in; on
  /// failure the old bundle keeps serving. Returns "" or the error.
  std::string Reload(const std::string& dir = "");
  /// Graceful: stop accepting, answer requests already received, close connections, flush
  /// the audit log. Idempotent.
  void Shutdown();
  /// Blocks until the server has shut down.
  void Wait();
  std::string BundleVersion() const;
  /// Observations waiting in the micro-batches, all roles and threads (also /metrics'
  /// loantwin_queue_depth); tests use it as a readiness signal.
  int QueuedObservations() const;

  struct Impl;  // opaque (serve/server.cc)

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace loantwin
