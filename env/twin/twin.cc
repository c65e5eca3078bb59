#include "env/twin/twin.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

#include "core/config_error.h"
#include "core/counter_rng.h"
#include "core/normal_dist.h"
#include "env/twin/allowance.h"
#include "env/twin/applicant_groups.h"
#include "env/twin/zones.h"

namespace loantwin {
namespace {

// ---- Collection / roll-rate model (docs/twin-model.md, "Delinquency") ----
// The product's monthly roll-forward and cure rates (ProductSpec) move with the cycle and the
// collection intensity. Per CollectionIntensity: multipliers on roll-forward (30 and 60 dpd)
// and cure (every bucket), cost per account-month.
constexpr double kForwardMult[kNumCollectionIntensities] = {1.25, 1.0, 0.80, 0.60};
constexpr double kCureMult[kNumCollectionIntensities] = {0.75, 1.0, 1.30, 1.60};
constexpr double kCollectionCostPerAccount[kNumCollectionIntensities] = {0, 8, 30, 60};
constexpr double kMaxHazard = 0.95;
// Basel III final PD floors (CRE31.16): 0.05% for retail, 0.10% for QRRE revolvers.
constexpr double kPdFloorRetail = 0.0005, kPdFloorRevolving = 0.0010;
// Downturn LGD for capital: the US supervisory mapping LGD = 0.08 + 0.92 x expected LGD
// (Basel II NPR, 71 FR 55830, 2006); defaulted exposures hold max(0, downturn LGD - best
// estimate EL) = 0.08 x (1 - LGD) per unit of EAD (CRE31.3 / CRE36.88 on K for defaulted).
constexpr double kDownturnLgdAdd = 0.08;
constexpr double kOutputFloor = 0.725;        // Basel III final: RWA >= 72.5% of standardised RWA
constexpr double kLiquidRiskWeight = 0.20;    // agency securities and bank deposits
constexpr double kDefaultedRiskWeight = 1.0;  // standardised, past due 90+
constexpr int kSmmTableSize = kPrepaySmmTableSize;  // coupon/market ratio 0.50 .. 2.00 by 0.01
constexpr double kHistoricHpiGrowth = 0.03;         // for collateral of the initial book
constexpr double kHpiScale = 0.10;  // HPI growth shortfall that lowers z_p by hpi_beta

struct RollRates {
  // Monthly transitions out of 30 and 60 dpd (forward one bucket, cure, else stay) and the cure
  // rate from 90+ (a 90+ loan that does not cure is a month further past due).
  std::array<double, kNumBuckets> forward{}, cure{};
  // Probability that a loan this many months past due is eventually charged off.
  std::array<double, kMaxChargeOffMonths + 1> eventual{};
  int charge_off_month = 4;  // months past due at which the loan is charged off
};

/// The product's roll rates under `intensity`, with roll-forward scaled by `cycle` and cures
/// by 1 / cycle.
RollRates ComputeRollRates(const ProductSpec& s,
                           const std::array<int, kNumDelinquentBuckets>& intensity, double cycle) {
  RollRates r;
  r.charge_off_month = s.charge_off_months();
  for (int k = kDpd30; k <= kDpd60; ++k) {
    double f = s.roll_forward[k - 1] * kForwardMult[intensity[k - 1]] * cycle;
    double c = s.cure[k - 1] * kCureMult[intensity[k - 1]] / cycle;
    if (f + c > 0.98) {
      const double scale = 0.98 / (f + c);
      f *= scale, c *= scale;
    }
    r.forward[k] = f, r.cure[k] = c;
  }
  r.cure[kDpd90] = std::min(0.98, s.cure[2] * kCureMult[intensity[2]] / cycle);
  r.forward[kDpd90] = 1 - r.cure[kDpd90];
  double e = 1;  // charged off at charge_off_month
  for (int m = r.charge_off_month - 1; m >= kDpd90; --m) r.eventual[m] = e *= r.forward[kDpd90];
  for (int m = std::min<int>(kDpd60, r.charge_off_month - 1); m >= kDpd30; --m)
    r.eventual[m] = e *= r.forward[m] / (r.forward[m] + r.cure[m]);
  r.eventual[0] = r.eventual[1];
  return r;
}

}  // namespace

double EventualChargeOff(const ProductSpec& s,
                         const std::array<int, kNumDelinquentBuckets>& collection) {
  return ComputeRollRates(s, collection, 1.0).eventual[1];
}

namespace {

double BaselCorrelation(BaselClass c, double pd) {
  switch (c) {
    case BaselClass::kMortgage:
      return 0.15;
    case BaselClass::kRevolving:
      return 0.04;
    case BaselClass::kOtherRetail: {
      const double w = (1 - std::exp(-35 * pd)) / (1 - std::exp(-35.0));
      return 0.03 * w + 0.16 * (1 - w);
    }
  }
  return 0.15;
}

/// IRB capital per unit of EAD x LGD.
double IrbCapitalUnit(BaselClass c, double pd) {
  pd = std::clamp(pd, c == BaselClass::kRevolving ? kPdFloorRevolving : kPdFloorRetail, 0.9999);
  const double r = BaselCorrelation(c, pd);
  static const double kQuantile999 = NormalQuantile(0.999);
  return NormalCdf((NormalQuantile(pd) + std::sqrt(r) * kQuantile999) / std::sqrt(1 - r)) - pd;
}

/// OTS prepayment S-curve, CPR as a function of coupon / market rate.
double OtsCpr(double ratio) {
  return 0.2406 - 0.1389 * std::atan(5.952 * (1.089 - ratio));
}

double Annuity(double balance, double annual_rate, int months) {
  if (months <= 0) return balance;
  const double i = annual_rate / 12;
  if (i < 1e-9) return balance / months;
  return balance * i / (1 - std::pow(1 + i, -months));
}

enum class Amortisation { kAnnuity, kLinear, kRevolving };
enum class Collateral { kNone, kHome, kAuto };

Amortisation AmortisationOf(const ProductSpec& s) {
  if (s.revolving()) return Amortisation::kRevolving;
  return s.variable_rate ? Amortisation::kLinear : Amortisation::kAnnuity;
}
Collateral CollateralOf(int p, const ProductSpec& s) {
  if (s.ltv_mean <= 0) return Collateral::kNone;
  return p == kHome || s.depreciation == 0 ? Collateral::kHome : Collateral::kAuto;
}

}  // namespace

struct ProductMonth {
  const ProductSpec* spec = nullptr;
  double ref_rate = 0;                // reference rate this month
  double rate_add = 0;                // added to stored rates (variable-rate products)
  std::array<float, 2 * 8> hazard{};  // [fraud * 8 + band] monthly roll into 30 dpd
  BandArray pd12{};                   // point-in-time annual PD
  // Expected loss per unit EAD x LGD of a performing loan by remaining months (revolving: [0]):
  // lifetime and next-12-months (allowance.h, LossCurves).
  std::array<std::array<float, kMaxLossMonths + 1>, kNumBands> life{}, twelve{};
  int max_months = 0;  // longest remaining term the curves cover this month (revolving: 0)
  bool cecl = true;
  uint8_t probation_cure = 0, probation_restructured = 0;  // already shifted into flag bits
  BandArray inv_market_rate{};  // 1 / market rate of a new loan per band (prepay ratio)
  std::array<float, kSmmTableSize> smm{};
  RollRates roll;
  float redefault = 1;  // hazard multiplier of restructured loans
  std::array<bool, kNumBuckets> restructure{};
  double hpi = 1;
  const double* zone_hpi = nullptr;     // home collateral's index by zone (Twin::zone_hpi)
  const float* depreciation = nullptr;  // collateral value factor by age 0..480 (auto)
  double sicr_multiple = 2;
  double concession = 0;
};

Twin::Twin(std::shared_ptr<const InstitutionConfig> institution,
           std::shared_ptr<const Scenario> scenario, uint64_t seed, int instance_id,
           TwinOptions options)
    : institution_(std::move(institution)),
      scenario_(std::move(scenario)),
      seed_(seed),
      instance_id_(instance_id),
      options_(options),
      macro_(scenario_) {
  macro_.set_rate_shift(options_.rate_shift_bp / 100);
  for (int p = 0; p < kNumProducts; ++p) {
    const ProductSpec& s = institution_->products[p].spec;
    eventual_base_[p] = ComputeRollRates(s, institution_->default_collection, 1.0).eventual[1];
    // Tables that depend on the product alone, computed once (not every product-month).
    const double norm = OtsCpr(1.0);
    for (int i = 0; i < kSmmTableSize; ++i) {
      const double ratio = 0.5 + 0.01 * i;
      const double shape = (1 - s.prepay_incentive) + s.prepay_incentive * OtsCpr(ratio) / norm;
      const double cpr = std::clamp(s.prepay_cpr * shape, 0.0, 0.95);
      smm_table_[p][i] = static_cast<float>(1 - std::pow(1 - cpr, 1.0 / 12));
    }
    if (s.depreciation > 0) {
      depreciation_table_[p].resize(481);
      for (int a = 0; a <= 480; ++a)
        depreciation_table_[p][a] = static_cast<float>(std::pow(1 - s.depreciation, a));
    }
    for (int b = 0; b < kNumBands; ++b) {
      k_unit_[p][b] = IrbCapitalUnit(s.basel_class, s.pd[b]);
      pd_quantile_[p][b] = NormalQuantile(s.pd[b]);
      pd_long_run_[p][b] = VasicekPdFromQuantile(pd_quantile_[p][b], s.cycle_rho, 0);
    }
    cohorts_[p].resize(s.terms.size());
  }
  Reset(0);
}

int64_t Twin::num_loans() const {
  int64_t n = 0;
  for (const auto& b : books_) n += static_cast<int64_t>(b.size());
  return n;
}

double Twin::CreditFactor() const {
  // z = 0 in steady state; unemployment above its (adaptive) reference and GDP growth below
  // its reference push z down: this month's recorded terms.
  const auto& terms = factor_history_[month_ % factor_history_.size()];
  return -terms[0] - terms[1];
}

void Twin::RecordCreditFactor() {
  const CreditCycle& cc = institution_->cycle;
  // House prices: 12-month growth below kHistoricHpiGrowth, per 10 pp.
  const double hpi = macro_.state().hpi;
  double& year_ago = hpi_history_[month_ % 12];
  const double hpi_term = (kHistoricHpiGrowth - (hpi / year_ago - 1)) / kHpiScale;
  year_ago = hpi;
  factor_history_[month_ % factor_history_.size()] = {
      (smoothed_unemployment_ - unemployment_anchor_) / cc.unemployment_scale,
      (cc.gdp_ref - smoothed_gdp_) / cc.gdp_scale, month_ == 0 ? 0.0 : hpi_term};
}

double Twin::ProductCreditFactor(int p) const {
  const ProductSpec& s = institution_->products[p].spec;
  // Before month 0 the economy is taken as it was at month 0.
  const int month = std::max(0, month_ - s.cycle_lag_months);
  const auto& terms = factor_history_[month % factor_history_.size()];
  return -s.unemployment_beta * terms[0] - s.gdp_beta * terms[1] - s.hpi_beta * terms[2];
}

double Twin::MemberGrowth() const {
  return std::pow(1 + institution_->member_growth, month_ / 12.0);
}

void Twin::PrepareProductMonth(int p, const Levers& levers, ProductMonth* pm) const {
  const ProductSpec& s = institution_->products[p].spec;
  const MacroState& m = macro_.state();
  pm->spec = &s;
  pm->ref_rate = s.rate_index == RateIndex::kPolicy ? m.policy_rate : m.mortgage_rate;
  pm->rate_add = s.variable_rate ? pm->ref_rate : 0.0;
  pm->hpi = m.hpi;
  pm->zone_hpi = zone_hpi_.data();
  pm->sicr_multiple = institution_->sicr_multiple;
  pm->concession = institution_->restructure_concession;
  const AllowanceRules& ar = institution_->allowance;
  pm->cecl = ar.method == AllowanceMethod::kCecl;
  pm->probation_cure = static_cast<uint8_t>(ar.probation_months << kProbationShift);
  pm->probation_restructured =
      static_cast<uint8_t>(ar.restructured_probation_months << kProbationShift);

  const double z = ProductCreditFactor(p);
  // Payment shock: rise of the reference rate over the last 12 months (variable-rate only).
  const auto& hist = s.rate_index == RateIndex::kPolicy ? policy_history_ : mortgage_history_;
  const double rise_pp = std::max(0.0, (pm->ref_rate - hist[month_ % 12]) * 100);
  const double shock = s.variable_rate ? 1 + s.payment_shock * rise_pp : 1.0;

  for (int k = 1; k < kNumBuckets; ++k)
    pm->restructure[k] = levers.collection_intensity[k - 1] == kRestructure;
  pm->redefault = static_cast<float>(s.redefault_multiplier);
  double pd_mix = 0, pd_mix_long_run = 0;
  // PD at z = 0: the cycle's reference and the allowance's reversion.
  const BandArray& pd_long_run = pd_long_run_[p];
  for (int b = 0; b < kNumBands; ++b) {
    const double pd = VasicekPdFromQuantile(pd_quantile_[p][b], s.cycle_rho, z);
    pd_mix += s.applicant_mix[b] * pd;
    pd_mix_long_run += s.applicant_mix[b] * pd_long_run[b];
    pm->pd12[b] = pd;
    pm->hazard[b] =
        static_cast<float>(std::min(kMaxHazard, AnnualToMonthly(pd) / eventual_base_[p] * shock));
    pm->hazard[8 + b] = 1.0f;  // fraud: misses the first payment
    pm->inv_market_rate[b] =
        1.0 / std::max(0.005, pm->ref_rate + s.market_spread + s.band_premium[b]);
  }
  // Roll rates move with the cycle: forward x R, cures / R, R = (mean PD now / at z = 0)^beta.
  const double cycle =
      std::clamp(std::pow(pd_mix / std::max(pd_mix_long_run, 1e-12), s.roll_cycle_beta), 0.25, 4.0);
  pm->roll = ComputeRollRates(s, levers.collection_intensity, cycle);
  // Lifetime-loss curves: the forecast PD (today's credit factor, or each weighted scenario's)
  // over the forecast window, reversion to the long-run PD (z = 0), on the contractual schedule
  // less prepayments at the product's base speed, discounted at the coupon.
  const Repayment repayment = s.revolving()     ? Repayment::kRevolving
                              : s.variable_rate ? Repayment::kLinear
                                                : Repayment::kAnnuity;
  // Term loans: curves up to the longest remaining term this month can hold (the book's longest
  // plus a restructuring's 12 months, or a new loan's term), so short-term products stay cheap.
  int max_months = kRevolvingLossMonths;
  if (!s.revolving()) {
    int longest = 1;
    for (const TermOption& t : s.terms) longest = std::max(longest, t.months);
    const auto& rem = books_[p].remaining;
    if (!rem.empty()) longest = std::max(longest, *std::max_element(rem.begin(), rem.end()) + 12);
    max_months = std::min(longest, kMaxLossMonths);
  }
  pm->max_months = s.revolving() ? 0 : max_months;
  const double smm_base = 1 - std::pow(1 - std::clamp(s.prepay_cpr, 0.0, 0.95), 1.0 / 12);
  static const std::vector<AllowanceScenario> kToday = {AllowanceScenario{"today", 1, 0}};
  const auto& scenarios = ar.scenarios.empty() ? kToday : ar.scenarios;
  // All bands' curves of a scenario in one pass (LossCurvesMany), weighted into the month's.
  std::array<std::vector<double>, kNumBands> paths;
  std::array<std::array<float, kMaxLossMonths + 1>, kNumBands> life, twelve;
  std::array<float*, kNumBands> life_out, twelve_out;
  BandArray rates;
  const int n_curve = pm->max_months + 1;
  for (int b = 0; b < kNumBands; ++b) {
    rates[b] = 1 / pm->inv_market_rate[b];
    life_out[b] = life[b].data(), twelve_out[b] = twelve[b].data();
    std::fill_n(pm->life[b].begin(), n_curve, 0.0f);
    std::fill_n(pm->twelve[b].begin(), n_curve, 0.0f);
  }
  for (const AllowanceScenario& sc : scenarios) {
    for (int b = 0; b < kNumBands; ++b) {
      const double h = std::min(kMaxHazard, AnnualToMonthly(VasicekPdFromQuantile(
                                                pd_quantile_[p][b], s.cycle_rho, z + sc.z_shift)) *
                                                shock);
      ForecastMonthlyPd(1 - std::pow(1 - h, 12), pd_long_run[b], ar, max_months, &paths[b]);
    }
    LossCurvesMany(kNumBands, paths.data(), smm_base, rates.data(), repayment, s.payment_rate,
                   ar.discount, max_months, life_out.data(), twelve_out.data());
    for (int b = 0; b < kNumBands; ++b)
      for (int n = 0; n < n_curve; ++n) {
        pm->life[b][n] += static_cast<float>(sc.weight) * life[b][n];
        pm->twelve[b][n] += static_cast<float>(sc.weight) * twelve[b][n];
      }
  }
  pm->smm = smm_table_[p];
  if (!depreciation_table_[p].empty()) pm->depreciation = depreciation_table_[p].data();
}

namespace {

/// The month's constants of a product's loan loop, copied out of ProductMonth / ProductSpec into
/// a local: the loop's stores to the byte columns (bucket, flags) may alias any object the
/// compiler cannot see the whole of, so constants read through `pm` would be reloaded per loan.
struct LoanMonth {
  const ProductMonth* pm;
  double rate_add, payment_rate, draw_rate, negative_equity_beta, lgd, sale_cost, ccf;
  double sicr_multiple, concession;
  const double* zone_hpi;
  const float* depreciation;
  int max_months, charge_off_month;
  float redefault;
  bool cecl;
  uint8_t probation_cure, probation_restructured;

