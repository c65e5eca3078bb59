#include "cli/stress_common.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "report/gnuplot.h"
#include "report/render_util.h"

namespace loantwin::cli {

void AddStressOptions(CLI::App* cmd, StressArgs& a) {
  cmd->add_option("--paths", a.paths, "Monte Carlo paths per scenario and policy")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--months", a.months, "horizon in months")
      ->check(CLI::Range(1, 1200))
      ->capture_default_str();
  cmd->add_option("--institution", a.institution,
                  "institution preset or file (default: the first run's - the first of its "
                  "institutions -, else cu_mid)");
  cmd->add_option("--seed", a.seed, "seed of the paths (held out from training by default)")
      ->check(SeedValidator())
      ->capture_default_str();
  cmd->add_option("--threads", a.threads, "environment threads (default: all cores)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--batch", a.batch,
                  "instances simulated at once (default 64, the home-equity fund 256; memory, "
                  "results unchanged)")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--exact-band-paths", a.exact_band_paths,
                  "fan-chart bands are exact up to this many paths, a t-digest beyond (memory: "
                  "docs/operations.md)")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_flag("--no-charts", a.no_charts, "skip the gnuplot charts (tables only)");
}

std::vector<std::unique_ptr<StressPolicy>> LoadPolicies(const std::vector<std::string>& specs,
                                                        const StressArgs& args) {
  if (!args.no_charts && !GnuplotAvailable())
    throw std::runtime_error(fmt::format(
        "gnuplot ('{}') does not run: install gnuplot-nox (scripts/install-deps.sh), set "
        "LOANTWIN_GNUPLOT, or pass --no-charts",
        GnuplotCommand()));
  std::vector<std::unique_ptr<StressPolicy>> policies;
  for (const auto& spec : specs) {
    policies.push_back(StressPolicy::Load(spec));
    const StressPolicy& p = *policies.back();
    const auto& trained = p.trained_institutions;
    if (!args.institution.empty() && !trained.empty() &&
        std::find(trained.begin(), trained.end(), args.institution) == trained.end())
      spdlog::warn("policy {} was trained on institution {}, evaluated on {}", p.info.name,
                   fmt::join(trained, ", "), args.institution);
  }
  return policies;
}

StressReport RunStressWithProgress(const std::vector<std::unique_ptr<StressPolicy>>& policies,
                                   const std::vector<std::string>& scenarios,
                                   const StressArgs& args, Collective* group) {
  StressOptions o;
  o.group = group;
  o.scenarios = scenarios;
  o.paths = args.paths;
  o.exact_band_paths = args.exact_band_paths;
  o.months = args.months;
  o.institution = args.institution;
  o.seed = args.seed;
  o.threads = args.threads > 0 ? args.threads
                               : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  if (args.batch > 0) o.batch = args.batch;
  o.applicant_groups = args.applicant_groups;
  o.metric_bands_dir = args.metric_bands_dir;
  const bool root = group == nullptr || group->rank() == 0;
  const bool tty = ::isatty(STDERR_FILENO) && root;
  const auto t0 = std::chrono::steady_clock::now();
  auto last = t0 - std::chrono::seconds(10);
  int last_logged = -1;
  o.progress = [&](const StressProgress& p) {
    if (!root) return;
    const auto now = std::chrono::steady_clock::now();
    const double frac = p.total > 0 ? static_cast<double>(p.done) / p.total : 1.0;
    const double elapsed = std::chrono::duration<double>(now - t0).count();
    const double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
    if (tty) {
      if (now - last < std::chrono::milliseconds(100) && p.done < p.total) return;
      last = now;
      const int width = 30, filled = static_cast<int>(width * frac);
      fmt::print(stderr, "\r[{}{}] {:3.0f}%  scenario {}/{} {}  policy {}/{} {}  ETA {:.0f}s\033[K",
                 std::string(filled, '#'), std::string(width - filled, '.'), frac * 100,
                 p.scenario + 1, p.scenarios, p.scenario_name, p.policy + 1, p.policies,
                 p.policy_name, eta);
      std::fflush(stderr);
    } else {
      const int step = p.scenario * p.policies + p.policy;
      if (step == last_logged) return;
      last_logged = step;
      spdlog::info("evaluating scenario {}/{} {}, policy {}/{} {}", p.scenario + 1, p.scenarios,
                   p.scenario_name, p.policy + 1, p.policies, p.policy_name);
    }
  };
  StressReport report = RunStress(policies, o);
  if (tty) fmt::print(stderr, "\n");
  return report;
}

