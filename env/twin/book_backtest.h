#pragma once
// The twin against a book's actual outcomes (docs/digital-twin.md): monthly loan-level
// performance, the static-pool backtest of a synced institution's as-of book (forecast bands,
// bias, MAPE, coverage, PD calibration by band, population stability), and the maximum-
// likelihood fit of its transition multipliers per product.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "env/twin/institution.h"
#include "env/twin/product.h"

namespace loantwin {

class Twin;

/// How a loan left the book.
enum class LoanExit : int8_t { kNone = 0, kChargedOff, kPaid, kPrepaid };
/// What a twin loan that left the book did: delinquent loans leave only by charge-off; current
/// ones at their last scheduled payment (or a card line paid down) or by prepayment.
LoanExit InferExit(const ProductSpec& s, int bucket, double balance, int remaining);
const char* ExitName(LoanExit e);

/// `loantwin snapshot`: a twin's book at month 0 as a tape (OUT/tape.csv), its month-0 balance
/// sheet (OUT/balance_sheet.yaml) and `months` of monthly loan-level performance
/// (OUT/performance.csv) under the institution's default levers.
struct SnapshotOptions {
  std::string institution = "cu_mid", scenario = "steady_state", out;
  int months = 24;
  uint64_t seed = 1;
  int instance = 0;
};
struct SnapshotSummary {
  std::string institution;
  int64_t opening_loans = 0, rows = 0;
};
SnapshotSummary WriteSnapshot(const SnapshotOptions& o);

/// Monthly outcomes of one product's as-of book in one month (counts of loans by their state at
/// the month's start: 0 current, 1 = 30, 2 = 60, 3 = 90+ days past due).
struct BookMonth {
  double opening = 0, closing = 0, charged_off = 0, prepaid = 0, dq30 = 0, current_opening = 0;
  std::array<int64_t, 4> count{};
  int64_t entries = 0, forward30 = 0, forward60 = 0, cures = 0, prepaid_n = 0, charged_off_n = 0;
  void Add(int bucket, double balance, int new_bucket, LoanExit exit, double new_balance);
  void Merge(const BookMonth& o);
};

/// The compared metrics of a BookMonth.
enum BookMetric : int {
  kBmBalance,
  kBmChargeOffRate,  ///< gross charge-offs x 12 / opening balance
  kBmDq30Rate,       ///< 30+ dpd balance / balance
  kBmEntryRate,      ///< current -> 30 dpd, share of current loans
  kBmRoll30to60,
  kBmRoll60to90,
  kBmCureRate,    ///< 30+ -> current, share of 30+ loans
  kBmPrepayRate,  ///< prepaid balance / current balance (SMM)
  kNumBookMetrics
};
const std::array<const char*, kNumBookMetrics>& BookMetricNames();
/// NaN where the metric's base is empty (no loans in that state).
double BookMetricValue(const BookMonth& m, int metric);

/// A performance file (loan_id,product,month,balance,days_past_due,event,amount) read against
/// the institution's as-of book: per as-of loan and month its state.
struct Performance {
  std::string file;
  int months = 0;  ///< last month in the file
  /// Per product, per as-of loan (the book's order), per month 1..months: months past due
  /// (0..12) if open at the month end, or -1 - LoanExit for the exit month, or -100 if absent.
  std::array<std::vector<int8_t>, kNumProducts> state;
  std::array<std::vector<float>, kNumProducts> balance;
  int64_t rows = 0, new_loan_rows = 0, recovered_rows = 0;
  int8_t At(int p, size_t loan, int month) const { return state[p][loan * months + month - 1]; }
  float BalanceAt(int p, size_t loan, int month) const {
    return balance[p][loan * months + month - 1];
  }
};
/// Reads `path`; ConfigError names row and column of a malformed row. Rows of loans not in the
/// book (originated later) are counted, not used.
Performance LoadPerformance(const std::string& path, const InstitutionConfig& inst);

/// The as-of book's actual outcomes: [product][month - 1].
std::array<std::vector<BookMonth>, kNumProducts> ActualOutcomes(const Performance& perf,
                                                                const InstitutionConfig& inst);

struct BookBacktestOptions {
  std::string scenario;  ///< the macro the actuals lived through
  int months = 0;        ///< 0: the performance file's
  int paths = 200;
  uint64_t seed = 1;
  int threads = 2;
};

struct MetricComparison {
  int product = 0, metric = 0;
  std::vector<double> actual, mean, p05, p95;  ///< per month (NaN where undefined)
  double bias = 0, mape = 0, mae = 0, coverage = 0;
  int months_compared = 0;
};

/// The as-of book's balance in one product and score band, month by month.
struct SegmentComparison {
  int product = 0, band = 0;
  std::vector<double> actual, mean, p05, p95;
  double mape = 0, coverage = 0;
};

struct BandCalibration {
  int product = 0, band = 0;
  int64_t loans = 0, defaults = 0;
  double observed = 0, lo = 0, hi = 0;  ///< observed rate and its Wilson 95% interval
  double predicted = 0;
  bool within() const { return predicted >= lo && predicted <= hi; }
};

struct BookBacktestResult {
  std::string institution, scenario, performance;
  int months = 0, paths = 0, horizon_pd = 0;
  uint64_t seed = 0;
  std::vector<MetricComparison> metrics;
  std::vector<BandCalibration> calibration;
  std::array<double, kNumProducts> psi_band{};  ///< book's band mix vs the preset's applicants
  std::vector<bool> offered;
  /// Mean over products of the transition metrics' MAPE (entry, rolls, cure, prepayment): the
  /// one number fitting lowers.
  double transition_mape = 0;
  /// The same on quarters (each quarter's three months of transitions pooled).
  double quarterly_transition_mape = 0;
  std::vector<SegmentComparison> segments;  ///< balances by product and score band
};

BookBacktestResult RunBookBacktest(std::shared_ptr<const InstitutionConfig> inst,
                                   const Performance& perf, const BookBacktestOptions& options);

/// Maximum-likelihood multipliers of one product's transition rates.
struct FittedMultiplier {
  double value = 1, se = 0;
  int64_t trials = 0, events = 0;
};
struct ProductFit {
  int product = 0;
  FittedMultiplier entry, roll, cure, prepay;
};
/// Fits per product: entry into 30 dpd, the forward rolls (30 -> 60 -> 90), the cures and the
/// prepayment rate, each a multiplier on the twin's conditional monthly probability of that
/// transition given the loan's state and the month's macro (replayed with `seed`, instance 0).
std::vector<ProductFit> FitMultipliers(std::shared_ptr<const InstitutionConfig> inst,
                                       const Performance& perf, const std::string& scenario,
                                       uint64_t seed);

/// The institution YAML with the fitted multipliers applied to its products (`base:` the
/// institution directory, product specs overridden).
std::string FittedInstitutionYaml(const InstitutionConfig& inst, const std::string& base,
                                  const std::vector<ProductFit>& fits);

}  // namespace loantwin
