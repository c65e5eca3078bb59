// `loantwin calibrate`: the calibration table of docs/twin-model.md, recomputed.

#include <fmt/format.h>

#include <cmath>
#include <filesystem>

#include "cli/book_backtest_report.h"
#include "cli/commands.h"
#include "core/atomic_file.h"
#include "env/twin/book_backtest.h"
#include "env/twin/calibration.h"
#include "env/twin/institution.h"
#include "env/twin/loan_tape.h"

namespace loantwin::cli {

Runner RegisterCalibrate(CLI::App& app) {
  auto* cmd = app.add_subcommand("calibrate",
                                 "Simulate the calibration checks and print "
                                 "target vs simulated (exit 1 if any fails)");
  auto o = std::make_shared<CalibrationOptions>();
  AddRunSizeOptions(cmd, &o->paths, &o->seed, &o->threads);
  struct Fit {
    bool fit = false;
    std::string institution, performance, scenario, out;
  };
  auto f = std::make_shared<Fit>();
  cmd->add_flag("--fit", f->fit,
                "fit a synced institution's transition multipliers to its performance "
                "(docs/digital-twin.md, \"Fitting\")");
  cmd->add_option("--institution", f->institution, "with --fit: the synced institution");
  cmd->add_option("--performance", f->performance, "with --fit: its monthly performance");
  cmd->add_option("--scenario", f->scenario, "with --fit: the macro the actuals lived through");
  cmd->add_option("--out", f->out, "with --fit: directory of the fitted institution");
  return [o, f]() -> int {
    if (f->fit) {
      if (f->institution.empty() || f->performance.empty() || f->scenario.empty() || f->out.empty())
        throw std::invalid_argument(
            "--fit needs --institution, --performance, --scenario and --out");
      namespace fs = std::filesystem;
      const auto inst = LoadInstitution(f->institution);
      const Performance perf = LoadPerformance(f->performance, *inst);
      const auto fits = FitMultipliers(inst, perf, f->scenario, o->seed);
      fmt::print(
          "Maximum-likelihood multipliers of {}'s monthly transitions ({} months of {}, "
          "macro {} seed {}):\n\n{}\n",
          inst->name, perf.months, f->performance, f->scenario, o->seed, FitMarkdown(fits));
      fs::create_directories(f->out);
      const std::string base = fs::absolute(f->institution).lexically_normal().string();
      WriteFileAtomically((fs::path(f->out) / "institution.yaml").string(), [&](std::ostream& os) {
        os << FittedInstitutionYaml(*inst, base, fits);
      });
      WriteFileAtomically((fs::path(f->out) / "book.csv").string(), [&](std::ostream& os) {
        WriteTapeHeader(os);
        for (int p = 0; p < kNumProducts; ++p)
          for (const TapeLoan& l : inst->book->loans[p])
            WriteTapeRow(os, p, inst->products[p].spec.variable_rate, l);
      });
      const auto fitted = LoadInstitution(f->out);
      BookBacktestOptions bo;
      bo.scenario = f->scenario;
      bo.paths = o->paths;
      bo.seed = o->seed;
      bo.threads = o->threads;
      const auto before = RunBookBacktest(inst, perf, bo);
      const auto after = RunBookBacktest(fitted, LoadPerformance(f->performance, *fitted), bo);
      fmt::print(
          "Backtest errors before and after ({} paths):\n\n| product | metric | MAPE "
          "before | MAPE after | coverage before | coverage after |\n|---|---|---|---|---|---|\n",
          o->paths);
      auto pct = [](double v) {
        return std::isnan(v) ? std::string("-") : fmt::format("{:.1f}%", 100 * v);
      };
      for (size_t i = 0; i < before.metrics.size() && i < after.metrics.size(); ++i) {
        const auto& b = before.metrics[i];
        const auto& a = after.metrics[i];
        if (b.metric < kBmEntryRate) continue;
        fmt::print("| {} | {} | {} | {} | {} | {} |\n", kProductNames[b.product],
                   BookMetricNames()[b.metric], pct(b.mape), pct(a.mape), pct(b.coverage),
                   pct(a.coverage));
      }
      fmt::print(
          "\ntransition MAPE: {} before, {} after (quarters: {} before, {} after)\nwrote {} (use "
          "--institution {})\n",
          pct(before.transition_mape), pct(after.transition_mape),
          pct(before.quarterly_transition_mape), pct(after.quarterly_transition_mape), f->out,
          f->out);
      return 0;
    }
    if (!f->institution.empty() || !f->performance.empty() || !f->scenario.empty() ||
        !f->out.empty())
      throw std::invalid_argument(
          "--institution, --performance, --scenario and --out apply with --fit only");
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
