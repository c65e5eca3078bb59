#pragma once
// The per-step cost of a constraint on one metric value (docs/training.md, "Constraints"): the
// distance outside [min, max] (shortfall) or 1 when outside (indicator); a NaN value counts as
// outside. Shared by training (training/constraints.h) and the stress report's judging of a
// policy by its own constraints (report/stress_report.h), so both cost a month the same way.

#include <algorithm>
#include <cmath>
#include <optional>

namespace loantwin {

struct ConstraintStep {
  double cost = 0;
  bool violated = false;
};

inline ConstraintStep ConstraintStepCost(double v, const std::optional<double>& min,
                                         const std::optional<double>& max, bool indicator) {
  double outside = 0;
  if (min && v < *min) outside = *min - v;
  if (max && v > *max) outside = std::max(outside, v - *max);
  const bool violated = outside > 0 || std::isnan(v);
  return {indicator || std::isnan(v) ? (violated ? 1.0 : 0.0) : outside, violated};
}

}  // namespace loantwin
