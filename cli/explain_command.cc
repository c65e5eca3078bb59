// `loantwin explain <export> --obs application.json`: the decision the decision engine would
// take for a credit application (the body of POST /v1/credit/applications) and its
// adverse-action reasons (serve/adverse_action.h, docs/governance.md), without a server.

#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "core/config_error.h"
#include "serve/adverse_action.h"
#include "serve/bundle.h"
#include "serve/credit_application.h"

namespace loantwin::cli {

namespace {

using json = nlohmann::json;

void PrintReasons(const char* title, const std::vector<ReasonCode>& reasons) {
  if (reasons.empty()) return;
  fmt::print("{}\n", title);
  for (size_t i = 0; i < reasons.size(); ++i)
    fmt::print("  {}. {} {} (feature {}, contribution {:.4g})\n", i + 1, reasons[i].code,
               reasons[i].text, reasons[i].feature, reasons[i].contribution);
}

}  // namespace

Runner RegisterExplain(CLI::App& app) {
  struct Args {
    std::string bundle, obs, institution;
    bool json_out = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "explain",
      "The decision and adverse-action reasons for a credit application (the body of POST "
      "/v1/credit/applications) under an exported policy bundle");
  cmd->add_option("export", a->bundle, "export directory (manifest.json)")->required();
  cmd->add_option("--obs", a->obs, "the application as JSON (a file)")->required();
  cmd->add_option("--institution", a->institution,
                  "institution preset or file (default: the bundle's)");
  cmd->add_flag("--json", a->json_out, "print the decision as JSON (the server's response body)");
  return [a] {
    const auto bundle = PolicyBundle::Load(a->bundle, a->institution, 1);
    const ServedRole* credit = bundle->role("credit");
    const ServedRole* pricing = bundle->role("pricing");
    if (!credit) throw std::invalid_argument(a->bundle + ": the bundle has no credit policy");
    std::ifstream in(a->obs);
    if (!in) throw std::invalid_argument(a->obs + ": cannot be read");
    std::stringstream text;
    text << in.rdbuf();
    json req;
    try {
      req = json::parse(text.str());
    } catch (const json::exception& e) {
      throw ConfigError(fmt::format("{}: not valid JSON ({})", a->obs, e.what()));
    }
    if (!req.is_object()) throw ConfigError(a->obs + ": expected a JSON object (an application)");
    CreditApplication app;
    std::vector<float> obs;
    try {
      app = ParseCreditApplication(req, *credit, pricing, &obs);
      ApplyPricingReference(*bundle, *credit, &app);
    } catch (const BadRequest& e) {
      throw ConfigError(fmt::format("{}: {} (field '{}')", a->obs, e.message, e.field));
    }
    const InstitutionConfig& inst = bundle->institution();
    const ProductSpec& spec = inst.products[app.product].spec;
    json out;
    Explanation why;
    DecisionContext ctx;
    if (auto d = UnderwritingRules(inst, app)) {
      ctx.policy_ran = false;
      why = ExplainCredit(inst, app, *credit, ctx);
      out = {{"decision", "decline"}, {"decided_by", d->by}, {"reason", d->reason}};
    } else {
      std::vector<uint8_t> mask(credit->mask_width, 1);
      ApplyGuardrails(*credit, obs, mask, 1);
      const auto actions = bundle->Decide(*credit, obs, mask, 1);
      const auto cutoff = CutoffFromActions(*credit, kProductNames[app.product], actions.data());
      if (!cutoff)
        throw std::invalid_argument(std::string("the credit policy has no cutoff for ") +
                                    kProductNames[app.product]);
      ctx.cutoff = cutoff->band;
      if (app.band > cutoff->band) {
        why = ExplainCredit(inst, app, *credit, ctx);
        out = {{"decision", "decline"},
               {"decided_by", "policy:credit"},
               {"reason", fmt::format("band {} is worse than the credit policy's cutoff ({})",
                                      kBandNames[app.band], cutoff->meaning)},
               {"cutoff", cutoff->meaning}};
      } else {
        double offset = 0;
        std::string priced_by = app.cost_plus ? "rule:cost_plus" : "rule:standard_spread";
        if (pricing) {
          std::vector<float> pobs;
          try {
            pobs = PricingObservation(app, *pricing);
          } catch (const BadRequest& e) {
            throw ConfigError(fmt::format("{}: {} (field '{}')", a->obs, e.message, e.field));
          }
          std::vector<uint8_t> pmask(pricing->mask_width, 1);
          ApplyGuardrails(*pricing, pobs, pmask, 1);
          const auto pa = bundle->Decide(*pricing, pobs, pmask, 1);
          if (auto o = PricingOffsetFromActions(*pricing, kProductNames[app.product], pa.data()))
            offset = *o, priced_by = "policy:pricing";
        }
        Offer offer;
        try {
          offer = PriceApplication(app, spec, *credit, offset, priced_by, cutoff->meaning);
        } catch (const BadRequest& e) {
          throw ConfigError(fmt::format("{}: {} (field '{}')", a->obs, e.message, e.field));
        }
        ctx.offset = offset;
        ctx.reference_rate = offer.detail["rate_parts"]["reference"].get<double>();
        why = ExplainCredit(inst, app, *credit, ctx);
        out = offer.detail;
        if (offer.decline) {
          out["decision"] = "decline";
          out["decided_by"] = offer.decline->by;
          out["reason"] = offer.decline->reason;
        } else {
          out["decision"] = "approve";
          out["decided_by"] = "policy:credit";
        }
      }
    }
    if (why.decline)
      out["reasons"] = why.ReasonsJson();
    else
      out["price_reasons"] = why.PriceReasonsJson();
    if (a->json_out) {
      fmt::print("{}\n", out.dump(2));
      return 0;
    }
    fmt::print("decision: {} ({}: {})\n", out["decision"].get<std::string>(),
               out["decided_by"].get<std::string>(),
               out.contains("reason") ? out["reason"].get<std::string>() : "");
    if (out.contains("offered_rate"))
      fmt::print("offered rate: {:.2f}%\n", 100 * out["offered_rate"].get<double>());
    PrintReasons("principal reasons:", why.reasons);
    PrintReasons("price reasons (above the best rate):", why.price_reasons);
    fmt::print(
        "reference applicant (approved at the best price): band {}, amount {:.0f}, term {:.0f}, "
        "income {:.0f}, monthly debt {:.0f}; attribution: exact Shapley values over the five "
        "applicant features (docs/governance.md)\n",
        kBandNames[static_cast<int>(why.reference[0])], why.reference[1], why.reference[2],
        why.reference[3], why.reference[4]);
    return 0;
  };
}

}  // namespace loantwin::cli
