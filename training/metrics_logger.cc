#include "training/metrics_logger.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <filesystem>
#include <iterator>
#include <stdexcept>
#include <string_view>

#include "core/atomic_file.h"

namespace loantwin {

namespace {

/// Keeps the header and the complete rows of `path` whose step is at most `step`.
void DropRowsAfter(const std::string& path, int64_t step) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string kept;
  int64_t dropped = 0;
  size_t at = 0;
  for (bool header = true; at < text.size(); header = false) {
    const size_t nl = text.find('\n', at);
    if (nl == std::string::npos) {  // a row torn by a crash
      ++dropped;
      break;
    }
    const std::string_view row(text.data() + at, nl + 1 - at);
    int64_t row_step = 0;
    const auto [end, ec] = std::from_chars(row.data(), row.data() + row.size(), row_step);
    if (header || (ec == std::errc() && *end == ',' && row_step <= step))
      kept.append(row);
    else
      ++dropped;
    at = nl + 1;
  }
  if (dropped == 0) return;
  WriteFileAtomically(path, [&](std::ostream& out) { out << kept; });
  spdlog::info("{}: removed {} rows logged after step {} by the interrupted run", path, dropped,
               step);
}

}  // namespace

MetricsLogger::MetricsLogger(const std::string& run_dir, int64_t resume_step) {
  const std::string path = run_dir + "/metrics.csv";
  if (resume_step >= 0 && std::filesystem::exists(path)) DropRowsAfter(path, resume_step);
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
