#pragma once
// Text from outside (request paths, file contents, torn records) made safe for a log line.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace loantwin {

/// `s` with printable ASCII kept, `\` and `"` escaped and every other byte (control
/// characters, line breaks, bytes of UTF-8 sequences, invalid UTF-8) written as \xNN; cut
/// after `max_bytes` input bytes with "..." appended.
std::string EscapeForLog(std::string_view s, size_t max_bytes = 256);

}  // namespace loantwin

namespace loantwin {

/// Lets one message through per interval; counts the ones it held back. A fault that repeats
/// per request (disk full, descriptors exhausted) logs a line a second, not a line a request.
/// Thread-safe.
class LogRateLimiter {
 public:
  explicit LogRateLimiter(int64_t interval_ms = 1000) : interval_ms_(interval_ms) {}
  /// True when this message may be logged; then `*note` is " (N more not logged)" for the N
  /// held back since the last one that was, or "".
  bool Allow(std::string* note);

 private:
  const int64_t interval_ms_;
  std::atomic<int64_t> next_ms_{0};
  std::atomic<int64_t> held_{0};
};

}  // namespace loantwin
