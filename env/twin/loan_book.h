#pragma once
// Structure-of-arrays loan book of one product: one row per open loan, no per-loan objects.
// Defaulted and closed loans are removed by in-place compaction during the monthly step.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace loantwin {

/// Per-loan flag bits.
enum LoanFlag : uint8_t {
  kFraudFlag = 1,         ///< first-payment fraud: rolls straight to charge-off, LGD 100%
  kNewFlag = 2,           ///< originated after reset (tracked in cohort statistics)
  kRestructuredFlag = 4,  ///< cured through restructuring (rate concession granted)
};
/// Bits 3..7 of the flags: months of probation left after a cure (0..31; IFRS 9 stage 2).
inline constexpr int kProbationShift = 3;
inline constexpr uint8_t kProbationMask = 0xF8;

struct LoanRow {
  double balance = 0;     ///< outstanding principal
  double rate = 0;        ///< annual rate; for variable-rate products the margin over the index
  double payment = 0;     ///< scheduled monthly annuity payment (fixed-rate amortising)
  double collateral = 0;  ///< home: value in HPI units; auto: value at origination; card: limit
  float pd_orig = 0;      ///< point-in-time annual PD at origination (SICR test)
  int16_t remaining = 0;  ///< months to contractual maturity (0 for revolving)
  int16_t age = 0;        ///< months on book
  uint8_t band = 0;       ///< score band 0 (A) .. 6 (G)
  uint8_t bucket = 0;     ///< Bucket: current, 30, 60, 90+
  uint8_t flags = 0;      ///< LoanFlag bits
  uint8_t term = 0;       ///< index of the product's TermOption
  uint8_t zone = 0;       ///< home: the house-price zone of the collateral (0 without zones)
  uint32_t id = 0;        ///< per product: the opening book 0..n-1, then in origination order
};

struct LoanBook {
  std::vector<double> balance, rate, payment, collateral;
  std::vector<float> pd_orig;
  std::vector<int16_t> remaining, age;
  std::vector<uint8_t> band, bucket, flags, term, zone;
  std::vector<uint32_t> id;

  size_t size() const { return balance.size(); }

  void Clear() { Resize(0); }

  void Reserve(size_t n) {
    balance.reserve(n), rate.reserve(n), payment.reserve(n), collateral.reserve(n);
    pd_orig.reserve(n), remaining.reserve(n), age.reserve(n);
    band.reserve(n), bucket.reserve(n), flags.reserve(n), term.reserve(n), zone.reserve(n);
    id.reserve(n);
  }

  void Resize(size_t n) {
    balance.resize(n), rate.resize(n), payment.resize(n), collateral.resize(n);
    pd_orig.resize(n), remaining.resize(n), age.resize(n);
    band.resize(n), bucket.resize(n), flags.resize(n), term.resize(n), zone.resize(n);
    id.resize(n);
  }

  void Push(const LoanRow& r) {
    balance.push_back(r.balance), rate.push_back(r.rate), payment.push_back(r.payment);
    collateral.push_back(r.collateral), pd_orig.push_back(r.pd_orig);
    remaining.push_back(r.remaining), age.push_back(r.age), band.push_back(r.band);
    bucket.push_back(r.bucket), flags.push_back(r.flags), term.push_back(r.term);
    zone.push_back(r.zone), id.push_back(r.id);
  }

  /// Copies row `src` over row `dst` (compaction).
  void MoveRow(size_t dst, size_t src) {
    balance[dst] = balance[src], rate[dst] = rate[src], payment[dst] = payment[src];
    collateral[dst] = collateral[src], pd_orig[dst] = pd_orig[src];
    remaining[dst] = remaining[src], age[dst] = age[src], band[dst] = band[src];
    bucket[dst] = bucket[src], flags[dst] = flags[src], term[dst] = term[src];
    zone[dst] = zone[src], id[dst] = id[src];
  }
};

}  // namespace loantwin
