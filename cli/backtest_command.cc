// `loantwin backtest`: an institution replayed through 2006-2012 against the Federal Reserve's
// published charge-off rates (docs/twin-model.md, "Historic backtest").

#include <fmt/format.h>

#include <ostream>

#include "cli/commands.h"
#include "core/atomic_file.h"
#include "env/twin/backtest.h"
#include "env/twin/institution.h"

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
  cmd->add_option("--out", *out, "also write the quarterly table as CSV (atomically)");
  return [o, out] {
    const BacktestResult r = RunHistoricBacktest(*o);
    const PublishedChargeOffs& fed = FedChargeOffs2006To2012();
    // Mean path, percent. "-": the cited sources do not give that quarter.
    std::vector<int> products;
    for (int p = 0; p < kNumProducts; ++p)
      if (r.offered[p]) products.push_back(p);
    auto header = [&](const char* sep) {
      std::string h = fmt::format("quarter{}unemployment", sep);
      for (int p : products) {
        h += fmt::format("{}{}", sep, kProductNames[p]);
        if (p == kCard || p == kHome) h += fmt::format("{}{}_fed", sep, kProductNames[p]);
      }
      return h + fmt::format("{}allowance_to_loans{}capital_ratio", sep, sep);
    };
    auto row = [&](int q, const char* sep) {
      std::string line = BacktestQuarterName(q) + sep + Pct(r.unemployment[q]);
      for (int p : products) {
        line += sep + Pct(r.charge_off[p][q]);
        if (p == kCard) line += sep + Pct(fed.card[q]);
        if (p == kHome) line += sep + Pct(fed.home[q]);
      }
      return line + sep + Pct(r.allowance_to_loans[q]) + sep + Pct(r.capital_ratio[q]);
    };
    std::string rule = "|";
    for (int i = 0; i < 4; ++i) rule += "---|";  // quarter, unemployment, allowance, capital
    for (int p : products) rule += (p == kCard || p == kHome) ? "---|---|" : "---|";
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
