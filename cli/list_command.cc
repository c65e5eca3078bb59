#include <fmt/format.h>

#include "cli/commands.h"
#include "env/env_registry.h"
#include "env/twin/config_paths.h"
#include "env/twin/metrics.h"
#include "rewards/reward.h"

namespace loantwin::cli {

Runner RegisterList(CLI::App& app) {
  auto* cmd = app.add_subcommand("list", "List built-in institutions, scenarios or metrics");
  auto what = std::make_shared<std::string>("all");
  cmd->add_option("what", *what,
                  "institutions | scenarios | metrics | environments | rewards | all")
      ->check(CLI::IsMember(
          {"institutions", "scenarios", "metrics", "environments", "rewards", "all"}));
  return [what] {
    for (const char* kind : {"institutions", "scenarios"}) {
      if (*what != "all" && *what != kind) continue;
      fmt::print("{} (in {}/{}):\n", kind, ConfigRoot(), kind);
      for (const auto& n : ListConfigs(kind)) fmt::print("  {}\n", n);
    }
    if (*what == "all" || *what == "environments") {
      fmt::print("environments:\n");
      for (const auto& n : RegisteredEnvs()) fmt::print("  {}\n", n);
    }
    if (*what == "all" || *what == "rewards") {
      fmt::print("rewards (objectives):\n");
      for (const auto& n : RegisteredRewards())
        fmt::print("  {:<14} {}\n", n, MakeReward(n)->formula());
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