void PrintStressSummary(const StressReport& r) {
  fmt::print(
      "stress evaluation: {} x {} paths x {} months, seed {}, {:.1f} s ({:.3g} "
      "loan-months/s)\n",
      r.settings.institution, r.settings.paths, r.settings.months, r.settings.seed, r.wall_seconds,
      r.wall_seconds > 0 ? r.loan_months / r.wall_seconds : 0.0);
  int failing = 0, results = 0;
  for (const auto& sc : r.scenarios) {
    fmt::print("\nscenario {}{}\n", sc.name,
               sc.macro_paths_identical ? "" : "  (WARNING: macro paths differ between policies)");
    // Breaches first (the verdict), then income: paths are counted out of the scenario's paths.
    fmt::print("  {:<24} {:>7} {:>9} {:>7} {:>9} {:>10} {:>13} {:>22} {:>11} {:>9}\n", "policy",
               "verdict", "< minimum", "failed", "liq. short", "< well cap.", "cum. NI mean",
               "diff vs first [95% CI]", "ES 97.5%", "invariant");
    for (const auto& res : sc.results) {
      const Verdict v = JudgeResult(res);
      ++results, failing += !v.pass;
      std::string diff = "";
      if (auto it = res.vs_first.find("cumulative_net_income"); it != res.vs_first.end())
        diff = fmt::format("{} [{}, {}]", FormatDifference(it->second.mean, "currency"),
                           FormatDifference(it->second.low, "currency"),
                           FormatDifference(it->second.high, "currency"));
      fmt::print("  {:<24} {:>7} {:>9} {:>7} {:>9} {:>10} {:>13} {:>22} {:>11} {:>9}\n", res.policy,
                 v.pass ? "PASS" : "FAIL", res.paths_undercapitalised, res.paths_failed,
                 res.paths_liquidity_shortfall, res.paths_below_well_capitalised,
                 FormatValue(res.metrics.at("cumulative_net_income").mean, "currency"), diff,
                 FormatValue(res.es_975, "currency"), res.paths_with_invariant_breaches);
      for (const auto& reason : v.reasons)
        if (reason.rfind("constraint ", 0) == 0) fmt::print("  {:<24} {}\n", "", reason);
      if (!v.worse.empty()) {
        std::string worse;
        for (const auto& flag : v.worse) worse += (worse.empty() ? "" : ", ") + flag;
        fmt::print("  {:<24} significantly worse than {}: {}\n", "", sc.results[0].policy, worse);
      }
    }
  }
  fmt::print(
      "\nverdict: {} of {} scenario-policy results FAIL (a path below the capital "
      "minimum, failed, short of liquidity, or over one of its own constraints' limits); counts "
      "are paths of {}\n",
      failing, results, r.settings.paths);
}

std::vector<std::string> SplitCommaList(const std::string& text) {
  std::stringstream ss(text);
  std::vector<std::string> items;
  for (std::string s; std::getline(ss, s, ',');)
    if (!s.empty()) items.push_back(s);
  return items;
}

std::vector<std::string> WithBaseline(std::vector<std::string> specs, bool no_baseline) {
  const bool has_baseline = std::any_of(specs.begin(), specs.end(), [](const std::string& s) {
    return s == "baseline" || (s.size() > 9 && s.compare(s.size() - 9, 9, "=baseline") == 0);
  });
  if (!has_baseline && !no_baseline) specs.insert(specs.begin(), "baseline");
  return specs;
}

}  // namespace loantwin::cli
