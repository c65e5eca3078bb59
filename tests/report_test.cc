// The report library alone (no LibTorch, no trained policy): value at risk and expected
// shortfall on hand-computed samples, descriptive statistics, paired t and bootstrap
// intervals, Pareto efficiency (docs/stress-testing.md).

#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "report/frontier.h"
#include "report/risk.h"

namespace loantwin {
namespace {

TEST(Risk, VarAndExpectedShortfallMatchHandComputedValues) {
  // P&L of 10 paths; losses are -P&L. Tail size k = ceil((1 - level) * 10).
  const std::vector<double> pnl = {4, -3, 10, 0, -5, 8, 2, 12, -1, 6};
  EXPECT_DOUBLE_EQ(ValueAtRisk(pnl, 0.9), 5.0);  // k = 1: the worst loss
  EXPECT_DOUBLE_EQ(ExpectedShortfall(pnl, 0.9), 5.0);
  EXPECT_DOUBLE_EQ(ValueAtRisk(pnl, 0.8), 3.0);  // k = 2: losses {5, 3}
  EXPECT_DOUBLE_EQ(ExpectedShortfall(pnl, 0.8), 4.0);
  EXPECT_DOUBLE_EQ(ValueAtRisk(pnl, 0.75), 1.0);  // k = 3: losses {5, 3, 1}
  EXPECT_DOUBLE_EQ(ExpectedShortfall(pnl, 0.75), 3.0);
  EXPECT_DOUBLE_EQ(ValueAtRisk(pnl, 0.5), -2.0);  // k = 5: {5, 3, 1, 0, -2}
  EXPECT_DOUBLE_EQ(ExpectedShortfall(pnl, 0.5), 7.0 / 5.0);
  // 1,000 paths with P&L 1..1000: the 99% VaR is the 10th worst, ES 97.5% the mean of 25.
  std::vector<double> big;
  for (int i = 1000; i >= 1; --i) big.push_back(i);
  EXPECT_DOUBLE_EQ(ValueAtRisk(big, 0.99), -10.0);
  EXPECT_DOUBLE_EQ(ExpectedShortfall(big, 0.975), -13.0);
  EXPECT_DOUBLE_EQ(ExpectedShortfall(big, 0.99), -5.5);
  EXPECT_THROW(ValueAtRisk({}, 0.99), std::invalid_argument);
  EXPECT_THROW(ExpectedShortfall(pnl, 1.0), std::invalid_argument);
}

TEST(Risk, DescribeAndPairedIntervals) {
  const Distribution d = Describe({1, 2, 3, 4, 5});
  EXPECT_DOUBLE_EQ(d.mean, 3);
  EXPECT_DOUBLE_EQ(d.median, 3);
  EXPECT_DOUBLE_EQ(d.p05, 1.2);
  EXPECT_DOUBLE_EQ(d.p95, 4.8);
  EXPECT_NEAR(d.std, std::sqrt(2.5), 1e-12);
  EXPECT_NEAR(StudentT975(9), 2.262157, 1e-6);
  EXPECT_NEAR(StudentT975(1000), 1.962339, 1e-6);
  // Differences 1, 2, ..., 10: mean 5.5, sd sqrt(55/6), t(9) interval.
  std::vector<double> x, ref;
  for (int i = 1; i <= 10; ++i) ref.push_back(100.0 * i), x.push_back(100.0 * i + i);
  const PairedDifference p = PairedMeanDifference(x, ref);
  const double half = 2.2621571627 * std::sqrt(55.0 / 6.0) / std::sqrt(10.0);
  EXPECT_NEAR(p.mean, 5.5, 1e-12);
  EXPECT_NEAR(p.low, 5.5 - half, 1e-6);
  EXPECT_NEAR(p.high, 5.5 + half, 1e-6);
  // A constant shift has a zero-width interval even though the samples vary a lot.
  std::vector<double> shifted;
  for (double v : ref) shifted.push_back(v + 3);
  const PairedDifference c = PairedMeanDifference(shifted, ref);
  EXPECT_DOUBLE_EQ(c.low, 3);
  EXPECT_DOUBLE_EQ(c.high, 3);
  // Bootstrap of ES: deterministic for a seed, brackets the estimate.
  auto es = [](const std::vector<double>& v) { return ExpectedShortfall(v, 0.9); };
  double (*stat)(const std::vector<double>&) =
      +[](const std::vector<double>& v) { return ExpectedShortfall(v, 0.9); };
  std::vector<double> a, b;
  for (int i = 0; i < 200; ++i) a.push_back(std::sin(i * 1.7) * 10), b.push_back(std::cos(i) * 8);
  const PairedDifference b1 = PairedBootstrapDifference(a, b, stat, 500, 9);
  const PairedDifference b2 = PairedBootstrapDifference(a, b, stat, 500, 9);
  EXPECT_DOUBLE_EQ(b1.mean, es(a) - es(b));
  EXPECT_EQ(b1.low, b2.low);
  EXPECT_EQ(b1.high, b2.high);
  EXPECT_LT(b1.low, b1.mean);
  EXPECT_GT(b1.high, b1.mean);
}

TEST(Frontier, ParetoEfficiency) {
  // (return, risk): A dominates D; B and C trade return for risk; E equals B.
  const std::vector<std::pair<double, double>> pts = {{10, 5}, {12, 8}, {6, 2}, {9, 6}, {12, 8}};
  const auto eff = ParetoEfficient(pts);
  EXPECT_EQ(eff, (std::vector<bool>{true, true, true, false, true}));
}

}  // namespace
}  // namespace loantwin
