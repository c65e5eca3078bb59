// `loantwin simulate`: Monte Carlo paths of one institution under one scenario with the
// rule-based levers; CSV of monthly metrics and a summary table.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>
#include <thread>

#include "cli/commands.h"
#include "cli/fund_cli.h"
#include "core/atomic_file.h"
#include "env/policy_monte_carlo.h"
#include "env/twin/institution.h"
#include "env/twin/levers.h"
#include "env/twin/rate_sensitivity.h"
#include "env/twin/scenario.h"

namespace loantwin::cli {
namespace {

struct SimulateArgs {
  std::string institution = "cu_small";
  std::string scenario = "steady_state";
  int months = 120;
  int paths = 100;
  uint64_t seed = 1;
  std::string out;
  std::string output = "paths";
  bool check_invariants = false;
  std::string policy = "baseline";
  int threads = 0;
  int batch = 0;  // 0: the environment's (twin 64, fund 256)
  int exact_band_paths = 1000;
  bool rate_shocks = false;
  bool resolve_failures = false;
  std::string env = "twin";
  std::string config;
  bool profile = false;
};

void PrintNiiSensitivity(const std::vector<NiiSensitivityRow>& rows) {
  fmt::print(
      "\n12-month NII sensitivity (policy, 10-year and mortgage rates shifted in parallel from "
      "month 1 on the opening balance sheet, floored at 0; the preset's static levers; the same "
      "paths)\n");
  fmt::print("{:>10} {:>16} {:>16} {:>10}\n", "shift", "NII (millions)", "change", "change %");
  for (const auto& r : rows)
    fmt::print("{:>+8.0f}bp {:>16.3f} {:>+16.3f} {:>+9.2f}%\n", r.shift_bp, r.nii * 1e-6,
               r.change * 1e-6, r.change_pct);
}

void PrintEveSensitivity(const std::vector<EveSensitivityRow>& rows) {
  fmt::print(
      "\nEconomic value of equity at month 0 (path 0's opening balance sheet; every rate "
      "shifted in parallel, floored at 0)\n");
  fmt::print("{:>10} {:>16} {:>16} {:>10} {:>10}\n", "shift", "EVE (millions)", "change",
             "change %", "NEV ratio");
  for (const auto& r : rows)
    fmt::print("{:>+8.0f}bp {:>16.3f} {:>+16.3f} {:>+9.2f}% {:>9.2f}%\n", r.shift_bp, r.eve * 1e-6,
               r.change * 1e-6, r.change_pct, 100 * r.nev_ratio);
}

void PrintGap(const RepricingGap& g) {
  fmt::print("\nRepricing gap at month 0 (millions; amounts repricing or maturing per bucket)\n");
  fmt::print("{:<32}", "");
  for (const auto& b : GapBucketNames()) fmt::print(" {:>10}", b);
  fmt::print(" {:>10}\n", "total");
  auto row = [](const std::string& name, const std::array<double, kGapBuckets>& v,
                bool total_column = true) {
    fmt::print("{:<32}", name);
    double total = 0;
    for (double x : v) fmt::print(" {:>10.2f}", x * 1e-6), total += x;
    if (total_column) fmt::print(" {:>10.2f}", total * 1e-6);
    fmt::print("\n");
  };
  for (int l = 0; l < RepricingGap::kLines; ++l) row(RepricingGap::LineNames()[l], g.amount[l]);
  std::array<double, kGapBuckets> gap{}, cumulative{};
  double run = 0;
  for (int b = 0; b < kGapBuckets; ++b) {
    gap[b] = g.Assets(b) - g.Liabilities(b);
    run += gap[b];
    cumulative[b] = run;
  }
  row("gap (assets - liabilities)", gap);
  row("cumulative gap", cumulative, false);
}

void PrintRoleRewards(const RoleRewards& rr, int paths, int months) {
  fmt::print(
      "\nper-role rewards (policy run): mean per month of each objective across paths and "
      "months; return = weighted reward summed over {} months, median [p05, p95]\n",
      months);
  fmt::print("{:<11}", "role");
  for (const auto& o : rr.objectives) fmt::print(" {:>13}", o);
  fmt::print(" {:>26}\n", "return");
  for (size_t r = 0; r < rr.roles.size(); ++r) {
    fmt::print("{:<11}", rr.roles[r]);
    const size_t k = rr.objectives.size();
    for (size_t j = 0; j < k; ++j) {
      double sum = 0;
      for (int p = 0; p < paths; ++p) sum += rr.objective_sums[r][p * k + j];
      fmt::print(" {:>13.4f}", sum / (static_cast<double>(paths) * months));
    }
    fmt::print(" {:>9.2f} [{:.2f}, {:.2f}]\n", Quantile(rr.returns[r], 0.5),
               Quantile(rr.returns[r], 0.05), Quantile(rr.returns[r], 0.95));
  }
}

/// What the summary table needs of every path, reduced as the batches arrive (the metrics of a
/// path are not kept once it is summarised).
struct PathReductions {
  std::vector<PathSummary> summaries;
  std::vector<double> roe, nim, co;  ///< per path: mean over months

