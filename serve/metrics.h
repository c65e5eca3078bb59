#pragma once
// Prometheus metrics of the decision server (text exposition format 0.0.4).

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace loantwin {

/// Several expositions as one: each metric family's HELP and TYPE once, then every part's
/// samples with `tenant="<label>"` added (parts with an empty label are added as they are).
std::string MergeLabelledExpositions(
    const std::vector<std::pair<std::string, std::string>>& label_and_text);

class ServeMetrics {
 public:
  void ObserveRequest(std::string_view route, int status, double seconds);
  void ObserveBatch(int rows);
  void CountReload(bool ok);
  /// The exposition text; `queue_depths`: observations waiting per role; an empty
  /// `bundle_version` leaves out loantwin_bundle_info (server-wide metrics of tenant mode).
  std::string Render(const std::string& bundle_version,
                     const std::map<std::string, int>& queue_depths) const;

  static constexpr std::array<double, 12> kLatencyBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0};
  static constexpr std::array<double, 9> kBatchBuckets = {1, 2, 4, 8, 16, 32, 64, 128, 256};

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::map<int, int64_t>, std::less<>> requests_;  // route -> status
  std::array<int64_t, kLatencyBuckets.size()> latency_{};
  int64_t latency_count_ = 0;
  double latency_sum_ = 0;
  std::array<int64_t, kBatchBuckets.size()> batch_{};
  int64_t batch_count_ = 0;
  double batch_sum_ = 0;
  int64_t reloads_ok_ = 0, reloads_failed_ = 0;
};

}  // namespace loantwin
