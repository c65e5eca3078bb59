// loantwin: command-line entry point. See docs/cli.md.

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/distributed_common.h"
#include "core/config_error.h"
#include "core/version.h"
#include "env/twin/twin.h"

int main(int argc, char** argv) {
  // Logs to stderr, results to stdout: `loantwin simulate ... > out.csv` holds only the CSV.
  spdlog::set_default_logger(spdlog::stderr_color_mt("loantwin-cli"));
  CLI::App app{"loantwin - multi-agent RL on a digital twin of a retail lending portfolio"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("loantwin ") + loantwin::LoantwinVersion(),
                       "print the version and exit");
  std::vector<std::pair<CLI::App*, loantwin::cli::Runner>> commands;
  auto add = [&](loantwin::cli::Runner (*reg)(CLI::App&)) {
    const size_t before = app.get_subcommands({}).size();
    auto runner = reg(app);
    commands.emplace_back(app.get_subcommands({})[before], runner);
  };
  add(loantwin::cli::RegisterSimulate);
  add(loantwin::cli::RegisterList);
  add(loantwin::cli::RegisterCalibrate);
  add(loantwin::cli::RegisterBacktest);
  add(loantwin::cli::RegisterTrain);
  add(loantwin::cli::RegisterEvaluate);
  add(loantwin::cli::RegisterFairness);
  add(loantwin::cli::RegisterExplain);
  add(loantwin::cli::RegisterValidate);
  add(loantwin::cli::RegisterExport);
  add(loantwin::cli::RegisterFrontier);
  add(loantwin::cli::RegisterSweep);
  add(loantwin::cli::RegisterServe);
  add(loantwin::cli::RegisterAudit);
  add(loantwin::cli::RegisterLaunch);
  add(loantwin::cli::RegisterSync);
  add(loantwin::cli::RegisterSnapshot);
  add(loantwin::cli::RegisterMonitor);
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    std::string names;
    for (auto& [sub, run] : commands) {
      known |= sub->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) {
      std::cerr << "error: unknown command '" << argv[1] << "' (commands: " << names
                << "; see loantwin --help)\n";
      return 2;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // Every malformed option, missing argument or value outside its range: one prefix, one
    // code (2, as for a bad configuration).
    std::cerr << "error: " << e.what() << " (see loantwin " << (argc > 1 ? argv[1] : "")
              << " --help)\n";
    return 2;
  }
  // A rank of a distributed run that fails tells the others why (they name it), then leaves.
  auto fail = [](const std::exception& e, int code) {
    std::cerr << "error: " << e.what() << "\n";
    loantwin::cli::ReportFailure(e.what());
    loantwin::cli::LeaveProcessGroup();
    return code;
  };
  try {
    for (auto& [sub, run] : commands)
      if (sub->parsed()) {
        const int code = run();
        loantwin::cli::LeaveProcessGroup();
        return code;
      }
  } catch (const loantwin::ConfigError& e) {
    return fail(e, 2);
  } catch (const loantwin::InvariantError& e) {
    return fail(e, 3);
  } catch (const std::exception& e) {
    return fail(e, 1);
  }
  return 0;
}
