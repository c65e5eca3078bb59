#include "serve/adverse_action.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "env/twin/institution.h"

namespace loantwin {

std::vector<double> ShapleyValues(const std::function<double(const std::vector<double>&)>& f,
                                  const std::vector<double>& x,
                                  const std::vector<double>& reference) {
  const int n = static_cast<int>(x.size());
  if (n != static_cast<int>(reference.size()) || n > 16)
    throw std::invalid_argument("ShapleyValues: x and reference differ in size (or > 16)");
  const uint32_t coalitions = 1u << n;
  std::vector<double> value(coalitions);
  std::vector<double> z(n);
  for (uint32_t s = 0; s < coalitions; ++s) {
    for (int i = 0; i < n; ++i) z[i] = (s >> i & 1u) ? x[i] : reference[i];
    value[s] = f(z);
  }
  // weight[k] = k! (n - k - 1)! / n!
  std::vector<double> weight(n);
  for (int k = 0; k < n; ++k) {
    double w = 1.0 / n;
    for (int j = 1; j <= k; ++j) w *= static_cast<double>(j) / (n - j);
    weight[k] = w;
  }
  std::vector<double> phi(n, 0.0);
  for (uint32_t s = 0; s < coalitions; ++s)
    for (int i = 0; i < n; ++i)
      if (!(s >> i & 1u)) phi[i] += weight[__builtin_popcount(s)] * (value[s | 1u << i] - value[s]);
  return phi;
}

namespace {

CreditApplication With(const CreditApplication& a, const std::vector<double>& z, double ref_rate) {
  CreditApplication c = a;
  c.band = std::clamp(static_cast<int>(std::lround(z[0])), 0, kNumBands - 1);
  c.amount = z[1];
  c.term = static_cast<int>(std::lround(z[2]));
  c.income = z[3];
  c.monthly_debt = z[4];
  c.reference_rate = ref_rate;
  return c;
}

struct CodeText {
  const char* decline_code;
  const char* decline_text;
};
// Per applicant feature (kApplicantFeatures order): the reason code and its text (the wording
// follows Regulation B's sample notice reasons, docs/governance.md).
constexpr CodeText kCodes[kNumApplicantFeatures] = {
    {"CS01", "Credit score below the credit policy's approval cutoff"},
    {"AM01", "Amount of credit requested is too large"},
    {"TM01", "Term requested is not offered for this product"},
    {"IN01", "Income insufficient for amount of credit requested"},
    {"OB01", "Excessive obligations in relation to income"},
};

std::vector<ReasonCode> Rank(const std::vector<double>& phi, bool price) {
  std::vector<int> order;
  for (int i = 0; i < kNumApplicantFeatures; ++i)
    if (phi[i] > 1e-12) order.push_back(i);
  // Largest first; ties in feature order (stable), so the ranking is deterministic.
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return phi[a] > phi[b]; });
  if (order.size() > 4) order.resize(4);
  std::vector<ReasonCode> out;
  for (int i : order) {
    if (price)
      out.push_back({"CS02", kApplicantFeatures[i],
                     "Credit score: the rate includes a risk premium over the best rate", phi[i]});
    else
      out.push_back(
          {kCodes[i].decline_code, kApplicantFeatures[i], kCodes[i].decline_text, phi[i]});
  }
  return out;
}

nlohmann::json ToJson(const std::vector<ReasonCode>& reasons) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& r : reasons)
    j.push_back({{"code", r.code},
                 {"feature", r.feature},
                 {"reason", r.text},
                 {"contribution", r.contribution}});
  return j;
}

}  // namespace

nlohmann::json Explanation::ReasonsJson() const {
  return ToJson(reasons);
}
nlohmann::json Explanation::PriceReasonsJson() const {
  return ToJson(price_reasons);
}

bool Declines(const InstitutionConfig& inst, const CreditApplication& a, const ServedRole& credit,
              const DecisionContext& ctx) {
  if (UnderwritingRules(inst, a)) return true;
  if (!ctx.policy_ran) return false;
  if (a.band > ctx.cutoff) return true;
  CreditApplication priced = a;
  if (!std::isnan(ctx.reference_rate)) priced.reference_rate = ctx.reference_rate;
  const Offer offer =
      PriceApplication(priced, inst.products[a.product].spec, credit, ctx.offset, "", "");
  return offer.decline.has_value();
}

Explanation ExplainCredit(const InstitutionConfig& inst, const CreditApplication& a,
                          const ServedRole& credit, const DecisionContext& context) {
  const ProductSpec& spec = inst.products[a.product].spec;
  DecisionContext ctx = context;
  if (std::isnan(ctx.reference_rate)) {
    ctx.reference_rate = 0;
    try {
      const Offer o = PriceApplication(a, spec, credit, ctx.offset, "", "");
      ctx.reference_rate = o.detail.at("rate_parts").at("reference").get<double>();
    } catch (const BadRequest&) {
      // A rule decline without a rate in the request: the reasons do not depend on the rate.
    }
  }
  Explanation e;
  // The reference applicant: the best band, an amount within the product's mean, an offered
  // term (the applicant's when it is offered), no other debt, and an income at which the
  // payment and the applicant's own obligations are at most 20% of it.
  int term = spec.terms.empty() ? 0 : spec.terms.front().months;
  for (const auto& t : spec.terms)
    if (t.months == a.term) term = a.term;
  std::vector<double> ref = {0, std::min(a.amount, spec.mean_amount), static_cast<double>(term),
                             a.income, 0};
  {
    CreditApplication r = With(a, ref, ctx.reference_rate);
    const Offer o = PriceApplication(r, spec, credit, ctx.offset, "", "");
    const double payment = o.detail.at("monthly_payment").get<double>();
    // High enough to carry the applicant's own obligations too: with the reference income no
    // single obligation declines, so income and debt share a debt-to-income decline.
    ref[3] = std::max(a.income, 12 * (payment + a.monthly_debt) / 0.2);
  }
  e.reference = ref;
  const std::vector<double> x = {static_cast<double>(a.band), a.amount, static_cast<double>(a.term),
                                 a.income, a.monthly_debt};
  e.decline = Declines(inst, a, credit, ctx);
  if (e.decline) {
    const auto phi = ShapleyValues(
        [&](const std::vector<double>& z) {
          return Declines(inst, With(a, z, ctx.reference_rate), credit, ctx) ? 1.0 : 0.0;
        },
        x, ref);
    e.reasons = Rank(phi, false);
    // The reference applicant is declined too: no applicant-level reason, say why.
    if (e.reasons.empty() && !inst.products[a.product].offered)
      e.reasons.push_back({"PR01", "product", "Product not offered", 1.0});
    else if (e.reasons.empty())
      e.reasons.push_back({"PL01", "policy",
                           "The credit policy approves no applications for this product now", 1.0});
  } else if (ctx.policy_ran) {
    const auto phi = ShapleyValues(
        [&](const std::vector<double>& z) {
          const Offer o =
              PriceApplication(With(a, z, ctx.reference_rate), spec, credit, ctx.offset, "", "");
          return o.detail.at("offered_rate").get<double>();
        },
        x, ref);
    e.price_reasons = Rank(phi, true);
  }
  return e;
}

}  // namespace loantwin
