// `loantwin serve --bundle <export dir>`: the decision engine (docs/serving.md), and
// `loantwin audit verify <file>`: checks an audit log's hash chain.

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "cli/commands.h"
#include "serve/audit.h"
#include "serve/server.h"

namespace loantwin::cli {

namespace {

/// Adds one CLI option per field of a VisitFields list: --<name with '-' for '_'>, numbers
/// range-checked, booleans as flags, defaults shown in --help.
struct CliOptions {
  CLI::App* cmd;
  static std::string Flag(const char* name) {
    std::string f = std::string("--") + name;
    std::replace(f.begin(), f.end(), '_', '-');
    return f;
  }
  template <typename T>
  void operator()(const char* name, T& f, T lo, T hi, const char* help) {
    cmd->add_option(Flag(name), f, help)->check(CLI::Range(lo, hi))->capture_default_str();
  }
  void operator()(const char* name, bool& f, const char* help) {
    cmd->add_flag(Flag(name), f, help);
  }
  void operator()(const char* name, std::string& f, const char* help) {
    cmd->add_option(Flag(name), f, help)->capture_default_str();
  }
};

}  // namespace

Runner RegisterServe(CLI::App& app) {
  auto o = std::make_shared<ServerOptions>();
  auto* cmd = app.add_subcommand("serve", "Serve an exported policy bundle over HTTP");
  VisitFields(*o, CliOptions{cmd});
  cmd->get_option("--bundle")->excludes(cmd->get_option("--tenants"));
  return [o] {
    o->handle_signals = true;
    spdlog::info("serve options: {}", FieldsToYaml(*o, /*flow=*/true));
    Server server(*o);
    server.Start();
    if (o->tenants.empty()) {
      fmt::print(
          "serving {} ({}) on http://{}:{} - {} I/O threads, batches of <= {} within {} us\n",
          o->bundle, server.BundleVersion(), o->address, server.port(), o->threads, o->max_batch,
          o->max_delay_us);
    } else {
      const auto names = server.Tenants();
      fmt::print(
          "serving {} tenants ({}) on http://{}:{}/v1/tenants/<tenant>/ - {} I/O threads, "
          "batches of <= {} within {} us\n",
          names.size(), fmt::join(names, ", "), o->address, server.port(), o->threads, o->max_batch,
          o->max_delay_us);
    }
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
