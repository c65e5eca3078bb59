// `loantwin simulate --env home_equity_fund`: Monte Carlo fund lives, their IRRs and multiples
// by party and tranche, tails, loss by zone, NAV and distributions over time, stage timings.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <fstream>

#include "cli/fund_cli.h"
#include "core/atomic_file.h"
#include "core/config_error.h"
#include "core/yaml_reader.h"
#include "env/twin/monte_carlo.h"

namespace loantwin::cli {
namespace {

std::vector<double> Column(const FundRun& run, double FundPathResult::*field, bool irr) {
  std::vector<double> v;
  for (const auto& r : run.results) {
    double x = r.*field;
    if (!std::isfinite(x)) x = irr ? -1.0 : 0.0;  // an IRR without anything back: -100%
    v.push_back(x);
  }
  return v;
}

void WriteBands(const FundRun& run, const std::string& path) {
  WriteFileAtomically(path, [&](std::ostream& out) {
    out << "month,nav_p05,nav_p50,nav_p95,equity_nav_p05,equity_nav_p50,equity_nav_p95,"
           "lp_distributions_mean,drawn_mean\n";
    for (int m = 0; m < run.months; ++m) {
      auto mean = [](const std::vector<double>& v) {
        double s = 0;
        for (double x : v) s += x;
        return v.empty() ? 0.0 : s / v.size();
      };
      out << fmt::format("{},{:.2f},{:.2f},{:.2f},{:.2f},{:.2f},{:.2f},{:.2f},{:.2f}\n", m + 1,
                         Quantile(run.nav[m], 0.05), Quantile(run.nav[m], 0.5),
                         Quantile(run.nav[m], 0.95), Quantile(run.equity_nav[m], 0.05),
                         Quantile(run.equity_nav[m], 0.5), Quantile(run.equity_nav[m], 0.95),
                         mean(run.lp_distributions[m]), mean(run.drawn[m]));
    }
  });
}

}  // namespace

FundEnvConfig LoadFundConfig(const std::string& path) {
  if (path.empty()) return FundEnvConfig{};
  const YamlValue root = YamlValue::LoadFile(path);
  // An experiment file: its env.config.
  if (root.IsMap() && root.node()["env"]) {
    YamlValue env(root.node()["env"], root.file_ptr(), "env");
    if (env.IsMap() && env.node()["config"])
      return FundEnvConfig::Parse(YamlValue(env.node()["config"], root.file_ptr(), "env.config"));
    return FundEnvConfig{};
  }
  return FundEnvConfig::Parse(root);
}

void PrintFundSummary(const FundRun& run) {
  fmt::print("{:<40} {:>11} {:>11} {:>11} {:>11}\n", "metric (across paths)", "p05", "median",
             "p95", "mean");
  auto row = [&](const std::string& name, std::vector<double> v, double scale, const char* unit) {
    double s = 0;
    for (double x : v) s += x;
    fmt::print("{:<40} {:>10.2f}{} {:>10.2f}{} {:>10.2f}{} {:>10.2f}{}\n", name,
               Quantile(v, 0.05) * scale, unit, Quantile(v, 0.5) * scale, unit,
               Quantile(v, 0.95) * scale, unit, s / std::max<size_t>(1, v.size()) * scale, unit);
  };
  row("LP IRR", Column(run, &FundPathResult::lp_irr, true), 100, "%");
  row("LP equity multiple", Column(run, &FundPathResult::lp_multiple, false), 1, "x");
  row("GP IRR (commitment + promote)", Column(run, &FundPathResult::gp_irr, true), 100, "%");
  row("GP multiple", Column(run, &FundPathResult::gp_multiple, false), 1, "x");
  row("equity IRR (LP + GP)", Column(run, &FundPathResult::equity_irr, true), 100, "%");
  row("senior notes IRR", Column(run, &FundPathResult::senior_irr, true), 100, "%");
  row("senior notes multiple", Column(run, &FundPathResult::senior_multiple, false), 1, "x");
  row("mezzanine notes IRR", Column(run, &FundPathResult::mezzanine_irr, true), 100, "%");
  row("mezzanine notes multiple", Column(run, &FundPathResult::mezzanine_multiple, false), 1, "x");
  row("GP promote (millions)", Column(run, &FundPathResult::gp_promote, false), 1e-6, " ");
  row("management + origination fees (millions)", Column(run, &FundPathResult::fees, false), 1e-6,
      " ");
  row("default losses (millions)", Column(run, &FundPathResult::default_losses, false), 1e-6, " ");
  row("max leverage (drawn / borrowing base)", Column(run, &FundPathResult::max_leverage, false), 1,
      "x");
  const auto lp = Column(run, &FundPathResult::lp_irr, true);
  const TailRisk t95 = ReturnTail(lp, 0.95), t99 = ReturnTail(lp, 0.99);
  fmt::print(
      "LP IRR tail: VaR 95% {:.2f}%, ES 95% {:.2f}%; VaR 99% {:.2f}%, ES 99% {:.2f}% (the low "
      "tail: the 5% / 1% quantile and the mean below it)\n",
      100 * t95.var, 100 * t95.es, 100 * t99.var, 100 * t99.es);
  int breach = 0, oc = 0, senior_loss = 0, mezz_loss = 0;
  for (const auto& r : run.results)
    breach += r.breach_months > 0, oc += r.oc_fail_months > 0, senior_loss += r.senior_loss > 1,
        mezz_loss += r.mezzanine_loss > 1;
  fmt::print(
      "covenants: {} of {} paths breached the borrowing base (cash swept), {} failed a coverage "
      "test; notes not repaid in full: senior {}, mezzanine {}\n",
      breach, run.paths, oc, senior_loss, mezz_loss);
}

void PrintZoneLosses(const FundRun& run) {
  fmt::print(
      "\nloss by zone (summed over paths; defaulted value = the claims' value at default; loss = "
      "that less the recovery; rate = loss / invested)\n");
  fmt::print("{:<16} {:>16} {:>16} {:>16} {:>10}\n", "zone", "invested (M)", "defaulted value (M)",
             "loss (M)", "rate");
  double ti = 0, td = 0, tl = 0;
  for (size_t z = 0; z < run.zones.size(); ++z) {
    const double inv = run.zone_invested[z] / run.paths, def = run.zone_defaults[z] / run.paths,
                 loss = run.zone_losses[z] / run.paths;
    ti += inv, td += def, tl += loss;
    fmt::print("{:<16} {:>16.2f} {:>16.2f} {:>16.3f} {:>9.2f}%\n", run.zones[z], inv * 1e-6,
               def * 1e-6, loss * 1e-6, inv > 0 ? 100 * loss / inv : 0.0);
  }
  fmt::print("{:<16} {:>16.2f} {:>16.2f} {:>16.3f} {:>9.2f}%\n", "all (per path)", ti * 1e-6,
             td * 1e-6, tl * 1e-6, ti > 0 ? 100 * tl / ti : 0.0);
}

int RunFundSimulate(const FundSimulateArgs& a) {
  FundEnvConfig config = LoadFundConfig(a.config);
  if (!a.scenario.empty()) config.scenario = a.scenario, config.scenarios.clear();
  FundMonteCarloOptions o;
  o.paths = a.paths;
  o.seed = a.seed;
  o.threads = a.threads;
  o.batch = a.batch;
  o.profile = a.profile;
  o.keep_series = true;
  o.progress = [&](int done) { spdlog::info("simulated {}/{} fund paths", done, a.paths); };
  const std::string scenario = config.scenarios.empty() ? config.scenario : config.scenarios[0];
  spdlog::info("home_equity_fund under {}: {} months x {} paths on {} threads, policy {}", scenario,
               config.fund.fund.term_months, a.paths, a.threads, a.policy);
  const FundRun run = RunFundMonteCarlo(
      config, a.policy == "random" ? FallbackPolicy::kRandom : FallbackPolicy::kBaseline, o);
  fmt::print(
      "\nloantwin simulate: home_equity_fund ({:.0f}M committed, {} zones) under {}, policy {}, "
      "{} months x {} paths, seed {} ({:.2f} s, {:.0f} paths/s)\n",
      config.fund.fund.commitment * 1e-6, run.zones.size(), scenario, a.policy, run.months,
      run.paths, a.seed, run.seconds, run.paths / std::max(1e-9, run.seconds));
  PrintFundSummary(run);
  PrintZoneLosses(run);
  fmt::print(
      "\nNAV and distributions over time (millions; NAV median [p05, p95]; LP distributions: "
      "mean a path, cumulative)\n");
  fmt::print("{:>6} {:>30} {:>16} {:>16}\n", "month", "contracts NAV", "equity NAV", "LP distrib.");
  double cum = 0;
  for (int m = 0; m < run.months; ++m) {
    double s = 0;
    for (double x : run.lp_distributions[m]) s += x;
    cum += s / run.paths;
    if ((m + 1) % 12 != 0) continue;
    fmt::print("{:>6} {:>10.1f} [{:>7.1f}, {:>7.1f}] {:>16.1f} {:>16.1f}\n", m + 1,
               Quantile(run.nav[m], 0.5) * 1e-6, Quantile(run.nav[m], 0.05) * 1e-6,
               Quantile(run.nav[m], 0.95) * 1e-6, Quantile(run.equity_nav[m], 0.5) * 1e-6,
               cum * 1e-6);
  }
  if (a.profile) {
    const FundTimers& t = run.timers;
    const double total = t.paths + t.exits + t.leverage + t.waterfall + t.metrics;
    fmt::print("\nprofile (seconds of thread time per stage, {} threads; wall {:.3f} s):\n",
               a.threads, run.seconds);
    for (const auto& [name, v] : std::vector<std::pair<const char*, double>>{
             {"paths (macro + zone HPI)", t.paths},
             {"exits (hazards, payoffs)", t.exits},
             {"leverage (costs, facility, originations)", t.leverage},
             {"waterfall (notes, equity)", t.waterfall},
             {"metrics (month record)", t.metrics}})
      fmt::print("  {:<44} {:>9.3f} s {:>6.1f}%\n", name, v, total > 0 ? 100 * v / total : 0.0);
    fmt::print(
        "  {:<44} {:>9.3f} s (the rest of the wall time: the environment's observations, "
        "masks, baseline decisions and the reductions)\n",
        "total in the fund model", total);
  }
  if (!a.out.empty()) {
    WriteBands(run, a.out);
    spdlog::info("wrote {} (monthly bands)", a.out);
  }
  return 0;
}

}  // namespace loantwin::cli
