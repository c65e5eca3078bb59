#include "training/experiment.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "core/config_fields.h"
#include "env/env_registry.h"
#include "env/fund_env.h"
#include "rewards/reward.h"

namespace loantwin {
namespace {

/// Reads one role's section: `<role>: ppo` or a mapping with agent/algorithm/frozen/policy, the
/// algorithm's hyperparameters under its registry name, and reward weights.
RoleAgentConfig ParseRole(const YamlValue& node, const std::string& env_name) {
  const Registry<AgentAlgorithm>& algorithms = AgentAlgorithms();
  const std::vector<std::string> learners = algorithms.Names();
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> all = learners;
    all.insert(all.end(), extra.begin(), extra.end());
    return all;
  };
  RoleAgentConfig rc;
  if (node.IsScalar()) {
    rc.agent = node.AsEnum(with({"baseline", "random"}));
  } else {
    YamlMap r(node);
    if (auto a = r.Get("agent")) rc.agent = a->AsEnum(with({"baseline", "random", "frozen"}));
    if (auto a = r.Get("algorithm")) {  // the learning algorithm: same as agent
      const std::string algo = a->AsEnum(learners);
      if (r.Has("agent") && rc.agent != algo)
        a->Fail("'algorithm: " + algo + "' conflicts with agent '" + rc.agent + "'");
      rc.agent = algo;
    }
    if (auto f = r.Get("frozen")) {  // shorthand: {frozen: <exported policy>}
      if ((r.Has("agent") || r.Has("algorithm")) && rc.agent != "frozen")
        f->Fail("'frozen' conflicts with agent '" + rc.agent + "'");
      rc.agent = "frozen";
      rc.policy = f->AsString();
    }
    if (auto p = r.Get("policy")) {
      if (rc.agent != "frozen") p->Fail("'policy' is for roles whose agent is 'frozen'");
      rc.policy = p->AsString();
    } else if (rc.agent == "frozen" && rc.policy.empty()) {
      node.Fail("a frozen role needs 'policy: <exported role .pt file>'");
    }
    if (algorithms.Has(rc.agent))
      rc.options = AgentOptionsHolder(algorithms.Get(rc.agent).defaults());
    for (const auto& algo : learners) {  // hyperparameters sit under the algorithm's name
      auto p = r.Get(algo);
      if (!p) continue;
      if (rc.agent != algo)
        p->Fail("'" + algo + "' hyperparameters given for a role whose agent is '" + rc.agent +
                "'");
      YamlMap pm(*p);
      rc.options->Read(pm);
      pm.Done();
      if (const std::string problem = rc.options->Check(); !problem.empty()) p->Fail(problem);
    }
    if (auto w = r.Get("rewards")) {
      YamlMap wm(*w);
      rc.has_rewards = true;
      // The environment's objectives: the fund's own, the twin's registered rewards otherwise.
      const std::vector<std::string> objectives =
          env_name == "home_equity_fund" ? kFundObjectives : RegisteredRewards();
      for (const auto& name : objectives) {
        if (!wm.Has(name)) continue;
        double weight = 0;
        wm.Read(name, &weight, -1e6, 1e6);
        rc.rewards.emplace_back(name, weight);
      }
      wm.Done();
    }
    r.Done();
  }
  if (algorithms.Has(rc.agent) && !rc.options)
    rc.options = AgentOptionsHolder(algorithms.Get(rc.agent).defaults());
  return rc;
}

/// Emits `key: {fields of visit}`.
template <typename Visit>
void WriteSection(YAML::Emitter& out, const char* key, ExperimentConfig& c, Visit visit) {
  out << YAML::Key << key << YAML::Value << YAML::BeginMap;
  visit(c, FieldWriter{out});
  out << YAML::EndMap;
}

}  // namespace

ExperimentConfig ExperimentConfig::Load(const std::string& file) {
  return Parse(YamlValue::LoadFile(file));
}