  void Add(const PathBlock& b) {
    for (int p = 0; p < b.count; ++p) {
      summaries.push_back(SummarisePath(b, p));
      double r = 0, n = 0, c = 0;
      for (int m = 0; m < b.months; ++m)
        r += b.at(p, m, kRoe), n += b.at(p, m, kNim), c += b.at(p, m, kChargeOffRate);
      roe.push_back(r / b.months), nim.push_back(n / b.months), co.push_back(c / b.months);
    }
  }
};

void PrintSummary(const SimulateArgs& a, const InstitutionConfig& inst, const Scenario& sc,
                  const PathReductions& red, double seconds) {
  const auto& summaries = red.summaries;
  auto column = [&](auto get) {
    std::vector<double> v;
    for (const auto& s : summaries) v.push_back(get(s));
    return v;
  };
  fmt::print(
      "\nloantwin simulate: {} under {}, policy {}, {} months x {} paths, seed {} ({:.1f} s)\n",
      inst.name, sc.name, a.policy, a.months, a.paths, a.seed, seconds);
  fmt::print("{:<34} {:>14} {:>14} {:>14}\n", "metric (across paths)", "p05", "median", "p95");
  auto row = [&](const std::string& name, std::vector<double> v, double scale, const char* unit) {
    fmt::print("{:<34} {:>13.2f}{} {:>13.2f}{} {:>13.2f}{}\n", name, Quantile(v, 0.05) * scale,
               unit, Quantile(v, 0.5) * scale, unit, Quantile(v, 0.95) * scale, unit);
  };
  row("peak charge-off rate (3m avg)",
      column([](const PathSummary& s) { return s.peak_charge_off_rate; }), 100, "%");
  const CapitalRegime regime = inst.capital.regime;
  row(fmt::format("minimum {}", CapitalRatioName(regime)),
      column([](const PathSummary& s) { return s.min_capital_ratio; }), 100, "%");
  row("cumulative net income (millions)",
      column([](const PathSummary& s) { return s.cumulative_net_income; }), 1e-6, " ");
  row("final equity (millions)", column([](const PathSummary& s) { return s.final_equity; }), 1e-6,
      " ");
  row("average ROE", red.roe, 100, "%");
  row("average NIM", red.nim, 100, "%");
  row("average charge-off rate", red.co, 100, "%");
  int under = 0, below_well = 0;
  for (const auto& s : summaries)
    under += s.months_undercapitalised > 0, below_well += s.months_below_well > 0;
  fmt::print(
      "capital ({} regime): {} of {} paths became undercapitalised or worse, {} fell below well "
      "capitalised\n",
      CapitalRegimeName(regime), under, a.paths, below_well);
  fmt::print("invariant breaches: {}\n",
             a.check_invariants ? "0 (checked every month)" : "not checked (--check-invariants)");
}

}  // namespace

Runner RegisterSimulate(CLI::App& app) {
  auto a = std::make_shared<SimulateArgs>();
  auto* cmd = app.add_subcommand(
      "simulate", "Monte Carlo simulation of an institution under a scenario (rule-based levers)");
  cmd->add_option("--institution", a->institution, "preset name or path to a preset .yaml")
      ->capture_default_str();
  cmd->add_option("--scenario", a->scenario, "scenario name or path to a scenario .yaml")
      ->capture_default_str();
  cmd->add_option("--months", a->months, "months to simulate")
      ->check(CLI::Range(1, 1200))
      ->capture_default_str();
  cmd->add_option("--paths", a->paths, "Monte Carlo paths")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "experiment seed (>= 0)")
      ->check(SeedValidator())
      ->capture_default_str();
  cmd->add_option("--out", a->out, "CSV file to write (written atomically)");
  cmd->add_option("--output", a->output,
                  "CSV layout: 'paths' (a row per path and month) or 'bands' (mean, p05, p50, "
                  "p95 per month and metric)")
      ->check(CLI::IsMember({"paths", "bands"}))
      ->capture_default_str();
  cmd->add_option("--policy", a->policy,
                  "who decides: 'baseline' (rule-based role policies through the multi-agent "
                  "API), 'random' (uniform, mask-respecting), 'static' (the preset's fixed "
                  "levers on the bare twin, as in calibration)")
      ->check(CLI::IsMember({"baseline", "random", "static"}))
      ->capture_default_str();
  cmd->add_flag("--rate-shocks", a->rate_shocks,
                "also print the 12-month NII sensitivity to parallel rate shifts of -300..+300 bp "
                "(the preset's static levers, the same paths), the economic value of equity "
                "under the same shifts and the repricing gap at month 0");
  cmd->add_flag("--check-invariants", a->check_invariants,
                "verify the accounting invariants every month (error and exit 3 on a breach)");
  cmd->add_flag("--resolve-failures", a->resolve_failures,
                "a failed institution is resolved as in stress reports: the loss at resolution in "
                "the failure month, no business after (not with --policy static)");
  cmd->add_option("--threads", a->threads, "worker threads (0 = all cores)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  cmd->add_option("--batch", a->batch,
                  "paths simulated at once (default 64, the home-equity fund 256; memory); "
                  "results do not change")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--exact-band-paths", a->exact_band_paths,
                  "--output bands: quantiles are exact up to this many paths, a t-digest beyond "
                  "(memory: docs/operations.md)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--env", a->env,
                  "environment: 'twin' (the lending twin) or 'home_equity_fund' (a leveraged fund, "
                  "docs/fund-model.md)")
      ->check(CLI::IsMember({"twin", "home_equity_fund"}))
      ->capture_default_str();
  cmd->add_option("--config", a->config,
                  "home_equity_fund: the fund's YAML (env.config keys, or an experiment file); "
                  "default: the built-in fund");
  cmd->add_flag("--profile", a->profile,
                "home_equity_fund: print the time per stage (paths, exits, leverage, waterfall, "
                "metrics)");
  return [a, cmd] {
    if (a->env == "home_equity_fund") {
      for (const char* twin_only :
           {"--institution", "--months", "--rate-shocks", "--check-invariants",
            "--resolve-failures", "--output", "--exact-band-paths"})
        if (cmd->count(twin_only) > 0)
          throw std::invalid_argument(fmt::format(
              "{} applies to --env twin; the fund's term and zones are in --config", twin_only));
      if (a->policy == "static")
        throw std::invalid_argument("--policy static applies to --env twin (baseline or random)");
      FundSimulateArgs f;
      f.config = a->config;
      if (cmd->count("--scenario") > 0) f.scenario = a->scenario;
      f.policy = a->policy;
      f.paths = a->paths;
      f.seed = a->seed;
      f.threads = a->threads > 0
                      ? a->threads
                      : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
      if (a->batch > 0) f.batch = a->batch;
      f.profile = a->profile;
      f.out = a->out;
      return RunFundSimulate(f);
    }
    if (!a->config.empty() || a->profile)
      throw std::invalid_argument("--config and --profile apply to --env home_equity_fund");
    if (a->resolve_failures && a->policy == "static")
      throw std::invalid_argument(
          "--resolve-failures needs --policy baseline or random (the static levers run the bare "
          "twin, which does not judge failure)");
    const auto inst = LoadInstitution(a->institution);
    const auto sc = LoadScenario(a->scenario);
    MonteCarloOptions o;
    o.months = a->months;
    o.paths = a->paths;
    o.seed = a->seed;
    o.threads = a->threads > 0 ? a->threads
                               : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    if (a->batch > 0) o.batch = a->batch;
    o.twin.check_invariants = a->check_invariants;
    o.resolve_failures = a->resolve_failures;
    o.progress = [a](int done) { spdlog::info("simulated {}/{} paths", done, a->paths); };
    const Levers levers = DefaultLevers(*inst);
    spdlog::info("{} under {}: {} months x {} paths on {} threads, policy {}", inst->name, sc->name,
                 a->months, a->paths, o.threads, a->policy);
    const auto t0 = std::chrono::steady_clock::now();
    // Paths are streamed batch by batch: summarised, reduced into bands, written as CSV rows;
    // memory is bounded by the batch (docs/cli.md), not by paths x months.
    PathReductions reductions;
    std::optional<BandAccumulator> bands;
    if (!a->out.empty() && a->output == "bands") bands.emplace(a->months, a->exact_band_paths);
    std::optional<PolicyRun> run;
    auto simulate = [&](std::ostream* rows) {
      o.sink = [&](const PathBlock& block) {
        reductions.Add(block);
        if (bands) bands->Add(block);
        if (rows) WritePathsCsvRows(block, *rows);
      };
      if (a->policy == "static") {
        spdlog::info("static levers: {}", DescribeLevers(levers));
        RunMonteCarlo(inst, sc, levers, o);
      } else {
        TwinEnvConfig config;
        config.institution = a->institution;
        config.scenario = a->scenario;
        run = RunPolicyMonteCarlo(
            config, a->policy == "random" ? FallbackPolicy::kRandom : FallbackPolicy::kBaseline, o);
      }
    };
    if (!a->out.empty() && a->output == "paths") {
      WriteFileAtomically(a->out, [&](std::ostream& rows) {
        WritePathsCsvHeader(rows);
        simulate(&rows);
      });
    } else {
      simulate(nullptr);
      if (bands) bands->Write(a->out);
    }
    if (!a->out.empty()) spdlog::info("wrote {} ({} layout)", a->out, a->output);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    PrintSummary(*a, *inst, *sc, reductions, seconds);
    if (a->rate_shocks) {
      PrintNiiSensitivity(NiiSensitivity(inst, sc, levers, o, StandardRateShocks()));
      PrintEveSensitivity(EveSensitivity(inst, sc, a->seed, StandardRateShocks()));
      PrintGap(OpeningGap(inst, sc, a->seed));
    }
    if (run) {
      int failed = 0;
      for (int m : run->failed_month) failed += m > 0;
      fmt::print("institution failures ({} < {:.1f}% or equity <= 0): {} of {} paths\n",
                 CapitalRatioName(inst->capital.regime), 100 * TwinEnvConfig{}.capital_floor,
                 failed, a->paths);
      PrintRoleRewards(run->rewards, a->paths, a->months);
    }
    return 0;
  };
}

}  // namespace loantwin::cli
