#include "env/fund_env.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "core/config_error.h"
#include "core/counter_rng.h"
#include "core/yaml_reader.h"
#include "env/role_config.h"

namespace loantwin {
namespace {

constexpr float kClip = 10.0f;
float Clip(double x) {
  return static_cast<float>(std::clamp(std::isfinite(x) ? x : 0.0, -double(kClip), double(kClip)));
}

const std::vector<std::string> kMetricNames = {
    "lp_irr",        "lp_multiple",   "gp_irr",     "equity_irr",    "senior_irr",
    "mezzanine_irr", "nav",           "equity_nav", "leverage",      "facility_breach",
    "oc_fail",       "breach_months", "breached",   "default_losses"};

// Shared features (both roles).
const char* kSharedNames[] = {"fund/progress",
                              "fund/investing",
                              "fund/reinvesting",
                              "fund/cash",
                              "fund/nav",
                              "fund/equity_nav",
                              "fund/uncalled",
                              "fund/drawn",
                              "fund/borrowing_base",
                              "fund/leverage",
                              "fund/facility_breach",
                              "fund/oc_fail",
                              "fund/senior_oc",
                              "macro/unemployment",
                              "macro/mortgage_rate",
                              "macro/policy_rate",
                              "macro/hpi_log"};
constexpr int kNumShared = sizeof(kSharedNames) / sizeof(kSharedNames[0]);

FeatureLayout SharedFeatures(const FundConfig& c) {
  FeatureLayout f;
  for (const char* n : kSharedNames) f.Add(n, -kClip, kClip);
  for (const auto& z : c.zones.zones) {
    f.Add("zone/" + z.name + "/share", 0, 1);
    f.Add("zone/" + z.name + "/hpi_log", -kClip, kClip);
    f.Add("zone/" + z.name + "/cltv", -kClip, kClip);
    f.Add("zone/" + z.name + "/loss_rate", -kClip, kClip);
  }
  return f;
}

std::vector<RoleSpec> MakeRoles(const FundConfig& c) {
  const FeatureLayout shared = SharedFeatures(c);
  std::vector<RoleSpec> roles(kNumFundRoles);
  RoleSpec& risk = roles[kFundRiskRole];
  risk.name = "risk";
  risk.cadence = 3;
  risk.features = shared;
  risk.action_space = MultiDiscrete({5, 4, 4});
  risk.action_dim_names = {"leverage", "max_cltv", "min_headroom"};
  auto fmt_levels = [](const auto& levels, const char* f) {
    std::vector<std::string> m;
    for (double v : levels) m.push_back(fmt::format(fmt::runtime(f), v));
    return m;
  };
  risk.action_meanings = {fmt_levels(kFundLeverageLevels, "{:.2f}x base"),
                          fmt_levels(kFundMaxCltvLevels, "CLTV <= {:.2f}"),
                          fmt_levels(kFundHeadroomLevels, "headroom {:.2f}")};
  risk.action_values = {{kFundLeverageLevels.begin(), kFundLeverageLevels.end()},
                        {kFundMaxCltvLevels.begin(), kFundMaxCltvLevels.end()},
                        {kFundHeadroomLevels.begin(), kFundHeadroomLevels.end()}};
  for (const auto& d : risk.action_dim_names) risk.features.Add("self/" + d, 0, 1);
  risk.objectives = kFundObjectives;

  RoleSpec& port = roles[kFundPortfolioRole];
  port.name = "portfolio";
  port.cadence = 1;
  port.features = shared;
  port.features.Add("directive/leverage", 0, 1);
  port.features.Add("directive/max_cltv", 0, 1);
  port.features.Add("directive/min_headroom", 0, 1);
  std::vector<int> dims;
  for (const auto& z : c.zones.zones) {
    dims.push_back(static_cast<int>(kFundZoneWeights.size()));
    port.action_dim_names.push_back("weight/" + z.name);
    port.action_meanings.push_back({"0", "1", "2", "3"});
    port.action_values.emplace_back(kFundZoneWeights.begin(), kFundZoneWeights.end());
  }
  dims.push_back(2);
  port.action_dim_names.push_back("reinvest");
  port.action_meanings.push_back({"no", "yes"});
  port.action_values.push_back({0, 1});
  port.action_space = MultiDiscrete(dims);
  for (const auto& d : port.action_dim_names) port.features.Add("self/" + d, 0, 1);
  port.objectives = kFundObjectives;
  return roles;
}

int FindObjective(const std::string& name) {
  for (size_t k = 0; k < kFundObjectives.size(); ++k)
    if (kFundObjectives[k] == name) return static_cast<int>(k);
  return -1;
}

}  // namespace

std::array<FundRoleConfig, kNumFundRoles> FundEnvConfig::DefaultRoles() {
  std::array<FundRoleConfig, kNumFundRoles> r;
  r[kFundRiskRole].reward_weights = {{"equity_value", 1.0}, {"covenant", 1.0}};
  r[kFundPortfolioRole].reward_weights = {{"equity_value", 1.0}, {"covenant", 0.5}};
  return r;
}

FundEnvConfig FundEnvConfig::Parse(const YamlValue& value) {
  FundEnvConfig c;
  YamlMap m(value);
  m.Read("scenario", &c.scenario);
  if (auto list = m.Get("scenarios")) {
    if (m.Has("scenario")) list->Fail("give either 'scenario' or 'scenarios', not both");
    for (const auto& item : list->Items()) c.scenarios.push_back(item.AsString());
    if (c.scenarios.empty()) list->Fail("'scenarios' needs at least one scenario");
  }
  FundConfig::ParseInto(m, &c.fund);
  ReadRoleConfigs(m, kFundRoleNames, kFundObjectives, &c.roles);
  m.Done();
  return c;
}

FundEnvConfig FundEnvConfig::Load(const std::string& path) {
  return Parse(YamlValue::LoadFile(path));
}

std::string FundEnvConfig::ToYaml() const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  if (scenarios.empty())
    out << YAML::Key << "scenario" << YAML::Value << scenario;
  else
    out << YAML::Key << "scenarios" << YAML::Value << YAML::Flow << scenarios;
  fund.EmitYaml(&out);
  EmitRoleConfigs(out, kFundRoleNames, roles);
  out << YAML::EndMap;
  return out.c_str();
}

