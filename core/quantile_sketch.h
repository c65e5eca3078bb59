#pragma once
// Streaming quantiles of a sample too large to keep: exact (every value kept, the same linear
// interpolation as a sorted sample) up to `exact_limit` values, then a merging t-digest
// (Dunning & Ertl, "Computing extremely accurate quantiles using t-digests", 2019, scale function
// k1) whose memory depends on the compression only. Values are added one at a time, so the
// result depends on the values and their order only, never on how a caller batches them.

#include <cstddef>
#include <vector>

namespace loantwin {

class QuantileSketch {
 public:
  /// exact_limit: values kept exactly (>= 1); compression: t-digest delta (>= 20); about
  /// 2 x compression centroids are kept after the limit, so rank errors are of the order of
  /// 1 / compression in the middle of the distribution and much smaller in the tails.
  explicit QuantileSketch(size_t exact_limit = 1000, double compression = 200);

  void Add(double value);
  /// Linear-interpolated quantile, q in [0, 1] (exactly Quantile() of the sample while exact);
  /// NaN when empty.
  double Quantile(double q) const;
  size_t count() const { return count_; }
  bool exact() const { return exact_; }
  double min() const { return min_; }
  double max() const { return max_; }
  /// Bytes held (for the documented memory bounds).
  size_t memory_bytes() const;

 private:
  struct Centroid {
    double mean, weight;
  };
  void Compress() const;

  size_t exact_limit_;
  double compression_;
  bool exact_ = true;
  size_t count_ = 0;
  double min_ = 0, max_ = 0;
  mutable std::vector<double> buffer_;  ///< raw values: all (exact) or the unmerged ones
  mutable std::vector<Centroid> centroids_;
};

}  // namespace loantwin
