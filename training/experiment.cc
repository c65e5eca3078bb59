#include "training/experiment.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "rewards/reward.h"

namespace loantwin {
namespace {

/// Reads hyperparameters from a YAML mapping.
struct HyperReader {
  YamlMap& m;
  void operator()(const char* name, double& f, double lo, double hi, const char*) {
    m.Read(name, &f, lo, hi);
  }
  void operator()(const char* name, int& f, int lo, int hi, const char*) {
    m.Read(name, &f, lo, hi);
  }
  void operator()(const char* name, bool& f, const char*) { m.Read(name, &f); }
  void operator()(const char* name, std::string& f, const Choices& choices, const char*) {
    if (auto v = m.Get(name)) f = v->AsEnum(choices);
  }
  void operator()(const char* name, std::vector<int64_t>& f, const char*) {
    if (auto v = m.Get(name)) {
      f.clear();
      for (double x : v->AsDoubleList(0, 1, 65536)) {
        if (x != static_cast<int64_t>(x)) v->Fail("layer widths are integers");
        f.push_back(static_cast<int64_t>(x));
      }
    }
  }
};

/// Writes hyperparameters to a YAML emitter.
struct HyperWriter {
  YAML::Emitter& out;
  template <typename T>
  void operator()(const char* name, T& f, T, T, const char*) {
    out << YAML::Key << name << YAML::Value << f;
  }
  void operator()(const char* name, bool& f, const char*) {
    out << YAML::Key << name << YAML::Value << f;
  }
  void operator()(const char* name, std::string& f, const Choices&, const char*) {
    out << YAML::Key << name << YAML::Value << f;
  }
  void operator()(const char* name, std::vector<int64_t>& f, const char*) {
    out << YAML::Key << name << YAML::Value << YAML::Flow << f;
  }
};

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
  if (auto v = m.Get("seed")) c.seed = static_cast<uint64_t>(v->AsInt(0, INT64_MAX));
  if (auto v = m.Get("total_steps")) c.total_steps = v->AsInt(1, INT64_MAX);
  {
    YamlMap env(m.Require("env"));
    c.env_name = env.Require("name").AsString();
    env.Read("num_envs", &c.num_envs, 1, 1000000);
    env.Read("threads", &c.threads, 1, 1024);
    env.Read("max_episode_steps", &c.max_episode_steps, 0, 100000000);
    if (auto cfg = env.Get("config")) c.env_config = *cfg;
    env.Done();
  }
  if (auto roles = m.Get("roles")) {
    YamlMap rm(*roles);
    for (auto it = roles->node().begin(); it != roles->node().end(); ++it) {
      const std::string role = it->first.Scalar();
      const YamlValue node = *rm.Get(role);
      RoleAgentConfig rc;
      if (node.IsScalar()) {
        rc.agent = node.AsEnum({"ppo", "dqn", "muzero", "baseline", "random"});
      } else {
        YamlMap r(node);
        const std::vector<std::string> agents = {"ppo",      "dqn",    "muzero",
                                                 "baseline", "random", "frozen"};
        if (auto a = r.Get("agent")) rc.agent = a->AsEnum(agents);
        if (auto a = r.Get("algorithm")) {  // the learning algorithm: same as agent
          const std::string algo = a->AsEnum({"ppo", "dqn", "muzero"});
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
        if (auto p = r.Get("ppo")) {
          if (rc.agent != "ppo")
            p->Fail("'ppo' hyperparameters given for a role whose agent is '" + rc.agent + "'");
          YamlMap pm(*p);
          VisitPpoConfig(rc.ppo, HyperReader{pm});
          pm.Done();
        }
        if (auto p = r.Get("dqn")) {
          if (rc.agent != "dqn")
            p->Fail("'dqn' hyperparameters given for a role whose agent is '" + rc.agent + "'");
          YamlMap pm(*p);
          VisitDqnConfig(rc.dqn, HyperReader{pm});
          pm.Done();
          if (rc.dqn.batch_size > rc.dqn.buffer_size)
            p->Fail("batch_size (" + std::to_string(rc.dqn.batch_size) +
                    ") is larger than buffer_size (" + std::to_string(rc.dqn.buffer_size) + ")");
          if (rc.dqn.end_e > rc.dqn.start_e)
            p->Fail("end_e (" + std::to_string(rc.dqn.end_e) + ") is above start_e (" +
                    std::to_string(rc.dqn.start_e) + ")");
        }
        if (auto p = r.Get("muzero")) {
          if (rc.agent != "muzero")
            p->Fail("'muzero' hyperparameters given for a role whose agent is '" + rc.agent + "'");
          YamlMap pm(*p);
          VisitMuZeroConfig(rc.muzero, HyperReader{pm});
          pm.Done();
        }
        if (auto w = r.Get("rewards")) {
          YamlMap wm(*w);
          rc.has_rewards = true;
          for (const auto& name : RegisteredRewards()) {
            if (!wm.Has(name)) continue;
            double weight = 0;
            wm.Read(name, &weight, -1e6, 1e6);
            rc.rewards.emplace_back(name, weight);
          }
          wm.Done();
        }
        r.Done();
      }
      c.roles[role] = rc;
      c.role_nodes.emplace(role, node);
    }
  }
  if (auto l = m.Get("logging")) {
    YamlMap lm(*l);
    if (auto v = lm.Get("every_steps")) c.log_every_steps = v->AsInt(1, INT64_MAX);
    lm.Read("return_window", &c.return_window, 1, 100000);
    lm.Done();
  }
  if (auto k = m.Get("checkpoint")) {
    YamlMap km(*k);
    if (auto v = km.Get("every_steps")) c.checkpoint_every_steps = v->AsInt(0, INT64_MAX);
    km.Read("keep", &c.keep_checkpoints, 1, 1000);
    km.Done();
  }
  m.Read("output_dir", &c.output_dir);
  if (auto e = m.Get("evaluation")) {
    YamlMap em(*e);
    if (auto v = em.Get("every_steps")) c.eval_every_steps = v->AsInt(0, INT64_MAX);
    em.Read("paths", &c.eval_paths, 1, 100000);
    if (auto v = em.Get("scenarios"))
      for (const auto& item : v->Items()) c.eval_scenarios.push_back(item.AsString());
    if (auto v = em.Get("seed")) c.eval_seed = static_cast<uint64_t>(v->AsInt(0, INT64_MAX));
    em.Done();
  }
  m.Done();
  return c;
}

std::string ExperimentConfig::ToYaml() const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << name;
  out << YAML::Key << "seed" << YAML::Value << seed;
  out << YAML::Key << "total_steps" << YAML::Value << total_steps;
  out << YAML::Key << "env" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << env_name;
  out << YAML::Key << "num_envs" << YAML::Value << num_envs;
  out << YAML::Key << "threads" << YAML::Value << threads;
  out << YAML::Key << "max_episode_steps" << YAML::Value << max_episode_steps;
  if (env_config) out << YAML::Key << "config" << YAML::Value << env_config->node();
  out << YAML::EndMap;
  out << YAML::Key << "roles" << YAML::Value << YAML::BeginMap;
  for (const auto& [role, rc] : roles) {
    out << YAML::Key << role << YAML::Value << YAML::BeginMap;
    out << YAML::Key << "agent" << YAML::Value << rc.agent;
    if (rc.agent == "frozen") out << YAML::Key << "policy" << YAML::Value << rc.policy;
    if (rc.agent == "ppo") {
      out << YAML::Key << "ppo" << YAML::Value << YAML::BeginMap;
      PpoConfig copy = rc.ppo;
      VisitPpoConfig(copy, HyperWriter{out});
      out << YAML::EndMap;
    }
    if (rc.agent == "muzero") {
      out << YAML::Key << "muzero" << YAML::Value << YAML::BeginMap;
      MuZeroConfig copy = rc.muzero;
      VisitMuZeroConfig(copy, HyperWriter{out});
      out << YAML::EndMap;
    }
    if (rc.agent == "dqn") {
      out << YAML::Key << "dqn" << YAML::Value << YAML::BeginMap;
      DqnConfig copy = rc.dqn;
      VisitDqnConfig(copy, HyperWriter{out});
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
  out << YAML::Key << "logging" << YAML::Value << YAML::BeginMap << YAML::Key << "every_steps"
      << YAML::Value << log_every_steps << YAML::Key << "return_window" << YAML::Value
      << return_window << YAML::EndMap;
  out << YAML::Key << "checkpoint" << YAML::Value << YAML::BeginMap << YAML::Key << "every_steps"
      << YAML::Value << checkpoint_every_steps << YAML::Key << "keep" << YAML::Value
      << keep_checkpoints << YAML::EndMap;
  out << YAML::Key << "output_dir" << YAML::Value << output_dir;
  out << YAML::Key << "evaluation" << YAML::Value << YAML::BeginMap << YAML::Key << "every_steps"
      << YAML::Value << eval_every_steps << YAML::Key << "paths" << YAML::Value << eval_paths
      << YAML::Key << "scenarios" << YAML::Value << YAML::Flow << eval_scenarios << YAML::Key
      << "seed" << YAML::Value << eval_seed << YAML::EndMap;
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace loantwin
