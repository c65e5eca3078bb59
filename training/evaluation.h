#pragma once
// Evaluation of trained roles against the rule-based baselines on held-out seeds: for each
// scenario, `paths` instances run one full episode with (a) the learning roles acting greedily
// and the other roles on their baselines, and (b) every role on its baseline. Reported per
// role: mean and standard deviation of the episode return; for the twin also portfolio
// metrics (cumulative net income, mean ROE, minimum CET1, peak charge-off rate, approvals).

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace loantwin {

class Trainer;

struct PolicyOutcome {
  std::map<std::string, double> mean_return, std_return;  ///< per role
  /// The twin: cumulative net income, ROE, capital, charge-offs, approvals; other
  /// environments: "final/<metric>", each metric() at the end of the episode, mean over paths
  /// (the fund's LP IRR, breach months, ...; an undefined IRR counts as -1).
  std::map<std::string, double> portfolio;
  /// Mean numeric value of each decision of the learning roles ("credit/cutoff/card" -> 3.8),
  /// over acting instance-steps (the manifest's action values).
  std::map<std::string, double> mean_decision;
};

struct ScenarioEvaluation {
  std::string scenario;  ///< "" for environments without scenarios
  PolicyOutcome trained, baseline;
};

struct EvaluationOptions {
  std::vector<std::string> scenarios;  ///< twin: scenario names or paths (empty: the training mix)
  int paths = 50;
  uint64_t seed = 1000003;  ///< held out: training used the experiment's seed
  int threads = 2;
};

std::vector<ScenarioEvaluation> Evaluate(Trainer& trainer, const EvaluationOptions& options);
/// The results as JSON (an array of {scenario, trained, baseline}).
std::string EvaluationJson(const std::vector<ScenarioEvaluation>& results,
                           const std::vector<std::string>& learning_roles);

}  // namespace loantwin
