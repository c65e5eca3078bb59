#include "report/risk.h"

#include <algorithm>
#include <boost/math/distributions/students_t.hpp>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/counter_rng.h"
#include "env/twin/monte_carlo.h"

namespace loantwin {
namespace {

/// The k lowest P&L values (the loss tail), ascending.
std::vector<double> Tail(const std::vector<double>& pnl, double level) {
  if (pnl.empty()) throw std::invalid_argument("tail risk of an empty sample");
  if (!(level > 0 && level < 1)) throw std::invalid_argument("tail level must be in (0, 1)");
  const double n = static_cast<double>(pnl.size());
  // 1e-9 guards against (1 - level) * n landing just above an integer in floating point.
  const size_t k = std::max<size_t>(1, static_cast<size_t>(std::ceil((1 - level) * n - 1e-9)));
  std::vector<double> v = pnl;
  std::partial_sort(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  v.resize(k);
  return v;
}

}  // namespace

double ValueAtRisk(const std::vector<double>& pnl, double level) {
  return -Tail(pnl, level).back();
}

double ExpectedShortfall(const std::vector<double>& pnl, double level) {
  const auto tail = Tail(pnl, level);
  double s = 0;
  for (double x : tail) s += x;
  return -s / static_cast<double>(tail.size());
}

Distribution Describe(const std::vector<double>& v) {
  Distribution d;
  if (v.empty()) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    return {nan, nan, nan, nan, nan};
  }
  double s = 0;
  for (double x : v) s += x;
  d.mean = s / static_cast<double>(v.size());
  double s2 = 0;
  for (double x : v) s2 += (x - d.mean) * (x - d.mean);
  d.std = v.size() > 1 ? std::sqrt(s2 / static_cast<double>(v.size() - 1)) : 0.0;
  std::vector<double> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  d.median = SortedQuantile(sorted, 0.5);
  d.p05 = SortedQuantile(sorted, 0.05);
  d.p95 = SortedQuantile(sorted, 0.95);
  return d;
}

double SortedQuantile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

double StudentT975(int dof) {
  if (dof < 1) return std::numeric_limits<double>::infinity();
  return boost::math::quantile(boost::math::students_t(dof), 0.975);
}

PairedDifference PairedMeanDifference(const std::vector<double>& x,
                                      const std::vector<double>& ref) {
  if (x.size() != ref.size() || x.empty())
    throw std::invalid_argument("paired difference needs two samples over the same paths");
  std::vector<double> d(x.size());
  for (size_t i = 0; i < x.size(); ++i) d[i] = x[i] - ref[i];
  const Distribution s = Describe(d);
  PairedDifference out;
  out.mean = s.mean;
  const double half =
      d.size() > 1 ? StudentT975(static_cast<int>(d.size()) - 1) * s.std / std::sqrt(d.size())
                   : std::numeric_limits<double>::infinity();
  out.low = s.mean - half;
  out.high = s.mean + half;
  out.method = "paired t";
  return out;
}

PairedDifference PairedBootstrapDifference(const std::vector<double>& x,
                                           const std::vector<double>& ref,
                                           double (*statistic)(const std::vector<double>&),
                                           int resamples, uint64_t seed) {
  if (x.size() != ref.size() || x.empty())
    throw std::invalid_argument("paired difference needs two samples over the same paths");
  PairedDifference out;
  out.mean = statistic(x) - statistic(ref);
  out.method = "paired bootstrap";
  CounterRng rng(DeriveKey(seed, 0x626f6f74));
  const size_t n = x.size();
  std::vector<double> bx(n), br(n), diffs(static_cast<size_t>(resamples));
  for (int b = 0; b < resamples; ++b) {
    for (size_t i = 0; i < n; ++i) {
      const size_t j = std::min(n - 1, static_cast<size_t>(rng.Uniform() * static_cast<double>(n)));
      bx[i] = x[j];
      br[i] = ref[j];
    }
    diffs[b] = statistic(bx) - statistic(br);
  }
  out.low = Quantile(diffs, 0.025);
  out.high = Quantile(diffs, 0.975);
  return out;
}

}  // namespace loantwin
