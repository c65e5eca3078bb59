// Config loading: every error names the file, the line and the key path.

#include <gtest/gtest.h>

#include <cmath>

#include "core/config_error.h"
#include "core/yaml_reader.h"
#include "env/twin/config_paths.h"
#include "env/twin/institution.h"
#include "env/twin/levers.h"
#include "env/twin/scenario.h"
#include "tests/test_util.h"

using loantwin::testing::ReadFile;

namespace loantwin {
namespace {

using testing::TempDir;

const char* kMinimalInstitution = R"(name: tiny
members: 1000
products:
  personal:
    initial_loans: 100
)";

std::string ErrorOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "<no ConfigError>";
}

TEST(InstitutionConfig, EveryPresetLoadsByNameAndByPath) {
  const auto names = ListConfigs("institutions");
  for (const char* expected :
       {"cu_small", "cu_mid", "cu_large", "cu_digital", "marketplace_lender"})
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  for (const auto& name : names) {
    auto by_name = LoadInstitution(name);
    EXPECT_EQ(by_name->name, name);
    auto by_path = LoadInstitution(ResolveConfig("institutions", name));
    EXPECT_EQ(by_path->members, by_name->members);
  }
  const auto mid = LoadInstitution("cu_mid");
  EXPECT_TRUE(mid->products[kHome].offered);
  EXPECT_FALSE(mid->products[kBusiness].offered);
  EXPECT_TRUE(LoadInstitution("cu_large")->products[kBusiness].offered);
}

TEST(InstitutionConfig, ProductOverridesApply) {
  TempDir dir;
  const auto cfg = LoadInstitution(dir.File(
      "x.yaml", std::string(kMinimalInstitution) + "    lgd: 0.6\n    default_cutoff: 2\n"));
  EXPECT_DOUBLE_EQ(cfg->products[kPersonal].spec.lgd, 0.6);
  EXPECT_EQ(cfg->products[kPersonal].spec.default_cutoff, 2);
  EXPECT_EQ(DefaultLevers(*cfg).approval_cutoff[kPersonal], 2);
}

TEST(InstitutionConfig, UnknownKeyNamesFileLineAndPath) {
  TempDir dir;
  const std::string f = dir.File("bad.yaml", std::string(kMinimalInstitution) + "    lgdd: 0.5\n");
  const std::string msg = ErrorOf([&] { LoadInstitution(f); });
  EXPECT_NE(msg.find("bad.yaml:6:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("products.personal.lgdd"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unknown key"), std::string::npos) << msg;
  EXPECT_NE(msg.find("lgd"), std::string::npos) << msg;  // lists known keys
}

