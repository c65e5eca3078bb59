// Stress evaluation: common random numbers across policies, thread counts and repeated runs,
// run/export policies, the report files (schema, charts, offline HTML), the frontier and bad
// inputs (docs/stress-testing.md). The report library's statistics: tests/report_test.cc.

#include "training/stress.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "agents/export_manifest.h"
#include "core/atomic_file.h"
#include "core/config_error.h"
#include "env/twin/calibration.h"
#include "report/frontier.h"
#include "report/gnuplot.h"
#include "report/render_util.h"
#include "report/risk.h"
#include "report/stress_report.h"
#include "tests/agent_test_util.h"
#include "tests/json_schema.h"
#include "tests/test_util.h"
#include "training/checkpoint.h"
#include "training/export.h"
#include "training/trainer.h"

namespace loantwin {
namespace {

using testing::ReadFile;
using testing::TempDir;

/// A tiny quickstart run (checkpoint + export) in `dir`.
void MakeRun(const std::string& dir) {
  const std::string yaml = testing::TinyTwinExperiment("tiny", 3, 1280, "dqn");
  std::filesystem::create_directories(dir);
  WriteFileAtomically(dir + "/config.yaml", [&](std::ostream& o) { o << yaml; });
  Trainer t(ExperimentConfig::Load(dir + "/config.yaml"));
  t.Train();
  CheckpointManager ckpt(dir + "/checkpoints", 1);
  const std::string path = ckpt.Save(t);
  ExportRun(t, dir, path, dir + "/export");
}

StressOptions SmallOptions(int threads = 2) {
  StressOptions o;
  o.scenarios = {"steady_state", "severe_recession"};
  o.paths = 12;
  o.months = 18;
  o.institution = "cu_small";
  o.seed = 77;
  o.threads = threads;
  o.batch = 5;  // several batches, the last one partial
  return o;
}

class StressRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    MakeRun(dir_->path() + "/tiny");
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string Run() { return dir_->path() + "/tiny"; }
  static TempDir* dir_;
};
TempDir* StressRun::dir_ = nullptr;

std::vector<std::unique_ptr<StressPolicy>> Load(const std::vector<std::string>& specs) {
  std::vector<std::unique_ptr<StressPolicy>> out;
  for (const auto& s : specs) out.push_back(StressPolicy::Load(s));
  return out;
}

TEST_F(StressRun, CommonRandomNumbersAcrossPoliciesRepeatsAndThreads) {
  auto policies = Load({"baseline", Run(), Run() + "/export", "again=baseline"});
  EXPECT_EQ(policies[1]->info.kind, "run");
  EXPECT_EQ(policies[2]->info.kind, "export");
  EXPECT_EQ(policies[2]->info.name, "tiny-export");
  const StressReport a = RunStress(policies, SmallOptions(2));
  const StressReport b = RunStress(policies, SmallOptions(1));
  ASSERT_EQ(a.scenarios.size(), 2u);
  for (size_t s = 0; s < a.scenarios.size(); ++s) {
    const ScenarioReport& sa = a.scenarios[s];
    // Every policy saw the same macro paths.
    EXPECT_TRUE(sa.macro_paths_identical) << sa.name;
    ASSERT_EQ(sa.results.size(), 4u);
    // The same policy evaluated twice (and on 1 vs 2 threads) gives identical numbers.
    const auto &base = sa.results[0], &again = sa.results[3];
    for (const auto& [k, v] : base.per_path) EXPECT_EQ(v, again.per_path.at(k)) << k;
    EXPECT_EQ(again.vs_first.at("cumulative_net_income").mean, 0.0);
    for (size_t p = 0; p < sa.results.size(); ++p)
      for (const auto& [k, v] : sa.results[p].per_path)
        EXPECT_EQ(v, b.scenarios[s].results[p].per_path.at(k)) << sa.name << " " << k;
    // Identical but for the provenance's time stamp.
    StressReport a2 = a, b2 = b;
    a2.provenance.generated_at = b2.provenance.generated_at = "";
    EXPECT_EQ(StressReportJson(a2).substr(0, 1000), StressReportJson(b2).substr(0, 1000));
    // The run and its export decide identically.
    for (const auto& [k, v] : sa.results[1].per_path)
      EXPECT_EQ(v, sa.results[2].per_path.at(k)) << k;
    // The trained policy acts differently from the baselines (a real comparison).
    EXPECT_NE(sa.results[1].per_path.at("cumulative_net_income"),
              base.per_path.at("cumulative_net_income"));
    for (const auto& r : sa.results) EXPECT_EQ(r.paths_with_invariant_breaches, 0);
  }
  // Identical macro bands in the report: one series per scenario, shared by every policy.
  EXPECT_EQ(a.scenarios[1].macro.at("unemployment").p50,
            b.scenarios[1].macro.at("unemployment").p50);
  // The recession is visibly worse than steady state.
  EXPECT_LT(a.scenarios[1].results[0].metrics.at("min_capital_ratio").mean,
            a.scenarios[0].results[0].metrics.at("min_capital_ratio").mean);
  EXPECT_GT(a.scenarios[1].macro.at("unemployment").p50.back(),
            a.scenarios[0].macro.at("unemployment").p50.back());
}

TEST(StressReduction, MetricBandsAreWrittenPerScenarioAndPolicyAndMatchTheReport) {
  TempDir dir;
  auto policies = Load({"baseline", "tight policy=cutoff:B"});
  StressOptions o = SmallOptions();
  o.metric_bands_dir = dir.path() + "/bands";
  const StressReport report = RunStress(policies, o);
  for (const ScenarioReport& sr : report.scenarios)
    for (const auto& [name, file] : {std::pair<std::string, std::string>{"baseline", "baseline"},
                                     {"tight policy", "tight_policy"}}) {
      const std::string path = o.metric_bands_dir + "/" + sr.name + "/" + file + ".csv";
      ASSERT_TRUE(std::filesystem::exists(path)) << path;
      std::istringstream in(ReadFile(path));
      std::string line;
      std::getline(in, line);
      EXPECT_EQ(line, "month,metric,mean,p05,p50,p95");
      int rows = 0;
      std::map<int, double> capital_mean, capital_p50;
      while (std::getline(in, line)) {
        ++rows;
        std::vector<std::string> f;
        std::stringstream cells(line);
        for (std::string c; std::getline(cells, c, ',');) f.push_back(c);
        ASSERT_EQ(f.size(), 6u) << line;
        if (f[1] == "capital_ratio")
          capital_mean[std::stoi(f[0])] = std::stod(f[2]),
          capital_p50[std::stoi(f[0])] = std::stod(f[4]);
      }
      EXPECT_EQ(rows, o.months * kNumMetrics);
      // The same paths the report reduced: its capital-ratio band, month by month.
      const auto& result = *std::find_if(sr.results.begin(), sr.results.end(),
                                         [&](const auto& r) { return r.policy == name; });
      const Band& band = result.bands.at("capital_ratio");
      ASSERT_EQ(capital_mean.size(), static_cast<size_t>(o.months));
      for (int m = 0; m < o.months; ++m) {
        EXPECT_NEAR(capital_mean.at(m + 1), band.mean[m], 1e-9 * std::abs(band.mean[m])) << m;
        EXPECT_NEAR(capital_p50.at(m + 1), band.p50[m], 1e-9 * std::abs(band.p50[m])) << m;
      }
    }
  // One folder per scenario, one file per policy, nothing else.
  int files = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(o.metric_bands_dir))
    files += e.is_regular_file() ? 1 : 0;
  EXPECT_EQ(files, 4);
  // Names that would share a file are refused before anything runs.
  auto clash = Load({"a b=baseline", "a_b=cutoff:B"});
  try {
    RunStress(clash, o);
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'a b' and 'a_b' would write the same metric-bands file"),
              std::string::npos)
        << e.what();
  }
}

