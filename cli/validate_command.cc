// `loantwin validate <run> --out pack/`: a model validation pack for a trained twin run
// (docs/governance.md, "Validation pack"; SR 11-7's documentation, conceptual soundness,
// outcomes analysis and sensitivity): validation.json (schema docs/schemas/validation.schema.json)
// and a self-contained validation.html.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agents/export_manifest.h"
#include "cli/book_backtest_report.h"
#include "cli/commands.h"
#include "cli/stress_common.h"
#include "core/atomic_file.h"
#include "core/config_error.h"
#include "core/version.h"
#include "env/twin/backtest.h"
#include "env/twin/book_backtest.h"
#include "env/twin/calibration.h"
#include "env/twin/config_paths.h"
#include "env/twin/institution.h"
#include "env/twin_env.h"
#include "report/render_util.h"
#include "report/risk.h"
#include "report/stress_report.h"
#include "training/experiment.h"
#include "training/stress.h"

namespace fs = std::filesystem;

namespace loantwin::cli {
namespace {

using json = nlohmann::json;

constexpr const char* kValidationSchema = "loantwin.validation";
constexpr int kValidationSchemaVersion = 1;

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path + ": cannot be read");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

json CheckJson(const CalibrationCheck& c) {
  return {{"name", c.name}, {"target", c.target}, {"source", c.source}, {"simulated", c.simulated},
          {"low", c.lo},    {"high", c.hi},       {"unit", c.unit},     {"pass", c.pass()}};
}

/// Per policy and scenario: the headline outcomes of a stress result.
json OutcomeJson(const PolicyScenarioResult& r) {
  const Verdict v = JudgeResult(r);
  json j = {{"policy", r.policy},
            {"pass", v.pass},
            {"reasons", v.reasons},
            {"worse_than_baseline", v.worse},
            {"mean_cumulative_net_income", r.metrics.at("cumulative_net_income").mean},
            {"min_capital_ratio_p05", r.metrics.at("min_capital_ratio").p05},
            {"paths_undercapitalised", r.paths_undercapitalised},
            {"paths_failed", r.paths_failed},
            {"es_975", r.es_975}};
  j["vs_baseline"] = json::object();
  for (const char* key : {"cumulative_net_income", "min_capital_ratio"})
    if (auto it = r.vs_first.find(key); it != r.vs_first.end())
      j["vs_baseline"][key] = {{"difference", it->second.mean},
                               {"ci95_low", it->second.low},
                               {"ci95_high", it->second.high}};
  return j;
}

std::string Cell(const json& v) {
  if (v.is_string()) return HtmlEscape(v.get<std::string>());
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "<b>no</b>";
  if (v.is_number_float()) return fmt::format("{:.4g}", v.get<double>());
  if (v.is_null()) return "-";
  return HtmlEscape(v.dump());
}

/// A table of objects with the given keys.
std::string HtmlTable(const json& rows, const std::vector<std::string>& keys) {
  std::string h = "<table><tr>";
  for (const auto& k : keys) h += "<th>" + HtmlEscape(k) + "</th>";
  h += "</tr>\n";
  for (const auto& row : rows) {
    h += "<tr>";
    for (const auto& k : keys) h += "<td>" + (row.contains(k) ? Cell(row[k]) : "-") + "</td>";
    h += "</tr>\n";
  }
  return h + "</table>\n";
}

std::string Html(const json& p) {
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>loantwin "
      "model validation: " +
      HtmlEscape(p["purpose_and_scope"]["experiment"].get<std::string>()) + "</title>\n<style>\n" +
      ReportCss() + "</style>\n</head>\n<body>\n";
  h += "<h1>Model validation pack: " +
       HtmlEscape(p["purpose_and_scope"]["experiment"].get<std::string>()) + "</h1>\n";
  h += fmt::format(
      "<p class=\"meta\">Generated {} by loantwin {} (source {}). Schema {} v{}. "
      "Supports the model validation function; it is not a validation opinion.</p>\n",
      Cell(p["provenance"]["generated_at"]), Cell(p["provenance"]["loantwin_version"]),
      Cell(p["provenance"]["source_revision"]), kValidationSchema, kValidationSchemaVersion);
  const json& ps = p["purpose_and_scope"];
  h += "<h2>1. Purpose and scope</h2>\n<p>" + HtmlEscape(ps["purpose"].get<std::string>()) +
       "</p>\n<p><b>Out of scope:</b> " + HtmlEscape(ps["out_of_scope"].get<std::string>()) +
       "</p>\n";
  h += HtmlTable(ps["roles"], {"role", "driver"});
  const json& d = p["data_and_environment"];
  h += "<h2>2. Data and environment</h2>\n";
  h += HtmlTable(json::array({d}), {"environment", "environment_version", "institution",
                                    "institution_file_sha256", "training_scenarios"});
  h += HtmlTable(d["data_sources"], {"data", "source"});
  const json& t = p["training"];
  h += "<h2>3. Training configuration</h2>\n";
  h += HtmlTable(json::array({t}),
                 {"config_sha256", "checkpoint", "checkpoint_sha256", "total_steps", "seed"});
  h += "<pre>" + HtmlEscape(t["config_yaml"].get<std::string>()) + "</pre>\n";
  const json& c = p["conceptual_soundness"];
  h += "<h2>4. Conceptual soundness</h2>\n<h3>Calibration against public targets</h3>\n";
  h +=
      HtmlTable(c["calibration"], {"name", "target", "simulated", "low", "high", "pass", "source"});
  h += "<h3>Historic replay 2006-2012 (" + Cell(c["historic_backtest"]["institution"]) + ")</h3>\n";
  h += HtmlTable(c["historic_backtest"]["checks"],
                 {"name", "target", "simulated", "low", "high", "pass"});
  h += "<h3>Constraints and guardrails</h3>\n";
  h += HtmlTable(c["constraints"], {"name", "metric", "min", "max", "cost", "limit"});
  h += HtmlTable(c["guardrails"], {"name", "rule"});
  const json& o = p["outcomes_analysis"];
  h += "<h2>5. Outcomes analysis</h2>\n";
  h += fmt::format(
      "<p>{} paths x {} months per scenario, seed {}, the same paths for every "
      "policy.</p>\n",
      Cell(o["paths"]), Cell(o["months"]), Cell(o["seed"]));
  for (const auto& sc : o["scenarios"]) {
    h += "<h3>" + Cell(sc["scenario"]) + "</h3>\n";
    h += HtmlTable(sc["policies"], {"policy", "pass", "reasons", "worse_than_baseline",
                                    "mean_cumulative_net_income", "min_capital_ratio_p05",
                                    "paths_undercapitalised", "paths_failed"});
  }
  h += "<h3>Backtest of a synced institution's book</h3>\n<p>" +
       HtmlEscape(o["book_backtest"]["status"].get<std::string>()) + "</p>\n";
  if (o["book_backtest"].contains("report_markdown"))
    h +=
        "<pre>" + HtmlEscape(o["book_backtest"]["report_markdown"].get<std::string>()) + "</pre>\n";
  const json& s = p["sensitivity"];
  h += "<h2>6. Sensitivity across training seeds</h2>\n";
  h += fmt::format("<p>{} seeds x {} steps, scenario {}.</p>\n", Cell(s["seeds"].size()),
                   Cell(s["total_steps"]), Cell(s["scenario"]));
  h += HtmlTable(s["seeds"], {"seed", "mean_cumulative_net_income", "min_capital_ratio_p05",
                              "paths_undercapitalised", "pass"});
  h += HtmlTable(s["spread"], {"metric", "mean", "std", "min", "max"});
  h += "<h2>7. Fairness summary</h2>\n";
  h += "<p>" + HtmlEscape(p["fairness"]["status"].get<std::string>()) + "</p>\n";
  if (p["fairness"].contains("scenarios"))
    for (const auto& sc : p["fairness"]["scenarios"]) {
      h += "<h3>" + Cell(sc["scenario"]) + "</h3>\n";
      h += HtmlTable(sc["policies"], {"policy", "min_adverse_impact_ratio",
                                      "groups_below_four_fifths", "equal_opportunity_difference"});
    }
  h += "<h2>8. Limitations</h2>\n<ul>\n";
  for (const auto& l : p["limitations"]) h += "<li>" + Cell(l) + "</li>\n";
  h += "</ul>\n<h2>9. Reproduce</h2>\n<pre>";
  for (const auto& r : p["reproduce"]) h += HtmlEscape(r.get<std::string>()) + "\n";
  h += "</pre>\n</body>\n</html>\n";
  return h;
}

}  // namespace

