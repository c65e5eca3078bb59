#pragma once
// The five lending products and their economics. Defaults are a US consumer-lending
// calibration (sources in docs/twin-model.md); every field can be overridden per institution
// in its preset under `products.<name>`.

#include <array>
#include <string>
#include <vector>

namespace loantwin {

class YamlMap;

enum Product : int { kPersonal = 0, kAuto = 1, kHome = 2, kCard = 3, kBusiness = 4 };
inline constexpr int kNumProducts = 5;
inline constexpr std::array<const char*, kNumProducts> kProductNames = {"personal", "auto", "home",
                                                                        "card", "business"};

/// Score bands A (best, FICO ~760+) .. G (worst, FICO < 600); Lending Club grades map 1:1.
inline constexpr int kNumBands = 7;
inline constexpr std::array<const char*, kNumBands> kBandNames = {"A", "B", "C", "D",
                                                                  "E", "F", "G"};
using BandArray = std::array<double, kNumBands>;

/// Delinquency buckets of an open loan (reporting and collection). A loan stores its months past
/// due (0 .. charge-off month - 1); 3 and more are the 90+ bucket. Charged-off and closed loans
/// leave the book.
enum Bucket : int { kCurrent = 0, kDpd30 = 1, kDpd60 = 2, kDpd90 = 3 };
inline constexpr int kNumBuckets = 4;
inline constexpr int kNumDelinquentBuckets = 3;  // 30, 60, 90+
/// Longest charge-off rule in months past due (charge_off_dpd: 360) and the longest recovery
/// or liquidation timeline (recovery_months).
inline constexpr int kMaxChargeOffMonths = 12;
inline constexpr int kMaxRecoveryMonths = 60;
/// Longest lag of a product's credit factor behind the economy (cycle_lag_months).
inline constexpr int kMaxCycleLagMonths = 24;

enum class BaselClass { kMortgage, kRevolving, kOtherRetail };
enum class RateIndex { kPolicy, kMortgage };

/// One origination term option of a product.
struct TermOption {
  int months = 36;       ///< contractual term; 0 = revolving (cards)
  double weight = 1.0;   ///< share of applications choosing this term (normalised)
  BandArray band_mix{};  ///< applicant score mix for this term (normalised); empty = product's
  bool has_band_mix = false;
};

struct ProductSpec {
  // --- origination ---
  std::vector<TermOption> terms;  ///< at least one; revolving products use {months: 0}
  double mean_amount = 10000;     ///< mean loan amount (card: mean credit limit), currency
  double amount_sigma = 0.5;      ///< lognormal sigma of the amount
  BandArray applicant_mix{};      ///< applicant share per score band (normalised)
  int default_cutoff = 4;         ///< rule-based approval cutoff: worst band approved (0=A..6=G)

  // --- pricing (annual rates as fractions: 0.05 = 5%) ---
  RateIndex rate_index = RateIndex::kPolicy;  ///< reference rate the spread is added to
  bool variable_rate = false;                 ///< rate resets with the reference rate every month
  double default_spread = 0.06;               ///< rule-based spread over the reference rate
  double market_spread = 0.06;                ///< competitors' spread: demand falls above it
  double price_elasticity =
      0.5;                       ///< demand falls by exp(-e * pp) per percentage point above market
  BandArray band_premium{};      ///< risk-based add-on per band
  double origination_fee = 0.0;  ///< fraction of the amount, income at booking
  double annual_fee = 0.0;       ///< per account per year (cards)
  double late_fee = 0.0;         ///< per delinquent account-month

