#pragma once
// Counter-based random numbers: a draw is a pure function of (key, counter), so any instance,
// month and loan can be sampled independently and results do not depend on thread scheduling.
// The mixer is the SplitMix64 finaliser applied to key + golden-ratio * counter (the SplitMix64
// generator evaluated at an arbitrary position).

#include <cmath>
#include <cstdint>

namespace loantwin {

inline uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// Derives a child key; distinct (key, a) pairs give unrelated streams.
inline uint64_t DeriveKey(uint64_t key, uint64_t a) {
  return Mix64(key ^ Mix64(a + 0x632be59bd9b4e019ULL));
}

/// Random bits number `counter` of stream `key`.
inline uint64_t RandomBits(uint64_t key, uint64_t counter) {
  return Mix64(key + 0x9e3779b97f4a7c15ULL * (counter + 1));
}

/// Uniform in [0, 1) from the top 53 bits.
inline double ToUniform(uint64_t bits) {
  return (bits >> 11) * 0x1.0p-53;
}
/// Two uniforms in [0, 1) with 32-bit resolution from one draw (hot loops).
inline float LowUniform(uint64_t bits) {
  return (bits & 0xffffffffu) * 0x1.0p-32f;
}
inline float HighUniform(uint64_t bits) {
  return (bits >> 32) * 0x1.0p-32f;
}

/// A sequential stream over RandomBits, for code that needs a variable number of draws.
class CounterRng {
 public:
  explicit CounterRng(uint64_t key) : key_(key) {}
  uint64_t Bits() { return RandomBits(key_, counter_++); }
  double Uniform() { return ToUniform(Bits()); }
  /// Standard normal (Box-Muller, one value per call).
  double Normal() {
    const double u1 = 1.0 - Uniform();  // (0, 1]
    const double u2 = Uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }
  /// Poisson(mean): multiplication method below 30, normal approximation with continuity
  /// correction above (relative error of the approximation < 1% in the tails we use).
  int64_t Poisson(double mean) {
    if (mean <= 0) return 0;
    if (mean < 30) {
      const double limit = std::exp(-mean);
      double prod = Uniform();
      int64_t n = 0;
      while (prod > limit) {
        ++n;
        prod *= Uniform();
      }
      return n;
    }
    const double x = std::floor(mean + std::sqrt(mean) * Normal() + 0.5);
    return x < 0 ? 0 : static_cast<int64_t>(x);
  }

 private:
  uint64_t key_;
  uint64_t counter_ = 0;
};

}  // namespace loantwin
