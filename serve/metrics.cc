#include "serve/metrics.h"

#include <fmt/format.h>

namespace loantwin {

void ServeMetrics::ObserveRequest(std::string_view route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = requests_.find(route);
  if (it == requests_.end())
    it = requests_.emplace(std::string(route), std::map<int, int64_t>{}).first;
  ++it->second[status];
  for (size_t b = 0; b < kLatencyBuckets.size(); ++b)
    if (seconds <= kLatencyBuckets[b]) ++latency_[b];
  ++latency_count_;
  latency_sum_ += seconds;
}

void ServeMetrics::ObserveBatch(int rows) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t b = 0; b < kBatchBuckets.size(); ++b)
    if (rows <= kBatchBuckets[b]) ++batch_[b];
  ++batch_count_;
  batch_sum_ += rows;
}

void ServeMetrics::CountReload(bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  ++(ok ? reloads_ok_ : reloads_failed_);
}

std::string ServeMetrics::Render(const std::string& version,
                                 const std::map<std::string, int>& queue_depths) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  out += "# HELP loantwin_requests_total HTTP requests by route and status.\n";
  out += "# TYPE loantwin_requests_total counter\n";
  for (const auto& [route, by_status] : requests_)
    for (const auto& [status, n] : by_status)
      out += fmt::format("loantwin_requests_total{{route=\"{}\",status=\"{}\"}} {}\n", route,
                         status, n);
  out += "# HELP loantwin_request_duration_seconds Time from a complete request to its response.\n";
  out += "# TYPE loantwin_request_duration_seconds histogram\n";
  for (size_t b = 0; b < kLatencyBuckets.size(); ++b)
    out += fmt::format("loantwin_request_duration_seconds_bucket{{le=\"{}\"}} {}\n",
                       kLatencyBuckets[b], latency_[b]);
  out +=
      fmt::format("loantwin_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\n", latency_count_);
  out += fmt::format("loantwin_request_duration_seconds_sum {}\n", latency_sum_);
  out += fmt::format("loantwin_request_duration_seconds_count {}\n", latency_count_);
  out += "# HELP loantwin_batch_size Observations per policy call (micro-batching).\n";
  out += "# TYPE loantwin_batch_size histogram\n";
  for (size_t b = 0; b < kBatchBuckets.size(); ++b)
    out += fmt::format("loantwin_batch_size_bucket{{le=\"{}\"}} {}\n", kBatchBuckets[b], batch_[b]);
  out += fmt::format("loantwin_batch_size_bucket{{le=\"+Inf\"}} {}\n", batch_count_);
  out += fmt::format("loantwin_batch_size_sum {}\n", batch_sum_);
  out += fmt::format("loantwin_batch_size_count {}\n", batch_count_);
  out += "# HELP loantwin_queue_depth Observations waiting per role.\n";
  out += "# TYPE loantwin_queue_depth gauge\n";
  for (const auto& [role, n] : queue_depths)
    out += fmt::format("loantwin_queue_depth{{role=\"{}\"}} {}\n", role, n);
  out += "# HELP loantwin_bundle_info The bundle being served.\n";
  out += "# TYPE loantwin_bundle_info gauge\n";
  out += fmt::format("loantwin_bundle_info{{version=\"{}\"}} 1\n", version);
  out += "# HELP loantwin_reloads_total Bundle reloads by result.\n";
  out += "# TYPE loantwin_reloads_total counter\n";
  out += fmt::format("loantwin_reloads_total{{result=\"ok\"}} {}\n", reloads_ok_);
  out += fmt::format("loantwin_reloads_total{{result=\"failed\"}} {}\n", reloads_failed_);
  return out;
}

}  // namespace loantwin
