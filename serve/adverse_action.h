#pragma once
// Adverse-action reasons for credit decisions (docs/governance.md): the principal reasons for a
// decline, or for a price above the best rate, ranked by the exact Shapley attribution of the
// decision to the applicant-level features (score band, amount, term, income, monthly debt)
// against a reference applicant who is approved at the best price, and mapped to reason codes.
// Exact (every coalition of the five features is evaluated: 32 decisions), so deterministic.

#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "serve/credit_application.h"

namespace loantwin {

/// Exact Shapley values of f at x against `reference`: phi_i = sum over coalitions S without i
/// of |S|! (n - |S| - 1)! / n! x (f(x_{S+i}) - f(x_S)), features outside a coalition taking
/// the reference's value. sum_i phi_i = f(x) - f(reference). At most 16 features.
std::vector<double> ShapleyValues(const std::function<double(const std::vector<double>&)>& f,
                                  const std::vector<double>& x,
                                  const std::vector<double>& reference);

/// The applicant-level features, in attribution order.
inline constexpr const char* kApplicantFeatures[] = {"score", "amount", "term_months", "income",
                                                     "monthly_debt"};
inline constexpr int kNumApplicantFeatures = 5;

struct ReasonCode {
  std::string code, feature, text;
  double contribution = 0;  ///< Shapley value (decline: share of the decision; price: rate)
};

/// What the decision knew: the credit policy's cutoff (or none yet: a rule decline before the
/// policy ran), the pricing offset and the reference rate the offer used.
struct DecisionContext {
  int cutoff = kNumBands - 1;  ///< worst band approved
  bool policy_ran = true;      ///< false: only the underwriting rules were evaluated
  double offset = 0;           ///< pricing offset
  /// The offer's reference rate; NaN: the application's (its reference_rate or the state's
  /// rate feature, as PriceApplication reads it; 0 when neither is there).
  double reference_rate = std::numeric_limits<double>::quiet_NaN();
};

struct Explanation {
  bool decline = false;
  std::vector<ReasonCode> reasons;        ///< decline reasons, largest first (up to 4)
  std::vector<ReasonCode> price_reasons;  ///< why the rate is above the best rate
  std::vector<double> reference;          ///< the reference applicant (kApplicantFeatures)
  nlohmann::json ReasonsJson() const;
  nlohmann::json PriceReasonsJson() const;
};

/// The decision the server takes for the application in this context (rules, cutoff, DTI at the
/// offered rate): true = decline.
bool Declines(const InstitutionConfig& institution, const CreditApplication& a,
              const ServedRole& credit, const DecisionContext& context);

/// Reasons for the application's decision; `credit` is only used through PriceApplication.
Explanation ExplainCredit(const InstitutionConfig& institution, const CreditApplication& a,
                          const ServedRole& credit, const DecisionContext& context);

}  // namespace loantwin
