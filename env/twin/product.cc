#include "env/twin/product.h"

#include <fmt/format.h>

#include <numeric>

#include "core/config_error.h"
#include "core/yaml_reader.h"
#include "env/twin/levers.h"

namespace loantwin {

ProductSpec DefaultProductSpec(Product p) {
  ProductSpec s;
  switch (p) {
    case kPersonal:
      s.terms = {{36, 0.6, {}, false}, {60, 0.4, {}, false}};
      s.mean_amount = 12000;
      s.applicant_mix = {0.20, 0.25, 0.22, 0.15, 0.10, 0.05, 0.03};
      s.default_cutoff = 3;
      s.default_spread = s.market_spread = 0.055;
      s.band_premium = {0.0, 0.01, 0.025, 0.04, 0.06, 0.08, 0.10};
      s.origination_fee = 0.01;
      s.late_fee = 25;
      s.pd = {0.005, 0.013, 0.029, 0.052, 0.090, 0.140, 0.210};
      s.cycle_rho = 0.06;
      s.lgd = 0.80;
      s.prepay_cpr = 0.15;
      s.prepay_seasoning = 6;
      s.prepay_incentive = 0.5;
      s.charge_off_dpd = 120;
      s.recovery_months = 12;
      s.origination_cost = 150;
      s.servicing_cost = 4;
      s.marketing_cost = 30;
      break;
    case kAuto:
      s.terms = {{48, 0.3, {}, false}, {60, 0.5, {}, false}, {72, 0.2, {}, false}};
      s.mean_amount = 28000;
      s.amount_sigma = 0.4;
      s.applicant_mix = {0.20, 0.25, 0.22, 0.15, 0.10, 0.05, 0.03};
      s.default_cutoff = 4;
      s.default_spread = s.market_spread = 0.025;
      s.band_premium = {0.0, 0.005, 0.01, 0.02, 0.035, 0.05, 0.07};
      s.late_fee = 25;
      s.pd = {0.004, 0.010, 0.022, 0.040, 0.070, 0.110, 0.170};
      s.cycle_rho = 0.05;
      s.lgd = 0.25;  // floor
      s.ltv_mean = 1.05;
      s.ltv_sd = 0.10;
      s.sale_cost = 0.30;
      s.depreciation = 0.015;
      s.charge_off_dpd = 120;
      s.recovery_months = 2;  // repossession to auction
      s.prepay_cpr = 0.15;
      s.prepay_seasoning = 6;
      s.prepay_incentive = 0.5;
      s.origination_cost = 250;
      s.servicing_cost = 4;
      s.marketing_cost = 20;
      break;
    case kHome:
      s.terms = {{360, 0.8, {}, false}, {180, 0.2, {}, false}};
      s.mean_amount = 280000;
      s.amount_sigma = 0.45;
      s.applicant_mix = {0.30, 0.25, 0.20, 0.12, 0.08, 0.03, 0.02};
      s.default_cutoff = 3;
      s.rate_index = RateIndex::kMortgage;
      s.default_spread = s.market_spread = -0.002;
      s.price_elasticity = 1.5;
      s.band_premium = {0.0, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03};
      s.origination_fee = 0.005;
      s.late_fee = 50;
      s.pd = {0.003, 0.006, 0.011, 0.019, 0.032, 0.056, 0.096};
      s.cycle_rho = 0.15;
      s.lgd = 0.20;  // floor: foreclosure time and costs
      s.ltv_mean = 0.80;
      s.ltv_sd = 0.10;
      s.sale_cost = 0.10;
      s.negative_equity_beta = 5.0;
      // Backtest fit, 2006-2012 (docs/twin-model.md, "Historic backtest"): less unemployment and
      // GDP, more house prices, a longer lag and a stronger roll-rate cycle than consumer loans.
      s.unemployment_beta = 0.9;
      s.gdp_beta = 0.4;
      s.hpi_beta = 0.25;
      s.cycle_lag_months = 5;
      s.roll_cycle_beta = 0.2;
      s.roll_forward = {0.30, 0.50};
      s.cure = {0.50, 0.25, 0.06};
      s.charge_off_dpd = 180;  // written down to collateral value less selling costs
      s.recovery_months = 12;  // foreclosure and REO sale
      s.fraud_rate = 0.0002;
      s.basel_class = BaselClass::kMortgage;
      s.prepay_cpr = 0.08;
      s.prepay_seasoning = 30;
      s.prepay_incentive = 1.0;
      s.origination_cost = 2500;
      s.servicing_cost = 20;
      s.marketing_cost = 150;
      break;
    case kCard:
      s.terms = {{0, 1.0, {}, false}};
      s.mean_amount = 6000;
      s.amount_sigma = 0.6;
      s.applicant_mix = {0.20, 0.22, 0.20, 0.15, 0.12, 0.07, 0.04};
      s.default_cutoff = 4;
      s.variable_rate = true;
      s.default_spread = s.market_spread = 0.12;
      s.band_premium = {0.0, 0.01, 0.02, 0.04, 0.06, 0.08, 0.10};
      s.annual_fee = 20;
      s.late_fee = 30;
      s.pd = {0.010, 0.022, 0.048, 0.090, 0.140, 0.210, 0.320};
      s.cycle_rho = 0.04;
      s.payment_shock = 0.15;
      s.lgd = 0.88;
      s.roll_cycle_beta = 0.1;
      s.roll_forward = {0.40, 0.60};
      s.cure = {0.40, 0.20, 0.05};
      s.charge_off_dpd = 180;
      s.recovery_months = 12;
      s.basel_class = BaselClass::kRevolving;
      s.prepay_cpr = 0.08;  // account attrition (closed after paying off)
      s.prepay_seasoning = 1;
      s.prepay_incentive = 0.0;
      s.payment_rate = 0.10;
      s.draw_rate = 0.04;
      s.initial_utilisation = 0.30;
      s.ccf = 0.20;
      s.origination_cost = 100;
      s.servicing_cost = 5;
      s.marketing_cost = 40;
      break;
    case kBusiness:
      s.terms = {{60, 0.7, {}, false}, {84, 0.3, {}, false}};
      s.mean_amount = 120000;
      s.amount_sigma = 0.7;
      s.applicant_mix = {0.15, 0.22, 0.25, 0.18, 0.12, 0.05, 0.03};
      s.default_cutoff = 3;
      s.variable_rate = true;
      s.default_spread = s.market_spread = 0.035;
      s.band_premium = {0.0, 0.005, 0.012, 0.02, 0.035, 0.05, 0.07};
      s.origination_fee = 0.01;
      s.late_fee = 100;
      s.pd = {0.005, 0.010, 0.020, 0.035, 0.060, 0.100, 0.150};
      s.cycle_rho = 0.10;
      s.payment_shock = 0.10;
      s.lgd = 0.45;
      s.fraud_rate = 0.0005;
      s.charge_off_dpd = 120;
      s.recovery_months = 18;
      s.cycle_lag_months = 5;  // business failures lag the GDP fall (backtest: cu_large)
      s.prepay_cpr = 0.08;
      s.prepay_seasoning = 12;
      s.prepay_incentive = 0.5;
      s.origination_cost = 1000;
      s.servicing_cost = 25;
      s.marketing_cost = 100;
      break;
  }
  return s;
}

void ParseProductSpec(YamlMap& m, ProductSpec* s) {
  if (auto terms = m.Get("terms")) {
    s->terms.clear();
    for (const auto& item : terms->Items()) {
      YamlMap t(item);
      TermOption opt;
      opt.months = static_cast<int>(t.Require("months").AsInt(0, 480));
      t.Read("weight", &opt.weight, 0.0, 1e6);
      if (auto mix = t.Get("band_mix")) {
        auto v = mix->AsDoubleList(kNumBands, 0.0, 1.0);
        std::copy(v.begin(), v.end(), opt.band_mix.begin());
        opt.has_band_mix = true;
      }
      t.Done();
      s->terms.push_back(opt);
    }
  }
  m.Read("mean_amount", &s->mean_amount, 1.0, 1e9);
  m.Read("amount_sigma", &s->amount_sigma, 0.0, 3.0);
  m.Read("applicant_mix", &s->applicant_mix, 0.0, 1.0);
  m.Read("default_cutoff", &s->default_cutoff, 0, kNumBands - 1);
  if (auto v = m.Get("rate_index"))
    s->rate_index =
        v->AsEnum({"policy", "mortgage"}) == "policy" ? RateIndex::kPolicy : RateIndex::kMortgage;
  m.Read("variable_rate", &s->variable_rate);
  m.Read("default_spread", &s->default_spread, kMinRateSpread, kMaxRateSpread);
  m.Read("market_spread", &s->market_spread, -0.05, 0.40);
  m.Read("price_elasticity", &s->price_elasticity, 0.0, 20.0);
  m.Read("band_premium", &s->band_premium, 0.0, 0.5);
  m.Read("origination_fee", &s->origination_fee, 0.0, 0.2);
  m.Read("annual_fee", &s->annual_fee, 0.0, 1e4);
  m.Read("late_fee", &s->late_fee, 0.0, 1e4);
  m.Read("pd", &s->pd, 0.0, 0.99);
  m.Read("cycle_rho", &s->cycle_rho, 0.0, 0.5);
  m.Read("unemployment_beta", &s->unemployment_beta, 0.0, 5.0);
  m.Read("gdp_beta", &s->gdp_beta, 0.0, 5.0);
  m.Read("hpi_beta", &s->hpi_beta, 0.0, 5.0);
  m.Read("cycle_lag_months", &s->cycle_lag_months, 0, kMaxCycleLagMonths);
  m.Read("payment_shock", &s->payment_shock, 0.0, 5.0);
  m.Read("lgd", &s->lgd, 0.0, 1.0);
  m.Read("ltv_mean", &s->ltv_mean, 0.0, 2.0);
  m.Read("ltv_sd", &s->ltv_sd, 0.0, 1.0);
  m.Read("sale_cost", &s->sale_cost, 0.0, 1.0);
  m.Read("depreciation", &s->depreciation, 0.0, 0.2);
  m.Read("negative_equity_beta", &s->negative_equity_beta, 0.0, 20.0);
  m.Read("fraud_rate", &s->fraud_rate, 0.0, 0.2);
  m.Read("roll_forward", &s->roll_forward, 0.0, 0.98);
  m.Read("cure", &s->cure, 0.0, 0.98);
  m.Read("roll_cycle_beta", &s->roll_cycle_beta, 0.0, 3.0);
  m.Read("charge_off_dpd", &s->charge_off_dpd, 90, 30 * kMaxChargeOffMonths);
  m.Read("recovery_months", &s->recovery_months, 1, kMaxRecoveryMonths);
  m.Read("redefault_multiplier", &s->redefault_multiplier, 1.0, 10.0);
  if (auto v = m.Get("basel_class")) {
    const std::string c = v->AsEnum({"mortgage", "revolving", "other_retail"});
    s->basel_class = c == "mortgage"    ? BaselClass::kMortgage
                     : c == "revolving" ? BaselClass::kRevolving
                                        : BaselClass::kOtherRetail;
  }
  m.Read("prepay_cpr", &s->prepay_cpr, 0.0, 0.9);
  m.Read("prepay_seasoning", &s->prepay_seasoning, 1.0, 120.0);
  m.Read("prepay_incentive", &s->prepay_incentive, 0.0, 1.0);
  m.Read("payment_rate", &s->payment_rate, 0.0, 1.0);
  m.Read("draw_rate", &s->draw_rate, 0.0, 1.0);
  m.Read("initial_utilisation", &s->initial_utilisation, 0.0, 1.0);
  m.Read("ccf", &s->ccf, 0.0, 1.0);
  m.Read("origination_cost", &s->origination_cost, 0.0, 1e6);
  m.Read("servicing_cost", &s->servicing_cost, 0.0, 1e5);
  m.Read("marketing_cost", &s->marketing_cost, 0.0, 1e5);
}

void ValidateProductSpec(const ProductSpec& s, const std::string& where) {
  auto fail = [&](const std::string& msg) { throw ConfigError(where + ": " + msg); };
  if (s.terms.empty()) fail("'terms' must list at least one term");
  double weight = 0;
  for (const auto& t : s.terms) {
    weight += t.weight;
    if (t.months == 0 && s.terms.size() > 1)
      fail("a revolving term (months: 0) must be the only term");
    if (t.has_band_mix && std::accumulate(t.band_mix.begin(), t.band_mix.end(), 0.0) <= 0)
      fail("a term's band_mix must have a positive total");
  }
  if (weight <= 0) fail("term weights must have a positive total");
  if (std::accumulate(s.applicant_mix.begin(), s.applicant_mix.end(), 0.0) <= 0)
    fail("'applicant_mix' must have a positive total");
  for (int b = 1; b < kNumBands; ++b)
    if (s.pd[b] < s.pd[b - 1])
      fail(fmt::format("'pd' must not decrease from band {} to band {}", kBandNames[b - 1],
                       kBandNames[b]));
  if (s.pd[0] <= 0) fail("'pd' must be positive");
  if (s.charge_off_dpd % 30 != 0)
    fail(fmt::format("'charge_off_dpd' must be a multiple of 30 days, got {}", s.charge_off_dpd));
  for (int k = 0; k < 2; ++k)
    if (s.roll_forward[k] + s.cure[k] > 0.98)
      fail(
          fmt::format("'roll_forward' + 'cure' out of {} dpd is {:.3g}; at most 0.98 (a loan "
                      "that neither rolls nor cures stays)",
                      30 * (k + 1), s.roll_forward[k] + s.cure[k]));
  if (s.roll_forward[0] <= 0 || s.roll_forward[1] <= 0)
    fail("'roll_forward' must be positive: a delinquent loan must be able to reach charge-off");
  if (s.revolving() && s.payment_rate + s.draw_rate <= 0)
    fail("a revolving product needs payment_rate or draw_rate > 0");
}

}  // namespace loantwin
