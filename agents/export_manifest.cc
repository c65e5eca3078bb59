#include "agents/export_manifest.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "core/config_error.h"
#include "core/sha256.h"
#include "core/yaml_reader.h"
#include "env/multi_agent_env.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace loantwin {
namespace {

json Bound(double v) {
  return std::isfinite(v) ? json(v) : json(nullptr);
}

double ReadBound(const json& v, double infinity) {
  return v.is_null() ? infinity : v.get<double>();
}

/// Equal as the float32 the environment stores (bounds round-trip through JSON as doubles).
bool SameBound(double a, double b) {
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return static_cast<float>(a) == static_cast<float>(b);
}

bool SameScale(double a, double b) {
  return std::fabs(a - b) <= 1e-12 * std::max(1.0, std::fabs(b));
}

}  // namespace

std::vector<std::string> ManifestRole::FeatureNames() const {
  std::vector<std::string> names;
  for (const auto& f : features) names.push_back(f.name);
  return names;
}

int ManifestRole::FindFeature(const std::string& name) const {
  for (size_t k = 0; k < features.size(); ++k)
    if (features[k].name == name) return static_cast<int>(k);
  return -1;
}

ManifestRole ExportManifest::DescribeRole(const RoleSpec& spec) {
  ManifestRole r;
  r.name = spec.name;
  r.cadence = spec.cadence;
  const Box box = spec.features.ToBox();
  for (int k = 0; k < spec.features.size(); ++k)
    r.features.push_back({spec.features.names()[k], box.low()[k], box.high()[k],
                          spec.features.centers()[k], spec.features.scales()[k]});
  r.mask_width = spec.action_space.mask_width();
  for (int d = 0; d < spec.action_space.action_dims(); ++d) {
    ManifestAction a;
    a.name = d < static_cast<int>(spec.action_dim_names.size()) ? spec.action_dim_names[d]
                                                                : std::to_string(d);
    a.size = spec.action_space.dims().nvec()[d];
    a.mask_offset = spec.action_space.dims().mask_offset(d);
    if (d < static_cast<int>(spec.action_meanings.size())) a.meanings = spec.action_meanings[d];
    if (d < static_cast<int>(spec.action_values.size())) a.values = spec.action_values[d];
    r.actions.push_back(std::move(a));
  }
  return r;
}

json ExportManifest::ToJson() const {
  json m;
  m["format_version"] = format_version;
  m["loantwin_version"] = loantwin_version;
  m["torch_version"] = torch_version;
  m["environment"] = environment;
  m["environment_version"] = environment_version;
  if (!institution.empty()) m["institution"] = institution;
  if (!institutions.empty()) m["institutions"] = institutions;
  if (!pricing_reference.empty() && pricing_reference != "standard")
    m["pricing_reference"] = pricing_reference;
  m["experiment"] = experiment;
  m["source_run"] = source_run;
  m["checkpoint"] = checkpoint;
  m["global_step"] = global_step;
  m["module_sha256"] = module_sha256;
  if (!constraints.empty()) m["constraints"] = constraints;
  if (!guardrails.empty()) m["guardrails"] = json::parse(GuardrailsToJson(guardrails));
  json roles_json = json::object();
  for (const auto& [name, r] : roles) {
    json role;
    role["file"] = r.file;
    for (const auto& [extra, file] : r.extra_files) role[extra + "_file"] = file;
    role["algorithm"] = r.algorithm;
    role["cadence"] = r.cadence;
    json features = json::array();
    for (const auto& f : r.features)
      features.push_back({{"name", f.name},
                          {"low", Bound(f.low)},
                          {"high", Bound(f.high)},
                          {"center", f.center},
                          {"scale", f.scale}});
    role["observation"] = {{"dtype", "float32"},
                           {"shape", {"batch", r.features.size()}},
                           {"features", r.FeatureNames()},
                           {"feature_bounds", features},
                           {"normalised_inside", r.normalised_inside}};
    role["mask"] = {{"dtype", "uint8 or bool (1 = allowed)"}, {"shape", {"batch", r.mask_width}}};
    json actions = json::array();
    for (const auto& a : r.actions) {
      json c = {{"name", a.name}, {"size", a.size}, {"mask_offset", a.mask_offset}};
      if (!a.meanings.empty()) c["meanings"] = a.meanings;
      if (!a.values.empty()) c["values"] = a.values;
      actions.push_back(std::move(c));
    }
    role["actions"] = actions;
    role["methods"] = r.methods;
    role["hyperparameters"] = r.hyperparameters;
    roles_json[name] = role;
  }
  m["roles"] = roles_json;
  return m;
}