HomeEquityFundEnv::HomeEquityFundEnv(const EnvOptions& options, const FundEnvConfig& config)
    : MultiAgentEnv("home_equity_fund", MakeRoles(config.fund), options,
                    config.fund.fund.term_months),
      config_(config),
      fund_(std::make_shared<FundConfig>(config.fund)) {
  fund_->Validate();
  shared_dim_ = SharedFeatures(*fund_).size();
  if (config.scenarios.empty())
    scenarios_.push_back(LoadScenario(config.scenario));
  else
    for (const auto& name : config.scenarios) scenarios_.push_back(LoadScenario(name));
  for (int r = 0; r < kNumFundRoles; ++r) {
    SetFallback(r, config.roles[r].fallback);
    SetRewardWeights(r, config.roles[r].reward_weights);
  }
  const int n = num_envs();
  paths_.resize(n);
  metrics_.assign(n, std::vector<double>(kNumFundMetrics, 0.0));
  timers_.assign(n, FundTimers{});
  totals_.assign(n, FundEpisodeTotals{});
  for (int i = 0; i < n; ++i)
    paths_[i] = std::make_unique<FundPath>(fund_, scenarios_[instance_id(i) % scenarios_.size()]);
}

void HomeEquityFundEnv::SetRewardWeights(
    int role, const std::vector<std::pair<std::string, double>>& weights) {
  std::vector<double> w(kFundObjectives.size(), 0.0);
  for (const auto& [name, weight] : weights) {
    const int k = FindObjective(name);
    if (k < 0)
      throw std::invalid_argument(fmt::format(
          "home_equity_fund: unknown objective '{}' (equity_value, covenant, loss)", name));
    w[k] = weight;
  }
  weights_.at(role) = w;
}

const std::vector<std::string>& HomeEquityFundEnv::metric_names() const {
  LT_CHECK_EQ(kMetricNames.size(), static_cast<size_t>(kNumFundMetrics));
  return kMetricNames;
}

double HomeEquityFundEnv::metric(int i, int k) const {
  return metrics_[i].at(k);
}