/// An institution under a scenario, and the Monte Carlo options of a run of it.
struct TwinRun {
  TwinEnvConfig config;
  MonteCarloOptions options;
};
TwinRun MakeTwinRun(const char* institution, const char* scenario, int paths, int months,
                    uint64_t seed) {
  TwinRun r;
  r.config.institution = institution;
  r.config.scenario = scenario;
  r.options.paths = paths;
  r.options.months = months;
  r.options.seed = seed;
  return r;
}

// Balance-sheet realism under the rule-based roles (docs/twin-model.md, "Growth and dividends"):
// cu_mid as shipped (members +1% a year, bonus dividends above an 11% net worth ratio) keeps the
// mean path's net worth ratio within 9-12% for ten years of steady state with every role on its
// baseline, as with the preset's static levers
// (Calibration.GrowthAndDividendPolicyHoldTheNetWorthRatioSteady).
TEST(Baselines, KeepCuMidsNetWorthWithinNineToTwelvePercentInSteadyState) {
  TwinRun ten_years = MakeTwinRun("cu_mid", "steady_state", 64, 120, 1);
  ten_years.options.threads = 2;
  const PolicyRun run =
      RunPolicyMonteCarlo(ten_years.config, FallbackPolicy::kBaseline, ten_years.options);
  double dividends = 0;
  for (int m = 0; m < 120; ++m) {
    const double nwr = MeanMetric(run.paths, kCapitalRatio, m, m + 1);
    EXPECT_GE(nwr, 0.09) << "month " << m + 1;
    EXPECT_LE(nwr, 0.12) << "month " << m + 1;
    dividends += MeanMetric(run.paths, kDividends, m, m + 1);
  }
  EXPECT_GT(dividends, 0);
}

