#include "core/quantile_sketch.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace loantwin {
namespace {

constexpr double kPi = 3.14159265358979323846;

// Scale function k1 and its inverse: centroids are small near q = 0 and q = 1.
double K1(double q, double delta) {
  return delta / (2 * kPi) * std::asin(2 * q - 1);
}
double K1Inverse(double k, double delta) {
  return (std::sin(std::min(std::max(k * 2 * kPi / delta, -kPi / 2), kPi / 2)) + 1) / 2;
}

}  // namespace

QuantileSketch::QuantileSketch(size_t exact_limit, double compression)
    : exact_limit_(exact_limit), compression_(compression) {
  if (exact_limit < 1) throw std::invalid_argument("QuantileSketch: exact_limit must be >= 1");
  if (!(compression >= 20))
    throw std::invalid_argument("QuantileSketch: compression must be >= 20");
}

void QuantileSketch::Add(double value) {
  if (count_ == 0) {
    min_ = max_ = value;
  } else {
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }
  ++count_;
  buffer_.push_back(value);
  if (exact_) {
    if (buffer_.size() > exact_limit_) {
      exact_ = false;
      Compress();
      buffer_.shrink_to_fit();  // from here on it holds 2 x compression values at most
      buffer_.reserve(static_cast<size_t>(2 * compression_));
    }
    return;
  }
  if (buffer_.size() >= static_cast<size_t>(2 * compression_)) Compress();
}

void QuantileSketch::Compress() const {
  if (buffer_.empty()) return;
  std::sort(buffer_.begin(), buffer_.end());
  // One scratch vector per thread for every sketch (a run holds thousands of sketches).
  thread_local std::vector<Centroid> scratch_;
  scratch_.clear();
  // Merge the sorted centroids and the sorted buffer (weight 1 each) by mean.
  size_t i = 0, j = 0;
  while (i < centroids_.size() || j < buffer_.size()) {
    if (j == buffer_.size() || (i < centroids_.size() && centroids_[i].mean <= buffer_[j]))
      scratch_.push_back(centroids_[i++]);
    else
      scratch_.push_back({buffer_[j++], 1.0});
  }
  buffer_.clear();
  double total = 0;
  for (const auto& c : scratch_) total += c.weight;
  centroids_.clear();
  Centroid current = scratch_[0];
  double q0 = 0;
  double q_limit = K1Inverse(K1(q0, compression_) + 1, compression_);
  for (size_t k = 1; k < scratch_.size(); ++k) {
    const Centroid& next = scratch_[k];
    const double q = q0 + (current.weight + next.weight) / total;
    if (q <= q_limit) {
      const double w = current.weight + next.weight;
      current.mean += (next.mean - current.mean) * next.weight / w;
      current.weight = w;
    } else {
      centroids_.push_back(current);
      q0 += current.weight / total;
      q_limit = K1Inverse(K1(q0, compression_) + 1, compression_);
      current = next;
    }
  }
  centroids_.push_back(current);
}

double QuantileSketch::Quantile(double q) const {
  if (count_ == 0) return std::numeric_limits<double>::quiet_NaN();
  q = std::min(std::max(q, 0.0), 1.0);
  if (exact_) {
    std::sort(buffer_.begin(), buffer_.end());
    const double pos = q * static_cast<double>(buffer_.size() - 1);
    const size_t lo = static_cast<size_t>(std::floor(pos));
    const size_t hi = std::min(lo + 1, buffer_.size() - 1);
    return buffer_[lo] + (pos - static_cast<double>(lo)) * (buffer_[hi] - buffer_[lo]);
  }
  if (q == 0) return min_;
  if (q == 1) return max_;
  Compress();
  // Each centroid's mass is centred at its cumulative weight; interpolate between centres, and
  // between min/max and the first/last centre. Rank convention: q * (n - 1) as when exact.
  const double target = q * static_cast<double>(count_ - 1) + 0.5;
  double cumulative = 0;
  double prev_centre = 0.5, prev_mean = min_;
  for (const auto& c : centroids_) {
    const double centre = cumulative + c.weight / 2;
    if (target <= centre) {
      if (centre <= prev_centre) return c.mean;
      const double t = (target - prev_centre) / (centre - prev_centre);
      return prev_mean + std::max(0.0, t) * (c.mean - prev_mean);
    }
    cumulative += c.weight;
    prev_centre = centre, prev_mean = c.mean;
  }
  const double end = static_cast<double>(count_) - 0.5;
  if (end <= prev_centre) return max_;
  return prev_mean + (target - prev_centre) / (end - prev_centre) * (max_ - prev_mean);
}

size_t QuantileSketch::memory_bytes() const {
  return sizeof(*this) + buffer_.capacity() * sizeof(double) +
         centroids_.capacity() * sizeof(Centroid);
}

}  // namespace loantwin
