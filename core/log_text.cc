#include "core/log_text.h"

#include <chrono>

namespace loantwin {

std::string EscapeForLog(std::string_view s, size_t max_bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  const bool cut = s.size() > max_bytes;
  if (cut) s = s.substr(0, max_bytes);
  std::string out;
  out.reserve(s.size() + 8);
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\\' || c == '"') {
      out += '\\';
      out += ch;
    } else if (c >= 0x20 && c < 0x7f) {
      out += ch;
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (cut) out += "...";
  return out;
}

bool LogRateLimiter::Allow(std::string* note) {
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  int64_t next = next_ms_.load(std::memory_order_relaxed);
  if (now < next || !next_ms_.compare_exchange_strong(next, now + interval_ms_)) {
    held_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  const int64_t held = held_.exchange(0, std::memory_order_relaxed);
  *note = held ? " (" + std::to_string(held) + " more not logged)" : "";
  return true;
}

}  // namespace loantwin
