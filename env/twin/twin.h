#pragma once
// One twin instance: a lending institution simulated month by month (docs/twin-model.md).
//
//   Twin twin(LoadInstitution("cu_mid"), LoadScenario("severe_recession"), /*seed=*/1,
//             /*instance=*/0);
//   twin.Reset();
//   std::vector<double> row(kNumMetrics);
//   twin.Step(DefaultLevers(twin.institution()), row.data());
//
// All randomness comes from counter-based streams keyed by (seed, instance, episode, month), so
// an instance's path does not depend on which thread steps it.

#include <array>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/binary_state.h"
#include "env/twin/alm.h"
#include "env/twin/institution.h"
#include "env/twin/levers.h"
#include "env/twin/loan_book.h"
#include "env/twin/metrics.h"
#include "env/twin/scenario.h"

namespace loantwin {

/// Rows of the prepayment SMM table by coupon / market-rate ratio (0.50 .. 2.00 by 0.01).
inline constexpr int kPrepaySmmTableSize = 151;

struct TwinOptions {
  bool check_invariants = false;  ///< verify the accounting invariants after every step
  /// With check_invariants: count the months with a broken invariant (and keep the first
  /// message) instead of throwing InvariantError (stress reports count breaching paths).
  bool count_invariant_breaches = false;
  /// Parallel shift of the policy, 10-year and mortgage rates from month 1 on, basis points:
  /// the balance sheet opens at the scenario's rates and is then shocked (NiiSensitivity).
  double rate_shift_bp = 0;
  /// Keep each product's transition rates of the last month (transitions(); fitting).
  bool record_transitions = false;
};

/// One product's monthly transition rates as the loan loop draws against them (recorded with
/// TwinOptions::record_transitions): a loan's probabilities follow from its state.
struct ProductTransitions {
  std::array<float, kNumBands> hazard{};              ///< roll into 30 dpd per band (not fraud)
  float redefault = 1;                                ///< hazard multiplier of restructured loans
  std::array<double, kNumBuckets> forward{}, cure{};  ///< by months past due (90+: [3])
  BandArray inv_market_rate{};  ///< 1 / market rate per band (prepayment incentive)
  std::array<float, kPrepaySmmTableSize> smm{};  ///< SMM by coupon / market ratio (0.5 + 0.01 i)
  double hpi = 1;                                ///< the month's house-price index
};

/// Probability that a loan entering 30 dpd is eventually charged off, under `collection` at
/// z = 0 (the twin divides the monthly PD by it to get the roll into 30 dpd).
double EventualChargeOff(const ProductSpec& s,
                         const std::array<int, kNumDelinquentBuckets>& collection);

/// A broken accounting invariant. what() names the invariant, instance, month and amounts.
class InvariantError : public std::runtime_error {
 public:
  explicit InvariantError(const std::string& msg) : std::runtime_error(msg) {}
};

/// Lifetime outcome counts of loans originated after reset, per product and term option.
struct CohortCounts {
  int64_t originated = 0, charged_off = 0, prepaid = 0, matured = 0;
  double originated_amount = 0, charged_off_amount = 0;
};

/// Everything computed once per product per month before the loan loop.
struct ProductMonth;
class ApplicantLens;
/// Flows and stocks accumulated over one product's loans in a month.
struct ProductFlows {
  double opening = 0, originations = 0, principal = 0, prepayments = 0, charge_offs = 0;
  double recoveries = 0, interest = 0, closing = 0, fees = 0, stage2_balance = 0;
  double accrued = 0;       ///< interest accrued unpaid on 30-89 dpd loans (capitalised)
  double foreclosed = 0;    ///< secured: collateral value moved to foreclosed assets
  double recovery_due = 0;  ///< unsecured: recoveries expected on this month's charge-offs
  double reo_sold = 0;      ///< carrying value of repossessed collateral sold this month
  double reo_proceeds = 0;  ///< its sale proceeds
  std::array<double, 2> eventual_dq{};  ///< charge-off probability from 30 and 60 dpd
  std::array<int64_t, kNumBuckets> count{};
  std::array<double, kNumBuckets> bucket_balance{};
  std::array<double, 3> ecl{};                      ///< stage 1, 2, 3
  std::array<double, kNumBands> ead_lgd_current{};  ///< IRB inputs, performing
  std::array<double, kNumBands> ead_current{};      ///< their EAD (downturn LGD)
  std::array<double, 2> ead_lgd_delinquent{};       ///< 30 and 60 dpd
  std::array<double, 2> ead_delinquent{};           ///< their EAD
  double ead_defaulted = 0;                         ///< 90+ dpd
  double exposure = 0;                              ///< EAD of the book (provision cap)
  double expected_loss = 0;                         ///< 12-month expected loss of the book
  int64_t applications = 0, approvals = 0;
};

/// Month-end stocks summed over products.
struct BookTotals {
  double loans = 0, stage2 = 0, dq30 = 0, dq90 = 0, expected_loss = 0, rwa_irb = 0, rwa_sa = 0;
  double ncua_rwa_loans = 0;    ///< NCUA risk weights on the loans other than current mortgages
  double mortgage_current = 0;  ///< current first-lien mortgages (NCUA: 50% up to 35% of assets)
  std::array<double, 3> ecl{};
  int64_t accounts = 0;
};

/// The month's flows (all zero for a snapshot of the state).
struct MonthFlows {
  double interest = 0, liquid_income = 0, funding = 0, nii = 0, fees = 0, opex = 0;
  double securities_gains = 0;  ///< realised on securities sold for liquidity
  double collection_cost = 0, provision = 0, charge_offs = 0, recoveries = 0, tax = 0;
  double reo_proceeds = 0, reo_losses = 0, accrued = 0;
  double net_income = 0, dividends = 0, originations = 0, principal = 0, prepayments = 0;
  double loans_open = 0, equity_open = 0, assets_open = 0, earning_open = 0;
  int64_t applications = 0, approvals = 0;
};

/// Economic value under a parallel rate shift: present values of assets (loans net of the
/// allowance) and liabilities other than equity.
struct EconomicValue {
  double assets = 0, liabilities = 0;
  double eve() const { return assets - liabilities; }
  double nev_ratio() const { return assets > 0 ? eve() / assets : 0.0; }
};

/// Repricing gap: amounts repricing or maturing per bucket (GapBucketNames), by line.
struct RepricingGap {
  static constexpr int kLines = 7;
  /// fixed-rate loans (scheduled principal), variable-rate and delinquent loans, cash,
  /// securities, non-maturity shares, certificates, borrowings
  static const std::array<const char*, kLines>& LineNames();
  std::array<std::array<double, kGapBuckets>, kLines> amount{};
  double Assets(int bucket) const;       ///< lines 0..3
  double Liabilities(int bucket) const;  ///< lines 4..6
};

class Twin {
 public:
  Twin(std::shared_ptr<const InstitutionConfig> institution,
       std::shared_ptr<const Scenario> scenario, uint64_t seed, int instance_id,
       TwinOptions options = {});

