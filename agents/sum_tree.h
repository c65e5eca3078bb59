#pragma once
// Sum tree for proportional prioritised replay (Schaul et al. 2016): O(log n) priority updates,
// prefix-sum search for sampling, and the minimum priority (for the largest importance weight).
// Groundwork for the DQN agent; priorities are doubles, slots 0 .. capacity-1.

#include <cstdint>
#include <vector>

namespace loantwin {

class SumTree {
 public:
  explicit SumTree(int64_t capacity);
  int64_t capacity() const { return capacity_; }
  /// Sets slot i's priority (>= 0, finite); std::invalid_argument otherwise.
  void Set(int64_t i, double priority);
  double Get(int64_t i) const { return sum_[leaves_ + i]; }
  double Total() const { return sum_[1]; }
  /// Smallest priority among slots with a positive priority (+inf if none).
  double Min() const { return min_[1]; }
  /// The slot whose prefix interval [sum before it, sum including it) contains `mass`;
  /// mass is clamped to [0, Total()). Slots with priority 0 are never returned while
  /// Total() > 0.
  int64_t Find(double mass) const;

 private:
  int64_t capacity_, leaves_;
  std::vector<double> sum_, min_;
};

}  // namespace loantwin
