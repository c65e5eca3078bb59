// Config loading: every error names the file, the line and the key path.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/binary_state.h"
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

TEST(InstitutionConfig, CurrencyIsAnIso4217Code) {
  TempDir dir;
  EXPECT_EQ(LoadInstitution("cu_mid")->currency, "USD");
  EXPECT_EQ(
      LoadInstitution(dir.File("e.yaml", "currency: EUR\n" + std::string(kMinimalInstitution)))
          ->currency,
      "EUR");
  const std::string msg = ErrorOf([&] {
    LoadInstitution(dir.File("c.yaml", "currency: euro\n" + std::string(kMinimalInstitution)));
  });
  EXPECT_NE(msg.find("c.yaml:1:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ISO 4217 code of three capital letters"), std::string::npos) << msg;
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

namespace loantwin {
namespace {

// ---- generated scenarios (docs/scenarios.md, "Generated scenarios") ----

TEST(GeneratedScenarios, UsPostwarIsNotInTheNamedLibraryButLoadsByName) {
  const auto names = ListConfigs("scenarios");
  EXPECT_EQ(std::find(names.begin(), names.end(), "us_postwar"), names.end());
  const auto s = LoadScenario("us_postwar");
  EXPECT_TRUE(s->generator.enabled);
  EXPECT_NEAR(s->generator.recession.rate_per_year, 6 / 49.0, 1e-3);  // 6 in 1976-2024
  EXPECT_NEAR(s->generator.rate_shock.rate_per_year, 4 / 49.0, 1e-3);
  EXPECT_NEAR(s->generator.house_price_correction.rate_per_year, 1 / 49.0, 1e-3);
}

TEST(GeneratedScenarios, EventsFollowTheFittedDistributions) {
  const auto s = LoadScenario("us_postwar");
  const auto& rec = s->generator.recession;
  std::vector<double> rises, months, shocks;
  int64_t recessions = 0;
  const int keys = 3000, horizon = 1200;
  for (int k = 0; k < keys; ++k) {
    const auto events = s->DrawEvents(static_cast<uint64_t>(k) * 7919 + 3, horizon);
    EXPECT_EQ(events, s->DrawEvents(static_cast<uint64_t>(k) * 7919 + 3, horizon));  // pure
    for (size_t i = 1; i < events.size(); ++i) EXPECT_LE(events[i - 1].start, events[i].start);
    for (const auto& e : events) {
      EXPECT_LT(e.start, horizon);
      if (e.kind == MacroEvent::kRecession) {
        ++recessions, rises.push_back(e.size), months.push_back(e.months);
        EXPECT_GE(e.size, rec.rise_pp.min);
        EXPECT_LE(e.size, rec.rise_pp.max);
      } else if (e.kind == MacroEvent::kRateShock) {
        shocks.push_back(e.size);
      }
    }
  }
  auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  };
  EXPECT_NEAR(std::log(median(rises)), rec.rise_pp.log_mean, 0.05);
  EXPECT_NEAR(std::log(median(months)), rec.rise_months.log_mean, 0.05);
  EXPECT_NEAR(std::log(median(shocks)), s->generator.rate_shock.rise_pp.log_mean, 0.05);
  // Arrivals: a Poisson clock restarted at each peak, so one recession per 1/rate years plus
  // the mean rise time.
  double mean_rise_years = 0;
  for (double m : months) mean_rise_years += m / 12 / months.size();
  const double expected = keys * (horizon / 12.0) / (1 / rec.rate_per_year + mean_rise_years);
  EXPECT_NEAR(recessions / expected, 1.0, 0.05) << recessions << " vs " << expected;
}

constexpr const char* kOneRecession = R"(name: one
paths: {unemployment: [4.5], gdp_growth: [2], policy_rate: [3.5], rate_10y: [4], mortgage_rate: [6], hpi: [100], credit_spread: [1.5]}
shocks: {scale: 0}
generator:
  recession:
    rate_per_year: 1.0e-9
    rise_pp: {log_mean: 1.0986, log_sd: 0}
    rise_months: {log_mean: 2.4849, log_sd: 0}
    recovery_pp_per_month: 0.1
    policy_cut_per_pp: 1.0
    long_rate_beta: 0.5
    spread_per_pp: 0.5
    hpi_drag_per_year: 6
)";

TEST(GeneratedScenarios, TheOverlayMovesEveryVariableAsDocumented) {
  // One recession at month 10 of +3 points over 12 months, recovering at 0.1 pp a month.
  const auto s = ParseScenario(kOneRecession, "one.yaml");
  const std::vector<MacroEvent> events = {{MacroEvent::kRecession, 10, 3.0, 12.0}};
  const auto at = [&](int month) { return Scenario::EventOverlay(s->generator, events, month); };
  EXPECT_EQ(at(9)[kUnemploymentVar], 0.0);
  EXPECT_NEAR(at(16)[kUnemploymentVar], 1.5, 1e-12);              // half way up
  EXPECT_NEAR(at(22)[kUnemploymentVar], 3.0, 1e-12);              // the peak
  EXPECT_NEAR(at(37)[kUnemploymentVar], 1.5, 1e-12);              // 15 months of 0.1 pp down
  EXPECT_NEAR(at(52)[kUnemploymentVar], 0.0, 1e-12);              // recovered
  EXPECT_NEAR(at(16)[kGdpGrowthVar], -2.0 * 3 * 12 / 12, 1e-12);  // Okun: 2 x 3 pp a year
  EXPECT_NEAR(at(16)[kPolicyRateVar], -3.0, 1e-12);               // cut in full by mid-rise
  EXPECT_NEAR(at(16)[kRate10yVar], -1.5, 1e-12);
  EXPECT_NEAR(at(22)[kCreditSpreadVar], 1.5, 1e-12);
  EXPECT_NEAR(at(40)[kHpiVar], -0.06, 1e-12);  // 6%/yr for the 12 rising months, lasting
  // A house-price correction: 20% off over 40 months, lasting.
  const std::vector<MacroEvent> hpc = {{MacroEvent::kHousePriceCorrection, 0, 0.2, 40.0}};
  EXPECT_NEAR(Scenario::EventOverlay(s->generator, hpc, 20)[kHpiVar], std::log(0.8) / 2, 1e-12);
  EXPECT_NEAR(Scenario::EventOverlay(s->generator, hpc, 90)[kHpiVar], std::log(0.8), 1e-12);
  // The macro model lays the drawn events over the anchors; same key, same path.
  MacroModel a(s), b(s);
  a.Reset(5), b.Reset(5);
  for (int m = 0; m < 600; ++m) {
    const MacroState x = a.Step(m), y = b.Step(m);
    ASSERT_EQ(x.unemployment, y.unemployment);
    ASSERT_EQ(x.hpi, y.hpi);
  }
  EXPECT_TRUE(a.events().empty());  // at 1e-9 a year, nothing arrives
}

TEST(GeneratedScenarios, EpisodesDifferAndACheckpointKeepsTheirEvents) {
  const auto s = LoadScenario("us_postwar");
  MacroModel a(s);
  double worst = 0;
  int with_recession = 0;
  for (uint64_t key = 0; key < 200; ++key) {
    a.Reset(key);
    double peak = 0;
    for (int m = 0; m < 120; ++m) peak = std::max(peak, a.Step(m).unemployment);
    worst = std::max(worst, peak);
    with_recession += peak > 0.07;
  }
  EXPECT_GT(worst, 0.09);         // some episodes see a deep recession
  EXPECT_GT(with_recession, 20);  // and many a recession at all
  EXPECT_LT(with_recession, 190);
  // Save mid-episode, restore into a fresh model: the rest of the path is identical.
  a.Reset(11);
  for (int m = 0; m < 30; ++m) a.Step(m);
  StateWriter w;
  a.Save(w);
  MacroModel b(s);
  StateReader r(w.bytes().data(), w.bytes().size());
  b.Load(r);
  EXPECT_EQ(a.events(), b.events());
  for (int m = 30; m < 120; ++m) ASSERT_EQ(a.Step(m).unemployment, b.Step(m).unemployment);
}

TEST(GeneratedScenarios, BadGeneratorsAreRefusedNamingTheKey) {
  std::string text = kOneRecession;
  auto error = [](const std::string& yaml) {
    try {
      ParseScenario(yaml, "g.yaml");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error(text + "  earthquake: {rate_per_year: 1}\n").find("earthquake"),
            std::string::npos);
  std::string swapped = text;
  swapped.replace(swapped.find("log_sd: 0}\n    rise_months"), 10, "log_sd: -1}");
  EXPECT_NE(error(swapped).find("log_sd"), std::string::npos);
  std::string no_months = text;
  no_months.erase(no_months.find("    rise_months"),
                  std::string("    rise_months: {log_mean: 2.4849, log_sd: 0}\n").size());
  EXPECT_NE(error(no_months).find("rise_months"), std::string::npos);
}

}  // namespace
}  // namespace loantwin
