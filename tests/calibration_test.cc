// Calibration targets (docs/twin-model.md has the table and sources). Each test simulates
// Monte Carlo paths and checks simulated figures against public ranges.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "env/institution.h"
#include "env/levers.h"
#include "env/monte_carlo.h"
#include "env/scenario.h"
#include "env/twin.h"

namespace loantwin {
namespace {

PathSet Simulate(const std::string& inst, const std::string& scenario, int months, int paths) {
  const auto cfg = LoadInstitution(inst);
  MonteCarloOptions o;
  o.months = months;
  o.paths = paths;
  o.seed = 2024;
  o.threads = 2;
  return RunMonteCarlo(cfg, LoadScenario(scenario), DefaultLevers(*cfg), o);
}

/// Mean over paths and months [from, to) of a metric.
double Mean(const PathSet& s, int metric, int from, int to) {
  double sum = 0;
  for (int p = 0; p < s.paths; ++p)
    for (int m = from; m < to; ++m) sum += s.at(p, m, metric);
  return sum / (s.paths * (to - from));
}

/// Peak over months of the path-mean, trailing-3-month average of a metric.
double PeakQuarterly(const PathSet& s, int metric) {
  double peak = 0;
  for (int m = 2; m < s.months; ++m) peak = std::max(peak, Mean(s, metric, m - 2, m + 1));
  return peak;
}

class SteadyState : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { steady_ = new PathSet(Simulate("cu_mid", "steady_state", 120, 16)); }
  static void TearDownTestSuite() { delete steady_; }
  static double ChargeOff(int product) {
    return Mean(*steady_, ProductMetricIndex(product, kPChargeOffRate), 12, 120);
  }
  static PathSet* steady_;
};
PathSet* SteadyState::steady_ = nullptr;

TEST_F(SteadyState, AnnualChargeOffRatesInPublishedRanges) {
  // Fed charge-off release / S&P-Experian default indices (docs/twin-model.md).
  EXPECT_GE(ChargeOff(kCard), 0.035);
  EXPECT_LE(ChargeOff(kCard), 0.045);
  EXPECT_GE(ChargeOff(kPersonal), 0.01);
  EXPECT_LE(ChargeOff(kPersonal), 0.03);
  EXPECT_GE(ChargeOff(kAuto), 0.005);
  EXPECT_LE(ChargeOff(kAuto), 0.02);
  EXPECT_GE(ChargeOff(kHome), 0.0005);
  EXPECT_LE(ChargeOff(kHome), 0.005);
}

TEST_F(SteadyState, NetInterestMarginNearIndustry) {
  const double nim = Mean(*steady_, kNim, 0, 120);
  EXPECT_GE(nim, 0.025);  // FDIC industry NIM 3.23% (2024Q3)
  EXPECT_LE(nim, 0.045);
}

TEST_F(SteadyState, BookIsStableAndProfitable) {
  const double start = Mean(*steady_, kLoanBalance, 0, 1), end = Mean(*steady_, kLoanBalance, 108, 120);
  EXPECT_GT(end, 0.9 * start);
  EXPECT_LT(end, 1.5 * start);
  EXPECT_GT(Mean(*steady_, kRoa, 12, 120), 0.002);
  EXPECT_LT(Mean(*steady_, kRoa, 12, 120), 0.02);
}

void ExpectStress(const std::string& scenario, const PathSet& steady) {
  const PathSet s = Simulate("cu_mid", scenario, 120, 16);
  const double card_base = Mean(steady, ProductMetricIndex(kCard, kPChargeOffRate), 12, 120);
  const double home_base = Mean(steady, ProductMetricIndex(kHome, kPChargeOffRate), 12, 120);
  const double card_peak = PeakQuarterly(s, ProductMetricIndex(kCard, kPChargeOffRate));
  const double home_peak = PeakQuarterly(s, ProductMetricIndex(kHome, kPChargeOffRate));
  EXPECT_GE(card_peak, 2.2 * card_base) << scenario;
  EXPECT_GE(home_peak, 8.0 * home_base) << scenario;
  // CET1 falls, but the rule-based levers keep cu_mid above the 4.5% minimum on every path.
  double min_cet1 = 1e9, start_cet1 = Mean(s, kCet1Ratio, 0, 1);
  for (int p = 0; p < s.paths; ++p)
    for (int m = 0; m < s.months; ++m) min_cet1 = std::min(min_cet1, s.at(p, m, kCet1Ratio));
  EXPECT_LT(min_cet1, 0.8 * start_cet1) << scenario;
  EXPECT_GT(min_cet1, 0.045) << scenario;
}

TEST_F(SteadyState, SevereRecessionStress) { ExpectStress("severe_recession", *steady_); }
TEST_F(SteadyState, DfastSeverelyAdverseStress) {
  ExpectStress("dfast_2025_severely_adverse", *steady_);
}

TEST(MarketplaceLender, LendingClubLifetimeChargeOffs) {
  // Cohorts originated over 12 months under steady_state, then no new lending, run until every
  // loan has matured, prepaid or charged off. Lending Club 2007-2011: 11.1% (36m), 22.9% (60m).
  const auto cfg = LoadInstitution("marketplace_lender");
  const auto sc = LoadScenario("steady_state");
  Levers levers = DefaultLevers(*cfg);
  std::vector<CohortCounts> total(cfg->products[kPersonal].spec.terms.size());
  std::vector<double> row(kNumMetrics);
  for (int instance = 0; instance < 4; ++instance) {
    Twin twin(cfg, sc, 2011, instance);
    for (int m = 0; m < 12 + 60 + 36; ++m) {
      levers.origination_budget[kPersonal] = m < 12 ? 1.0 : 0.0;
      twin.Step(levers, row.data());
    }
    const auto& cohorts = twin.cohorts()[kPersonal];
    for (size_t t = 0; t < cohorts.size(); ++t) {
      total[t].originated += cohorts[t].originated;
      total[t].charged_off += cohorts[t].charged_off;
      total[t].prepaid += cohorts[t].prepaid;
      total[t].matured += cohorts[t].matured;
    }
  }
  ASSERT_EQ(total.size(), 2u);
  for (const auto& c : total) {
    ASSERT_GT(c.originated, 5000);
    // Every loan is resolved (a handful may still be in workout).
    EXPECT_GE(c.charged_off + c.prepaid + c.matured, c.originated * 995 / 1000);
  }
  const double co36 = static_cast<double>(total[0].charged_off) / total[0].originated;
  const double co60 = static_cast<double>(total[1].charged_off) / total[1].originated;
  RecordProperty("lifetime_chargeoff_36m", std::to_string(co36));
  RecordProperty("lifetime_chargeoff_60m", std::to_string(co60));
  EXPECT_GE(co36, 0.09) << co36;
  EXPECT_LE(co36, 0.13) << co36;
  EXPECT_GE(co60, 0.19) << co60;
  EXPECT_LE(co60, 0.27) << co60;
}

TEST(MarketplaceLender, SharedDataAgreesWithPresetWhenPresent) {
  // Re-derives the preset's term mix from the raw Lending Club file, if shared/data is present.
  const std::string path =
      std::string(LOANTWIN_SOURCE_DIR) + "/../shared/data/credit/lending_club_2007_2011.csv";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "shared data absent: " << path;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  int n36 = 0, n60 = 0, co36 = 0, co60 = 0;
  while (std::getline(in, line)) {
    const bool is60 = line.find(",60 months,") != std::string::npos;
    const bool charged = line.find("Charged Off") != std::string::npos;
    (is60 ? n60 : n36) += 1;
    (is60 ? co60 : co36) += charged;
  }
  const auto cfg = LoadInstitution("marketplace_lender");
  const auto& terms = cfg->products[kPersonal].spec.terms;
  EXPECT_NEAR(terms[0].weight, static_cast<double>(n36) / (n36 + n60), 0.001);
  EXPECT_NEAR(static_cast<double>(co36) / n36, 0.1109, 0.0005);
  EXPECT_NEAR(static_cast<double>(co60) / n60, 0.2285, 0.0005);
}

}  // namespace
}  // namespace loantwin