TEST(StressReduction, StreamedReductionEqualsTheWholeRunAndDoesNotDependOnTheBatch) {
  TwinRun run_setup = MakeTwinRun("cu_small", "severe_recession", 14, 15, 9);
  const TwinEnvConfig& c = run_setup.config;
  MonteCarloOptions& o = run_setup.options;
  o.threads = 2;
  o.batch = 14;
  const PolicyRun whole = RunPolicyMonteCarlo(c, FallbackPolicy::kBaseline, o);
  const std::string whole_json = [&] {
    ScenarioReport sr;
    sr.results.push_back(ReducePolicyRun("baseline", whole));
    return nlohmann::json(sr.results[0].bands.at("capital_ratio").p05).dump() +
           nlohmann::json(sr.results[0].per_path).dump();
  }();
  std::string digest, sketched_p05;
  for (int batch : {3, 14}) {
    o.batch = batch;
    PolicyRunReducer exact("baseline", o.months, true), sketched("baseline", o.months, true, 4);
    o.sink = [&](const PathBlock& b) {
      exact.Add(b);
      sketched.Add(b);
    };
    const PolicyRun run = RunPolicyMonteCarlo(c, FallbackPolicy::kBaseline, o);
    EXPECT_TRUE(run.paths.data.empty());
    const PolicyScenarioResult r = exact.Finish(run);
    EXPECT_EQ(
        nlohmann::json(r.bands.at("capital_ratio").p05).dump() + nlohmann::json(r.per_path).dump(),
        whole_json)
        << batch;
    const PolicyScenarioResult s = sketched.Finish(run);
    EXPECT_EQ(s.per_path, r.per_path);  // per-path figures are always exact
    const std::string p05 = nlohmann::json(s.bands.at("cumulative_net_income").p05).dump();
    if (batch == 3) sketched_p05 = p05, digest = exact.macro_digest();
    EXPECT_EQ(p05, sketched_p05);
    EXPECT_EQ(exact.macro_digest(), digest);
    EXPECT_EQ(exact.MacroBands().at("unemployment").p50.size(), 15u);
  }
  // Other paths (another seed) have another macro digest.
  o.seed = 10;
  PolicyRunReducer other("baseline", o.months, false);
  o.sink = [&](const PathBlock& b) { other.Add(b); };
  other.Finish(RunPolicyMonteCarlo(c, FallbackPolicy::kBaseline, o));
  EXPECT_NE(other.macro_digest(), digest);
  // Blocks out of order are refused.
  PolicyRunReducer wrong("baseline", o.months, false);
  std::vector<double> data(static_cast<size_t>(o.months) * kNumMetrics);
  EXPECT_THROW(wrong.Add(PathBlock{1, 1, o.months, data.data()}), std::invalid_argument);
}

