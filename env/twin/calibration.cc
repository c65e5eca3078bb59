#include "env/twin/calibration.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "env/twin/institution.h"
#include "env/twin/levers.h"
#include "env/twin/scenario.h"

namespace loantwin {

double MeanMetric(const PathSet& s, int metric, int from, int to) {
  double sum = 0;
  for (int p = 0; p < s.paths; ++p)
    for (int m = from; m < to; ++m) sum += s.at(p, m, metric);
  return sum / (static_cast<double>(s.paths) * (to - from));
}

double PeakQuarterlyMetric(const PathSet& s, int metric) {
  double peak = -std::numeric_limits<double>::infinity();
  for (int m = 2; m < s.months; ++m) peak = std::max(peak, MeanMetric(s, metric, m - 2, m + 1));
  return peak;
}

double MinMetric(const PathSet& s, int metric) {
  double v = std::numeric_limits<double>::infinity();
  for (int p = 0; p < s.paths; ++p)
    for (int m = 0; m < s.months; ++m) v = std::min(v, s.at(p, m, metric));
  return v;
}

CohortStudy RunCohortStudy(const std::string& institution, const std::string& scenario, int product,
                           int origination_months, int instances, uint64_t seed) {
  const auto cfg = LoadInstitution(institution);
  const auto sc = LoadScenario(scenario);
  const auto& terms = cfg->products[product].spec.terms;
  int longest = 0;
  CohortStudy study;
  for (const auto& t : terms) {
    longest = std::max(longest, t.months);
    study.term_months.push_back(t.months);
  }
  study.terms.resize(terms.size());
  // Cohorts need the full term plus time for the last delinquencies to resolve.
  const int months = origination_months + longest + 36;
  Levers levers = DefaultLevers(*cfg);
  std::vector<double> row(kNumMetrics);
  for (int instance = 0; instance < instances; ++instance) {
    Twin twin(cfg, sc, seed, instance);
    for (int m = 0; m < months; ++m) {
      levers.origination_budget[product] = m < origination_months ? 1.0 : 0.0;
      twin.Step(levers, row.data());
    }
    const auto& cohorts = twin.cohorts()[product];
    for (size_t t = 0; t < cohorts.size(); ++t) {
      CohortCounts& c = study.terms[t];
      c.originated += cohorts[t].originated;
      c.charged_off += cohorts[t].charged_off;
      c.prepaid += cohorts[t].prepaid;
      c.matured += cohorts[t].matured;
      c.originated_amount += cohorts[t].originated_amount;
      c.charged_off_amount += cohorts[t].charged_off_amount;
    }
  }
  return study;
}

std::vector<CalibrationCheck> RunCalibration(const CalibrationOptions& o) {
  auto simulate = [&](const std::string& inst, const std::string& scenario) {
    const auto cfg = LoadInstitution(inst);
    MonteCarloOptions mc;
    mc.months = 120;
    mc.paths = o.paths;
    mc.seed = o.seed;
    mc.threads = o.threads;
    return RunMonteCarlo(cfg, LoadScenario(scenario), DefaultLevers(*cfg), mc);
  };
  std::vector<CalibrationCheck> checks;
  const PathSet steady = simulate("cu_mid", "steady_state");
  auto co = [&](int p) {
    return MeanMetric(steady, ProductMetricIndex(p, kPChargeOffRate), 12, 120);
  };
  const std::string fed = "Federal Reserve charge-off release; S&P/Experian default indices";
  checks.push_back({"cu_mid steady_state card charge-off rate",
                    "3.5-4.5% (3.8% pre-2008, 4.2% 2023Q4)", fed, co(kCard), 0.035, 0.045});
  checks.push_back(
      {"cu_mid steady_state personal charge-off rate", "1-3%", fed, co(kPersonal), 0.01, 0.03});
  checks.push_back({"cu_mid steady_state auto charge-off rate", "0.5-2% (auto default 1.05% 2019)",
                    fed, co(kAuto), 0.005, 0.02});
  checks.push_back({"cu_mid steady_state home charge-off rate", "0.05-0.5% (0.08% in 2006)", fed,
                    co(kHome), 0.0005, 0.005});
  checks.push_back({"cu_mid steady_state NIM", "2.5-4.5% (industry 3.23%, 2024Q3)", "FDIC",
                    MeanMetric(steady, kNim, 0, 120), 0.025, 0.045});

  for (const char* scenario : {"severe_recession", "dfast_2025_severely_adverse"}) {
    const PathSet s = simulate("cu_mid", scenario);
    const std::string name = std::string("cu_mid ") + scenario;
    const int card = ProductMetricIndex(kCard, kPChargeOffRate);
    const int home = ProductMetricIndex(kHome, kPChargeOffRate);
    checks.push_back({name + " card charge-off peak / steady",
                      "2.2-4x (10.66% in 2010Q2 vs 3.2-3.4% in 2006: 3.2x)", fed,
                      PeakQuarterlyMetric(s, card) / co(kCard), 2.2, 4.0, "x"});
    // Wider than history's ratio above: DFAST's house prices fall faster than 2007-2011's.
    checks.push_back({name + " home charge-off peak / steady",
                      "8-60x (2.80% in 2009Q4 vs 0.08% in 2006: 35x)", fed,
                      PeakQuarterlyMetric(s, home) / co(kHome), 8.0, 60.0, "x"});
    // The regime's capital ratio (cu_mid: the NCUA net worth ratio) of the mean path over the
    // stress window (the first 48 months): it must fall (at least 0.5 pp below the start) and
    // stay adequately capitalised (>= 6%).
    double start = 0, low = 1e9;
    for (int m = 0; m < std::min(48, s.months); ++m) {
      const double v = MeanMetric(s, kCapitalRatio, m, m + 1);
      if (m == 0) start = v;
      low = std::min(low, v);
    }
    checks.push_back({name + " minimum capital ratio, months 1-48 (mean path)",
                      ">= 6% (adequately capitalised) and >= 0.5 pp below the start",
                      "NCUA prompt corrective action, 12 CFR 702.102", low, 0.06, start - 0.005});
  }

  const CohortStudy lc =
      RunCohortStudy("marketplace_lender", "steady_state", kPersonal, 12, 4, o.seed);
  const std::string lc_src =
      "Lending Club 2007-2011 (shared/data/credit/lending_club_2007_2011.csv)";
  checks.push_back({"marketplace_lender 36-month lifetime charge-off", "9-13% (data: 11.1%)",
                    lc_src, lc.ChargeOffRate(0), 0.09, 0.13});
  checks.push_back({"marketplace_lender 60-month lifetime charge-off", "19-27% (data: 22.9%)",
                    lc_src, lc.ChargeOffRate(1), 0.19, 0.27});
  return checks;
}

}  // namespace loantwin
