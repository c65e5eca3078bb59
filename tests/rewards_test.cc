// Reward modules on hand-computed cases.

#include <gtest/gtest.h>

#include "rewards/reward.h"

namespace loantwin {
namespace {

RewardInput Example() {
  RewardInput in;
  in.net_income = 500'000;
  in.equity_open = 50'000'000;
  in.nii = 1'800'000;
  in.fees = 100'000;
  in.opex = 1'200'000;
  in.expected_loss = 3'600'000;  // 12-month
  in.loan_balance = 360'000'000;
  in.rwa = 200'000'000;
  in.capital_ratio = 0.05;
  in.capital_buffer = 0.07;
  in.liquidity_ratio = 0.8;
  in.approval_rate = 0.85;
  in.exposures = {100, 300, 0, 100, 0};
  in.policy_churn = 0.4;
  return in;
}

double Value(const std::string& name, const RewardInput& in) {
  return MakeReward(name)->Compute(in);
}

TEST(Rewards, BuiltinsRegisteredInOrder) {
  EXPECT_EQ(RegisteredRewards(),
            (std::vector<std::string>{"profit", "raroc", "expected_loss", "capital", "liquidity",
                                      "concentration", "customer", "stability"}));
  for (const auto& name : RegisteredRewards()) EXPECT_FALSE(MakeReward(name)->formula().empty());
}

TEST(Rewards, HandComputedValues) {
  const RewardInput in = Example();
  EXPECT_DOUBLE_EQ(Value("profit", in), 100 * 500'000.0 / 50'000'000);  // 1.0
  // (1.8m + 0.1m - 1.2m - 3.6m / 12) / (0.08 * 200m) = 0.4m / 16m = 2.5%
  EXPECT_DOUBLE_EQ(Value("raroc", in), 2.5);
  // -(3.6m / 12) / 360m = -0.0833%
  EXPECT_NEAR(Value("expected_loss", in), -100 * 300'000.0 / 360'000'000, 1e-12);
  EXPECT_NEAR(Value("capital", in), -2.0, 1e-12);  // 2 pp below 7%
  EXPECT_NEAR(Value("liquidity", in), -0.2, 1e-12);
  // Shares 0.2, 0.6, 0.2 -> HHI 0.04 + 0.36 + 0.04 = 0.44
  EXPECT_NEAR(Value("concentration", in), -0.44, 1e-12);
  EXPECT_DOUBLE_EQ(Value("customer", in), 0.85);
  EXPECT_DOUBLE_EQ(Value("stability", in), -0.4);
}

TEST(Rewards, EdgeCases) {
  RewardInput in = Example();
  in.capital_ratio = 0.12;
  in.liquidity_ratio = 3.0;
  EXPECT_DOUBLE_EQ(Value("capital", in), 0.0);    // no penalty above 7%
  EXPECT_DOUBLE_EQ(Value("liquidity", in), 0.0);  // covered
  in.exposures = {0, 0, 0, 0, 0};
  EXPECT_DOUBLE_EQ(Value("concentration", in), 0.0);  // empty book
  in.exposures = {5, 0, 0, 0, 0};
  EXPECT_DOUBLE_EQ(Value("concentration", in), -1.0);  // one product
  in.equity_open = 0;
  EXPECT_DOUBLE_EQ(Value("profit", in), 0.0);  // no division by zero
}

TEST(Rewards, UnknownNamesAndDuplicateRegistration) {
  try {
    MakeReward("proft");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("unknown reward module 'proft'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("profit"), std::string::npos);
  }
  EXPECT_THROW(RegisterReward("profit", [] { return MakeReward("customer"); }),
               std::invalid_argument);
}

TEST(RewardSet, WeightedSumAndFullVector) {
  RewardSet set;
  ASSERT_EQ(set.size(), 8);
  set.SetWeight("profit", 1.0);
  set.SetWeight("capital", 2.0);
  set.SetWeight("stability", 0.5);
  EXPECT_THROW(set.SetWeight("nope", 1), std::invalid_argument);
  std::vector<float> vec(set.size());
  const double scalar = set.Compute(Example(), vec.data());
  EXPECT_NEAR(scalar, 1.0 * 1.0 + 2.0 * -2.0 + 0.5 * -0.4, 1e-9);
  EXPECT_NEAR(vec[0], 1.0, 1e-6);   // profit
  EXPECT_NEAR(vec[6], 0.85, 1e-6);  // customer is reported though its weight is 0
}

}  // namespace
}  // namespace loantwin
