#include "serve/credit_application.h"

#include <fmt/format.h>

#include <set>

#include "env/twin/product.h"
#include "env/twin_env.h"
#include "serve/decide_request.h"

using json = nlohmann::json;

namespace loantwin {

int BandOfScore(double score) {
  const double floors[] = {760, 720, 690, 660, 630, 600};
  for (int b = 0; b < 6; ++b)
    if (score >= floors[b]) return b;
  return 6;
}

CreditApplication ParseCreditApplication(const json& req, const ServedRole& credit,
                                         const ServedRole* pricing,
                                         std::vector<float>* credit_obs) {
  CreditApplication a;
  static const std::set<std::string> keys = {"product",      "amount",         "term_months",
                                             "score",        "band",           "income",
                                             "monthly_debt", "reference_rate", "state"};
  for (const auto& [k, v] : req.items())
    if (!keys.count(k)) throw BadRequest{"unknown key '" + k + "'", k};
  auto number = [&](const char* key, bool required, double lo, double hi, double* out) {
    if (!req.contains(key)) {
      if (required) throw BadRequest{std::string("missing '") + key + "'", key};
      return;
    }
    const json& v = req[key];
    if (!v.is_number()) throw BadRequest{std::string("'") + key + "' must be a number", key};
    const double x = v.get<double>();
    if (!std::isfinite(x) || x < lo || x > hi)
      throw BadRequest{fmt::format("'{}' = {} is outside [{}, {}]", key, x, lo, hi), key};
    *out = x;
  };
  if (!req.contains("product") || !req["product"].is_string())
    throw BadRequest{"missing 'product' (one of personal, auto, home, card, business)", "product"};
  for (int p = 0; p < kNumProducts; ++p)
    if (req["product"] == kProductNames[p]) a.product = p;
  if (a.product < 0)
    throw BadRequest{"unknown product (one of personal, auto, home, card, business)", "product"};
  number("amount", true, 1e-9, 1e9, &a.amount);
  double term = 0;
  number("term_months", false, 0, 600, &term);
  a.term = static_cast<int>(term);
  if (term != a.term) throw BadRequest{"'term_months' must be a whole number", "term_months"};
  number("income", true, 1e-9, 1e10, &a.income);
  number("monthly_debt", false, 0, 1e9, &a.monthly_debt);
  number("reference_rate", false, -0.05, 0.5, &a.reference_rate);
  if (req.contains("score") == req.contains("band"))
    throw BadRequest{"give exactly one of 'score' (300-850) and 'band' (A-G)", "score"};
  if (req.contains("score")) {
    double score = 0;
    number("score", true, 300, 850, &score);
    a.band = BandOfScore(score);
  } else {
    if (!req["band"].is_string()) throw BadRequest{"'band' must be one of A-G", "band"};
    for (int k = 0; k < kNumBands; ++k)
      if (req["band"] == kBandNames[k]) a.band = k;
    if (a.band < 0) throw BadRequest{"'band' must be one of A-G", "band"};
  }
  if (!req.contains("state"))
    throw BadRequest{"missing 'state': the portfolio observation (credit features)", "state"};
  const json& state = req["state"];
  if (!state.is_object()) throw BadRequest{"'state' must be an object of feature values", "state"};
  json credit_state = json::object();
  for (const auto& [k, v] : state.items()) {
    const bool for_credit = credit.feature_index.count(k) > 0;
    if (!for_credit && (!pricing || !pricing->feature_index.count(k)))
      throw BadRequest{"unknown feature '" + k + "' (neither a credit nor a pricing feature)",
                       "state." + k};
    if (!v.is_number())  // checked before anything is copied
      throw BadRequest{fmt::format("feature '{}' must be a number, not {}", k, v.type_name()),
                       "state." + k};
    if (for_credit) credit_state[k] = v;
  }
  credit_obs->assign(credit.features.size(), 0.0f);
  ReadObservation(credit_state, credit, "state", credit_obs->data());
  a.state = state;
  return a;
}

std::vector<float> PricingObservation(const CreditApplication& a, const ServedRole& pricing) {
  std::vector<float> obs(pricing.features.size(), 0.0f);
  json state = json::object();
  for (const auto& f : pricing.features)
    if (a.state.contains(f)) state[f] = a.state[f];
  try {
    ReadObservation(state, pricing, "state", obs.data());
  } catch (const BadRequest& e) {
    throw BadRequest{e.message + " (the pricing policy needs it)", e.field};
  }
  return obs;
}

std::optional<Decline> UnderwritingRules(const InstitutionConfig& inst,
                                         const CreditApplication& a) {
  const ProductLine& line = inst.products[a.product];
  const ProductSpec& spec = line.spec;
  if (!line.offered)
    return Decline{"rule:product_not_offered",
                   fmt::format("{} does not offer {}", inst.name, kProductNames[a.product])};
  bool term_ok = false;
  std::string terms;
  for (const auto& t : spec.terms) {
    term_ok |= t.months == a.term;
    terms += (terms.empty() ? "" : ", ") + std::to_string(t.months);
  }
  if (!term_ok)
    return Decline{"rule:term_not_offered",
                   fmt::format("term {} months is not offered (terms: {})", a.term, terms)};
  const double max_amount = 5 * spec.mean_amount;
  if (a.amount > max_amount)
    return Decline{"rule:amount_limit",
                   fmt::format("amount {:.0f} above the product limit {:.0f} (5 x mean amount)",
                               a.amount, max_amount)};
  return std::nullopt;
}

std::optional<CreditCutoff> CutoffFromActions(const ServedRole& credit, const std::string& product,
                                              const int64_t* actions) {
  for (size_t c = 0; c < credit.components.size(); ++c) {
    const ActionComponent& comp = credit.components[c];
    if (comp.name != "cutoff/" + product) continue;
    const int64_t idx = actions[c];
    CreditCutoff out;
    out.band = idx < static_cast<int64_t>(comp.values.size())
                   ? static_cast<int>(comp.values[idx])
                   : static_cast<int>(idx) - 1;  // -1 = none, 0 = A .. 6 = G
    out.meaning = idx < static_cast<int64_t>(comp.meanings.size()) ? comp.meanings[idx] : "";
    return out;
  }
  return std::nullopt;
}

std::optional<double> PricingOffsetFromActions(const ServedRole& pricing,
                                               const std::string& product, const int64_t* actions) {
  for (size_t c = 0; c < pricing.components.size(); ++c)
    if (pricing.components[c].name == "spread_offset/" + product) {
      const auto& comp = pricing.components[c];
      return actions[c] < static_cast<int64_t>(comp.values.size()) ? comp.values[actions[c]] : 0.0;
    }
  return std::nullopt;
}

void ApplyPricingReference(const PolicyBundle& bundle, const ServedRole& credit,
                           CreditApplication* a) {
  if (!bundle.cost_plus_pricing()) return;
  auto rate = [&](const char* feature) {
    const auto it = credit.feature_index.find(feature);
    if (it == credit.feature_index.end() || !a->state.is_object() || !a->state.contains(feature) ||
        !a->state[feature].is_number())
      throw BadRequest{fmt::format("this bundle prices on the cost-plus reference: the state "
                                   "needs '{}' (a number)",
                                   feature),
                       std::string("state.") + feature};
    const int k = it->second;
    return credit.center[k] + credit.scale[k] * a->state[feature].get<double>();
  };
  const double spread =
      CostPlusSpread(bundle.institution(), a->product, rate("macro/policy_rate"),
                     rate("macro/mortgage_rate"), rate("macro/credit_factor"));
  a->cost_plus = true;
  a->cost_plus_move = CostPlusMove(spread, bundle.cost_plus_base(a->product));
}

Offer PriceApplication(const CreditApplication& a, const ProductSpec& spec,
                       const ServedRole& credit, double offset, const std::string& priced_by,
                       const std::string& cutoff_meaning) {
  double ref = a.reference_rate;
  std::string ref_source = "request";
  if (std::isnan(ref)) {
    const char* feature =
        spec.rate_index == RateIndex::kMortgage ? "macro/mortgage_rate" : "macro/policy_rate";
    const auto it = credit.feature_index.find(feature);
    if (it == credit.feature_index.end())
      throw BadRequest{fmt::format("the credit policy does not observe '{}': give "
                                   "'reference_rate'",
                                   feature),
                       "reference_rate"};
    const int k = it->second;
    // The state's value is the normalised feature: rate = center + scale * x (manifest).
    ref = credit.center[k] + credit.scale[k] * a.state[feature].get<double>();
    ref_source = std::string("state ") + feature;
  }
  const double rate =
      ref + spec.default_spread + a.cost_plus_move + spec.band_premium[a.band] + offset;
  const double r = rate / 12;
  const double payment =
      a.term == 0 ? 0.03 * a.amount
                  : (r > 1e-12 ? a.amount * r / (1 - std::pow(1 + r, -a.term)) : a.amount / a.term);
  const double dti = (payment + a.monthly_debt) / (a.income / 12);
  Offer offer;
  offer.detail = {{"band", kBandNames[a.band]},
                  {"cutoff", cutoff_meaning},
                  {"offered_rate", rate},
                  {"rate_parts",
                   {{"reference", ref},
                    {"reference_from", ref_source},
                    {"standard_spread", spec.default_spread},
                    {"band_premium", spec.band_premium[a.band]},
                    {"pricing_offset", offset}}},
                  {"priced_by", priced_by},
                  {"monthly_payment", payment},
                  {"debt_to_income", dti}};
  if (a.cost_plus) {
    offer.detail["rate_parts"]["pricing_reference"] = "cost_plus";
    offer.detail["rate_parts"]["cost_plus_move"] = a.cost_plus_move;
  }
  if (dti > 0.45)
    offer.decline =
        Decline{"rule:dti_limit",
                fmt::format("debt-to-income {:.1f}% above 45% at the offered rate", dti * 100)};
  return offer;
}

}  // namespace loantwin