ExperimentConfig ExperimentConfig::Parse(const YamlValue& root) {
  ExperimentConfig c;
  c.file = root.file();
  YamlMap m(root);
  c.name = m.Require("name").AsString();
  if (c.name.empty() || c.name.find('/') != std::string::npos)
    m.Require("name").Fail("experiment names are non-empty and contain no '/'");
  VisitTopFields(c, FieldReader{m});
  {
    YamlMap env(m.Require("env"));
    c.env_name = env.Require("name").AsString();
    VisitEnvFields(c, FieldReader{env});
    if (auto cfg = env.Get("config")) c.env_config = *cfg;
    env.Done();
  }
  if (auto roles = m.Get("roles")) {
    YamlMap rm(*roles);
    for (auto it = roles->node().begin(); it != roles->node().end(); ++it) {
      const std::string role = it->first.Scalar();
      const YamlValue node = *rm.Get(role);
      c.roles[role] = ParseRole(node, c.env_name);
      c.role_nodes.emplace(role, node);
    }
  }
  if (auto l = m.Get("logging")) {
    YamlMap lm(*l);
    VisitLoggingFields(c, FieldReader{lm});
    lm.Done();
  }
  if (auto k = m.Get("checkpoint")) {
    YamlMap km(*k);
    VisitCheckpointFields(c, FieldReader{km});
    km.Done();
  }
  if (auto e = m.Get("evaluation")) {
    YamlMap em(*e);
    VisitEvaluationFields(c, FieldReader{em});
    em.Done();
  }
  if (auto list = m.Get("constraints")) {
    for (const auto& item : list->Items()) {
      c.constraints.push_back(ConstraintConfig::Parse(item));
      c.constraint_nodes.push_back(item);
    }
  }
  if (auto list = m.Get("guardrails")) {
    c.guardrails = ParseGuardrails(*list);
    c.guardrails_node = *list;
  }
  m.Done();
  return c;
}

std::string ExperimentConfig::ToYaml() const {
  ExperimentConfig c = *this;
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << name;
  VisitTopFields(c, FieldWriter{out});
  out << YAML::Key << "env" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << env_name;
  VisitEnvFields(c, FieldWriter{out});
  out << YAML::Key << "config" << YAML::Value
      << YAML::Load(ResolvedEnvConfig(env_name, env_config ? &*env_config : nullptr));
  out << YAML::EndMap;
  out << YAML::Key << "roles" << YAML::Value << YAML::BeginMap;
  for (const auto& [role, rc] : roles) {
    out << YAML::Key << role << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "agent" << YAML::Value << rc.agent;
    if (rc.agent == "frozen") out << YAML::Key << "policy" << YAML::Value << rc.policy;
    if (rc.learning()) {
      out << YAML::Key << rc.agent << YAML::Value << YAML::BeginMap;
      rc.options->Write(out);
      out << YAML::EndMap;
    }
    if (rc.has_rewards) {
      out << YAML::Key << "rewards" << YAML::Value << YAML::BeginMap;
      for (const auto& [k, w] : rc.rewards) out << YAML::Key << k << YAML::Value << w;
      out << YAML::EndMap;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndMap;
  WriteSection(out, "logging", c, [](auto& x, auto&& v) { VisitLoggingFields(x, v); });
  WriteSection(out, "checkpoint", c, [](auto& x, auto&& v) { VisitCheckpointFields(x, v); });
  WriteSection(out, "evaluation", c, [](auto& x, auto&& v) { VisitEvaluationFields(x, v); });
  if (!constraints.empty()) {
    out << YAML::Key << "constraints" << YAML::Value << YAML::BeginSeq;
    for (const ConstraintConfig& k : constraints) k.Write(out);
    out << YAML::EndSeq;
  }
  if (!guardrails.empty()) {
    out << YAML::Key << "guardrails" << YAML::Value << YAML::BeginSeq;
    for (const GuardrailRule& g : guardrails) g.Write(out);
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace loantwin
