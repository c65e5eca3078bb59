#pragma once
// Monte Carlo runs of one institution under one scenario with fixed levers: many seeded paths,
// stepped on a VecEnv in batches, kept as a [paths, months, metrics] array with summaries.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "env/levers.h"
#include "env/twin.h"
#include "env/twin_env.h"

namespace loantwin {

struct MonteCarloOptions {
  int months = 120;
  int paths = 100;
  uint64_t seed = 1;
  int threads = 1;
  int batch = 64;  ///< instances alive at once (memory bound); does not change results
  TwinOptions twin;
  std::function<void(int paths_done)> progress;  ///< called after each batch
  /// Policy runs: called after each month of a batch (first path, batch size, months done).
  std::function<void(int first_path, int batch, int months_done)> month_progress;
};

/// Metrics of every path and month: path p, month m (1-based month m is index m - 1).
struct PathSet {
  int paths = 0, months = 0;
  std::vector<double> data;  ///< [paths][months][kNumMetrics]
  double at(int path, int month_index, int metric) const {
    return data[(static_cast<size_t>(path) * months + month_index) * kNumMetrics + metric];
  }
};

/// Path p is twin instance p of the seed, whatever the batch size or thread count.
PathSet RunMonteCarlo(std::shared_ptr<const InstitutionConfig> institution,
                      std::shared_ptr<const Scenario> scenario, const Levers& levers,
                      const MonteCarloOptions& options);

/// Rewards of each role over a policy run.
struct RoleRewards {
  std::vector<std::string> roles, objectives;
  /// [role][path * objectives + k]: objective k summed over the months of a path.
  std::vector<std::vector<double>> objective_sums;
  /// [role][path]: the role's scalar (weighted) reward summed over the months of a path.
  std::vector<std::vector<double>> returns;
};

struct PolicyRun {
  PathSet paths;
  RoleRewards rewards;
  /// Per path, the first month (1-based) with CET1 below the config's floor or equity <= 0;
  /// 0 if the institution never failed. Failed paths run on (terminate_on_failure is off).
  std::vector<int> failed_month;
  /// Per path, the months with a broken accounting invariant (checked when the options'
  /// twin.check_invariants is on; counted, not thrown) and the first breach's message.
  std::vector<int> invariant_breaches;
  std::vector<std::string> first_invariant_breach;
};

/// Decides roles of the five-role environment for a batch of instances (learned or exported
/// policies, which live outside env/). Roles it does not decide run on the config's fallbacks.
class RoleDriver {
 public:
  virtual ~RoleDriver() = default;
  virtual bool Decides(int role) const = 0;
  /// Actions [n x action_dims] for observations [n x obs_dim] and masks [n x mask_width].
  virtual void Decide(int role, const float* obs, const uint8_t* masks, int n,
                      int32_t* actions) = 0;
};

/// Monte Carlo of the five-role environment with every role driven by its fallback policy
/// (rule-based baselines or uniformly random, mask-respecting actions). Path p is environment
/// instance p of the seed, whatever the batch size or thread count.
PolicyRun RunPolicyMonteCarlo(const TwinEnvConfig& config, FallbackPolicy policy,
                              const MonteCarloOptions& options);
/// The same with the config's per-role fallbacks and, when `driver` is not null, the roles it
/// decides acting on its decisions (top-down, each role seeing the directives above it).
PolicyRun RunPolicyMonteCarlo(const TwinEnvConfig& config, RoleDriver* driver,
                              const MonteCarloOptions& options);

/// Per-path outcomes for the summary table.
struct PathSummary {
  double peak_charge_off_rate;  ///< max over months of the trailing 3-month mean charge-off rate
  double min_cet1_ratio;
  double cumulative_net_income;
  double final_equity;
  int months_below_minimum;  ///< CET1 < 4.5%
  int months_below_buffer;   ///< CET1 < 7.0% (minimum + conservation buffer)
};
std::vector<PathSummary> SummarisePaths(const PathSet& set);

/// Linear-interpolated quantile (q in [0, 1]) of a sample; NaN for an empty sample.
double Quantile(std::vector<double> values, double q);

/// CSV, one row per path and month: path,month,<metric columns>.
void WritePathsCsv(const PathSet& set, const std::string& file);
/// CSV, one row per month and metric: month,metric,mean,p05,p50,p95 across paths.
void WriteBandsCsv(const PathSet& set, const std::string& file);

}  // namespace loantwin
