#pragma once
// Training metrics to a CSV file (step, wall_seconds, key, value; appended, so resumed runs
// continue the same file) and to TensorBoard. Keys are namespaced like CleanRL:
// charts/episodic_return/<role>, losses/<role>/value_loss, charts/SPS.

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

#include "training/tensorboard.h"

namespace loantwin {

class MetricsLogger {
 public:
  /// With `resume_step` >= 0 the run resumes from that step: rows of metrics.csv logged after
  /// it (and a torn last row) are removed first, so no step appears twice.
  explicit MetricsLogger(const std::string& run_dir, int64_t resume_step = -1);
  void Log(const std::string& key, double value, int64_t step, double wall_seconds);
  void Flush();

 private:
  std::ofstream csv_;
  std::unique_ptr<TensorBoardWriter> tb_;
};

}  // namespace loantwin
