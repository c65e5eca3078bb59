#pragma once
// An institution preset: product mix, initial book, balance sheet, cost base and credit-cycle
// sensitivity. Loaded from configs/institutions/<name>.yaml (see docs/twin-model.md).

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "env/twin/allowance.h"
#include "env/twin/alm.h"
#include "env/twin/capital.h"
#include "env/twin/initial_book.h"
#include "env/twin/product.h"

namespace loantwin {

struct ProductLine {
  bool offered = false;
  int initial_loans = 0;            ///< accounts in the book at month 0
  double arrival_multiplier = 1.0;  ///< applications relative to the flow that keeps the book flat
  double applications_per_month = 0;  ///< if > 0, the baseline application flow (overrides the
                                      ///< flat-book flow; needed when initial_loans is 0)
  ProductSpec spec;
};

/// How macro variables move the systematic credit factor z (z = 0 in steady state).
struct CreditCycle {
  double unemployment_ref = 0.045;     ///< unemployment at which z = 0 (fraction)
  double unemployment_scale = 0.0175;  ///< rise in unemployment that lowers z by 1
  double gdp_ref = 0.02;               ///< GDP growth at which z = 0
  double gdp_scale = 0.10;             ///< GDP shortfall that lowers z by 1
  double smoothing = 0.35;             ///< weight of the current month in the z average (lag)
  /// Half-life in months with which the unemployment reference follows actual unemployment
  /// (borrowers and lenders adjust to a persistently high level); 0 keeps it fixed.
  double adaptation_months = 36;
  double demand_gdp_beta = 3.0;  ///< applications scale by exp(beta * (gdp - gdp_ref))
};

struct ZoneSet;

/// Regional house prices for the home product (docs/fund-model.md, "The twin's home loans by
/// zone"): opening and new home loans are spread over the zones by `mix`, and each loan's
/// collateral follows its zone's index (the zones load on the scenario's national index), so
/// the loss given default carries the book's regional concentration.
struct HomeZones {
  std::shared_ptr<const ZoneSet> zones;  ///< null: every home loan follows the national index
  std::vector<double> mix;               ///< share of home loans per zone (sums to 1)
};

struct InstitutionConfig {
  std::string name;
  std::string description;
  /// ISO 4217 code of the currency every amount is in (reports state it); default USD.
  std::string currency = "USD";
  std::string file;  ///< where it was loaded from
  int members = 10000;
  std::array<ProductLine, kNumProducts> products;

  // Balance sheet (fractions, annual rates).
  double equity_to_assets = 0.10;  ///< initial equity / total assets
  double liquid_share = 0.20;      ///< initial liquid assets / total assets
  double deposit_growth = 0.03;    ///< annual growth of member deposits
  double member_growth = 0.0;      ///< annual growth of members: application flow, fixed costs
  /// Dividend policy: earnings that would lift equity / total assets above this are paid out
  /// (credit unions: bonus dividends to members; banks: to shareholders). 0 = retain all.
  double net_worth_target = 0.0;
  double deposit_beta = 0.45;  ///< deposit rate = beta * policy rate + deposit_spread
  double deposit_spread = 0.0;
  double wholesale_spread = 0.015;      ///< wholesale rate = policy rate + spread
  double liquid_yield_spread = -0.002;  ///< liquid assets earn policy rate + spread (>= 0)
  double liquid_term_share = 0.5;  ///< share of liquid assets yielding the 10-year rate (the rest:
                                   ///< the policy rate), a few years' duration
  /// Opening secured-line draw / total assets (synced institutions: their borrowings).
  double borrowings_share = 0.0;
  double min_liquidity = 0.05;         ///< liquid floor / deposits; shortfalls borrow wholesale
  double liquidity_runoff = 0.10;      ///< stressed deposit runoff for the liquidity ratio
  double fixed_cost_per_member = 120;  ///< annual fixed cost per member, currency
  double tax_rate = 0.0;               ///< on positive pre-tax income (credit unions: 0)
  double op_risk_factor = 0.15;        ///< operational-risk capital / annual gross income
  double sicr_multiple = 2.0;  ///< stage 2 when point-in-time PD > multiple x PD at origination
  double restructure_concession = 0.02;  ///< rate cut granted on a restructuring cure
  int default_risk_appetite = 2;         ///< rule-based risk appetite level (0..4)
  std::array<int, kNumDelinquentBuckets> default_collection = {1, 2, 2};  ///< soft, hard, hard
  CreditCycle cycle;
  CapitalRules capital;      ///< the regulatory frame (`capital:`; default basel)
  AllowanceRules allowance;  ///< the loss allowance (`allowance:`; default CECL)
  AlmRules alm;              ///< securities, deposits, borrowing capacity, EVE (`alm:`)
  /// A book loaded from a loan tape (`book:`, written by loantwin sync): the twin opens with
  /// these loans instead of drawing a synthetic book. Null for the synthetic presets.
  std::shared_ptr<const InitialBook> book;
  std::string as_of;     ///< YYYY-MM: the date of month 0 (`as_of:`; synced institutions)
  HomeZones home_zones;  ///< `home_zones:`; none by default
  std::string base;      ///< the preset this one starts from (`base:`), "" if none
};

/// Loads a preset by name (configs/institutions/<name>.yaml) or path; a directory (what
/// loantwin sync writes) loads its institution.yaml. Strict: unknown keys, wrong
/// types, out-of-range values and missing files raise ConfigError naming file, line and key.
std::shared_ptr<const InstitutionConfig> LoadInstitution(const std::string& name_or_path);
/// Parses preset text (tests); `name` stands in for the file name in messages.
std::shared_ptr<const InstitutionConfig> ParseInstitution(const std::string& yaml,
                                                          const std::string& name);

}  // namespace loantwin
