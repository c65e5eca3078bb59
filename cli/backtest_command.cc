// `loantwin backtest`: an institution replayed through 2006-2012 against the Federal Reserve's
// published charge-off rates (docs/twin-model.md, "Historic backtest").

#include <fmt/format.h>

#include <ostream>

#include "cli/book_backtest_report.h"
#include "cli/commands.h"
#include "core/atomic_file.h"
#include "env/twin/backtest.h"
#include "env/twin/institution.h"
#include "report/gnuplot.h"

namespace loantwin::cli {
namespace {

std::string Pct(double v) {
  return v < 0 ? "-" : fmt::format("{:.2f}", 100 * v);
}

std::string ShowCheck(const CalibrationCheck& c, double v) {
  if (c.unit == "quarter") return BacktestQuarterName(static_cast<int>(v));
  if (c.unit == "x") return fmt::format("{:.2f}x", v);
  return fmt::format("{:.2f}%", 100 * v);
}

}  // namespace

Runner RegisterBacktest(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "backtest",
      "Replay an institution through 2006-2012 and compare its quarterly charge-off rates with "
      "the Federal Reserve's (exit 1 if a window fails)");
  auto o = std::make_shared<BacktestOptions>();
  auto out = std::make_shared<std::string>();
  cmd->add_option("--institution", o->institution, "preset name or YAML file")
      ->capture_default_str();
  AddRunSizeOptions(cmd, &o->paths, &o->seed, &o->threads);
  cmd->add_option("--out", *out,
                  "also write the quarterly table as CSV (atomically); with --performance: the "
                  "report directory (required)");
  auto perf = std::make_shared<std::string>();
  auto scenario = std::make_shared<std::string>();
  auto months = std::make_shared<int>(0);
  auto no_charts = std::make_shared<bool>(false);
  cmd->add_option("--performance", *perf,
                  "monthly loan-level performance of a synced institution's book: backtest the "
                  "twin's forecast of that book against it (docs/digital-twin.md)");
  cmd->add_option("--scenario", *scenario,
                  "with --performance: the macro the actuals lived through (required)");
  cmd->add_option("--months", *months, "with --performance: months compared (0 = all)")
      ->check(CLI::Range(0, 600));
  cmd->add_flag("--no-charts", *no_charts, "with --performance: tables only (no gnuplot)");
  return [o, out, perf, scenario, months, no_charts]() -> int {
    if (!perf->empty()) {
      if (scenario->empty())
        throw std::invalid_argument(
            "--performance needs --scenario: the macro path the actuals lived through");
      if (out->empty()) throw std::invalid_argument("--performance needs --out DIR for the report");
      if (!*no_charts && !GnuplotAvailable())
        throw std::runtime_error(fmt::format(
            "gnuplot ('{}') does not run: install gnuplot-nox (scripts/install-deps.sh), set "
            "LOANTWIN_GNUPLOT, or pass --no-charts",
            GnuplotCommand()));
      const auto inst = LoadInstitution(o->institution);
      const Performance data = LoadPerformance(*perf, *inst);
      BookBacktestOptions bo;
      bo.scenario = *scenario;
      bo.months = *months;
      bo.paths = o->paths;
      bo.seed = o->seed;
      bo.threads = o->threads;
      const BookBacktestResult r = RunBookBacktest(inst, data, bo);
      WriteBookBacktestReport(r, *out, !*no_charts);
      fmt::print("{}\nwrote {}/report.md, report.html, report.json\n", BookBacktestMarkdown(r),
                 *out);
      return 0;
    }
    if (!scenario->empty() || *months != 0 || *no_charts)
      throw std::invalid_argument(
          "--scenario, --months and --no-charts apply with --performance only (the historic "
          "backtest replays historic_2006_2012)");
    const BacktestResult r = RunHistoricBacktest(*o);
    const PublishedChargeOffs& fed = FedChargeOffs2006To2012();
    // Mean path, percent. "-": the cited sources do not give that quarter.
    std::vector<int> products;
    for (int p = 0; p < kNumProducts; ++p)
      if (r.offered[p]) products.push_back(p);
    // Personal and auto together: the release's "other consumer loans".
    const bool other = r.offered[kPersonal] || r.offered[kAuto];
    auto header = [&](const char* sep) {
      std::string h = fmt::format("quarter{}unemployment", sep);
      for (int p : products) {
        h += fmt::format("{}{}", sep, kProductNames[p]);
        if (p == kCard || p == kHome) h += fmt::format("{}{}_fed", sep, kProductNames[p]);
      }
      if (other) h += fmt::format("{}other_consumer", sep);
      return h + fmt::format("{}allowance_to_loans{}capital_ratio", sep, sep);
    };
    auto row = [&](int q, const char* sep) {
      std::string line = BacktestQuarterName(q) + sep + Pct(r.unemployment[q]);
      for (int p : products) {
        line += sep + Pct(r.charge_off[p][q]);
        if (p == kCard) line += sep + Pct(fed.card[q]);
        if (p == kHome) line += sep + Pct(fed.home[q]);
      }
      if (other) line += sep + Pct(r.other_consumer[q]);
      return line + sep + Pct(r.allowance_to_loans[q]) + sep + Pct(r.capital_ratio[q]);
    };
    std::string rule = "|";
    for (int i = 0; i < 4; ++i) rule += "---|";  // quarter, unemployment, allowance, capital
    for (int p : products) rule += (p == kCard || p == kHome) ? "---|---|" : "---|";
    if (other) rule += "---|";
    fmt::print(
        "{} through historic_2006_2012, mean of {} paths (seed {}); charge-off rates "
        "annualised, net, percent; *_fed: published, all US commercial banks\n\n",
        o->institution, o->paths, o->seed);
    fmt::print("| {} |\n{}\n", header(" | "), rule);
    for (int q = 0; q < kBacktestQuarters; ++q) fmt::print("| {} |\n", row(q, " | "));
    int failed = 0;
    fmt::print("\n| check | target | simulated | accepted | pass |\n|---|---|---|---|---|\n");
    for (const auto& c : r.checks) {
      fmt::print("| {} | {} | {} | {} - {} | {} |\n", c.name, c.target, ShowCheck(c, c.simulated),
                 ShowCheck(c, c.lo), ShowCheck(c, c.hi), c.pass() ? "yes" : "NO");
      failed += !c.pass();
    }
    fmt::print("\n{} of {} checks pass\n", r.checks.size() - failed, r.checks.size());
    if (!out->empty())
      WriteFileAtomically(*out, [&](std::ostream& os) {
        os << header(",") << '\n';
        for (int q = 0; q < kBacktestQuarters; ++q) os << row(q, ",") << '\n';
      });
    return failed ? 1 : 0;
  };
}

}  // namespace loantwin::cli