  /// Builds the initial book and balance sheet; month() becomes 0. Episode selects an
  /// independent random stream for the same (seed, instance).
  void Reset(uint64_t episode = 0);

  /// Simulates one month under `levers` (validated; the risk appetite is applied) and writes
  /// kNumMetrics values to `metrics` (see metrics.h). Throws InvariantError when checking is on
  /// and an invariant breaks.
  void Step(const Levers& levers, double* metrics);

  /// Writes the metrics row of the current state with zero flows (month 0 after Reset: the
  /// opening balance sheet, capital and macro state).
  void Snapshot(double* metrics) const;

  /// Saves / restores the complete state (book, balance sheet, macro, random-stream position)
  /// so a restored twin continues bit for bit. The configuration is not part of the state.
  void SaveState(StateWriter& w) const;
  void LoadState(StateReader& r);

  int month() const { return month_; }
  int instance_id() const { return instance_id_; }
  int64_t num_loans() const;
  /// Months since Reset with a broken invariant (count_invariant_breaches mode) and the
  /// first breach's message ("" if none). Not part of the saved state.
  int invariant_breaches() const { return invariant_breaches_; }
  const std::string& first_invariant_breach() const { return first_invariant_breach_; }
  double equity() const { return equity_; }
  const MacroState& macro() const { return macro_.state(); }
  const InstitutionConfig& institution() const { return *institution_; }
  const Scenario& scenario() const { return *scenario_; }
  const LoanBook& book(int product) const { return books_[product]; }
  const ProductFlows& last_flows(int product) const { return flows_[product]; }
  /// Funding and liquidity positions (alm.h).
  const AlmState& alm() const { return alm_; }
  /// Economic value of the balance sheet with every rate shifted by `shift_bp` basis points.
  EconomicValue Value(double shift_bp) const;
  /// Today's repricing gap.
  RepricingGap Gap() const;
  /// cohorts()[product][term option]: loans originated since reset.
  const std::array<std::vector<CohortCounts>, kNumProducts>& cohorts() const { return cohorts_; }
  /// Collateral value today of row `row` of a secured product's book (currency).
  double CollateralValue(int product, size_t row) const;
  /// Loss given default of row `row` if it defaulted at today's collateral value.
  double LossGivenDefault(int product, size_t row) const;
  /// Home collateral's index of zone z this month (relative to month 0; the national index
  /// without home_zones) and the number of zones (1 without).
  double zone_hpi(int z) const { return zone_hpi_[z]; }
  int zones() const { return static_cast<int>(zone_hpi_.size()); }
  /// Last month's transition rates of `product` (TwinOptions::record_transitions).
  const ProductTransitions& transitions(int product) const { return transitions_[product]; }
  /// Id the next loan originated in `product` gets (LoanBook::id).
  uint32_t next_id(int product) const { return next_id_[product]; }
  /// Baseline applications per month per product (the flow that keeps the book flat).
  double base_applications(int product) const { return base_apps_[product]; }
  /// Attaches an observer of the applicants generated (fair-lending analysis; null: none). It
  /// draws from its own stream and changes nothing in the twin (applicant_groups.h).
  void set_applicant_lens(ApplicantLens* lens) { lens_ = lens; }

