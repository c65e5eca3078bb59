#include "env/fund/fund_monte_carlo.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace loantwin {

FundRun RunFundMonteCarlo(const FundEnvConfig& config, FallbackPolicy fallback,
                          const FundMonteCarloOptions& o, RoleDriver* driver) {
  const auto t0 = std::chrono::steady_clock::now();
  FundRun run;
  run.scenario = config.scenarios.empty() ? config.scenario : config.scenarios[0];
  run.paths = o.paths;
  run.months = config.fund.fund.term_months;
  for (const auto& z : config.fund.zones.zones) run.zones.push_back(z.name);
  const int zn = static_cast<int>(run.zones.size());
  run.zone_invested.assign(zn, 0), run.zone_defaults.assign(zn, 0), run.zone_losses.assign(zn, 0);
  run.results.resize(o.paths);
  if (o.keep_series)
    for (auto* s : {&run.nav, &run.equity_nav, &run.lp_distributions, &run.drawn})
      s->assign(run.months, std::vector<double>(o.paths, 0.0));
  std::vector<int32_t> actions;
  for (int start = 0; start < o.paths; start += o.batch) {
    const int n = std::min(o.batch, o.paths - start);
    EnvOptions eo;
    eo.num_envs = n;
    eo.num_threads = o.threads;
    eo.seed = o.seed;
    eo.instance_offset = start;
    HomeEquityFundEnv env(eo, config);
    env.set_profile(o.profile);
    for (int r = 0; r < env.num_roles(); ++r) env.SetFallback(r, fallback);
    env.Reset();
    std::vector<double> max_lev(n, 0.0);
    for (int month = 0; month < run.months; ++month) {
      for (int r = 0; r < env.num_roles(); ++r) {
        if (!driver || !driver->Decides(r)) {
          env.Act(r, nullptr);
          continue;
        }
        actions.resize(static_cast<size_t>(n) * env.role(r).action_space.action_dims());
        driver->Decide(r, env.observations(r), env.action_masks(r), n, actions.data());
        env.Act(r, actions.data());
      }
      // The last month's flows are read before the step resets the finished paths.
      env.Step();
      for (int i = 0; i < n; ++i) {
        const int p = start + i;
        const double lev = env.metric(i, kLeverage);
        max_lev[i] = std::max(max_lev[i], lev);
        if (o.keep_series) {
          run.nav[month][p] = env.metric(i, kNav);
          run.equity_nav[month][p] = env.metric(i, kEquityNav);
        }
      }
      // Distributions and drawn balance of the month (the path has not been reset yet unless
      // it ended: the final month's values come from the results below).
      for (int i = 0; i < n; ++i) {
        const FundPath& f = env.path(i);
        if (!o.keep_series || f.month() != month + 1) continue;
        run.lp_distributions[month][start + i] = f.last().lp_distributions;
        run.drawn[month][start + i] = f.last().drawn;
      }
      if (month + 1 == run.months) {
        for (int i = 0; i < n; ++i) {
          FundPathResult& r = run.results[start + i];
          r.lp_irr = env.metric(i, kLpIrr), r.lp_multiple = env.metric(i, kLpMultiple);
          r.gp_irr = env.metric(i, kGpIrr), r.equity_irr = env.metric(i, kEquityIrr);
          r.senior_irr = env.metric(i, kSeniorIrr), r.mezzanine_irr = env.metric(i, kMezzanineIrr);
          r.max_leverage = max_lev[i];
          const FundEpisodeTotals& t = env.episode_totals(i);
          r.gp_multiple = t.gp_multiple, r.senior_multiple = t.senior_multiple;
          r.mezzanine_multiple = t.mezzanine_multiple;
          r.lp_distributions = t.lp_distributions, r.gp_distributions = t.gp_distributions;
          r.gp_promote = t.gp_promote, r.fees = t.fees;
          r.default_losses = t.default_losses;
          r.breach_months = t.breach_months, r.oc_fail_months = t.oc_fail_months;
          r.senior_loss = t.senior_loss, r.mezzanine_loss = t.mezzanine_loss;
          if (o.keep_series) {
            run.lp_distributions[month][start + i] = t.final_lp_distribution;
            run.drawn[month][start + i] = 0;
          }
          for (int z = 0; z < zn; ++z) {
            run.zone_invested[z] += t.zone_invested[z];
            run.zone_defaults[z] += t.zone_defaults[z];
            run.zone_losses[z] += t.zone_losses[z];
          }
        }
      }
    }
    const FundTimers t = env.timers();
    run.timers.paths += t.paths, run.timers.exits += t.exits, run.timers.leverage += t.leverage;
    run.timers.waterfall += t.waterfall, run.timers.metrics += t.metrics;
    if (o.progress) o.progress(start + n);
  }
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return run;
}

TailRisk ReturnTail(std::vector<double> returns, double alpha) {
  TailRisk t;
  if (returns.empty()) return t;
  for (double& r : returns)
    if (!std::isfinite(r)) r = -1.0;
  std::sort(returns.begin(), returns.end());
  const size_t k = std::max<size_t>(
      1, static_cast<size_t>(std::ceil((1 - alpha) * static_cast<double>(returns.size()))));
  t.var = returns[k - 1];
  double s = 0;
  for (size_t i = 0; i < k; ++i) s += returns[i];
  t.es = s / static_cast<double>(k);
  return t;
}

}  // namespace loantwin
