// The shipped learning experiments beat the rule-based baselines on held-out seeds, evaluated as
// `loantwin evaluate --scenarios steady_state,mild_recession --paths 100`:
// - configs/quickstart.yaml: PPO on the credit and pricing roles of cu_small and cu_mid (~4
//   minutes; the evaluation runs both institutions, alternating across paths);
// - configs/collection_dqn.yaml: DQN with branching heads on the collection role of cu_mid
//   (~2 minutes);
// - configs/home_equity_fund_ppo.yaml: PPO allocating a home-equity fund across zones beats the
//   equal-weight allocation on LP IRR without more covenant breaches (~10 seconds).

#include <gtest/gtest.h>

#include "training/evaluation.h"
#include "training/trainer.h"

namespace loantwin {
namespace {

TEST(Quickstart, PpoBeatsTheBaselinesOnHeldOutSeeds) {
  Trainer trainer(
      ExperimentConfig::Load(std::string(LOANTWIN_SOURCE_DIR) + "/configs/quickstart.yaml"));
  trainer.Train();
  EvaluationOptions o;
  o.scenarios = {"steady_state", "mild_recession"};
  o.paths = 100;
  o.seed = 1000003;  // training used seed 1
  const auto results = Evaluate(trainer, o);
  ASSERT_EQ(results.size(), 2u);
  for (const char* role : {"credit", "pricing"}) {
    double trained = 0, baseline = 0;
    for (const auto& e : results) {
      trained += e.trained.mean_return.at(role) / results.size();
      baseline += e.baseline.mean_return.at(role) / results.size();
      RecordProperty(e.scenario + "/" + role + "/trained",
                     std::to_string(e.trained.mean_return.at(role)));
      RecordProperty(e.scenario + "/" + role + "/baseline",
                     std::to_string(e.baseline.mean_return.at(role)));
    }
    EXPECT_GT(trained, baseline) << role;
  }
  // The learned roles' book earns more than the rule-based one in the steady economy (issue 18's
  // income acceptance, on this test's 60-month episodes). In the mild recession the guardrails
  // forbid the price cuts that used to win there (docs/training.md, "Guardrails").
  for (const auto& e : results) {
    RecordProperty(e.scenario + "/cumulative_net_income/trained",
                   std::to_string(e.trained.portfolio.at("cumulative_net_income")));
    RecordProperty(e.scenario + "/cumulative_net_income/baseline",
                   std::to_string(e.baseline.portfolio.at("cumulative_net_income")));
  }
  EXPECT_GT(results[0].trained.portfolio.at("cumulative_net_income"),
            results[0].baseline.portfolio.at("cumulative_net_income") + 50000);
}

TEST(CollectionDqn, BeatsTheCollectionBaselineUnderEachScenario) {
  Trainer trainer(
      ExperimentConfig::Load(std::string(LOANTWIN_SOURCE_DIR) + "/configs/collection_dqn.yaml"));
  trainer.Train();
  EvaluationOptions o;
  o.scenarios = {"steady_state", "mild_recession"};
  o.paths = 100;
  o.seed = 1000003;
  const auto results = Evaluate(trainer, o);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& e : results) {
    const double trained = e.trained.mean_return.at("collection"),
                 baseline = e.baseline.mean_return.at("collection");
    RecordProperty(e.scenario + "/collection/trained", std::to_string(trained));
    RecordProperty(e.scenario + "/collection/baseline", std::to_string(baseline));
    EXPECT_GT(trained, baseline + 1.0) << e.scenario;
    // The better collection shows in the books: more net income over the episode.
    EXPECT_GT(e.trained.portfolio.at("cumulative_net_income"),
              e.baseline.portfolio.at("cumulative_net_income"))
        << e.scenario;
  }
}

TEST(HomeEquityFundPpo, BeatsEqualWeightOnLpIrrWithoutMoreCovenantBreaches) {
  Trainer trainer(ExperimentConfig::Load(std::string(LOANTWIN_SOURCE_DIR) +
                                         "/configs/home_equity_fund_ppo.yaml"));
  trainer.Train();
  EvaluationOptions o;
  o.paths = 1000;
  o.seed = 1000003;  // training used seed 1
  const auto results = Evaluate(trainer, o);
  ASSERT_EQ(results.size(), 1u);
  const auto& trained = results[0].trained.portfolio;
  const auto& baseline = results[0].baseline.portfolio;  // equal weight across zones
  for (const char* k : {"final/lp_irr", "final/breached", "final/breach_months", "final/oc_fail"}) {
    RecordProperty(std::string(k) + "/trained", std::to_string(trained.at(k)));
    RecordProperty(std::string(k) + "/baseline", std::to_string(baseline.at(k)));
  }
  // Mean LP IRR (an undefined IRR, nothing back, counts as -100%): a clear margin.
  EXPECT_GT(trained.at("final/lp_irr"), baseline.at("final/lp_irr") + 0.01);
  // No more borrowing-base breaches (paths that breached, months in breach) on the same paths.
  EXPECT_LE(trained.at("final/breached"), baseline.at("final/breached"));
  EXPECT_LE(trained.at("final/breach_months"), baseline.at("final/breach_months"));
}

}  // namespace
}  // namespace loantwin
