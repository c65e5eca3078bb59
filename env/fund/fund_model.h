#pragma once
// A leveraged home-equity fund (docs/fund-model.md): committed capital invested in
// shared-appreciation contracts (home-equity investments) by zone, exits by sale, refinance,
// default and maturity as monthly hazards, reinvestment, a leverage facility with a
// borrowing-base test and cash sweep, fees and expenses, senior / mezzanine notes with
// overcollateralisation tests, and an equity waterfall (env/fund/waterfall.h). One path is one
// fund life on one Monte Carlo path of a scenario; months step in order.
//
// The book is held in cohorts: zone x origination year x senior-LTV bucket (4 equal-probability
// buckets of the zone's LTV distribution). Within a cohort every contract shares the zone's
// house-price path, so claim and home values are exact sums (claim units x the zone's index);
// hazards apply to the cohort with its invested-weighted age and origination mortgage rate.

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "env/fund/waterfall.h"
#include "env/twin/zones.h"
#include "env/twin/scenario.h"

namespace loantwin {

class YamlValue;
class StateWriter;
class StateReader;

inline constexpr int kLtvBuckets = 4;

struct FundTerms {
  double commitment = 100e6;            ///< total commitment (notes + equity)
  int term_months = 120;                ///< fund life: remaining contracts sold at the end
  int investment_period_months = 36;    ///< capital may be called to invest until then
  int reinvestment_period_months = 72;  ///< proceeds may be reinvested until then
  double monthly_capacity = 0.06;       ///< most originated in a month, of the commitment
  int distribution_months = 3;          ///< distributions every this many months
  double cash_reserve = 0.005;          ///< kept back from distributions, of the commitment
  double liquidation_discount = 0.05;   ///< on the contracts' value at the end of the term
  int ramp_up_months = 12;  ///< the notes' coverage tests apply after this (the ramp-up)
};

struct ContractTerms {
  double investment_fraction = 0.10;  ///< paid to the homeowner, of the home value
  /// The fund's claim at exit: the investment plus s x (home value at exit - at origination),
  /// s = appreciation_multiple x investment_fraction (a share of the depreciation too; >= 0).
  double appreciation_multiple = 4.0;
  double annual_cap = 0.20;            ///< claim capped at investment x (1 + cap)^years
  double sale_cost = 0.06;             ///< selling costs, of the home value
  double foreclosure_cost = 0.25;      ///< foreclosure and sale costs, of the home value
  double senior_amortisation = 0.025;  ///< senior mortgage principal repaid a year, of balance
};

struct ExitTerms {
  double sale_rate = 0.07;            ///< annual hazard of a home sale (seasoned)
  double sale_hpa_beta = 1.0;         ///< x exp(beta x log appreciation since origination)
  double refinance_rate = 0.03;       ///< annual hazard of a refinance / buy-out
  double refinance_rate_beta = 30.0;  ///< x exp(beta x (origination - current mortgage rate))
  double refinance_hpa_beta = 1.0;    ///< x exp(beta x log appreciation)
  double default_rate = 0.003;        ///< annual hazard of a senior-lien default
  double default_cltv_beta = 8.0;     ///< x exp(beta x max(0, CLTV - threshold))
  double default_cltv_threshold = 0.8;
  double default_unemployment_beta = 20.0;  ///< x exp(beta x (unemployment - 4.5%))
  double seasoning_months = 24;             ///< sale and refinance hazards ramp up over this
};

struct FacilityTerms {
  double limit = 0.25;             ///< facility size, of the commitment
  double advance_rate = 0.6;       ///< borrowing base = advance rate x eligible contract value
  double eligibility_cltv = 0.95;  ///< contracts above this combined LTV are not eligible
  double spread = 0.03;            ///< interest: policy rate + spread
};

struct FeeTerms {
  double management_fee = 0.015;        ///< a year, on the commitment in the investment period
  double management_fee_after = 0.010;  ///< a year, on invested cost afterwards
  double origination_fee = 0.03;        ///< of each investment, paid to the originator
  double expenses_fixed = 2.5e5;        ///< fund expenses a year
  double expenses_nav = 0.001;          ///< and a year on NAV
};

struct FundGuardrails {
  double max_zone_share = 0.35;  ///< no zone above this share of the contracts' value
};

struct FundConfig {
  FundTerms fund;
  ContractTerms contract;
  ExitTerms exits;
  FacilityTerms facility;
  FeeTerms fees;
  WaterfallTerms waterfall;
  std::vector<TrancheTerms> tranches = DefaultTranches();
  FundGuardrails guardrails;
  ZoneSet zones = ZoneSet::Default();

