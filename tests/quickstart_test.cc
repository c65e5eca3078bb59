// The quickstart experiment: PPO on the credit and pricing roles of cu_small beats the rule-based
// baselines' mean reward for those roles on held-out seeds (the configs/quickstart.yaml run,
// ~2.5 minutes on 2 cores; evaluation as `loantwin evaluate --scenarios
// steady_state,mild_recession --paths 100`).

#include <gtest/gtest.h>

#include "training/evaluation.h"
#include "training/trainer.h"

namespace loantwin {
namespace {

TEST(Quickstart, PpoBeatsTheBaselinesOnHeldOutSeeds) {
  Trainer trainer(ExperimentConfig::Load(std::string(LOANTWIN_SOURCE_DIR) + "/configs/quickstart.yaml"));
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
      RecordProperty(e.scenario + "/" + role + "/trained", std::to_string(e.trained.mean_return.at(role)));
      RecordProperty(e.scenario + "/" + role + "/baseline", std::to_string(e.baseline.mean_return.at(role)));
    }
    EXPECT_GT(trained, baseline) << role;
  }
  // Where the cost-plus baseline loses volume (a recession), the learned pricing wins clearly.
  EXPECT_GT(results[1].trained.mean_return.at("pricing"),
            results[1].baseline.mean_return.at("pricing") + 1.0);
}

}  // namespace
}  // namespace loantwin