  explicit LoanMonth(const ProductMonth& m)
      : pm(&m),
        rate_add(m.rate_add),
        payment_rate(m.spec->payment_rate),
        draw_rate(m.spec->draw_rate),
        negative_equity_beta(m.spec->negative_equity_beta),
        lgd(m.spec->lgd),
        sale_cost(m.spec->sale_cost),
        ccf(m.spec->ccf),
        sicr_multiple(m.sicr_multiple),
        concession(m.concession),
        zone_hpi(m.zone_hpi),
        depreciation(m.depreciation),
        max_months(m.max_months),
        charge_off_month(m.roll.charge_off_month),
        redefault(m.redefault),
        cecl(m.cecl),
        probation_cure(m.probation_cure),
        probation_restructured(m.probation_restructured) {}
};

/// LGD of one loan given its balance and collateral.
template <Collateral kColl>
inline double LoanLgd(const LoanMonth& lm, double balance, double collateral, int age, int zone,
                      double* ltv) {
  if constexpr (kColl == Collateral::kNone) {
    return lm.lgd;
  } else {
    double value;
    if constexpr (kColl == Collateral::kHome)
      value = collateral * lm.zone_hpi[zone];
    else
      value = collateral * lm.depreciation[std::min(age, 480)];
    *ltv = balance / std::max(value, 1e-9);
    return std::max(lm.lgd, 1 - value * (1 - lm.sale_cost) / std::max(balance, 1e-9));
  }
}

/// Adds an open loan to the month's stocks: buckets, the allowance, IRB inputs.
template <Amortisation kAmort>
inline void MeasureLoan(const LoanMonth& lm, double balance, double limit, double lgd, int bucket,
                        int band, float pd_orig, int remaining, uint8_t flags, ProductFlows* f) {
  const ProductMonth& pm = *lm.pm;
  double ead = balance;
  if constexpr (kAmort == Amortisation::kRevolving) ead += lm.ccf * std::max(0.0, limit - balance);
  f->exposure += ead;
  f->count[bucket] += 1;
  f->bucket_balance[bucket] += balance;
  f->closing += balance;
  const double el = ead * lgd;
  // CECL holds no allowance on unconditionally cancellable undrawn limits (ASC 326-20-30-11).
  const double el_allowance = lm.cecl ? balance * lgd : el;
  if (bucket == kCurrent) {
    const int n = kAmort == Amortisation::kRevolving ? 0 : std::clamp(remaining, 1, lm.max_months);
    const bool probation = (flags & kProbationMask) != 0;
    if (lm.cecl) {
      f->ecl[0] += el_allowance * pm.life[band][n];
      if (probation) f->stage2_balance += balance;
    } else if (probation || pm.pd12[band] > lm.sicr_multiple * pd_orig) {
      f->ecl[1] += el_allowance * pm.life[band][n];
      f->stage2_balance += balance;
    } else {
      f->ecl[0] += el_allowance * pm.twelve[band][n];
    }
    f->expected_loss += el * pm.pd12[band];
    f->ead_lgd_current[band] += el;
    f->ead_current[band] += ead;
  } else if (bucket < kDpd90) {
    f->ecl[1] += el_allowance * pm.roll.eventual[bucket];
    f->expected_loss += el * pm.roll.eventual[bucket];
    f->stage2_balance += balance;
    f->ead_lgd_delinquent[bucket - 1] += el;
    f->ead_delinquent[bucket - 1] += ead;
  } else {
    f->ecl[2] += el_allowance;
    f->expected_loss += el;
    f->ead_defaulted += ead;
  }
}

/// One month of a product's open loans: payments, prepayments, roll rates, cures and
/// restructuring, charge-offs; closed and charged-off loans are compacted out of the book.
/// Results are those of a loop over LoanBook's columns row by row; the columns are read through
/// local pointers and the flows summed into a local copy (same additions in the same order) so
/// that the compiler keeps them in registers.
template <Amortisation kAmort, Collateral kColl>
void StepLoans(const ProductMonth& pm, uint64_t key, LoanBook& bk, ProductFlows* out,
               std::vector<CohortCounts>& cohorts_vec) {
  const ProductSpec& s = *pm.spec;
  const LoanMonth lm(pm);
  const size_t n = bk.size();
  const float inv_season = 1.0f / static_cast<float>(s.prepay_seasoning);
  double* const balance = bk.balance.data();
  double* const rates = bk.rate.data();
  double* const payment = bk.payment.data();
  double* const collateral = bk.collateral.data();
  float* const pd_orig = bk.pd_orig.data();
  int16_t* const remaining = bk.remaining.data();
  int16_t* const ages = bk.age.data();
  uint8_t* const bands = bk.band.data();
  uint8_t* const buckets = bk.bucket.data();
  uint8_t* const flag_col = bk.flags.data();
  uint8_t* const terms = bk.term.data();
  uint8_t* const zones = bk.zone.data();
  uint32_t* const ids = bk.id.data();
  CohortCounts* const cohorts = cohorts_vec.data();
  ProductFlows acc = *out;
  ProductFlows* const f = &acc;
  size_t w = 0;
  for (size_t i = 0; i < n; ++i) {
    double bal = balance[i];
    int bucket = buckets[i];
    const int band = bands[i];
    uint8_t flags = flag_col[i];
    const int age = ages[i];
    int rem = remaining[i];
    double rate_i = rates[i];
    double payment_i = payment[i];
    const double coll = collateral[i];
    const uint64_t bits = RandomBits(key, i);
    const float u1 = LowUniform(bits), u2 = HighUniform(bits);
    f->opening += bal;

    double ltv = 0;
    const double lgd =
        (flags & kFraudFlag) ? 1.0 : LoanLgd<kColl>(lm, bal, coll, age, zones[i], &ltv);
    bool closed = false;
    if (bucket == kCurrent) {
      float hazard = pm.hazard[(flags & kFraudFlag) * 8 + band];
      if (flags & kRestructuredFlag) hazard *= lm.redefault;
      if constexpr (kColl == Collateral::kHome)
        hazard *= static_cast<float>(1 + lm.negative_equity_beta * std::max(0.0, ltv - 1));
      if (u1 < hazard) {
        bucket = kDpd30;  // missed payment: no interest recognised, no principal
      } else {
        if (flags & kProbationMask) flags -= 1 << kProbationShift;  // a month of probation served
        const double rate = std::max(0.0, rate_i + lm.rate_add);
        const double interest = bal * rate / 12;
        f->interest += interest;
        double principal;
        if constexpr (kAmort == Amortisation::kRevolving) {
          principal = bal * lm.payment_rate;
          const double draw = lm.draw_rate * std::max(0.0, coll - bal);
          f->originations += draw;
          bal += draw;
        } else if constexpr (kAmort == Amortisation::kLinear) {
          principal = rem <= 1 ? bal : bal / rem;
        } else {
          principal = rem <= 1 ? bal : std::min(bal, std::max(0.0, payment_i - interest));
        }
        if constexpr (kAmort != Amortisation::kRevolving) rem -= 1;
        bal -= principal;
        if (bal < 0.01) {
          principal += bal;
          bal = 0;
          closed = true;
          if (flags & kNewFlag) cohorts[terms[i]].matured += 1;
        } else {
          float smm;
          if constexpr (kAmort == Amortisation::kAnnuity) {
            const int idx = static_cast<int>((rate * pm.inv_market_rate[band] - 0.5) * 100 + 0.5);
            smm = pm.smm[std::clamp(idx, 0, kSmmTableSize - 1)];
          } else {
            smm = pm.smm[50];  // ratio 1: variable-rate loans have no refinancing incentive
          }
          smm *= std::min(1.0f, static_cast<float>(age + 1) * inv_season);
          if (u2 < smm) {
            f->prepayments += bal;
            bal = 0;
            closed = true;
            if (flags & kNewFlag) cohorts[terms[i]].prepaid += 1;
          }
        }
        f->principal += principal;
      }
    } else {
      // 30 and 60 dpd: roll forward, cure or stay; 90+: cure, or a month further past due.
      bool cured = false;
      if (flags & kFraudFlag) {
        bucket += 1;
      } else if (bucket < kDpd90) {
        const double fwd = pm.roll.forward[bucket];
        if (u1 < fwd)
          bucket += 1;
        else
          cured = u1 < fwd + pm.roll.cure[bucket];
      } else if (u1 < pm.roll.cure[kDpd90]) {
        cured = true;
      } else {
        bucket += 1;
      }
      if (bucket >= lm.charge_off_month) {
        // Charge-off (120 / 180 dpd). Unsecured: the balance, recoveries collected later.
        // Secured: written down to the collateral's value less selling costs, which moves to
        // foreclosed assets until the sale.
        if constexpr (kColl == Collateral::kNone) {
          f->charge_offs += bal;
          f->recovery_due += bal * (1 - lgd);
        } else {
          f->charge_offs += bal * lgd;
          f->foreclosed += bal * (1 - lgd);
        }
        if (flags & kNewFlag) {
          cohorts[terms[i]].charged_off += 1;
          cohorts[terms[i]].charged_off_amount += bal;
        }
        bal = 0;
        closed = true;
      } else if (cured) {
        if (pm.restructure[std::min<int>(bucket, kDpd90)]) {
          // Restructuring cure: rate concession and 12 more months to repay.
          rate_i = std::max(0.0, rate_i - lm.concession);
          if constexpr (kAmort != Amortisation::kRevolving) {
            rem = std::min(480, rem + 12);
            payment_i = Annuity(bal, rate_i + lm.rate_add, rem);
          }
          flags |= kRestructuredFlag;
        }
        flags = static_cast<uint8_t>(
            (flags & ~kProbationMask) |
            ((flags & kRestructuredFlag) ? lm.probation_restructured : lm.probation_cure));
        bucket = kCurrent;
      }
    }
    if (closed) continue;
    if (bucket == kDpd30 || bucket == kDpd60) {
      // Interest accrues (unpaid, capitalised) until 90 dpd, when the loan goes on nonaccrual.
      const double accrued = bal * std::max(0.0, rate_i + lm.rate_add) / 12;
      bal += accrued;
      f->interest += accrued;
      f->accrued += accrued;
    }
    MeasureLoan<kAmort>(lm, bal, coll, lgd, std::min<int>(bucket, kDpd90), band, pd_orig[i],
                        static_cast<int16_t>(rem), flags, f);
    // The row, compacted over the closed ones before it.
    balance[w] = bal;
    rates[w] = rate_i;
    payment[w] = payment_i;
    remaining[w] = static_cast<int16_t>(rem);
    ages[w] = static_cast<int16_t>(std::min(age + 1, 32000));
    buckets[w] = static_cast<uint8_t>(bucket);
    flag_col[w] = flags;
    if (w != i) {
      collateral[w] = coll;
      pd_orig[w] = pd_orig[i];
      bands[w] = static_cast<uint8_t>(band);
      terms[w] = terms[i];
      zones[w] = zones[i];
      ids[w] = ids[i];
    }
    ++w;
  }
  *out = acc;
  bk.Resize(w);
}

template <Amortisation kAmort, Collateral kColl>
void MeasureLoans(const ProductMonth& pm, const LoanBook& bk, size_t begin, ProductFlows* f) {
  const LoanMonth lm(pm);
  for (size_t i = begin; i < bk.size(); ++i) {
    double ltv = 0;
    const double lgd =
        (bk.flags[i] & kFraudFlag)
            ? 1.0
            : LoanLgd<kColl>(lm, bk.balance[i], bk.collateral[i], bk.age[i], bk.zone[i], &ltv);
    MeasureLoan<kAmort>(lm, bk.balance[i], bk.collateral[i], lgd,
                        std::min<int>(bk.bucket[i], kDpd90), bk.band[i], bk.pd_orig[i],
                        bk.remaining[i], bk.flags[i], f);
  }
}

/// Calls fn.template operator()<kAmort, kColl>() for the product's loan kind.
template <typename Fn>
void DispatchKind(int p, const ProductSpec& s, Fn&& fn) {
  const Amortisation a = AmortisationOf(s);
  const Collateral c = CollateralOf(p, s);
  if (a == Amortisation::kRevolving)
    return fn.template operator()<Amortisation::kRevolving, Collateral::kNone>();
  if (a == Amortisation::kLinear) {
    if (c == Collateral::kNone)
      return fn.template operator()<Amortisation::kLinear, Collateral::kNone>();
    if (c == Collateral::kHome)
      return fn.template operator()<Amortisation::kLinear, Collateral::kHome>();
    return fn.template operator()<Amortisation::kLinear, Collateral::kAuto>();
  }
  if (c == Collateral::kNone)
    return fn.template operator()<Amortisation::kAnnuity, Collateral::kNone>();
  if (c == Collateral::kHome)
    return fn.template operator()<Amortisation::kAnnuity, Collateral::kHome>();
  return fn.template operator()<Amortisation::kAnnuity, Collateral::kAuto>();
}

}  // namespace

namespace {

struct StepRun {
  const ProductMonth& pm;
  uint64_t key;
  LoanBook& bk;
  ProductFlows* f;
  std::vector<CohortCounts>& cohorts;
  template <Amortisation A, Collateral C>
  void operator()() const {
    StepLoans<A, C>(pm, key, bk, f, cohorts);
  }
};

struct MeasureRun {
  const ProductMonth& pm;
  const LoanBook& bk;
  size_t begin;
  ProductFlows* f;
  template <Amortisation A, Collateral C>
  void operator()() const {
    MeasureLoans<A, C>(pm, bk, begin, f);
  }
};

}  // namespace

void Twin::StepBook(int p, const ProductMonth& pm, uint64_t key, ProductFlows* f) {
  DispatchKind(p, *pm.spec, StepRun{pm, key, books_[p], f, cohorts_[p]});
}

void Twin::MeasureBook(int p, const ProductMonth& pm, size_t begin, ProductFlows* f) const {
  DispatchKind(p, *pm.spec, MeasureRun{pm, books_[p], begin, f});
  f->eventual_dq = {pm.roll.eventual[kDpd30], pm.roll.eventual[kDpd60]};
}

void Twin::ScheduleRecoveries(int p, double hpi, ProductFlows* f) {
  // Collect what falls due this month, then schedule this month's charge-offs and write-downs.
  const ProductSpec& s = institution_->products[p].spec;
  RecoveryPipeline& pl = pipeline_[p];
  const int slot = month_ % kPipelineSlots;
  const bool home = CollateralOf(p, s) == Collateral::kHome;
  f->recoveries = pl.cash[slot];
  f->reo_sold = pl.carry[slot];
  f->reo_proceeds = pl.units[slot] * (home ? hpi : 1.0);
  pl.cash[slot] = pl.carry[slot] = pl.units[slot] = 0;
  const int months = s.recovery_months;
  if (f->recovery_due > 0)
    for (int j = 1; j <= months; ++j)
      pl.cash[(month_ + j) % kPipelineSlots] += f->recovery_due / months;
  if (f->foreclosed > 0) {
    const int due = (month_ + months) % kPipelineSlots;
    pl.carry[due] += f->foreclosed;
    // Home: sold at the HPI of the sale month; vehicles: depreciated over the timeline.
    pl.units[due] +=
        home ? f->foreclosed / hpi : f->foreclosed * std::pow(1 - s.depreciation, months);
  }
}

void Twin::SeedRecoveries(double hpi) {
  // Steady state at reset: the charge-offs of the months before month 0 (the book's expected
  // monthly defaults at z = 0) still being collected or sold.
  for (int p = 0; p < kNumProducts; ++p) {
    RecoveryPipeline& pl = pipeline_[p];
    pl = RecoveryPipeline{};
    const ProductSpec& s = institution_->products[p].spec;
    const LoanBook& bk = books_[p];
    BandArray monthly_pd{};
    for (int b = 0; b < kNumBands; ++b) monthly_pd[b] = AnnualToMonthly(s.pd[b]);
    double defaults = 0;
    for (size_t i = 0; i < bk.size(); ++i) defaults += bk.balance[i] * monthly_pd[bk.band[i]];
    const double recovered = defaults * (1 - s.lgd);
    const int months = s.recovery_months;
    const Collateral coll = CollateralOf(p, s);
    for (int j = 1; j <= months; ++j) {
      const int slot = j % kPipelineSlots;
      if (coll == Collateral::kNone) {
        pl.cash[slot] = recovered * (months - j + 1) / months;
      } else {
        pl.carry[slot] = recovered;
        pl.units[slot] = coll == Collateral::kHome ? recovered / hpi
                                                   : recovered * std::pow(1 - s.depreciation, j);
      }
    }
  }
  SumPipelines();
}

void Twin::SumPipelines() {
  pending_recoveries_ = foreclosed_ = 0;
  for (const RecoveryPipeline& pl : pipeline_)
    for (int j = 0; j < kPipelineSlots; ++j)
      pending_recoveries_ += pl.cash[j], foreclosed_ += pl.carry[j];
}

namespace {

struct TermMix {
  double weight;  // normalised term weight
  BandArray mix;  // normalised band mix of applicants for this term
};

std::vector<TermMix> TermMixes(const ProductSpec& s) {
  double total = 0;
  for (const auto& t : s.terms) total += t.weight;
  std::vector<TermMix> out;
  for (const auto& t : s.terms) {
    TermMix tm{t.weight / total, t.has_band_mix ? t.band_mix : s.applicant_mix};
    const double sum = std::accumulate(tm.mix.begin(), tm.mix.end(), 0.0);
    for (double& m : tm.mix) m /= sum;
    out.push_back(tm);
  }
  return out;
}

/// A categorical draw: the first index whose cumulative normalised weight exceeds u (the last
/// if none does). The thresholds are computed once, for loops that draw many times from one set
/// of weights.
class IndexSampler {
 public:
  IndexSampler(const double* weights, int n) : acc_(n) {
    double total = 0;
    for (int i = 0; i < n; ++i) total += weights[i];
    double acc = 0;
    for (int i = 0; i < n; ++i) acc += weights[i] / total, acc_[i] = acc;
  }
  int operator()(double u) const {
    const int n = static_cast<int>(acc_.size());
    for (int i = 0; i < n; ++i)
      if (u < acc_[i]) return i;
    return n - 1;
  }

