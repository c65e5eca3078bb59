#include <fmt/format.h>

#include "cli/commands.h"
#include "env/config_paths.h"
#include "env/metrics.h"

namespace loantwin::cli {

Runner RegisterList(CLI::App& app) {
  auto* cmd = app.add_subcommand("list", "List built-in institutions, scenarios or metrics");
  auto what = std::make_shared<std::string>("all");
  cmd->add_option("what", *what, "institutions | scenarios | metrics | all")
      ->check(CLI::IsMember({"institutions", "scenarios", "metrics", "all"}));
  return [what] {
    for (const char* kind : {"institutions", "scenarios"}) {
      if (*what != "all" && *what != kind) continue;
      fmt::print("{} (in {}/{}):\n", kind, ConfigRoot(), kind);
      for (const auto& n : ListConfigs(kind)) fmt::print("  {}\n", n);
    }
    if (*what == "all" || *what == "metrics") {
      fmt::print("metrics (CSV columns):\n");
      for (int i = 0; i < kNumMetrics; ++i)
        fmt::print("  {:<28} {}\n", MetricName(i), MetricDescription(i));
    }
    return 0;
  };
}

}  // namespace loantwin::cli
