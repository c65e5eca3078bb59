#include "training/monitor.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "env/policy_monte_carlo.h"
#include "env/twin_env.h"
#include "training/stress.h"

namespace loantwin {
namespace {

using json = nlohmann::json;

/// Records the observations a driver decides on and its decisions.
class RecordingDriver : public RoleDriver {
 public:
  RecordingDriver(RoleDriver* inner, std::map<std::string, RoleSample>* out)
      : inner_(inner), out_(out) {}
  bool Decides(int role) const override { return inner_->Decides(role); }
  void Decide(int role, const float* obs, const uint8_t* masks, int n, int32_t* actions) override {
    inner_->Decide(role, obs, masks, n, actions);
    std::lock_guard<std::mutex> lock(mu_);
    RoleSample& s = (*out_)[kTwinRoleNames[role]];
    const size_t f = s.features.size(), a = s.actions.size();
    s.obs.insert(s.obs.end(), obs, obs + static_cast<size_t>(n) * f);
    s.acts.insert(s.acts.end(), actions, actions + static_cast<size_t>(n) * a);
    s.masks.insert(s.masks.end(), masks, masks + static_cast<size_t>(n) * s.mask_width);
    s.rows += n;
  }

 private:
  RoleDriver* inner_;
  std::map<std::string, RoleSample>* out_;
  std::mutex mu_;
};

std::string Level(double v, double warn, double alert) {
  return v > alert ? "alert" : v > warn ? "warn" : "ok";
}

int Rank(const std::string& level) {
  return level == "alert" ? 3 : level == "warn" ? 2 : level == "ok" ? 1 : 0;
}

}  // namespace

std::map<std::string, RoleSample> CollectReference(const MonitorOptions& o) {
  auto policy = StressPolicy::Load(o.reference);
  TwinEnvConfig cfg = policy->env_config ? *policy->env_config : TwinEnvConfig{};
  if (!o.institution.empty()) cfg.institution = o.institution;
  cfg.institutions.clear();  // the first of a run's institutions unless --institution
  cfg.scenarios.clear();
  cfg.pricing_reference = policy->pricing_reference;
  std::map<std::string, RoleSample> samples;
  {
    EnvOptions eo;
    TwinEnv env(eo, cfg);
    for (int r = 0; r < kNumTwinRoles; ++r) {
      if (!policy->Decides(r)) continue;
      RoleSample& s = samples[kTwinRoleNames[r]];
      s.features = env.role(r).features.names();
      s.actions = env.role(r).action_dim_names;
      s.mask_width = env.role(r).action_space.mask_width();
    }
  }
  RecordingDriver recorder(policy.get(), &samples);
  for (const std::string& scenario : o.scenarios) {
    TwinEnvConfig c = cfg;
    c.scenario = scenario;
    MonteCarloOptions mo;
    mo.paths = o.paths;
    mo.months = o.months;
    mo.seed = o.seed;
    mo.threads = 1;
    RunPolicyMonteCarlo(c, &recorder, mo);
  }
  return samples;
}

std::map<std::string, RoleSample> ReadAuditDecisions(
    const std::string& path, const std::map<std::string, RoleSample>& layout, int64_t* skipped) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(fmt::format("cannot open the audit log '{}'", path));
  std::map<std::string, RoleSample> out;
  std::map<std::string, std::map<std::string, int>> feature_index, action_index;
  for (const auto& [role, s] : layout) {
    RoleSample& o = out[role];
    o.features = s.features, o.actions = s.actions;
    for (size_t k = 0; k < s.features.size(); ++k)
      feature_index[role][s.features[k]] = static_cast<int>(k);
    for (size_t k = 0; k < s.actions.size(); ++k)
      action_index[role][s.actions[k]] = static_cast<int>(k);
  }
  *skipped = 0;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty()) continue;
    auto fail = [&](const std::string& msg) {
      throw std::invalid_argument(fmt::format("{} line {}: {}", path, lineno, msg));
    };
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {
      fail(std::string("not a JSON audit record: ") + e.what());
    }
    if (!j.is_object() || !j.contains("route") || !j["route"].is_string())
      fail("no 'route' (not an audit record)");
    const std::string route = j["route"];
    const std::string suffix = "/decide";
    const size_t roles = route.rfind("/roles/");
    if (roles == std::string::npos || route.size() < suffix.size() ||
        route.compare(route.size() - suffix.size(), suffix.size(), suffix) != 0) {
      ++*skipped;  // applications and other routes
      continue;
    }
    const std::string role = route.substr(roles + 7, route.size() - suffix.size() - (roles + 7));
    auto it = out.find(role);
    if (it == out.end())
      fail(
          fmt::format("a decision of role '{}', which the reference policy does not decide", role));
    RoleSample& s = it->second;
    const json& obs = j["request"]["observation"];
    const json& act = j["response"]["action"];
    if (!obs.is_object()) fail("request.observation is not an object");
    if (!act.is_object()) fail("response.action is not an object");
    std::vector<float> row(s.features.size(), std::nanf(""));
    for (const auto& [name, value] : obs.items()) {
      auto f = feature_index[role].find(name);
      if (f == feature_index[role].end())
        fail(fmt::format("feature '{}' is not one of role {}'s features", name, role));
      if (!value.is_number()) fail(fmt::format("feature '{}' is not a number", name));
      row[f->second] = value.get<float>();
    }
    for (size_t k = 0; k < row.size(); ++k)
      if (std::isnan(row[k])) fail(fmt::format("feature '{}' is missing", s.features[k]));
    std::vector<int32_t> a(s.actions.size(), -1);
    for (const auto& [name, value] : act.items()) {
      auto f = action_index[role].find(name);
      if (f == action_index[role].end())
        fail(fmt::format("action component '{}' is not one of role {}'s", name, role));
      if (!value.is_object() || !value.contains("index") || !value["index"].is_number_integer())
        fail(fmt::format("action component '{}' has no integer 'index'", name));
      a[f->second] = value["index"].get<int32_t>();
    }
    for (size_t k = 0; k < a.size(); ++k)
      if (a[k] < 0) fail(fmt::format("action component '{}' is missing", s.actions[k]));
    s.obs.insert(s.obs.end(), row.begin(), row.end());
    s.acts.insert(s.acts.end(), a.begin(), a.end());
    s.rows += 1;
  }
  return out;
}

