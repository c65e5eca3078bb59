#pragma once
// Hyperparameter schedules over training progress in [0, 1].

#include <algorithm>
#include <string>

namespace loantwin {

struct Schedule {
  enum class Kind { kConstant, kLinear };
  Kind kind = Kind::kConstant;
  double start = 0, end = 0;  ///< value at progress 0 and 1 (constant: start)

  static Schedule Constant(double v) { return {Kind::kConstant, v, v}; }
  static Schedule Linear(double from, double to) { return {Kind::kLinear, from, to}; }
  double At(double progress) const {
    if (kind == Kind::kConstant) return start;
    const double p = std::clamp(progress, 0.0, 1.0);
    return start + (end - start) * p;
  }
};

}  // namespace loantwin