std::string HomeEquityFundEnv::instance_label(int i) const {
  return scenarios_[instance_id(i) % scenarios_.size()]->name;
}

FundTimers HomeEquityFundEnv::timers() const {
  FundTimers t;
  for (const auto& x : timers_) {
    t.paths += x.paths, t.exits += x.exits, t.leverage += x.leverage;
    t.waterfall += x.waterfall, t.metrics += x.metrics;
  }
  return t;
}

FundDecision HomeEquityFundEnv::Decode(int i) const {
  FundDecision d;
  const int32_t* r = action_row(kFundRiskRole, i);
  d.leverage = kFundLeverageLevels[r[0]];
  d.max_cltv = kFundMaxCltvLevels[r[1]];
  d.min_headroom = kFundHeadroomLevels[r[2]];
  const int32_t* p = action_row(kFundPortfolioRole, i);
  const int zn = fund_->zones.size();
  d.zone_weights.resize(zn);
  for (int z = 0; z < zn; ++z) d.zone_weights[z] = kFundZoneWeights[p[z]];
  d.reinvest = p[zn] == 1;
  return d;
}

void HomeEquityFundEnv::WriteObservations(int i) {
  const FundPath& f = *paths_[i];
  const FundConfig& c = *fund_;
  const double commit = c.fund.commitment;
  const double nav = f.nav(), bb = f.borrowing_base();
  const FundMonth& m = f.last();
  const double senior_oc =
      f.notes().size() > 0 ? f.notes().OcRatio(0, nav + f.cash() - f.drawn() - f.payables()) : 10;
  const double shared[kNumShared] = {static_cast<double>(f.month()) / c.fund.term_months,
                                     f.month() < c.fund.investment_period_months ? 1.0 : 0.0,
                                     f.month() < c.fund.reinvestment_period_months ? 1.0 : 0.0,
                                     f.cash() / commit * 10,
                                     nav / commit,
                                     f.equity_nav() / commit,
                                     f.uncalled() / commit,
                                     f.drawn() / commit,
                                     bb / commit,
                                     bb > 0 ? f.drawn() / bb : 0.0,
                                     m.facility_breach ? 1.0 : 0.0,
                                     m.oc_fail ? 1.0 : 0.0,
                                     std::min(senior_oc, 10.0) / 3,
                                     (f.macro().unemployment - 0.045) / 0.02,
                                     (f.macro().mortgage_rate - 0.06) / 0.02,
                                     (f.macro().policy_rate - 0.035) / 0.02,
                                     std::log(f.macro().hpi) * 5};
  const int zn = c.zones.size();
  for (int r = 0; r < kNumFundRoles; ++r) {
    float* o = obs_row(r, i);
    for (int k = 0; k < kNumShared; ++k) o[k] = Clip(shared[k]);
    for (int z = 0; z < zn; ++z) {
      const double zv = f.zone_value(z), cltv = f.zone_cltv(z);
      o[kNumShared + 4 * z + 0] = Clip(nav > 0 ? zv / nav : 0.0);
      o[kNumShared + 4 * z + 1] = Clip(std::log(f.zone_hpi(z)) * 5);
      o[kNumShared + 4 * z + 2] = Clip(std::isfinite(cltv) ? cltv : 0.0);
      o[kNumShared + 4 * z + 3] =
          Clip(f.zone_invested(z) > 0 ? f.zone_losses(z) / f.zone_invested(z) * 10 : 0.0);
    }
  }
}

void HomeEquityFundEnv::OnDecision(int role, int begin, int end) {
  if (role != kFundRiskRole) return;
  for (int i = begin; i < end; ++i) {
    const int32_t* a = action_row(kFundRiskRole, i);
    float* o = obs_row(kFundPortfolioRole, i) + shared_dim_;
    o[0] = static_cast<float>(kFundLeverageLevels[a[0]]);
    o[1] = static_cast<float>(kFundMaxCltvLevels[a[1]]);
    o[2] = static_cast<float>(kFundHeadroomLevels[a[2]]);
  }
  RefreshMasks(kFundPortfolioRole, begin, end);
}

