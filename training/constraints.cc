#include "training/constraints.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/binary_state.h"
#include "core/check.h"
#include "core/collective.h"
#include "core/constraint_cost.h"
#include "env/multi_agent_env.h"

namespace loantwin {

ConstraintConfig ConstraintConfig::Parse(const YamlValue& node) {
  ConstraintConfig c;
  YamlMap m(node);
  c.name = m.Require("name").AsString();
  if (c.name.empty() || c.name.find('/') != std::string::npos)
    m.Require("name").Fail("constraint names are non-empty and contain no '/'");
  m.Require("metric");
  VisitFields(c, FieldReader{m});
  if (m.Has("min")) {
    double x = 0;
    m.Read("min", &x, -1e12, 1e12);
    c.min = x;
  }
  if (m.Has("max")) {
    double x = 0;
    m.Read("max", &x, -1e12, 1e12);
    c.max = x;
  }
  if (!c.min && !c.max) node.Fail("constraint '" + c.name + "' needs 'min', 'max' or both");
  if (c.min && c.max && *c.min > *c.max)
    node.Fail(fmt::format("constraint '{}': min {} is above max {}", c.name, *c.min, *c.max));
  if (c.lambda_init > c.lambda_max)
    node.Fail(fmt::format("constraint '{}': lambda_init {} is above lambda_max {}", c.name,
                          c.lambda_init, c.lambda_max));
  m.Done();
  return c;
}

void ConstraintConfig::Write(YAML::Emitter& out) const {
  ConstraintConfig c = *this;
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << name;
  if (min) out << YAML::Key << "min" << YAML::Value << *min;
  if (max) out << YAML::Key << "max" << YAML::Value << *max;
  VisitFields(c, FieldWriter{out});
  out << YAML::EndMap;
}

void Multiplier::Update(const ConstraintConfig& c, double j) {
  const double error = j - c.limit;
  if (c.update == "gradient") {
    lambda += c.lambda_lr * error;
  } else if (c.update == "pid") {
    // Stooke et al. (2020), Algorithm 2: I <- (I + e)+, D = (J - J_prev)+,
    // lambda = (Kp e + Ki I + Kd D)+.
    integral = std::max(0.0, integral + error);
    const double rise = has_previous ? std::max(0.0, j - previous_j) : 0.0;
    lambda = c.pid_kp * error + c.pid_ki * integral + c.pid_kd * rise;
  }
  previous_j = j, has_previous = true;
  lambda = std::clamp(lambda, 0.0, c.lambda_max);
}

ConstraintTracker::ConstraintTracker(std::vector<ConstraintConfig> configs,
                                     std::vector<YamlValue> nodes, const MultiAgentEnv& env,
                                     const std::vector<bool>& learning, int window)
    : window_(window), num_envs_(env.num_envs()) {
  const std::vector<std::string>& names = env.metric_names();
  std::string known;
  for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
  for (int i = 0; i < num_envs_; ++i) labels_.push_back(env.instance_label(i));
  for (size_t k = 0; k < configs.size(); ++k) {
    Constraint c;
    c.config = std::move(configs[k]);
    const auto fail = [&](const std::string& msg) {
      if (k < nodes.size()) nodes[k].Fail(msg);
      throw std::invalid_argument(msg);
    };
    for (size_t j = 0; j < k; ++j)
      if (constraints_[j].config.name == c.config.name)
        fail("constraint name '" + c.config.name + "' is used twice");
    const auto it = std::find(names.begin(), names.end(), c.config.metric);
    if (it == names.end())
      fail(fmt::format("constraint '{}': environment '{}' has no metric '{}' ({})", c.config.name,
                       env.name(), c.config.metric,
                       names.empty() ? "it has no metrics" : "metrics: " + known));
    c.metric = static_cast<int>(it - names.begin());
    c.roles.assign(env.num_roles(), false);
    if (c.config.roles.empty()) {
      for (int r = 0; r < env.num_roles(); ++r) c.roles[r] = learning[r];
    } else {
      for (const auto& role : c.config.roles) {
        const int r = env.FindRole(role);
        if (r < 0) fail(fmt::format("constraint '{}': unknown role '{}'", c.config.name, role));
        if (!learning[r])
          fail(fmt::format("constraint '{}': role '{}' has no learning agent to price it for",
                           c.config.name, role));
        c.roles[r] = true;
      }
    }
    c.multiplier.lambda = c.config.lambda_init;
    if (c.config.update == "pid" && c.config.pid_ki > 0)
      c.multiplier.integral = c.config.lambda_init / c.config.pid_ki;
    if (c.config.episodes_per_update == 0) c.config.episodes_per_update = num_envs_;
    c.step_cost.assign(num_envs_, 0.0);
    c.episode_cost.assign(num_envs_, 0.0);
    c.weight.assign(num_envs_, 1.0);
    c.steps.assign(num_envs_, 0);
    c.violations.assign(num_envs_, 0);
    for (const auto& label : labels_)
      if (!label.empty()) c.by_label[label] = {0, 0};
    constraints_.push_back(std::move(c));
  }
}

void ConstraintTracker::Observe(const MultiAgentEnv& env) {
  const uint8_t* terminated = env.terminated();
  const uint8_t* truncated = env.truncated();
  for (Constraint& c : constraints_) {
    const ConstraintConfig& cc = c.config;
    const bool indicator = cc.cost == "indicator";
    for (int i = 0; i < num_envs_; ++i) {
      // A NaN metric (never expected) counts as a violation, not as compliance.
      const auto [cost, violated] =
          ConstraintStepCost(env.metric(i, c.metric), cc.min, cc.max, indicator);
      ++c.steps[i];
      // Absorbing termination: the final state's cost for this step and each of the `remaining`
      // steps to the horizon, discounted as the episode cost is (1 + d + ... + d^remaining).
      double repeats = 1;
      if (cc.absorbing && terminated[i] && !truncated[i] && cost > 0) {
        const int remaining = std::max(0, env.max_episode_steps() - c.steps[i]);
        double w = 1;
        for (int k = 0; k < remaining; ++k) w *= cc.discount, repeats += w;
      }
      c.step_cost[i] = cost * repeats;
      c.episode_cost[i] += c.weight[i] * cost * repeats;
      c.weight[i] *= cc.discount;
      c.violations[i] += violated;
      if (!labels_[i].empty()) {
        auto& [bad, all] = c.by_label[labels_[i]];
        bad += violated, ++all;
      }
      if (!terminated[i] && !truncated[i]) continue;
      c.recent.push_back({c.episode_cost[i], c.steps[i], c.violations[i]});
      while (static_cast<int>(c.recent.size()) > window_) c.recent.pop_front();
      c.pending.push_back(c.episode_cost[i]);
      c.episode_cost[i] = 0, c.weight[i] = 1, c.steps[i] = 0, c.violations[i] = 0;
      if (!defer_updates_ && static_cast<int>(c.pending.size()) >= cc.episodes_per_update) {
        double sum = 0;
        for (double x : c.pending) sum += x;
        c.multiplier.Update(cc, sum / static_cast<double>(c.pending.size()));
        c.pending.clear();
      }
    }
  }
}

void ConstraintTracker::CopyMultipliersFrom(const ConstraintTracker& other) {
  LT_CHECK_EQ(other.constraints_.size(), constraints_.size());
  for (size_t k = 0; k < constraints_.size(); ++k)
    constraints_[k].multiplier = other.constraints_[k].multiplier;
}

void ConstraintTracker::SyncMultipliers(Collective& group) {
  std::vector<double> sums(2 * constraints_.size(), 0.0);
  for (size_t k = 0; k < constraints_.size(); ++k) {
    for (double x : constraints_[k].pending) sums[2 * k] += x;
    sums[2 * k + 1] = static_cast<double>(constraints_[k].pending.size());
  }
  group.AllReduceSum(sums.data(), sums.size());
  for (size_t k = 0; k < constraints_.size(); ++k) {
    Constraint& c = constraints_[k];
    if (sums[2 * k + 1] < c.config.episodes_per_update) continue;
    c.multiplier.Update(c.config, sums[2 * k] / sums[2 * k + 1]);
    c.pending.clear();
  }
}

bool ConstraintTracker::Shape(int role, const float* rewards, int n, float* out) const {
  bool any = false;
  for (const Constraint& c : constraints_) any = any || c.roles[role];
  if (!any) return false;
  for (int i = 0; i < n; ++i) {
    double r = rewards[i];
    for (const Constraint& c : constraints_)
      if (c.roles[role]) r -= c.multiplier.lambda * c.step_cost[i];
    out[i] = static_cast<float>(r);
  }
  return true;
}

int ConstraintTracker::num_applying(int role) const {
  int k = 0;
  for (const Constraint& c : constraints_) k += c.roles[role] ? 1 : 0;
  return k;
}

void ConstraintTracker::CostsFor(int role, int n, float* costs, float* weights) const {
  const int k = num_applying(role);
  int j = 0;
  for (const Constraint& c : constraints_) {
    if (!c.roles[role]) continue;
    weights[j] = static_cast<float>(c.multiplier.lambda);
    for (int i = 0; i < n; ++i) costs[static_cast<size_t>(i) * k + j] = c.step_cost[i];
    ++j;
  }
}

std::vector<std::pair<std::string, double>> ConstraintTracker::Metrics() const {
  std::vector<std::pair<std::string, double>> out;
  for (const Constraint& c : constraints_) {
    const std::string prefix = "constraints/" + c.config.name + "/";
    out.emplace_back(prefix + "lambda", c.multiplier.lambda);
    if (!c.recent.empty()) {
      double cost = 0;
      int64_t steps = 0, violations = 0, episodes_violated = 0;
      for (const EpisodeStats& e : c.recent) {
        cost += e.cost, steps += e.steps, violations += e.violations;
        episodes_violated += e.violations > 0;
      }
      const double episodes = static_cast<double>(c.recent.size());
      out.emplace_back(prefix + "cost", cost / episodes);
      out.emplace_back(prefix + "violation_rate",
                       steps > 0 ? static_cast<double>(violations) / steps : 0.0);
      out.emplace_back(prefix + "episode_violation_rate", episodes_violated / episodes);
    }
    for (const auto& [label, counts] : c.by_label)
      if (counts.second > 0)
        out.emplace_back(prefix + label + "/violation_rate",
                         static_cast<double>(counts.first) / static_cast<double>(counts.second));
  }
  return out;
}

void ConstraintTracker::Save(StateWriter& w) const {
  w.Tag("constraints");
  w.Put(static_cast<int64_t>(constraints_.size()));
  for (const Constraint& c : constraints_) {
    const Multiplier& m = c.multiplier;
    w.Put(m.lambda), w.Put(m.integral), w.Put(m.previous_j), w.Put(m.has_previous);
    w.PutVector(c.step_cost), w.PutVector(c.episode_cost), w.PutVector(c.weight);
    w.PutVector(c.steps), w.PutVector(c.violations), w.PutVector(c.pending);
    std::vector<double> cost;
    std::vector<int> steps, violations;
    for (const EpisodeStats& e : c.recent)
      cost.push_back(e.cost), steps.push_back(e.steps), violations.push_back(e.violations);
    w.PutVector(cost), w.PutVector(steps), w.PutVector(violations);
    std::vector<int64_t> counts;
    for (const auto& [label, v] : c.by_label) counts.push_back(v.first), counts.push_back(v.second);
    w.PutVector(counts);
  }
}

void ConstraintTracker::Load(StateReader& r) {
  r.Tag("constraints");
  int64_t count = 0;
  r.Get(&count);
  if (count != static_cast<int64_t>(constraints_.size()))
    throw std::runtime_error(
        fmt::format("checkpoint state: {} constraints saved, the experiment has {}", count,
                    constraints_.size()));
  for (Constraint& c : constraints_) {
    Multiplier& m = c.multiplier;
    r.Get(&m.lambda), r.Get(&m.integral), r.Get(&m.previous_j), r.Get(&m.has_previous);
    r.GetVector(&c.step_cost), r.GetVector(&c.episode_cost), r.GetVector(&c.weight);
    r.GetVector(&c.steps), r.GetVector(&c.violations), r.GetVector(&c.pending);
    std::vector<double> cost;
    std::vector<int> steps, violations;
    r.GetVector(&cost), r.GetVector(&steps), r.GetVector(&violations);
    if (steps.size() != cost.size() || violations.size() != cost.size() ||
        c.step_cost.size() != static_cast<size_t>(num_envs_))
      throw std::runtime_error("checkpoint state: constraint statistics do not fit this run");
    c.recent.clear();
    for (size_t j = 0; j < cost.size(); ++j) c.recent.push_back({cost[j], steps[j], violations[j]});
    std::vector<int64_t> counts;
    r.GetVector(&counts);
    if (counts.size() != 2 * c.by_label.size())
      throw std::runtime_error("checkpoint state: constraint labels do not fit this run");
    size_t j = 0;
    for (auto& [label, v] : c.by_label) v.first = counts[j++], v.second = counts[j++];
  }
}

}  // namespace loantwin
