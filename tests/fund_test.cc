// The home-equity fund (docs/fund-model.md): the waterfall and the notes on hand-computed cases,
// IRRs, zone house-price paths (volatility, correlation, validation), the borrowing-base sweep,
// the cash-conservation invariant every month, config validation.

#include <gtest/gtest.h>

#include <cmath>

#include "core/config_error.h"
#include "core/counter_rng.h"
#include "core/yaml_reader.h"
#include "env/fund/fund_model.h"
#include "env/fund_env.h"

namespace loantwin {
namespace {

TEST(Waterfall, HandComputedDistributionWithFullCatchUp) {
  WaterfallTerms t;
  t.pref_rate = 0.08, t.catch_up = 1.0, t.carry = 0.20, t.gp_commitment = 0.0;
  EquityWaterfall w(t);
  w.Contribute(100);
  for (int m = 0; m < 12; ++m) w.AccrueMonth();
  EXPECT_NEAR(w.pref_due(), 8.0, 1e-9);  // 8% a year compounded monthly = 8.00 after a year
  const WaterfallSplit s = w.Distribute(150);
  EXPECT_NEAR(s.return_of_capital, 100, 1e-9);
  EXPECT_NEAR(s.preferred, 8, 1e-9);
  EXPECT_NEAR(s.catch_up, 2, 1e-9);      // GP to 20% of 10 of profit
  EXPECT_NEAR(s.carry_split, 40, 1e-9);  // 32 LP, 8 GP
  EXPECT_NEAR(s.lp, 140, 1e-9);
  EXPECT_NEAR(s.gp, 10, 1e-9);
  EXPECT_NEAR(s.gp_promote, 10, 1e-9);
  // The GP holds exactly the carry of all profit: 10 of 50.
  EXPECT_NEAR(w.gp_promote() / (w.gp_promote() + w.investor_profit()), 0.20, 1e-12);
  std::vector<double> lp(13, 0.0);
  lp[0] = -100, lp[12] = 140;
  EXPECT_NEAR(AnnualIrr(lp), 0.40, 1e-9);
  EXPECT_NEAR(EquityMultiple(lp), 1.4, 1e-12);
}

TEST(Waterfall, PartialCatchUpGpCommitmentAndShortfalls) {
  WaterfallTerms t;
  t.pref_rate = 0.08, t.catch_up = 0.5, t.carry = 0.20, t.gp_commitment = 0.10;
  EquityWaterfall w(t);
  w.Contribute(100);
  for (int m = 0; m < 12; ++m) w.AccrueMonth();
  // Less than the capital: return of capital only, nothing to the promote.
  WaterfallSplit a = w.Distribute(60);
  EXPECT_NEAR(a.return_of_capital, 60, 1e-9);
  EXPECT_NEAR(a.lp, 54, 1e-9);
  EXPECT_NEAR(a.gp, 6, 1e-9);
  EXPECT_EQ(a.gp_promote, 0);
  // Pref now accrues on the 40 unreturned (and the unpaid pref): one more month.
  const double pref_before = w.pref_due();
  w.AccrueMonth();
  const double r = std::pow(1.08, 1.0 / 12) - 1;
  EXPECT_NEAR(w.pref_due(), pref_before + (40 + pref_before) * r, 1e-12);
  const double pref = w.pref_due();
  // 40 capital, the pref, then a catch-up at 50%: y = carry x pref / (0.5 - 0.2).
  const double y = 0.2 * pref / 0.3;
  WaterfallSplit b = w.Distribute(40 + pref + y + 10);
  EXPECT_NEAR(b.return_of_capital, 40, 1e-9);
  EXPECT_NEAR(b.preferred, pref, 1e-9);
  EXPECT_NEAR(b.catch_up, y, 1e-9);
  EXPECT_NEAR(b.carry_split, 10, 1e-9);
  const double promote = 0.5 * y + 0.2 * 10;
  EXPECT_NEAR(b.gp_promote, promote, 1e-9);
  const double investors = 40 + pref + 0.5 * y + 0.8 * 10;
  EXPECT_NEAR(b.lp, 0.9 * investors, 1e-9);
  EXPECT_NEAR(b.gp, 0.1 * investors + promote, 1e-9);
  EXPECT_NEAR(w.gp_promote() / (w.gp_promote() + w.investor_profit()), 0.20, 1e-12);
  EXPECT_THROW(EquityWaterfall(WaterfallTerms{0.08, 0.2, 0.2, 0}), std::invalid_argument);
}

TEST(Waterfall, IrrOfKnownFlows) {
  // -100, +60 after one year, +60 after two: 60 v^2 + 60 v - 100 = 0.
  std::vector<double> f(25, 0.0);
  f[0] = -100, f[12] = 60, f[24] = 60;
  const double v = (-60 + std::sqrt(3600 + 24000)) / 120;
  EXPECT_NEAR(AnnualIrr(f), 1 / v - 1, 1e-9);
  f[24] = 30;  // a loss
  const double v2 = (-60 + std::sqrt(3600 + 12000)) / 60;
  EXPECT_NEAR(AnnualIrr(f), 1 / v2 - 1, 1e-9);
  EXPECT_TRUE(std::isnan(AnnualIrr({0, 10, 20})));  // nothing paid in
  EXPECT_TRUE(std::isnan(EquityMultiple({0, 10})));
}

TEST(Notes, OvercollateralisationTestAndRepayment) {
  Notes n({{"senior", 0.6, 0.05, 1.5}, {"mezzanine", 0.2, 0.08, 1.2}});
  n.Fund(0, 60), n.Fund(1, 20);
  EXPECT_NEAR(n.CouponDue(0), 60 * 0.05 / 12, 1e-12);
  EXPECT_NEAR(n.OcRatio(0, 80), 80.0 / 60, 1e-12);
  EXPECT_FALSE(n.OcPasses(0, 80));
  EXPECT_TRUE(n.OcPasses(1, 100));  // 100 / 80 = 1.25 >= 1.2
  // (80 - p) / (60 - p) >= 1.5  <=>  p >= 20: after 20 of senior principal the test passes.
  EXPECT_NEAR(n.Repay(0, 20), 20, 1e-12);
  EXPECT_TRUE(n.OcPasses(0, 60));
  EXPECT_NEAR(n.Repay(0, 100), 40, 1e-12);  // no more than the balance
  EXPECT_EQ(n.balance(0), 0);
}

TEST(Zones, SampleVolatilityAndCorrelationMatchTheConfiguration) {
  const ZoneSet zones = ZoneSet::Default();
  const int zn = zones.size(), months = 40000;
  std::vector<double> log_hpi(zn, 0.0), prev(zn, 0.0);
  std::vector<std::vector<double>> changes(zn, std::vector<double>(months));
  CounterRng rng(12345);
  std::vector<double> normals(zn);
  for (int t = 0; t < months; ++t) {
    for (int z = 0; z < zn; ++z) normals[z] = rng.Normal();
    prev = log_hpi;
    StepZoneHpi(zones, 0.002, normals.data(), log_hpi.data());
    for (int z = 0; z < zn; ++z) changes[z][t] = log_hpi[z] - prev[z];
  }
  std::vector<double> mean(zn), sd(zn);
  for (int z = 0; z < zn; ++z) {
    double s = 0, s2 = 0;
    for (double x : changes[z]) s += x, s2 += x * x;
    mean[z] = s / months;
    sd[z] = std::sqrt(s2 / months - mean[z] * mean[z]);
    const Zone& c = zones.zones[z];
    const double want_sd = c.volatility / std::sqrt(12.0);
    EXPECT_NEAR(sd[z], want_sd, 4 * want_sd / std::sqrt(2.0 * months)) << c.name;
    // Drift: the national change times beta plus the zone's own drift.
    EXPECT_NEAR(mean[z], c.beta * 0.002 + c.drift / 12, 4 * want_sd / std::sqrt(months)) << c.name;
  }
  for (int a = 0; a < zn; ++a)
    for (int b = 0; b < a; ++b) {
      double cov = 0;
      for (int t = 0; t < months; ++t) cov += (changes[a][t] - mean[a]) * (changes[b][t] - mean[b]);
      const double rho = cov / months / (sd[a] * sd[b]);
      const double want = zones.correlation(a, b);
      EXPECT_NEAR(rho, want, 4 * (1 - want * want) / std::sqrt(months)) << a << "," << b;
    }
}

TEST(Zones, InvalidCorrelationMatricesAreRejectedWithAMessage) {
  const std::string zones = "zones:\n  - {name: a}\n  - {name: b}\n  - {name: c}\n";
  auto parse = [&](const std::string& corr) {
    return ZoneSet::Parse(YamlValue::LoadString(zones + corr, "zones.yaml"));
  };
  EXPECT_NO_THROW(parse("correlation: 0.3\n"));
  auto expect_error = [&](const std::string& corr, const std::string& what) {
    try {
      parse(corr);
      FAIL() << corr;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("zones.yaml"), std::string::npos) << e.what();
    }
  };
  expect_error("correlation: [[1, 0.9, 0.9], [0.9, 1, -0.9], [0.9, -0.9, 1]]\n",
               "not positive definite");
  expect_error("correlation: [[1, 0.5, 0], [0.4, 1, 0], [0, 0, 1]]\n", "not symmetric");
  expect_error("correlation: [[1, 0.5], [0.5, 1]]\n", "expected 3 rows");
  expect_error("correlation: [[0.9, 0, 0], [0, 1, 0], [0, 0, 1]]\n", "must be 1");
  try {
    ZoneSet::Parse(YamlValue::LoadString("zones:\n  - {name: a, tier: coastal}\n", "z.yaml"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown tier 'coastal'"), std::string::npos);
  }
  // A tier's defaults are inherited; the zone's own keys win.
  const ZoneSet s = ZoneSet::Parse(
      YamlValue::LoadString("tiers:\n  coastal: {beta: 1.5, volatility: 0.07}\nzones:\n"
                            "  - {name: a, tier: coastal, volatility: 0.04}\n",
                            "t.yaml"));
  EXPECT_EQ(s.zones[0].beta, 1.5);
  EXPECT_EQ(s.zones[0].volatility, 0.04);
  EXPECT_EQ(s.zones[0].tier, "coastal");
}

std::shared_ptr<const FundConfig> DefaultFund() {
  return std::make_shared<FundConfig>();
}

FundDecision Baseline(const FundConfig& c) {
  FundDecision d;
  d.zone_weights.assign(c.zones.size(), 1.0);
  return d;
}

void ExpectCashConserved(const FundMonth& m, double commitment) {
  EXPECT_NEAR(m.cash_end - m.cash_begin, m.inflows() - m.outflows(), 1e-7 * commitment)
      << "month " << m.month;
  EXPECT_GE(m.cash_end, -1e-6) << "month " << m.month;
}

TEST(Fund, CashIsConservedEveryMonthAndEverythingIsDistributedAtTheEnd) {
  for (const char* scenario : {"steady_state", "severe_recession", "house_price_crash"}) {
    auto config = DefaultFund();
    FundPath f(config, LoadScenario(scenario));
    for (uint64_t key : {1u, 2u, 3u}) {
      f.Reset(key);
      CounterRng rng(key);
      double in = 0, out = 0;
      while (!f.done()) {
        FundDecision d = Baseline(*config);
        for (double& w : d.zone_weights) w = std::floor(rng.Uniform() * 4);
        d.leverage = 0.25 * std::floor(rng.Uniform() * 5);
        d.reinvest = rng.Uniform() < 0.7;
        const FundMonth& m = f.Step(d);
        ExpectCashConserved(m, config->fund.commitment);
        in += m.inflows(), out += m.outflows();
      }
      // Nothing left in the fund: every contract sold, the cash paid out (a facility the
      // liquidation could not repay is the lender's loss, and then the equity got nothing).
      EXPECT_NEAR(f.cash(), 0, 1e-6 * config->fund.commitment) << scenario;
      EXPECT_EQ(f.nav(), 0) << scenario;
      if (f.drawn() > 1e-6) EXPECT_EQ(f.last().lp_distributions, 0) << scenario;
      EXPECT_NEAR(in, out, 1e-6 * config->fund.commitment) << scenario;
    }
  }
}

TEST(Fund, ABorrowingBaseBreachSweepsTheCash) {
  // Full leverage without headroom into a house-price crash: the borrowing base falls below
  // the drawn balance and every breach month sweeps the cash to the facility.
  auto config = std::make_shared<FundConfig>();
  FundPath f(config, LoadScenario("house_price_crash"));
  FundDecision d = Baseline(*config);
  d.leverage = 1.0, d.min_headroom = 0.0, d.max_cltv = 0.9;
  int breaches = 0;
  double swept = 0;
  for (uint64_t key = 1; key <= 5 && breaches == 0; ++key) {
    f.Reset(key);
    while (!f.done()) {
      const FundMonth& m = f.Step(d);
      ExpectCashConserved(m, config->fund.commitment);
      if (!m.facility_breach) continue;
      ++breaches;
      EXPECT_TRUE(m.swept);
      EXPECT_EQ(m.invested, 0) << "no investment while in breach, month " << m.month;
      EXPECT_EQ(m.lp_distributions + m.gp_distributions, 0) << m.month;
      EXPECT_EQ(m.draws, 0) << m.month;
      // The sweep takes all the cash there is, up to the drawn balance.
      EXPECT_TRUE(m.cash_end < 1e-6 || m.drawn < 1e-6) << m.month;
      swept += m.facility_repaid;
    }
  }
  EXPECT_GT(breaches, 0);
  EXPECT_GT(swept, 0);
  EXPECT_EQ(f.breach_months(), breaches);
  // The same fund without leverage never breaches.
  d.leverage = 0;
  f.Reset(1);
  while (!f.done()) EXPECT_FALSE(f.Step(d).facility_breach);
}

TEST(Fund, AFailingCoverageTestDivertsCashToTheSeniorNotesAndDefersTheMezzanineCoupon) {
  auto config = std::make_shared<FundConfig>();
  config->tranches[0].oc_trigger = 8.0;  // assets / senior >= 8: fails after the ramp-up
  config->tranches[1].oc_trigger = 6.0;
  FundPath f(config, LoadScenario("steady_state"));
  f.Reset(7);
  const FundDecision d = Baseline(*config);
  int fail_distributions = 0;
  double mezz_before = 0;
  while (!f.done()) {
    mezz_before = f.notes().balance(1);
    const double mezz_coupon = f.notes().CouponDue(1);
    const FundMonth& m = f.Step(d);
    ExpectCashConserved(m, config->fund.commitment);
    if (m.oc_fail && !f.done()) {
      EXPECT_EQ(m.lp_distributions + m.gp_distributions, 0) << m.month;
      EXPECT_EQ(m.invested, 0) << m.month;
      if (m.coupons[1] == 0 && mezz_coupon > 0)
        EXPECT_GE(f.notes().balance(1) + m.note_principal[1], mezz_before + mezz_coupon - 1e-6);
      if (m.note_principal[0] > 0) ++fail_distributions;
    }
  }
  EXPECT_GT(fail_distributions, 0);
  EXPECT_GT(f.oc_fail_months(), 0);
}

TEST(FundConfig, BadValuesAreNamed) {
  auto expect_error = [](const std::string& text, const std::string& what) {
    try {
      FundEnvConfig::Parse(YamlValue::LoadString(text, "fund.yaml"));
      FAIL() << text;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_error("fund: {commitmnet: 5}\n", "commitmnet");
  expect_error("fund: {commitment: -5}\n", "commitment");
  expect_error("waterfall: {catch_up: 0.1, carry: 0.2}\n", "catch_up");
  expect_error("tranches: [{name: s, share: 0.7}, {name: m, share: 0.4}]\n", "equity");
  expect_error("fund: {investment_period_months: 200}\n", "investment_period_months");
  expect_error("roles: {portfolio: {rewards: {profit: 1}}}\n", "profit");
  expect_error("leverage: 2\n", "leverage");
  // The resolved config reads back to itself.
  const FundEnvConfig c;
  const std::string yaml = c.ToYaml();
  EXPECT_EQ(FundEnvConfig::Parse(YamlValue::LoadString(yaml, "resolved")).ToYaml(), yaml);
}

TEST(FundEnv, EqualWeightBaselineInvestsAcrossZonesAndEndsAtTheTerm) {
  EnvOptions o;
  o.num_envs = 4, o.seed = 3;
  HomeEquityFundEnv env(o);
  env.Reset();
  int steps = 0;
  while (!env.terminated()[0]) {
    env.Step();
    ++steps;
    if (steps == 36) EXPECT_GT(env.path(0).called(), 0.8 * env.config().fund.fund.commitment);
  }
  EXPECT_EQ(steps, 120);
  // The finished episode's totals: every zone got an equal share (no guardrail binds).
  for (int i = 0; i < 4; ++i) {
    const FundEpisodeTotals& t = env.episode_totals(i);
    ASSERT_EQ(t.zone_invested.size(), 6u);
    for (double x : t.zone_invested) EXPECT_NEAR(x, t.zone_invested[0], 1e-6 * x);
    EXPECT_EQ(env.metric_names()[kLpIrr], "lp_irr");
    EXPECT_TRUE(std::isfinite(env.metric(i, kSeniorIrr)));
    // An IRR is defined when the LPs got something back; then it agrees with the multiple.
    if (env.metric(i, kLpMultiple) > 1) EXPECT_GT(env.metric(i, kLpIrr), 0);
    if (env.metric(i, kLpMultiple) > 0 && env.metric(i, kLpMultiple) < 1)
      EXPECT_LT(env.metric(i, kLpIrr), 0);
  }
}

}  // namespace
}  // namespace loantwin

namespace loantwin {
namespace {
TEST(FundConfig, TheShippedExampleIsTheBuiltInFund) {
  const FundEnvConfig shipped = FundEnvConfig::Load(std::string(LOANTWIN_SOURCE_DIR) +
                                                    "/configs/funds/home_equity_fund.yaml");
  EXPECT_EQ(shipped.ToYaml(), FundEnvConfig{}.ToYaml());
}
}  // namespace
}  // namespace loantwin