ExportManifest ExportManifest::FromJson(const json& m, const std::string& where) {
  auto fail = [&](const std::string& what) -> void { throw ManifestError(where + ": " + what); };
  if (!m.is_object()) fail("not a JSON object");
  ExportManifest out;
  // Keys whose absence has a specific remedy come first.
  if (!m.contains("environment_version"))
    fail(
        "no environment_version (exported by an older loantwin); re-export the run with this "
        "version");
  try {
    out.format_version = m.at("format_version").get<int>();
    if (out.format_version != kFormatVersion)
      fail(fmt::format("format_version {} (this loantwin reads {}); re-export the run",
                       out.format_version, kFormatVersion));
    out.loantwin_version = m.at("loantwin_version").get<std::string>();
    out.torch_version = m.value("torch_version", "");
    out.environment = m.at("environment").get<std::string>();
    out.environment_version = m.at("environment_version").get<int>();
    out.institution = m.value("institution", "");
    out.institutions = m.value("institutions", std::vector<std::string>{});
    out.pricing_reference = m.value("pricing_reference", "standard");
    if (out.pricing_reference != "standard" && out.pricing_reference != "cost_plus")
      fail(fmt::format("pricing_reference '{}': not 'standard' or 'cost_plus'",
                       out.pricing_reference));
    out.experiment = m.at("experiment").get<std::string>();
    out.source_run = m.value("source_run", "");
    out.checkpoint = m.value("checkpoint", "");
    out.global_step = m.at("global_step").get<int64_t>();
    out.module_sha256 = m.at("module_sha256").get<std::map<std::string, std::string>>();
    if (m.contains("constraints")) {
      out.constraints = m["constraints"];
      if (!out.constraints.is_array()) fail("constraints: not an array");
      for (const auto& c : out.constraints)
        if (!c.is_object() || !c.contains("name") || !c.contains("lambda") ||
            !c["lambda"].is_number())
          fail("constraints: each item needs a name and a numeric lambda");
    }
    if (m.contains("guardrails")) {
      if (!m["guardrails"].is_array()) fail("guardrails: not an array");
      try {  // one parser for the experiment's YAML and the manifest's JSON (a subset of YAML)
        out.guardrails =
            ParseGuardrails(YamlValue::LoadString(m["guardrails"].dump(), where + ": guardrails"));
      } catch (const ConfigError& e) {
        throw ManifestError(e.what());  // names the manifest and the item
      }
    }
    const json& roles = m.at("roles");
    if (!roles.is_object() || roles.empty()) fail("no roles");
    for (const auto& [name, e] : roles.items()) {
      ManifestRole r;
      r.name = name;
      const std::string at = "roles." + name;
      try {
        r.file = e.at("file").get<std::string>();
        for (const auto& [key, value] : e.items())
          if (key != "file" && key.size() > 5 && key.compare(key.size() - 5, 5, "_file") == 0)
            r.extra_files[key.substr(0, key.size() - 5)] = value.get<std::string>();
        r.algorithm = e.at("algorithm").get<std::string>();
        r.cadence = e.value("cadence", 1);
        const json& obs = e.at("observation");
        const auto names = obs.at("features").get<std::vector<std::string>>();
        const json& bounds = obs.at("feature_bounds");
        if (!bounds.is_array() || bounds.size() != names.size())
          fail(fmt::format("{}.observation.feature_bounds: {} entries for {} features", at,
                           bounds.is_array() ? bounds.size() : 0, names.size()));
        const double inf = std::numeric_limits<double>::infinity();
        for (size_t k = 0; k < names.size(); ++k) {
          const json& b = bounds[k];  // by position; the names list is authoritative
          r.features.push_back({names[k], ReadBound(b.at("low"), -inf),
                                ReadBound(b.at("high"), inf), b.at("center").get<double>(),
                                b.at("scale").get<double>()});
        }
        r.normalised_inside = obs.value("normalised_inside", false);
        r.mask_width = e.at("mask").at("shape").at(1).get<int>();
        for (const auto& c : e.at("actions")) {
          ManifestAction a;
          a.name = c.at("name").get<std::string>();
          a.size = c.at("size").get<int>();
          a.mask_offset = c.at("mask_offset").get<int>();
          if (c.contains("meanings")) a.meanings = c["meanings"].get<std::vector<std::string>>();
          if (c.contains("values")) a.values = c["values"].get<std::vector<double>>();
          r.actions.push_back(std::move(a));
        }
        if (e.contains("methods")) r.methods = e["methods"].get<std::vector<std::string>>();
        if (e.contains("hyperparameters")) r.hyperparameters = e["hyperparameters"];
      } catch (const json::exception& ex) {
        fail(fmt::format("{}: {}", at, ex.what()));
      }
      out.roles.emplace(name, std::move(r));
    }
  } catch (const json::exception& ex) {
    fail(ex.what());
  }
  return out;
}

