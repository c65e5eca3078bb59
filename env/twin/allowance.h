#pragma once
// The loan-loss allowance: CECL (ASC 326, the default) or IFRS 9 staging, both from one
// lifetime-loss engine. Equations and sources: docs/twin-model.md ("Loss allowance").

#include <array>
#include <string>
#include <vector>

namespace loantwin {

class YamlValue;

enum class AllowanceMethod { kCecl, kIfrs9 };
const char* AllowanceMethodName(AllowanceMethod m);

/// One probability-weighted forecast: the credit factor shifted by z_shift over the forecast
/// window (negative = worse than today).
struct AllowanceScenario {
  std::string name;
  double weight = 1;
  double z_shift = 0;
};

/// The institution's `allowance:` block.
struct AllowanceRules {
  AllowanceMethod method = AllowanceMethod::kCecl;
  int forecast_months = 12;   ///< reasonable-and-supportable window at the forecast PD
  int reversion_months = 12;  ///< straight-line reversion to the long-run PD after it
  bool discount = true;       ///< discount expected losses at the loan's effective rate
  std::vector<AllowanceScenario> scenarios;  ///< empty: one forecast at today's credit factor
  int probation_months = 3;                  ///< ifrs9: a cured loan stays in stage 2 this long
  int restructured_probation_months = 12;    ///< ifrs9: after a restructuring cure
};

/// Parses `allowance:` (strict: unknown keys, bad values and weights that do not sum to 1 are
/// errors naming the file, line and key).
void ParseAllowanceRules(const YamlValue& node, AllowanceRules* rules);

/// Longest remaining term the loss curves cover, months (longer terms use this one).
inline constexpr int kMaxLossMonths = 480;
/// Horizon of a revolving balance's lifetime loss, months.
inline constexpr int kRevolvingLossMonths = 120;

/// Monthly default probabilities of a performing loan for months 1..months ahead: the
/// forecast annual PD for `forecast_months`, straight-line to the long-run PD over
/// `reversion_months`, then the long-run PD. out[t - 1] is month t.
void ForecastMonthlyPd(double pd_forecast, double pd_long_run, const AllowanceRules& rules,
                       int months, std::vector<double>* out);

enum class Repayment { kAnnuity, kLinear, kRevolving };

/// Expected lifetime loss per unit of balance and unit LGD of a performing loan, for every
/// remaining term n = 0..max_months (<= kMaxLossMonths): life[n] over the whole remaining term,
/// twelve[n] over its next 12 months (IFRS 9 stage 1). Defaults at month t lose the balance
/// outstanding before that month's payment: the contractual schedule (annuity at `annual_rate`, or
/// linear), less prepayments (`smm` a month) and earlier defaults; losses are discounted at
/// `annual_rate` when `discount`. Revolving balances (life[0], twelve[0] only) pay down at
/// `payment_rate` a month over kRevolvingLossMonths: undrawn limits are unconditionally
/// cancellable, so CECL holds no allowance on them. `monthly_pd` must cover max_months (revolving:
/// kRevolvingLossMonths).
void LossCurves(const std::vector<double>& monthly_pd, double smm, double annual_rate,
                Repayment repayment, double payment_rate, bool discount, int max_months,
                float* life, float* twelve);

/// LossCurves for `count` loans at once (one per score band: monthly_pd[k], annual_rate[k],
/// life[k], twelve[k]), each result exactly LossCurves'. The bands' month-by-month recurrences
/// run interleaved, so their divisions overlap instead of waiting on one another.
void LossCurvesMany(int count, const std::vector<double>* monthly_pd, double smm,
                    const double* annual_rate, Repayment repayment, double payment_rate,
                    bool discount, int max_months, float* const* life, float* const* twelve);

}  // namespace loantwin
