#pragma once
// Monte Carlo runs of one institution under one scenario with fixed levers: many seeded paths,
// stepped on a TwinBatch in batches, kept as a [paths, months, metrics] array with summaries.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "env/twin/levers.h"
#include "env/twin/twin.h"

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

/// Validates the run size (months, paths >= 1; std::invalid_argument otherwise) and allocates
/// [paths][months][metrics].
PathSet AllocatePaths(const MonteCarloOptions& options);

/// Path p is twin instance p of the seed, whatever the batch size or thread count.
PathSet RunMonteCarlo(std::shared_ptr<const InstitutionConfig> institution,
                      std::shared_ptr<const Scenario> scenario, const Levers& levers,
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