 private:
  std::vector<double> acc_;
};

/// The home-zone draw of an institution with zones (none without: every loan in zone 0).
std::optional<IndexSampler> ZoneSampler(const HomeZones& hz) {
  if (!hz.zones) return std::nullopt;
  return std::optional<IndexSampler>(std::in_place, hz.mix.data(), static_cast<int>(hz.mix.size()));
}

/// The zone of the loan keyed `key` (Twin::DrawZone).
uint8_t DrawZoneWith(const std::optional<IndexSampler>& zones, uint64_t key) {
  return zones ? static_cast<uint8_t>((*zones)(ToUniform(RandomBits(key, 0)))) : 0;
}

}  // namespace

void Twin::Reset(uint64_t episode) {
  episode_key_ = DeriveKey(DeriveKey(DeriveKey(seed_, 0x6c6f616e74776e), instance_id_), episode);
  macro_.Reset(DeriveKey(episode_key_, 0x6d6163726f));
  month_ = 0;
  invariant_breaches_ = 0;
  first_invariant_breach_.clear();
  const MacroState& m = macro_.Step(0);
  smoothed_unemployment_ = m.unemployment;
  smoothed_gdp_ = m.gdp_growth;
  unemployment_anchor_ = institution_->cycle.unemployment_ref;
  // The year before month 0: house prices grew at the historic rate.
  for (int k = 0; k < 12; ++k)
    hpi_history_[k] = m.hpi * std::pow(1 + kHistoricHpiGrowth, (k - 12) / 12.0);
  RecordCreditFactor();
  policy_history_.fill(m.policy_rate);
  mortgage_history_.fill(m.mortgage_rate);
  for (auto& c : cohorts_) std::fill(c.begin(), c.end(), CohortCounts{});

  // Baseline application flow: the one that keeps each product's account count flat.
  for (int p = 0; p < kNumProducts; ++p) {
    const ProductLine& line = institution_->products[p];
    const ProductSpec& s = line.spec;
    base_apps_[p] = 0;
    if (!line.offered) continue;
    if (line.applications_per_month > 0) {
      base_apps_[p] = line.applications_per_month;
      continue;
    }
    // Expected life per term option (closed form of the survival sum).
    double life = 0, approval = 0;
    const auto mixes = TermMixes(s);
    for (size_t t = 0; t < mixes.size(); ++t) {
      double pd = 0, share = 0;
      for (int b = 0; b <= s.default_cutoff; ++b) {
        pd += mixes[t].mix[b] * AnnualToMonthly(s.pd[b]);
        share += mixes[t].mix[b];
      }
      const double q = 1 - std::pow(1 - s.prepay_cpr, 1.0 / 12) + pd / std::max(share, 1e-12);
      const int months = s.terms[t].months;
      approval += mixes[t].weight * share;
      life += mixes[t].weight * (months > 0 ? (1 - std::pow(1 - q, months)) / q : 1 / q);
    }
    base_apps_[p] =
        line.arrival_multiplier * line.initial_loans / (life * std::max(approval, 1e-9));
  }

  // Home collateral's zones start at their month-0 index (1), or follow the national one.
  national_hpi_ = m.hpi;
  const int zones = institution_->home_zones.zones ? institution_->home_zones.zones->size() : 1;
  zone_log_hpi_.assign(zones, 0.0);
  zone_hpi_.assign(zones, 1.0);
  if (!institution_->home_zones.zones) zone_hpi_[0] = m.hpi;
  BuildInitialBook(DeriveKey(episode_key_, 0x626f6f6b));

  // Opening balance sheet around the initial book and its allowance.
  const Levers defaults = DefaultLevers(*institution_);
  double loans = 0, allowance = 0;
  for (int p = 0; p < kNumProducts; ++p) {
    flows_[p] = ProductFlows{};
    if (books_[p].size() == 0) continue;
    ProductMonth pm;
    PrepareProductMonth(p, defaults, &pm);
    ProductFlows f;
    MeasureBook(p, pm, 0, &f);
    flows_[p] = f;
    loans += f.closing;
    allowance += f.ecl[0] + f.ecl[1] + f.ecl[2];
  }
  SeedRecoveries(m.hpi);
  allowance -= pending_recoveries_;
  // A book whose lifetime allowance (undrawn limits included) reaches its drawn balance would
  // open with negative assets and deposits: a preset error, refused before any month runs.
  if (!(loans - allowance > 0)) {
    std::string worst;
    for (int p = 0; p < kNumProducts; ++p) {
      const ProductFlows& f = flows_[p];
      const double ecl = f.ecl[0] + f.ecl[1] + f.ecl[2];
      if (books_[p].size() > 0 && ecl >= 0.5 * f.closing)
        worst += fmt::format("{}{}: allowance {:.4g} on loans {:.4g}", worst.empty() ? "" : "; ",
                             kProductNames[p], ecl, f.closing);
    }
    throw ConfigError(fmt::format(
        "institution {}{}: the opening loss allowance ({:.4g}) is not below the opening loans "
        "({:.4g}), so the balance sheet would open with negative assets and deposits ({}); lower "
        "pd, fraud_rate, lgd or ccf, or raise the drawn balances (initial_utilisation, "
        "draw_rate): undrawn card limits carry allowance too",
        institution_->name, institution_->file.empty() ? "" : " (" + institution_->file + ")",
        allowance, loans, worst.empty() ? "every product" : worst));
  }
  const InstitutionConfig& inst = *institution_;
  const double total_assets = (loans - allowance + foreclosed_) / (1 - inst.liquid_share);
  allowance_ = allowance;
  equity_ = inst.equity_to_assets * total_assets;
  const double borrowed = inst.borrowings_share * total_assets;
  AlmReset(inst.alm, inst.liquid_term_share, inst.deposit_growth, inst.deposit_beta,
           inst.deposit_spread, m, inst.liquid_share * total_assets,
           total_assets - equity_ - borrowed, &alm_);
  alm_.wholesale = borrowed;
  securities_value_ = alm_.securities.Total();  // coupons at today's curve: fair value = par
  securities_duration_ = alm_.securities.Duration(m, 0, inst.alm.securities_spread);
  shortfall_ = 0, securities_gains_ = 0;
  complex_ =
      inst.capital.complex >= 0 ? inst.capital.complex == 1 : total_assets > kNcuaComplexAssets;
  // Operational-risk capital needs a year of gross income: start from the book's run rate.
  double interest = 0;
  for (int p = 0; p < kNumProducts; ++p) {
    const ProductSpec& s = institution_->products[p].spec;
    const double add = s.variable_rate
                           ? (s.rate_index == RateIndex::kPolicy ? m.policy_rate : m.mortgage_rate)
                           : 0.0;
    const LoanBook& bk = books_[p];
    for (size_t i = 0; i < bk.size(); ++i)
      if (bk.bucket[i] == kCurrent)
        interest += bk.balance[i] * std::max(0.0, bk.rate[i] + add) / 12;
  }
  AlmState opening = alm_;
  AlmFlows af;
  AlmAccrue(inst.alm, inst.deposit_beta, inst.deposit_spread, inst.liquid_yield_spread,
            inst.wholesale_spread, m, 0, &opening, &af);
  gross_income_history_.fill(std::max(0.0, interest + af.liquid_income - af.funding));
  // The same pledged collateral as every month: current first-lien home loans (Totals).
  capacity_ = BorrowingCapacity(inst.alm, m, 0, alm_, Totals().mortgage_current, total_assets);
  RefreshEve();
}

void Twin::StepZones(const MacroState& m) {
  const HomeZones& hz = institution_->home_zones;
  if (!hz.zones) {
    zone_hpi_[0] = m.hpi;
  } else {
    const ZoneSet& zs = *hz.zones;
    double normals[32];
    CounterRng rng(DeriveKey(DeriveKey(episode_key_, 0x686f6d657a6f6e65), month_));
    for (int z = 0; z < zs.size(); ++z) normals[z] = rng.Normal();
    StepZoneHpi(zs, std::log(m.hpi / national_hpi_), normals, zone_log_hpi_.data());
    for (int z = 0; z < zs.size(); ++z) zone_hpi_[z] = std::exp(zone_log_hpi_[z]);
  }
  national_hpi_ = m.hpi;
}

uint8_t Twin::DrawZone(uint64_t key) const {
  return DrawZoneWith(ZoneSampler(institution_->home_zones), key);
}

void Twin::LoadInitialBook() {
  const MacroState& m = macro_.state();
  const InitialBook& book = *institution_->book;
  for (int p = 0; p < kNumProducts; ++p) {
    LoanBook& bk = books_[p];
    bk.Clear();
    const auto& loans = book.loans[p];
    next_id_[p] = static_cast<uint32_t>(loans.size());
    if (loans.empty()) continue;
    const ProductSpec& s = institution_->products[p].spec;
    const double ref = s.rate_index == RateIndex::kPolicy ? m.policy_rate : m.mortgage_rate;
    const Amortisation amort = AmortisationOf(s);
    const Collateral coll = CollateralOf(p, s);
    bk.Reserve(loans.size() + loans.size() / 4);
    for (size_t j = 0; j < loans.size(); ++j) {
      const TapeLoan& l = loans[j];
      LoanRow r;
      r.balance = l.balance;
      // Variable-rate loans store their margin over the reference rate.
      r.rate = s.variable_rate ? l.rate - ref : l.rate;
      r.remaining = static_cast<int16_t>(l.remaining);
      r.age = static_cast<int16_t>(std::min(l.age, 32000));
      r.band = static_cast<uint8_t>(l.band);
      r.bucket = static_cast<uint8_t>(l.months_past_due);
      r.flags = l.restructured ? kRestructuredFlag : 0;
      r.pd_orig = static_cast<float>(s.pd[l.band]);
      // The term option nearest the loan's term (cohort statistics and curve lengths).
      int best = 0;
      for (size_t t = 1; t < s.terms.size(); ++t)
        if (std::abs(s.terms[t].months - l.term) < std::abs(s.terms[best].months - l.term))
          best = static_cast<int>(t);
      r.term = static_cast<uint8_t>(best);
      if (amort == Amortisation::kAnnuity) r.payment = Annuity(l.balance, l.rate, l.remaining);
      // Collateral in the twin's units: home in house-price-index units, auto at its value at
      // origination (depreciated with age), card the credit limit.
      if (coll == Collateral::kHome) {
        r.zone = DrawZone(DeriveKey(DeriveKey(episode_key_, 0x7a6f6e65), j));
        r.collateral = l.collateral / zone_hpi_[r.zone];
      } else if (coll == Collateral::kAuto)
        r.collateral = l.collateral / depreciation_table_[p][std::min(l.age, 480)];
      else if (amort == Amortisation::kRevolving)
        r.collateral = l.collateral;
      r.id = static_cast<uint32_t>(j);
      bk.Push(r);
    }
  }
}

double Twin::CollateralValue(int p, size_t i) const {
  const ProductSpec& s = institution_->products[p].spec;
  const LoanBook& bk = books_[p];
  switch (CollateralOf(p, s)) {
    case Collateral::kHome:
      return bk.collateral[i] * zone_hpi_[bk.zone[i]];
    case Collateral::kAuto:
      return bk.collateral[i] * depreciation_table_[p][std::min<int>(bk.age[i], 480)];
    default:
      return 0;
  }
}

double Twin::LossGivenDefault(int p, size_t i) const {
  const ProductSpec& s = institution_->products[p].spec;
  const LoanBook& bk = books_[p];
  if (bk.flags[i] & kFraudFlag) return 1.0;
  if (CollateralOf(p, s) == Collateral::kNone) return s.lgd;
  const double value = CollateralValue(p, i);
  return std::max(s.lgd, 1 - value * (1 - s.sale_cost) / std::max(bk.balance[i], 1e-9));
}

void Twin::BuildInitialBook(uint64_t key) {
  if (institution_->book) {
    LoadInitialBook();
    return;
  }
  const MacroState& m = macro_.state();
  for (int p = 0; p < kNumProducts; ++p) {
    LoanBook& bk = books_[p];
    bk.Clear();
    next_id_[p] = static_cast<uint32_t>(institution_->products[p].initial_loans);
    const ProductLine& line = institution_->products[p];
    if (!line.offered || line.initial_loans == 0) continue;
    const ProductSpec& s = line.spec;
    const auto mixes = TermMixes(s);
    std::vector<double> term_w;
    for (const auto& tm : mixes) term_w.push_back(tm.weight);
    const double ref = s.rate_index == RateIndex::kPolicy ? m.policy_rate : m.mortgage_rate;
    const Amortisation amort = AmortisationOf(s);
    const Collateral coll = CollateralOf(p, s);
    // Stationary shares of months past due per band at z = 0 under the default collection.
    const RollRates roll = ComputeRollRates(s, institution_->default_collection, 1.0);
    const int states = roll.charge_off_month;
    std::array<std::array<double, kMaxChargeOffMonths>, kNumBands> state_share{};
    for (int b = 0; b < kNumBands; ++b) {
      const double h = std::min(kMaxHazard, AnnualToMonthly(s.pd[b]) / eventual_base_[p]);
      std::array<double, kMaxChargeOffMonths> x{};
      x[0] = 1;
      for (int k = 1; k < states; ++k)
        x[k] = k == 1   ? h / (roll.forward[1] + roll.cure[1])
               : k == 2 ? roll.forward[1] * x[1] / (roll.forward[2] + roll.cure[2])
               : k == 3 ? roll.forward[2] * x[2]
                        : x[k - 1] * roll.forward[kDpd90];
      const double total = std::accumulate(x.begin(), x.end(), 0.0);
      for (int k = 0; k < states; ++k) state_share[b][k] = x[k] / total;
    }
    CounterRng rng(DeriveKey(key, p));
    bk.Reserve(static_cast<size_t>(line.initial_loans * 1.3));
    // Draws and powers shared by many loans, computed once per product (the same values).
    const IndexSampler term_sampler(term_w.data(), static_cast<int>(term_w.size()));
    std::vector<IndexSampler> band_samplers, state_samplers;
    for (const TermMix& tm : mixes) band_samplers.emplace_back(tm.mix.data(), s.default_cutoff + 1);
    for (int b = 0; b < kNumBands; ++b) state_samplers.emplace_back(state_share[b].data(), states);
    const std::optional<IndexSampler> zone_sampler =
        coll == Collateral::kHome ? ZoneSampler(institution_->home_zones) : std::nullopt;
    constexpr int kMaxAge = 481;
    std::vector<double> age_pow(kNumBands * kMaxAge, 0.0), hpi_pow(kMaxAge, 0.0);
    std::vector<char> age_pow_set(kNumBands * kMaxAge, 0), hpi_pow_set(kMaxAge, 0);
    std::vector<double> annuity_den(kNumBands * s.terms.size(), 0.0);
    std::vector<char> annuity_den_set(annuity_den.size(), 0);
    for (int j = 0; j < line.initial_loans; ++j) {
      LoanRow r;
      r.term = static_cast<uint8_t>(term_sampler(rng.Uniform()));
      r.band = static_cast<uint8_t>(band_samplers[r.term](rng.Uniform()));
      const int months = s.terms[r.term].months;
      r.age = static_cast<int16_t>(rng.Uniform() * (months > 0 ? months : 60));
      const double amount = s.mean_amount * std::exp(s.amount_sigma * rng.Normal() -
                                                     0.5 * s.amount_sigma * s.amount_sigma);
      const double full_rate = std::max(0.005, ref + s.default_spread + s.band_premium[r.band]);
      r.rate = s.variable_rate ? full_rate - ref : full_rate;
      if (amort == Amortisation::kRevolving) {
        r.collateral = amount;
        const double util = s.draw_rate / (s.payment_rate + s.draw_rate);
        r.balance = amount * util;
      } else if (amort == Amortisation::kLinear) {
        r.balance = amount * (months - r.age) / months;
        r.remaining = static_cast<int16_t>(months - r.age);
      } else {
        // Annuity(amount, full_rate, months) and (1 + i)^age, their powers by band, term, age.
        const double i = full_rate / 12;
        if (months <= 0) {
          r.payment = amount;
        } else if (i < 1e-9) {
          r.payment = amount / months;
        } else {
          const size_t c = r.band * s.terms.size() + r.term;
          if (!annuity_den_set[c])
            annuity_den[c] = 1 - std::pow(1 + i, -months), annuity_den_set[c] = 1;
          r.payment = amount * i / annuity_den[c];
        }
        double g;
        if (r.age < kMaxAge) {
          const size_t c = r.band * kMaxAge + r.age;
          if (!age_pow_set[c]) age_pow[c] = std::pow(1 + i, r.age), age_pow_set[c] = 1;
          g = age_pow[c];
        } else {
          g = std::pow(1 + i, r.age);
        }
        r.balance = amount * g - r.payment * (g - 1) / i;
        r.remaining = static_cast<int16_t>(months - r.age);
      }
      r.balance = std::max(r.balance, 1.0);
      const double ltv = std::clamp(s.ltv_mean + s.ltv_sd * rng.Normal(), 0.3, 1.5);
      if (coll == Collateral::kHome) {
        r.zone = DrawZoneWith(zone_sampler,
                              DeriveKey(DeriveKey(key, 0x7a6f6e65), static_cast<uint64_t>(j)));
        double hpi_factor;
        if (r.age < kMaxAge) {
          if (!hpi_pow_set[r.age])
            hpi_pow[r.age] = std::pow(1 + kHistoricHpiGrowth, -r.age / 12.0),
            hpi_pow_set[r.age] = 1;
          hpi_factor = hpi_pow[r.age];
        } else {
          hpi_factor = std::pow(1 + kHistoricHpiGrowth, -r.age / 12.0);
        }
        r.collateral = amount / ltv / hpi_factor;
      } else if (coll == Collateral::kAuto)
        r.collateral = amount / ltv;
      r.pd_orig = static_cast<float>(s.pd[r.band]);
      r.bucket = static_cast<uint8_t>(state_samplers[r.band](rng.Uniform()));
      r.id = static_cast<uint32_t>(j);
      bk.Push(r);
    }
  }
}

void Twin::Originate(int p, const ProductMonth& pm, const Levers& levers, uint64_t key,
                     ProductFlows* f) {
  const ProductLine& line = institution_->products[p];
  if (!line.offered) return;
  const ProductSpec& s = line.spec;
  const CreditCycle& cc = institution_->cycle;
  const double over_market_pp = (levers.rate_spread[p] - s.market_spread) * 100;
  const double price = over_market_pp > 0 ? std::exp(-s.price_elasticity * over_market_pp)
                                          : std::min(1.25, 1 - 0.05 * over_market_pp);
  const double demand = std::exp(cc.demand_gdp_beta * (smoothed_gdp_ - cc.gdp_ref));
  const double flow =
      base_apps_[p] * MemberGrowth() * levers.origination_budget[p] * price * demand;
  if (flow <= 0) return;
  const int cutoff = levers.approval_cutoff[p];
  const Amortisation amort = AmortisationOf(s);
  const Collateral coll = CollateralOf(p, s);
  const double fraud_rate = std::min(1.0, s.fraud_rate * macro_.state().fraud_multiplier);
  const auto mixes = TermMixes(s);
  const double funding = std::max(
      0.0, institution_->deposit_beta * macro_.state().policy_rate + institution_->deposit_spread);
  CounterRng rng(key);
  LoanBook& bk = books_[p];
  const std::optional<IndexSampler> zone_sampler =
      coll == Collateral::kHome ? ZoneSampler(institution_->home_zones) : std::nullopt;
  for (size_t t = 0; t < mixes.size(); ++t) {
    const int months = s.terms[t].months;
    for (int b = 0; b < kNumBands; ++b) {
      const int64_t n = rng.Poisson(flow * mixes[t].weight * mixes[t].mix[b]);
      f->applications += n;
      // The lens draws the applicants' groups from its own stream (nothing here changes).
      const uint64_t lens_key =
          lens_ != nullptr ? DeriveKey(key, 0x67726f7570 + t * kNumBands + b) : 0;
      if (b > cutoff) {
        if (lens_ != nullptr)
          lens_->Observe(p, mixes[t].mix, b, n, false, 0, 0, funding, s.lgd, lens_key);
        continue;
      }
      double cell_amount = 0, cell_rate = 0;
      // The cell's rate and its annuity's power (Annuity's, computed once per cell).
      const double full_rate =
          std::max(0.005, pm.ref_rate + levers.rate_spread[p] + s.band_premium[b]);
      const double monthly = full_rate / 12;
      const double annuity_den =
          n > 0 && amort == Amortisation::kAnnuity && months > 0 && monthly >= 1e-9
              ? 1 - std::pow(1 + monthly, -months)
              : 0.0;
      for (int64_t j = 0; j < n; ++j) {
        LoanRow r;
        r.term = static_cast<uint8_t>(t);
        r.band = static_cast<uint8_t>(b);
        const double amount = s.mean_amount * std::exp(s.amount_sigma * rng.Normal() -
                                                       0.5 * s.amount_sigma * s.amount_sigma);
        r.rate = full_rate - pm.rate_add;
        cell_amount += amount, cell_rate = full_rate;
        if (amort == Amortisation::kRevolving) {
          r.collateral = amount;
          r.balance = amount * s.initial_utilisation;
        } else {
          r.balance = amount;
          r.remaining = static_cast<int16_t>(months);
          if (amort == Amortisation::kAnnuity)
            r.payment = annuity_den != 0 ? amount * monthly / annuity_den
                                         : Annuity(amount, full_rate, months);
        }
        const double ltv = std::clamp(s.ltv_mean + s.ltv_sd * rng.Normal(), 0.3, 1.5);
        if (coll == Collateral::kHome) {
          r.zone = DrawZoneWith(zone_sampler, DeriveKey(DeriveKey(key, 0x7a6f6e65), next_id_[p]));
          r.collateral = amount / ltv / pm.zone_hpi[r.zone];
        } else if (coll == Collateral::kAuto)
          r.collateral = amount / ltv;
        r.pd_orig = static_cast<float>(pm.pd12[b]);
        r.flags = kNewFlag | (rng.Uniform() < fraud_rate ? kFraudFlag : 0);
        r.id = next_id_[p]++;
        bk.Push(r);
        f->originations += r.balance;
        f->fees += s.origination_fee * r.balance;
        f->approvals += 1;
        CohortCounts& c = cohorts_[p][t];
        c.originated += 1;
        c.originated_amount += r.balance;
      }
      if (lens_ != nullptr)
        lens_->Observe(p, mixes[t].mix, b, n, true, cell_rate, cell_amount, funding, s.lgd,
                       lens_key);
    }
  }
}

void Twin::Step(const Levers& requested, double* out) {
  ValidateLevers(requested);
  const Levers levers = ApplyRiskAppetite(requested);
  const InstitutionConfig& inst = *institution_;
  ++month_;
  const MacroState& m = macro_.Step(month_);
  StepZones(m);
  const double alpha = inst.cycle.smoothing;
  smoothed_unemployment_ = alpha * m.unemployment + (1 - alpha) * smoothed_unemployment_;
  smoothed_gdp_ = alpha * m.gdp_growth + (1 - alpha) * smoothed_gdp_;
  if (inst.cycle.adaptation_months > 0)
    unemployment_anchor_ += (smoothed_unemployment_ - unemployment_anchor_) *
                            (1 - std::exp2(-1.0 / inst.cycle.adaptation_months));
  RecordCreditFactor();
  const uint64_t month_key = DeriveKey(episode_key_, static_cast<uint64_t>(month_));

  const double loans_open = [&] {
    double s = 0;
    for (const auto& f : flows_) s += f.closing;
    return s;
  }();
  const double foreclosed_open = foreclosed_;
  double collection_cost = 0, servicing = 0, origination_cost = 0, marketing = 0, fees = 0;
  for (int p = 0; p < kNumProducts; ++p) {
    ProductFlows& f = flows_[p];
    f = ProductFlows{};
    if (!inst.products[p].offered && books_[p].size() == 0) continue;
    const ProductSpec& s = inst.products[p].spec;
    ProductMonth pm;
    PrepareProductMonth(p, levers, &pm);
    if (options_.record_transitions) {
      ProductTransitions& tr = transitions_[p];
      for (int b = 0; b < kNumBands; ++b) tr.hazard[b] = pm.hazard[b];
      tr.redefault = pm.redefault;
      tr.forward = pm.roll.forward;
      tr.cure = pm.roll.cure;
      tr.inv_market_rate = pm.inv_market_rate;
      std::copy(pm.smm.begin(), pm.smm.end(), tr.smm.begin());
      tr.hpi = pm.hpi;
    }
    StepBook(p, pm, DeriveKey(month_key, 16 + p), &f);
    const size_t first_new = books_[p].size();
    Originate(p, pm, levers, DeriveKey(month_key, 32 + p), &f);
    MeasureBook(p, pm, first_new, &f);
    ScheduleRecoveries(p, m.hpi, &f);
    const int64_t accounts = f.count[0] + f.count[1] + f.count[2] + f.count[3];
    const int64_t delinquent = f.count[1] + f.count[2] + f.count[3];
    for (int k = 1; k < kNumBuckets; ++k)
      collection_cost += f.count[k] * kCollectionCostPerAccount[levers.collection_intensity[k - 1]];
    servicing += s.servicing_cost * accounts;
    origination_cost += s.origination_cost * f.approvals;
    marketing += s.marketing_cost * f.applications;
    f.fees += s.annual_fee / 12 * accounts + s.late_fee * delinquent;
    fees += f.fees;
  }
  policy_history_[month_ % 12] = m.policy_rate;
  mortgage_history_[month_ % 12] = m.mortgage_rate;

  // ---- accounting ----
  const BookTotals t = Totals();
  MonthFlows mf;
  for (const ProductFlows& f : flows_) {
    mf.interest += f.interest;
    mf.originations += f.originations;
    mf.principal += f.principal;
    mf.prepayments += f.prepayments;
    mf.charge_offs += f.charge_offs;
    mf.recoveries += f.recoveries;
    mf.reo_proceeds += f.reo_proceeds;
    mf.accrued += f.accrued;
    mf.reo_losses += f.reo_sold - f.reo_proceeds;
    mf.applications += f.applications;
    mf.approvals += f.approvals;
  }
  mf.fees = fees;
  mf.collection_cost = collection_cost;
  // The allowance nets the recoveries still to collect on charged-off loans (ASC 326-20-30-13).
  SumPipelines();
  const double allowance_new = t.ecl[0] + t.ecl[1] + t.ecl[2] - pending_recoveries_;
  mf.provision = allowance_new - allowance_ + mf.charge_offs - mf.recoveries;
  AlmFlows af;
  const double deposits_open = alm_.deposits();
  const double securities_open = alm_.securities.Total();
  AlmAccrue(inst.alm, inst.deposit_beta, inst.deposit_spread, inst.liquid_yield_spread,
            inst.wholesale_spread, m, month_, &alm_, &af);
  mf.liquid_income = af.liquid_income;
  mf.funding = af.funding;
  mf.nii = mf.interest + mf.liquid_income - mf.funding;
  mf.opex = inst.fixed_cost_per_member * inst.members * MemberGrowth() / 12 + servicing +
            origination_cost + marketing + collection_cost;
  const double pretax = mf.nii + fees - mf.opex - mf.provision - mf.reo_losses;
  mf.tax = inst.tax_rate * std::max(0.0, pretax);
  mf.net_income = pretax - mf.tax;
  mf.loans_open = loans_open;
  mf.equity_open = equity_;
  mf.assets_open = liquid() + loans_open - allowance_ + foreclosed_open;
  mf.earning_open = liquid() + loans_open;

  const double allowance_open = allowance_;
  equity_ += mf.net_income;
  allowance_ = allowance_new;
  // Accrued interest is income but not cash: it is in the loan balances.
  alm_.cash += mf.interest - mf.accrued + mf.liquid_income - mf.funding + fees - mf.opex - mf.tax +
               mf.principal + mf.prepayments + mf.recoveries + mf.reo_proceeds - mf.originations;
  AlmDeposits(inst.alm, inst.deposit_growth, m, month_, &alm_, &af);
  // Dividend policy: pay out this month's earnings that would lift equity / assets above the
  // target; (E - D) / (A - D) = target gives D = (E - target A) / (1 - target).
  if (inst.net_worth_target > 0 && mf.net_income > 0) {
    const double assets = alm_.cash + alm_.securities.Total() + t.loans - allowance_ + foreclosed_;
    const double excess = (equity_ - inst.net_worth_target * assets) / (1 - inst.net_worth_target);
    mf.dividends = std::clamp(excess, 0.0, mf.net_income);
    equity_ -= mf.dividends;
    alm_.cash -= mf.dividends;
  }
  // Liquidity management (alm.h): cash below the floor draws the secured line up to its
  // capacity, then sells securities, then borrows in an emergency; above it, repays and invests.
  const double total_book =
      alm_.cash + alm_.securities.Total() + t.loans - allowance_ + foreclosed_;
  capacity_ = BorrowingCapacity(inst.alm, m, month_, alm_, t.mortgage_current, total_book);
  AlmManageLiquidity(inst.alm, inst.liquid_term_share, m, month_,
                     inst.min_liquidity * alm_.deposits(), capacity_, &alm_, &af);
  // Gains and losses realised on securities sold are income (not taxed in the twin).
  mf.securities_gains = af.securities_gains;
  mf.net_income += af.securities_gains;
  equity_ += af.securities_gains;
  securities_gains_ = af.securities_gains;
  shortfall_ = af.shortfall;
  const Ladder::Valuation securities =
      alm_.securities.ValueAndDuration(m, month_, inst.alm.securities_spread);
  securities_value_ = securities.value;
  securities_duration_ = securities.duration;
  if (month_ % inst.alm.eve_every_months == 0) RefreshEve();
  const double retained = mf.net_income - mf.dividends;
  gross_income_history_[month_ % 12] = std::max(0.0, mf.nii + fees);
  WriteMetrics(t, mf, out);

  if (!options_.check_invariants) return;
  if (!options_.count_invariant_breaches)
    return CheckInvariants(flows_, mf, allowance_open, foreclosed_open, retained, deposits_open,
                           securities_open, af);
  try {
    CheckInvariants(flows_, mf, allowance_open, foreclosed_open, retained, deposits_open,
                    securities_open, af);
  } catch (const InvariantError& e) {
    if (invariant_breaches_++ == 0) first_invariant_breach_ = e.what();
  }
}

BookTotals Twin::Totals() const {
  BookTotals t;
  for (int p = 0; p < kNumProducts; ++p) {
    const ProductFlows& f = flows_[p];
    const ProductSpec& s = institution_->products[p].spec;
    t.loans += f.closing;
    for (int j = 0; j < 3; ++j) t.ecl[j] += f.ecl[j];
    t.stage2 += f.stage2_balance;
    t.dq30 += f.bucket_balance[1] + f.bucket_balance[2] + f.bucket_balance[3];
    t.dq90 += f.bucket_balance[3];
    t.expected_loss += f.expected_loss;
    t.accounts += f.count[0] + f.count[1] + f.count[2] + f.count[3];
    double k = 0;
    // EAD x downturn LGD = 0.08 EAD + 0.92 EAD x LGD.
    auto downturn = [](double ead, double ead_lgd) {
      return kDownturnLgdAdd * ead + (1 - kDownturnLgdAdd) * ead_lgd;
    };
    for (int b = 0; b < kNumBands; ++b)
      k += k_unit_[p][b] * downturn(f.ead_current[b], f.ead_lgd_current[b]);
    // Delinquent performing exposures: PD = probability of reaching default from the bucket.
    for (int d = 0; d < 2; ++d)
      k += IrbCapitalUnit(s.basel_class, f.eventual_dq[d]) *
           downturn(f.ead_delinquent[d], f.ead_lgd_delinquent[d]);
    // Defaulted: downturn LGD less the best-estimate expected loss (the stage-3 allowance).
    k += std::max(0.0, downturn(f.ead_defaulted, f.ecl[2]) - f.ecl[2]);
    t.rwa_irb += 12.5 * k;
    const double rw = s.basel_class == BaselClass::kMortgage ? 0.35 : 0.75;
    t.rwa_sa += rw * (f.exposure - f.ead_defaulted) + kDefaultedRiskWeight * f.ead_defaulted;
    // NCUA risk weights (12 CFR 702.104(c)), on balances: loans 60+ days delinquent 100%
    // (first-lien residential) or 150%; current first-lien residential 50% up to 35% of assets
    // (WriteMetrics), consumer 75%, commercial 100%. Unfunded card lines are unconditionally
    // cancellable: 0%.
    const double delinquent = f.bucket_balance[2] + f.bucket_balance[3];
    const double current = f.closing - delinquent;
    if (s.basel_class == BaselClass::kMortgage) {
      t.mortgage_current += current;
      t.ncua_rwa_loans += 1.0 * delinquent;
    } else {
      t.ncua_rwa_loans += (p == kBusiness ? 1.0 : 0.75) * current + 1.5 * delinquent;
    }
  }
  return t;
}

void Twin::Snapshot(double* out) const {
  WriteMetrics(Totals(), MonthFlows{}, out);
}

void Twin::WriteMetrics(const BookTotals& t, const MonthFlows& mf, double* o) const {
  const InstitutionConfig& inst = *institution_;
  const MacroState& m = macro_.state();
  auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
  const double annual_gross =
      std::accumulate(gross_income_history_.begin(), gross_income_history_.end(), 0.0);
  // Foreclosed assets: 100% (Basel standardised other assets; NCUA 12 CFR 702.104(c)).
  const double rwa_credit =
      std::max(t.rwa_irb, kOutputFloor * t.rwa_sa) + kLiquidRiskWeight * liquid() + foreclosed_;
  const double rwa = rwa_credit + 12.5 * inst.op_risk_factor * annual_gross;
  const double total_assets = liquid() + t.loans - allowance_ + foreclosed_;
  const double aoci = securities_value_ - alm_.securities.Total();
  o[kUnemployment] = m.unemployment;
  o[kGdpGrowth] = m.gdp_growth;
  o[kPolicyRate] = m.policy_rate;
  o[kRate10y] = m.rate_10y;
  o[kMortgageRate] = m.mortgage_rate;
  o[kHpi] = m.hpi;
  o[kCreditSpread] = m.credit_spread;
  o[kCreditFactor] = CreditFactor();
  o[kLoans] = static_cast<double>(t.accounts);
  o[kLoanBalance] = t.loans;
  o[kApplications] = static_cast<double>(mf.applications);
  o[kApprovals] = static_cast<double>(mf.approvals);
  o[kApprovalRate] = ratio(static_cast<double>(mf.approvals), static_cast<double>(mf.applications));
  o[kOriginations] = mf.originations;
  o[kInterestIncome] = mf.interest + mf.liquid_income;
  o[kFeeIncome] = mf.fees;
  o[kFundingCost] = mf.funding;
  o[kNii] = mf.nii;
  o[kOpex] = mf.opex;
  o[kCollectionCost] = mf.collection_cost;
  o[kProvisionExpense] = mf.provision;
  o[kGrossChargeOffs] = mf.charge_offs;
  o[kRecoveries] = mf.recoveries;
  o[kNetChargeOffs] = mf.charge_offs - mf.recoveries;
  o[kForeclosedLosses] = mf.reo_losses;
  o[kTax] = mf.tax;
  o[kNetIncome] = mf.net_income;
  o[kDividends] = mf.dividends;
  o[kMembers] = institution_->members * MemberGrowth();
  o[kEquity] = equity_;
  o[kAllowance] = allowance_;
  o[kEclStage1] = t.ecl[0];
  o[kEclStage2] = t.ecl[1];
  o[kEclStage3] = t.ecl[2];
  o[kStage2Share] = ratio(t.stage2, t.loans);
  o[kExpectedLoss] = t.expected_loss;
  o[kLiquidAssets] = liquid();
  o[kSecurities] = securities_value_;
  o[kAoci] = aoci;
  o[kSecuritiesDuration] = securities_duration_;
  o[kSecuritiesGains] = mf.securities_gains;
  o[kDeposits] = alm_.deposits();
  o[kCertificates] = alm_.certificates.Total();
  o[kDepositRate] =
      ratio(alm_.shares * alm_.share_rate + alm_.certificates.AnnualInterest(), alm_.deposits());
  o[kWholesale] = alm_.wholesale;
  o[kBorrowingCapacity] = capacity_;
  o[kEmergencyBorrowing] = alm_.emergency;
  o[kLiquidityShortfall] = shortfall_;
  o[kNevRatio] = alm_.pv_assets > 0 ? alm_.eve / alm_.pv_assets : 0.0;
  o[kNevRatioUp300] = alm_.pv_assets_up300 > 0 ? alm_.eve_up300 / alm_.pv_assets_up300 : 0.0;
  o[kEveChangeUp300] = alm_.eve != 0 ? (alm_.eve_up300 - alm_.eve) / std::abs(alm_.eve) : 0.0;
  o[kForeclosedAssets] = foreclosed_;
  o[kTotalAssets] = total_assets;
  o[kRwa] = rwa;
  // Basel III CET1 includes AOCI unless the bank opted out; NCUA net worth never does.
  const bool with_aoci =
      inst.capital.regime == CapitalRegime::kBasel && inst.capital.aoci_in_capital != 0;
  const double capital = equity_ + (with_aoci ? aoci : 0.0);
  o[kCet1Ratio] = ratio(capital, rwa);
  o[kLeverageRatio] = ratio(capital, total_assets);
  {
    // NCUA: current first-lien mortgages 50% up to 35% of total assets, 75% beyond; liquid
    // assets: the overnight share 0% (cash, Federal Reserve balances), the term share 50%
    // (securities of 1-3 years' weighted average life).
    const double mortgage_low = std::min(t.mortgage_current, 0.35 * std::max(0.0, total_assets));
    const double ncua_rwa = t.ncua_rwa_loans + 0.5 * mortgage_low +
                            0.75 * (t.mortgage_current - mortgage_low) + 0.5 * securities_value_ +
                            foreclosed_;
    const CapitalPosition cap = AssessCapital(
        inst.capital, complex_, CapitalInputs{capital, total_assets, rwa, ncua_rwa, allowance_});
    o[kCapitalRatio] = cap.ratio;
    o[kCapitalCategory] = cap.category;
    o[kRbcRatio] = cap.rbc_ratio;
  }
  o[kLiquidityRatio] = ratio(liquid(), inst.liquidity_runoff * alm_.deposits());
  o[kRoe] = ratio(mf.net_income * 12, mf.equity_open);
  o[kRoa] = ratio(mf.net_income * 12, mf.assets_open);
  o[kNim] = ratio(mf.nii * 12, mf.earning_open);
  const double income = mf.nii + mf.fees;
  o[kCostToIncome] =
      income > 0 ? std::clamp(mf.opex / income, 0.0, 10.0) : (mf.opex > 0 ? 10.0 : 0.0);
  o[kChargeOffRate] = ratio((mf.charge_offs - mf.recoveries) * 12, mf.loans_open);
  o[kDq30Rate] = ratio(t.dq30, t.loans);
  o[kDq90Rate] = ratio(t.dq90, t.loans);
  for (int p = 0; p < kNumProducts; ++p) {
    const ProductFlows& f = flows_[p];
    o[ProductMetricIndex(p, kPBalance)] = f.closing;
    o[ProductMetricIndex(p, kPLoans)] =
        static_cast<double>(f.count[0] + f.count[1] + f.count[2] + f.count[3]);
    o[ProductMetricIndex(p, kPOriginations)] = f.originations;
    o[ProductMetricIndex(p, kPChargeOffRate)] =
        ratio((f.charge_offs - f.recoveries) * 12, f.opening);
    o[ProductMetricIndex(p, kPDq30Rate)] =
        ratio(f.bucket_balance[1] + f.bucket_balance[2] + f.bucket_balance[3], f.closing);
    o[ProductMetricIndex(p, kPYield)] = ratio(f.interest * 12, f.opening);
  }
}

void Twin::Breach(const std::string& invariant, const std::string& detail) const {
  throw InvariantError(fmt::format("invariant '{}' breached: instance {}, month {}: {}", invariant,
                                   instance_id_, month_, detail));
}

void Twin::CheckInvariants(const std::array<ProductFlows, kNumProducts>& flows,
                           const MonthFlows& mf, double allowance_open, double foreclosed_open,
                           double retained, double deposits_open, double securities_open,
                           const AlmFlows& af) const {
  const double equity_open = mf.equity_open;
  auto close = [](double a, double b) {
    return std::abs(a - b) <= 1e-7 * std::max({1.0, std::abs(a), std::abs(b)});
  };
  double loans = 0, ecl_total = 0, foreclosed_in = 0, foreclosed_sold = 0;
  for (int p = 0; p < kNumProducts; ++p) {
    const ProductFlows& f = flows[p];
    const std::string name = kProductNames[p];
    foreclosed_in += f.foreclosed;
    foreclosed_sold += f.reo_sold;
    const double expected = f.opening + f.originations + f.accrued - f.principal - f.prepayments -
                            f.charge_offs - f.foreclosed;
    if (!close(expected, f.closing))
      Breach("balance_roll_forward[" + name + "]",
             fmt::format("opening {:.2f} + originations {:.2f} + accrued interest {:.2f} - "
                         "principal {:.2f} - prepayments {:.2f} - charge-offs {:.2f} - moved to "
                         "foreclosed assets {:.2f} = {:.2f}, but closing is {:.2f} (difference "
                         "{:.4g})",
                         f.opening, f.originations, f.accrued, f.principal, f.prepayments,
                         f.charge_offs, f.foreclosed, expected, f.closing, expected - f.closing));
    // Recount the book independently of the step's accumulators.
    const LoanBook& bk = books_[p];
    std::array<int64_t, kNumBuckets> count{};
    std::array<double, kNumBuckets> balance{};
    const ProductSpec& spec = institution_->products[p].spec;
    const bool fixed = !spec.variable_rate;
    for (size_t i = 0; i < bk.size(); ++i) {
      if (bk.bucket[i] >= spec.charge_off_months())
        Breach("bucket_partition[" + name + "]",
               fmt::format("loan {} is {} months past due, at or beyond the {}-day charge-off", i,
                           bk.bucket[i], spec.charge_off_dpd));
      if (!(bk.balance[i] >= 0))
        Breach("non_negative_balance[" + name + "]",
               fmt::format("loan {} has balance {:.4f}", i, bk.balance[i]));
      if (fixed && !(bk.rate[i] >= 0))
        Breach("non_negative_rate[" + name + "]",
               fmt::format("loan {} has rate {}", i, bk.rate[i]));
      const int bucket = std::min<int>(bk.bucket[i], kDpd90);
      count[bucket] += 1;
      balance[bucket] += bk.balance[i];
    }
    for (int k = 0; k < kNumBuckets; ++k)
      if (count[k] != f.count[k] || !close(balance[k], f.bucket_balance[k]))
        Breach("bucket_partition[" + name + "]",
               fmt::format("bucket {} holds {} loans / {:.2f} in the book but {} / {:.2f} in the "
                           "month's totals",
                           k, count[k], balance[k], f.count[k], f.bucket_balance[k]));
    const double sum = balance[0] + balance[1] + balance[2] + balance[3];
    if (!close(sum, f.closing))
      Breach("bucket_partition[" + name + "]",
             fmt::format("buckets sum to {:.2f} but the balance is {:.2f}", sum, f.closing));
    const double ecl = f.ecl[0] + f.ecl[1] + f.ecl[2];
    if (!(f.ecl[0] >= 0 && f.ecl[1] >= 0 && f.ecl[2] >= 0))
      Breach("non_negative_provisions[" + name + "]",
             fmt::format("ECL stages {:.2f} / {:.2f} / {:.2f}", f.ecl[0], f.ecl[1], f.ecl[2]));
    if (ecl > f.exposure * (1 + 1e-9))
      Breach("provisions_within_exposure[" + name + "]",
             fmt::format("ECL {:.2f} exceeds exposure {:.2f}", ecl, f.exposure));
    loans += f.closing;
    ecl_total += ecl;
  }
  if (!close(equity_ - equity_open, retained))
    Breach("equity_roll_forward",
           fmt::format("opening equity {:.2f} + net income less dividends {:.2f} = {:.2f}, but "
                       "equity is {:.2f}",
                       equity_open, retained, equity_open + retained, equity_));
  const double certificates = alm_.certificates.Total(), securities = alm_.securities.Total();
  const bool rungs_ok = std::all_of(alm_.securities.par.begin(), alm_.securities.par.end(),
                                    [](double x) { return x >= 0; }) &&
                        std::all_of(alm_.certificates.par.begin(), alm_.certificates.par.end(),
                                    [](double x) { return x >= 0; });
  if (!(alm_.cash >= -1e-9 * std::max(1.0, equity_open)) || !rungs_ok || !(alm_.shares >= 0) ||
      !(alm_.wholesale >= 0) || !(alm_.emergency >= 0) || !(foreclosed_ >= 0) ||
      !(pending_recoveries_ >= 0) || !(securities_value_ >= 0))
    Breach("non_negative_balance_sheet",
           fmt::format("cash {:.2f}, securities {:.2f} (every rung >= 0: {}), shares {:.2f}, "
                       "certificates {:.2f} (every rung >= 0: {}), secured line {:.2f}, emergency "
                       "borrowing {:.2f}, foreclosed assets {:.2f}, recoveries to collect {:.2f}",
                       alm_.cash, securities, rungs_ok, alm_.shares, certificates, rungs_ok,
                       alm_.wholesale, alm_.emergency, foreclosed_, pending_recoveries_));
  // Member deposits move only with net new money; certificates and shares exchange balances.
  if (!close(deposits_open + af.deposit_change, alm_.deposits()))
    Breach("deposit_roll_forward",
           fmt::format("opening {:.2f} + net new money {:.2f} = {:.2f}, but shares {:.2f} + "
                       "certificates {:.2f} = {:.2f}",
                       deposits_open, af.deposit_change, deposits_open + af.deposit_change,
                       alm_.shares, certificates, alm_.deposits()));
  if (!close(securities_open + af.bought - af.matured - af.sold, securities))
    Breach("securities_roll_forward",
           fmt::format("opening {:.2f} + bought {:.2f} - matured {:.2f} - sold {:.2f} = {:.2f}, "
                       "but the ladder holds {:.2f}",
                       securities_open, af.bought, af.matured, af.sold,
                       securities_open + af.bought - af.matured - af.sold, securities));
  // The allowance rolls forward (opening - net charge-offs + provision) to the loans' expected
  // losses less the recoveries still to collect, recounted from the schedule.
  double to_collect = 0, held = 0;
  for (const RecoveryPipeline& pl : pipeline_)
    for (int j = 0; j < kPipelineSlots; ++j) to_collect += pl.cash[j], held += pl.carry[j];
  const double rolled = allowance_open - (mf.charge_offs - mf.recoveries) + mf.provision;
  if (!close(rolled, allowance_) || !close(allowance_, ecl_total - to_collect))
    Breach("allowance_roll_forward",
           fmt::format("opening {:.2f} - net charge-offs {:.2f} + provision {:.2f} = {:.2f}; "
                       "expected losses {:.2f} - recoveries to collect {:.2f} = {:.2f}; the "
                       "allowance is {:.2f}",
                       allowance_open, mf.charge_offs - mf.recoveries, mf.provision, rolled,
                       ecl_total, to_collect, ecl_total - to_collect, allowance_));
  // Foreclosed assets roll forward: opening + write-downs' collateral - sold = held.
  if (!close(foreclosed_open + foreclosed_in - foreclosed_sold, foreclosed_) ||
      !close(foreclosed_, held))
    Breach("foreclosed_roll_forward",
           fmt::format("opening {:.2f} + repossessed {:.2f} - sold {:.2f} = {:.2f}, held in the "
                       "schedule {:.2f}, on the balance sheet {:.2f}",
                       foreclosed_open, foreclosed_in, foreclosed_sold,
                       foreclosed_open + foreclosed_in - foreclosed_sold, held, foreclosed_));
  // Securities at fair value on the asset side, their unrealised gains and losses in AOCI.
  const double aoci = securities_value_ - securities;
  const double assets = alm_.cash + securities_value_ + loans - allowance_ + foreclosed_;
  const double liabilities = alm_.deposits() + alm_.wholesale + alm_.emergency + equity_ + aoci;
  if (!close(assets, liabilities))
    Breach(
        "balance_sheet",
        fmt::format("cash {:.2f} + securities {:.2f} + loans {:.2f} - allowance {:.2f} + "
                    "foreclosed assets {:.2f} = {:.2f}, but deposits {:.2f} + borrowings {:.2f} "
                    "+ equity {:.2f} + AOCI {:.2f} = {:.2f}",
                    alm_.cash, securities_value_, loans, allowance_, foreclosed_, assets,
                    alm_.deposits(), alm_.wholesale + alm_.emergency, equity_, aoci, liabilities));
}

}  // namespace loantwin

