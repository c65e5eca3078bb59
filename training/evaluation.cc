#include "training/evaluation.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "env/cartpole.h"
#include "env/env_registry.h"
#include "env/twin/metrics.h"
#include "env/twin_env.h"
#include "training/trainer.h"

namespace loantwin {
namespace {

/// `guarded`: with the experiment's guardrails (the trained policy acts under them, as in
/// training); the baselines are evaluated as they are.
std::unique_ptr<MultiAgentEnv> MakeEvalEnv(const ExperimentConfig& c, const std::string& scenario,
                                           const EvaluationOptions& o, bool guarded) {
  EnvOptions eo;
  eo.num_envs = o.paths;
  eo.num_threads = o.threads;
  eo.seed = o.seed;
  eo.max_episode_steps = c.max_episode_steps;
  if (c.env_name != "twin") {
    auto env = MakeEnv(c.env_name, eo, c.env_config ? &*c.env_config : nullptr);
    if (guarded) env->SetGuardrails(c.guardrails);
    return env;
  }
  TwinEnvConfig tc = c.env_config ? TwinEnvConfig::Parse(*c.env_config) : TwinEnvConfig{};
  if (!scenario.empty()) {
    tc.scenario = scenario;
    tc.scenarios.clear();
  }
  if (guarded) tc.guardrails = c.guardrails;
  return std::make_unique<TwinEnv>(eo, tc);
}

PolicyOutcome RunEpisodes(Trainer& trainer, MultiAgentEnv& env, bool trained) {
  const ExperimentConfig& c = trainer.config();
  const int n = env.num_envs(), roles = env.num_roles();
  for (int r = 0; r < roles; ++r) {
    // Reward weights and fallbacks as in training; baselines for everything in (b).
    const auto it = c.roles.find(env.role(r).name);
    if (it != c.roles.end() && it->second.has_rewards) env.SetRewardWeights(r, it->second.rewards);
    env.SetFallback(r, it != c.roles.end() && it->second.agent == "random" && trained
                           ? FallbackPolicy::kRandom
                           : FallbackPolicy::kBaseline);
  }
  env.Reset();
  std::vector<std::vector<double>> ret(roles, std::vector<double>(n, 0.0));
  std::vector<uint8_t> alive(n, 1);
  std::vector<int32_t> actions;
  auto* twin = dynamic_cast<TwinEnv*>(&env);
  std::vector<double> net_income(n, 0), roe(n, 0), min_capital(n, 1e9), peak_co(n, 0),
      approvals(n, 0);
  std::vector<int> months(n, 0);
  // Other environments: each metric of the step that ended the episode (the fund's IRRs).
  const std::vector<std::string>& metric_names = env.metric_names();
  std::vector<double> final_metrics(metric_names.size() * n, 0.0);
  std::map<std::string, std::pair<double, int64_t>> decisions;
  for (int step = 0; step < env.max_episode_steps(); ++step) {
    for (int r = 0; r < roles; ++r) {
      if (!trained || !trainer.HasPolicy(r)) {
        env.Act(r, nullptr);
        continue;
      }
      actions.resize(static_cast<size_t>(n) * env.role(r).action_space.action_dims());
      trainer.Decide(r, env.observations(r), env.action_masks(r), n, /*deterministic=*/true,
                     actions.data());
      env.Act(r, actions.data());
      const RoleSpec& spec = env.role(r);
      const int dims = spec.action_space.action_dims();
      for (int i = 0; i < n; ++i) {
        if (!alive[i] || !env.acting(r)[i]) continue;
        for (int d = 0; d < dims; ++d) {
          const int32_t a = env.actions(r)[i * dims + d];
          auto& acc = decisions[spec.name + "/" + spec.action_dim_names[d]];
          acc.first +=
              d < static_cast<int>(spec.action_values.size()) ? spec.action_values[d][a] : a;
          acc.second += 1;
        }
      }
    }
    env.Step();
    for (int i = 0; i < n; ++i) {
      if (!alive[i]) continue;
      for (int r = 0; r < roles; ++r) ret[r][i] += env.rewards(r)[i];
      if (twin) {
        const double* row = twin->step_metrics(i);
        net_income[i] += row[kNetIncome];
        roe[i] += row[kRoe];
        min_capital[i] = std::min(min_capital[i], row[kCapitalRatio]);
        peak_co[i] = std::max(peak_co[i], row[kChargeOffRate]);
        approvals[i] += row[kApprovals];
        ++months[i];
      }
      if (env.terminated()[i] || env.truncated()[i]) {
        alive[i] = 0;
        if (!twin)
          for (size_t k = 0; k < metric_names.size(); ++k) {
            const double v = env.metric(i, static_cast<int>(k));
            final_metrics[k * n + i] = std::isfinite(v) ? v : -1.0;  // an undefined IRR: -100%
          }
      }
    }
  }
  PolicyOutcome out;
  for (const auto& [k, acc] : decisions)
    out.mean_decision[k] = acc.first / std::max<int64_t>(1, acc.second);
  auto mean_std = [n](const std::vector<double>& v, double* mean, double* sd) {
    double s = 0, s2 = 0;
    for (double x : v) s += x, s2 += x * x;
    *mean = s / n;
    *sd = std::sqrt(std::max(0.0, s2 / n - *mean * *mean));
  };
  for (int r = 0; r < roles; ++r) {
    double m, sd;
    mean_std(ret[r], &m, &sd);
    out.mean_return[env.role(r).name] = m;
    out.std_return[env.role(r).name] = sd;
  }
  if (!twin)
    for (size_t k = 0; k < metric_names.size(); ++k) {
      double s = 0;
      for (int i = 0; i < n; ++i) s += final_metrics[k * n + i];
      out.portfolio["final/" + metric_names[k]] = s / n;
    }
  if (twin) {
    double m, sd, worst = 1e9;
    mean_std(net_income, &m, &sd);
    out.portfolio["cumulative_net_income"] = m;
    for (int i = 0; i < n; ++i)
      roe[i] /= std::max(1, months[i]), worst = std::min(worst, min_capital[i]);
    mean_std(roe, &m, &sd);
    out.portfolio["mean_roe"] = m;
    mean_std(min_capital, &m, &sd);
    out.portfolio["min_capital_ratio_mean"] = m;
    out.portfolio["min_capital_ratio_worst"] = worst;
    mean_std(peak_co, &m, &sd);
    out.portfolio["peak_charge_off_rate"] = m;
    mean_std(approvals, &m, &sd);
    out.portfolio["approvals"] = m;
  }
  return out;
}

}  // namespace

std::vector<ScenarioEvaluation> Evaluate(Trainer& trainer, const EvaluationOptions& o) {
  std::vector<std::string> scenarios = o.scenarios;
  if (scenarios.empty()) scenarios.push_back("");
  if (trainer.config().env_name != "twin" && (scenarios.size() > 1 || !scenarios[0].empty()))
    throw std::invalid_argument("--scenarios applies to the twin environment only");
  std::vector<ScenarioEvaluation> results;
  for (const auto& s : scenarios) {
    ScenarioEvaluation e;
    e.scenario = s;
    auto env_a = MakeEvalEnv(trainer.config(), s, o, /*guarded=*/true);
    e.trained = RunEpisodes(trainer, *env_a, true);
    auto env_b = MakeEvalEnv(trainer.config(), s, o, /*guarded=*/false);
    e.baseline = RunEpisodes(trainer, *env_b, false);
    results.push_back(std::move(e));
  }
  return results;
}

std::string EvaluationJson(const std::vector<ScenarioEvaluation>& results,
                           const std::vector<std::string>& learning_roles) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& e : results) {
    auto policy = [](const PolicyOutcome& p) {
      nlohmann::json j;
      j["mean_return"] = p.mean_return;
      j["std_return"] = p.std_return;
      if (!p.portfolio.empty()) j["portfolio"] = p.portfolio;
      if (!p.mean_decision.empty()) j["mean_decision"] = p.mean_decision;
      return j;
    };
    nlohmann::json j;
    j["scenario"] = e.scenario;
    j["learning_roles"] = learning_roles;
    j["trained"] = policy(e.trained);
    j["baseline"] = policy(e.baseline);
    out.push_back(j);
  }
  return out.dump(2) + "\n";
}

}  // namespace loantwin