 private:
  void BuildInitialBook(uint64_t key);
  void LoadInitialBook();  ///< the institution's loan-tape book (InitialBook)
  void PrepareProductMonth(int p, const Levers& levers, ProductMonth* pm) const;
  void StepBook(int p, const ProductMonth& pm, uint64_t key, ProductFlows* f);
  void Originate(int p, const ProductMonth& pm, const Levers& levers, uint64_t key,
                 ProductFlows* f);
  void MeasureBook(int p, const ProductMonth& pm, size_t begin, ProductFlows* f) const;
  /// `open`: the month's opening equity, allowance and foreclosed assets (MonthFlows fields).
  void CheckInvariants(const std::array<ProductFlows, kNumProducts>& flows, const MonthFlows& mf,
                       double allowance_open, double foreclosed_open, double retained,
                       double deposits_open, double securities_open, const AlmFlows& af) const;
  BookTotals Totals() const;
  void RefreshEve();
  void WriteMetrics(const BookTotals& totals, const MonthFlows& flows, double* out) const;
  [[noreturn]] void Breach(const std::string& invariant, const std::string& detail) const;

  std::shared_ptr<const InstitutionConfig> institution_;
  std::shared_ptr<const Scenario> scenario_;
  uint64_t seed_;
  int instance_id_;
  TwinOptions options_;
  ApplicantLens* lens_ = nullptr;

