#pragma once
// Standard normal CDF and its inverse, used by the Vasicek PD conditioning and the Basel IRB
// capital formula.

#include <cmath>

namespace loantwin {

/// N(x): standard normal cumulative distribution.
inline double NormalCdf(double x) {
  return 0.5 * std::erfc(-x * M_SQRT1_2);
}

/// G(p) = N^-1(p) for p in (0, 1): rational approximation (relative error ~1e-9) refined by one
/// Halley step against NormalCdf. p is clamped to [1e-15, 1 - 1e-15].
double NormalQuantile(double p);

/// Vasicek one-factor conditional PD given quantile = G(pd): N((G(pd) - sqrt(rho) z) /
/// sqrt(1 - rho)). z > 0 is a good state of the economy (lower PD), z < 0 a bad one.
inline double VasicekPdFromQuantile(double quantile, double rho, double z) {
  return NormalCdf((quantile - std::sqrt(rho) * z) / std::sqrt(1.0 - rho));
}
/// The same, with G(pd) computed here (callers conditioning one PD often keep G(pd) instead).
inline double VasicekPd(double pd, double rho, double z) {
  return VasicekPdFromQuantile(NormalQuantile(pd), rho, z);
}

/// Annual probability -> monthly probability with the same survival.
inline double AnnualToMonthly(double p) {
  return 1.0 - std::pow(1.0 - p, 1.0 / 12.0);
}

}  // namespace loantwin
