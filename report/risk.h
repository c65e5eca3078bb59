#pragma once
// Tail-risk and comparison statistics of Monte Carlo samples (docs/stress-testing.md).
//
// Conventions: a sample of P&L values (higher is better); losses are -P&L. With n values and
// level a, the tail holds k = max(1, ceil((1 - a) n)) paths, the k with the lowest P&L:
//   VaR_a = the smallest loss in that tail (the k-th largest loss; the empirical a-quantile of
//           the loss distribution, "lower" interpolation),
//   ES_a  = the mean loss over the tail.
// Both are losses: positive = money lost, negative = even the tail paths make a profit.

#include <cstdint>
#include <string>
#include <vector>

namespace loantwin {

double ValueAtRisk(const std::vector<double>& pnl, double level);
double ExpectedShortfall(const std::vector<double>& pnl, double level);

/// Linear-interpolated quantile of an already sorted, non-empty sample (Quantile in
/// env/twin/monte_carlo.h without its copy and sort).
double SortedQuantile(const std::vector<double>& sorted, double q);

/// mean, median, 5% and 95% (linear interpolation, as Quantile in env/twin/monte_carlo.h), sd.
struct Distribution {
  double mean = 0, median = 0, p05 = 0, p95 = 0, std = 0;
};
Distribution Describe(const std::vector<double>& sample);

/// A difference to a reference policy on the same paths (common random numbers).
struct PairedDifference {
  double mean = 0;  ///< estimate: statistic(policy) - statistic(reference)
  double low = 0;   ///< 95% confidence interval
  double high = 0;
  std::string method;  ///< "paired t" or "paired bootstrap"
};

/// Mean of x - ref with a Student-t 95% interval on the per-path differences.
PairedDifference PairedMeanDifference(const std::vector<double>& x, const std::vector<double>& ref);

/// Difference of a statistic (e.g. expected shortfall) with a 95% percentile interval from
/// `resamples` paired bootstrap resamples (paths drawn with replacement, the same draw for
/// both policies); deterministic for a given seed.
PairedDifference PairedBootstrapDifference(const std::vector<double>& x,
                                           const std::vector<double>& ref,
                                           double (*statistic)(const std::vector<double>&),
                                           int resamples, uint64_t seed);

/// Two-sided 97.5% quantile of Student's t with `dof` degrees of freedom.
double StudentT975(int dof);

}  // namespace loantwin