  static std::vector<TrancheTerms> DefaultTranches();
  double equity_share() const;
  /// Strict parse of the fund's keys (fund, contract, exits, facility, fees, waterfall,
  /// tranches, guardrails, zones) from a mapping that may hold other keys (the environment's);
  /// `m` records the keys read.
  static void ParseInto(class YamlMap& m, FundConfig* c);
  /// The same keys, every default filled in, emitted into an open YAML map.
  void EmitYaml(void* yaml_emitter) const;
  /// Cross-field checks (periods inside the term, tranche shares < 1, ...): invalid_argument.
  void Validate() const;
};

/// One month's decisions: the portfolio role's and the risk role's.
struct FundDecision {
  std::vector<double> zone_weights;  ///< relative, >= 0; all 0 = originate nothing
  bool reinvest = true;
  double leverage = 0.5;      ///< target drawn / borrowing base
  double max_cltv = 0.8;      ///< combined LTV guardrail at origination
  double min_headroom = 0.1;  ///< draws stop at (1 - headroom) x borrowing base
};

/// Every cash movement of one month (what the conservation invariant checks).
struct FundMonth {
  int month = 0;
  // inflows
  double sale = 0, refinance = 0, maturity = 0, default_recovery = 0, liquidation = 0;
  double calls = 0, draws = 0;
  // outflows
  double invested = 0, origination_fees = 0, management_fees = 0, expenses = 0;
  double facility_interest = 0, facility_repaid = 0;
  std::array<double, 2> coupons{}, note_principal{};
  double lp_distributions = 0, gp_distributions = 0;
  double cash_begin = 0, cash_end = 0;
  // state after the month
  double nav = 0, borrowing_base = 0, drawn = 0, equity_nav = 0;
  double default_losses = 0;
  bool facility_breach = false, oc_fail = false, swept = false;
  double inflows() const {
    return sale + refinance + maturity + default_recovery + liquidation + calls + draws;
  }
  double outflows() const {
    return invested + origination_fees + management_fees + expenses + facility_interest +
           facility_repaid + coupons[0] + coupons[1] + note_principal[0] + note_principal[1] +
           lp_distributions + gp_distributions;
  }
};

/// Wall time per stage, accumulated (simulate --profile).
struct FundTimers {
  double paths = 0, exits = 0, leverage = 0, waterfall = 0, metrics = 0;
};

struct FundCohort {
  double count = 0, invested = 0, claim_units = 0, claim_offset = 0, home_units = 0;
  double home_value0 = 0;
  double senior = 0, cap_basis = 0, month_sum = 0, rate_sum = 0;
};

/// One fund life on one path.
class FundPath {
 public:
  FundPath(std::shared_ptr<const FundConfig> config, std::shared_ptr<const Scenario> scenario);
  /// Starts a fund on the path of `key` (month 0: nothing invested, nothing called).
  void Reset(uint64_t key);
  /// Advances one month with the decisions; returns the month's cash flows.
  const FundMonth& Step(const FundDecision& d, FundTimers* timers = nullptr);
  bool done() const { return month_ >= config_->fund.term_months; }
  int month() const { return month_; }