ExportManifest ExportManifest::Load(const std::string& dir) {
  const std::string file = (fs::path(dir) / "manifest.json").string();
  std::error_code ec;
  if (fs::is_directory(file, ec)) throw ManifestError(file + ": is a directory, not a file");
  std::ifstream in(file);
  if (!in) throw ManifestError(file + ": cannot be read (not an export bundle?)");
  json m;
  try {
    m = json::parse(in);
  } catch (const json::parse_error& e) {
    // The parser's message quotes the bytes it read: never echo a file's contents (a reload
    // request could name any readable file).
    throw ManifestError(fmt::format("{}: not valid JSON (syntax error at byte {})", file, e.byte));
  } catch (const json::exception& e) {
    throw ManifestError(file + ": not valid JSON");
  }
  return FromJson(m, file);
}

void ExportManifest::Save(const std::string& dir) const {
  WriteFileAtomically((fs::path(dir) / "manifest.json").string(),
                      [&](std::ostream& out) { out << ToJson().dump(2) << "\n"; });
}

void ExportManifest::Validate(const MultiAgentEnv& env, const std::string& where) const {
  auto fail = [&](const std::string& what) -> void { throw ManifestError(where + ": " + what); };
  if (environment != env.name())
    fail(fmt::format("an export of environment '{}', not '{}'", environment, env.name()));
  if (environment_version != env.version())
    fail(
        fmt::format("exported from {} environment version {}, this loantwin has version {}; its "
                    "observations and actions differ - re-export the run with this version",
                    environment, environment_version, env.version()));
  for (const auto& [name, role] : roles) {
    const int r = env.FindRole(name);
    if (r < 0) fail(fmt::format("unknown role '{}'", name));
    const ManifestRole expected = DescribeRole(env.role(r));
    const auto got = role.FeatureNames(), want = expected.FeatureNames();
    if (got != want) {
      size_t k = 0;
      while (k < got.size() && k < want.size() && got[k] == want[k]) ++k;
      fail(fmt::format(
          "role '{}' was exported for a different observation layout ({} features, this "
          "environment has {}; first difference at feature {}: '{}' vs '{}'); re-export the run "
          "with this version",
          name, got.size(), want.size(), k, k < got.size() ? got[k] : "(none)",
          k < want.size() ? want[k] : "(none)"));
    }
    for (size_t k = 0; k < got.size(); ++k) {
      const ManifestFeature &a = role.features[k], &b = expected.features[k];
      if (!SameBound(a.low, b.low) || !SameBound(a.high, b.high))
        fail(
            fmt::format("role '{}': feature '{}' has bounds [{}, {}], the environment's are "
                        "[{}, {}]",
                        name, a.name, a.low, a.high, b.low, b.high));
      if (!SameScale(a.center, b.center) || !SameScale(a.scale, b.scale))
        fail(
            fmt::format("role '{}': feature '{}' has center/scale {}/{}, the environment's are "
                        "{}/{}",
                        name, a.name, a.center, a.scale, b.center, b.scale));
    }
    if (role.mask_width != expected.mask_width)
      fail(
          fmt::format("role '{}' has a different action layout: mask width {} (the "
                      "environment's is {}); re-export",
                      name, role.mask_width, expected.mask_width));
    if (role.actions.size() != expected.actions.size())
      fail(
          fmt::format("role '{}' has a different action layout: {} action components (the "
                      "environment has {}); re-export",
                      name, role.actions.size(), expected.actions.size()));
    int offset = 0;
    for (size_t d = 0; d < role.actions.size(); ++d) {
      const ManifestAction &a = role.actions[d], &b = expected.actions[d];
      if (a.name != b.name || a.size != b.size || a.mask_offset != b.mask_offset ||
          a.mask_offset != offset || a.meanings != b.meanings)
        fail(
            fmt::format("role '{}': action component {} ('{}', size {}, mask_offset {}) does "
                        "not match the environment's ('{}', size {}, mask_offset {}); re-export",
                        name, d, a.name, a.size, a.mask_offset, b.name, b.size, b.mask_offset));
      if (!a.values.empty() && a.values.size() != static_cast<size_t>(a.size))
        fail(fmt::format("role '{}': action component '{}' has {} values for {} choices", name,
                         a.name, a.values.size(), a.size));
      offset += a.size;
    }
  }
  if (!guardrails.empty()) {
    std::vector<GuardrailLayout> layouts;
    for (int r = 0; r < env.num_roles(); ++r) layouts.push_back(GuardrailLayout::Of(env.role(r)));
    try {
      CompileGuardrails(guardrails, layouts);
    } catch (const std::invalid_argument& e) {
      fail(e.what());
    }
  }
}

