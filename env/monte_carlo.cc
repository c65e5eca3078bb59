#include "env/monte_carlo.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "env/atomic_file.h"
#include "env/vec_env.h"

namespace loantwin {

namespace {

/// Validates the run size and allocates [paths][months][metrics].
PathSet AllocatePaths(const MonteCarloOptions& o) {
  if (o.months < 1) throw std::invalid_argument("months must be >= 1");
  if (o.paths < 1) throw std::invalid_argument("paths must be >= 1");
  PathSet set;
  set.paths = o.paths;
  set.months = o.months;
  set.data.resize(static_cast<size_t>(o.paths) * o.months * kNumMetrics);
  return set;
}

}  // namespace

PathSet RunMonteCarlo(std::shared_ptr<const InstitutionConfig> institution,
                      std::shared_ptr<const Scenario> scenario, const Levers& levers,
                      const MonteCarloOptions& o) {
  PathSet set = AllocatePaths(o);
  const std::vector<Levers> shared{levers};
  for (int start = 0; start < o.paths; start += o.batch) {
    VecEnvOptions vo;
    vo.num_envs = std::min(o.batch, o.paths - start);
    vo.num_threads = std::min(o.threads, vo.num_envs);
    vo.seed = o.seed;
    vo.first_instance = start;
    vo.twin = o.twin;
    VecEnv env(institution, scenario, vo);
    for (int m = 0; m < o.months; ++m) {
      env.Step(shared);
      for (int i = 0; i < vo.num_envs; ++i)
        std::copy_n(
            env.metrics(i), kNumMetrics,
            set.data.begin() + ((static_cast<size_t>(start + i) * o.months + m) * kNumMetrics));
    }
    if (o.progress) o.progress(start + vo.num_envs);
  }
  return set;
}

PolicyRun RunPolicyMonteCarlo(const TwinEnvConfig& config, FallbackPolicy policy,
                              const MonteCarloOptions& o) {
  TwinEnvConfig c = config;
  for (auto& role : c.roles) role.fallback = policy;
  return RunPolicyMonteCarlo(c, nullptr, o);
}

PolicyRun RunPolicyMonteCarlo(const TwinEnvConfig& config, RoleDriver* driver,
                              const MonteCarloOptions& o) {
  PolicyRun run;
  run.paths = AllocatePaths(o);
  run.failed_month.assign(o.paths, 0);
  run.invariant_breaches.assign(o.paths, 0);
  run.first_invariant_breach.assign(o.paths, "");
  TwinEnvConfig c = config;
  // One month past the run: no auto-reset clears the twins' breach counters after the last step.
  c.horizon_months = o.months + 1;
  c.terminate_on_failure = false;
  c.check_invariants = o.twin.check_invariants;
  c.count_invariant_breaches = o.twin.count_invariant_breaches;
  std::vector<int32_t> actions;
  for (int start = 0; start < o.paths; start += o.batch) {
    EnvOptions eo;
    eo.num_envs = std::min(o.batch, o.paths - start);
    eo.num_threads = std::min(o.threads, eo.num_envs);
    eo.seed = o.seed;
    eo.instance_offset = start;
    TwinEnv env(eo, c);
    if (start == 0) {
      RoleRewards& rr = run.rewards;
      rr.objectives = env.role(0).objectives;
      for (int r = 0; r < env.num_roles(); ++r) {
        rr.roles.push_back(env.role(r).name);
        rr.objective_sums.emplace_back(static_cast<size_t>(o.paths) * rr.objectives.size(), 0.0);
        rr.returns.emplace_back(o.paths, 0.0);
      }
    }
    const size_t k = run.rewards.objectives.size();
    env.Reset();
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
        std::copy_n(
            row, kNumMetrics,
            run.paths.data.begin() + ((static_cast<size_t>(path) * o.months + m) * kNumMetrics));
        if (!run.failed_month[path] && (row[kCet1Ratio] < c.cet1_floor || row[kEquity] <= 0))
          run.failed_month[path] = m + 1;
        for (int r = 0; r < env.num_roles(); ++r) {
          run.rewards.returns[r][path] += env.rewards(r)[i];
          const float* vec = env.reward_vectors(r) + static_cast<size_t>(i) * k;
          for (size_t j = 0; j < k; ++j) run.rewards.objective_sums[r][path * k + j] += vec[j];
        }
      }
      if (o.month_progress) o.month_progress(start, eo.num_envs, m + 1);
    }
    for (int i = 0; i < eo.num_envs; ++i) {
      run.invariant_breaches[start + i] = env.twin(i).invariant_breaches();
      run.first_invariant_breach[start + i] = env.twin(i).first_invariant_breach();
    }
    if (o.progress) o.progress(start + eo.num_envs);
  }
  return run;
}

std::vector<PathSummary> SummarisePaths(const PathSet& set) {
  std::vector<PathSummary> out;
  for (int p = 0; p < set.paths; ++p) {
    PathSummary s{-std::numeric_limits<double>::infinity(),
                  std::numeric_limits<double>::infinity(),
                  0,
                  0,
                  0,
                  0};
    for (int m = 0; m < set.months; ++m) {
      double co = 0;
      int n = 0;
      for (int k = std::max(0, m - 2); k <= m; ++k, ++n) co += set.at(p, k, kChargeOffRate);
      s.peak_charge_off_rate = std::max(s.peak_charge_off_rate, co / n);
      const double cet1 = set.at(p, m, kCet1Ratio);
      s.min_cet1_ratio = std::min(s.min_cet1_ratio, cet1);
      s.cumulative_net_income += set.at(p, m, kNetIncome);
      s.months_below_minimum += cet1 < 0.045;
      s.months_below_buffer += cet1 < 0.07;
    }
    s.final_equity = set.at(p, set.months - 1, kEquity);
    out.push_back(s);
  }
  return out;
}

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  const double pos = q * (v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

void WritePathsCsv(const PathSet& set, const std::string& file) {
  WriteFileAtomically(file, [&](std::ostream& out) {
    out << "path,month";
    for (int i = 0; i < kNumMetrics; ++i) out << ',' << MetricName(i);
    out << '\n';
    fmt::memory_buffer buf;
    for (int p = 0; p < set.paths; ++p)
      for (int m = 0; m < set.months; ++m) {
        buf.clear();
        fmt::format_to(std::back_inserter(buf), "{},{}", p, m + 1);
        for (int i = 0; i < kNumMetrics; ++i)
          fmt::format_to(std::back_inserter(buf), ",{:.10g}", set.at(p, m, i));
        buf.push_back('\n');
        out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
      }
  });
}

void WriteBandsCsv(const PathSet& set, const std::string& file) {
  WriteFileAtomically(file, [&](std::ostream& out) {
    out << "month,metric,mean,p05,p50,p95\n";
    std::vector<double> v(set.paths);
    for (int m = 0; m < set.months; ++m)
      for (int i = 0; i < kNumMetrics; ++i) {
        double mean = 0;
        for (int p = 0; p < set.paths; ++p) mean += (v[p] = set.at(p, m, i));
        mean /= set.paths;
        out << fmt::format("{},{},{:.10g},{:.10g},{:.10g},{:.10g}\n", m + 1, MetricName(i), mean,
                           Quantile(v, 0.05), Quantile(v, 0.5), Quantile(v, 0.95));
      }
  });
}

}  // namespace loantwin
