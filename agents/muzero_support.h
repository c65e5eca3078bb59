#pragma once
// Categorical value and reward representation of MuZero (Schrittwieser et al. 2020, appendix F):
// a scalar x is squashed by the invertible transform h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x
// (Pohlen et al. 2018) and represented as a "two-hot" distribution over the integer support
// {-S, ..., S}: the two neighbouring atoms share the mass in proportion to closeness. Networks
// predict logits over the 2S + 1 atoms, trained by cross-entropy against two-hot targets; the
// expectation over the atoms, mapped back through h^-1, is the scalar prediction.
//
// A value whose h(x) falls outside [-S, S] cannot be represented: TwoHot throws instead of
// clamping, so a support sized too small for the task's returns is an error, not a silent bias.

#include <torch/torch.h>

#include <cstdint>
#include <stdexcept>

namespace loantwin {

constexpr double kHEpsilon = 1e-3;

double TransformH(double x, double eps = kHEpsilon);
/// Exact inverse of TransformH (closed form).
double InverseH(double y, double eps = kHEpsilon);

class CategoricalSupport {
 public:
  /// Atoms -size .. size (2 size + 1 of them), size >= 1.
  explicit CategoricalSupport(int size);
  int size() const { return size_; }
  int atoms() const { return 2 * size_ + 1; }
  /// The largest |x| representable: InverseH(size).
  double max_abs_value() const;
  /// Two-hot targets [n, atoms] of scalars [n]; std::out_of_range naming the value if one does
  /// not fit the support.
  torch::Tensor TwoHot(const torch::Tensor& values) const;
  /// The same into out [n, atoms] (zeroed here) for n scalars.
  void TwoHotInto(const float* values, int64_t n, float* out) const;
  /// Scalars [n] from logits [n, atoms]: InverseH(sum softmax(logits) * atom).
  torch::Tensor Decode(const torch::Tensor& logits) const;
  /// Same for one row of probabilities (plain C++, for the search).
  double DecodeProbabilities(const float* probs) const;
  /// Same for one row of logits (plain C++, in double: Decode's float arithmetic loses about
  /// four digits to cancellation in the inverse of h, so the two agree to ~1e-4, not 1e-6).
  float DecodeLogits(const float* logits) const;

 private:
  /// Adds x's two-hot mass into one zeroed row.
  void TwoHotRow(double x, float* row) const;

  int size_;
};

/// The smallest support size whose range covers returns up to max_abs_return.
int SupportSizeFor(double max_abs_return);

}  // namespace loantwin