void HomeEquityFundEnv::ResetInstance(int i, uint64_t episode) {
  paths_[i]->Reset(DeriveKey(DeriveKey(DeriveKey(seed(), 0x66756e64), instance_id(i)), episode));
  // Self and directive features start at the baseline's decisions' position (zero).
  for (int r = 0; r < kNumFundRoles; ++r) {
    float* o = obs_row(r, i);
    std::fill(o + shared_dim_, o + role(r).obs_dim(), 0.0f);
  }
  WriteObservations(i);
}

void HomeEquityFundEnv::Finalise(int i) {
  const FundPath& f = *paths_[i];
  std::vector<double>& row = metrics_[i];
  const FundMonth& m = f.last();
  const double nan = std::nan("");
  if (f.done()) {
    row[kLpIrr] = AnnualIrr(f.lp_flows());
    row[kLpMultiple] = EquityMultiple(f.lp_flows());
    row[kGpIrr] = AnnualIrr(f.gp_flows());
    std::vector<double> eq(f.lp_flows().size());
    for (size_t t = 0; t < eq.size(); ++t) eq[t] = f.lp_flows()[t] + f.gp_flows()[t];
    row[kEquityIrr] = AnnualIrr(eq);
    row[kSeniorIrr] = f.notes().size() > 0 ? AnnualIrr(f.tranche_flows(0)) : nan;
    row[kMezzanineIrr] = f.notes().size() > 1 ? AnnualIrr(f.tranche_flows(1)) : nan;
    FundEpisodeTotals& t = totals_[i];
    t.gp_multiple = EquityMultiple(f.gp_flows());
    t.senior_multiple = f.notes().size() > 0 ? EquityMultiple(f.tranche_flows(0)) : nan;
    t.mezzanine_multiple = f.notes().size() > 1 ? EquityMultiple(f.tranche_flows(1)) : nan;
    t.lp_distributions = t.gp_distributions = 0;
    for (double x : f.lp_flows()) t.lp_distributions += std::max(0.0, x);
    for (double x : f.gp_flows()) t.gp_distributions += std::max(0.0, x);
    t.gp_promote = f.waterfall().gp_promote();
    t.fees = f.fees_paid();
    t.senior_loss = f.notes().size() > 0 ? f.notes().balance(0) : 0;
    t.mezzanine_loss = f.notes().size() > 1 ? f.notes().balance(1) : 0;
    t.final_lp_distribution = m.lp_distributions;
    t.breach_months = f.breach_months(), t.oc_fail_months = f.oc_fail_months();
    const int zn = fund_->zones.size();
    t.zone_invested.resize(zn), t.zone_defaults.resize(zn), t.zone_losses.resize(zn);
    t.default_losses = 0;
    for (int z = 0; z < zn; ++z) {
      t.zone_invested[z] = f.zone_invested(z), t.zone_defaults[z] = f.zone_defaults(z);
      t.zone_losses[z] = f.zone_losses(z), t.default_losses += f.zone_losses(z);
    }
  } else {
    for (int k = kLpIrr; k <= kMezzanineIrr; ++k) row[k] = 0.0;
  }
  row[kNav] = m.nav;
  row[kEquityNav] = m.equity_nav;
  row[kLeverage] = m.borrowing_base > 0 ? m.drawn / m.borrowing_base : 0.0;
  row[kFacilityBreach] = m.facility_breach;
  row[kOcFail] = m.oc_fail;
  row[kBreachMonths] = f.breach_months();
  row[kBreached] = f.breach_months() > 0 ? 1.0 : 0.0;
  double losses = 0;
  for (int z = 0; z < fund_->zones.size(); ++z) losses += f.zone_losses(z);
  row[kDefaultLosses] = losses;
}