  // --- credit risk ---
  BandArray pd{};           ///< unconditional annual PD per band (z = 0: below it, see docs)
  double cycle_rho = 0.04;  ///< Vasicek correlation of the PD with the credit factor z
  /// The product's credit factor: z_p = -unemployment_beta * u - gdp_beta * g - hpi_beta * h,
  /// the terms of the credit factor (docs/twin-model.md) as they were cycle_lag_months ago.
  double unemployment_beta = 1.0;
  double gdp_beta = 1.0;
  /// House prices: z_p also falls by hpi_beta per 10 pp of 12-month HPI growth below 3% a year
  /// (secured lending; 0 for the unsecured products).
  double hpi_beta = 0.0;
  int cycle_lag_months = 3;
  double payment_shock = 0.0;  ///< roll-rate multiplier 1 + b * (rise of reference rate in pp
                               ///< over 12 months), variable-rate products
  double lgd = 0.8;            ///< LGD of unsecured exposure (secured: floor of the LGD)
  double ltv_mean = 0.0;       ///< secured: loan-to-value at origination (0 = unsecured)
  double ltv_sd = 0.0;         ///< secured: dispersion of LTV at origination
  double sale_cost = 0.1;      ///< secured: liquidation cost as fraction of collateral value
  double depreciation = 0.0;   ///< secured movable collateral: monthly value decline
  double negative_equity_beta = 0.0;  ///< home: roll-rate multiplier 1 + b * max(0, LTV - 1)
  double fraud_rate = 0.001;  ///< share of new loans that are first-payment fraud (LGD 100%)

  // --- delinquency and loss timing (docs/twin-model.md, "Delinquency") ---
  /// Monthly roll 30 -> 60 and 60 -> 90 dpd under standard collection at z = 0.
  std::array<double, 2> roll_forward{0.35, 0.55};
  /// Monthly cure to current from 30, 60 and 90+ dpd under standard collection at z = 0.
  std::array<double, 3> cure{0.45, 0.25, 0.10};
  /// Roll-forward rates scale by R = (mean PD at z / mean PD at z = 0)^beta and cures by 1 / R.
  double roll_cycle_beta = 0.15;
  /// Days past due at which a loan is charged off (closed-end 120, open-end and residential 180:
  /// FFIEC Uniform Retail Credit Classification Policy); a multiple of 30 from 90 to 360.
  int charge_off_dpd = 120;
  /// Unsecured: months over which recoveries on a charge-off are collected (evenly). Secured:
  /// months from the write-down to the sale of the repossessed collateral (foreclosure / REO or
  /// repossession), when the sale proceeds are booked.
  int recovery_months = 12;
  /// Roll-into-30-dpd hazard multiplier of restructured loans (re-default uplift).
  double redefault_multiplier = 2.0;
  BaselClass basel_class = BaselClass::kOtherRetail;

  // --- prepayment (OTS S-curve on the coupon / market-rate ratio, scaled) ---
  double prepay_cpr = 0.10;       ///< annual CPR of a seasoned loan at coupon = market rate
  double prepay_seasoning = 12;   ///< months to reach full prepayment speed (linear ramp)
  double prepay_incentive = 1.0;  ///< 0 = flat CPR, 1 = full OTS S-curve shape

  // --- revolving (cards) ---
  double payment_rate = 0.0;         ///< monthly principal repaid as fraction of balance
  double draw_rate = 0.0;            ///< monthly new purchases as fraction of unused limit
  double initial_utilisation = 0.3;  ///< drawn / limit at booking
  double ccf = 0.75;                 ///< credit conversion factor of undrawn limit (EAD)

  // --- costs (currency) ---
  double origination_cost = 150;  ///< per booked loan
  double servicing_cost = 3;      ///< per open account per month
  double marketing_cost = 20;     ///< per application generated at budget 1.0

  bool revolving() const { return terms.size() == 1 && terms[0].months == 0; }
  int charge_off_months() const { return charge_off_dpd / 30; }
};

/// The built-in defaults for each product.
ProductSpec DefaultProductSpec(Product p);

/// Overrides fields of `spec` from a YAML mapping (consumes the keys it knows).
void ParseProductSpec(YamlMap& map, ProductSpec* spec);

/// Throws ConfigError (prefixed with `where`) on inconsistent specs.
void ValidateProductSpec(const ProductSpec& spec, const std::string& where);

}  // namespace loantwin
