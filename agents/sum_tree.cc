#include "agents/sum_tree.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace loantwin {

SumTree::SumTree(int64_t capacity) : capacity_(capacity), leaves_(1) {
  if (capacity < 1) throw std::invalid_argument("SumTree capacity must be >= 1");
  while (leaves_ < capacity) leaves_ *= 2;
  sum_.assign(2 * leaves_, 0.0);
  min_.assign(2 * leaves_, std::numeric_limits<double>::infinity());
}

void SumTree::Set(int64_t i, double priority) {
  if (i < 0 || i >= capacity_)
    throw std::invalid_argument(fmt::format("SumTree slot {} outside [0, {})", i, capacity_));
  if (!(priority >= 0) || !std::isfinite(priority))
    throw std::invalid_argument(
        fmt::format("SumTree priority {} must be finite and >= 0", priority));
  int64_t node = leaves_ + i;
  sum_[node] = priority;
  min_[node] = priority > 0 ? priority : std::numeric_limits<double>::infinity();
  for (node /= 2; node >= 1; node /= 2) {
    sum_[node] = sum_[2 * node] + sum_[2 * node + 1];
    min_[node] = std::min(min_[2 * node], min_[2 * node + 1]);
  }
}

int64_t SumTree::Find(double mass) const {
  mass = std::clamp(mass, 0.0, std::nextafter(Total(), 0.0));
  int64_t node = 1;
  while (node < leaves_) {
    const int64_t left = 2 * node;
    // Go left while the mass falls inside the left subtree (and it holds any weight).
    if (mass < sum_[left] && sum_[left] > 0) {
      node = left;
    } else {
      mass -= sum_[left];
      node = left + 1;
    }
  }
  int64_t slot = node - leaves_;
  // Rounding can land on an empty slot at the right edge: step back to a weighted one.
  while (slot > 0 && sum_[leaves_ + slot] == 0) --slot;
  return std::min(slot, capacity_ - 1);
}

}  // namespace loantwin