RoleDrift CompareRole(const std::string& role, const RoleSample& ref, const RoleSample& live,
                      const MonitorOptions& o) {
  RoleDrift d;
  d.role = role;
  d.live_rows = live.rows;
  d.reference_rows = ref.rows;
  const size_t nf = ref.features.size(), na = ref.actions.size();
  std::vector<uint8_t> outside_row(live.rows, 0);
  const MonitorThresholds& t = o.thresholds;
  for (size_t k = 0; k < nf; ++k) {
    FeatureDrift f;
    f.name = ref.features[k];
    std::vector<float> r(ref.rows);
    for (int64_t i = 0; i < ref.rows; ++i) r[i] = ref.obs[i * nf + k];
    std::sort(r.begin(), r.end());
    f.ref_min = r.front(), f.ref_max = r.back();
    double rs = 0, ls = 0;
    for (float v : r) rs += v;
    f.ref_mean = rs / ref.rows;
    // Deciles of the reference (distinct edges: a discrete feature has fewer bins).
    std::vector<float> edges;
    for (int q = 1; q < 10; ++q) {
      const float e = r[static_cast<size_t>(q * (r.size() - 1) / 10)];
      if (edges.empty() || e > edges.back()) edges.push_back(e);
    }
    auto bin = [&](float v) {
      return static_cast<size_t>(std::lower_bound(edges.begin(), edges.end(), v) - edges.begin());
    };
    std::vector<double> e(edges.size() + 1, 0), a(edges.size() + 1, 0);
    for (float v : r) e[bin(v)] += 1;
    int64_t outside = 0;
    for (int64_t i = 0; i < live.rows; ++i) {
      const float v = live.obs[i * nf + k];
      a[bin(v)] += 1;
      ls += v;
      if (v < f.ref_min || v > f.ref_max) ++outside, outside_row[i] = 1;
    }
    f.live_mean = live.rows ? ls / live.rows : 0;
    f.outside = live.rows ? static_cast<double>(outside) / live.rows : 0;
    for (size_t b = 0; b < e.size(); ++b) {
      const double pe = std::max(1e-4, e[b] / ref.rows);
      const double pa = std::max(1e-4, live.rows ? a[b] / live.rows : 0.0);
      f.psi += (pa - pe) * std::log(pa / pe);
    }
    const std::string l1 = Level(f.psi, t.psi_warn, t.psi_alert);
    const std::string l2 = Level(f.outside, t.outside_warn, t.outside_alert);
    f.level = Rank(l1) >= Rank(l2) ? l1 : l2;
    d.features.push_back(f);
  }
  int64_t any = 0;
  for (uint8_t x : outside_row) any += x;
  d.outside_any = live.rows ? static_cast<double>(any) / live.rows : 0;
  for (size_t k = 0; k < na; ++k) {
    ActionDrift ad;
    ad.name = ref.actions[k];
    int32_t top = 0;
    for (int64_t i = 0; i < ref.rows; ++i) top = std::max(top, ref.acts[i * na + k]);
    for (int64_t i = 0; i < live.rows; ++i) top = std::max(top, live.acts[i * na + k]);
    ad.reference.assign(top + 1, 0);
    ad.live.assign(top + 1, 0);
    for (int64_t i = 0; i < ref.rows; ++i) ad.reference[ref.acts[i * na + k]] += 1.0 / ref.rows;
    for (int64_t i = 0; i < live.rows; ++i) ad.live[live.acts[i * na + k]] += 1.0 / live.rows;
    for (int32_t v = 0; v <= top; ++v) ad.tv += 0.5 * std::abs(ad.reference[v] - ad.live[v]);
    ad.level = Level(ad.tv, t.mix_warn, t.mix_alert);
    d.actions.push_back(ad);
  }
  if (live.rows < o.min_requests) {
    d.level = "too few requests";
    return d;
  }
  d.level = "ok";
  for (const auto& f : d.features)
    if (Rank(f.level) > Rank(d.level)) d.level = f.level;
  for (const auto& a : d.actions)
    if (Rank(a.level) > Rank(d.level)) d.level = a.level;
  return d;
}

MonitorResult RunMonitor(const MonitorOptions& o) {
  const auto reference = CollectReference(o);
  MonitorResult r;
  const auto live = ReadAuditDecisions(o.audit_log, reference, &r.skipped_lines);
  r.level = "ok";
  bool any = false;
  for (const auto& [role, sample] : live) {
    if (sample.rows == 0) continue;
    any = true;
    r.roles.push_back(CompareRole(role, reference.at(role), sample, o));
    if (Rank(r.roles.back().level) > Rank(r.level)) r.level = r.roles.back().level;
  }
  if (!any) r.level = "too few requests";
  return r;
}

}  // namespace loantwin
