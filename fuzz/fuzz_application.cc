// POST /v1/credit/applications bodies: parse, underwriting rules, pricing observation and
// price, as the server runs them; every input gets an answer or a 400, never a crash.

#include <cstddef>
#include <cstdint>
#include <string>

#include "env/twin/institution.h"
#include "fuzz/fuzz_common.h"
#include "serve/credit_application.h"
#include "serve/decide_request.h"

using namespace loantwin;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const auto& roles = fuzz::TwinRoles();
  nlohmann::json state = nlohmann::json::parse(fuzz::Observation(roles.at("credit"), 0.0));
  const nlohmann::json pricing = nlohmann::json::parse(fuzz::Observation(roles.at("pricing"), 0.0));
  for (const auto& [k, v] : pricing.items()) state[k] = v;
  std::vector<std::string> seeds;
  for (const char* product : {"card", "personal", "auto", "mortgage"}) {
    nlohmann::json app = {{"product", product}, {"amount", 12000}, {"term_months", 36},
                          {"band", "C"},        {"income", 65000}, {"state", state}};
    seeds.push_back(app.dump());
    app.erase("band");
    app["score"] = 700;
    app["monthly_debt"] = 400;
    seeds.push_back(app.dump());
  }
  fuzz::WriteSeeds("application", seeds);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto institution = LoadInstitution("cu_mid");
  const auto& roles = fuzz::TwinRoles();
  const ServedRole& credit = roles.at("credit");
  const ServedRole& pricing = roles.at("pricing");
  const std::string body(reinterpret_cast<const char*>(data), size);
  nlohmann::json request;
  if (!ParseJsonObject(body, &request).empty()) return 0;
  try {
    std::vector<float> obs;
    const CreditApplication app = ParseCreditApplication(request, credit, &pricing, &obs);
    if (obs.size() != credit.features.size()) __builtin_trap();
    if (UnderwritingRules(*institution, app)) return 0;
    const std::vector<float> pricing_obs = PricingObservation(app, pricing);
    if (pricing_obs.size() != pricing.features.size()) __builtin_trap();
    const ProductSpec& spec = institution->products[app.product].spec;
    PriceApplication(app, spec, credit, 0.01, "policy:pricing", "C");
  } catch (const BadRequest&) {
  }
  return 0;
}
