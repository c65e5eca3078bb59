#pragma once
// POST /v1/credit/applications (docs/serving.md) as pure functions, no sockets: parse and
// validate an application, the underwriting rules that need no policy, reading the credit
// policy's cutoff and the pricing policy's offset from their actions, and pricing the offer.
// The server strings these together around the two policy calls.

#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "env/twin/institution.h"
#include "serve/bundle.h"
#include "serve/reply.h"

namespace loantwin {

struct CreditApplication {
  int product = -1;  ///< index into kProductNames
  int band = -1;     ///< 0 = A .. 6 = G
  int term = 0;      ///< months (0 for revolving products)
  double amount = 0, income = 0, monthly_debt = 0;
  double reference_rate = NAN;  ///< NaN: derived from the state's rate feature
  nlohmann::json state;         ///< the portfolio observation as sent
  /// A cost-plus pricing reference (ApplyPricingReference): the rule's move of the standard
  /// spread, added to the offered rate.
  bool cost_plus = false;
  double cost_plus_move = 0;
};

/// FICO-like score -> band A..G (docs/serving.md).
int BandOfScore(double score);

/// Validates an application body; BadRequest naming the field otherwise. Writes the credit
/// policy's observation row (its features from `state`).
CreditApplication ParseCreditApplication(const nlohmann::json& request, const ServedRole& credit,
                                         const ServedRole* pricing, std::vector<float>* credit_obs);

/// The pricing policy's observation row from the application's state; BadRequest naming the
/// missing or invalid feature.
std::vector<float> PricingObservation(const CreditApplication& a, const ServedRole& pricing);

/// For a bundle priced on the cost-plus reference (PolicyBundle::cost_plus_pricing): the
/// cost-plus rule's move of the product's standard spread from the bundle's base, from the
/// state's macro/policy_rate, macro/mortgage_rate and macro/credit_factor (as the environment
/// moves it); BadRequest naming a feature the state lacks. No-op for other bundles.
void ApplyPricingReference(const PolicyBundle& bundle, const ServedRole& credit,
                           CreditApplication* a);

/// A decision taken without a policy (or a policy decline), with its reason.
struct Decline {
  std::string by;      ///< "rule:product_not_offered", "policy:credit", ...
  std::string reason;  ///< in words
};

/// Product offered, term offered, amount within 5 x the product's mean amount.
std::optional<Decline> UnderwritingRules(const InstitutionConfig& institution,
                                         const CreditApplication& a);

/// The credit policy's cutoff for a product, read from its actions for this application.
struct CreditCutoff {
  int band = -1;        ///< worst band approved (-1: none)
  std::string meaning;  ///< the action's meaning ("C", "none", ...)
};
/// std::nullopt when the credit policy has no cutoff component for the product.
std::optional<CreditCutoff> CutoffFromActions(const ServedRole& credit, const std::string& product,
                                              const int64_t* actions);

/// The pricing policy's spread offset for a product; std::nullopt when it has no component.
std::optional<double> PricingOffsetFromActions(const ServedRole& pricing,
                                               const std::string& product, const int64_t* actions);

/// The offer: rate = reference + standard spread (+ the cost-plus move on that reference) + band
/// premium + pricing offset; the
/// reference is the request's reference_rate or the state's rate feature (policy rate, or the
/// mortgage rate for mortgage-indexed products) turned back into a rate with the feature's
/// center and scale from the bundle's manifest. `detail` itemises it; a debt-to-income above
/// 45% at the offered rate is a "rule:dti_limit" decline.
struct Offer {
  nlohmann::json detail;
  std::optional<Decline> decline;
};
Offer PriceApplication(const CreditApplication& a, const ProductSpec& spec,
                       const ServedRole& credit, double offset, const std::string& priced_by,
                       const std::string& cutoff_meaning);

}  // namespace loantwin