namespace loantwin {

// ---- asset-liability management: economic value and repricing gap ----

EconomicValue Twin::Value(double shift_bp) const {
  const InstitutionConfig& inst = *institution_;
  const MacroState& m = macro_.state();
  const double shift = shift_bp / 10000;
  EconomicValue v;
  double loans = 0;
  std::optional<AnnuityValuer> valuer;  // built on the first fixed-rate loan to value
  for (int p = 0; p < kNumProducts; ++p) {
    const LoanBook& bk = books_[p];
    const ProductSpec& s = inst.products[p].spec;
    // Variable-rate and revolving balances reprice monthly: valued at par.
    if (s.revolving() || s.variable_rate || shift == 0) {
      for (size_t i = 0; i < bk.size(); ++i) loans += bk.balance[i];
      continue;
    }
    // Fixed-rate loans: scheduled payments with prepayments at the product's S-curve speed for
    // coupon / (coupon + shift), discounted at the coupon + shift; 90+ dpd at par (their losses
    // are in the allowance).
    const double norm = OtsCpr(1.0);
    std::array<double, kSmmTableSize> smm;
    for (int k = 0; k < kSmmTableSize; ++k) {
      const double shape =
          (1 - s.prepay_incentive) + s.prepay_incentive * OtsCpr(0.5 + 0.01 * k) / norm;
      smm[k] = 1 - std::pow(1 - std::clamp(s.prepay_cpr * shape, 0.0, 0.95), 1.0 / 12);
    }
    for (size_t i = 0; i < bk.size(); ++i) {
      const double b = bk.balance[i];
      if (bk.bucket[i] >= 3 || bk.remaining[i] <= 0) {
        loans += b;
        continue;
      }
      const double rate = bk.rate[i];
      const double ratio = rate / std::max(1e-4, rate + shift);
      const int k =
          std::clamp(static_cast<int>(std::lround((ratio - 0.5) * 100)), 0, kSmmTableSize - 1);
      if (!valuer) valuer.emplace();
      loans += valuer->Value(b, rate, bk.remaining[i], smm[k], rate + shift);
    }
  }
  v.assets = alm_.cash + alm_.securities.Value(m, month_, inst.alm.securities_spread, shift) +
             loans - allowance_ + foreclosed_;
  v.liabilities = LiabilityValue(inst.alm, inst.deposit_beta, m, month_, alm_, shift);
  return v;
}

void Twin::RefreshEve() {
  const EconomicValue base = Value(0), up = Value(300);
  alm_.eve = base.eve(), alm_.pv_assets = base.assets;
  alm_.eve_up300 = up.eve(), alm_.pv_assets_up300 = up.assets;
}

const std::array<const char*, RepricingGap::kLines>& RepricingGap::LineNames() {
  static const std::array<const char*, kLines> names = {"fixed-rate loans",
                                                        "variable-rate and 90+ dpd loans",
                                                        "cash",
                                                        "securities",
                                                        "non-maturity shares",
                                                        "certificates",
                                                        "borrowings"};
  return names;
}

double RepricingGap::Assets(int b) const {
  return amount[0][b] + amount[1][b] + amount[2][b] + amount[3][b];
}
double RepricingGap::Liabilities(int b) const {
  return amount[4][b] + amount[5][b] + amount[6][b];
}

RepricingGap Twin::Gap() const {
  const InstitutionConfig& inst = *institution_;
  RepricingGap g;
  constexpr std::array<int, kGapBuckets - 1> kBounds = {3, 12, 36, 60};
  for (int p = 0; p < kNumProducts; ++p) {
    const LoanBook& bk = books_[p];
    const ProductSpec& s = inst.products[p].spec;
    for (size_t i = 0; i < bk.size(); ++i) {
      const double b = bk.balance[i];
      const int n = bk.remaining[i];
      if (s.revolving() || s.variable_rate || bk.bucket[i] >= 3 || n <= 0) {
        g.amount[1][0] += b;
        continue;
      }
      // Scheduled principal between the bucket bounds: B_k = B (A - (1+i)^k) / (A - 1).
      const double r = std::max(0.0, bk.rate[i]) / 12;
      const double a = std::pow(1 + r, n);
      auto left = [&](int k) {
        if (k >= n) return 0.0;
        return r < 1e-9 ? b * (n - k) / n : b * (a - std::pow(1 + r, k)) / (a - 1);
      };
      double before = b;
      for (int j = 0; j < kGapBuckets - 1; ++j) {
        const double after = left(kBounds[j]);
        g.amount[0][j] += before - after;
        before = after;
      }
      g.amount[0][kGapBuckets - 1] += before;
    }
  }
  g.amount[2][0] = alm_.cash;
  for (int k = 0; k < kLadderSlots; ++k) {
    const int n = ((k - month_) % kLadderSlots + kLadderSlots) % kLadderSlots;
    g.amount[3][GapBucket(n)] += alm_.securities.par[k];
    g.amount[5][GapBucket(n)] += alm_.certificates.par[k];
  }
  g.amount[4][0] = alm_.shares;  // contractually repriceable at any time
  g.amount[6][0] = alm_.wholesale + alm_.emergency;
  return g;
}

void Twin::SaveState(StateWriter& w) const {
  w.Tag("twin.v3");
  for (const LoanBook& b : books_) {
    w.PutVector(b.balance), w.PutVector(b.rate), w.PutVector(b.payment), w.PutVector(b.collateral);
    w.PutVector(b.pd_orig), w.PutVector(b.remaining), w.PutVector(b.age), w.PutVector(b.band);
    w.PutVector(b.bucket), w.PutVector(b.flags), w.PutVector(b.term), w.PutVector(b.zone);
    w.PutVector(b.id);
  }
  w.Put(next_id_);
  w.Put(flows_);
  for (const auto& c : cohorts_) w.PutVector(c);
  w.Put(base_apps_);
  macro_.Save(w);
  w.Put(episode_key_), w.Put(month_);
  w.Put(equity_), w.Put(allowance_), w.Put(alm_);
  w.Put(securities_value_), w.Put(capacity_), w.Put(shortfall_), w.Put(securities_gains_);
  w.Put(securities_duration_);
  w.Put(smoothed_unemployment_), w.Put(smoothed_gdp_), w.Put(unemployment_anchor_);
  w.Put(factor_history_), w.Put(hpi_history_);
  w.PutVector(zone_hpi_), w.PutVector(zone_log_hpi_), w.Put(national_hpi_);
  w.Put(policy_history_), w.Put(mortgage_history_), w.Put(gross_income_history_);
  w.Put(pipeline_), w.Put(pending_recoveries_), w.Put(foreclosed_);
  w.Put(complex_);
}

void Twin::LoadState(StateReader& r) {
  r.Tag("twin.v3");
  for (LoanBook& b : books_) {
    r.GetVector(&b.balance), r.GetVector(&b.rate), r.GetVector(&b.payment);
    r.GetVector(&b.collateral), r.GetVector(&b.pd_orig), r.GetVector(&b.remaining);
    r.GetVector(&b.age), r.GetVector(&b.band), r.GetVector(&b.bucket), r.GetVector(&b.flags);
    r.GetVector(&b.term), r.GetVector(&b.zone), r.GetVector(&b.id);
  }
  r.Get(&next_id_);
  r.Get(&flows_);
  for (auto& c : cohorts_) r.GetVector(&c);
  r.Get(&base_apps_);
  macro_.Load(r);
  r.Get(&episode_key_), r.Get(&month_);
  r.Get(&equity_), r.Get(&allowance_), r.Get(&alm_);
  r.Get(&securities_value_), r.Get(&capacity_), r.Get(&shortfall_), r.Get(&securities_gains_);
  r.Get(&securities_duration_);
  r.Get(&smoothed_unemployment_), r.Get(&smoothed_gdp_), r.Get(&unemployment_anchor_);
  r.Get(&factor_history_), r.Get(&hpi_history_);
  r.GetVector(&zone_hpi_), r.GetVector(&zone_log_hpi_), r.Get(&national_hpi_);
  r.Get(&policy_history_), r.Get(&mortgage_history_), r.Get(&gross_income_history_);
  r.Get(&pipeline_), r.Get(&pending_recoveries_), r.Get(&foreclosed_);
  r.Get(&complex_);
}

}  // namespace loantwin
