#include <gtest/gtest.h>

#include <set>

#include "spaces/space.h"

namespace loantwin {
namespace {

TEST(Discrete, ContainsSampleAndMask) {
  Discrete d(4);
  EXPECT_TRUE(d.Contains(0));
  EXPECT_TRUE(d.Contains(3));
  EXPECT_FALSE(d.Contains(4));
  EXPECT_FALSE(d.Contains(-1));
  CounterRng rng(1);
  std::set<int> seen;
  for (int i = 0; i < 400; ++i) seen.insert(d.Sample(rng));
  EXPECT_EQ(seen, (std::set<int>{0, 1, 2, 3}));
  const uint8_t mask[4] = {0, 1, 0, 1};
  for (int i = 0; i < 200; ++i) {
    const int a = d.Sample(rng, mask);
    EXPECT_TRUE(a == 1 || a == 3);
  }
  const uint8_t none[4] = {0, 0, 0, 0};
  EXPECT_THROW(d.Sample(rng, none), std::invalid_argument);
  EXPECT_THROW(Discrete(0), std::invalid_argument);
}

TEST(Discrete, SeededSamplingIsRepeatable) {
  Discrete d(10);
  CounterRng a(42), b(42), c(43);
  std::vector<int> xa, xb, xc;
  for (int i = 0; i < 50; ++i)
    xa.push_back(d.Sample(a)), xb.push_back(d.Sample(b)), xc.push_back(d.Sample(c));
  EXPECT_EQ(xa, xb);
  EXPECT_NE(xa, xc);
}

TEST(MultiDiscrete, MaskLayoutAndSampling) {
  MultiDiscrete m({3, 2, 4});
  EXPECT_EQ(m.mask_width(), 9);
  EXPECT_EQ(m.mask_offset(0), 0);
  EXPECT_EQ(m.mask_offset(1), 3);
  EXPECT_EQ(m.mask_offset(2), 5);
  const int32_t ok[3] = {2, 1, 3}, bad[3] = {2, 2, 0};
  EXPECT_TRUE(m.Contains(ok));
  EXPECT_FALSE(m.Contains(bad));
  // Dimension 0: only 1; dimension 1: both; dimension 2: only 0 and 3.
  const uint8_t mask[9] = {0, 1, 0, 1, 1, 1, 0, 0, 1};
  CounterRng rng(5);
  for (int i = 0; i < 300; ++i) {
    int32_t a[3];
    m.Sample(rng, a, mask);
    EXPECT_EQ(a[0], 1);
    EXPECT_TRUE(a[2] == 0 || a[2] == 3);
  }
  ActionSpace space(m);
  int bad_dim = -1;
  const int32_t masked[3] = {1, 0, 2};
  EXPECT_FALSE(space.Allows(mask, masked, &bad_dim));
  EXPECT_EQ(bad_dim, 2);
  const int32_t allowed[3] = {1, 1, 3};
  EXPECT_TRUE(space.Allows(mask, allowed));
  const int32_t out_of_range[3] = {7, 0, 0};
  EXPECT_FALSE(space.Allows(mask, out_of_range, &bad_dim));
  EXPECT_EQ(bad_dim, 0);
  EXPECT_THROW(MultiDiscrete({}), std::invalid_argument);
  EXPECT_THROW(MultiDiscrete({2, 0}), std::invalid_argument);
}

TEST(ActionSpace, DiscreteBehavesAsOneDimension) {
  ActionSpace a(Discrete(5));
  EXPECT_FALSE(a.is_multi_discrete());
  EXPECT_EQ(a.action_dims(), 1);
  EXPECT_EQ(a.mask_width(), 5);
  EXPECT_EQ(a.ToString(), "Discrete(5)");
  EXPECT_EQ(ActionSpace(MultiDiscrete({2, 3})).ToString(), "MultiDiscrete([2, 3])");
}

TEST(Box, ContainsBoundsAndSampling) {
  Box b({2, 2}, {0, -1, -kInf, 0}, {1, 1, kInf, kInf});
  EXPECT_EQ(b.size(), 4);
  const float in[4] = {0.5f, -1.0f, -1e9f, 3.0f}, out[4] = {0.5f, 2.0f, 0, 0};
  int bad = -1;
  EXPECT_TRUE(b.Contains(in));
  EXPECT_FALSE(b.Contains(out, &bad));
  EXPECT_EQ(bad, 1);
  const float nan[4] = {0.5f, 0.0f, std::nanf(""), 0};
  EXPECT_FALSE(b.Contains(nan, &bad));
  EXPECT_EQ(bad, 2);
  CounterRng rng(3);
  for (int i = 0; i < 500; ++i) {
    float x[4];
    b.Sample(rng, x);
    EXPECT_TRUE(b.Contains(x));
  }
  EXPECT_THROW(Box({2}, {0, 1}, {1, 0}), std::invalid_argument);
  EXPECT_THROW(Box({3}, {0, 1}, {1, 2}), std::invalid_argument);
}

TEST(FeatureLayout, NamedStableFeatures) {
  FeatureLayout f;
  EXPECT_EQ(f.Add("macro/unemployment", -10, 10), 0);
  EXPECT_EQ(f.Add("product/card/balance_share", 0, 1), 1);
  EXPECT_EQ(f.Find("product/card/balance_share"), 1);
  EXPECT_EQ(f.Find("nope"), -1);
  EXPECT_THROW(f.Add("macro/unemployment"), std::invalid_argument);
  const Box box = f.ToBox();
  EXPECT_EQ(box.size(), 2);
  EXPECT_EQ(box.low()[1], 0.0f);
  EXPECT_EQ(box.high()[1], 1.0f);
}

}  // namespace
}  // namespace loantwin
