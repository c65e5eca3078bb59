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
  if (!version.empty()) {
    out += "# HELP loantwin_bundle_info The bundle being served.\n";
    out += "# TYPE loantwin_bundle_info gauge\n";
    out += fmt::format("loantwin_bundle_info{{version=\"{}\"}} 1\n", version);
  }
  out += "# HELP loantwin_reloads_total Bundle reloads by result.\n";
  out += "# TYPE loantwin_reloads_total counter\n";
  out += fmt::format("loantwin_reloads_total{{result=\"ok\"}} {}\n", reloads_ok_);
  out += fmt::format("loantwin_reloads_total{{result=\"failed\"}} {}\n", reloads_failed_);
  return out;
}

std::string MergeLabelledExpositions(
    const std::vector<std::pair<std::string, std::string>>& parts) {
  // family name -> its HELP/TYPE lines and samples, in order of first appearance.
  struct Family {
    std::string head, samples;
  };
  std::vector<std::string> order;
  std::map<std::string, Family> families;
  for (const auto& [label, text] : parts) {
    std::string current;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      const std::string_view line(text.data() + pos, end - pos);
      pos = end + 1;
      if (line.empty()) continue;
      if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
        const std::string_view rest = line.substr(7);
        current = std::string(rest.substr(0, rest.find(' ')));
        auto [it, fresh] = families.try_emplace(current);
        if (fresh) order.push_back(current);
        // HELP and TYPE come from the first part that has the family.
        if (it->second.samples.empty() &&
            it->second.head.find(std::string(line)) == std::string::npos)
          it->second.head.append(line).push_back('\n');
        continue;
      }
      if (line[0] == '#') continue;
      std::string sample(line);
      if (!label.empty()) {
        const size_t name_end = sample.find_first_of("{ ");
        const std::string tag = fmt::format("tenant=\"{}\"", label);
        if (name_end != std::string::npos && sample[name_end] == '{')
          sample.insert(name_end + 1, tag + ",");
        else if (name_end != std::string::npos)
          sample.insert(name_end, "{" + tag + "}");
      }
      auto [it, fresh] = families.try_emplace(current);
      if (fresh) order.push_back(current);
      it->second.samples.append(sample).push_back('\n');
    }
  }
  std::string out;
  for (const auto& name : order) out += families[name].head + families[name].samples;
  return out;
}

}  // namespace loantwin