TEST(InstitutionConfig, EmptyNamesAndUnsimulatableVolumesAreRefused) {
  TempDir dir;
  std::string msg = ErrorOf([&] {
    LoadInstitution(dir.File("n.yaml",
                             "name: ''\nmembers: 10\nproducts:\n  card:\n"
                             "    initial_loans: 5\n"));
  });
  EXPECT_NE(msg.find("n.yaml:1:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'name' must not be empty"), std::string::npos) << msg;
  msg = ErrorOf([&] { LoadScenario(dir.File("s.yaml", "name: '  '\npaths: {}\n")); });
  EXPECT_NE(msg.find("s.yaml:1:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'name' must not be empty"), std::string::npos) << msg;
  msg = ErrorOf([&] {
    LoadInstitution(dir.File(
        "a.yaml", std::string(kMinimalInstitution) + "    applications_per_month: 900000\n"));
  });
  EXPECT_NE(msg.find("a.yaml:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("loans in one instance's book"), std::string::npos) << msg;
  msg = ErrorOf([&] {
    LoadInstitution(
        dir.File("b.yaml", std::string(kMinimalInstitution) + "    applications_per_month: 2e6\n"));
  });
  EXPECT_NE(msg.find("2e6 is out of range [0, 1000000]"), std::string::npos) << msg;
  // Large but simulatable.
  EXPECT_NO_THROW(LoadInstitution(dir.File(
      "ok.yaml", std::string(kMinimalInstitution) + "    applications_per_month: 20000\n")));
}

TEST(InstitutionConfig, WrongTypeNamesKey) {
  TempDir dir;
  const std::string f =
      dir.File("t.yaml", "name: t\nmembers: many\nproducts:\n  card:\n    initial_loans: 5\n");
  const std::string msg = ErrorOf([&] { LoadInstitution(f); });
  EXPECT_NE(msg.find("t.yaml:2:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'members'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected an integer, got 'many'"), std::string::npos) << msg;
}

TEST(InstitutionConfig, OutOfRangeNamesValueAndRange) {
  TempDir dir;
  const std::string f = dir.File("r.yaml", std::string(kMinimalInstitution) + "    lgd: 1.7\n");
  const std::string msg = ErrorOf([&] { LoadInstitution(f); });
  EXPECT_NE(msg.find("r.yaml:6:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("products.personal.lgd"), std::string::npos) << msg;
  EXPECT_NE(msg.find("1.7 is out of range [0, 1]"), std::string::npos) << msg;
}

TEST(InstitutionConfig, ListLengthAndEnumErrors) {
  TempDir dir;
  std::string msg = ErrorOf([&] {
    LoadInstitution(dir.File("l.yaml", std::string(kMinimalInstitution) + "    pd: [0.1, 0.2]\n"));
  });
  EXPECT_NE(msg.find("expected 7 values, got 2"), std::string::npos) << msg;
  msg = ErrorOf([&] {
    LoadInstitution(
        dir.File("e.yaml", std::string(kMinimalInstitution) + "    basel_class: corporate\n"));
  });
  EXPECT_NE(msg.find("'corporate' is not one of: mortgage, revolving, other_retail"),
            std::string::npos)
      << msg;
  msg = ErrorOf([&] {
    LoadInstitution(dir.File("p.yaml", std::string(kMinimalInstitution) +
                                           "    pd: [0.1, 0.05, 0.2, 0.3, 0.4, 0.5, 0.6]\n"));
  });
  EXPECT_NE(msg.find("'pd' must not decrease"), std::string::npos) << msg;
}

TEST(InstitutionConfig, MissingRequiredKeyAndMissingFile) {
  TempDir dir;
  std::string msg = ErrorOf([&] { LoadInstitution(dir.File("m.yaml", "name: m\nmembers: 5\n")); });
  EXPECT_NE(msg.find("missing required key 'products'"), std::string::npos) << msg;
  msg = ErrorOf([&] { LoadInstitution(dir.path() + "/nope.yaml"); });
  EXPECT_NE(msg.find("nope.yaml: no such file"), std::string::npos) << msg;
  msg = ErrorOf([&] { LoadInstitution("cu_nonexistent"); });
  EXPECT_NE(msg.find("unknown institution 'cu_nonexistent'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cu_mid"), std::string::npos) << msg;  // lists the built-in presets
}

TEST(InstitutionConfig, ABookWithNoLoansIsRejected) {
  TempDir dir;
  std::string msg = ErrorOf([&] {
    LoadInstitution(
        dir.File("z.yaml", "name: z\nmembers: 5\nproducts:\n  card:\n    initial_loans: 0\n"));
  });
  EXPECT_NE(msg.find("products.card has neither initial_loans nor applications_per_month"),
            std::string::npos)
      << msg;
  msg = ErrorOf([&] {
    LoadInstitution(dir.File("y.yaml",
                             "name: y\nmembers: 5\nproducts:\n  card:\n    "
                             "initial_loans: 0\n    applications_per_month: 10\n"));
  });
  EXPECT_NE(msg.find("at least one product needs initial_loans > 0"), std::string::npos) << msg;
}

TEST(InstitutionConfig, YamlSyntaxErrorNamesLine) {
  TempDir dir;
  const std::string msg =
      ErrorOf([&] { LoadInstitution(dir.File("s.yaml", "name: s\nmembers: [1, 2\n")); });
  EXPECT_NE(msg.find("s.yaml:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("YAML syntax error"), std::string::npos) << msg;
}

TEST(YamlReader, DuplicateKeysAndSecondDocumentsAreRejected) {
  TempDir dir;
  std::string msg =
      ErrorOf([&] { LoadInstitution(dir.File("d.yaml", "name: d\nmembers: 10\nmembers: 20\n")); });
  EXPECT_NE(msg.find("d.yaml:3:1: key 'members' is given twice (first at line 2)"),
            std::string::npos)
      << msg;
  msg = ErrorOf([&] {
    LoadInstitution(
        dir.File("n.yaml", "name: n\nproducts:\n  card:\n    lgd: 0.5\n    lgd: 0.6\n"));
  });
  EXPECT_NE(msg.find("n.yaml:5:5: key 'products.card.lgd' is given twice"), std::string::npos)
      << msg;
  msg = ErrorOf([&] { LoadInstitution(dir.File("m.yaml", "name: m\n---\nname: other\n")); });
  EXPECT_NE(msg.find("m.yaml:2: a second YAML document"), std::string::npos) << msg;
  // The same key in two different mappings is fine.
  EXPECT_NO_THROW(YamlValue::LoadString("a: {x: 1}\nb: {x: 2}\n", "ok.yaml"));
  // Texts on which yaml-cpp's LoadAll never returns (found by fuzz_yaml): an error, at once.
  for (const char* text : {",py - x", ",a - b\n", "#\xff\xff b\n,py - edit there\n"})
    EXPECT_THROW(YamlValue::LoadString(text, "hang.yaml"), ConfigError) << text;
}

TEST(ScenarioConfig, EveryScenarioLoads) {
  const auto names = ListConfigs("scenarios");
  for (const char* expected :
       {"steady_state", "mild_recession", "severe_recession", "rate_shock", "stagflation",
        "house_price_crash", "fraud_spike", "dfast_2025_baseline", "dfast_2025_severely_adverse",
        "historic_2006_2012"})
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  for (const auto& name : names) {
    const auto s = LoadScenario(name);
    EXPECT_EQ(s->name, name);
    for (int v = 0; v < kNumMacroVars; ++v) EXPECT_FALSE(s->anchors[v].empty());
  }
}

TEST(ScenarioConfig, DfastSeverelyAdverseMatchesFedTable) {
  const auto s = LoadScenario("dfast_2025_severely_adverse");
  // 2024 Q4 jump-off + 13 quarters; unemployment peaks at 10.0% in 2026 Q3; HPI 322.1 -> 214.4.
  ASSERT_EQ(s->anchors[kUnemploymentVar].size(), 14u);
  EXPECT_DOUBLE_EQ(
      *std::max_element(s->anchors[kUnemploymentVar].begin(), s->anchors[kUnemploymentVar].end()),
      10.0);
  EXPECT_DOUBLE_EQ(s->anchors[kHpiVar][0], 322.1);
  EXPECT_DOUBLE_EQ(s->anchors[kHpiVar][7], 214.4);
  // Quarterly points sit at mid-quarter: point i at month 3 i + 1; before point 0 it holds.
  EXPECT_DOUBLE_EQ(s->AnchorAt(kUnemploymentVar, 0), s->anchors[kUnemploymentVar][0]);
  EXPECT_DOUBLE_EQ(s->AnchorAt(kUnemploymentVar, 1), s->anchors[kUnemploymentVar][0]);
  EXPECT_DOUBLE_EQ(s->AnchorAt(kUnemploymentVar, 4), 5.6);
  EXPECT_DOUBLE_EQ(s->AnchorAt(kUnemploymentVar, 5), 5.6 + (6.8 - 5.6) / 3);
  EXPECT_EQ(s->LengthMonths(), 42);
  // Long-run reversion after the horizon (the last point sits at month 40).
  EXPECT_NEAR(s->AnchorAt(kUnemploymentVar, 40 + 24), 4.5, 1e-12);
  EXPECT_NEAR(s->AnchorAt(kUnemploymentVar, 40 + 12), (7.5 + 4.5) / 2, 1e-12);
}

TEST(ScenarioConfig, HistoricReplayIsTable1AFrom2006To2012) {
  const auto s = LoadScenario("historic_2006_2012");
  ASSERT_EQ(s->anchors[kUnemploymentVar].size(), 28u);
  // Table 1A: unemployment 4.7% in 2006 Q1, 9.9% in 2009 Q4 (point 15), 7.8% in 2012 Q4.
  EXPECT_DOUBLE_EQ(s->anchors[kUnemploymentVar][0], 4.7);
  EXPECT_DOUBLE_EQ(s->anchors[kUnemploymentVar][15], 9.9);
  EXPECT_DOUBLE_EQ(s->anchors[kUnemploymentVar][27], 7.8);
  EXPECT_DOUBLE_EQ(s->anchors[kHpiVar][0], 193.7);
  EXPECT_TRUE(s->has_long_run);
  EXPECT_DOUBLE_EQ(s->AnchorAt(kUnemploymentVar, 3 * 15 + 1), 9.9);  // 2009 Q4 at mid-November
}

TEST(ScenarioConfig, AnchorPlacementStartOrMiddle) {
  const std::string body = R"(
step_months: 3
paths: {unemployment: [4, 7], gdp_growth: [2], policy_rate: [3], rate_10y: [4], mortgage_rate: [6], hpi: [100], credit_spread: [1]}
)";
  const auto mid = ParseScenario("name: m" + body, "m.yaml");
  EXPECT_DOUBLE_EQ(mid->AnchorAt(kUnemploymentVar, 1), 4.0);
  EXPECT_DOUBLE_EQ(mid->AnchorAt(kUnemploymentVar, 2), 5.0);
  EXPECT_DOUBLE_EQ(mid->AnchorAt(kUnemploymentVar, 4), 7.0);
  const auto start = ParseScenario("name: s\nanchor_placement: start" + body, "s.yaml");
  EXPECT_DOUBLE_EQ(start->AnchorAt(kUnemploymentVar, 1), 5.0);
  EXPECT_DOUBLE_EQ(start->AnchorAt(kUnemploymentVar, 3), 7.0);
  const std::string msg =
      ErrorOf([&] { ParseScenario("name: b\nanchor_placement: end" + body, "b.yaml"); });
  EXPECT_NE(msg.find("b.yaml:2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'middle' or 'start'"), std::string::npos) << msg;
}

// The default noise is the VAR(1) estimated from Table 1A (scripts/estimate_macro_noise.py): the
// Monte Carlo spread of unemployment and log HPI after 24 months matches its analytic sd, and
// unemployment moves against GDP and house prices.
TEST(ScenarioConfig, DefaultMacroNoiseMatchesTheEstimatedVar) {
  const auto s = LoadScenario("steady_state");
  const auto sd = DefaultShockSd();
  const auto phi = DefaultShockPersistence();
  constexpr int kPaths = 4000, kMonth = 24;
  double su = 0, suu = 0, sh = 0, shh = 0, sug = 0, sg = 0, sgg = 0;
  MacroModel macro(s);
  for (int p = 0; p < kPaths; ++p) {
    macro.Reset(static_cast<uint64_t>(p) + 1);
    for (int m = 0; m <= kMonth; ++m) macro.Step(m);
    const double u = macro.state().unemployment * 100 - s->AnchorAt(kUnemploymentVar, kMonth);
    const double h =
        std::log(macro.state().hpi * s->AnchorAt(kHpiVar, 0) / s->AnchorAt(kHpiVar, kMonth));
    const double g = macro.state().gdp_growth * 100 - s->AnchorAt(kGdpGrowthVar, kMonth);
    su += u, suu += u * u, sh += h, shh += h * h, sg += g, sgg += g * g, sug += u * g;
  }
  auto analytic = [&](int v) {
    double var = 0;
    for (int k = 0; k <= kMonth; ++k) var += std::pow(phi[v], 2 * k);
    return sd[v] * std::sqrt(var);
  };
  const double sd_u = std::sqrt(suu / kPaths - su * su / kPaths / kPaths);
  const double sd_h = std::sqrt(shh / kPaths - sh * sh / kPaths / kPaths);
  const double sd_g = std::sqrt(sgg / kPaths - sg * sg / kPaths / kPaths);
  EXPECT_NEAR(sd_u, analytic(kUnemploymentVar), 0.06 * analytic(kUnemploymentVar));
  EXPECT_NEAR(sd_h, analytic(kHpiVar), 0.06 * analytic(kHpiVar));
  EXPECT_GT(sd_u, 0.8);  // a tail, not a tremor: ~0.85 pp after two years
  const double corr_ug = (sug / kPaths - su * sg / kPaths / kPaths) / (sd_u * sd_g);
  EXPECT_LT(corr_ug, -0.1);
}

TEST(ScenarioConfig, UserScenarioWithMonthlyPointsAndErrors) {
  TempDir dir;
  const std::string ok = dir.File("mine.yaml", R"(name: mine
step_months: 1
paths:
  unemployment: [4, 5, 6]
  gdp_growth: [2]
  policy_rate: [3]
  rate_10y: [4]
  mortgage_rate: [6]
  hpi: [200, 190]
  credit_spread: [1.5]
shocks:
  scale: 0
)");
  const auto s = LoadScenario(ok);
  EXPECT_DOUBLE_EQ(s->AnchorAt(kUnemploymentVar, 1), 5.0);
  EXPECT_DOUBLE_EQ(s->AnchorAt(kUnemploymentVar, 10), 6.0);  // last point holds
  MacroModel macro(s);
  macro.Reset(1);
  macro.Step(0);
  const MacroState& m1 = macro.Step(1);
  EXPECT_DOUBLE_EQ(m1.unemployment, 0.05);  // shocks off: exactly the anchor
  EXPECT_DOUBLE_EQ(m1.hpi, 0.95);

  std::string text = ReadFile(ok);
  const std::string bad = dir.File("bad.yaml", text.replace(text.find("rate_10y"), 8, "rate_11y"));
  const std::string msg = ErrorOf([&] { LoadScenario(bad); });
  EXPECT_NE(msg.find("bad.yaml:"), std::string::npos) << msg;
  EXPECT_TRUE(msg.find("paths.rate_11y") != std::string::npos ||
              msg.find("missing required key 'rate_10y'") != std::string::npos)
      << msg;
  const std::string neg = dir.File("neg.yaml", R"(name: neg
paths: {unemployment: [-1], gdp_growth: [2], policy_rate: [3], rate_10y: [4], mortgage_rate: [6], hpi: [100], credit_spread: [1]}
)");
  EXPECT_NE(ErrorOf([&] { LoadScenario(neg); }).find("paths.unemployment[0]"), std::string::npos);
}

TEST(Levers, DefaultsValidAndOutOfRangeRejected) {
  const auto cfg = LoadInstitution("cu_mid");
  Levers l = DefaultLevers(*cfg);
  EXPECT_NO_THROW(ValidateLevers(l));
  EXPECT_EQ(l.approval_cutoff[kBusiness], -1);  // not offered
  l.rate_spread[kCard] = 0.9;
  try {
    ValidateLevers(l);
    FAIL() << "expected invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("rate_spread[card] = 0.9"), std::string::npos) << e.what();
  }
  l = DefaultLevers(*cfg);
  l.collection_intensity[2] = 4;
  EXPECT_THROW(ValidateLevers(l), std::invalid_argument);
  l = DefaultLevers(*cfg);
  l.risk_appetite = 5;
  EXPECT_THROW(ValidateLevers(l), std::invalid_argument);
}

TEST(Levers, RiskAppetiteBoundsCutoffAndBudget) {
  Levers l = DefaultLevers(*LoadInstitution("cu_mid"));
  l.approval_cutoff.fill(6);
  l.origination_budget.fill(3.0);
  l.risk_appetite = 0;
  const Levers eff = ApplyRiskAppetite(l);
  for (int p = 0; p < kNumProducts; ++p) {
    EXPECT_EQ(eff.approval_cutoff[p], GetRiskAppetite(0).max_cutoff);
    EXPECT_DOUBLE_EQ(eff.origination_budget[p], GetRiskAppetite(0).max_budget);
  }
  l.risk_appetite = 4;
  EXPECT_EQ(ApplyRiskAppetite(l).approval_cutoff[0], 6);
}

}  // namespace
}  // namespace loantwin
