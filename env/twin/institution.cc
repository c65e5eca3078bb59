#include "env/twin/institution.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/yaml_reader.h"
#include "env/twin/config_paths.h"

namespace loantwin {
namespace {

constexpr double kMaxApplicationsPerMonth = 1e6;
constexpr double kMaxBookLoans = 2e7;
constexpr int kRevolvingLifeMonths = 60;

std::shared_ptr<const InstitutionConfig> Parse(const YamlValue& root) {
  auto cfg = std::make_shared<InstitutionConfig>();
  cfg->file = root.file();
  YamlMap m(root);
  {
    const YamlValue name = m.Require("name");
    cfg->name = name.AsString();
    if (cfg->name.find_first_not_of(" \t") == std::string::npos)
      name.Fail("'name' must not be empty (reports and exports name the institution)");
  }
  m.Read("description", &cfg->description);
  if (auto node = m.Get("currency")) {
    const std::string code = node->AsString();
    if (code.size() != 3 ||
        !std::all_of(code.begin(), code.end(), [](char ch) { return ch >= 'A' && ch <= 'Z'; }))
      node->Fail(fmt::format(
          "'currency' must be an ISO 4217 code of three capital letters (USD, EUR, GBP), not "
          "'{}'",
          code));
    cfg->currency = code;
  }
  cfg->members = static_cast<int>(m.Require("members").AsInt(1, 100000000));

  for (int p = 0; p < kNumProducts; ++p) cfg->products[p].spec = DefaultProductSpec(Product(p));
  {
    YamlMap products(m.Require("products"));
    for (int p = 0; p < kNumProducts; ++p) {
      auto node = products.Get(kProductNames[p]);
      if (!node) continue;
      YamlMap pm(*node);
      ProductLine& line = cfg->products[p];
      line.offered = true;
      line.initial_loans = static_cast<int>(pm.Require("initial_loans").AsInt(0, 10000000));
      pm.Read("arrival_multiplier", &line.arrival_multiplier, 0.0, 100.0);
      pm.Read("applications_per_month", &line.applications_per_month, 0.0,
              kMaxApplicationsPerMonth);
      ParseProductSpec(pm, &line.spec);
      pm.Done();
      ValidateProductSpec(line.spec, node->Where());
      // What one instance's loan book can hold: the steady-state book is about the monthly
      // flow times the longest term (revolving lines: kRevolvingLifeMonths).
      int life = 0;
      for (const auto& t : line.spec.terms) life = std::max(life, t.months);
      if (life == 0) life = kRevolvingLifeMonths;
      if (line.applications_per_month * life > kMaxBookLoans)
        node->Fail(fmt::format(
            "products.{}: applications_per_month {} x {} months of life would hold about {:.3g} "
            "loans in one instance's book; the twin simulates up to {:.0e} (about 60 bytes "
            "each)",
            kProductNames[p], line.applications_per_month, life, line.applications_per_month * life,
            kMaxBookLoans));
    }
    products.Done();
  }
  if (auto b = m.Get("balance_sheet")) {
    YamlMap bs(*b);
    bs.Read("equity_to_assets", &cfg->equity_to_assets, 0.001, 0.9);
    bs.Read("liquid_share", &cfg->liquid_share, 0.0, 0.9);
    bs.Read("deposit_growth", &cfg->deposit_growth, -0.5, 1.0);
    bs.Read("member_growth", &cfg->member_growth, -0.5, 1.0);
    bs.Read("net_worth_target", &cfg->net_worth_target, 0.0, 0.9);
    bs.Read("deposit_beta", &cfg->deposit_beta, 0.0, 1.5);
    bs.Read("deposit_spread", &cfg->deposit_spread, -0.05, 0.1);
    bs.Read("wholesale_spread", &cfg->wholesale_spread, -0.05, 0.2);
    bs.Read("liquid_yield_spread", &cfg->liquid_yield_spread, -0.05, 0.05);
    bs.Read("liquid_term_share", &cfg->liquid_term_share, 0.0, 1.0);
    bs.Read("min_liquidity", &cfg->min_liquidity, 0.0, 1.0);
    bs.Read("liquidity_runoff", &cfg->liquidity_runoff, 0.001, 1.0);
    bs.Done();
  }
  if (auto c = m.Get("capital")) {
    YamlMap cm(*c);
    if (auto regime = cm.Get("regime")) {
      const std::string r = regime->AsString();
      if (r == "ncua")
        cfg->capital.regime = CapitalRegime::kNcua;
      else if (r == "basel")
        cfg->capital.regime = CapitalRegime::kBasel;
      else
        regime->Fail("'" + r + "' is not a capital regime (ncua | basel)");
    }
    if (auto complex = cm.Get("complex")) {
      if (complex->IsScalar() && complex->AsString() == "auto")
        cfg->capital.complex = -1;
      else
        cfg->capital.complex = complex->AsBool() ? 1 : 0;
    }
    if (auto cculr = cm.Get("cculr")) {
      cfg->capital.cculr = cculr->AsBool();
      if (cfg->capital.cculr && cfg->capital.regime != CapitalRegime::kNcua)
        cculr->Fail("cculr (the credit union leverage ratio) needs regime: ncua");
    }
    if (auto aoci = cm.Get("aoci_in_capital")) {
      cfg->capital.aoci_in_capital = aoci->AsBool() ? 1 : 0;
      if (cfg->capital.aoci_in_capital == 1 && cfg->capital.regime == CapitalRegime::kNcua)
        aoci->Fail(
            "aoci_in_capital needs regime: basel (NCUA net worth is retained earnings, 12 CFR "
            "702.2)");
    }
    if (cfg->capital.regime != CapitalRegime::kNcua && cfg->capital.complex != -1)
      cm.Require("complex").Fail("complex (a complex credit union) needs regime: ncua");
    cm.Done();
  }
  if (auto a = m.Get("allowance")) ParseAllowanceRules(*a, &cfg->allowance);
  if (auto a = m.Get("alm")) ParseAlmRules(*a, &cfg->alm);
  if (auto c = m.Get("costs")) {
    YamlMap cm(*c);
    cm.Read("fixed_cost_per_member", &cfg->fixed_cost_per_member, 0.0, 1e6);
    cm.Read("tax_rate", &cfg->tax_rate, 0.0, 0.9);
    cm.Done();
  }
  if (auto r = m.Get("risk")) {
    YamlMap rm(*r);
    rm.Read("op_risk_factor", &cfg->op_risk_factor, 0.0, 1.0);
    rm.Read("sicr_multiple", &cfg->sicr_multiple, 1.0, 100.0);
    rm.Read("restructure_concession", &cfg->restructure_concession, 0.0, 0.2);
    rm.Done();
  }
  if (auto d = m.Get("default_levers")) {
    YamlMap dm(*d);
    dm.Read("risk_appetite", &cfg->default_risk_appetite, 0, 4);
    if (auto col = dm.Get("collection_intensity")) {
      auto v = col->AsDoubleList(kNumDelinquentBuckets, 0, 3);
      for (int k = 0; k < kNumDelinquentBuckets; ++k) {
        if (v[k] != static_cast<int>(v[k])) col->Fail("collection intensities are integers 0..3");
        cfg->default_collection[k] = static_cast<int>(v[k]);
      }
    }
    dm.Done();
  }
  if (auto c = m.Get("credit_cycle")) {
    YamlMap cm(*c);
    CreditCycle& cc = cfg->cycle;
    cm.Read("unemployment_ref", &cc.unemployment_ref, 0.0, 0.5);
    cm.Read("unemployment_scale", &cc.unemployment_scale, 1e-4, 1.0);
    cm.Read("gdp_ref", &cc.gdp_ref, -0.5, 0.5);
    cm.Read("gdp_scale", &cc.gdp_scale, 1e-4, 10.0);
    cm.Read("smoothing", &cc.smoothing, 0.01, 1.0);
    cm.Read("adaptation_months", &cc.adaptation_months, 0.0, 1200.0);
    cm.Read("demand_gdp_beta", &cc.demand_gdp_beta, 0.0, 50.0);
    cm.Done();
  }
  m.Done();

  bool any = false;
  int64_t loans = 0;
  for (int p = 0; p < kNumProducts; ++p) {
    const ProductLine& line = cfg->products[p];
    any |= line.offered;
    loans += line.initial_loans;
    if (line.offered && line.initial_loans == 0 && line.applications_per_month == 0)
      root.Fail(
          fmt::format("products.{} has neither initial_loans nor applications_per_month: "
                      "it would never have a loan",
                      kProductNames[p]));
  }
  if (!any) root.Fail("'products' must offer at least one product");
  if (loans == 0)
    root.Fail(
        "at least one product needs initial_loans > 0 (the opening balance sheet is sized "
        "from the initial book)");
  if (cfg->equity_to_assets + cfg->liquid_share >= 1.0)
    root.Fail("balance_sheet.equity_to_assets + liquid_share must be below 1");
  return cfg;
}

}  // namespace

std::shared_ptr<const InstitutionConfig> LoadInstitution(const std::string& name_or_path) {
  return Parse(YamlValue::LoadFile(ResolveConfig("institutions", name_or_path)));
}

std::shared_ptr<const InstitutionConfig> ParseInstitution(const std::string& yaml,
                                                          const std::string& name) {
  return Parse(YamlValue::LoadString(yaml, name));
}

}  // namespace loantwin
