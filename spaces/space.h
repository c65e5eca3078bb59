#pragma once
// Observation and action spaces: Discrete, MultiDiscrete and Box, with membership tests, seeded
// sampling and action masks. Plain C++ (no twin, no LibTorch): any environment can use them.
//
// Action masks are bytes (1 = allowed). A Discrete(n) mask has n entries; a MultiDiscrete(nvec)
// mask concatenates one block per dimension, sum(nvec) entries in all.

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/counter_rng.h"

namespace loantwin {

enum class DType { kFloat32, kInt32 };
const char* DTypeName(DType d);

class Discrete {
 public:
  explicit Discrete(int n);
  int n() const { return n_; }
  bool Contains(int32_t a) const { return a >= 0 && a < n_; }
  /// Uniform over allowed actions (all when mask is null); throws if the mask allows none.
  int32_t Sample(CounterRng& rng, const uint8_t* mask = nullptr) const;
  std::string ToString() const;

 private:
  int n_;
};

class MultiDiscrete {
 public:
  explicit MultiDiscrete(std::vector<int> nvec);
  const std::vector<int>& nvec() const { return nvec_; }
  int size() const { return static_cast<int>(nvec_.size()); }
  int mask_width() const { return mask_width_; }
  /// Offset of dimension d's block in a mask.
  int mask_offset(int d) const { return offsets_[d]; }
  bool Contains(const int32_t* a) const;
  /// Samples each dimension uniformly over its allowed values.
  void Sample(CounterRng& rng, int32_t* out, const uint8_t* mask = nullptr) const;
  std::string ToString() const;

 private:
  std::vector<int> nvec_, offsets_;
  int mask_width_ = 0;
};

/// A discrete action space of either kind; Discrete(n) behaves as MultiDiscrete({n}) with a
/// scalar action.
class ActionSpace {
 public:
  ActionSpace(const Discrete& d) : multi_(false), space_({d.n()}) {}  // NOLINT: implicit
  ActionSpace(const MultiDiscrete& m) : multi_(true), space_(m) {}    // NOLINT: implicit
  bool is_multi_discrete() const { return multi_; }
  /// Number of integers in one action (1 for Discrete).
  int action_dims() const { return space_.size(); }
  int mask_width() const { return space_.mask_width(); }
  const MultiDiscrete& dims() const { return space_; }
  bool Contains(const int32_t* a) const { return space_.Contains(a); }
  void Sample(CounterRng& rng, int32_t* out, const uint8_t* mask = nullptr) const {
    space_.Sample(rng, out, mask);
  }
  /// True if every component of `a` is allowed by `mask`; otherwise sets *bad_dim.
  bool Allows(const uint8_t* mask, const int32_t* a, int* bad_dim = nullptr) const;
  std::string ToString() const {
    return multi_ ? space_.ToString() : "Discrete(" + std::to_string(space_.nvec()[0]) + ")";
  }

 private:
  bool multi_;
  MultiDiscrete space_;
};

class Box {
 public:
  /// Bounds per element (size = product of shape); +-infinity allowed.
  Box(std::vector<int> shape, std::vector<float> low, std::vector<float> high,
      DType dtype = DType::kFloat32);
  const std::vector<int>& shape() const { return shape_; }
  int size() const { return static_cast<int>(low_.size()); }
  const std::vector<float>& low() const { return low_; }
  const std::vector<float>& high() const { return high_; }
  DType dtype() const { return dtype_; }
  /// All elements finite and within bounds; sets *bad_index to the first that is not.
  bool Contains(const float* x, int* bad_index = nullptr) const;
  /// Uniform within finite bounds, exponential beyond a finite one, normal when unbounded.
  void Sample(CounterRng& rng, float* out) const;
  std::string ToString() const;

 private:
  std::vector<int> shape_;
  std::vector<float> low_, high_;
  DType dtype_;
};

inline constexpr float kInf = std::numeric_limits<float>::infinity();

/// Named, ordered features of a flat observation vector. Names are stable identifiers
/// ("macro/unemployment", "product/card/charge_off_rate"): they go into export manifests.
class FeatureLayout {
 public:
  /// Appends a feature and returns its index; names must be unique. A feature that scales a
  /// raw quantity records how: observation = (raw - center) / scale (clipped to [low, high]);
  /// features in their own units keep center 0, scale 1.
  int Add(const std::string& name, float low = -kInf, float high = kInf, double center = 0.0,
          double scale = 1.0);
  int size() const { return static_cast<int>(names_.size()); }
  const std::vector<std::string>& names() const { return names_; }
  /// Index of a feature; -1 when unknown.
  int Find(const std::string& name) const;
  Box ToBox() const { return Box({size()}, low_, high_); }
  const std::vector<double>& centers() const { return center_; }
  const std::vector<double>& scales() const { return scale_; }

 private:
  std::vector<std::string> names_;
  std::vector<float> low_, high_;
  std::vector<double> center_, scale_;
};

}  // namespace loantwin
