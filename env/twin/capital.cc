#include "env/twin/capital.h"

#include <algorithm>

namespace loantwin {
namespace {

// The category bounds of the headline ratio (CapitalMinimum / CapitalBuffer read them too).
constexpr double kNcuaWell = 0.07, kNcuaAdequate = 0.06;    // net worth ratio
constexpr double kBaselWell = 0.10, kBaselAdequate = 0.08;  // CET1 = total capital

double Ratio(double a, double b) {
  return b > 0 ? a / b : 0.0;
}

// 12 CFR 702.102(a): net worth ratio thresholds; 702.104: risk-based capital ratio of complex
// credit unions (10% well, 8% adequately capitalised); 702.104(d): CCULR at 9%.
int NcuaCategory(const CapitalRules& rules, bool complex, double nwr, double rbc) {
  if (nwr < 0.02) return kCriticallyUndercapitalised;
  if (nwr < 0.04) return kSignificantlyUndercapitalised;
  if (complex && rules.cculr && nwr >= 0.09) return kWellCapitalised;
  if (nwr < kNcuaAdequate || (complex && rbc < 0.08)) return kUndercapitalised;
  if (nwr < kNcuaWell || (complex && rbc < 0.10)) return kAdequatelyCapitalised;
  return kWellCapitalised;
}

// 12 CFR 324.403(b), with every capital ratio equal to CET1 (the twin's capital is all common
// equity): well capitalised needs total capital >= 10% (so CET1 >= 10%) and leverage >= 5%;
// adequately total >= 8% and leverage >= 4%; significantly undercapitalised below total 6% or
// leverage 3%; critically at tangible equity / total assets <= 2%.
int BaselCategory(double cet1, double leverage) {
  if (leverage <= 0.02) return kCriticallyUndercapitalised;
  if (cet1 < 0.06 || leverage < 0.03) return kSignificantlyUndercapitalised;
  if (cet1 < kBaselAdequate || leverage < 0.04) return kUndercapitalised;
  if (cet1 < kBaselWell || leverage < 0.05) return kAdequatelyCapitalised;
  return kWellCapitalised;
}

}  // namespace

CapitalPosition AssessCapital(const CapitalRules& rules, bool complex, const CapitalInputs& in) {
  CapitalPosition p;
  p.net_worth_ratio = Ratio(in.equity, in.total_assets);
  if (rules.regime == CapitalRegime::kNcua) {
    // 702.104(b): the allowance counts up to 1.25% of risk-weighted assets.
    const double allowance = std::min(in.allowance, 0.0125 * in.ncua_rwa);
    p.rbc_ratio = Ratio(in.equity + allowance, in.ncua_rwa);
    p.ratio = p.net_worth_ratio;
    p.category = NcuaCategory(rules, complex, p.net_worth_ratio, p.rbc_ratio);
  } else {
    p.ratio = Ratio(in.equity, in.basel_rwa);
    p.category = BaselCategory(p.ratio, p.net_worth_ratio);
  }
  return p;
}

double CapitalMinimum(CapitalRegime regime) {
  return regime == CapitalRegime::kNcua ? kNcuaAdequate : kBaselAdequate;
}

double CapitalBuffer(CapitalRegime regime) {
  return regime == CapitalRegime::kNcua ? kNcuaWell : kBaselWell;
}

const char* CapitalRegimeName(CapitalRegime regime) {
  return regime == CapitalRegime::kNcua ? "ncua" : "basel";
}

const char* CapitalCategoryName(int category) {
  static const char* const kNames[kNumCapitalCategories] = {
      "well capitalised", "adequately capitalised", "undercapitalised",
      "significantly undercapitalised", "critically undercapitalised"};
  return category >= 0 && category < kNumCapitalCategories ? kNames[category] : "unknown";
}

const char* CapitalRatioName(CapitalRegime regime) {
  return regime == CapitalRegime::kNcua ? "net worth ratio" : "CET1 ratio";
}

}  // namespace loantwin