void HomeEquityFundEnv::StepInstances(int begin, int end) {
  const double commit = fund_->fund.commitment;
  const double eq_share = fund_->equity_share();
  for (int i = begin; i < end; ++i) {
    FundPath& f = *paths_[i];
    const double eq_before = f.equity_nav();
    const FundMonth& m = f.Step(Decode(i), profile_ ? &timers_[i] : nullptr);
    const double value =
        (m.equity_nav - eq_before + m.lp_distributions + m.gp_distributions - m.calls * eq_share) /
        commit * 100;
    const double objectives[3] = {value, -(m.facility_breach ? 1.0 : 0.0) - (m.oc_fail ? 1.0 : 0.0),
                                  -m.default_losses / commit * 100};
    for (int r = 0; r < kNumFundRoles; ++r) {
      float* rv = reward_vec_row(r, i);
      double total = 0;
      for (int k = 0; k < 3; ++k)
        rv[k] = static_cast<float>(objectives[k]), total += weights_[r][k] * objectives[k];
      set_reward(r, i, static_cast<float>(total));
    }
    Finalise(i);
    WriteObservations(i);
    // Self features: the decisions in force, scaled to [0, 1].
    for (int r = 0; r < kNumFundRoles; ++r) {
      const RoleSpec& s = role(r);
      float* o = obs_row(r, i) + s.obs_dim() - s.action_space.action_dims();
      const int32_t* a = action_row(r, i);
      for (int d = 0; d < s.action_space.action_dims(); ++d)
        o[d] = static_cast<float>(a[d]) / std::max<size_t>(1, s.action_meanings[d].size() - 1);
    }
    if (f.done()) set_terminated(i);
  }
}

void HomeEquityFundEnv::WriteMasks(int r, int begin, int end) {
  const int width = role(r).action_space.mask_width();
  const int zn = fund_->zones.size();
  for (int i = begin; i < end; ++i) {
    uint8_t* mask = mask_row(r, i);
    std::fill(mask, mask + width, 1);
    if (r != kFundPortfolioRole) continue;
    const FundPath& f = *paths_[i];
    const double max_cltv = kFundMaxCltvLevels[action_row(kFundRiskRole, i)[1]];
    const double nav = f.nav();
    for (int z = 0; z < zn; ++z) {
      const bool capped =
          nav > 0 && f.zone_value(z) >= fund_->guardrails.max_zone_share * nav && f.month() > 0;
      if (capped || !f.ZoneEligible(z, max_cltv))
        for (int k = 1; k < 4; ++k) mask[4 * z + k] = 0;
    }
    const int m = f.month() + 1;  // the month being decided
    uint8_t* reinvest = mask + 4 * zn;
    if (m <= fund_->fund.investment_period_months)
      reinvest[0] = 0;  // investing anyway: "yes"
    else if (m > fund_->fund.reinvestment_period_months)
      reinvest[1] = 0;  // the reinvestment period is over
  }
}

std::string HomeEquityFundEnv::ExplainMask(int r, int i, int dim) const {
  if (r != kFundPortfolioRole) return "";
  const int zn = fund_->zones.size();
  if (dim == zn)
    return fmt::format(
        "reinvest is decided by the period (month {}: investment period ends {}, "
        "reinvestment {})",
        paths_[i]->month() + 1, fund_->fund.investment_period_months,
        fund_->fund.reinvestment_period_months);
  return fmt::format("zone {} is at max_zone_share {} or above the risk role's max CLTV",
                     fund_->zones.zones[dim].name, fund_->guardrails.max_zone_share);
}

void HomeEquityFundEnv::BaselineActions(int r, int begin, int end, int32_t* out) {
  const int dims = role(r).action_space.action_dims();
  const int zn = fund_->zones.size();
  for (int i = begin; i < end; ++i) {
    int32_t* a = out + static_cast<size_t>(i) * dims;
    if (r == kFundRiskRole) {
      a[0] = 2, a[1] = 2, a[2] = 1;  // 0.5x leverage, CLTV <= 0.8, 10% headroom
      continue;
    }
    const uint8_t* mask = mask_row(r, i);
    for (int z = 0; z < zn; ++z) a[z] = mask[4 * z + 1] ? 1 : 0;  // equal weight
    a[zn] = mask[4 * zn + 1] ? 1 : 0;                             // reinvest while allowed
  }
}

void HomeEquityFundEnv::SaveInstances(StateWriter& w) const {
  w.Tag("home_equity_fund.v1");
  for (const auto& p : paths_) p->Save(w);
  for (const auto& row : metrics_) w.PutVector(row);
}

void HomeEquityFundEnv::LoadInstances(StateReader& r) {
  r.Tag("home_equity_fund.v1");
  for (auto& p : paths_) p->Load(r);
  for (auto& row : metrics_) r.GetVector(&row);
}

}  // namespace loantwin
