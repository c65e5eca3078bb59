#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/counter_rng.h"
#include "core/normal_dist.h"
#include "core/quantile_sketch.h"
#include "env/twin/monte_carlo.h"

namespace loantwin {
namespace {

TEST(QuantileSketch, ExactUpToTheLimitThenWithinASmallRankError) {
  CounterRng rng(11);
  QuantileSketch sketch(500, 200);
  std::vector<double> all;
  for (int i = 0; i < 500; ++i) {
    all.push_back(NormalQuantile(rng.Uniform() * 0.999998 + 1e-6));
    sketch.Add(all.back());
  }
  ASSERT_TRUE(sketch.exact());
  for (double q : {0.0, 0.05, 0.5, 0.95, 1.0}) EXPECT_EQ(sketch.Quantile(q), Quantile(all, q)) << q;
  // Beyond the limit: 200,000 skewed values (a lognormal), rank error of the 5%, 50% and 95%
  // estimates well under 0.5% of the sample.
  for (int i = 0; i < 199500; ++i) {
    all.push_back(std::exp(NormalQuantile(rng.Uniform() * 0.999998 + 1e-6)));
    sketch.Add(all.back());
  }
  EXPECT_FALSE(sketch.exact());
  std::vector<double> sorted = all;
  std::sort(sorted.begin(), sorted.end());
  for (double q : {0.05, 0.5, 0.95}) {
    const double est = sketch.Quantile(q);
    const double rank =
        static_cast<double>(std::lower_bound(sorted.begin(), sorted.end(), est) - sorted.begin()) /
        static_cast<double>(sorted.size());
    EXPECT_NEAR(rank, q, 0.005) << q;
  }
  EXPECT_EQ(sketch.Quantile(0), sorted.front());
  EXPECT_EQ(sketch.Quantile(1), sorted.back());
  // Memory depends on the compression, not on the 200,000 values.
  EXPECT_LT(sketch.memory_bytes(), 40000u);
  EXPECT_TRUE(std::isnan(QuantileSketch().Quantile(0.5)));
  EXPECT_THROW(QuantileSketch(0), std::invalid_argument);
}

TEST(NormalDist, QuantileInvertsCdf) {
  for (double p : {1e-10, 1e-4, 0.001, 0.02, 0.1, 0.3, 0.5, 0.77, 0.975, 0.999, 1 - 1e-9}) {
    EXPECT_NEAR(NormalCdf(NormalQuantile(p)), p, 1e-12 + 1e-9 * p) << p;
  }
  EXPECT_NEAR(NormalQuantile(0.999), 3.090232306167813, 1e-9);
  EXPECT_NEAR(NormalQuantile(0.5), 0.0, 1e-12);
}

TEST(NormalDist, VasicekConditionalPd) {
  // z = 0 with rho > 0 gives a PD below the unconditional one for small PDs; bad states raise it.
  EXPECT_LT(VasicekPd(0.02, 0.1, 0.0), 0.02);
  EXPECT_GT(VasicekPd(0.02, 0.1, -2.0), 0.05);
  EXPECT_NEAR(VasicekPd(0.02, 0.0, -3.0), 0.02, 1e-12);  // no correlation, no cycle
  // Hand value: N((G(0.04) + 0.2*2.5) / sqrt(0.96)).
  EXPECT_NEAR(VasicekPd(0.04, 0.04, -2.5),
              NormalCdf((NormalQuantile(0.04) + 0.5) / std::sqrt(0.96)), 1e-15);
  EXPECT_NEAR(AnnualToMonthly(0.12), 1 - std::pow(0.88, 1.0 / 12), 1e-15);
}

TEST(CounterRng, UniformMomentsAndIndependenceOfStreams) {
  const int n = 200000;
  double sum = 0, sum2 = 0, cross = 0;
  for (int i = 0; i < n; ++i) {
    const double a = ToUniform(RandomBits(DeriveKey(7, 1), i));
    const double b = ToUniform(RandomBits(DeriveKey(7, 2), i));
    sum += a, sum2 += a * a, cross += (a - 0.5) * (b - 0.5);
  }
  const double mean = sum / n;
  EXPECT_NEAR(mean, 0.5, 0.005);
  EXPECT_NEAR(sum2 / n - mean * mean, 1.0 / 12, 0.002);
  EXPECT_NEAR(cross / n, 0.0, 0.002);
  EXPECT_EQ(RandomBits(11, 5), RandomBits(11, 5));
  EXPECT_NE(RandomBits(11, 5), RandomBits(12, 5));
}

TEST(CounterRng, PoissonAndNormalMoments) {
  for (double mean : {0.5, 4.0, 25.0, 400.0}) {
    CounterRng rng(DeriveKey(3, static_cast<uint64_t>(mean * 10)));
    const int n = 40000;
    double s = 0, s2 = 0;
    for (int i = 0; i < n; ++i) {
      const double x = static_cast<double>(rng.Poisson(mean));
      s += x, s2 += x * x;
    }
    const double m = s / n, var = s2 / n - m * m;
    EXPECT_NEAR(m, mean, 4 * std::sqrt(mean / n)) << mean;
    EXPECT_NEAR(var / mean, 1.0, 0.05) << mean;
  }
  CounterRng rng(99);
  double s = 0, s2 = 0;
  for (int i = 0; i < 100000; ++i) {
    const double z = rng.Normal();
    s += z, s2 += z * z;
  }
  EXPECT_NEAR(s / 1e5, 0.0, 0.015);
  EXPECT_NEAR(s2 / 1e5, 1.0, 0.02);
}

}  // namespace
}  // namespace loantwin
