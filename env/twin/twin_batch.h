#pragma once
// N twin instances stepped in parallel into one pre-allocated metrics buffer [N, kNumMetrics].
// Instances are independent and each draws from its own counter-based stream, so results are
// bit-identical for any thread count.

#include <memory>
#include <vector>

#include "core/parallel_runner.h"
#include "env/twin/twin.h"

namespace loantwin {

struct TwinBatchOptions {
  int num_envs = 1;
  int num_threads = 1;  ///< 1 = step in the calling thread
  /// After a step, pool workers spin this long for the next one before blocking: steps of a
  /// few hundred microseconds would otherwise pay a thread wake-up each (0 = block at once).
  int spin_microseconds = 200;
  uint64_t seed = 0;
  int first_instance = 0;  ///< instance ids are first_instance .. first_instance + num_envs - 1
  TwinOptions twin;
};

class TwinBatch {
 public:
  TwinBatch(std::shared_ptr<const InstitutionConfig> institution,
            std::shared_ptr<const Scenario> scenario, const TwinBatchOptions& options);
  ~TwinBatch();
  TwinBatch(const TwinBatch&) = delete;
  TwinBatch& operator=(const TwinBatch&) = delete;

  /// Resets every instance to month 0 of `episode`.
  void Reset(uint64_t episode = 0);
  /// Steps every instance one month. `levers` has one entry per instance, or one shared by all.
  /// The first exception thrown by any instance is rethrown here after all tasks finished.
  void Step(const std::vector<Levers>& levers);

  int num_envs() const { return static_cast<int>(twins_.size()); }
  int num_threads() const { return runner_->num_threads(); }
  /// Row-major [num_envs, kNumMetrics] metrics of the last step.
  const double* metrics() const { return metrics_.data(); }
  const double* metrics(int env) const {
    return metrics_.data() + static_cast<size_t>(env) * kNumMetrics;
  }
  Twin& twin(int env) { return *twins_[env]; }
  const Twin& twin(int env) const { return *twins_[env]; }

 private:
  std::vector<std::unique_ptr<Twin>> twins_;
  std::vector<double> metrics_;
  std::unique_ptr<ParallelRunner> runner_;
};

}  // namespace loantwin
