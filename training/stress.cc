#include "training/stress.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "env/config_error.h"
#include "env/config_paths.h"
#include "env/scenario.h"
#include "training/checkpoint.h"
#include "training/trainer.h"

namespace fs = std::filesystem;

namespace loantwin {

StressPolicy::StressPolicy() {
  fallbacks.fill(FallbackPolicy::kBaseline);
}
StressPolicy::~StressPolicy() = default;

bool StressPolicy::Decides(int role) const {
  return trainer_ && trainer_->HasPolicy(role);
}

void StressPolicy::Decide(int role, const float* obs, const uint8_t* masks, int n,
                          int32_t* actions) {
  trainer_->Decide(role, obs, masks, n, /*deterministic=*/true, actions);
}

namespace {

std::string Label(const fs::path& dir) {
  fs::path p = fs::weakly_canonical(dir);
  if (p.filename().empty()) p = p.parent_path();
  const std::string base = p.filename().string();
  // Export directories are usually called "export": name them after their run.
  if (base == "export" && p.has_parent_path())
    return p.parent_path().filename().string() + "-export";
  return base;
}

/// The roles of a config that the trainer drives or that run randomly.
void DescribeRoles(const ExperimentConfig& c, StressPolicy& p) {
  for (int r = 0; r < kNumTwinRoles; ++r) {
    const auto it = c.roles.find(kTwinRoleNames[r]);
    const std::string agent = it == c.roles.end() ? "baseline" : it->second.agent;
    p.info.roles[kTwinRoleNames[r]] = agent;
    if (agent == "random") p.fallbacks[r] = FallbackPolicy::kRandom;
  }
}

std::unique_ptr<Trainer> LoadRun(const fs::path& dir, ExperimentConfig* config) {
  *config = ExperimentConfig::Load((dir / "config.yaml").string());
  if (config->env_name != "twin")
    throw std::invalid_argument(
        fmt::format("{}: a run of environment '{}'; stress evaluation needs the twin", dir.string(),
                    config->env_name));
  auto trainer = std::make_unique<Trainer>(*config);
  LoadLatestCheckpoint(*trainer, dir.string(), "evaluate");
  return trainer;
}

}  // namespace

std::unique_ptr<StressPolicy> StressPolicy::Load(const std::string& spec_in) {
  std::string spec = spec_in, label;
  if (const auto eq = spec.find('=');
      eq != std::string::npos && eq > 0 && spec.substr(0, eq).find('/') == std::string::npos) {
    label = spec.substr(0, eq);
    spec = spec.substr(eq + 1);
  }
  std::unique_ptr<StressPolicy> p(new StressPolicy());
  if (spec == "baseline") {
    p->info = {label.empty() ? "baseline" : label, "baseline", "built-in", {}};
    for (const char* role : kTwinRoleNames) p->info.roles[role] = "baseline";
    return p;
  }
  const fs::path dir(spec);
  std::error_code ec;
  if (!fs::exists(dir, ec))
    throw std::invalid_argument(fmt::format(
        "policy '{}': no such file or directory (give 'baseline', a run directory or an "
        "export directory)",
        spec));
  if (!fs::is_directory(dir, ec))
    throw std::invalid_argument(fmt::format(
        "policy '{}': not a directory (give 'baseline', a run directory or an export directory)",
        spec));
  p->info.name = label.empty() ? Label(dir) : label;
  p->info.source = spec;
  if (fs::exists(dir / "config.yaml")) {
    std::ifstream probe(dir / "config.yaml");
    if (!probe) throw std::invalid_argument(spec + "/config.yaml: cannot be read");
    ExperimentConfig config;
    p->trainer_ = LoadRun(dir, &config);
    p->info.kind = "run";
    DescribeRoles(config, *p);
    TwinEnvConfig tc =
        config.env_config ? TwinEnvConfig::Parse(*config.env_config) : TwinEnvConfig{};
    for (const auto& [name, rc] : config.roles)
      for (int r = 0; r < kNumTwinRoles; ++r)
        if (name == kTwinRoleNames[r] && rc.has_rewards) tc.roles[r].reward_weights = rc.rewards;
    p->trained_institution = tc.institution;
    p->env_config = tc;
    return p;
  }
  if (!fs::exists(dir / "manifest.json"))
    throw std::invalid_argument(
        fmt::format("policy '{}': neither a run directory (config.yaml) nor an export directory "
                    "(manifest.json)",
                    spec));
  const std::string manifest_file = (dir / "manifest.json").string();
  std::ifstream in(manifest_file);
  if (!in) throw std::invalid_argument(manifest_file + ": cannot be read");
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(manifest_file + ": not valid JSON: " + e.what());
  }
  const std::string env = m.value("environment", "");
  if (env != "twin")
    throw std::invalid_argument(fmt::format(
        "{}: an export of environment '{}'; stress evaluation needs the twin", manifest_file, env));
  if (!m.contains("environment_version"))
    throw std::invalid_argument(fmt::format(
        "{}: no environment_version (exported by an older loantwin); re-export the run with "
        "this version",
        manifest_file));
  const int version = m["environment_version"].get<int>();
  if (version != TwinEnv::kVersion)
    throw std::invalid_argument(fmt::format(
        "{}: exported from twin environment version {}, this loantwin has version {}; its "
        "observations and actions differ - re-export the run with this version",
        manifest_file, version, TwinEnv::kVersion));
  if (!m.contains("roles") || !m["roles"].is_object() || m["roles"].empty())
    throw std::invalid_argument(manifest_file + ": no roles");
  // A twin with its role specs, to check each export's observation layout.
  EnvOptions eo;
  TwinEnv probe_env(eo, TwinEnvConfig{});
  std::string yaml =
      "name: stress-export\nenv:\n  name: twin\n  num_envs: 1\n  threads: 1\nroles:\n";
  for (int r = 0; r < kNumTwinRoles; ++r) p->info.roles[kTwinRoleNames[r]] = "baseline";
  for (const auto& [role, entry] : m["roles"].items()) {
    const int r = probe_env.FindRole(role);
    if (r < 0)
      throw std::invalid_argument(fmt::format("{}: unknown role '{}'", manifest_file, role));
    const auto features = entry.at("observation").at("features").get<std::vector<std::string>>();
    const auto& expected = probe_env.role(r).features.names();
    if (features != expected) {
      size_t k = 0;
      while (k < features.size() && k < expected.size() && features[k] == expected[k]) ++k;
      throw std::invalid_argument(fmt::format(
          "{}: role '{}' was exported for a different observation layout ({} features, this "
          "environment has {}; first difference at feature {}: '{}' vs '{}'); re-export the run "
          "with this version",
          manifest_file, role, features.size(), expected.size(), k,
          k < features.size() ? features[k] : "(none)",
          k < expected.size() ? expected[k] : "(none)"));
    }
    const std::string file = (dir / entry.at("file").get<std::string>()).string();
    yaml += fmt::format("  {}: {{frozen: \"{}\"}}\n", role, file);
    p->info.roles[role] = "export:" + entry.value("algorithm", "?");
  }
  const ExperimentConfig config =
      ExperimentConfig::Parse(YamlValue::LoadString(yaml, manifest_file));
  p->trainer_ = std::make_unique<Trainer>(config);
  p->info.kind = "export";
  return p;
}

