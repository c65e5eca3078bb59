#pragma once
// Config fields listed once. A config struct gets one visitor function that names every field
// with its range (or choices) and a help text:
//
//   template <typename V>
//   void VisitFields(CartPoleConfig& c, V&& v) {
//     v("gravity", c.gravity, 0.0, 100.0, "m/s^2");                    // number in [lo, hi]
//     v("reset_noise", c.reset_noise, 0.0, 1.0, "initial state ~ U(-noise, noise)");
//     v("normalize_obs", c.normalize_obs, "running mean/std normalisation");  // bool, list
//     v("activation", c.activation, Choices{"tanh", "relu"}, "hidden-layer activation");
//   }
//
// and the same list drives parsing (FieldReader: strict YAML, range checks, unknown keys are the
// caller's YamlMap::Done), the resolved config (FieldWriter: every field, defaults included),
// defaults (the struct's initialisers) and help texts (docs, --help). Types: double, int,
// int64_t, bool, std::string (free text, or one of Choices), std::vector<int64_t>,
// std::vector<std::string>.

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/yaml_reader.h"

namespace loantwin {

using Choices = std::vector<std::string>;

/// Reads the fields present in a YAML mapping (absent ones keep their defaults).
struct FieldReader {
  YamlMap& m;
  void operator()(const char* name, double& f, double lo, double hi, const char*) {
    m.Read(name, &f, lo, hi);
  }
  void operator()(const char* name, int& f, int lo, int hi, const char*) {
    m.Read(name, &f, lo, hi);
  }
  void operator()(const char* name, int64_t& f, int64_t lo, int64_t hi, const char*) {
    if (auto v = m.Get(name)) f = v->AsInt(lo, hi);
  }
  void operator()(const char* name, uint64_t& f, uint64_t lo, uint64_t hi, const char*) {
    if (auto v = m.Get(name))
      f = static_cast<uint64_t>(v->AsInt(static_cast<int64_t>(lo), static_cast<int64_t>(hi)));
  }
  void operator()(const char* name, bool& f, const char*) { m.Read(name, &f); }
  void operator()(const char* name, std::string& f, const char*) { m.Read(name, &f); }
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
  void operator()(const char* name, std::vector<std::string>& f, const char*) {
    if (auto v = m.Get(name)) {
      f.clear();
      for (const auto& item : v->Items()) f.push_back(item.AsString());
    }
  }
};

/// Writes every field to a YAML emitter (inside an open map).
struct FieldWriter {
  YAML::Emitter& out;
  template <typename T>
  void operator()(const char* name, T& f, T, T, const char*) {
    out << YAML::Key << name << YAML::Value << f;
  }
  void operator()(const char* name, bool& f, const char*) {
    out << YAML::Key << name << YAML::Value << f;
  }
  void operator()(const char* name, std::string& f, const char*) {
    out << YAML::Key << name << YAML::Value << f;
  }
  void operator()(const char* name, std::string& f, const Choices&, const char*) {
    out << YAML::Key << name << YAML::Value << f;
  }
  template <typename T>
  void operator()(const char* name, std::vector<T>& f, const char*) {
    out << YAML::Key << name << YAML::Value << YAML::Flow << f;
  }
};

/// Checks every ranged field against its range: std::invalid_argument "<name> = <value> is
/// outside [lo, hi]" (configs built in code, command-line options).
struct FieldValidator {
  template <typename T>
  void operator()(const char* name, T& f, T lo, T hi, const char*) {
    if (!(f >= lo && f <= hi))
      throw std::invalid_argument(fmt::format("{} = {} is outside [{}, {}]", name, f, lo, hi));
  }
  template <typename... Rest>
  void operator()(const char*, Rest&&...) {}
};

template <typename Config>
void ValidateFields(const Config& config) {
  Config copy = config;
  VisitFields(copy, FieldValidator{});
}

/// Parses a mapping into `config` through its VisitFields overload; unknown keys -> ConfigError.
template <typename Config>
void ReadFields(const YamlValue& value, Config& config) {
  YamlMap m(value);
  VisitFields(config, FieldReader{m});
  m.Done();
}

/// The resolved mapping (every field of the config's VisitFields) as YAML text; `flow`: on one
/// line ({a: 1, b: 2}).
template <typename Config>
std::string FieldsToYaml(const Config& config, bool flow = false) {
  Config copy = config;
  YAML::Emitter out;
  if (flow) out << YAML::Flow;
  out << YAML::BeginMap;
  VisitFields(copy, FieldWriter{out});
  out << YAML::EndMap;
  return out.c_str();
}

}  // namespace loantwin
