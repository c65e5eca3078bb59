#include "env/twin/scenario.h"

#include <fmt/format.h>

#include <Eigen/Cholesky>
#include <algorithm>
#include <cmath>

#include "core/check.h"
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
int Scenario::LengthMonths() const {
  size_t n = 0;
  for (const auto& a : anchors) n = std::max(n, a.size());
  return static_cast<int>(n * step_months);
}

std::shared_ptr<const Scenario> LoadScenario(const std::string& name_or_path) {
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

  auto value = [&](int v) {
    const bool rate = v == kPolicyRateVar || v == kRate10yVar || v == kMortgageRateVar;
    return scenario_->AnchorAt(v, month) + deviation_(v) + (rate && month >= 1 ? rate_shift_ : 0);
  };
  state_.unemployment = std::clamp(value(kUnemploymentVar), 1.0, 40.0) / 100;
  state_.gdp_growth = value(kGdpGrowthVar) / 100;
  state_.policy_rate = std::max(0.0, value(kPolicyRateVar)) / 100;
  state_.rate_10y = std::max(0.0, value(kRate10yVar)) / 100;
  state_.mortgage_rate = std::max(0.5, value(kMortgageRateVar)) / 100;
  state_.hpi = scenario_->AnchorAt(kHpiVar, month) / hpi0_ * std::exp(deviation_(kHpiVar));
  state_.credit_spread = std::max(0.0, value(kCreditSpreadVar)) / 100;
  state_.fraud_multiplier = scenario_->FraudMultiplierAt(month);
  return state_;
}

}  // namespace loantwin
