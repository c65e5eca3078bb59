#include "env/twin_env.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string_view>

#include "core/config_error.h"
#include "core/config_fields.h"
#include "core/normal_dist.h"
#include "core/yaml_reader.h"
#include "env/role_config.h"

namespace loantwin {
namespace {

constexpr float kClip = 10.0f;

float Clip(double x) {
  return static_cast<float>(std::clamp(x, -double(kClip), double(kClip)));
}

std::string BudgetName(double b) {
  return fmt::format("{:.2f}x", b);
}
std::string OffsetName(double o) {
  return fmt::format("{:+.0f}bp", o * 1e4);
}

// Shared features: (name, metric, center, scale) for normalised metrics.
struct MetricFeature {
  const char* name;
  int metric;
  double center, scale;
};
const MetricFeature kMacroFeatures[] = {
    {"macro/unemployment", kUnemployment, 0.045, 0.02},
    {"macro/gdp_growth", kGdpGrowth, 0.02, 0.03},
    {"macro/policy_rate", kPolicyRate, 0.035, 0.02},
    {"macro/rate_10y", kRate10y, 0.04, 0.02},
    {"macro/mortgage_rate", kMortgageRate, 0.06, 0.02},
    {"macro/credit_spread", kCreditSpread, 0.015, 0.01},
    {"macro/credit_factor", kCreditFactor, 0.0, 2.0},
    {"portfolio/capital_ratio", kCapitalRatio, 0.12, 0.05},
    {"portfolio/leverage_ratio", kLeverageRatio, 0.10, 0.05},
    {"portfolio/roa", kRoa, 0.0, 0.01},
    {"portfolio/nim", kNim, 0.035, 0.01},
    {"portfolio/charge_off_rate", kChargeOffRate, 0.0, 0.02},
    {"portfolio/dq30_rate", kDq30Rate, 0.0, 0.03},
    {"portfolio/dq90_rate", kDq90Rate, 0.0, 0.01},
    {"portfolio/stage2_share", kStage2Share, 0.0, 0.1},
    {"portfolio/approval_rate", kApprovalRate, 0.0, 1.0},
    {"portfolio/cost_to_income", kCostToIncome, 0.6, 0.3},
};

RoleSpec MakeRole(int role, const FeatureLayout& shared, std::array<int, kNumTwinRoles>* dir_off,
                  std::array<int, kNumTwinRoles>* self_off, const RewardSet& rewards) {
  RoleSpec r;
  r.name = kTwinRoleNames[role];
  r.cadence = role == kRiskRole ? 3 : 1;
  r.features = shared;
  (*dir_off)[role] = r.features.size();
  // Directives of the roles above.
  if (role > kRiskRole)
    for (int l = 0; l < kNumRiskAppetites; ++l)
      r.features.Add(std::string("directive/risk_appetite/") + GetRiskAppetite(l).name, 0, 1);
  if (role > kPortfolioRole)
    for (int p = 0; p < kNumProducts; ++p)
      r.features.Add(std::string("directive/budget/") + kProductNames[p], 0, kClip);
  if (role > kPricingRole)
    for (int p = 0; p < kNumProducts; ++p)
      r.features.Add(std::string("directive/spread_offset/") + kProductNames[p], -kClip, kClip);
  if (role > kCreditRole)
    for (int p = 0; p < kNumProducts; ++p)
      r.features.Add(std::string("directive/cutoff/") + kProductNames[p], 0, 1);
  (*self_off)[role] = r.features.size();
  switch (role) {
    case kRiskRole: {
      r.action_space = Discrete(kNumRiskAppetites);
      r.action_dim_names = {"risk_appetite"};
      r.action_values = {{0, 1, 2, 3, 4}};
      std::vector<std::string> m;
      for (int l = 0; l < kNumRiskAppetites; ++l) m.push_back(GetRiskAppetite(l).name);
      r.action_meanings = {m};
      break;
    }
    case kPortfolioRole: {
      r.action_space = MultiDiscrete(std::vector<int>(kNumProducts, kBudgetLevels.size()));
      std::vector<std::string> m;
      for (double b : kBudgetLevels) m.push_back(BudgetName(b));
      for (int p = 0; p < kNumProducts; ++p) {
        r.action_dim_names.push_back(std::string("budget/") + kProductNames[p]);
        r.action_meanings.push_back(m);
        r.action_values.emplace_back(kBudgetLevels.begin(), kBudgetLevels.end());
      }
      break;
    }
    case kPricingRole: {
      r.action_space = MultiDiscrete(std::vector<int>(kNumProducts, kSpreadOffsets.size()));
      std::vector<std::string> m;
      for (double o : kSpreadOffsets) m.push_back(OffsetName(o));
      for (int p = 0; p < kNumProducts; ++p) {
        r.action_dim_names.push_back(std::string("spread_offset/") + kProductNames[p]);
        r.action_meanings.push_back(m);
        r.action_values.emplace_back(kSpreadOffsets.begin(), kSpreadOffsets.end());
      }
      break;
    }
    case kCreditRole: {
      r.action_space = MultiDiscrete(std::vector<int>(kNumProducts, kNumBands + 1));
      std::vector<std::string> m = {"none"};
      for (int b = 0; b < kNumBands; ++b) m.push_back(std::string("up to ") + kBandNames[b]);
      for (int p = 0; p < kNumProducts; ++p) {
        r.action_dim_names.push_back(std::string("cutoff/") + kProductNames[p]);
        r.action_meanings.push_back(m);
        r.action_values.push_back({-1, 0, 1, 2, 3, 4, 5, 6});
      }
      break;
    }
    case kCollectionRole: {
      r.action_space =
          MultiDiscrete(std::vector<int>(kNumDelinquentBuckets, kNumCollectionIntensities));
      const std::vector<std::string> m(kCollectionNames.begin(), kCollectionNames.end());
      for (const char* b : {"dpd30", "dpd60", "dpd90"}) {
        r.action_dim_names.push_back(std::string("collection/") + b);
        r.action_meanings.push_back(m);
        r.action_values.push_back({0, 1, 2, 3});
      }
      break;
    }
  }
  for (const auto& d : r.action_dim_names) r.features.Add("self/" + d, 0, 1);
  r.objectives = rewards.names();
  return r;
}

FeatureLayout SharedFeatures() {
  FeatureLayout f;
  for (const auto& mf : kMacroFeatures) f.Add(mf.name, -kClip, kClip, mf.center, mf.scale);
  f.Add("macro/hpi_log", -kClip, kClip);
  f.Add("portfolio/liquidity_ratio_log", -kClip, kClip);
  f.Add("portfolio/loan_growth_log", -kClip, kClip);
  f.Add("portfolio/equity_growth_log", -kClip, kClip);
  f.Add("portfolio/expected_loss_rate", -kClip, kClip);
  f.Add("portfolio/allowance_rate", -kClip, kClip);
  for (int p = 0; p < kNumProducts; ++p) {
    const std::string pre = std::string("product/") + kProductNames[p] + "/";
    f.Add(pre + "offered", 0, 1);
    f.Add(pre + "balance_share", 0, 1);
    f.Add(pre + "charge_off_rate", -kClip, kClip);
    f.Add(pre + "dq30_rate", -kClip, kClip);
    f.Add(pre + "yield", -kClip, kClip);
    f.Add(pre + "origination_rate", -kClip, kClip);
  }
  f.Add("episode/progress", 0, 1);
  return f;
}

std::array<RewardSet, kNumTwinRoles> MakeRewardSets(const TwinEnvConfig& c) {
  std::array<RewardSet, kNumTwinRoles> sets;
  for (int r = 0; r < kNumTwinRoles; ++r)
    for (const auto& [name, w] : c.roles[r].reward_weights) sets[r].SetWeight(name, w);
  return sets;
}

std::vector<RoleSpec> MakeRoles(std::array<int, kNumTwinRoles>* dir_off,
                                std::array<int, kNumTwinRoles>* self_off) {
  const FeatureLayout shared = SharedFeatures();
  const RewardSet rewards;
  std::vector<RoleSpec> roles;
  for (int r = 0; r < kNumTwinRoles; ++r)
    roles.push_back(MakeRole(r, shared, dir_off, self_off, rewards));
  return roles;
}

std::vector<RoleSpec> RoleSpecs() {
  std::array<int, kNumTwinRoles> directive_offset{}, self_offset{};
  return MakeRoles(&directive_offset, &self_offset);
}

}  // namespace

std::array<TwinRoleConfig, kNumTwinRoles> TwinEnvConfig::DefaultRoles() {
  std::array<TwinRoleConfig, kNumTwinRoles> r;
  r[kRiskRole].reward_weights = {{"profit", 1.0}, {"capital", 1.0}, {"stability", 0.1}};
  r[kPortfolioRole].reward_weights = {{"profit", 1.0}, {"concentration", 0.2}, {"customer", 0.2}};
  r[kPricingRole].reward_weights = {{"profit", 1.0}, {"customer", 0.5}};
  r[kCreditRole].reward_weights = {{"profit", 1.0}, {"expected_loss", 0.5}, {"customer", 0.2}};
  r[kCollectionRole].reward_weights = {{"profit", 1.0}, {"expected_loss", 0.5}};
  return r;
}

TwinEnvConfig TwinEnvConfig::Parse(const YamlValue& value) {
  TwinEnvConfig c;
  YamlMap m(value);
  VisitFields(c, FieldReader{m});
  if (auto list = m.Get("institutions")) {
    if (m.Has("institution")) list->Fail("give either 'institution' or 'institutions', not both");
    for (const auto& item : list->Items()) {
      const std::string name = item.AsString();
      if (std::find(c.institutions.begin(), c.institutions.end(), name) != c.institutions.end())
        item.Fail(fmt::format("'institutions' lists '{}' twice", name));
      c.institutions.push_back(name);
    }
    if (c.institutions.empty()) list->Fail("'institutions' needs at least one institution");
    c.institution = c.institutions[0];
  }
  m.Read("scenario", &c.scenario);
  if (auto list = m.Get("scenarios")) {
    if (m.Has("scenario")) list->Fail("give either 'scenario' or 'scenarios', not both");
    for (const auto& item : list->Items()) c.scenarios.push_back(item.AsString());
    if (c.scenarios.empty()) list->Fail("'scenarios' needs at least one scenario");
  }
  ReadRoleConfigs(m, kTwinRoleNames, RegisteredRewards(), &c.roles);
  m.Done();
  return c;
}

std::string TwinEnvConfig::ToYaml() const {
  TwinEnvConfig copy = *this;
  YAML::Emitter out;
  out << YAML::BeginMap;
  FieldWriter writer{out};
  VisitFields(copy, [&](const char* name, auto& field, auto&&... rest) {
    if (institutions.empty() || std::string_view(name) != "institution")
      writer(name, field, rest...);
  });
  if (!institutions.empty())
    out << YAML::Key << "institutions" << YAML::Value << YAML::Flow << institutions;
  if (scenarios.empty())
    out << YAML::Key << "scenario" << YAML::Value << scenario;
  else
    out << YAML::Key << "scenarios" << YAML::Value << YAML::Flow << scenarios;
  EmitRoleConfigs(out, kTwinRoleNames, roles);
  out << YAML::EndMap;
  return out.c_str();
}

TwinEnv::TwinEnv(const EnvOptions& options, const TwinEnvConfig& config)
    : MultiAgentEnv("twin", RoleSpecs(), options, config.horizon_months),
      config_(config),
      reward_sets_(MakeRewardSets(config)),
      cost_plus_reference_(config.pricing_reference == "cost_plus") {
  config_.institution = config.InstitutionList()[0];  // the first, however the config was built
  for (const std::string& name : config.InstitutionList()) {
    Lender l;
    l.config = LoadInstitution(name);
    l.defaults = DefaultLevers(*l.config);
    if (cost_plus_reference_) l.calibration_base = CostPlusCalibrationBase(l.config);
    lenders_.push_back(std::move(l));
  }
  MakeRoles(&directive_offset_, &self_offset_);
  shared_dim_ = SharedFeatures().size();
  if (config.scenarios.empty())
    scenarios_.push_back(LoadScenario(config.scenario));
  else
    for (const auto& name : config.scenarios) scenarios_.push_back(LoadScenario(name));
  for (int r = 0; r < kNumTwinRoles; ++r) SetFallback(r, config.roles[r].fallback);
  if (!config.guardrails.empty()) SetGuardrails(config.guardrails);
  states_.resize(num_envs());
  for (int k = 0; k < kNumMetrics; ++k) metric_names_.push_back(MetricName(k));
  metric_names_.push_back("max_product_share");
  if (!config.applicant_groups.empty()) {
    groups_ =
        std::make_shared<ApplicantGroupTable>(ApplicantGroupTable::Load(config.applicant_groups));
    metric_names_.push_back("fairness/min_air");
    metric_names_.push_back("fairness/eo_gap");
  }
  TwinOptions topt;
  topt.check_invariants = config.check_invariants;
  topt.count_invariant_breaches = config.count_invariant_breaches;
  runner().For(num_envs(), [&](int i) {
    Instance& s = states_[i];
    const uint64_t id = instance_id(i);
    s.lender = &lenders_[(id / scenarios_.size()) % lenders_.size()];
    s.twin = std::make_unique<Twin>(s.lender->config, scenarios_[id % scenarios_.size()], seed(),
                                    static_cast<int>(id), topt);
    if (groups_) {
      s.lens = std::make_unique<ApplicantLens>(groups_.get());
      s.twin->set_applicant_lens(s.lens.get());
    }
    s.metrics.assign(kNumMetrics, 0.0);
    s.reset_metrics.assign(kNumMetrics, 0.0);
    s.current = s.reset_metrics.data();
    for (int r = 0; r < kNumTwinRoles; ++r)
      s.previous[r].assign(role(r).action_space.action_dims(), 0);
  });
}

TwinEnv::~TwinEnv() = default;

const std::vector<std::string>& TwinEnv::metric_names() const {
  return metric_names_;
}

double TwinEnv::metric(int i, int k) const {
  const double* row = step_metrics(i);
  if (k < kNumMetrics) return row[k];
  if (k == kNumMetrics) return MaxProductShare(row);
  const FairnessSummary f = Summarise(states_[i].lens->episode(), *groups_);
  return k == kNumMetrics + 1 ? f.min_air : f.eo_gap;
}

std::string TwinEnv::instance_label(int i) const {
  // With several institutions the label names both: <institution>/<scenario>.
  const std::string& scenario = states_[i].twin->scenario().name;
  return lenders_.size() > 1 ? states_[i].lender->config->name + "/" + scenario : scenario;
}

double CostPlusSpread(const InstitutionConfig& institution, int product, double policy_rate,
                      double mortgage_rate, double credit_factor) {
  // Cost-plus: funding + expected loss + servicing cost, all annual rates, over the index.
  const ProductSpec& s = institution.products[product].spec;
  const double funding =
      std::max(0.0, institution.deposit_beta * policy_rate + institution.deposit_spread);
  double pd = 0, share = 0;
  for (int b = 0; b <= s.default_cutoff; ++b) {
    pd += s.applicant_mix[b] * VasicekPd(s.pd[b], s.cycle_rho, credit_factor);
    share += s.applicant_mix[b];
  }
  const double expected_loss = pd / std::max(share, 1e-12) * s.lgd;
  const double cost = s.servicing_cost * 12 / std::max(1.0, s.mean_amount);
  const double index = s.rate_index == RateIndex::kPolicy ? policy_rate : mortgage_rate;
  return funding + expected_loss + cost - index;
}

namespace {
// Index into kSpreadOffsets of the cost-plus rule's move: the spread's distance from its base in
// 50 bp steps, rounded half away from zero, within +-4 steps (+-200 bp). The rule-based pricing
// action and the cost-plus reference both use it.
int CostPlusMoveIndex(double spread, double base) {
  const double steps = std::clamp(std::round((spread - base) / 0.005), -4.0, 4.0);
  return static_cast<int>(steps) + 4;
}
}  // namespace

double CostPlusMove(double spread, double base) {
  return kSpreadOffsets[CostPlusMoveIndex(spread, base)];
}

std::array<double, kNumProducts> CostPlusCalibrationBase(
    const std::shared_ptr<const InstitutionConfig>& institution) {
  Twin twin(institution, LoadScenario("steady_state"), /*seed=*/0, /*instance_id=*/0);
  twin.Reset(0);
  std::vector<double> row(kNumMetrics);
  twin.Snapshot(row.data());
  std::array<double, kNumProducts> base{};
  for (int p = 0; p < kNumProducts; ++p)
    base[p] = CostPlusSpread(*institution, p, twin.macro().policy_rate, twin.macro().mortgage_rate,
                             row[kCreditFactor]);
  return base;
}

double TwinEnv::CostPlusSpread(int i, int p) const {
  const MacroState& m = states_[i].twin->macro();
  return loantwin::CostPlusSpread(*states_[i].lender->config, p, m.policy_rate, m.mortgage_rate,
                                  states_[i].current[kCreditFactor]);
}

double TwinEnv::reference_move(int i, int p) const {
  const Lender& lender = *states_[i].lender;
  if (!cost_plus_reference_ || !lender.config->products[p].offered) return 0.0;
  return loantwin::CostPlusMove(CostPlusSpread(i, p), lender.calibration_base[p]);
}

void TwinEnv::SetRewardWeights(int role,
                               const std::vector<std::pair<std::string, double>>& weights) {
  RewardSet set;
  for (const auto& [name, w] : weights) set.SetWeight(name, w);
  reward_sets_.at(role) = std::move(set);
}

Levers TwinEnv::DecodeLevers(int i) const {
  const Lender& lender = *states_[i].lender;
  Levers l = lender.defaults;
  l.risk_appetite = AppetiteLevel(i);
  const int32_t* budget = action_row(kPortfolioRole, i);
  const int32_t* offset = action_row(kPricingRole, i);
  const int32_t* cutoff = action_row(kCreditRole, i);
  const int32_t* collection = action_row(kCollectionRole, i);
  for (int p = 0; p < kNumProducts; ++p) {
    l.origination_budget[p] = kBudgetLevels[budget[p]];
    // A default spread near its bound saturates there rather than leaving the levers' range.
    const double reference = lender.config->products[p].spec.default_spread + reference_move(i, p);
    l.rate_spread[p] =
        std::clamp(reference + kSpreadOffsets[offset[p]], kMinRateSpread, kMaxRateSpread);
    l.approval_cutoff[p] = cutoff[p] - 1;
  }
  for (int k = 0; k < kNumDelinquentBuckets; ++k) l.collection_intensity[k] = collection[k];
  return l;
}

void TwinEnv::ResetInstance(int i, uint64_t episode) {
  Instance& s = states_[i];
  s.twin->Reset(episode);
  if (s.lens) s.lens->BeginEpisode();
  s.twin->Snapshot(s.reset_metrics.data());
  s.current = s.reset_metrics.data();
  s.levers = s.lender->defaults;
  s.initial_balance = std::max(1.0, s.reset_metrics[kLoanBalance]);
  s.initial_equity = std::max(1.0, s.reset_metrics[kEquity]);
  for (int p = 0; p < kNumProducts; ++p) s.cost_plus_base[p] = CostPlusSpread(i, p);
  s.fresh = true;
  // The decisions in force when an episode starts are the baseline's (the institution's standing
  // levers), top-down: the observation's directive and self features then read the same at the
  // first month of every episode - a fresh environment's and an auto-reset's alike.
  std::array<int32_t, kNumProducts> a{};
  for (int r = 0; r < kNumTwinRoles; ++r) {
    BaselineRow(r, i, a.data());
    set_action_row(r, i, a.data());
  }
  WriteObservations(i, 0);
}

void TwinEnv::WriteObservations(int i, int steps_done) {
  const Instance& s = states_[i];
  const double* row = s.current;
  float* shared = obs_row(kRiskRole, i);
  int k = 0;
  for (const auto& mf : kMacroFeatures) shared[k++] = Clip((row[mf.metric] - mf.center) / mf.scale);
  shared[k++] = Clip(std::log(std::max(1e-3, row[kHpi])));
  shared[k++] = Clip(std::log(std::max(1e-3, row[kLiquidityRatio])));
  shared[k++] = Clip(std::log(std::max(1e-3, row[kLoanBalance] / s.initial_balance)));
  shared[k++] = Clip(std::log(std::max(1e-3, row[kEquity] / s.initial_equity)));
  const double loans = std::max(1.0, row[kLoanBalance]);
  shared[k++] = Clip(row[kExpectedLoss] / loans / 0.02);
  shared[k++] = Clip(row[kAllowance] / loans / 0.03);
  for (int p = 0; p < kNumProducts; ++p) {
    const double bal = row[ProductMetricIndex(p, kPBalance)];
    shared[k++] = s.lender->config->products[p].offered ? 1.0f : 0.0f;
    shared[k++] = static_cast<float>(std::clamp(bal / loans, 0.0, 1.0));
    shared[k++] = Clip(row[ProductMetricIndex(p, kPChargeOffRate)] / 0.05);
    shared[k++] = Clip(row[ProductMetricIndex(p, kPDq30Rate)] / 0.05);
    shared[k++] = Clip(row[ProductMetricIndex(p, kPYield)] / 0.1);
    shared[k++] = Clip(bal > 0 ? row[ProductMetricIndex(p, kPOriginations)] * 12 / bal / 0.5 : 0.0);
  }
  shared[k++] = static_cast<float>(
      std::clamp(static_cast<double>(steps_done) / max_episode_steps(), 0.0, 1.0));
  for (int r = 1; r < kNumTwinRoles; ++r)
    std::memcpy(obs_row(r, i), shared, sizeof(float) * shared_dim_);
  WriteDirectives(i);
}

void TwinEnv::WriteDirectives(int i) {
  for (int r = 0; r < kNumTwinRoles; ++r) {
    float* o = obs_row(r, i) + directive_offset_[r];
    if (r > kRiskRole)
      for (int l = 0; l < kNumRiskAppetites; ++l) *o++ = AppetiteLevel(i) == l ? 1.0f : 0.0f;
    if (r > kPortfolioRole)
      for (int p = 0; p < kNumProducts; ++p)
        *o++ = static_cast<float>(kBudgetLevels[action_row(kPortfolioRole, i)[p]]);
    if (r > kPricingRole)
      for (int p = 0; p < kNumProducts; ++p)
        *o++ = static_cast<float>(kSpreadOffsets[action_row(kPricingRole, i)[p]] * 100);
    if (r > kCreditRole)
      for (int p = 0; p < kNumProducts; ++p)
        *o++ = static_cast<float>(action_row(kCreditRole, i)[p]) / kNumBands;
    // Own decision in force, each component scaled to [0, 1].
    const auto& nvec = role(r).action_space.dims().nvec();
    const int32_t* a = action_row(r, i);
    float* self = obs_row(r, i) + self_offset_[r];
    for (size_t d = 0; d < nvec.size(); ++d)
      self[d] = nvec[d] > 1 ? static_cast<float>(a[d]) / (nvec[d] - 1) : 0.0f;
  }
}

void TwinEnv::OnDecision(int role, int begin, int end) {
  for (int i = begin; i < end; ++i) WriteDirectives(i);
  for (int r = role + 1; r < kNumTwinRoles; ++r) RefreshMasks(r, begin, end);
}

void TwinEnv::WriteMasks(int role, int begin, int end) {
  for (int i = begin; i < end; ++i) {
    uint8_t* m = mask_row(role, i);
    const InstitutionConfig& inst = *states_[i].lender->config;
    const RiskAppetite& a = GetRiskAppetite(AppetiteLevel(i));
    switch (role) {
      case kRiskRole:
        std::fill(m, m + kNumRiskAppetites, 1);
        break;
      case kPortfolioRole:
        for (int p = 0; p < kNumProducts; ++p)
          for (size_t v = 0; v < kBudgetLevels.size(); ++v)
            m[p * kBudgetLevels.size() + v] =
                inst.products[p].offered ? kBudgetLevels[v] <= a.max_budget + 1e-9 : v == 0;
        break;
      case kPricingRole:
        for (int p = 0; p < kNumProducts; ++p)
          for (size_t v = 0; v < kSpreadOffsets.size(); ++v)
            m[p * kSpreadOffsets.size() + v] = inst.products[p].offered || v == 4;
        break;
      case kCreditRole:
        for (int p = 0; p < kNumProducts; ++p)
          for (int v = 0; v <= kNumBands; ++v)
            m[p * (kNumBands + 1) + v] = inst.products[p].offered ? v - 1 <= a.max_cutoff : v == 0;
        break;
      case kCollectionRole:
        std::fill(m, m + kNumDelinquentBuckets * kNumCollectionIntensities, 1);
        break;
    }
  }
}

std::string TwinEnv::ExplainMask(int role, int i, int dim) const {
  const InstitutionConfig& inst = *states_[i].lender->config;
  if ((role == kPortfolioRole || role == kCreditRole || role == kPricingRole) &&
      !inst.products[dim].offered)
    return fmt::format("{} does not offer {} loans", inst.name, kProductNames[dim]);
  const RiskAppetite& a = GetRiskAppetite(AppetiteLevel(i));
  if (role == kPortfolioRole)
    return fmt::format("risk appetite '{}' allows budgets up to {}", a.name,
                       BudgetName(a.max_budget));
  if (role == kCreditRole)
    return fmt::format("risk appetite '{}' allows cutoffs up to {}", a.name,
                       kBandNames[a.max_cutoff]);
  return "";
}

void TwinEnv::BaselineActions(int role, int begin, int end, int32_t* out) {
  const int dims = this->role(role).action_space.action_dims();
  for (int i = begin; i < end; ++i) BaselineRow(role, i, out + static_cast<size_t>(i) * dims);
}

void TwinEnv::BaselineRow(int role, int i, int32_t* a) const {
  {
    const Lender& lender = *states_[i].lender;
    const RiskAppetite& appetite = GetRiskAppetite(AppetiteLevel(i));
    switch (role) {
      case kRiskRole:  // hold appetite
        a[0] = lender.defaults.risk_appetite;
        break;
      case kPortfolioRole:  // hold allocation: the baseline flow, within the appetite
        for (int p = 0; p < kNumProducts; ++p) {
          int v = lender.config->products[p].offered ? 3 : 0;  // 1.0x
          while (v > 0 && kBudgetLevels[v] > appetite.max_budget + 1e-9) --v;
          a[p] = v;
        }
        break;
      case kPricingRole:  // cost-plus: move the spread with funding cost and expected loss
        for (int p = 0; p < kNumProducts; ++p) {
          if (!lender.config->products[p].offered || cost_plus_reference_) {
            a[p] = 4;  // offset 0: the standard spread, or the cost-plus reference itself
            continue;
          }
          a[p] = CostPlusMoveIndex(CostPlusSpread(i, p), states_[i].cost_plus_base[p]);
        }
        break;
      case kCreditRole:  // fixed cutoff per product, within the appetite
        for (int p = 0; p < kNumProducts; ++p)
          a[p] = std::min(lender.defaults.approval_cutoff[p], appetite.max_cutoff) + 1;
        break;
      case kCollectionRole:  // soft at 30, hard at 60+
        a[0] = kSoft, a[1] = kHard, a[2] = kHard;
        break;
    }
  }
}

void TwinEnv::SaveInstances(StateWriter& w) const {
  w.Tag("twin_env");
  for (const Instance& s : states_) {
    s.twin->SaveState(w);
    if (s.lens) s.lens->SaveState(w);
    w.PutVector(s.metrics), w.PutVector(s.reset_metrics);
    w.Put<uint8_t>(s.current == s.metrics.data());
    w.Put(s.levers), w.Put(s.initial_balance), w.Put(s.initial_equity), w.Put(s.cost_plus_base);
    for (const auto& p : s.previous) w.PutVector(p);
    w.Put(s.fresh);
  }
}

void TwinEnv::LoadInstances(StateReader& r) {
  r.Tag("twin_env");
  for (Instance& s : states_) {
    s.twin->LoadState(r);
    if (s.lens) s.lens->LoadState(r);
    r.GetVector(&s.metrics), r.GetVector(&s.reset_metrics);
    s.current = r.Get<uint8_t>() ? s.metrics.data() : s.reset_metrics.data();
    r.Get(&s.levers), r.Get(&s.initial_balance), r.Get(&s.initial_equity), r.Get(&s.cost_plus_base);
    for (auto& p : s.previous) r.GetVector(&p);
    r.Get(&s.fresh);
  }
}

void TwinEnv::StepInstances(int begin, int end) {
  RewardInput in;
  in.exposures.resize(kNumProducts);
  for (int i = begin; i < end; ++i) {
    Instance& s = states_[i];
    s.levers = DecodeLevers(i);
    const double equity_open = s.current[kEquity];
    s.twin->Step(s.levers, s.metrics.data());
    s.current = s.metrics.data();
    const double* row = s.metrics.data();
    const bool failed = row[kCapitalRatio] < config_.capital_floor || row[kEquity] <= 0;
    if (failed && config_.terminate_on_failure && config_.resolve_failures)
      ResolveFailureMonth(s.metrics.data());
    in.net_income = row[kNetIncome];
    in.equity_open = equity_open;
    in.nii = row[kNii];
    in.fees = row[kFeeIncome];
    in.opex = row[kOpex];
    in.expected_loss = row[kExpectedLoss];
    in.loan_balance = row[kLoanBalance];
    in.rwa = row[kRwa];
    in.capital_ratio = row[kCapitalRatio];
    in.capital_buffer = CapitalBuffer(s.lender->config->capital.regime);
    in.liquidity_ratio = row[kLiquidityRatio];
    in.approval_rate = row[kApprovalRate];
    for (int p = 0; p < kNumProducts; ++p) in.exposures[p] = row[ProductMetricIndex(p, kPBalance)];
    for (int r = 0; r < kNumTwinRoles; ++r) {
      // Churn: share of components changed at this role's decision (0 between decisions and
      // at the first decision of an episode).
      const int dims = role(r).action_space.action_dims();
      const int32_t* a = action_row(r, i);
      int changed = 0;
      if (acting(r)[i]) {
        for (int d = 0; d < dims; ++d) changed += a[d] != s.previous[r][d];
        std::copy(a, a + dims, s.previous[r].begin());
      }
      in.policy_churn = s.fresh ? 0.0 : static_cast<double>(changed) / dims;
      set_reward(r, i, static_cast<float>(reward_sets_[r].Compute(in, reward_vec_row(r, i))));
    }
    s.fresh = false;
    if (config_.terminate_on_failure && failed) set_terminated(i);
    WriteObservations(i, step_of(i) + 1);  // the base counts the step after this hook
  }
}

}  // namespace loantwin
