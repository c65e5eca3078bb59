// Applicant groups (fair-lending analysis): the table, the band slices, the fairness ratios on
// hand-computed cases, and the guarantee that no policy input depends on an applicant's group.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "core/binary_state.h"
#include "core/config_error.h"
#include "env/twin/applicant_groups.h"
#include "env/twin_env.h"

namespace loantwin {
namespace {

TEST(ApplicantGroups, TheBuiltInTableIsTheFedReportsDistributions) {
  const ApplicantGroupTable t = ApplicantGroupTable::Load("fed2007");
  ASSERT_EQ(t.num_groups(), 4);
  EXPECT_EQ(t.groups[0], "white");
  EXPECT_EQ(t.groups[1], "black");
  double total = 0;
  for (double s : t.shares) total += s;
  EXPECT_NEAR(total, 1.0, 1e-12);
  // The report's headline: lower scores for Black and Hispanic applicants, and at the same
  // score higher bad rates for Black applicants (score 49 in the file: 9.21% vs 16.14%).
  EXPECT_GT(t.MeanScore(0), t.MeanScore(1) + 15);
  EXPECT_GT(t.MeanScore(0), t.MeanScore(2));
  EXPECT_NEAR(t.BadRate(0, 49), 0.0921, 1e-9);
  EXPECT_NEAR(t.BadRate(1, 49), 0.1614, 1e-9);
  // Against the public file where it is available (../shared/data/credit).
  std::ifstream in(std::string(LOANTWIN_SOURCE_DIR) +
                   "/../shared/data/credit/fico_transrisk_cdf_by_race_ssa.csv");
  if (!in) GTEST_SKIP() << "the shared data directory is not next to the source tree";
  std::string line;
  std::getline(in, line);
  int checked = 0;
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string cell;
    std::getline(ss, cell, ',');
    const double score = std::stod(cell);
    if (score != std::floor(score)) continue;
    for (int g = 0; g < 4; ++g) {
      std::getline(ss, cell, ',');
      EXPECT_NEAR(t.Cdf(g, score), std::stod(cell) / 100, 1e-9) << "score " << score;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 101);
}

TEST(ApplicantGroups, InvalidTablesAreRejectedWithTheKey) {
  const std::string path = testing::TempDir() + "/bad_groups.yaml";
  auto expect_error = [&](const std::string& text, const std::string& what) {
    std::ofstream(path) << text;
    try {
      ApplicantGroupTable::Load(path);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  const std::string two = "  - {name: b, share: 1, cdf: [0.5, 1], bad_rate: [0.2, 0.1]}\n";
  expect_error(
      "scores: [0, 100]\ngroups:\n  - {name: a, share: 1, cdf: [0.7, 0.6], "
      "bad_rate: [0.1, 0.1]}\n" +
          two,
      "decreases");
  expect_error(
      "scores: [0, 100]\ngroups:\n  - {name: a, share: 1, cdf: [0.3, 0.9], "
      "bad_rate: [0.1, 0.1]}\n" +
          two,
      "must reach 1");
  expect_error(
      "scores: [0, 100]\ngroups:\n  - {name: a, cdf: [0.3, 1], bad_rate: [0.1, 0.1]}\n" + two,
      "needs a share");
  expect_error("scores: [0, 100]\ngroups:\n" + two, "at least two groups");
  expect_error(
      "scores: [0, 100]\nreference: z\ngroups:\n  - {name: a, share: 1, cdf: [0.3, 1], "
      "bad_rate: [0.1, 0.1]}\n" +
          two,
      "unknown group 'z'");
  expect_error(
      "scores: [0, 100]\ncolour: red\ngroups:\n  - {name: a, share: 1, cdf: [0.3, 1], "
      "bad_rate: [0.1, 0.1]}\n" +
          two,
      "colour");
  expect_error(
      "scores: [0, 100]\ngroups:\n  - {name: a, share: 1, cdf: [0.3, 1], "
      "bad_rate: [0.1]}\n" +
          two,
      "expected 2 values");
}

// Applicants generated band by band in the product's mix reproduce each group's share and
// score distribution: the bands are slices of the pooled distribution.
TEST(ApplicantGroups, BandSlicesReproduceTheGroupsDistributions) {
  const ApplicantGroupTable t = ApplicantGroupTable::Load("fed2007");
  ApplicantLens lens(&t);
  const BandArray mix = {0.20, 0.25, 0.22, 0.15, 0.10, 0.05, 0.03};
  const int64_t n = 400000;
  for (int b = 0; b < kNumBands; ++b)
    lens.Observe(0, mix, b, static_cast<int64_t>(n * mix[b]), b <= 3, 0.1, 1000.0 * n * mix[b],
                 0.03, 0.8, 1234 + b);
  const GroupOutcomes& o = lens.total();
  double all = 0;
  for (int g = 0; g < t.num_groups(); ++g) all += o.Group(g).applications;
  for (int g = 0; g < t.num_groups(); ++g) {
    const GroupCell c = o.Group(g);
    EXPECT_NEAR(c.applications / all, t.shares[g], 0.004) << t.groups[g];
    EXPECT_NEAR(c.score_sum / c.applications, t.MeanScore(g), 0.6) << t.groups[g];
  }
  // Band A holds the best scores: its applicants' mean score is above band D's, for every group.
  for (int g = 0; g < t.num_groups(); ++g)
    EXPECT_GT(o.at(0, g, 0).score_sum / o.at(0, g, 0).applications,
              o.at(0, g, 3).score_sum / o.at(0, g, 3).applications);
  // Approving A-D approves Black applicants at a lower rate (adverse impact by construction).
  const FairnessSummary f = Summarise(o, t);
  EXPECT_EQ(f.reference, 3);  // Asian applicants: the highest approval rate
  EXPECT_LT(f.air[1], 0.8);
  EXPECT_LT(f.min_air, 0.8);
}

TEST(Fairness, AdverseImpactAndEqualOpportunityOnHandComputedCases) {
  ApplicantGroupTable t;
  t.groups = {"a", "b"};
  t.shares = {0.5, 0.5};
  GroupOutcomes o;
  o.Resize(2);
  // a: 100 applicants, 80 approved; 90 would-be repayers of whom 76 approved.
  o.at(0, 0, 0) = {60, 60, 58, 58, 2, 0, 0, 0, 0, 0};
  o.at(2, 0, 4) = {40, 20, 32, 18, 2, 0, 0, 0, 0, 0};
  // b: 100 applicants, 60 approved; 80 would-be repayers of whom 56 approved.
  o.at(0, 1, 1) = {60, 60, 56, 56, 4, 0, 0, 0, 0, 0};
  o.at(3, 1, 5) = {40, 0, 24, 0, 0, 0, 0, 0, 0, 0};
  const FairnessSummary f = Summarise(o, t);
  EXPECT_EQ(f.reference, 0);
  EXPECT_DOUBLE_EQ(f.approval_rate[0], 0.8);
  EXPECT_DOUBLE_EQ(f.approval_rate[1], 0.6);
  EXPECT_DOUBLE_EQ(f.air[1], 0.75);  // below four fifths: flagged
  EXPECT_DOUBLE_EQ(f.min_air, 0.75);
  EXPECT_NEAR(f.tpr[0], 76.0 / 90, 1e-12);
  EXPECT_NEAR(f.tpr[1], 56.0 / 80, 1e-12);
  EXPECT_NEAR(f.eo_gap, 76.0 / 90 - 0.7, 1e-12);
  // A named reference group replaces the highest-rate one.
  t.reference = "b";
  const FairnessSummary g = Summarise(o, t);
  EXPECT_EQ(g.reference, 1);
  EXPECT_NEAR(g.air[0], 0.8 / 0.6, 1e-12);
}

TwinEnvConfig Config(const std::string& groups) {
  TwinEnvConfig c;
  c.institution = "cu_mid";
  c.scenario = "severe_recession";
  c.horizon_months = 18;
  c.applicant_groups = groups;
  // Random, mask-respecting credit and pricing decisions: cutoffs and prices move.
  c.roles[kCreditRole].fallback = FallbackPolicy::kRandom;
  c.roles[kPricingRole].fallback = FallbackPolicy::kRandom;
  return c;
}

// The proof that no policy input depends on an applicant's group: with the lens on (two
// different group tables) and off, every role's observations, masks and rewards and every
// twin metric are bit-identical, month by month, over auto-resets.
TEST(ApplicantGroups, NoPolicyInputDependsOnTheGroup) {
  const std::string other = testing::TempDir() + "/two_groups.yaml";
  std::ofstream(other)
      << "scores: [0, 50, 100]\ngroups:\n"
         "  - {name: x, share: 0.9, cdf: [0, 0.2, 1], bad_rate: [0.5, 0.1, 0.01]}\n"
         "  - {name: y, share: 0.1, cdf: [0, 0.8, 1], bad_rate: [0.6, 0.3, 0.02]}\n";
  EnvOptions eo;
  eo.num_envs = 3;
  eo.num_threads = 2;
  eo.seed = 11;
  TwinEnv off(eo, Config("")), on(eo, Config("fed2007")), two(eo, Config(other));
  ASSERT_EQ(on.metric_names().size(), off.metric_names().size() + 2);
  for (TwinEnv* e : {&off, &on, &two}) e->Reset();
  for (int month = 0; month < 30; ++month) {
    for (int r = 0; r < off.num_roles(); ++r) {
      for (TwinEnv* e : {&off, &on, &two}) e->Act(r, nullptr);
      const size_t obs = static_cast<size_t>(eo.num_envs) * off.role(r).obs_dim();
      const size_t masks = static_cast<size_t>(eo.num_envs) * off.role(r).action_space.mask_width();
      for (TwinEnv* e : {&on, &two}) {
        ASSERT_EQ(0, std::memcmp(off.observations(r), e->observations(r), obs * sizeof(float)))
            << "role " << r << " month " << month;
        ASSERT_EQ(0, std::memcmp(off.action_masks(r), e->action_masks(r), masks));
      }
    }
    for (TwinEnv* e : {&off, &on, &two}) e->Step();
    for (int i = 0; i < eo.num_envs; ++i) {
      for (int r = 0; r < off.num_roles(); ++r) {
        ASSERT_EQ(off.rewards(r)[i], on.rewards(r)[i]);
        ASSERT_EQ(off.rewards(r)[i], two.rewards(r)[i]);
      }
      for (size_t k = 0; k < off.metric_names().size(); ++k) {
        ASSERT_EQ(off.metric(i, static_cast<int>(k)), on.metric(i, static_cast<int>(k)));
        ASSERT_EQ(off.metric(i, static_cast<int>(k)), two.metric(i, static_cast<int>(k)));
      }
    }
  }
  // The lens did see applicants, and the fairness metrics are defined.
  const GroupCell white = on.applicant_lens(0)->total().Group(0);
  EXPECT_GT(white.applications, 100);
  const int air = static_cast<int>(off.metric_names().size());
  EXPECT_EQ(on.metric_names()[air], "fairness/min_air");
  EXPECT_GT(on.metric(0, air), 0.0);
  EXPECT_LE(on.metric(0, air), 1.0);
}

TEST(ApplicantGroups, CheckpointsCarryTheLens) {
  EnvOptions eo;
  eo.num_envs = 2;
  eo.seed = 5;
  TwinEnv a(eo, Config("fed2007")), b(eo, Config("fed2007"));
  auto step = [](TwinEnv& e) {
    for (int r = 0; r < e.num_roles(); ++r) e.Act(r, nullptr);
    e.Step();
  };
  a.Reset();
  for (int m = 0; m < 7; ++m) step(a);
  StateWriter w;
  a.SaveState(w);
  StateReader r(w.bytes().data(), w.bytes().size());
  b.LoadState(r);
  for (int m = 0; m < 5; ++m) step(a), step(b);
  for (int i = 0; i < eo.num_envs; ++i) {
    const int k = static_cast<int>(a.metric_names().size()) - 2;
    EXPECT_EQ(a.metric(i, k), b.metric(i, k));
    EXPECT_EQ(a.applicant_lens(i)->total().Group(1).approvals,
              b.applicant_lens(i)->total().Group(1).approvals);
  }
}

}  // namespace
}  // namespace loantwin
