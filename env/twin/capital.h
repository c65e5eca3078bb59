#pragma once
// The regulatory capital frame an institution is judged by (institution YAML `capital:`):
// `ncua` for US credit unions (net worth ratio, prompt corrective action categories, the
// risk-based capital ratio of complex credit unions and the CCULR option; 12 CFR Part 702) or
// `basel` for banks (CET1 on IRB risk-weighted assets with the output floor, US PCA categories
// of 12 CFR 324.403). The regime's headline ratio (`capital_ratio`) and category
// (`capital_category`) are what rewards, termination, guardrails and reports read
// (docs/twin-model.md, "Regulatory capital").

#include <string>

namespace loantwin {

enum class CapitalRegime { kNcua, kBasel };

/// Prompt corrective action categories, best first (the same five for both regimes).
enum CapitalCategory : int {
  kWellCapitalised = 0,
  kAdequatelyCapitalised = 1,
  kUndercapitalised = 2,
  kSignificantlyUndercapitalised = 3,
  kCriticallyUndercapitalised = 4,
};
inline constexpr int kNumCapitalCategories = 5;

struct CapitalRules {
  CapitalRegime regime = CapitalRegime::kBasel;
  /// NCUA: a complex credit union (total assets above $500 million, 12 CFR 702.103) is also
  /// held to the risk-based capital ratio. -1: decided from the opening total assets.
  int complex = -1;
  /// NCUA: a complex credit union that opted into the community bank leverage ratio framework
  /// (CCULR, 12 CFR 702.104(d)) is well capitalised with a net worth ratio of 9% or more and
  /// then needs no risk-based capital ratio; below 9% it falls back to the standard rules.
  bool cculr = false;
  /// Whether unrealised gains and losses on securities (AOCI) count in capital: basel only
  /// (-1: yes under basel, as Basel III CET1; US non-advanced banks may opt out with `false`).
  /// NCUA net worth is retained earnings and never includes them.
  int aoci_in_capital = -1;
};

/// What the ratios are computed from (currency, end of month).
struct CapitalInputs {
  double equity = 0;        ///< net worth (retained earnings) / CET1 capital
  double total_assets = 0;  ///< loans - allowance + liquid assets
  double basel_rwa = 0;     ///< IRB credit (floored) + operational risk-weighted assets
  double ncua_rwa = 0;      ///< risk-weighted assets under 12 CFR 702.104(c)
  double allowance = 0;     ///< credit loss allowance (NCUA: counts up to 1.25% of RWA)
};

struct CapitalPosition {
  double ratio = 0;            ///< the regime's headline ratio: net worth ratio or CET1 ratio
  int category = 0;            ///< CapitalCategory
  double net_worth_ratio = 0;  ///< equity / total assets (both regimes; the leverage ratio)
  double rbc_ratio = 0;        ///< NCUA risk-based capital ratio (0 under basel)
};

/// The ratios and category for one month. `complex` is the rules' flag resolved (true/false).
CapitalPosition AssessCapital(const CapitalRules& rules, bool complex, const CapitalInputs& in);

/// The headline ratio below which the institution is undercapitalised (NCUA: 6% net worth;
/// Basel: 8% CET1, the total capital minimum with all capital CET1) and below which it is not
/// well capitalised (NCUA: 7%; Basel: 10%). Leverage tests (Basel) and the RBC ratio (complex
/// credit unions) can lower the category further: `capital_category` is the full answer.
double CapitalMinimum(CapitalRegime regime);
double CapitalBuffer(CapitalRegime regime);

const char* CapitalRegimeName(CapitalRegime regime);  ///< "ncua" | "basel"
/// "well capitalised", "adequately capitalised", "undercapitalised",
/// "significantly undercapitalised", "critically undercapitalised".
const char* CapitalCategoryName(int category);
/// The headline ratio's name in reports: "net worth ratio" or "CET1 ratio".
const char* CapitalRatioName(CapitalRegime regime);

/// NCUA's complex credit union threshold: total assets above $500 million (12 CFR 702.103).
inline constexpr double kNcuaComplexAssets = 500e6;

}  // namespace loantwin
