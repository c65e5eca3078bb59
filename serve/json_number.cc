#include "serve/json_number.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <system_error>

namespace loantwin {

const char* JsonNumberEnd(const char* p, const char* end) {
  auto digit = [&](const char* x) { return x < end && *x >= '0' && *x <= '9'; };
  if (p < end && *p == '-') ++p;
  if (!digit(p)) return nullptr;
  if (*p == '0') {
    ++p;
  } else {
    while (digit(p)) ++p;
  }
  if (p < end && *p == '.') {
    ++p;
    if (!digit(p)) return nullptr;
    while (digit(p)) ++p;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    ++p;
    if (p < end && (*p == '+' || *p == '-')) ++p;
    if (!digit(p)) return nullptr;
    while (digit(p)) ++p;
  }
  return p;
}

// Plain decimals of up to 15 significant digits (the usual case) are read directly: the digits
// form an exact integer and one division by an exact power of ten rounds once (Clinger's fast
// path); anything longer or with an exponent goes through std::from_chars.
bool ParseJsonNumber(const char** p, const char* end, double* v) {
  const char* start = *p;
  const char* q = JsonNumberEnd(start, end);
  if (!q) return false;
  const char* x = start;
  const bool negative = *x == '-';
  x += negative;
  uint64_t mantissa = 0;
  int digits = 0, decimals = 0;
  bool simple = true, fraction = false;
  for (; x < q && simple; ++x) {
    if (*x == '.') {
      fraction = true;
    } else if (*x >= '0' && *x <= '9') {
      if (digits > 0 || *x != '0') ++digits;
      mantissa = mantissa * 10 + static_cast<uint64_t>(*x - '0');
      decimals += fraction;
    } else {
      simple = false;  // an exponent
    }
  }
  static constexpr double kPow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                      1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
  if (simple && digits <= 15 && decimals <= 15) {
    const double m = static_cast<double>(mantissa) / kPow10[decimals];
    *v = negative ? -m : m;
  } else {
    const auto [r, ec] = std::from_chars(start, q, *v);
    if (ec != std::errc() || r != q || !std::isfinite(*v)) return false;
  }
  *p = q;
  return true;
}

}  // namespace loantwin
