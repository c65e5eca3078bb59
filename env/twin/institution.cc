#include "env/twin/institution.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include "core/yaml_reader.h"
#include "env/twin/config_paths.h"
#include "env/twin/loan_tape.h"
#include "env/twin/zones.h"

namespace loantwin {
namespace {

constexpr double kMaxApplicationsPerMonth = 1e6;
constexpr double kMaxBookLoans = 2e7;
constexpr int kRevolvingLifeMonths = 60;

/// A path named in `root`'s file: relative paths are relative to that file's directory.
std::string RelativeTo(const YamlValue& root, const std::string& path) {
  namespace fs = std::filesystem;
  if (path.empty() || fs::path(path).is_absolute()) return path;
  const fs::path dir = fs::path(root.file()).parent_path();
  if (!root.file().empty() && fs::exists(dir / path)) return (dir / path).string();
  return path;
}

std::shared_ptr<const InstitutionConfig> Parse(const YamlValue& root, int depth) {
  YamlMap m(root);
  std::shared_ptr<InstitutionConfig> cfg;
  std::shared_ptr<const InstitutionConfig> base;
  if (auto b = m.Get("base")) {
    if (depth >= 4) b->Fail("'base' presets nest more than 4 deep (a cycle?)");
    const std::string name = b->AsString();
    const std::string path = RelativeTo(root, name);
    try {
      const std::string resolved = std::filesystem::is_directory(path)
                                       ? (std::filesystem::path(path) / "institution.yaml").string()
                                       : ResolveConfig("institutions", path);
      base = Parse(YamlValue::LoadFile(resolved), depth + 1);
    } catch (const ConfigError& e) {
      b->Fail(fmt::format("base '{}': {}", name, e.what()));
    }
    cfg = std::make_shared<InstitutionConfig>(*base);
    cfg->book.reset();
    cfg->as_of.clear();
    cfg->base = name;
    cfg->description.clear();
  } else {
    cfg = std::make_shared<InstitutionConfig>();
  }
  cfg->file = root.file();
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
  if (base) {
    if (auto n = m.Get("members")) cfg->members = static_cast<int>(n->AsInt(1, 100000000));
  } else {
    cfg->members = static_cast<int>(m.Require("members").AsInt(1, 100000000));
  }

  // Products start from the base preset's spec (if it offers them) or the built-in defaults;
  // only the products listed are offered. With a base and no `products:`, the base's product
  // lines are kept as they are.
  const bool inherit_products = base && !m.Has("products");
  for (int p = 0; p < kNumProducts && !inherit_products; ++p) {
    ProductSpec spec =
        base && base->products[p].offered ? base->products[p].spec : DefaultProductSpec(Product(p));
    cfg->products[p] = ProductLine{};
    cfg->products[p].spec = std::move(spec);
  }
  if (!inherit_products) {
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
    bs.Read("borrowings_share", &cfg->borrowings_share, 0.0, 0.9);
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
  if (auto hz = m.Get("home_zones")) {
    YamlMap zm(*hz);
    auto zones = std::make_shared<ZoneSet>(ZoneSet::Default());
    if (auto z = zm.Get("zones")) *zones = ZoneSet::Parse(*z);
    const YamlValue mix = zm.Require("mix");
    YamlMap mm(mix);
    std::vector<double> shares(zones->size(), 0.0);
    double total = 0;
    for (int k = 0; k < zones->size(); ++k)
      if (mm.Has(zones->zones[k].name)) {
        mm.Read(zones->zones[k].name, &shares[k], 0.0, 1.0);
        total += shares[k];
      }
    mm.Done();
    if (std::abs(total - 1.0) > 1e-6)
      mix.Fail(fmt::format("the zones' shares add up to {}, not 1", total));
    zm.Done();
    cfg->home_zones = {std::move(zones), std::move(shares)};
  }
  std::optional<YamlValue> book_node = m.Get("book");
  if (auto a = m.Get("as_of")) {
    cfg->as_of = a->AsString();
    if (ParseYearMonth(cfg->as_of) < 0) a->Fail("'as_of' is a month: YYYY-MM");
  }
  m.Done();

  if (book_node) {
    if (cfg->as_of.empty())
      book_node->Fail("'book' needs 'as_of' (the month the tape describes, YYYY-MM)");
    IngestOptions io;
    io.tape = RelativeTo(root, book_node->AsString());
    io.as_of = cfg->as_of;
    std::array<ProductSpec, kNumProducts> specs;
    for (int p = 0; p < kNumProducts; ++p) specs[p] = cfg->products[p].spec;
    IngestResult r;
    try {
      r = IngestTape(io, DefaultTapeMapping(), specs);
    } catch (const ConfigError& e) {
      book_node->Fail(fmt::format("book: {}", e.what()));
    }
    for (int p = 0; p < kNumProducts; ++p) {
      const auto n = static_cast<int64_t>(r.book->loans[p].size());
      const ProductLine& line = cfg->products[p];
      if (n > 0 && !line.offered)
        book_node->Fail(fmt::format("the book has {} {} loans but products.{} is not offered", n,
                                    kProductNames[p], kProductNames[p]));
      if (line.offered && n != line.initial_loans)
        book_node->Fail(fmt::format(
            "products.{}.initial_loans is {} but the book has {} {} loans (they must agree)",
            kProductNames[p], line.initial_loans, n, kProductNames[p]));
    }
    cfg->book = r.book;
  }

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
  if (cfg->equity_to_assets + cfg->borrowings_share >= 1.0)
    root.Fail(
        "balance_sheet.equity_to_assets + borrowings_share must be below 1 (deposits fund "
        "the rest)");
  return cfg;
}

}  // namespace

std::shared_ptr<const InstitutionConfig> LoadInstitution(const std::string& name_or_path) {
  if (std::filesystem::is_directory(name_or_path)) {
    const std::string file = (std::filesystem::path(name_or_path) / "institution.yaml").string();
    if (!std::filesystem::exists(file))
      throw ConfigError(fmt::format(
          "'{}' is a directory without institution.yaml (an institution directory, as loantwin "
          "sync writes it, holds one; or give a preset name or YAML file)",
          name_or_path));
    return Parse(YamlValue::LoadFile(file), 0);
  }
  return Parse(YamlValue::LoadFile(ResolveConfig("institutions", name_or_path)), 0);
}

std::shared_ptr<const InstitutionConfig> ParseInstitution(const std::string& yaml,
                                                          const std::string& name) {
  return Parse(YamlValue::LoadString(yaml, name), 0);
}

}  // namespace loantwin