TEST(StressReduction, AFailedInstitutionIsResolvedNotLeftToRecover) {
  // The severe recession fails some cu_small paths under the random policy. With
  // resolve_failures, each failed path shows the loss at resolution in its failure month and
  // no business afterwards; every path up to its failure is the run without resolution.
  TwinRun run_setup = MakeTwinRun("cu_small", "severe_recession", 24, 60, 4);
  const TwinEnvConfig& c = run_setup.config;
  MonteCarloOptions& o = run_setup.options;
  o.batch = 8;
  const PolicyRun open = RunPolicyMonteCarlo(c, FallbackPolicy::kRandom, o);
  o.resolve_failures = true;
  const PolicyRun resolved = RunPolicyMonteCarlo(c, FallbackPolicy::kRandom, o);
  EXPECT_EQ(resolved.failed_month, open.failed_month);
  int failed = 0, recovered = 0;
  for (int p = 0; p < o.paths; ++p) {
    const int f = open.failed_month[p];
    const int last = f ? f - 1 : o.months;  // months before the failure month are identical
    for (int m = 0; m < last; ++m)
      for (int k = 0; k < kNumMetrics; ++k)
        ASSERT_EQ(resolved.paths.at(p, m, k), open.paths.at(p, m, k)) << p << " " << m;
    double ni_open = 0, ni_resolved = 0;
    for (int m = 0; m < o.months; ++m)
      ni_open += open.paths.at(p, m, kNetIncome),
          ni_resolved += resolved.paths.at(p, m, kNetIncome);
    if (!f) {
      EXPECT_EQ(ni_resolved, ni_open);
      EXPECT_EQ(resolved.rewards.returns[0][p], open.rewards.returns[0][p]);
      continue;
    }
    ++failed;
    const int fm = f - 1;
    const double equity = open.paths.at(p, fm, kEquity);
    EXPECT_DOUBLE_EQ(resolved.paths.at(p, fm, kNetIncome),
                     open.paths.at(p, fm, kNetIncome) - std::max(equity, 0.0));
    EXPECT_EQ(resolved.paths.at(p, fm, kEquity), std::min(equity, 0.0));
    EXPECT_LE(resolved.paths.at(p, fm, kCapitalRatio), 0.0);
    EXPECT_EQ(resolved.paths.at(p, fm, kCapitalCategory), 4);
    for (int m = fm + 1; m < o.months; ++m) {
      for (int k : {kNetIncome, kOriginations, kNetChargeOffs, kApprovals, kInterestIncome})
        EXPECT_EQ(resolved.paths.at(p, m, k), 0.0) << MetricName(k) << " month " << m + 1;
      for (int k : {kLoanBalance, kEquity, kCapitalRatio, kDeposits})
        EXPECT_EQ(resolved.paths.at(p, m, k), resolved.paths.at(p, fm, k)) << MetricName(k);
      for (int k : {kUnemployment, kHpi, kPolicyRate})  // the economy goes on
        EXPECT_EQ(resolved.paths.at(p, m, k), open.paths.at(p, m, k)) << MetricName(k);
    }
    // Equity at the end is what it was resolved to: never a recovery.
    EXPECT_LE(resolved.paths.at(p, o.months - 1, kEquity), 0.0);
    recovered += open.paths.at(p, o.months - 1, kEquity) > 0;
  }
  EXPECT_GT(failed, 0) << "the scenario should fail some paths under the random policy";
  EXPECT_GT(recovered, 0) << "without resolution some failed paths show positive equity later";
}

