#include "training/metrics_logger.h"

#include <fmt/format.h>

#include <filesystem>
#include <stdexcept>

namespace loantwin {

MetricsLogger::MetricsLogger(const std::string& run_dir) {
  const std::string path = run_dir + "/metrics.csv";
  const bool fresh = !std::filesystem::exists(path);
  csv_.open(path, std::ios::app);
  if (!csv_) throw std::runtime_error(path + ": cannot open for writing");
  if (fresh) csv_ << "step,wall_seconds,key,value\n";
  tb_ = std::make_unique<TensorBoardWriter>(run_dir);
}

void MetricsLogger::Log(const std::string& key, double value, int64_t step, double wall_seconds) {
  csv_ << fmt::format("{},{:.3f},{},{:.9g}\n", step, wall_seconds, key, value);
  tb_->AddScalar(key, static_cast<float>(value), step);
}

void MetricsLogger::Flush() {
  csv_.flush();
  tb_->Flush();
}

}  // namespace loantwin