std::vector<std::string> ResolveScenarios(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const auto& n : names) {
    if (n == "all") {
      for (const auto& s : ListConfigs("scenarios")) out.push_back(s);
      continue;
    }
    out.push_back(n);
  }
  if (out.empty()) throw std::invalid_argument("no scenarios given (--scenarios)");
  std::set<std::string> seen;
  std::vector<std::string> unique;
  for (const auto& s : out) {
    LoadScenario(s);  // ConfigError naming the scenario or file
    if (seen.insert(s).second) unique.push_back(s);
  }
  return unique;
}

StressReport RunStress(const std::vector<std::unique_ptr<StressPolicy>>& policies,
                       const StressOptions& o) {
  if (policies.empty()) throw std::invalid_argument("no policies to evaluate");
  std::set<std::string> names;
  for (const auto& p : policies)
    if (!names.insert(p->info.name).second)
      throw std::invalid_argument(fmt::format(
          "two policies are named '{}': name them with <label>=<directory>", p->info.name));
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<std::string> scenarios = ResolveScenarios(o.scenarios);
  StressReport report;
  // Environment settings (reward weights, CET1 floor) of the first run, else the defaults.
  TwinEnvConfig base;
  report.settings.reward_weights_from = "defaults";
  for (const auto& p : policies)
    if (p->env_config) {
      base = *p->env_config;
      report.settings.reward_weights_from = p->info.name;
      break;
    }
  if (!o.institution.empty())
    base.institution = o.institution;
  else if (report.settings.reward_weights_from == "defaults")
    base.institution = "cu_mid";
  report.settings.institution = base.institution;
  report.settings.paths = o.paths;
  report.settings.months = o.months;
  report.settings.seed = o.seed;
  report.settings.threads = o.threads;
  for (const auto& p : policies) report.policies.push_back(p->info);

  MonteCarloOptions mc;
  mc.paths = o.paths;
  mc.months = o.months;
  mc.seed = o.seed;
  mc.threads = o.threads;
  mc.batch = o.batch;
  mc.twin.check_invariants = true;
  mc.twin.count_invariant_breaches = true;
  StressProgress progress;
  progress.scenarios = static_cast<int>(scenarios.size());
  progress.policies = static_cast<int>(policies.size());
  progress.total = static_cast<int64_t>(scenarios.size()) * policies.size() * o.paths * o.months;
  for (size_t s = 0; s < scenarios.size(); ++s) {
    const auto scenario = LoadScenario(scenarios[s]);
    ScenarioReport sr;
    sr.name = scenario->name;
    sr.source = scenario->file.empty() ? scenarios[s] : scenario->file;
    sr.description = scenario->description;
    PathSet first_paths;
    for (size_t k = 0; k < policies.size(); ++k) {
      StressPolicy& policy = *policies[k];
      TwinEnvConfig c = base;
      c.scenario = scenarios[s];
      c.scenarios.clear();
      for (int r = 0; r < kNumTwinRoles; ++r) c.roles[r].fallback = policy.fallbacks[r];
      progress.scenario = static_cast<int>(s);
      progress.policy = static_cast<int>(k);
      progress.scenario_name = sr.name;
      progress.policy_name = policy.info.name;
      const int64_t before = progress.done;
      mc.month_progress = [&](int first, int batch, int months_done) {
        progress.done = before + static_cast<int64_t>(first) * o.months +
                        static_cast<int64_t>(batch) * months_done;
        if (o.progress) o.progress(progress);
      };
      PolicyRun run = RunPolicyMonteCarlo(c, &policy, mc);
      progress.done = before + static_cast<int64_t>(o.paths) * o.months;
      sr.results.push_back(ReducePolicyRun(policy.info.name, run));
      report.loan_months += sr.results.back().loan_months;
      report.instance_months += static_cast<int64_t>(o.paths) * o.months;
      if (k == 0) {
        sr.macro = MacroBands(run.paths);
        first_paths = std::move(run.paths);
      } else if (!MacroPathsEqual(first_paths, run.paths)) {
        sr.macro_paths_identical = false;
      }
    }
    CompareToFirst(sr, o.seed);
    report.scenarios.push_back(std::move(sr));
  }
  report.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace loantwin