  MacroModel macro_;
  uint64_t episode_key_ = 0;
  int month_ = 0;
  int invariant_breaches_ = 0;
  std::string first_invariant_breach_;
  std::array<LoanBook, kNumProducts> books_;
  std::array<ProductFlows, kNumProducts> flows_;
  std::array<std::vector<CohortCounts>, kNumProducts> cohorts_;
  std::array<double, kNumProducts> base_apps_{};
  std::array<uint32_t, kNumProducts> next_id_{};
  std::array<ProductTransitions, kNumProducts> transitions_{};  ///< id of the next loan originated
  // Calibration constants per product: eventual default probability of a loan entering 30 dpd
  // under the preset's default collection, and IRB capital per unit EAD x LGD per band.
  std::array<double, kNumProducts> eventual_base_{};
  /// Per product, fixed by its spec: prepayment SMM by coupon / market-rate ratio (0.5 + 0.01 i)
  /// and collateral depreciation factor by age in months (0..480; empty without depreciation).
  std::array<std::array<float, kPrepaySmmTableSize>, kNumProducts> smm_table_{};
  std::array<std::vector<float>, kNumProducts> depreciation_table_;
  std::array<std::array<double, kNumBands>, kNumProducts> k_unit_{};
  /// G(pd) of each product's band PD and the PD at z = 0 (the cycle's long-run reference).
  std::array<std::array<double, kNumBands>, kNumProducts> pd_quantile_{}, pd_long_run_{};

  // Balance sheet and state carried between months.
  double equity_ = 0, allowance_ = 0;
  AlmState alm_;
  double securities_value_ = 0;     ///< fair value of the securities at the last month end
  double capacity_ = 0;             ///< borrowing capacity at the last month end
  double securities_duration_ = 0;  ///< their modified duration (years)
  double shortfall_ = 0;            ///< emergency borrowing drawn in the last month
  double securities_gains_ = 0;     ///< realised in the last month
  double liquid() const { return alm_.cash + securities_value_; }
  /// Recoveries and collateral sales scheduled per product, by month modulo the slot count:
  /// unsecured recovery cash, and the carrying value and sale-price units of repossessed
  /// collateral (home: HPI units; auto: value at sale).
  static constexpr int kPipelineSlots = kMaxRecoveryMonths + 1;
  struct RecoveryPipeline {
    std::array<double, kPipelineSlots> cash{}, carry{}, units{};
  };
  std::array<RecoveryPipeline, kNumProducts> pipeline_;
  double pending_recoveries_ = 0;  ///< recoveries still to collect (reduce the allowance)
  double foreclosed_ = 0;          ///< repossessed collateral held for sale (an asset)
  void ScheduleRecoveries(int p, double hpi, ProductFlows* f);
  void SeedRecoveries(double hpi);
  void SumPipelines();
  double smoothed_unemployment_ = 0, smoothed_gdp_ = 0, unemployment_anchor_ = 0;
  /// The credit factor's unemployment, GDP and house-price terms of the last months, by month
  /// modulo the slot count (products read them with their cycle_lag_months).
  std::array<std::array<double, 3>, kMaxCycleLagMonths + 1> factor_history_{};
  std::array<double, 12> hpi_history_{};  ///< HPI of the last 12 months (12-month growth)
  /// Home collateral's index per zone (relative to month 0): one entry, the national index,
  /// without home_zones; the zones' log indices and the national index of the last month.
  std::vector<double> zone_hpi_, zone_log_hpi_;
  double national_hpi_ = 1;
  void StepZones(const MacroState& m);
  uint8_t DrawZone(uint64_t key) const;
  double CreditFactor() const;
  /// Product p's credit factor this month: its sensitivities and lag.
  double ProductCreditFactor(int p) const;
  void RecordCreditFactor();
  /// Members relative to month 0: (1 + member_growth)^(month / 12).
  double MemberGrowth() const;
  std::array<double, 12> policy_history_{}, mortgage_history_{};
  std::array<double, 12> gross_income_history_{};
  std::array<int, kNumDelinquentBuckets> collection_{};  ///< last collection levers (RWA)
  bool complex_ = false;  ///< NCUA complex credit union (rules or opening total assets)
};

}  // namespace loantwin
