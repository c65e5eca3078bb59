#pragma once
// The historic backtest: an institution replayed through 2006 Q1 - 2012 Q4 (the
// historic_2006_2012 scenario, Table 1A actuals) and its quarterly charge-off rates compared with
// the Federal Reserve's published rates for US commercial banks (docs/twin-model.md,
// "Historic backtest"). Used by `loantwin backtest` and by the tests, which assert its windows.

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "env/twin/calibration.h"
#include "env/twin/product.h"

namespace loantwin {

inline constexpr int kBacktestQuarters = 28;  // 2006 Q1 .. 2012 Q4

/// "2009Q4" for quarter index 15 (0 = 2006 Q1).
std::string BacktestQuarterName(int quarter);

/// A published quarterly charge-off rate (annualised, net of recoveries, fraction), or < 0 where
/// the sources the docs cite do not give that quarter.
struct PublishedChargeOffs {
  std::array<double, kBacktestQuarters> card{}, home{};
  std::string card_source, home_source;
  /// Other consumer loans (FRED COROCLACBS): the highest quarter of 2008-2011, fraction.
  double other_consumer_peak = 0;
  std::string other_consumer_source;
};
const PublishedChargeOffs& FedChargeOffs2006To2012();

struct BacktestOptions {
  std::string institution = "cu_mid";
  int paths = 200;
  uint64_t seed = 2024;
  int threads = 2;
};

struct BacktestResult {
  /// Mean-path quarterly values (the mean over paths of the quarter's three monthly values).
  std::array<std::array<double, kBacktestQuarters>, kNumProducts> charge_off{};
  std::array<double, kBacktestQuarters> unemployment{}, allowance_to_loans{}, capital_ratio{};
  /// Personal and auto loans together, weighted by their balances: the Federal Reserve's
  /// "other consumer loans" category, which the release does not split further. Zero where the
  /// institution offers neither.
  std::array<double, kBacktestQuarters> other_consumer{};
  std::vector<bool> offered;  ///< per product: in the institution's book
  /// Two-sided windows (docs/twin-model.md); `unit` says how to print the value.
  std::vector<CalibrationCheck> checks;
};

/// Runs the institution through historic_2006_2012 (84 months) under its default levers.
BacktestResult RunHistoricBacktest(const BacktestOptions& options);

}  // namespace loantwin