  const FundConfig& config() const { return *config_; }
  const MacroState& macro() const { return macro_.state(); }
  const FundMonth& last() const { return last_; }
  double zone_hpi(int z) const { return hpi_[z]; }
  /// Zone's contracts' value (claims, capped; the valuation after the last change).
  double zone_value(int z) const { return zone_value_[z]; }
  /// The contracts' value (intrinsic: each claim at today's zone index).
  double nav() const { return nav_; }
  double cash() const { return cash_; }
  double drawn() const { return drawn_; }
  double called() const { return called_; }
  double uncalled() const { return config_->fund.commitment - called_; }
  double borrowing_base() const;
  const Notes& notes() const { return notes_; }
  const EquityWaterfall& waterfall() const { return equity_; }
  double equity_nav() const;
  /// Expenses and management fees owed and not yet paid.
  double payables() const { return expenses_due_ + fees_due_; }
  double zone_losses(int z) const { return zone_losses_[z]; }
  double zone_invested(int z) const { return zone_invested_[z]; }
  double zone_defaults(int z) const { return zone_defaults_[z]; }  ///< defaulted cost
  /// Cash flows per month since the start, from each party's side (negative = paid in).
  const std::vector<double>& lp_flows() const { return lp_; }
  const std::vector<double>& gp_flows() const { return gp_; }
  const std::vector<double>& tranche_flows(int k) const { return tranche_[k]; }
  /// Manager's income (management and origination fees are not the GP's carry).
  double fees_paid() const { return fees_paid_; }
  int breach_months() const { return breach_months_; }
  int oc_fail_months() const { return oc_fail_months_; }
  /// Combined LTV of cohort bucket b of zone z at the current prices (value-weighted), NaN if
  /// empty.
  double zone_cltv(int z) const;
  /// Senior LTV of bucket b for zone z at origination.
  double bucket_ltv(int z, int b) const;
  /// Whether zone z has a bucket within the max CLTV guardrail.
  bool ZoneEligible(int z, double max_cltv) const;

  void Save(StateWriter& w) const;
  void Load(StateReader& r);

 private:
  FundCohort& cell(int z, int y, int b) {
    return cells_[(static_cast<size_t>(z) * years_ + y) * kLtvBuckets + b];
  }
  const FundCohort& cell(int z, int y, int b) const {
    return cells_[(static_cast<size_t>(z) * years_ + y) * kLtvBuckets + b];
  }
  double ClaimValue(const FundCohort& c, double hpi) const;
  bool TestsActive() const { return month_ > config_->fund.ramp_up_months; }
  double EligibleValue() const { return eligible_; }
  /// Recomputes the cached valuation (NAV, eligible value, per-zone value and CLTV) after the
  /// book or the prices changed.
  void Revalue();
  void Exits(FundMonth& m);
  void Call(double amount, FundMonth& m);
  void Originate(const FundDecision& d, double amount, FundMonth& m);
  void Distribute(double amount, FundMonth& m);
  void RecordFlows(const FundMonth& m);

  std::shared_ptr<const FundConfig> config_;
  MacroModel macro_;
  uint64_t key_ = 0;
  int month_ = 0, years_ = 1;
  double prev_national_ = 1;
  std::vector<double> log_hpi_, hpi_;
  std::vector<double> zone_value_, zone_debt_, zone_home_;  ///< cached valuation
  double nav_ = 0, eligible_ = 0;
  std::vector<FundCohort> cells_;
  double cash_ = 0, drawn_ = 0, called_ = 0, expenses_due_ = 0, fees_due_ = 0, fees_paid_ = 0;
  Notes notes_;
  EquityWaterfall equity_;
  std::vector<double> zone_losses_, zone_invested_, zone_defaults_;
  std::vector<double> lp_, gp_;
  std::array<std::vector<double>, 2> tranche_;
  int breach_months_ = 0, oc_fail_months_ = 0;
  FundMonth last_;
};

}  // namespace loantwin
