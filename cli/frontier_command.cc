// `loantwin frontier <run dirs...> --scenario <s>`: risk-return frontier of trained runs (for
// example a reward-weight sweep) under one scenario, the baseline marked (docs/stress-testing.md).

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/fund_stress.h"
#include "cli/stress_common.h"
#include "report/frontier.h"
#include "report/render_util.h"

namespace loantwin::cli {

/// Evaluates the policies (baseline first unless excluded) and writes the frontier.
void RunFrontier(std::vector<std::string> specs, const std::string& scenario,
                 const std::string& return_metric, const std::string& risk_metric,
                 bool with_baseline, const StressArgs& args, const std::string& out) {
  if (with_baseline) specs.insert(specs.begin(), "baseline");
  auto policies = LoadPolicies(specs, args);
  StressReport report = RunStressWithProgress(policies, {scenario}, args);
  const FrontierReport f = BuildFrontier(std::move(report), return_metric, risk_metric);
  const std::string unit = return_metric == "roe" ? "fraction" : "currency";
  const std::string risk_unit = FrontierRiskUnit(risk_metric);
  fmt::print(
      "efficient frontier under {} ({} paths x {} months, {}): return = mean {}, risk = {}\n",
      f.stress.scenarios[0].name, args.paths, args.months, f.stress.settings.institution,
      return_metric, FrontierRiskLabel(risk_metric));
  fmt::print("  {:<28} {:<9} {:>14} {:>14}  {}\n", "policy", "kind", "return", "risk", "efficient");
  for (const auto& p : f.points)
    fmt::print("  {:<28} {:<9} {:>14} {:>14}  {}\n", p.policy, p.kind,
               FormatValue(p.return_value, unit), FormatValue(p.risk, risk_unit),
               p.efficient ? "yes" : "no");
  WriteFrontier(f, out, !args.no_charts);
  fmt::print("wrote {}/frontier.json, frontier.md, frontier.html{} and report.*\n", out,
             args.no_charts ? "" : ", frontier.svg");
}

Runner RegisterFrontier(CLI::App& app) {
  struct Args {
    std::vector<std::string> runs;
    std::string scenario = "severe_recession", return_metric = "cumulative_net_income",
                risk_metric = "es_975", out = "frontier";
    bool no_baseline = false;
    std::string fund_config;
    StressArgs stress;
  };
  auto a = std::make_shared<Args>();
  a->stress.paths = 500;
  auto* cmd = app.add_subcommand(
      "frontier",
      "Risk-return frontier of trained runs under one scenario (Pareto-efficient "
      "policies and the baseline marked)");
  cmd->add_option("runs", a->runs, "run or export directories ([label=]dir)")->required();
  cmd->add_option("--scenario", a->scenario, "scenario name or YAML file")->capture_default_str();
  cmd->add_option("--return", a->return_metric,
                  "return axis (the fund: lp_irr or equity_irr, mean; default lp_irr)")
      ->check(CLI::IsMember({"cumulative_net_income", "roe", "lp_irr", "equity_irr"}))
      ->capture_default_str();
  cmd->add_option("--risk", a->risk_metric,
                  "risk axis: 97.5% expected shortfall of P&L, or the share of paths with a "
                  "breach flag; the fund: lp_irr_es95 (default), breached or oc_fail")
      ->check(CLI::IsMember([] {
        auto v = FrontierRiskMetrics();
        for (const auto& r : FundFrontierRisks()) v.push_back(r);
        return v;
      }()))
      ->capture_default_str();
  cmd->add_flag("--no-baseline", a->no_baseline, "leave the rule-based baseline out");
  cmd->add_option("--out", a->out, "output directory")->capture_default_str();
  cmd->add_option("--fund-config", a->fund_config,
                  "home_equity_fund: the fund every policy runs (default: the first run's); "
                  "'weights:<level per zone>' policies and fund runs select the fund frontier");
  AddStressOptions(cmd, a->stress);
  return [a, cmd] {
    if (!a->fund_config.empty() || std::any_of(a->runs.begin(), a->runs.end(), IsFundPolicy)) {
      const std::string ret = cmd->count("--return") ? a->return_metric : "lp_irr";
      const std::string risk = cmd->count("--risk") ? a->risk_metric : "lp_irr_es95";
      return RunFundFrontier(a->runs, a->scenario, a->fund_config, ret, risk, !a->no_baseline,
                             a->stress, a->out);
    }
    RunFrontier(a->runs, a->scenario, a->return_metric, a->risk_metric, !a->no_baseline, a->stress,
                a->out);
    return 0;
  };
}

}  // namespace loantwin::cli