TEST_F(StressRun, ReportFilesValidateAndHtmlIsSelfContained) {
  ASSERT_TRUE(GnuplotAvailable()) << "gnuplot (gnuplot-nox) is needed for the report charts";
  TempDir out;
  const std::string scenario_file =
      out.File("my_shock.yaml",
               ReadFile(std::string(LOANTWIN_SOURCE_DIR) + "/configs/scenarios/rate_shock.yaml"));
  auto policies = Load({"baseline", Run()});
  StressOptions o = SmallOptions();
  o.scenarios = {"mild_recession", scenario_file};
  const StressReport report = RunStress(policies, o);
  WriteStressReport(report, out.path() + "/report", true);
  const nlohmann::json doc = nlohmann::json::parse(ReadFile(out.path() + "/report/report.json"));
  const nlohmann::json schema = nlohmann::json::parse(
      ReadFile(std::string(LOANTWIN_SOURCE_DIR) + "/docs/schemas/stress-report.schema.json"));
  EXPECT_EQ(testing::ValidateJson(doc, schema, schema), "");
  // The validator does reject a broken document.
  nlohmann::json broken = doc;
  broken["scenarios"][0]["results"][0]["tail"].erase("es_975");
  EXPECT_NE(testing::ValidateJson(broken, schema, schema), "");
  broken = doc;
  broken["settings"]["bogus"] = 1;
  EXPECT_NE(testing::ValidateJson(broken, schema, schema), "");
  // The user's scenario file is evaluated like a built-in one.
  EXPECT_EQ(doc["scenarios"][1]["source"], scenario_file);
  EXPECT_EQ(doc["scenarios"][1]["results"].size(), 2u);
  EXPECT_FALSE(doc["scenarios"][1]["results"][1]["vs_first"].is_null());

  const std::string html = ReadFile(out.path() + "/report/report.html");
  for (const auto& sc : report.scenarios)
    for (const char* kind : {"-fan", "-macro"}) {
      const std::string id = "chart-" + sc.name + kind;
      const size_t at = html.find("id=\"" + id + "\"");
      ASSERT_NE(at, std::string::npos) << id;
      EXPECT_EQ(html.find("src=\"data:image/svg+xml;base64,", at) - at < 200, true) << id;
      EXPECT_TRUE(
          std::filesystem::exists(out.path() + "/report/charts/" + sc.name + kind + ".svg"));
    }
  // Offline: no external scripts, stylesheets, images, fonts or imports.
  for (const std::regex& bad :
       {std::regex(R"((src|href)\s*=\s*["']?(https?:)?//)"), std::regex(R"(<script)"),
        std::regex(R"(<link)"), std::regex(R"(@import)"), std::regex(R"(url\()")})
    EXPECT_FALSE(std::regex_search(html, bad));
  // The charts carry titles, axis labels with units and legends.
  const std::string fan = ReadFile(out.path() + "/report/charts/mild_recession-fan.svg");
  for (const char* text :
       {"net worth ratio (%)", "Capital: net worth ratio (ncua)",
        "charge-off rate (% of loans, annualised)", "cumulative net income (millions)", "month",
        "baseline", "tiny", "well capitalised (7.0%)", "adequately capitalised (6.0%)"})
    EXPECT_NE(fan.find(text), std::string::npos) << text;
  const std::string macro = ReadFile(out.path() + "/report/charts/mild_recession-macro.svg");
  for (const char* text : {"unemployment (%)", "House price index", "GDP growth (% annualised)"})
    EXPECT_NE(macro.find(text), std::string::npos) << text;
  const std::string md = ReadFile(out.path() + "/report/report.md");
  EXPECT_NE(md.find("97.5% expected shortfall"), std::string::npos);
  EXPECT_NE(md.find("Differences versus `baseline`"), std::string::npos);
  // Provenance: time, version, revision; the run's checkpoint with its hash.
  EXPECT_EQ(doc["provenance"]["generated_at"].get<std::string>().size(), 20u);
  EXPECT_NE(doc["provenance"]["source_revision"], "");
  EXPECT_EQ(doc["policies"][1]["kind"], "run");
  EXPECT_EQ(doc["policies"][1]["checkpoint_sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ(doc["policies"][1]["checkpoint_sha256"],
            FileSha256(doc["policies"][1]["checkpoint"].get<std::string>()));
  EXPECT_NE(md.find("Generated "), std::string::npos);
  // The verdict comes first, and every result carries one.
  EXPECT_EQ(md.find("\n## "), md.find("\n## Verdict"));
  EXPECT_LT(html.find("<h2>Verdict</h2>"), html.find("<h2>Policies</h2>"));
  for (const auto& sc : doc["scenarios"])
    for (const auto& res : sc["results"]) {
      EXPECT_TRUE(res["verdict"]["pass"].is_boolean());
      EXPECT_EQ(res["verdict"]["pass"].get<bool>(),
                res["counts"]["paths_undercapitalised"] == 0 &&
                    res["counts"]["paths_failed"] == 0 &&
                    res["counts"]["paths_liquidity_shortfall"] == 0);
    }
  EXPECT_TRUE(doc["scenarios"][0]["results"][1]["vs_first"].contains("paths/breach_minimum"));
  // The nine-quarter view: beside the whole horizon, never below its minimum.
  EXPECT_NE(md.find("## DFAST-style nine-quarter view"), std::string::npos);
  for (const auto& sc : report.scenarios)
    for (const auto& res : sc.results)
      for (size_t p = 0; p < res.per_path.at("min_capital_ratio").size(); ++p) {
        EXPECT_GE(res.per_path.at("min_capital_ratio_9q")[p],
                  res.per_path.at("min_capital_ratio")[p]);
        EXPECT_GE(res.per_path.at("cumulative_loss_rate_9q")[p], 0.0);
      }
}

TEST(StressVerdict, APolicyIsJudgedByTheConstraintsItWasTrainedUnder) {
  // A run trained under an impossible capital floor (50%) and a harmless one; its export carries
  // both. On the stress paths the first is violated every month: its mean cost is the sum of the
  // monthly shortfalls and the policy fails; the second passes.
  TempDir dir;
  const std::string run = dir.path() + "/constrained";
  std::filesystem::create_directories(run);
  const std::string yaml =
      testing::TinyTwinExperiment("constrained", 3, 640, "ppo") +
      "constraints:\n  - {name: impossible, metric: capital_ratio, min: 0.5, limit: 0.1}\n"
      "  - {name: harmless, metric: max_product_share, max: 1.0, cost: indicator}\n";
  WriteFileAtomically(run + "/config.yaml", [&](std::ostream& o) { o << yaml; });
  {
    Trainer t(ExperimentConfig::Load(run + "/config.yaml"));
    t.Train();
    CheckpointManager ckpt(run + "/checkpoints", 1);
    ExportRun(t, run, ckpt.Save(t), run + "/export");
  }
  auto policies = Load({"baseline", run, "exported=" + run + "/export"});
  ASSERT_EQ(policies[1]->info.constraints.size(), 2u);
  ASSERT_EQ(policies[2]->info.constraints.size(), 2u);
  StressOptions o = SmallOptions();
  o.scenarios = {"steady_state"};
  const StressReport report = RunStress(policies, o);
  const ScenarioReport& sc = report.scenarios[0];
  EXPECT_TRUE(sc.results[0].constraints.empty());  // the baseline has none
  for (int k : {1, 2}) {
    const PolicyScenarioResult& r = sc.results[k];
    ASSERT_EQ(r.constraints.size(), 2u);
    const ConstraintOutcome& imp = r.constraints[0];
    EXPECT_EQ(imp.name, "impossible");
    // Every month is outside: the cost is 0.5 - ratio summed over the months (discount 1).
    EXPECT_EQ(imp.violation_rate, 1.0);
    EXPECT_EQ(imp.paths_over_limit, r.paths);
    EXPECT_GT(imp.mean_cost, o.months * 0.3);  // cu_small's ratio stays under 20%
    EXPECT_FALSE(imp.pass());
    EXPECT_TRUE(r.constraints[1].pass());
    EXPECT_EQ(r.constraints[1].mean_cost, 0.0);
    const Verdict v = JudgeResult(r);
    EXPECT_FALSE(v.pass);
    EXPECT_NE(v.reasons.back().find("constraint impossible: mean cost"), std::string::npos);
  }
  // The run and its export are the same policy: the same outcome.
  EXPECT_EQ(sc.results[1].constraints[0].mean_cost, sc.results[2].constraints[0].mean_cost);
  const nlohmann::json doc = nlohmann::json::parse(StressReportJson(report));
  const nlohmann::json schema = nlohmann::json::parse(
      ReadFile(std::string(LOANTWIN_SOURCE_DIR) + "/docs/schemas/stress-report.schema.json"));
  EXPECT_EQ(testing::ValidateJson(doc, schema, schema), "");
  EXPECT_EQ(doc["scenarios"][0]["results"][1]["constraints"][0]["pass"], false);
  EXPECT_NE(VerdictMarkdown(report).find("impossible"), std::string::npos);
}

TEST(StressRunAcrossInstitutions, OneInstitutionPerReportTheFirstUnlessNamed) {
  // A run trained on two institutions (env.config.institutions): its report runs the first
  // unless --institution names another, on every path; the export's manifest lists both.
  TempDir dir;
  const std::string run = dir.path() + "/mixed";
  std::filesystem::create_directories(run);
  std::string yaml = testing::TinyTwinExperiment("mixed", 3, 640, "ppo");
  const std::string one = "institution: cu_small";
  ASSERT_NE(yaml.find(one), std::string::npos);
  yaml.replace(yaml.find(one), one.size(), "institutions: [cu_mid, cu_small]");
  WriteFileAtomically(run + "/config.yaml", [&](std::ostream& o) { o << yaml; });
  {
    Trainer t(ExperimentConfig::Load(run + "/config.yaml"));
    t.Train();
    const auto& twin = dynamic_cast<const TwinEnv&>(t.env());
    EXPECT_EQ(twin.institution(0).name, "cu_mid");
    EXPECT_EQ(twin.institution(1).name, "cu_small");  // one scenario: i mod 2
    CheckpointManager ckpt(run + "/checkpoints", 1);
    ExportRun(t, run, ckpt.Save(t), run + "/export");
  }
  const ExportManifest m = ExportManifest::Load(run + "/export");
  EXPECT_EQ(m.institution, "cu_mid");
  EXPECT_EQ(m.institutions, (std::vector<std::string>{"cu_mid", "cu_small"}));
  auto policies = Load({"baseline", run});
  EXPECT_EQ(policies[1]->trained_institutions, m.institutions);
  StressOptions o = SmallOptions();
  o.scenarios = {"steady_state"};
  o.institution.clear();
  const StressReport first = RunStress(policies, o);
  EXPECT_EQ(first.settings.institution, "cu_mid");
  o.institution = "cu_small";
  const StressReport named = RunStress(policies, o);
  EXPECT_EQ(named.settings.institution, "cu_small");
  o.institution = "cu_mid";
  const StressReport explicit_first = RunStress(policies, o);
  // Every path of a report runs its one institution: the named first gives the same report as
  // the default, the other a different one (cu_small is a fraction of cu_mid's size).
  for (int k : {0, 1}) {
    const auto income = [&](const StressReport& r) {
      return r.scenarios[0].results[k].metrics.at("cumulative_net_income").mean;
    };
    EXPECT_EQ(income(first), income(explicit_first));
    EXPECT_GT(income(first), 2 * income(named));
  }
  // ... the same paths as a report of cu_mid alone (the baseline, no run's config).
  o.institution = "cu_mid";
  const StressReport alone = RunStress(Load({"baseline"}), o);
  EXPECT_EQ(alone.scenarios[0].results[0].metrics.at("cumulative_net_income").mean,
            first.scenarios[0].results[0].metrics.at("cumulative_net_income").mean);
}

TEST(StressVerdict, BreachesFailThePolicyAndPairedCountsFlagTheWorseOne) {
  // 40 paths: the reference never breaches; the other policy earns more but falls below the
  // minimum on 12 paths (3 of them fail) and runs short of liquidity on one.
  ScenarioReport sc;
  sc.name = "severe";
  for (int k = 0; k < 2; ++k) {
    PolicyScenarioResult r;
    r.policy = k == 0 ? "baseline" : "greedy";
    r.paths = 40;
    for (const auto& m : StressMetrics()) r.per_path[m.key].assign(40, k == 0 ? 1.0 : 2.0);
    for (const auto& [flag, label] : BreachFlags()) r.path_flags[flag].assign(40, 0.0);
    if (k == 1) {
      for (int p = 0; p < 12; ++p) r.path_flags["breach_minimum"][p] = 1;
      for (int p = 0; p < 12; ++p) r.path_flags["breach_buffer"][p] = 1;
      for (int p = 0; p < 3; ++p) r.path_flags["failed"][p] = 1;
      r.path_flags["liquidity_shortfall"][5] = 1;
      r.paths_undercapitalised = 12, r.paths_below_well_capitalised = 12, r.paths_failed = 3;
      r.paths_liquidity_shortfall = 1;
    }
    for (const auto& [key, values] : r.per_path) r.metrics[key] = Describe(values);
    sc.results.push_back(std::move(r));
  }
  CompareToFirst(sc, 1);
  const Verdict base = JudgeResult(sc.results[0]);
  EXPECT_TRUE(base.pass);
  EXPECT_TRUE(base.reasons.empty());
  const Verdict greedy = JudgeResult(sc.results[1]);
  EXPECT_FALSE(greedy.pass);
  ASSERT_EQ(greedy.reasons.size(), 3u);
  EXPECT_EQ(greedy.reasons[0], "12 of 40 paths below the minimum");
  EXPECT_EQ(greedy.reasons[1], "3 of 40 paths failed");
  EXPECT_EQ(greedy.reasons[2], "1 of 40 paths short of liquidity");
  // 12 of 40 is significant at 95%; 3 of 40 and 1 of 40 are not.
  EXPECT_EQ(greedy.worse, (std::vector<std::string>{"breach_minimum", "breach_buffer"}));
  EXPECT_NEAR(sc.results[1].vs_first.at("paths/breach_minimum").mean, 0.3, 1e-12);
  StressReport report;
  report.scenarios.push_back(sc);
  const std::string md = VerdictMarkdown(report);
  EXPECT_NE(md.find("| severe | baseline | **PASS** |"), std::string::npos) << md;
  EXPECT_NE(md.find("| severe | greedy | **FAIL** | 12 of 40 | 3 of 40 | 1 of 40 | 12 of 40 |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("breach_minimum, breach_buffer |"), std::string::npos) << md;
}

TEST_F(StressRun, FrontierMarksEfficientPoliciesAndBaseline) {
  auto policies = Load({"baseline", Run(), "b2=baseline"});
  StressOptions o = SmallOptions();
  o.scenarios = {"severe_recession"};
  const FrontierReport f = BuildFrontier(RunStress(policies, o), "cumulative_net_income");
  ASSERT_EQ(f.points.size(), 3u);
  EXPECT_EQ(f.points[0].kind, "baseline");
  // Two identical baselines cannot dominate each other: same efficiency flag.
  EXPECT_EQ(f.points[0].efficient, f.points[2].efficient);
  EXPECT_TRUE(f.points[0].efficient || f.points[1].efficient);
  TempDir out;
  WriteFrontier(f, out.path(), true);
  const auto j = nlohmann::json::parse(ReadFile(out.path() + "/frontier.json"));
  EXPECT_EQ(j["points"].size(), 3u);
  EXPECT_EQ(j["risk_metric"], "es_975");
  const std::string svg = ReadFile(out.path() + "/frontier.svg");
  for (const char* text :
       {"efficient frontier", "rule-based baseline", "expected shortfall", "millions", "tiny"})
    EXPECT_NE(svg.find(text), std::string::npos) << text;
  EXPECT_THROW(BuildFrontier(RunStress(policies, SmallOptions()), "roe"), std::invalid_argument);
}

TEST_F(StressRun, FrontierRiskCanBeTheShareOfPathsBreachingCapital) {
  auto policies = Load({"baseline", Run()});
  StressOptions o = SmallOptions();
  o.scenarios = {"severe_recession"};
  const StressReport stress = RunStress(policies, o);
  for (const char* risk : {"breach_minimum", "breach_buffer", "failed"}) {
    const FrontierReport f = BuildFrontier(stress, "cumulative_net_income", risk);
    ASSERT_EQ(f.points.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      const PolicyScenarioResult& r = stress.scenarios[0].results[i];
      const int count = std::string(risk) == "breach_minimum" ? r.paths_undercapitalised
                        : std::string(risk) == "failed"       ? r.paths_failed
                                                              : r.paths_below_well_capitalised;
      EXPECT_DOUBLE_EQ(f.points[i].risk, static_cast<double>(count) / r.paths) << risk;
    }
    // Pareto over (return, share of paths): the same rule as over expected shortfall.
    const auto eff = ParetoEfficient({{f.points[0].return_value, f.points[0].risk},
                                      {f.points[1].return_value, f.points[1].risk}});
    EXPECT_EQ(f.points[0].efficient, eff[0]);
    EXPECT_EQ(f.points[1].efficient, eff[1]);
  }
  const FrontierReport f = BuildFrontier(stress, "cumulative_net_income", "breach_minimum");
  TempDir out;
  WriteFrontier(f, out.path(), true);
  const auto j = nlohmann::json::parse(ReadFile(out.path() + "/frontier.json"));
  EXPECT_EQ(j["risk_metric"], "breach_minimum");
  EXPECT_NE(ReadFile(out.path() + "/frontier.md").find("share of paths below the regime's minimum"),
            std::string::npos);
  EXPECT_NE(ReadFile(out.path() + "/frontier.svg").find("share of paths below"), std::string::npos);
  try {
    BuildFrontier(stress, "cumulative_net_income", "var");
    ADD_FAILURE() << "an unknown risk metric was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'var'"), std::string::npos) << e.what();
  }
}

TEST_F(StressRun, BadInputsGiveClearErrors) {
  auto expect_error = [](const std::function<void()>& f, const std::string& text) {
    try {
      f();
      ADD_FAILURE() << "no error, expected: " << text;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  };
  TempDir dir;
  auto policies = Load({"baseline"});
  StressOptions o = SmallOptions();
  o.scenarios = {"steady_state", "nowhere_scenario"};
  expect_error([&] { RunStress(policies, o); }, "unknown scenario 'nowhere_scenario'");
  o.scenarios = {dir.path() + "/missing.yaml"};
  expect_error([&] { RunStress(policies, o); }, "missing.yaml");
  expect_error([&] { StressPolicy::Load(dir.path() + "/nope"); }, "no such file or directory");
  expect_error([&] { StressPolicy::Load(dir.path()); }, "neither a run directory");
  dir.File("config.txt", "x");
  expect_error([&] { StressPolicy::Load(dir.path() + "/config.txt"); }, "not a directory");
  // A run directory without checkpoints.
  std::filesystem::create_directories(dir.path() + "/run");
  std::filesystem::copy_file(Run() + "/config.yaml", dir.path() + "/run/config.yaml");
  expect_error([&] { StressPolicy::Load(dir.path() + "/run"); }, "no checkpoint");
  // An export from another environment version, or with another observation layout.
  const std::string exp = dir.path() + "/exp";
  std::filesystem::copy(Run() + "/export", exp);
  auto manifest = nlohmann::json::parse(ReadFile(exp + "/manifest.json"));
  auto edited = manifest;
  edited["environment_version"] = 99;
  std::ofstream(exp + "/manifest.json") << edited.dump();
  expect_error([&] { StressPolicy::Load(exp); }, "environment version 99");
  edited = manifest;
  edited.erase("environment_version");
  std::ofstream(exp + "/manifest.json") << edited.dump();
  expect_error([&] { StressPolicy::Load(exp); }, "no environment_version");
  edited = manifest;
  edited["roles"]["credit"]["observation"]["features"][3] = "renamed_feature";
  std::ofstream(exp + "/manifest.json") << edited.dump();
  expect_error([&] { StressPolicy::Load(exp); }, "different observation layout");
  edited = manifest;
  edited["environment"] = "cartpole";
  std::ofstream(exp + "/manifest.json") << edited.dump();
  expect_error([&] { StressPolicy::Load(exp); }, "not 'twin'");
  std::ofstream(exp + "/manifest.json") << "{not json";
  expect_error([&] { StressPolicy::Load(exp); }, "not valid JSON");
  // Duplicate names.
  auto twice = Load({"baseline", "baseline"});
  expect_error([&] { RunStress(twice, SmallOptions()); }, "two policies are named 'baseline'");
}

}  // namespace
}  // namespace loantwin