ExportManifest LoadExportForEvaluation(const std::string& dir, const std::string& environment,
                                       const MultiAgentEnv& probe) {
  const std::string where = (fs::path(dir) / "manifest.json").string();
  try {
    ExportManifest manifest = ExportManifest::Load(dir);
    if (manifest.environment != environment)
      throw ManifestError(fmt::format(
          "{}: an export of environment '{}', not '{}' (fund and twin policies are evaluated "
          "separately)",
          where, manifest.environment, environment));
    manifest.Validate(probe, where);
    manifest.VerifyFiles(dir);
    return manifest;
  } catch (const ManifestError& e) {
    throw std::invalid_argument(e.what());
  }
}

std::string FrozenExportExperimentYaml(const ExportManifest& manifest, const std::string& dir,
                                       const std::string& name, const std::string& environment) {
  std::string yaml = fmt::format(
      "name: {}\nenv:\n  name: {}\n  num_envs: 1\n  threads: 1\nroles:\n", name, environment);
  for (const auto& [role, entry] : manifest.roles)
    yaml += fmt::format("  {}: {{frozen: \"{}\"}}\n", role, (fs::path(dir) / entry.file).string());
  return yaml;
}

void ExportManifest::VerifyFiles(const std::string& dir) const {
  const std::string where = (fs::path(dir) / "manifest.json").string();
  std::set<std::string> listed;
  for (const auto& [name, role] : roles) {
    listed.insert(role.file);
    for (const auto& [extra, file] : role.extra_files) listed.insert(file);
  }
  for (const std::string& file : listed) {
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..")
      throw ManifestError(
          fmt::format("{}: module file '{}' must be a file name inside the "
                      "bundle",
                      where, file));
    const auto it = module_sha256.find(file);
    if (it == module_sha256.end())
      throw ManifestError(fmt::format("{}: no SHA-256 recorded for module file '{}'", where, file));
    const std::string path = (fs::path(dir) / file).string();
    std::string actual;
    try {
      actual = FileSha256(path);
    } catch (const std::exception& e) {
      throw ManifestError(fmt::format("{}: module file {}: {}", where, path, e.what()));
    }
    if (actual != it->second)
      throw ManifestError(fmt::format(
          "{}: module file {} was modified after export (SHA-256 {}, the manifest records {}); "
          "refusing to load it - re-export the run",
          where, path, actual, it->second));
  }
  for (const auto& [file, digest] : module_sha256)
    if (!listed.count(file))
      throw ManifestError(
          fmt::format("{}: module_sha256 lists '{}', which no role uses", where, file));
}

std::string ExportManifest::WeightsDigest() const {
  Sha256 h;
  for (const auto& [file, digest] : module_sha256) {
    h.Update(file);
    h.Update("=");
    h.Update(digest);
    h.Update("\n");
  }
  return h.FinalHex().substr(0, 12);
}

std::string FileSha256(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot be read");
  Sha256 h;
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h.Update(std::string_view(buf.data(), static_cast<size_t>(in.gcount())));
  }
  return h.FinalHex();
}

}  // namespace loantwin
