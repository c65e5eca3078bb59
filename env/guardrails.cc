#include "env/guardrails.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <stdexcept>

#include "core/yaml_reader.h"
#include "env/multi_agent_env.h"

namespace loantwin {
namespace {

bool IsNameChar(char c, bool path) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ||
         (path && (c == '/' || c == '*' || c == '.'));
}

std::string CheckedName(const YamlValue& v, bool path, const char* what) {
  const std::string s = v.AsString();
  if (s.empty() || !std::all_of(s.begin(), s.end(), [&](char c) { return IsNameChar(c, path); }))
    v.Fail(fmt::format("{} '{}' must be non-empty and use only letters, digits, '_', '-'{}", what,
                       s, path ? ", '/', '.' and '*'" : ""));
  return s;
}

/// A bound: a number or "current".
void ReadBound(YamlMap& m, const char* key, std::optional<double>* value, bool* current) {
  auto v = m.Get(key);
  if (!v) return;
  if (v->IsScalar() && v->node().Scalar() == "current") {
    *current = true;
    return;
  }
  *value = v->AsDouble(-1e12, 1e12);
}

/// '*' matches any run of characters.
bool Matches(const std::string& pattern, const std::string& name) {
  size_t p = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == name[n]) {
      ++p, ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++, mark = n;
    } else if (star != std::string::npos) {
      p = star + 1, n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::string Number(double x) {
  return fmt::format("{}", x);
}

bool AppliesTo(const GuardrailRule& rule, const GuardrailLayout& layout) {
  if (!rule.roles.empty())
    return std::find(rule.roles.begin(), rule.roles.end(), layout.role) != rule.roles.end();
  for (const auto& l : rule.limits)
    for (const auto& c : layout.components)
      if (Matches(l.actions, c.name)) return true;
  return false;
}

}  // namespace

GuardrailRule GuardrailRule::Parse(const YamlValue& node) {
  GuardrailRule rule;
  YamlMap m(node);
  rule.name = CheckedName(m.Require("name"), false, "guardrail name");
  if (auto roles = m.Get("roles"))
    for (const auto& r : roles->Items()) rule.roles.push_back(CheckedName(r, false, "role"));
  if (auto when = m.Get("when")) {
    for (const auto& item : when->Items()) {
      YamlMap cm(item);
      GuardrailCondition c;
      c.feature = CheckedName(cm.Require("feature"), true, "feature");
      if (auto b = cm.Get("below")) c.below = b->AsDouble(-1e12, 1e12);
      if (auto a = cm.Get("above")) c.above = a->AsDouble(-1e12, 1e12);
      if (!c.below && !c.above)
        item.Fail(
            fmt::format("guardrail '{}': a condition needs 'below', 'above' or both", rule.name));
      cm.Done();
      rule.when.push_back(c);
    }
  }
  auto limits = m.Require("limit");
  for (const auto& item : limits.Items()) {
    YamlMap lm(item);
    GuardrailLimit l;
    l.actions = CheckedName(lm.Require("actions"), true, "actions");
    ReadBound(lm, "max", &l.max, &l.max_current);
    ReadBound(lm, "min", &l.min, &l.min_current);
    if (!l.max && !l.min && !l.max_current && !l.min_current)
      item.Fail(
          fmt::format("guardrail '{}': a limit needs 'max', 'min' or both (a number or "
                      "'current')",
                      rule.name));
    if (l.max && l.min && *l.min > *l.max)
      item.Fail(fmt::format("guardrail '{}': min {} is above max {}", rule.name, *l.min, *l.max));
    lm.Done();
    rule.limits.push_back(l);
  }
  if (rule.limits.empty()) limits.Fail(fmt::format("guardrail '{}' limits nothing", rule.name));
  m.Done();
  return rule;
}

void GuardrailRule::Write(YAML::Emitter& out) const {
  out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << name;
  if (!roles.empty()) out << YAML::Key << "roles" << YAML::Value << YAML::Flow << roles;
  if (!when.empty()) {
    out << YAML::Key << "when" << YAML::Value << YAML::BeginSeq;
    for (const auto& c : when) {
      out << YAML::Flow << YAML::BeginMap << YAML::Key << "feature" << YAML::Value << c.feature;
      if (c.below) out << YAML::Key << "below" << YAML::Value << *c.below;
      if (c.above) out << YAML::Key << "above" << YAML::Value << *c.above;
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  out << YAML::Key << "limit" << YAML::Value << YAML::BeginSeq;
  for (const auto& l : limits) {
    out << YAML::Flow << YAML::BeginMap << YAML::Key << "actions" << YAML::Value << l.actions;
    if (l.max_current) out << YAML::Key << "max" << YAML::Value << "current";
    if (l.max) out << YAML::Key << "max" << YAML::Value << *l.max;
    if (l.min_current) out << YAML::Key << "min" << YAML::Value << "current";
    if (l.min) out << YAML::Key << "min" << YAML::Value << *l.min;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
}

std::string GuardrailRule::ToJson() const {
  // Names, features and patterns are restricted to characters that need no JSON escaping.
  std::string out = fmt::format("{{\"name\":\"{}\"", name);
  if (!roles.empty()) {
    out += ",\"roles\":[";
    for (size_t k = 0; k < roles.size(); ++k) out += (k ? ",\"" : "\"") + roles[k] + "\"";
    out += "]";
  }
  if (!when.empty()) {
    out += ",\"when\":[";
    for (size_t k = 0; k < when.size(); ++k) {
      out += fmt::format("{}{{\"feature\":\"{}\"", k ? "," : "", when[k].feature);
      if (when[k].below) out += ",\"below\":" + Number(*when[k].below);
      if (when[k].above) out += ",\"above\":" + Number(*when[k].above);
      out += "}";
    }
    out += "]";
  }
  out += ",\"limit\":[";
  for (size_t k = 0; k < limits.size(); ++k) {
    const GuardrailLimit& l = limits[k];
    out += fmt::format("{}{{\"actions\":\"{}\"", k ? "," : "", l.actions);
    if (l.max_current) out += ",\"max\":\"current\"";
    if (l.max) out += ",\"max\":" + Number(*l.max);
    if (l.min_current) out += ",\"min\":\"current\"";
    if (l.min) out += ",\"min\":" + Number(*l.min);
    out += "}";
  }
  return out + "]}";
}

std::vector<GuardrailRule> ParseGuardrails(const YamlValue& list) {
  std::vector<GuardrailRule> rules;
  std::set<std::string> names;
  for (const auto& item : list.Items()) {
    rules.push_back(GuardrailRule::Parse(item));
    if (!names.insert(rules.back().name).second)
      item.Fail(fmt::format("guardrail '{}' is defined twice", rules.back().name));
  }
  if (rules.size() > static_cast<size_t>(kMaxGuardrails))
    list.Fail(fmt::format("at most {} guardrails, got {}", kMaxGuardrails, rules.size()));
  return rules;
}

std::string GuardrailsToJson(const std::vector<GuardrailRule>& rules) {
  std::string out = "[";
  for (size_t k = 0; k < rules.size(); ++k) out += (k ? "," : "") + rules[k].ToJson();
  return out + "]";
}

GuardrailLayout GuardrailLayout::Of(const RoleSpec& spec) {
  GuardrailLayout l;
  l.role = spec.name;
  l.features = spec.features.names();
  l.centers = spec.features.centers();
  l.scales = spec.features.scales();
  const auto& nvec = spec.action_space.dims().nvec();
  int offset = 0;
  for (size_t d = 0; d < nvec.size(); ++d) {
    Component c;
    c.name = d < spec.action_dim_names.size() ? spec.action_dim_names[d] : std::to_string(d);
    c.size = static_cast<int>(nvec[d]);
    c.offset = offset;
    if (d < spec.action_values.size()) c.values = spec.action_values[d];
    offset += c.size;
    l.components.push_back(std::move(c));
  }
  l.mask_width = offset;
  return l;
}

RoleGuardrails RoleGuardrails::Compile(const std::vector<GuardrailRule>& rules,
                                       const GuardrailLayout& layout) {
  RoleGuardrails g;
  g.components_ = layout.components;
  auto find_feature = [&](const std::string& name) {
    const auto it = std::find(layout.features.begin(), layout.features.end(), name);
    return it == layout.features.end() ? -1 : static_cast<int>(it - layout.features.begin());
  };
  for (size_t k = 0; k < rules.size(); ++k) {
    const GuardrailRule& rule = rules[k];
    if (!AppliesTo(rule, layout)) continue;
    Rule r;
    r.index = static_cast<int>(k);
    for (const auto& c : rule.when) {
      Condition cond;
      cond.feature = find_feature(c.feature);
      if (cond.feature < 0)
        throw std::invalid_argument(fmt::format(
            "guardrail '{}': role '{}' observes no feature '{}' (docs/environment.md lists them)",
            rule.name, layout.role, c.feature));
      cond.center = layout.centers[cond.feature];
      cond.scale = layout.scales[cond.feature];
      cond.below = c.below, cond.above = c.above;
      r.when.push_back(cond);
    }
    for (const auto& l : rule.limits) {
      for (size_t d = 0; d < layout.components.size(); ++d) {
        if (!Matches(l.actions, layout.components[d].name)) continue;
        Bound b;
        b.component = static_cast<int>(d);
        b.max = l.max, b.min = l.min;
        b.max_current = l.max_current, b.min_current = l.min_current;
        if (l.max_current || l.min_current) {
          b.self_feature = find_feature("self/" + layout.components[d].name);
          if (b.self_feature < 0)
            throw std::invalid_argument(fmt::format(
                "guardrail '{}': role '{}' does not observe its decision in force for '{}' "
                "(no feature self/{}), so 'current' cannot be used",
                rule.name, layout.role, layout.components[d].name, layout.components[d].name));
        }
        r.bounds.push_back(b);
      }
    }
    if (r.bounds.empty()) {
      std::string names;
      for (const auto& c : layout.components) names += (names.empty() ? "" : ", ") + c.name;
      throw std::invalid_argument(
          fmt::format("guardrail '{}' names role '{}', but none of its limits matches that role's "
                      "actions ({})",
                      rule.name, layout.role, names));
    }
    g.applies_ |= uint64_t{1} << k;
    g.rules_.push_back(std::move(r));
  }
  return g;
}

uint64_t RoleGuardrails::Apply(const float* obs, uint8_t* mask) const {
  uint64_t fired = 0;
  for (const Rule& r : rules_) {
    bool holds = true;
    for (const Condition& c : r.when) {
      const double raw = c.center + c.scale * static_cast<double>(obs[c.feature]);
      if ((c.below && !(raw < *c.below)) || (c.above && !(raw > *c.above))) {
        holds = false;
        break;
      }
    }
    if (!holds) continue;
    fired |= uint64_t{1} << r.index;
    for (const Bound& b : r.bounds) {
      const auto& comp = components_[b.component];
      uint8_t* m = mask + comp.offset;
      double hi = b.max ? *b.max : HUGE_VAL, lo = b.min ? *b.min : -HUGE_VAL;
      if (b.max_current || b.min_current) {
        // self/<component> = index in force / (size - 1).
        const double x = static_cast<double>(obs[b.self_feature]) * std::max(1, comp.size - 1);
        const int in_force = std::clamp(static_cast<int>(std::lround(x)), 0, comp.size - 1);
        if (b.max_current) hi = std::min(hi, comp.value(in_force));
        if (b.min_current) lo = std::max(lo, comp.value(in_force));
      }
      constexpr double kTol = 1e-9;
      int kept = 0, nearest = -1;
      double nearest_gap = HUGE_VAL;
      for (int v = 0; v < comp.size; ++v) {
        if (!m[v]) continue;
        const double x = comp.value(v);
        const double gap = x > hi ? x - hi : (x < lo ? lo - x : 0.0);
        if (gap <= kTol) {
          ++kept;
        } else {
          if (gap < nearest_gap) nearest_gap = gap, nearest = v;
          m[v] = 0;
        }
      }
      // Nothing left: the allowed action nearest the bound stays allowed.
      if (kept == 0 && nearest >= 0) m[nearest] = 1;
    }
  }
  return fired;
}

void RoleGuardrails::Project(const uint8_t* mask, int32_t* action) const {
  for (size_t d = 0; d < components_.size(); ++d) {
    const auto& comp = components_[d];
    const uint8_t* m = mask + comp.offset;
    const int a = action[d];
    if (a >= 0 && a < comp.size && m[a]) continue;
    const double want = a >= 0 && a < comp.size ? comp.value(a) : 0.0;
    int best = -1;
    double best_gap = HUGE_VAL, best_value = HUGE_VAL;
    for (int v = 0; v < comp.size; ++v) {
      if (!m[v]) continue;
      const double gap = std::abs(comp.value(v) - want);
      if (gap < best_gap || (gap == best_gap && comp.value(v) < best_value))
        best = v, best_gap = gap, best_value = comp.value(v);
    }
    if (best >= 0) action[d] = best;
  }
}

std::vector<RoleGuardrails> CompileGuardrails(const std::vector<GuardrailRule>& rules,
                                              const std::vector<GuardrailLayout>& layouts) {
  std::string role_names;
  for (const auto& l : layouts) role_names += (role_names.empty() ? "" : ", ") + l.role;
  for (const GuardrailRule& rule : rules) {
    for (const auto& r : rule.roles)
      if (std::none_of(layouts.begin(), layouts.end(),
                       [&](const GuardrailLayout& l) { return l.role == r; }))
        throw std::invalid_argument(
            fmt::format("guardrail '{}': no role '{}' (roles: {})", rule.name, r, role_names));
    for (const auto& lim : rule.limits) {
      bool found = false;
      for (const auto& l : layouts)
        if (AppliesTo(rule, l))
          for (const auto& c : l.components) found |= Matches(lim.actions, c.name);
      if (!found)
        throw std::invalid_argument(fmt::format(
            "guardrail '{}': limit on '{}' matches no action of the roles it applies to "
            "(docs/environment.md lists the action components)",
            rule.name, lim.actions));
    }
  }
  std::vector<RoleGuardrails> out;
  for (const auto& l : layouts) out.push_back(RoleGuardrails::Compile(rules, l));
  return out;
}

std::string GuardrailNames(const std::vector<GuardrailRule>& rules, uint64_t bits) {
  std::string out;
  for (size_t k = 0; k < rules.size(); ++k)
    if (bits >> k & 1) out += (out.empty() ? "" : ", ") + rules[k].name;
  return out;
}

}  // namespace loantwin
