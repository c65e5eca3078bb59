// `loantwin calibrate`: the calibration table of docs/twin-model.md, recomputed.

#include <fmt/format.h>

#include "cli/commands.h"
#include "env/twin/calibration.h"

namespace loantwin::cli {

Runner RegisterCalibrate(CLI::App& app) {
  auto* cmd = app.add_subcommand("calibrate",
                                 "Simulate the calibration checks and print "
                                 "target vs simulated (exit 1 if any fails)");
  auto o = std::make_shared<CalibrationOptions>();
  AddRunSizeOptions(cmd, &o->paths, &o->seed, &o->threads);
  return [o] {
    const auto checks = RunCalibration(*o);
    int failed = 0;
    fmt::print("| check | target | simulated | accepted | pass |\n|---|---|---|---|---|\n");
    for (const auto& c : checks) {
      auto show = [&](double v) {
        return c.unit == "x" ? fmt::format("{:.2f}x", v) : fmt::format("{:.3f}%", 100 * v);
      };
      const std::string range = show(c.lo) + " - " + show(c.hi);
      fmt::print("| {} | {} | {} | {} | {} |\n", c.name, c.target, show(c.simulated), range,
                 c.pass() ? "yes" : "NO");
      failed += !c.pass();
    }
    fmt::print("\n{} of {} checks pass ({} paths, seed {})\n", checks.size() - failed,
               checks.size(), o->paths, o->seed);
    return failed ? 1 : 0;
  };
}

}  // namespace loantwin::cli
