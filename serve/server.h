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

namespace loantwin {

struct ServerOptions {
  std::string bundle;       ///< export directory
  std::string institution;  ///< products and underwriting rules (default: the manifest's)
  std::string address = "127.0.0.1";
  int port = 8080;        ///< 0 = any free port (see Server::port)
  int threads = 2;        ///< I/O threads (each also runs its connections' policy calls)
  std::string audit_log;  ///< "" = no audit log
  bool audit_fsync = false;
  int max_batch = 64;
  int max_delay_us = 0;          ///< 0: a batch holds the requests read in one round of I/O
  int max_queue = 4096;          ///< observations waiting per role; beyond: 503
  size_t body_limit = 1 << 20;   ///< bytes; beyond: 413
  int max_batch_request = 1024;  ///< observations in one request
  int read_timeout_ms = 10000;   ///< a request must arrive within this
  int idle_timeout_ms = 30000;   ///< keep-alive connections idle longer are closed
  bool handle_signals = false;   ///< SIGHUP reloads, SIGINT/SIGTERM shut down gracefully
};

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

  struct Impl;  // opaque (serve/server.cc)

 private:
  std::unique_ptr<Impl> impl_;
};

/// `loantwin audit verify <file>`-style check, for the CLI.
int VerifyAuditCommand(const std::string& file);

}  // namespace loantwin
