#include "env/policy_monte_carlo.h"

#include <algorithm>
#include <stdexcept>

namespace loantwin {

PolicyRun RunPolicyMonteCarlo(const TwinEnvConfig& config, FallbackPolicy policy,
                              const MonteCarloOptions& o) {
  TwinEnvConfig c = config;
  for (auto& role : c.roles) role.fallback = policy;
  return RunPolicyMonteCarlo(c, nullptr, o);
}

PolicyRun RunPolicyMonteCarlo(const TwinEnvConfig& config, RoleDriver* driver,
                              const MonteCarloOptions& o) {
  PolicyRun run;
  PathOutput output(o);
  run.failed_month.assign(o.paths, 0);
  run.invariant_breaches.assign(o.paths, 0);
  run.first_invariant_breach.assign(o.paths, "");
  TwinEnvConfig c = config;
  // One month past the run: no auto-reset clears the twins' breach counters after the last step.
  c.horizon_months = o.months + 1;
  c.terminate_on_failure = false;
  c.check_invariants = o.twin.check_invariants;
  c.count_invariant_breaches = o.twin.count_invariant_breaches;
  for (const auto& g : c.guardrails) run.guardrail_names.push_back(g.name);
  if (o.shards < 1 || o.shard < 0 || o.shard >= o.shards)
    throw std::invalid_argument("Monte Carlo shard " + std::to_string(o.shard) + " of " +
                                std::to_string(o.shards));
  if (o.shards > 1 && !o.sink)
    throw std::invalid_argument("a sharded Monte Carlo run streams its paths to a sink");
  // The rewards' layout (roles, objectives), sized for every path whichever batches run here.
  auto init_rewards = [&](const TwinEnv& env) {
    RoleRewards& rr = run.rewards;
    rr.objectives = env.role(0).objectives;
    for (int r = 0; r < env.num_roles(); ++r) {
      rr.roles.push_back(env.role(r).name);
      rr.objective_sums.emplace_back(static_cast<size_t>(o.paths) * rr.objectives.size(), 0.0);
      rr.returns.emplace_back(o.paths, 0.0);
    }
  };
  std::vector<int32_t> actions;
  std::vector<double> resolved_rows;  ///< [instance][metric]: failed paths as resolved
  for (int start = 0, b = 0; start < o.paths; start += o.batch, ++b) {
    if (b % o.shards != o.shard) continue;
    EnvOptions eo;
    eo.num_envs = std::min(o.batch, o.paths - start);
    eo.num_threads = std::min(o.threads, eo.num_envs);
    eo.seed = o.seed;
    eo.instance_offset = start;
    TwinEnv env(eo, c);
    if (run.rewards.roles.empty()) init_rewards(env);
    const size_t k = run.rewards.objectives.size();
    env.Reset();
    double* out = output.Batch(start);
    resolved_rows.assign(static_cast<size_t>(eo.num_envs) * kNumMetrics, 0.0);
    for (int m = 0; m < o.months; ++m) {
      if (driver) {
        for (int r = 0; r < env.num_roles(); ++r) {
          if (!driver->Decides(r)) {
            env.Act(r, nullptr);
            continue;
          }
          actions.resize(static_cast<size_t>(eo.num_envs) * env.role(r).action_space.action_dims());
          driver->Decide(r, env.observations(r), env.action_masks(r), eo.num_envs, actions.data());
          env.Act(r, actions.data());
        }
      }
      env.Step();
      for (int i = 0; i < eo.num_envs; ++i) {
        const int path = start + i;
        const double* row = env.step_metrics(i);
        double* dst = out + (static_cast<size_t>(i) * o.months + m) * kNumMetrics;
        double* resolved = &resolved_rows[static_cast<size_t>(i) * kNumMetrics];
        if (o.resolve_failures && run.failed_month[path]) {
          // Resolved in an earlier month: no more business, no more rewards.
          ResolvedMonth(resolved, row, dst);
          continue;
        }
        std::copy_n(row, kNumMetrics, dst);
        if (!run.failed_month[path] &&
            (row[kCapitalRatio] < c.capital_floor || row[kEquity] <= 0)) {
          run.failed_month[path] = m + 1;
          if (o.resolve_failures) {
            ResolveFailureMonth(dst);
            std::copy_n(dst, kNumMetrics, resolved);
          }
        }
        for (int r = 0; r < env.num_roles(); ++r) {
          run.rewards.returns[r][path] += env.rewards(r)[i];
          const float* vec = env.reward_vectors(r) + static_cast<size_t>(i) * k;
          for (size_t j = 0; j < k; ++j) run.rewards.objective_sums[r][path * k + j] += vec[j];
        }
      }
      if (o.month_progress) o.month_progress(start, eo.num_envs, m + 1);
    }
    const auto counts = env.guardrail_counts();
    run.guardrail_counts.resize(counts.size());
    for (size_t g = 0; g < counts.size(); ++g) {
      run.guardrail_counts[g].fired += counts[g].fired;
      run.guardrail_counts[g].decisions += counts[g].decisions;
    }
    if (env.applicant_groups() != nullptr) run.group_outcomes.resize(o.paths);
    for (int i = 0; i < eo.num_envs; ++i) {
      if (const ApplicantLens* lens = env.applicant_lens(i))
        run.group_outcomes[start + i] = lens->total();
      run.invariant_breaches[start + i] = env.twin(i).invariant_breaches();
      run.first_invariant_breach[start + i] = env.twin(i).first_invariant_breach();
    }
    output.Done(start, eo.num_envs);
    if (o.progress) o.progress(start + eo.num_envs);
  }
  if (run.rewards.roles.empty()) {  // a shard without batches
    EnvOptions eo;
    eo.seed = o.seed;
    TwinEnv env(eo, c);
    init_rewards(env);
    run.guardrail_counts.resize(env.guardrail_counts().size());
  }
  run.paths = output.Take();
  return run;
}

}  // namespace loantwin
