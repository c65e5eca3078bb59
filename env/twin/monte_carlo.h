#pragma once
// Monte Carlo runs of one institution under one scenario with fixed levers: many seeded paths,
// stepped on a TwinBatch in batches, either kept as a [paths, months, metrics] array or streamed
// batch by batch, in path order, to a sink that reduces them (memory bounded by the batch).

#include <cstdint>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/quantile_sketch.h"
#include "env/twin/levers.h"
#include "env/twin/twin.h"

namespace loantwin {

/// The metrics of `count` consecutive paths starting at `first_path`: [count][months][metrics].
struct PathBlock {
  int first_path = 0, count = 0, months = 0;
  const double* data = nullptr;
  const double* row(int i, int month_index) const {
    return data + (static_cast<size_t>(i) * months + month_index) * kNumMetrics;
  }
  double at(int i, int month_index, int metric) const { return row(i, month_index)[metric]; }
};
/// Receives the blocks of a run in path order (first_path 0, then the next batch, ...), on the
/// calling thread, whatever the thread count.
using PathSink = std::function<void(const PathBlock&)>;

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
  /// When set, each batch's metrics go to the sink and are not kept: the returned PathSet is
  /// empty and memory is bounded by batch x months x metrics.
  PathSink sink;
  /// Policy runs: a path whose institution fails is resolved (ResolveFailureMonth,
  /// ResolvedMonth in env/twin/metrics.h): its rows from the failure month on show the
  /// resolution, not a recovery, and its role rewards stop. Off: failed paths run on.
  bool resolve_failures = false;
  /// Distributed evaluation (policy runs): only the batches b (paths [b * batch, (b + 1) *
  /// batch)) with b % shards == shard are simulated, so ranks split a run and path p is still
  /// instance p of the seed; the others' per-path figures stay zero. Needs a sink.
  int shard = 0, shards = 1;
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

/// Where a run's metrics go: into the whole PathSet, or (with a sink) into one batch's block
/// that is handed to the sink when the batch is done. Validates the run size.
class PathOutput {
 public:
  explicit PathOutput(const MonteCarloOptions& options);
  /// Storage for the batch of paths [first_path, first_path + count): [count][months][metrics].
  double* Batch(int first_path);
  /// The batch is complete: hands it to the sink (if any).
  void Done(int first_path, int count);
  /// The kept paths (empty with a sink).
  PathSet Take() { return std::move(set_); }

 private:
  const MonteCarloOptions& options_;
  PathSet set_;
  std::vector<double> block_;
};

/// Path p is twin instance p of the seed, whatever the batch size or thread count.
PathSet RunMonteCarlo(std::shared_ptr<const InstitutionConfig> institution,
                      std::shared_ptr<const Scenario> scenario, const Levers& levers,
                      const MonteCarloOptions& options);

/// Per-path outcomes for the summary table.
struct PathSummary {
  double peak_charge_off_rate;  ///< max over months of the trailing 3-month mean charge-off rate
  double min_capital_ratio;     ///< the regime's ratio (net worth or CET1; env/twin/capital.h)
  double cumulative_net_income;
  double final_equity;
  int months_undercapitalised;  ///< capital category undercapitalised or worse (below minimum)
  int months_below_well;        ///< not well capitalised
  int worst_category;           ///< the worst capital category reached (CapitalCategory)
};
std::vector<PathSummary> SummarisePaths(const PathSet& set);
/// The summary of path i of a block.
PathSummary SummarisePath(const PathBlock& block, int i);
/// The whole set as one block.
PathBlock WholeSet(const PathSet& set);

/// Linear-interpolated quantile (q in [0, 1]) of a sample; NaN for an empty sample.
double Quantile(std::vector<double> values, double q);

/// CSV, one row per path and month: path,month,<metric columns>.
void WritePathsCsv(const PathSet& set, const std::string& file);
void WritePathsCsvHeader(std::ostream& out);
void WritePathsCsvRows(const PathBlock& block, std::ostream& out);
/// CSV, one row per month and metric: month,metric,mean,p05,p50,p95 across paths.
void WriteBandsCsv(const PathSet& set, const std::string& file);

/// Mean, 5%, median and 95% across paths of each month and metric, reduced block by block:
/// exact up to `exact_paths` paths, a t-digest beyond (core/quantile_sketch.h), so memory is
/// months x metrics x min(paths, exact_paths) values at most.
class BandAccumulator {
 public:
  BandAccumulator(int months, int exact_paths = 1000);
  void Add(const PathBlock& block);
  void Write(const std::string& file) const;
  int paths() const { return paths_; }
  const QuantileSketch& cell(int month_index, int metric) const {
    return cells_[static_cast<size_t>(month_index) * kNumMetrics + metric];
  }
  double mean(int month_index, int metric) const {
    return sums_[static_cast<size_t>(month_index) * kNumMetrics + metric] / paths_;
  }

 private:
  int months_, paths_ = 0;
  std::vector<QuantileSketch> cells_;
  std::vector<double> sums_;
};

}  // namespace loantwin
