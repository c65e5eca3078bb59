// `loantwin serve --bundle <export dir>`: the decision engine (docs/serving.md), and
// `loantwin audit verify <file>`: checks an audit log's hash chain.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cli/commands.h"
#include "serve/server.h"

namespace loantwin::cli {

Runner RegisterServe(CLI::App& app) {
  auto o = std::make_shared<ServerOptions>();
  auto* cmd = app.add_subcommand("serve", "Serve an exported policy bundle over HTTP");
  cmd->add_option("--bundle", o->bundle, "export directory (manifest.json + <role>.pt)")
      ->required();
  cmd->add_option("--port", o->port, "TCP port (0: any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--address", o->address, "address to listen on")->capture_default_str();
  cmd->add_option("--threads", o->threads, "I/O threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--audit-log", o->audit_log, "append every decision to this hash-chained log");
  cmd->add_flag("--audit-fsync", o->audit_fsync,
                "fsync the audit log after every decision (survives power loss; slower)");
  cmd->add_option("--max-batch", o->max_batch, "observations per policy call")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  cmd->add_option("--max-delay-us", o->max_delay_us, "longest wait to fill a batch")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  cmd->add_option("--max-queue", o->max_queue, "observations waiting per role before 503")
      ->check(CLI::Range(1, 10000000))
      ->capture_default_str();
  cmd->add_option("--max-body", o->body_limit, "largest request body in bytes (413 beyond)")
      ->check(CLI::Range(size_t{64}, size_t{1} << 30))
      ->capture_default_str();
  cmd->add_option("--read-timeout-ms", o->read_timeout_ms, "a request must arrive within this")
      ->check(CLI::Range(1, 3600000))
      ->capture_default_str();
  cmd->add_option("--idle-timeout-ms", o->idle_timeout_ms, "idle keep-alive connections close")
      ->check(CLI::Range(1, 3600000))
      ->capture_default_str();
  cmd->add_option("--institution", o->institution,
                  "products and underwriting rules (default: the bundle's)");
  return [o] {
    o->handle_signals = true;
    Server server(*o);
    server.Start();
    fmt::print("serving {} ({}) on http://{}:{} - {} I/O threads, batches of <= {} within {} us\n",
               o->bundle, server.BundleVersion(), o->address, server.port(), o->threads,
               o->max_batch, o->max_delay_us);
    std::fflush(stdout);
    server.Wait();
    fmt::print("shut down\n");
    return 0;
  };
}

Runner RegisterAudit(CLI::App& app) {
  auto file = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("audit", "Audit-log tools");
  auto* verify = cmd->add_subcommand("verify", "Check an audit log's hash chain");
  verify->add_option("file", *file, "audit log written by loantwin serve --audit-log")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->require_subcommand(1);
  return [file] { return VerifyAuditCommand(*file); };
}

}  // namespace loantwin::cli
