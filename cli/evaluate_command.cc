// `loantwin evaluate <policies...>`: stress evaluation of policy sets on scenarios with common
// random numbers; report.json / report.md / report.html (docs/stress-testing.md).

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "cli/distributed_common.h"
#include "cli/fund_stress.h"
#include "cli/stress_common.h"
#include "core/atomic_file.h"
#include "core/config_error.h"
#include "report/render_util.h"
#include "report/stress_report.h"
#include "training/checkpoint.h"
#include "training/evaluation.h"
#include "training/experiment.h"
#include "training/stress.h"
#include "training/trainer.h"

namespace fs = std::filesystem;

namespace loantwin::cli {
namespace {

/// Runs of environments without scenarios (CartPole): the trained roles against the fallback
/// policies on held-out seeds, episode returns only; writes <run>/evaluation.json.
int EvaluateReturns(const std::string& run_dir, const StressArgs& args, const std::string& out) {
  Trainer trainer(ExperimentConfig::Load(run_dir + "/config.yaml"));
  const std::string latest = LoadLatestCheckpoint(trainer, run_dir, "evaluate");
  EvaluationOptions o;
  o.paths = args.paths;
  o.seed = args.seed;
  o.threads = args.threads > 0 ? args.threads : 2;
  const auto results = Evaluate(trainer, o);
  std::vector<std::string> learning;
  for (int r = 0; r < trainer.env().num_roles(); ++r)
    if (trainer.HasPolicy(r)) learning.push_back(trainer.env().role(r).name);
  fmt::print("evaluation of {} ({}; checkpoint {}), {} episodes per policy, seed {}\n", run_dir,
             trainer.config().env_name, fs::path(latest).filename().string(), args.paths,
             args.seed);
  fmt::print("  {:<11} {:>22} {:>22} {:>10}\n", "role", "trained return", "fallback return",
             "diff");
  for (const auto& e : results)
    for (const auto& [role, m] : e.trained.mean_return)
      fmt::print("  {:<11} {:>12.3f} +- {:<7.3f} {:>12.3f} +- {:<7.3f} {:>+10.3f}\n", role, m,
                 e.trained.std_return.at(role), e.baseline.mean_return.at(role),
                 e.baseline.std_return.at(role), m - e.baseline.mean_return.at(role));
  const std::string file = out.empty() ? run_dir + "/evaluation.json" : out + "/evaluation.json";
  if (!out.empty()) fs::create_directories(out);
  WriteFileAtomically(file, [&](std::ostream& s) { s << EvaluationJson(results, learning); });
  fmt::print("wrote {}\n", file);
  return 0;
}

}  // namespace

Runner RegisterEvaluate(CLI::App& app) {
  struct Args {
    std::vector<std::string> policies;
    std::string scenarios = "all", out;
    bool no_baseline = false, metric_bands = false;
    std::string fund_config;
    StressArgs stress;
    DistributedArgs dist;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "evaluate",
      "Stress-test policies (baseline, run or export directories) on scenarios with the same "
      "Monte Carlo paths; writes report.json, report.md, report.html");
  cmd->add_option("policies", a->policies,
                  "policy sets: 'baseline', run directories, export directories ([label=]spec)")
      ->required();
  cmd->add_option("--scenarios", a->scenarios,
                  "comma-separated scenario names or YAML files, or 'all' (the built-in ones)")
      ->capture_default_str();
  cmd->add_flag("--no-baseline", a->no_baseline,
                "do not prepend the rule-based baseline when no baseline is listed");
  cmd->add_option("--out", a->out,
                  "report directory (default: <first run>/report, or ./stress-report)");
  cmd->add_option("--fund-config", a->fund_config,
                  "home_equity_fund: the fund every policy runs (default: the first run's, else "
                  "the built-in fund); policies 'weights:<level per zone>' and fund runs select "
                  "the fund's report (docs/fund-model.md)");
  AddStressOptions(cmd, a->stress);
  cmd->add_option("--applicant-groups", a->stress.applicant_groups,
                  "add the fair-lending section: applicant groups from a table preset "
                  "(fed2007) or file (docs/governance.md)");
  cmd->add_flag("--metric-bands", a->metric_bands,
                "also write every twin metric's mean and 5/50/95% bands per month to "
                "<out>/bands/<scenario>/<policy>.csv (docs/stress-testing.md)");
  AddDistributedOptions(cmd, a->dist);
  return [a] {
    // The home-equity fund: its own stress report (allocation policies on the same paths).
    if (!a->fund_config.empty() ||
        std::any_of(a->policies.begin(), a->policies.end(), IsFundPolicy)) {
      if (a->dist.enabled)
        throw std::invalid_argument("--distributed evaluates the twin's stress scenarios only");
      if (a->metric_bands)
        throw ConfigError(
            "--metric-bands writes the twin's metrics; the home-equity fund's "
            "report has its own bands (docs/fund-model.md)");
      return RunFundEvaluate(a->policies, SplitCommaList(a->scenarios), a->fund_config,
                             !a->no_baseline, a->stress, a->out);
    }
    Collective* group = JoinProcessGroup(a->dist);
    // A single run of an environment without scenarios: returns against the fallbacks.
    if (a->policies.size() == 1 && fs::is_regular_file(a->policies[0] + "/config.yaml")) {
      const ExperimentConfig c = ExperimentConfig::Load(a->policies[0] + "/config.yaml");
      if (c.env_name != "twin") {
        if (group)
          throw ConfigError("--distributed evaluates the twin's stress scenarios; " +
                            a->policies[0] + " is a " + c.env_name +
                            " run (evaluate it without --distributed)");
        if (a->metric_bands)
          throw ConfigError("--metric-bands writes the twin's metrics; " + a->policies[0] +
                            " is a " + c.env_name + " run");
        return EvaluateReturns(a->policies[0], a->stress, a->out);
      }
    }
    auto policies = LoadPolicies(WithBaseline(a->policies, a->no_baseline), a->stress);
    const std::vector<std::string> scenarios = SplitCommaList(a->scenarios);
    std::string out = a->out;
    if (out.empty()) {
      out = "stress-report";
      for (const auto& p : policies)
        if (p->info.kind == "run") {
          out = (fs::path(p->info.source) / "report").string();
          break;
        }
    }
    if (a->metric_bands) a->stress.metric_bands_dir = (fs::path(out) / "bands").string();
    const StressReport report = RunStressWithProgress(policies, scenarios, a->stress, group);
    if (group == nullptr || group->rank() == 0) {
      PrintStressSummary(report);
      const auto files = WriteStressReport(report, out, !a->stress.no_charts);
      fmt::print("\nwrote {}/report.json, report.md, report.html ({} files)\n", out, files.size());
    }
    if (group) group->Barrier();  // no rank leaves before rank 0 has written the report
    return 0;
  };
}

}  // namespace loantwin::cli