Runner RegisterValidate(CLI::App& app) {
  struct Args {
    std::string run, out, scenarios = "severe_recession,dfast_2025_severely_adverse";
    std::string performance, performance_scenario, applicant_groups = "fed2007";
    int seeds = 3, calibration_paths = 16, backtest_paths = 50;
    int64_t sensitivity_steps = 0;
    StressArgs stress;
  };
  auto a = std::make_shared<Args>();
  a->stress.paths = 100;
  a->stress.months = 60;
  a->stress.no_charts = true;
  auto* cmd = app.add_subcommand(
      "validate",
      "Model validation pack for a trained twin run: purpose, data and environment version, "
      "config hash, conceptual soundness (calibration, historic replay, constraints), outcomes "
      "vs the baseline, sensitivity across training seeds, fairness, limitations and the "
      "commands to reproduce; writes validation.json and validation.html");
  cmd->add_option("run", a->run, "run directory (config.yaml + checkpoints/)")->required();
  cmd->add_option("--out", a->out, "pack directory (default <run>/validation)");
  cmd->add_option("--scenarios", a->scenarios, "outcome scenarios (comma-separated)")
      ->capture_default_str();
  cmd->add_option("--seeds", a->seeds,
                  "training seeds of the sensitivity analysis (the run's "
                  "own seed + these; 0 = none)")
      ->check(CLI::Range(0, 20))
      ->capture_default_str();
  cmd->add_option("--sensitivity-steps", a->sensitivity_steps,
                  "training steps per sensitivity seed (0 = the run's total_steps)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cmd->add_option("--calibration-paths", a->calibration_paths, "paths of the calibration checks")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  cmd->add_option("--backtest-paths", a->backtest_paths, "paths of the 2006-2012 replay")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  cmd->add_option("--performance", a->performance,
                  "a synced institution's loan performance file: backtest the run's "
                  "institution's book against it (docs/digital-twin.md)");
  cmd->add_option("--performance-scenario", a->performance_scenario,
                  "with --performance: the macro path the actuals lived through");
  cmd->add_option("--applicant-groups", a->applicant_groups,
                  "group table of the fairness summary ('' = none)")
      ->capture_default_str();
  AddStressOptions(cmd, a->stress);
  return [a] {
    const std::string run = a->run;
    if (!fs::is_regular_file(run + "/config.yaml"))
      throw std::invalid_argument(run + ": not a run directory (no config.yaml)");
    const ExperimentConfig config = ExperimentConfig::Load(run + "/config.yaml");
    if (config.env_name != "twin")
      throw ConfigError(run + ": validate needs a twin run (this is a " + config.env_name +
                        " run)");
    if (!a->performance.empty() && a->performance_scenario.empty())
      throw std::invalid_argument("--performance needs --performance-scenario");
    const std::string out = a->out.empty() ? run + "/validation" : a->out;
    fs::create_directories(out);
    auto run_policy = StressPolicy::Load(run);
    const TwinEnvConfig env = *run_policy->env_config;
    const std::string institution =
        a->stress.institution.empty() ? env.institution : a->stress.institution;
    const auto inst = LoadInstitution(institution);
    json p;
    const Provenance prov = CurrentProvenance();
    p["schema"] = kValidationSchema;
    p["schema_version"] = kValidationSchemaVersion;
    p["provenance"] = {{"generated_at", prov.generated_at},
                       {"loantwin_version", prov.loantwin_version},
                       {"source_revision", prov.source_revision}};

    // 1. Purpose and scope.
    json roles = json::array();
    std::vector<std::string> learning;
    for (const auto& [role, driver] : run_policy->info.roles) {
      roles.push_back({{"role", role}, {"driver", driver}});
      if (driver != "baseline" && driver != "random") learning.push_back(role);
    }
    std::string learning_list;
    for (const auto& r : learning) learning_list += (learning_list.empty() ? "" : ", ") + r;
    p["purpose_and_scope"] = {
        {"experiment", config.name},
        {"purpose",
         fmt::format("Decision support for the {} role(s) of {} ({}): learned policies that set "
                     "the levers of a retail lending book (risk appetite, origination budgets, "
                     "pricing, credit cutoffs, collection intensity) monthly, trained on the "
                     "digital twin to maximise their reward within the constraints listed below.",
                     learning_list.empty() ? "no learning" : learning_list, inst->name,
                     institution)},
        {"out_of_scope",
         "Individual underwriting beyond the score band and the decision engine's rules; "
         "institutions, products and economic conditions outside the twin's presets and "
         "scenarios; any use without the human review SR 11-7 requires."},
        {"roles", roles}};

    // 2. Data and environment.
    std::vector<std::string> training_scenarios =
        env.scenarios.empty() ? std::vector<std::string>{env.scenario} : env.scenarios;
    std::string institution_file;
    try {
      institution_file = ResolveConfig("institutions", institution);
    } catch (const std::exception&) {
    }
    p["data_and_environment"] = {
        {"environment", "twin"},
        {"environment_version", TwinEnv::kVersion},
        {"institution", institution},
        {"institution_file_sha256", fs::is_regular_file(institution_file)
                                        ? FileSha256(institution_file)
                                        : std::string("built-in")},
        {"training_scenarios", training_scenarios},
        {"data_sources",
         json::array(
             {{{"data", "macro history and supervisory scenarios"},
               {"source", "Federal Reserve DFAST 2025 tables (Table 1A history since 1976)"}},
              {{"data", "loan performance calibration"},
               {"source", "Lending Club 2007-2011 (docs/twin-model.md)"}},
              {{"data", "charge-off targets"},
               {"source", "Federal Reserve charge-off release (docs/twin-model.md)"}},
              {{"data", "applicant score distributions by group"},
               {"source",
                "Federal Reserve 2007 report to Congress on credit scoring "
                "(configs/applicant_groups/fed2007.yaml)"}}})}};

    // 3. Training configuration.
    p["training"] = {{"config_yaml", ReadText(run + "/config.yaml")},
                     {"config_sha256", FileSha256(run + "/config.yaml")},
                     {"checkpoint", run_policy->info.checkpoint},
                     {"checkpoint_sha256", run_policy->info.checkpoint_sha256},
                     {"total_steps", config.total_steps},
                     {"seed", config.seed}};

    // 4. Conceptual soundness.
    spdlog::info("validate: calibration checks ({} paths)", a->calibration_paths);
    CalibrationOptions co;
    co.paths = a->calibration_paths;
    co.threads = std::max(1, a->stress.threads);
    json calibration = json::array();
    int calibration_failed = 0;
    for (const auto& c : RunCalibration(co)) {
      calibration.push_back(CheckJson(c));
      calibration_failed += !c.pass();
    }
    spdlog::info("validate: historic replay 2006-2012 ({} paths)", a->backtest_paths);
    BacktestOptions bo;
    bo.institution = institution;
    bo.paths = a->backtest_paths;
    bo.threads = co.threads;
    const BacktestResult bt = RunHistoricBacktest(bo);
    json bt_checks = json::array();
    int backtest_failed = 0;
    for (const auto& c : bt.checks) {
      bt_checks.push_back(CheckJson(c));
      backtest_failed += !c.pass();
    }
    json constraints = json::array(), guardrails = json::array();
    for (const auto& c : config.constraints) {
      json j = {{"name", c.name}, {"metric", c.metric}, {"cost", c.cost}, {"limit", c.limit}};
      j["min"] = c.min ? json(*c.min) : json();
      j["max"] = c.max ? json(*c.max) : json();
      constraints.push_back(j);
    }
    for (const auto& g : config.guardrails) {
      const json gj = json::parse(g.ToJson());
      guardrails.push_back({{"name", gj.value("name", std::string())}, {"rule", gj.dump()}});
    }
    p["conceptual_soundness"] = {
        {"calibration", calibration},
        {"historic_backtest", {{"institution", institution}, {"checks", bt_checks}}},
        {"constraints", constraints},
        {"guardrails", guardrails},
        {"documentation", "docs/twin-model.md (equations and sources), docs/training.md"}};

    // 5. Outcomes analysis: the baseline and the run on the same paths (with the fairness
    // section when the run's credit role learns).
    const std::vector<std::string> scenarios = SplitCommaList(a->scenarios);
    StressArgs sa = a->stress;
    sa.institution = institution;
    sa.applicant_groups = a->applicant_groups;
    std::vector<std::unique_ptr<StressPolicy>> policies;
    policies.push_back(StressPolicy::Load("baseline"));
    policies.push_back(std::move(run_policy));
    const StressReport report = RunStressWithProgress(policies, scenarios, sa);
    json outcome_scenarios = json::array();
    int policy_failures = 0;
    for (const auto& sc : report.scenarios) {
      json rows = json::array();
      for (const auto& r : sc.results) {
        rows.push_back(OutcomeJson(r));
        if (&r != &sc.results.front()) policy_failures += !JudgeResult(r).pass;
      }
      outcome_scenarios.push_back({{"scenario", sc.name}, {"policies", rows}});
    }
    json book = {{"status",
                  "not applicable: no synced institution's performance file was given "
                  "(--performance; docs/digital-twin.md)"}};
    if (!a->performance.empty()) {
      const Performance perf = LoadPerformance(a->performance, *inst);
      BookBacktestOptions bbo;
      bbo.scenario = a->performance_scenario;
      bbo.paths = a->backtest_paths;
      bbo.threads = co.threads;
      const BookBacktestResult br = RunBookBacktest(inst, perf, bbo);
      book = {{"status", "run against " + a->performance},
              {"report_markdown", BookBacktestMarkdown(br)}};
    }
    p["outcomes_analysis"] = {{"paths", a->stress.paths},
                              {"months", a->stress.months},
                              {"seed", a->stress.seed},
                              {"scenarios", outcome_scenarios},
                              {"book_backtest", book}};

    // 6. Sensitivity: the experiment trained again with other seeds, all on the first scenario's
    // paths.
    const int64_t steps = a->sensitivity_steps > 0 ? a->sensitivity_steps : config.total_steps;
    json seeds = json::array();
    std::map<std::string, std::vector<double>> spread_values;
    auto add_seed = [&](uint64_t seed, const PolicyScenarioResult& r) {
      const json o = OutcomeJson(r);
      seeds.push_back({{"seed", seed},
                       {"mean_cumulative_net_income", o["mean_cumulative_net_income"]},
                       {"min_capital_ratio_p05", o["min_capital_ratio_p05"]},
                       {"paths_undercapitalised", o["paths_undercapitalised"]},
                       {"pass", o["pass"]}});
      spread_values["mean_cumulative_net_income"].push_back(
          o["mean_cumulative_net_income"].get<double>());
      spread_values["min_capital_ratio_p05"].push_back(o["min_capital_ratio_p05"].get<double>());
      spread_values["share_of_paths_undercapitalised"].push_back(
          static_cast<double>(r.paths_undercapitalised) / std::max(1, r.paths));
    };
    if (a->seeds > 0 && !report.scenarios.empty()) {
      std::vector<std::unique_ptr<StressPolicy>> seed_policies;
      seed_policies.push_back(StressPolicy::Load("baseline"));
      auto logger = spdlog::default_logger();
      for (int k = 1; k <= a->seeds; ++k) {
        ExperimentConfig c = config;
        c.seed = config.seed + static_cast<uint64_t>(k);
        c.total_steps = steps;
        const std::string dir = out + "/sensitivity/seed-" + std::to_string(c.seed);
        spdlog::info("validate: training seed {} ({} steps) into {}", c.seed, steps, dir);
        const bool done =
            fs::is_directory(dir + "/checkpoints") && !fs::is_empty(dir + "/checkpoints");
        TrainInto(c, dir, /*resume=*/done);
        spdlog::set_default_logger(logger);
        seed_policies.push_back(StressPolicy::Load("seed" + std::to_string(c.seed) + "=" + dir));
      }
      StressArgs one = sa;
      one.applicant_groups.clear();
      const StressReport sens =
          RunStressWithProgress(seed_policies, {report.scenarios.front().name}, one);
      // The run itself is the first seed.
      add_seed(config.seed, report.scenarios.front().results.back());
      for (size_t k = 1; k < sens.scenarios.front().results.size(); ++k)
        add_seed(config.seed + k, sens.scenarios.front().results[k]);
    }
    json spread = json::array();
    for (const auto& [metric, values] : spread_values) {
      const Distribution d = Describe(values);
      spread.push_back({{"metric", metric},
                        {"mean", d.mean},
                        {"std", d.std},
                        {"min", *std::min_element(values.begin(), values.end())},
                        {"max", *std::max_element(values.begin(), values.end())}});
    }
    p["sensitivity"] = {{"scenario", report.scenarios.empty() ? "" : report.scenarios.front().name},
                        {"total_steps", steps},
                        {"seeds", seeds},
                        {"spread", spread}};

    // 7. Fairness summary.
    json fairness = {{"status", a->applicant_groups.empty()
                                    ? std::string("not run (--applicant-groups '')")
                                    : "applicant groups " + a->applicant_groups +
                                          " (docs/governance.md); the four-fifths flag is a "
                                          "screen for review, not a finding"}};
    if (!a->applicant_groups.empty()) {
      fairness["scenarios"] = json::array();
      for (const auto& sc : report.scenarios) {
        json rows = json::array();
        for (const auto& r : sc.results) {
          if (!r.fairness) continue;
          std::vector<std::string> flagged;
          for (const auto& g : r.fairness->groups)
            if (g.below_four_fifths) flagged.push_back(g.group);
          rows.push_back({{"policy", r.policy},
                          {"min_adverse_impact_ratio", r.fairness->min_air},
                          {"groups_below_four_fifths", flagged},
                          {"equal_opportunity_difference", r.fairness->eo_gap}});
        }
        fairness["scenarios"].push_back({{"scenario", sc.name}, {"policies", rows}});
      }
    }
    p["fairness"] = fairness;

    // 8. Limitations: the standing ones and what this pack found.
    json limits = json::array(
        {"The twin is a model of a lending book, calibrated to public aggregates "
         "(docs/twin-model.md); its loss timing, deposit behaviour and regulatory frame carry "
         "the known gaps listed there.",
         "Policies see portfolio-level features and decide by score band; applicant-level "
         "underwriting is the decision engine's rules only.",
         "Applicant groups are synthetic (published score distributions by group), for "
         "disparate-impact analysis only."});
    if (calibration_failed > 0)
      limits.push_back(
          fmt::format("{} calibration check(s) outside their accepted range.", calibration_failed));
    if (backtest_failed > 0)
      limits.push_back(
          fmt::format("{} historic replay check(s) outside their window.", backtest_failed));
    if (policy_failures > 0)
      limits.push_back(fmt::format(
          "The run fails the stress verdict in {} scenario(s): see the outcomes analysis.",
          policy_failures));
    if (a->stress.paths < 1000)
      limits.push_back(
          fmt::format("Tail figures rest on {} paths per scenario (1,000 or more "
                      "for a decision).",
                      a->stress.paths));
    if (a->seeds < 3)
      limits.push_back(fmt::format("Sensitivity covers {} extra training seed(s) only.", a->seeds));
    p["limitations"] = limits;

    // 9. Reproduce.
    const std::string scen = a->scenarios;
    p["reproduce"] = json::array(
        {fmt::format("loantwin train {}/config.yaml --out <dir> --total-steps {}", run,
                     config.total_steps),
         fmt::format("loantwin calibrate --paths {}", a->calibration_paths),
         fmt::format("loantwin backtest --institution {} --paths {}", institution,
                     a->backtest_paths),
         fmt::format(
             "loantwin evaluate baseline {} --scenarios {} --paths {} --months {} "
             "--seed {} --institution {}{}",
             run, scen, a->stress.paths, a->stress.months, a->stress.seed, institution,
             a->applicant_groups.empty() ? "" : " --applicant-groups " + a->applicant_groups),
         fmt::format("loantwin validate {} --out {} --scenarios {} --paths {} --months {} --seed "
                     "{} --seeds {} --sensitivity-steps {}",
                     run, out, scen, a->stress.paths, a->stress.months, a->stress.seed, a->seeds,
                     steps)});

    WriteFileAtomically(out + "/validation.json", [&](std::ostream& s) { s << p.dump(2) << "\n"; });
    WriteFileAtomically(out + "/validation.html", [&](std::ostream& s) { s << Html(p); });
    fmt::print(
        "validation pack for {} ({}):\n  calibration: {} of {} checks pass; historic replay: {} "
        "of {} pass\n  outcomes: the run fails the stress verdict in {} of {} scenario(s)\n  "
        "sensitivity: {} seed(s)\nwrote {}/validation.json and validation.html\n",
        run, config.name, calibration.size() - calibration_failed, calibration.size(),
        bt_checks.size() - backtest_failed, bt_checks.size(), policy_failures,
        report.scenarios.size(), seeds.size(), out);
    return 0;
  };
}

}  // namespace loantwin::cli
