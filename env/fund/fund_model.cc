#include "env/fund/fund_model.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>

#include "core/binary_state.h"
#include "core/counter_rng.h"
#include "core/yaml_reader.h"

namespace loantwin {
namespace {

// Equal-probability LTV buckets: the midpoints (in probability) of four quartiles of a normal.
constexpr std::array<double, kLtvBuckets> kBucketZ = {-1.1503493803760079, -0.31863936396437514,
                                                      0.31863936396437514, 1.1503493803760079};

// The scalar keys of each section, listed once (parse, resolved config, docs).
template <typename V>
void VisitSection(FundTerms& t, V&& v) {
  v("commitment", t.commitment, 1e5, 1e12);
  v("term_months", t.term_months, 12, 480);
  v("investment_period_months", t.investment_period_months, 1, 480);
  v("reinvestment_period_months", t.reinvestment_period_months, 1, 480);
  v("monthly_capacity", t.monthly_capacity, 0.0, 1.0);
  v("distribution_months", t.distribution_months, 1, 12);
  v("cash_reserve", t.cash_reserve, 0.0, 0.5);
  v("liquidation_discount", t.liquidation_discount, 0.0, 1.0);
  v("ramp_up_months", t.ramp_up_months, 0, 480);
}
template <typename V>
void VisitSection(ContractTerms& t, V&& v) {
  v("investment_fraction", t.investment_fraction, 0.01, 0.5);
  v("appreciation_multiple", t.appreciation_multiple, 0.0, 20.0);
  v("annual_cap", t.annual_cap, 0.0, 2.0);
  v("sale_cost", t.sale_cost, 0.0, 0.5);
  v("foreclosure_cost", t.foreclosure_cost, 0.0, 1.0);
  v("senior_amortisation", t.senior_amortisation, 0.0, 0.5);
}
template <typename V>
void VisitSection(ExitTerms& t, V&& v) {
  v("sale_rate", t.sale_rate, 0.0, 5.0);
  v("sale_hpa_beta", t.sale_hpa_beta, -20.0, 20.0);
  v("refinance_rate", t.refinance_rate, 0.0, 5.0);
  v("refinance_rate_beta", t.refinance_rate_beta, -500.0, 500.0);
  v("refinance_hpa_beta", t.refinance_hpa_beta, -20.0, 20.0);
  v("default_rate", t.default_rate, 0.0, 5.0);
  v("default_cltv_beta", t.default_cltv_beta, 0.0, 100.0);
  v("default_cltv_threshold", t.default_cltv_threshold, 0.0, 2.0);
  v("default_unemployment_beta", t.default_unemployment_beta, -500.0, 500.0);
  v("seasoning_months", t.seasoning_months, 0.0, 240.0);
}
template <typename V>
void VisitSection(FacilityTerms& t, V&& v) {
  v("limit", t.limit, 0.0, 5.0);
  v("advance_rate", t.advance_rate, 0.0, 0.95);
  v("eligibility_cltv", t.eligibility_cltv, 0.0, 2.0);
  v("spread", t.spread, 0.0, 0.5);
}
template <typename V>
void VisitSection(FeeTerms& t, V&& v) {
  v("management_fee", t.management_fee, 0.0, 0.1);
  v("management_fee_after", t.management_fee_after, 0.0, 0.1);
  v("origination_fee", t.origination_fee, 0.0, 0.2);
  v("expenses_fixed", t.expenses_fixed, 0.0, 1e9);
  v("expenses_nav", t.expenses_nav, 0.0, 0.1);
}
template <typename V>
void VisitSection(WaterfallTerms& t, V&& v) {
  v("pref_rate", t.pref_rate, 0.0, 1.0);
  v("catch_up", t.catch_up, 0.0, 1.0);
  v("carry", t.carry, 0.0, 0.5);
  v("gp_commitment", t.gp_commitment, 0.0, 1.0);
}
template <typename V>
void VisitSection(FundGuardrails& t, V&& v) {
  v("max_zone_share", t.max_zone_share, 0.0, 1.0);
}

struct SectionReader {
  YamlMap& m;
  template <typename T>
  void operator()(const char* key, T& f, T lo, T hi) {
    m.Read(key, &f, lo, hi);
  }
};
struct SectionWriter {
  YAML::Emitter& out;
  template <typename T>
  void operator()(const char* key, T& f, T, T) {
    out << YAML::Key << key << YAML::Value << f;
  }
};

template <typename S>
void ReadSection(YamlMap& parent, const char* key, S* s) {
  if (auto v = parent.Get(key)) {
    YamlMap m(*v);
    VisitSection(*s, SectionReader{m});
    m.Done();
  }
}
template <typename S>
void EmitSection(YAML::Emitter& out, const char* key, S s) {
  out << YAML::Key << key << YAML::Value << YAML::BeginMap;
  VisitSection(s, SectionWriter{out});
  out << YAML::EndMap;
}

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

std::vector<TrancheTerms> FundConfig::DefaultTranches() {
  return {{"senior", 0.20, 0.05, 1.6}, {"mezzanine", 0.10, 0.08, 1.25}};
}

double FundConfig::equity_share() const {
  double s = 1.0;
  for (const auto& t : tranches) s -= t.share;
  return s;
}

void FundConfig::ParseInto(YamlMap& m, FundConfig* c) {
  ReadSection(m, "fund", &c->fund);
  ReadSection(m, "contract", &c->contract);
  ReadSection(m, "exits", &c->exits);
  ReadSection(m, "facility", &c->facility);
  ReadSection(m, "fees", &c->fees);
  ReadSection(m, "waterfall", &c->waterfall);
  ReadSection(m, "guardrails", &c->guardrails);
  if (auto list = m.Get("tranches")) {
    c->tranches.clear();
    if (!list->IsSequence())
      list->Fail("expected a list of tranches (senior first, then mezzanine)");
    for (const auto& item : list->Items()) {
      YamlMap tm(item);
      TrancheTerms t;
      t.name = tm.Require("name").AsString();
      tm.Read("share", &t.share, 0.0, 1.0);
      tm.Read("coupon", &t.coupon, 0.0, 1.0);
      tm.Read("oc_trigger", &t.oc_trigger, 0.0, 100.0);
      tm.Done();
      c->tranches.push_back(t);
    }
    if (c->tranches.size() > 2) list->Fail("at most two tranches of notes (senior, mezzanine)");
  }
  if (auto z = m.Get("zones")) c->zones = ZoneSet::Parse(*z);
  try {
    c->Validate();
  } catch (const std::invalid_argument& e) {
    m.value().Fail(e.what());
  }
}

void FundConfig::Validate() const {
  if (fund.investment_period_months > fund.term_months)
    throw std::invalid_argument(
        fmt::format("fund.investment_period_months ({}) is beyond fund.term_months ({})",
                    fund.investment_period_months, fund.term_months));
  if (fund.reinvestment_period_months < fund.investment_period_months ||
      fund.reinvestment_period_months > fund.term_months)
    throw std::invalid_argument(fmt::format(
        "fund.reinvestment_period_months ({}) must lie between the investment period ({}) and "
        "the term ({})",
        fund.reinvestment_period_months, fund.investment_period_months, fund.term_months));
  if (equity_share() <= 0)
    throw std::invalid_argument(
        fmt::format("tranches: the notes' shares add up to {} - the equity needs a share above 0",
                    1 - equity_share()));
  if (waterfall.catch_up > 0 && waterfall.catch_up <= waterfall.carry)
    throw std::invalid_argument(fmt::format(
        "waterfall.catch_up ({}) must exceed waterfall.carry ({}), or be 0 (no catch-up)",
        waterfall.catch_up, waterfall.carry));
}

void FundConfig::EmitYaml(void* emitter) const {
  auto& out = *static_cast<YAML::Emitter*>(emitter);
  EmitSection(out, "fund", fund);
  EmitSection(out, "contract", contract);
  EmitSection(out, "exits", exits);
  EmitSection(out, "facility", facility);
  EmitSection(out, "fees", fees);
  EmitSection(out, "waterfall", waterfall);
  EmitSection(out, "guardrails", guardrails);
  out << YAML::Key << "tranches" << YAML::Value << YAML::BeginSeq;
  for (const auto& t : tranches)
    out << YAML::Flow << YAML::BeginMap << YAML::Key << "name" << YAML::Value << t.name << YAML::Key
        << "share" << YAML::Value << t.share << YAML::Key << "coupon" << YAML::Value << t.coupon
        << YAML::Key << "oc_trigger" << YAML::Value << t.oc_trigger << YAML::EndMap;
  out << YAML::EndSeq;
  out << YAML::Key << "zones" << YAML::Value << YAML::Load(zones.ToYaml());
}

FundPath::FundPath(std::shared_ptr<const FundConfig> config,
                   std::shared_ptr<const Scenario> scenario)
    : config_(std::move(config)), macro_(std::move(scenario)), equity_(config_->waterfall) {
  years_ = (config_->fund.term_months + 11) / 12;
  Reset(0);
}

void FundPath::Reset(uint64_t key) {
  const int z = config_->zones.size();
  key_ = key;
  month_ = 0;
  macro_.Reset(DeriveKey(key, 0x6d6163726f));
  prev_national_ = macro_.Step(0).hpi;
  log_hpi_.assign(z, 0.0), hpi_.assign(z, 1.0);
  zone_value_.assign(z, 0.0), zone_debt_.assign(z, 0.0), zone_home_.assign(z, 0.0);
  nav_ = eligible_ = 0;
  cells_.assign(static_cast<size_t>(z) * years_ * kLtvBuckets, FundCohort{});
  cash_ = drawn_ = called_ = expenses_due_ = fees_due_ = fees_paid_ = 0;
  notes_ = Notes(config_->tranches);
  equity_ = EquityWaterfall(config_->waterfall);
  zone_losses_.assign(z, 0.0), zone_invested_.assign(z, 0.0), zone_defaults_.assign(z, 0.0);
  lp_.assign(1, 0.0), gp_.assign(1, 0.0);
  for (auto& t : tranche_) t.assign(1, 0.0);
  breach_months_ = oc_fail_months_ = 0;
  last_ = FundMonth{};
}

double FundPath::bucket_ltv(int z, int b) const {
  const Zone& zz = config_->zones.zones[z];
  return std::clamp(zz.ltv_mean + zz.ltv_sd * kBucketZ[b], 0.0, 0.95);
}

bool FundPath::ZoneEligible(int z, double max_cltv) const {
  return bucket_ltv(z, 0) + config_->contract.investment_fraction <= max_cltv + 1e-12;
}

double FundPath::ClaimValue(const FundCohort& c, double hpi) const {
  return std::min(c.cap_basis, std::max(0.0, c.claim_units * hpi - c.claim_offset));
}

double FundPath::zone_cltv(int z) const {
  return zone_home_[z] > 0 ? zone_debt_[z] / zone_home_[z] : std::nan("");
}

void FundPath::Revalue() {
  const int zn = config_->zones.size();
  const double elig_cltv = config_->facility.eligibility_cltv;
  nav_ = eligible_ = 0;
  for (int z = 0; z < zn; ++z) {
    const double h = hpi_[z];
    double value = 0, debt = 0, home = 0;
    const FundCohort* c = &cells_[static_cast<size_t>(z) * years_ * kLtvBuckets];
    for (int k = 0; k < years_ * kLtvBuckets; ++k, ++c) {
      if (c->count <= 0) continue;
      const double claim = ClaimValue(*c, h), hv = c->home_units * h;
      value += claim, debt += c->senior + claim, home += hv;
      if (c->senior + claim <= elig_cltv * hv) eligible_ += claim;
    }
    zone_value_[z] = value, zone_debt_[z] = debt, zone_home_[z] = home;
    nav_ += value;
  }
}

double FundPath::borrowing_base() const {
  return config_->facility.advance_rate * EligibleValue();
}

double FundPath::equity_nav() const {
  return nav() + cash_ - drawn_ - notes_.total_balance() - payables();
}

void FundPath::Exits(FundMonth& m) {
  const FundConfig& c = *config_;
  const ExitTerms& e = c.exits;
  const MacroState& macro = macro_.state();
  const double unemployment_term =
      std::exp(e.default_unemployment_beta * (macro.unemployment - 0.045));
  const double amort = 1.0 - c.contract.senior_amortisation / 12.0;
  const double cap_growth = std::pow(1.0 + c.contract.annual_cap, 1.0 / 12.0);
  for (int z = 0; z < c.zones.size(); ++z) {
    const double h = zone_hpi(z);
    const double term = c.zones.zones[z].term_months;
    for (int y = 0; y < years_; ++y) {
      for (int b = 0; b < kLtvBuckets; ++b) {
        FundCohort& k = cell(z, y, b);
        if (k.count <= 0) continue;
        const double age = month_ - k.month_sum / k.invested;
        const double home = k.home_units * h;
        const double claim = ClaimValue(k, h);
        double f_sale = 0, f_refi = 0, f_def = 0, f_mat = 0;
        if (age >= term) {
          f_mat = 1.0;
        } else {
          const double appreciation = std::log(home / k.home_value0);
          const double season =
              e.seasoning_months > 0 ? std::min(1.0, age / e.seasoning_months) : 1.0;
          const double orig_rate = k.rate_sum / k.invested;
          const double cltv = (k.senior + claim) / home;
          const double l_sale = e.sale_rate * season * std::exp(e.sale_hpa_beta * appreciation);
          const double l_refi = e.refinance_rate * season *
                                std::exp(e.refinance_rate_beta * (orig_rate - macro.mortgage_rate) +
                                         e.refinance_hpa_beta * appreciation);
          const double l_def =
              e.default_rate *
              std::exp(e.default_cltv_beta * std::max(0.0, cltv - e.default_cltv_threshold)) *
              unemployment_term;
          const double total = l_sale + l_refi + l_def;
          const double p = -std::expm1(-total / 12.0);
          f_sale = p * l_sale / total, f_refi = p * l_refi / total, f_def = p * l_def / total;
        }
        // Payoffs per unit fraction of the cohort: the claim, limited by the homeowner's equity.
        const double equity_sale = std::max(0.0, home * (1 - c.contract.sale_cost) - k.senior);
        const double equity_refi = std::max(0.0, home - k.senior);
        const double equity_fc = std::max(0.0, home * (1 - c.contract.foreclosure_cost) - k.senior);
        m.sale += f_sale * std::min(claim, equity_sale);
        m.maturity += f_mat * std::min(claim, equity_sale);
        m.refinance += f_refi * std::min(claim, equity_refi);
        const double recovery = f_def * std::min(claim, equity_fc);
        m.default_recovery += recovery;
        // Loss given default: the claim's value at default less what the foreclosure sale
        // recovers for the fund.
        const double defaulted_value = f_def * claim;
        zone_defaults_[z] += defaulted_value;
        zone_losses_[z] += defaulted_value - recovery;
        m.default_losses += defaulted_value - recovery;
        const double keep = 1.0 - f_sale - f_refi - f_def - f_mat;
        if (keep <= 1e-12) {
          k = FundCohort{};
          continue;
        }
        k.count *= keep, k.invested *= keep, k.claim_units *= keep, k.claim_offset *= keep;
        k.home_units *= keep;
        k.home_value0 *= keep, k.senior *= keep * amort, k.cap_basis *= keep * cap_growth;
        k.month_sum *= keep, k.rate_sum *= keep;
      }
    }
  }
}

void FundPath::Call(double amount, FundMonth& m) {
  amount = std::min(amount, uncalled());
  if (amount <= 0) return;
  called_ += amount;
  cash_ += amount;
  m.calls += amount;
  for (int k = 0; k < notes_.size(); ++k) {
    notes_.Fund(k, amount * notes_.terms(k).share);
    tranche_[k].back() -= amount * notes_.terms(k).share;
  }
  const double eq = amount * config_->equity_share();
  equity_.Contribute(eq);
  lp_.back() -= eq * (1 - config_->waterfall.gp_commitment);
  gp_.back() -= eq * config_->waterfall.gp_commitment;
}

void FundPath::Originate(const FundDecision& d, double amount, FundMonth& m) {
  const FundConfig& c = *config_;
  const int zn = c.zones.size();
  const double nav_now = nav();
  std::vector<double> w(zn, 0.0);
  double wsum = 0;
  for (int z = 0; z < zn; ++z) {
    if (d.zone_weights.at(z) <= 0 || !ZoneEligible(z, d.max_cltv)) continue;
    w[z] = d.zone_weights[z], wsum += w[z];
  }
  if (wsum <= 0 || amount <= 0) return;
  const double f = c.contract.investment_fraction;
  const double rate = macro_.state().mortgage_rate;
  const double total_after = nav_now + amount;
  const int y = std::min(years_ - 1, (month_ - 1) / 12);
  for (int z = 0; z < zn; ++z) {
    if (w[z] <= 0) continue;
    // Guardrail: no zone above max_zone_share of the contracts' value after this month.
    const double room = std::max(0.0, c.guardrails.max_zone_share * total_after - zone_value(z));
    const double x = std::min(amount * w[z] / wsum, room);
    if (x <= 0) continue;
    int allowed = 0;
    for (int b = 0; b < kLtvBuckets; ++b) allowed += bucket_ltv(z, b) + f <= d.max_cltv + 1e-12;
    const Zone& zz = c.zones.zones[z];
    const double h = zone_hpi(z);
    for (int b = 0; b < kLtvBuckets; ++b) {
      if (bucket_ltv(z, b) + f > d.max_cltv + 1e-12) continue;
      const double xb = x / allowed;
      const double home = xb / f;
      FundCohort& k = cell(z, y, b);
      k.count += home / zz.home_value;
      k.invested += xb;
      // Claim = investment + s x (home value now - home value at origination), s = multiple x f.
      const double share = c.contract.appreciation_multiple * f;
      k.claim_units += share * home / h;
      k.claim_offset += share * home - xb;
      k.home_units += home / h;
      k.home_value0 += home;
      k.senior += bucket_ltv(z, b) * home;
      k.cap_basis += xb;
      k.month_sum += xb * month_;
      k.rate_sum += xb * rate;
    }
    zone_invested_[z] += x;
    m.invested += x;
  }
  m.origination_fees = m.invested * c.fees.origination_fee;
  cash_ -= m.invested + m.origination_fees;
  fees_paid_ += m.origination_fees;
}

void FundPath::Distribute(double amount, FundMonth& m) {
  // Sequential notes after the reinvestment period (and at the end), or while a coverage test
  // fails; otherwise everything to the equity.
  const FundConfig& c = *config_;
  const bool amortising = month_ > c.fund.reinvestment_period_months || done();
  const double assets = nav() + cash_ - drawn_ - payables();
  double x = amount;
  bool oc_fail = false;
  for (int k = 0; k < notes_.size(); ++k) oc_fail |= TestsActive() && !notes_.OcPasses(k, assets);
  if (oc_fail && !amortising) {
    // Pay senior (then mezzanine) principal just until every test passes.
    for (int k = 0; k < notes_.size() && x > 0; ++k) {
      double notes_above = 0;
      for (int j = 0; j <= k; ++j) notes_above += notes_.balance(j);
      const double trig = notes_.terms(k).oc_trigger;
      if (trig <= 0 || notes_.OcPasses(k, assets - (amount - x))) continue;
      // (A - p) / (N - p) >= trig  ->  p >= (trig N - A) / (trig - 1)
      const double need =
          trig > 1 ? (trig * notes_above - (assets - (amount - x))) / (trig - 1) : notes_above;
      double remaining = std::max(0.0, need);
      for (int j = 0; j <= k && x > 0 && remaining > 0; ++j) {
        const double paid = notes_.Repay(j, std::min(x, remaining));
        m.note_principal[j] += paid, tranche_[j].back() += paid, x -= paid, remaining -= paid;
      }
    }
  }
  if (amortising)
    for (int k = 0; k < notes_.size() && x > 0; ++k) {
      const double paid = notes_.Repay(k, x);
      m.note_principal[k] += paid, tranche_[k].back() += paid, x -= paid;
    }
  if (x <= 0) return;
  // Equity distributions wait while a test fails, and never make one fail (before the end):
  // they are capped at the assets above every tranche's trigger x its notes and those above.
  if (!done() && TestsActive()) {
    const double assets_after = assets - (amount - x);
    double notes_above = 0;
    for (int k = 0; k < notes_.size(); ++k) {
      notes_above += notes_.balance(k);
      if (notes_.terms(k).oc_trigger > 0 && notes_above > 0)
        x = std::min(x, std::max(0.0, assets_after - notes_.terms(k).oc_trigger * notes_above));
    }
    if (x <= 0) return;
  }
  const WaterfallSplit s = equity_.Distribute(x);
  m.lp_distributions += s.lp, m.gp_distributions += s.gp;
  lp_.back() += s.lp, gp_.back() += s.gp;
}

const FundMonth& FundPath::Step(const FundDecision& d, FundTimers* timers) {
  using Clock = std::chrono::steady_clock;
  const FundConfig& c = *config_;
  if (done()) throw std::logic_error("fund path: the fund's term is over (Reset first)");
  if (static_cast<int>(d.zone_weights.size()) != c.zones.size())
    throw std::invalid_argument(
        fmt::format("fund: {} zone weights for {} zones", d.zone_weights.size(), c.zones.size()));
  auto t0 = Clock::now();
  ++month_;
  lp_.push_back(0), gp_.push_back(0);
  for (auto& t : tranche_) t.push_back(0);
  FundMonth m;
  m.month = month_;
  m.cash_begin = cash_;
  // 1. Paths: the national index and every zone's.
  const MacroState& macro = macro_.Step(month_);
  {
    const int zn = c.zones.size();
    double normals[32];
    CounterRng rng(DeriveKey(DeriveKey(key_, 0x7a6f6e6573), static_cast<uint64_t>(month_)));
    for (int z = 0; z < zn; ++z) normals[z] = rng.Normal();
    StepZoneHpi(c.zones, std::log(macro.hpi / prev_national_), normals, log_hpi_.data());
    for (int z = 0; z < zn; ++z) hpi_[z] = std::exp(log_hpi_[z]);
    prev_national_ = macro.hpi;
  }
  auto t1 = Clock::now();
  // 2. Exits.
  Exits(m);
  Revalue();
  cash_ += m.sale + m.refinance + m.maturity + m.default_recovery;
  if (done()) {  // the end of the term: every contract is sold
    m.liquidation = nav() * (1 - c.fund.liquidation_discount);
    std::fill(cells_.begin(), cells_.end(), FundCohort{});
    cash_ += m.liquidation;
  }
  Revalue();
  auto t2 = Clock::now();
  // 3. Costs, in priority order: expenses and fees, facility interest, coupons.
  const bool investing = month_ <= c.fund.investment_period_months;
  double invested_cost = 0;
  for (const auto& k : cells_) invested_cost += k.invested;
  expenses_due_ += c.fees.expenses_fixed / 12 + c.fees.expenses_nav * nav() / 12;
  fees_due_ += (investing ? c.fund.commitment * c.fees.management_fee
                          : invested_cost * c.fees.management_fee_after) /
               12;
  const double interest = drawn_ * (macro.policy_rate + c.facility.spread) / 12;
  std::array<double, 2> coupon_due{};
  for (int k = 0; k < notes_.size(); ++k) coupon_due[k] = notes_.CouponDue(k);
  const double due = payables() + interest + coupon_due[0] + coupon_due[1];
  if (cash_ < due && investing) Call(due - cash_, m);
  {
    // Expenses owed (the oldest first), then management fees; what cash cannot pay is owed.
    const double paid_exp = std::min(cash_, expenses_due_);
    expenses_due_ -= paid_exp, cash_ -= paid_exp, m.expenses = paid_exp;
    const double paid_fee = std::min(cash_, fees_due_);
    fees_due_ -= paid_fee, cash_ -= paid_fee, m.management_fees = paid_fee;
    fees_paid_ += paid_fee;
  }
  {
    const double paid = std::min(cash_, interest);
    m.facility_interest = paid, cash_ -= paid;
    drawn_ += interest - paid;  // unpaid interest is capitalised
  }
  const double assets = nav() + cash_ - drawn_ - payables();
  for (int k = 0; k < notes_.size(); ++k) {
    const bool pik = k > 0 && TestsActive() && !notes_.OcPasses(k, assets);
    const double paid = pik ? 0.0 : std::min(cash_, coupon_due[k]);
    m.coupons[k] = paid, cash_ -= paid, tranche_[k].back() += paid;
    notes_.Capitalise(k, coupon_due[k] - paid);
  }
  auto t3 = Clock::now();
  // 4. The facility: borrowing-base test, sweep, paydown to the target.
  double bb = borrowing_base();
  const double facility_limit = c.facility.limit * c.fund.commitment;
  // (At the end of the term the liquidation proceeds repay the facility below.)
  m.facility_breach = !done() && drawn_ > bb + 1e-6;
  if (m.facility_breach) {
    ++breach_months_;
    m.swept = true;
    const double paid = std::min(cash_, drawn_);  // cash sweep: everything to the facility
    drawn_ -= paid, cash_ -= paid, m.facility_repaid += paid;
  } else {
    const double target = std::min(facility_limit, d.leverage * bb * (1 - d.min_headroom));
    if (drawn_ > target + 1e-6) {
      const double paid = std::min(cash_, drawn_ - target);
      drawn_ -= paid, cash_ -= paid, m.facility_repaid += paid;
    }
  }
  if (done() && drawn_ > 0) {
    const double paid = std::min(cash_, drawn_);
    drawn_ -= paid, cash_ -= paid, m.facility_repaid += paid;
  }
  // A failing coverage test stops investment: the cash goes to the senior notes instead.
  bool oc_fail_now = false;
  {
    const double a = nav() + cash_ - drawn_ - payables();
    for (int k = 0; k < notes_.size(); ++k) oc_fail_now |= TestsActive() && !notes_.OcPasses(k, a);
  }
  // 5. Originations: cash, then draws to the target leverage, then capital calls.
  const bool may_invest = !m.facility_breach && !oc_fail_now && !done() &&
                          month_ <= c.fund.reinvestment_period_months && (investing || d.reinvest);
  if (may_invest) {
    const double reserve = c.fund.cash_reserve * c.fund.commitment;
    const double budget = c.fund.monthly_capacity * c.fund.commitment;
    const double cash_avail = std::max(0.0, cash_ - reserve);
    const double call_avail = investing ? uncalled() : 0.0;
    const double adv = c.facility.advance_rate * d.leverage * (1 - d.min_headroom);
    const double elig = EligibleValue();
    // Funding F = X (1 + fee); draws up to adv x (eligible + X) - drawn, within the limit.
    const double fee = 1 + c.fees.origination_fee;
    const double room0 = std::max(0.0, std::min(facility_limit, adv * elig) - drawn_);
    double x = budget;
    const double max_fund = cash_avail + call_avail + room0 + adv * x;
    x = std::min(x, std::max(0.0, max_fund / fee));
    if (x > 1.0) {
      const double need = x * fee;
      const double draw_room = std::max(0.0, std::min(facility_limit, adv * (elig + x)) - drawn_);
      const double from_cash = std::min(cash_avail, need);
      const double draw = std::min(draw_room, need - from_cash);
      drawn_ += draw, cash_ += draw, m.draws += draw;
      const double rest = need - from_cash - draw;
      if (rest > 0) Call(rest, m);
      x = std::min(x, cash_ / fee);
      Originate(d, x, m);
      Revalue();
      // What was funded but not invested (guardrails) stays in cash.
    }
  }
  auto t4 = Clock::now();
  // 6. Distributions.
  equity_.AccrueMonth();
  const bool dist_month = done() || oc_fail_now || month_ % c.fund.distribution_months == 0;
  if (dist_month && !m.facility_breach) {
    const double reserve = done() ? 0.0 : c.fund.cash_reserve * c.fund.commitment;
    const double distributable = std::max(0.0, cash_ - reserve - payables());
    const double before = cash_;
    const double paid_before =
        m.lp_distributions + m.gp_distributions + m.note_principal[0] + m.note_principal[1];
    Distribute(distributable, m);
    const double paid = m.lp_distributions + m.gp_distributions + m.note_principal[0] +
                        m.note_principal[1] - paid_before;
    cash_ = before - paid;
  }
  auto t5 = Clock::now();
  // 7. The month's record.
  double assets_now = nav() + cash_ - drawn_ - payables();
  for (int k = 0; k < notes_.size(); ++k)
    m.oc_fail |= TestsActive() && !notes_.OcPasses(k, assets_now);
  if (m.oc_fail) ++oc_fail_months_;
  m.cash_end = cash_;
  m.nav = nav();
  m.borrowing_base = borrowing_base();
  m.drawn = drawn_;
  m.equity_nav = equity_nav();
  last_ = m;
  auto t6 = Clock::now();
  if (timers) {
    timers->paths += Seconds(t0, t1);
    timers->exits += Seconds(t1, t2);
    timers->leverage += Seconds(t3, t4) + Seconds(t2, t3);
    timers->waterfall += Seconds(t4, t5);
    timers->metrics += Seconds(t5, t6);
  }
  return last_;
}

void FundPath::Save(StateWriter& w) const {
  w.Tag("fund_path.v1");
  macro_.Save(w);
  w.Put(key_), w.Put(month_), w.Put(prev_national_);
  w.PutVector(log_hpi_), w.PutVector(cells_);
  w.Put(cash_), w.Put(drawn_), w.Put(called_), w.Put(expenses_due_), w.Put(fees_due_),
      w.Put(fees_paid_);
  w.PutVector(notes_.balances());
  w.Put(equity_.Save());
  w.PutVector(zone_losses_), w.PutVector(zone_invested_), w.PutVector(zone_defaults_);
  w.PutVector(lp_), w.PutVector(gp_), w.PutVector(tranche_[0]), w.PutVector(tranche_[1]);
  w.Put(breach_months_), w.Put(oc_fail_months_), w.Put(last_);
}

void FundPath::Load(StateReader& r) {
  r.Tag("fund_path.v1");
  macro_.Load(r);
  r.Get(&key_), r.Get(&month_), r.Get(&prev_national_);
  r.GetVector(&log_hpi_), r.GetVector(&cells_);
  for (size_t z = 0; z < log_hpi_.size(); ++z) hpi_[z] = std::exp(log_hpi_[z]);
  r.Get(&cash_), r.Get(&drawn_), r.Get(&called_), r.Get(&expenses_due_), r.Get(&fees_due_),
      r.Get(&fees_paid_);
  r.GetVector(&notes_.balances());
  std::array<double, 5> eq;
  r.Get(&eq);
  equity_.Load(eq);
  r.GetVector(&zone_losses_), r.GetVector(&zone_invested_), r.GetVector(&zone_defaults_);
  r.GetVector(&lp_), r.GetVector(&gp_), r.GetVector(&tranche_[0]), r.GetVector(&tranche_[1]);
  r.Get(&breach_months_), r.Get(&oc_fail_months_), r.Get(&last_);
  Revalue();
}

}  // namespace loantwin
