#pragma once
// A book loaded from a loan tape (loantwin sync): the open loans at the as-of date, per product,
// in the tape's units. The twin converts them to its own units at Reset (twin.cc).

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace loantwin {

inline constexpr int kInitialBookProducts = 5;  // kNumProducts (product.h)

struct TapeLoan {
  std::string id;
  double balance = 0;           ///< current principal, currency
  double original_balance = 0;  ///< at origination (0 = not on the tape)
  double rate = 0;              ///< current annual rate (fraction), the full rate
  double collateral = 0;  ///< home and auto: collateral value today; card: credit limit; currency
  int age = 0;            ///< months on book at the as-of date
  int remaining = 0;      ///< months to maturity (0: revolving)
  int term = 0;           ///< contractual term in months (0: revolving)
  int band = 0;           ///< score band 0 (A) .. 6 (G)
  int months_past_due = 0;
  bool restructured = false;
};

struct InitialBook {
  std::array<std::vector<TapeLoan>, kInitialBookProducts> loans;
  std::string file;   ///< the tape it was read from
  std::string as_of;  ///< YYYY-MM
};

}  // namespace loantwin
