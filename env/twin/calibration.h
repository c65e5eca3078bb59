#pragma once
// The twin's calibration checks: simulated figures against public targets. Used by the tests
// (which assert the ranges) and by `loantwin calibrate` (which prints the table in
// docs/twin-model.md).

#include <cstdint>
#include <string>
#include <vector>

#include "env/twin/monte_carlo.h"

namespace loantwin {

struct CalibrationCheck {
  std::string name;       ///< what is measured
  std::string target;     ///< the published figure, in words
  std::string source;     ///< where the figure comes from
  double simulated = 0;   ///< the twin's value
  double lo = 0, hi = 0;  ///< accepted range
  /// How the value and range print: "%" (fractions as percent), "x" (a ratio) or "quarter"
  /// (a backtest quarter index, 0 = 2006 Q1).
  std::string unit = "%";
  bool pass() const { return simulated >= lo && simulated <= hi; }
};

struct CalibrationOptions {
  int paths = 16;
  uint64_t seed = 2024;
  int threads = 2;
};

/// Mean over paths and months [from, to) of a metric.
double MeanMetric(const PathSet& set, int metric, int from, int to);
/// Peak over months of the path-mean metric averaged over a trailing 3-month window.
double PeakQuarterlyMetric(const PathSet& set, int metric);
/// Smallest value of a metric over all paths and months.
double MinMetric(const PathSet& set, int metric);

/// Lifetime outcome of loan cohorts: originate for `origination_months` under the preset's
/// default levers, then stop lending and run until every loan is resolved.
struct CohortStudy {
  std::vector<CohortCounts> terms;  ///< per term option of the product, summed over instances
  std::vector<int> term_months;
  double ChargeOffRate(size_t term) const {
    return terms[term].originated
               ? static_cast<double>(terms[term].charged_off) / terms[term].originated
               : 0.0;
  }
};
CohortStudy RunCohortStudy(const std::string& institution, const std::string& scenario, int product,
                           int origination_months, int instances, uint64_t seed);

/// Runs every check in docs/twin-model.md's calibration table.
std::vector<CalibrationCheck> RunCalibration(const CalibrationOptions& options);

}  // namespace loantwin
