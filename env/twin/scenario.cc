#include "env/twin/scenario.h"

#include <fmt/format.h>

#include <Eigen/Cholesky>
#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "core/config_fields.h"
#include "core/counter_rng.h"
#include "core/yaml_reader.h"
#include "env/twin/config_paths.h"

namespace loantwin {

// The default stochastic component is a diagonal VAR(1) estimated on the Fed's 2025 Table 1A
// quarterly history (1976 Q1 - 2024 Q4; the spread from 1989; pandemic quarters left out) and
// converted to months by scripts/estimate_macro_noise.py, which prints these constants; the
// estimates are tabled in docs/twin-model.md ("Macro and the credit factor").
std::array<double, kNumMacroVars> DefaultShockSd() {
  // unemployment pp, GDP pp (annualised), policy pp, 10y pp, mortgage pp, log-HPI, spread pp
  return {0.1808, 2.1569, 0.4241, 0.2808, 0.2875, 0.0093, 0.2352};
}
std::array<double, kNumMacroVars> DefaultShockPersistence() {
  return {0.995, 0.686, 0.992, 0.995, 0.995, 0.992, 0.952};
}

namespace {

// Innovation correlations (unemployment, gdp, policy, 10y, mortgage, hpi, spread) of the same
// estimate, over 1989 Q1 - 2024 Q4 where all seven residuals exist.
const double kCorrelation[kNumMacroVars][kNumMacroVars] = {
    {+1.00, -0.38, -0.40, -0.18, -0.25, -0.46, +0.19},
    {-0.38, +1.00, +0.26, +0.23, +0.17, +0.29, -0.41},
    {-0.40, +0.26, +1.00, +0.41, +0.47, +0.33, -0.21},
    {-0.18, +0.23, +0.41, +1.00, +0.90, +0.18, -0.26},
    {-0.25, +0.17, +0.47, +0.90, +1.00, +0.18, -0.07},
    {-0.46, +0.29, +0.33, +0.18, +0.18, +1.00, -0.29},
    {+0.19, -0.41, -0.21, -0.26, -0.07, -0.29, +1.00}};

double Interpolate(const std::vector<double>& points, int step, double offset, int month) {
  if (points.empty()) return 0;
  const double x = (month - offset) / step;
  if (x <= 0) return points.front();
  const size_t i = static_cast<size_t>(x);
  if (i + 1 >= points.size()) return points.back();
  const double f = x - i;
  return points[i] * (1 - f) + points[i + 1] * f;
}

LogNormalDraw ReadDraw(YamlMap& parent, const char* key, double lo, double hi) {
  LogNormalDraw d;
  YamlMap m(parent.Require(key));
  m.Read("log_mean", &d.log_mean, -20.0, 20.0);
  m.Read("log_sd", &d.log_sd, 0.0, 5.0);
  d.min = lo, d.max = hi;
  m.Read("min", &d.min, lo, hi);
  m.Read("max", &d.max, lo, hi);
  if (d.min > d.max) m.value().Fail(fmt::format("'{}': min {} is above max {}", key, d.min, d.max));
  m.Done();
  return d;
}

// The scalar keys of each event, listed once (core/config_fields.h; docs/scenarios.md's table).
template <typename V>
void VisitFields(ScenarioGenerator::Recession& c, V&& v) {
  v("rate_per_year", c.rate_per_year, 0.0, 12.0, "arrivals a year");
  v("recovery_pp_per_month", c.recovery_pp_per_month, 1e-3, 10.0, "unemployment's fall");
  v("okun", c.okun, 0.0, 10.0, "GDP growth gap per pp/year of unemployment change");
  v("policy_cut_per_pp", c.policy_cut_per_pp, 0.0, 10.0, "policy cut per pp of rise");
  v("long_rate_beta", c.long_rate_beta, 0.0, 2.0, "10-year and mortgage move x policy");
  v("spread_per_pp", c.spread_per_pp, 0.0, 10.0, "BBB spread widening per pp");
  v("hpi_drag_per_year", c.hpi_drag_per_year, 0.0, 50.0, "percent a year off house prices");
}
template <typename V>
void VisitFields(ScenarioGenerator::RateShock& c, V&& v) {
  v("rate_per_year", c.rate_per_year, 0.0, 12.0, "arrivals a year");
  v("pp_per_month", c.pp_per_month, 1e-3, 10.0, "climb pace");
  v("hold_months", c.hold_months, 0.0, 240.0, "months at the top");
  v("unwind_pp_per_month", c.unwind_pp_per_month, 1e-3, 10.0, "unwind pace");
  v("long_rate_beta", c.long_rate_beta, 0.0, 2.0, "10-year and mortgage move x policy");
}
template <typename V>
void VisitFields(ScenarioGenerator::HousePriceCorrection& c, V&& v) {
  v("rate_per_year", c.rate_per_year, 0.0, 12.0, "arrivals a year");
  v("decline_per_month", c.decline_per_month, 1e-4, 0.5, "fall pace, fraction a month");
}

void ParseGenerator(const YamlValue& node, ScenarioGenerator* g) {
  g->enabled = true;
  YamlMap m(node);
  if (auto r = m.Get("recession")) {
    YamlMap rm(*r);
    VisitFields(g->recession, FieldReader{rm});
    g->recession.rise_pp = ReadDraw(rm, "rise_pp", 0.0, 40.0);
    g->recession.rise_months = ReadDraw(rm, "rise_months", 1.0, 240.0);
    rm.Done();
  }
  if (auto r = m.Get("rate_shock")) {
    YamlMap rm(*r);
    VisitFields(g->rate_shock, FieldReader{rm});
    g->rate_shock.rise_pp = ReadDraw(rm, "rise_pp", 0.0, 30.0);
    rm.Done();
  }
  if (auto r = m.Get("house_price_correction")) {
    YamlMap rm(*r);
    VisitFields(g->house_price_correction, FieldReader{rm});
    g->house_price_correction.decline = ReadDraw(rm, "decline", 0.0, 0.95);
    rm.Done();
  }
  m.Done();
}

double Draw(const LogNormalDraw& d, CounterRng& rng) {
  return std::clamp(std::exp(d.log_mean + d.log_sd * rng.Normal()), d.min, d.max);
}

/// Months to the next arrival of a Poisson process with `per_year` events a year.
double Arrival(double per_year, CounterRng& rng) {
  return -std::log(1.0 - rng.Uniform()) / per_year * 12.0;
}

std::shared_ptr<const Scenario> Parse(const YamlValue& root) {
  auto s = std::make_shared<Scenario>();
  s->file = root.file();
  s->shock_sd = DefaultShockSd();
  s->shock_persistence = DefaultShockPersistence();
  YamlMap m(root);
  {
    const YamlValue name = m.Require("name");
    s->name = name.AsString();
    if (s->name.find_first_not_of(" \t") == std::string::npos)
      name.Fail("'name' must not be empty (reports name the scenario)");
  }
  m.Read("description", &s->description);
  m.Read("source", &s->source);
  m.Read("step_months", &s->step_months, 1, 12);
  if (auto p = m.Get("anchor_placement")) {
    const std::string placement = p->AsString();
    if (placement != "middle" && placement != "start")
      p->Fail("'anchor_placement' must be 'middle' or 'start', got '" + placement + "'");
    s->mid_period = placement == "middle";
  }
  {
    YamlMap paths(m.Require("paths"));
    const double lo[kNumMacroVars] = {0, -40, -5, -5, 0, 1e-6, -5};
    const double hi[kNumMacroVars] = {60, 40, 50, 50, 50, 1e9, 50};
    for (int v = 0; v < kNumMacroVars; ++v)
      s->anchors[v] = paths.Require(kMacroVarNames[v]).AsDoubleList(0, lo[v], hi[v]);
    paths.Done();
  }
  if (auto f = m.Get("fraud_multiplier")) s->fraud_multiplier = f->AsDoubleList(0, 0.0, 1000.0);
  if (auto lr = m.Get("long_run")) {
    YamlMap lm(*lr);
    s->has_long_run = true;
    const double lo[kNumMacroVars] = {0, -40, -5, -5, 0, -50, -5};
    const double hi[kNumMacroVars] = {60, 40, 50, 50, 50, 50, 50};
    for (int v = 0; v < kNumMacroVars; ++v) {
      // HPI reverts in growth, not level: its long-run entry is named hpi_growth.
      const std::string key = v == kHpiVar ? "hpi_growth" : kMacroVarNames[v];
      s->long_run[v] = lm.Require(key).AsDouble(lo[v], hi[v]);
    }
    lm.Read("reversion_months", &s->reversion_months, 1, 600);
    lm.Done();
  }
  if (auto sh = m.Get("shocks")) {
    YamlMap sm(*sh);
    sm.Read("scale", &s->shock_scale, 0.0, 20.0);
    for (const char* key : {"sd", "persistence"}) {
      auto node = sm.Get(key);
      if (!node) continue;
      YamlMap vm(*node);
      auto& target = std::string(key) == "sd" ? s->shock_sd : s->shock_persistence;
      for (int v = 0; v < kNumMacroVars; ++v)
        vm.Read(kMacroVarNames[v], &target[v], 0.0, std::string(key) == "sd" ? 100.0 : 0.999);
      vm.Done();
    }
    sm.Done();
  }
  if (auto g = m.Get("generator")) ParseGenerator(*g, &s->generator);
  m.Done();
  return s;
}

}  // namespace

double Scenario::AnchorMonth(size_t i) const {
  return static_cast<double>(i * step_months) + (mid_period ? (step_months - 1) / 2.0 : 0.0);
}
double Scenario::AnchorAt(int var, int month) const {
  const auto& points = anchors[var];
  const double offset = AnchorMonth(0);
  const double end = AnchorMonth(points.size() - 1);
  if (!has_long_run || month <= end) return Interpolate(points, step_months, offset, month);
  const double after = month - end;
  if (var == kHpiVar) return points.back() * std::pow(1 + long_run[var] / 100, after / 12);
  const double f = std::min(1.0, after / reversion_months);
  return points.back() + f * (long_run[var] - points.back());
}
double Scenario::FraudMultiplierAt(int month) const {
  return fraud_multiplier.empty()
             ? 1.0
             : Interpolate(fraud_multiplier, step_months, AnchorMonth(0), month);
}
namespace {

/// Events of one kind arriving as a Poisson process on their own stream: `make` sizes the event
/// that starts at e->start and returns the months until the next one can begin to arrive.
template <typename Make>
void DrawArrivals(uint64_t stream, double rate_per_year, int months, MacroEvent::Kind kind,
                  std::vector<MacroEvent>* events, Make make) {
  CounterRng rng(stream);
  for (double t = rate_per_year > 0 ? Arrival(rate_per_year, rng) : months; t < months;) {
    MacroEvent e;
    e.kind = kind;
    e.start = static_cast<int>(t);
    const double busy = make(rng, &e);
    events->push_back(e);
    t += busy + Arrival(rate_per_year, rng);
  }
}

}  // namespace

std::vector<MacroEvent> Scenario::DrawEvents(uint64_t key, int months) const {
  std::vector<MacroEvent> events;
  if (!generator.enabled) return events;
  // One stream per event kind, apart from the monthly innovations' (keys below 1,201).
  const ScenarioGenerator& g = generator;
  // The next recession can begin once the previous one's unemployment has peaked.
  DrawArrivals(DeriveKey(key, 0x7265636573730001), g.recession.rate_per_year, months,
               MacroEvent::kRecession, &events, [&](CounterRng& rng, MacroEvent* e) {
                 e->size = Draw(g.recession.rise_pp, rng);
                 e->months = Draw(g.recession.rise_months, rng);
                 return e->months;
               });
  DrawArrivals(DeriveKey(key, 0x7261746573680002), g.rate_shock.rate_per_year, months,
               MacroEvent::kRateShock, &events, [&](CounterRng& rng, MacroEvent* e) {
                 e->size = Draw(g.rate_shock.rise_pp, rng);
                 e->months = e->size / g.rate_shock.pp_per_month;
                 return e->months + g.rate_shock.hold_months;
               });
  DrawArrivals(DeriveKey(key, 0x6870696472700003), g.house_price_correction.rate_per_year, months,
               MacroEvent::kHousePriceCorrection, &events, [&](CounterRng& rng, MacroEvent* e) {
                 e->size = Draw(g.house_price_correction.decline, rng);
                 e->months = e->size / g.house_price_correction.decline_per_month;
                 return e->months;
               });
  std::stable_sort(events.begin(), events.end(),
                   [](const MacroEvent& a, const MacroEvent& b) { return a.start < b.start; });
  return events;
}

std::array<double, kNumMacroVars> Scenario::EventOverlay(const ScenarioGenerator& g,
                                                         const std::vector<MacroEvent>& events,
                                                         int month) {
  std::array<double, kNumMacroVars> d{};
  for (const MacroEvent& e : events) {
    if (e.start > month) break;  // in start order
    const double tau = month - e.start;
    if (e.kind == MacroEvent::kRecession) {
      const auto& c = g.recession;
      const double rise = e.size, up = std::max(1.0, e.months);
      const double down = rise / c.recovery_pp_per_month;
      double u = 0, gdp = 0, cut = 0;
      const double cut_size = c.policy_cut_per_pp * rise;
      if (tau < up) {  // unemployment climbs; the policy rate is cut over the first half
        u = rise * tau / up;
        gdp = -c.okun * rise * 12 / up;
        cut = cut_size * std::min(1.0, tau / (up / 2));
      } else if (tau < up + down) {  // recovery at the historical pace
        const double f = 1 - (tau - up) / down;
        u = rise * f;
        gdp = c.okun * c.recovery_pp_per_month * 12;
        cut = cut_size * f;
      }
      d[kUnemploymentVar] += u;
      d[kGdpGrowthVar] += gdp;
      d[kPolicyRateVar] -= cut;
      d[kRate10yVar] -= c.long_rate_beta * cut;
      d[kMortgageRateVar] -= c.long_rate_beta * cut;
      d[kCreditSpreadVar] += c.spread_per_pp * u;
      d[kHpiVar] -= c.hpi_drag_per_year / 100 * std::min(tau, up) / 12;  // a lasting level loss
    } else if (e.kind == MacroEvent::kRateShock) {
      const auto& c = g.rate_shock;
      const double up = std::max(1.0, e.months), unwind = e.size / c.unwind_pp_per_month;
      double p = 0;
      if (tau < up)
        p = e.size * tau / up;
      else if (tau < up + c.hold_months)
        p = e.size;
      else if (tau < up + c.hold_months + unwind)
        p = e.size * (1 - (tau - up - c.hold_months) / unwind);
      d[kPolicyRateVar] += p;
      d[kRate10yVar] += c.long_rate_beta * p;
      d[kMortgageRateVar] += c.long_rate_beta * p;
    } else {
      const double f = std::min(1.0, tau / std::max(1.0, e.months));
      d[kHpiVar] += std::log(1 - e.size) * f;  // lasting: prices grow on from the trough
    }
  }
  return d;
}

int Scenario::LengthMonths() const {
  size_t n = 0;
  for (const auto& a : anchors) n = std::max(n, a.size());
  return static_cast<int>(n * step_months);
}

std::shared_ptr<const Scenario> LoadScenario(const std::string& name_or_path) {
  // Generated scenarios (configs/generators/) load by name too; they are not part of the named
  // library ("all" in evaluation), so policies are evaluated on paths they were not tuned to.
  const bool plain = name_or_path.find('/') == std::string::npos &&
                     name_or_path.find(".yaml") == std::string::npos &&
                     name_or_path.find(".yml") == std::string::npos;
  if (plain) {
    const auto generators = ListConfigs("generators");
    if (std::find(generators.begin(), generators.end(), name_or_path) != generators.end())
      return Parse(YamlValue::LoadFile(ResolveConfig("generators", name_or_path)));
  }
  return Parse(YamlValue::LoadFile(ResolveConfig("scenarios", name_or_path)));
}
std::shared_ptr<const Scenario> ParseScenario(const std::string& yaml, const std::string& name) {
  return Parse(YamlValue::LoadString(yaml, name));
}

MacroModel::MacroModel(std::shared_ptr<const Scenario> scenario) : scenario_(std::move(scenario)) {
  Eigen::Matrix<double, kNumMacroVars, kNumMacroVars> cov;
  for (int i = 0; i < kNumMacroVars; ++i)
    for (int j = 0; j < kNumMacroVars; ++j)
      cov(i, j) = kCorrelation[i][j] * scenario_->shock_sd[i] * scenario_->shock_sd[j] *
                  scenario_->shock_scale * scenario_->shock_scale;
  Eigen::LLT<decltype(cov)> llt(cov);
  if (llt.info() != Eigen::Success) {
    // Some sds are zero: factor the correlation of the non-degenerate part with a tiny ridge,
    // then zero the rows of variables without shocks so they stay exactly on their anchors.
    cov.diagonal().array() += 1e-18;
    llt.compute(cov);
  }
  chol_ = llt.matrixL();
  for (int i = 0; i < kNumMacroVars; ++i)
    if (scenario_->shock_sd[i] * scenario_->shock_scale == 0) chol_.row(i).setZero();
  Reset(0);
}

void MacroModel::Reset(uint64_t key) {
  key_ = key;
  month_ = -1;
  deviation_.setZero();
  hpi0_ = scenario_->AnchorAt(kHpiVar, 0);
  events_ = scenario_->DrawEvents(key, kMaxEventMonths);
}

const MacroState& MacroModel::Step(int month) {
  LT_CHECK_EQ(month, month_ + 1);  // months are stepped in order
  month_ = month;
  Eigen::Matrix<double, kNumMacroVars, 1> eps;
  CounterRng rng(DeriveKey(key_, static_cast<uint64_t>(month)));
  for (int v = 0; v < kNumMacroVars; ++v) eps(v) = rng.Normal();
  const auto innovation = (chol_ * eps).eval();
  for (int v = 0; v < kNumMacroVars; ++v)
    deviation_(v) = scenario_->shock_persistence[v] * deviation_(v) + innovation(v);

  std::array<double, kNumMacroVars> overlay{};
  if (!events_.empty()) overlay = Scenario::EventOverlay(scenario_->generator, events_, month);
  auto value = [&](int v) {
    const bool rate = v == kPolicyRateVar || v == kRate10yVar || v == kMortgageRateVar;
    return scenario_->AnchorAt(v, month) + deviation_(v) + overlay[v] +
           (rate && month >= 1 ? rate_shift_ : 0);
  };
  state_.unemployment = std::clamp(value(kUnemploymentVar), 1.0, 40.0) / 100;
  state_.gdp_growth = value(kGdpGrowthVar) / 100;
  state_.policy_rate = std::max(0.0, value(kPolicyRateVar)) / 100;
  state_.rate_10y = std::max(0.0, value(kRate10yVar)) / 100;
  state_.mortgage_rate = std::max(0.5, value(kMortgageRateVar)) / 100;
  state_.hpi = scenario_->AnchorAt(kHpiVar, month) / hpi0_ *
               std::exp(deviation_(kHpiVar) + overlay[kHpiVar]);
  state_.credit_spread = std::max(0.0, value(kCreditSpreadVar)) / 100;
  state_.fraud_multiplier = scenario_->FraudMultiplierAt(month);
  return state_;
}

}  // namespace loantwin
