#pragma once
// Non-finite numbers in learning stop the run, named: a NaN or infinite loss, gradient norm or
// parameter raises NonFiniteError at the update that produced it (before the optimiser step
// spreads it, and before any checkpoint could hold it). The trainer adds the step and role.

#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

namespace loantwin {

class NonFiniteError : public std::runtime_error {
 public:
  NonFiniteError(std::string quantity, double value);
  /// What was not finite: "loss", "gradient norm", "parameter 3 (shape [64, 5])", ...
  const std::string& quantity() const { return quantity_; }
  double value() const { return value_; }

 private:
  std::string quantity_;
  double value_;
};

/// Throws NonFiniteError(quantity, value) unless `value` is finite.
inline void CheckFinite(const char* quantity, double value) {
  if (!std::isfinite(value)) throw NonFiniteError(quantity, value);
}

/// Throws NonFiniteError naming the first parameter that holds a NaN or an infinity.
void CheckFiniteParameters(const std::vector<torch::Tensor>& params);

/// The global L2 norm of the parameters' gradients (parameters without one count 0).
double GradNorm(const std::vector<torch::Tensor>& params);

}  // namespace loantwin
