#include "training/stress.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include "agents/export_manifest.h"
#include "core/collective.h"
#include "core/config_error.h"
#include "core/version.h"
#include "env/twin/config_paths.h"
#include "env/twin/institution.h"
#include "env/twin/metrics.h"
#include "env/twin/scenario.h"
#include "report/render_util.h"
#include "training/checkpoint.h"
#include "training/trainer.h"

namespace fs = std::filesystem;

namespace loantwin {

StressPolicy::StressPolicy() {
  fallbacks.fill(FallbackPolicy::kBaseline);
}
StressPolicy::~StressPolicy() = default;

bool StressPolicy::Decides(int role) const {
  if (fixed_cutoff_ >= 0) return role == kCreditRole;
  return trainer_ && trainer_->HasPolicy(role);
}

void StressPolicy::Decide(int role, const float* obs, const uint8_t* masks, int n,
                          int32_t* actions) {
  if (fixed_cutoff_ >= 0) {
    // Every product's cutoff at the band, or the nearest allowed one (tighter first).
    constexpr int kValues = kNumBands + 1;
    for (int i = 0; i < n; ++i)
      for (int p = 0; p < kNumProducts; ++p) {
        const uint8_t* m = masks + (static_cast<size_t>(i) * kNumProducts + p) * kValues;
        int a = fixed_cutoff_;
        while (a > 0 && !m[a]) --a;
        if (!m[a]) {
          a = fixed_cutoff_;
          while (a + 1 < kValues && !m[a]) ++a;
        }
        actions[static_cast<size_t>(i) * kNumProducts + p] = a;
      }
    return;
  }
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

std::unique_ptr<Trainer> LoadRun(const fs::path& dir, ExperimentConfig* config,
                                 std::string* checkpoint) {
  *config = ExperimentConfig::Load((dir / "config.yaml").string());
  if (config->env_name != "twin")
    throw std::invalid_argument(
        fmt::format("{}: a run of environment '{}'; stress evaluation needs the twin", dir.string(),
                    config->env_name));
  auto trainer = std::make_unique<Trainer>(*config);
  *checkpoint = LoadLatestCheckpoint(*trainer, dir.string(), "evaluate");
  return trainer;
}

/// A trained-under constraint for the report: the metric resolved to a metrics-row column.
/// The constraint as the stress report evaluates it from the metrics rows; std::nullopt for
/// the fairness metrics (applicant groups), which the fair-lending section reports instead.
std::optional<PolicyConstraint> ReportConstraint(const std::string& where, const std::string& name,
                                                 const std::string& metric,
                                                 std::optional<double> min,
                                                 std::optional<double> max, const std::string& cost,
                                                 double limit, double discount) {
  if (metric.rfind("fairness/", 0) == 0) return std::nullopt;
  PolicyConstraint c;
  c.name = name, c.metric = metric, c.min = min, c.max = max;
  c.indicator = cost == "indicator";
  c.limit = limit, c.discount = discount;
  c.column = metric == "max_product_share" ? -1 : FindMetric(metric);
  if (c.column < 0 && metric != "max_product_share")
    throw std::invalid_argument(
        fmt::format("{}: constraint '{}' reads metric '{}', which the twin does not have", where,
                    name, metric));
  return c;
}

/// One policy's run split across the group's ranks: rank r simulates the batches b with
/// b % world == r; rank 0 reduces every batch in path order (its own as they are made, the
/// others' as they arrive) and receives the per-path figures, so what it reduces is exactly what
/// one process would. The other ranks return their partial run.
PolicyRun RunShardedPolicy(const TwinEnvConfig& config, StressPolicy& policy, MonteCarloOptions mc,
                           const std::function<void(const PathBlock&)>& reduce, Collective& group) {
  const int world = group.world_size(), me = group.rank();
  const int batches = (mc.paths + mc.batch - 1) / mc.batch;
  mc.shard = me;
  mc.shards = world;
  int next = 0;  // rank 0: the next batch to reduce
  std::vector<double> buffer;
  auto receive_until = [&](int end) {
    for (; next < end; ++next) {
      if (next % world == 0) continue;  // rank 0's own: reduced as it was made
      PathBlock block;
      block.first_path = next * mc.batch;
      block.count = std::min(mc.batch, mc.paths - block.first_path);
      block.months = mc.months;
      buffer.resize(static_cast<size_t>(block.count) * mc.months * kNumMetrics);
      group.Recv(buffer.data(), buffer.size() * sizeof(double), next % world, next);
      block.data = buffer.data();
      reduce(block);
    }
  };
  mc.sink = [&](const PathBlock& block) {
    const int b = block.first_path / mc.batch;
    if (me == 0) {
      receive_until(b);
      reduce(block);
      next = b + 1;
    } else {
      group.Send(block.data,
                 static_cast<size_t>(block.count) * block.months * kNumMetrics * sizeof(double), 0,
                 b);
    }
  };
  PolicyRun run = RunPolicyMonteCarlo(config, &policy, mc);
  if (me == 0) receive_until(batches);
  // Per-path figures: each path is non-zero on the rank that ran it only, so the sums are exact
  // (x + 0 == x; the sums start at +0.0 and can never be -0.0).
  for (auto& v : run.rewards.returns) group.AllReduceSum(v.data(), v.size());
  for (auto& v : run.rewards.objective_sums) group.AllReduceSum(v.data(), v.size());
  std::vector<int64_t> counts;
  for (int v : run.failed_month) counts.push_back(v);
  for (int v : run.invariant_breaches) counts.push_back(v);
  for (const auto& g : run.guardrail_counts)
    counts.push_back(g.fired), counts.push_back(g.decisions);
  group.AllReduceSum(counts.data(), counts.size());
  size_t k = 0;
  for (int& v : run.failed_month) v = static_cast<int>(counts[k++]);
  for (int& v : run.invariant_breaches) v = static_cast<int>(counts[k++]);
  for (auto& g : run.guardrail_counts) g.fired = counts[k++], g.decisions = counts[k++];
  // The first invariant breach's message per path (rare): (path, length, bytes) records.
  std::string mine;
  for (size_t p = 0; p < run.first_invariant_breach.size(); ++p) {
    const std::string& m = run.first_invariant_breach[p];
    if (m.empty()) continue;
    const int64_t head[2] = {static_cast<int64_t>(p), static_cast<int64_t>(m.size())};
    mine.append(reinterpret_cast<const char*>(head), sizeof head);
    mine += m;
  }
  for (const std::string& records : group.AllGather(mine)) {
    for (size_t at = 0; at < records.size();) {
      int64_t head[2];
      std::memcpy(head, records.data() + at, sizeof head);
      at += sizeof head;
      run.first_invariant_breach[static_cast<size_t>(head[0])] =
          records.substr(at, static_cast<size_t>(head[1]));
      at += static_cast<size_t>(head[1]);
    }
  }
  return run;
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
    p->info.name = label.empty() ? "baseline" : label;
    p->info.kind = "baseline";
    p->info.source = "built-in";
    for (const char* role : kTwinRoleNames) p->info.roles[role] = "baseline";
    return p;
  }
  if (spec.rfind("cutoff:", 0) == 0) {
    const std::string band = spec.substr(7);
    if (band == "none") {
      p->fixed_cutoff_ = 0;
    } else {
      for (int b = 0; b < kNumBands; ++b)
        if (band == kBandNames[b]) p->fixed_cutoff_ = b + 1;
    }
    if (p->fixed_cutoff_ < 0)
      throw std::invalid_argument(fmt::format(
          "policy '{}': the cutoff must be a band A..G or 'none' (e.g. cutoff:D)", spec_in));
    p->info.name = label.empty() ? spec : label;
    p->info.kind = "rule";
    p->info.source = "built-in";
    for (const char* role : kTwinRoleNames) p->info.roles[role] = "baseline";
    p->info.roles["credit"] = "cutoff " + band;
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
    p->trainer_ = LoadRun(dir, &config, &p->info.checkpoint);
    p->info.checkpoint_sha256 = FileSha256(p->info.checkpoint);
    p->info.kind = "run";
    for (const ConstraintConfig& c : config.constraints)
      if (auto rc = ReportConstraint(spec + "/config.yaml", c.name, c.metric, c.min, c.max, c.cost,
                                     c.limit, c.discount))
        p->info.constraints.push_back(*rc);
    DescribeRoles(config, *p);
    p->guardrails = config.guardrails;
    for (const auto& g : config.guardrails) p->info.guardrails.push_back(g.ToJson());
    TwinEnvConfig tc =
        config.env_config ? TwinEnvConfig::Parse(*config.env_config) : TwinEnvConfig{};
    for (const auto& [name, rc] : config.roles)
      for (int r = 0; r < kNumTwinRoles; ++r)
        if (name == kTwinRoleNames[r] && rc.has_rewards) tc.roles[r].reward_weights = rc.rewards;
    p->trained_institutions = tc.InstitutionList();
    p->pricing_reference = tc.pricing_reference;
    p->env_config = tc;
    return p;
  }
  if (!fs::exists(dir / "manifest.json"))
    throw std::invalid_argument(
        fmt::format("policy '{}': neither a run directory (config.yaml) nor an export directory "
                    "(manifest.json)",
                    spec));
  const std::string manifest_file = (dir / "manifest.json").string();
  // A twin with its role specs, to check each export's observation and action layout.
  EnvOptions eo;
  TwinEnv probe_env(eo, TwinEnvConfig{});
  const ExportManifest manifest = LoadExportForEvaluation(dir.string(), "twin", probe_env);
  for (int r = 0; r < kNumTwinRoles; ++r) p->info.roles[kTwinRoleNames[r]] = "baseline";
  for (const auto& [role, entry] : manifest.roles)
    p->info.roles[role] = "export:" + entry.algorithm;
  const std::string yaml =
      FrozenExportExperimentYaml(manifest, dir.string(), "stress-export", "twin");
  const ExperimentConfig config =
      ExperimentConfig::Parse(YamlValue::LoadString(yaml, manifest_file));
  p->trainer_ = std::make_unique<Trainer>(config);
  p->info.kind = "export";
  p->info.checkpoint = manifest.checkpoint;
  p->info.module_sha256 = manifest.module_sha256;
  p->guardrails = manifest.guardrails;
  p->pricing_reference = manifest.pricing_reference;
  for (const auto& g : manifest.guardrails) p->info.guardrails.push_back(g.ToJson());
  try {
    for (const auto& c : manifest.constraints) {
      std::optional<double> min, max;
      if (c.contains("min")) min = c.at("min").get<double>();
      if (c.contains("max")) max = c.at("max").get<double>();
      if (auto rc = ReportConstraint(manifest_file, c.at("name").get<std::string>(),
                                     c.at("metric").get<std::string>(), min, max,
                                     c.at("cost").get<std::string>(), c.at("limit").get<double>(),
                                     c.value("discount", 1.0)))
        p->info.constraints.push_back(*rc);
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(manifest_file + ": constraints: " + e.what());
  }
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

Provenance CurrentProvenance() {
  Provenance p;
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
  p.generated_at = stamp;
  p.loantwin_version = LoantwinVersion();
  p.source_revision = "unknown";
  // The source tree this binary was built from: its git revision, if it is still there.
  auto run = [](const std::string& cmd, std::string* out) {
    FILE* f = popen(cmd.c_str(), "r");
    if (!f) return false;
    char buf[128];
    out->clear();
    while (std::fgets(buf, sizeof buf, f)) *out += buf;
    return pclose(f) == 0;
  };
  const std::string dir = LoantwinSourceDir();
  std::string rev, status;
  if (run("git -C '" + dir + "' rev-parse HEAD 2>/dev/null", &rev) && rev.size() >= 40) {
    p.source_revision = rev.substr(0, 40);
    if (run("git -C '" + dir + "' status --porcelain --untracked-files=no 2>/dev/null", &status) &&
        !status.empty())
      p.source_revision += "-dirty";
  }
  return p;
}

StressReport RunStress(const std::vector<std::unique_ptr<StressPolicy>>& policies,
                       const StressOptions& o) {
  if (policies.empty()) throw std::invalid_argument("no policies to evaluate");
  // Unique names; with --metric-bands also unique as file names (one file per policy).
  std::set<std::string> names;
  std::map<std::string, std::string> files;
  for (const auto& p : policies) {
    if (!names.insert(p->info.name).second)
      throw std::invalid_argument(fmt::format(
          "two policies are named '{}': name them with <label>=<directory>", p->info.name));
    if (o.metric_bands_dir.empty()) continue;
    const auto [it, fresh] = files.emplace(SafeFileName(p->info.name), p->info.name);
    if (!fresh)
      throw std::invalid_argument(fmt::format(
          "policies '{}' and '{}' would write the same metric-bands file '{}.csv': name them "
          "apart with <label>=<spec>",
          it->second, p->info.name, it->first));
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<std::string> scenarios = ResolveScenarios(o.scenarios);
  StressReport report;
  report.provenance = CurrentProvenance();
  const bool distributed = o.group != nullptr && o.group->world_size() > 1;
  const bool root = o.group == nullptr || o.group->rank() == 0;
  if (o.group != nullptr) report.provenance.ranks = o.group->world_size();
  // Environment settings (reward weights, capital floor) of the first run, else the defaults.
  TwinEnvConfig base;
  report.settings.reward_weights_from = "defaults";
  for (const auto& p : policies)
    if (p->env_config) {
      base = *p->env_config;
      report.settings.reward_weights_from = p->info.name;
      break;
    }
  // One institution per report: --institution, else the run's (the first of its `institutions`).
  if (!o.institution.empty())
    base.institution = o.institution;
  else if (report.settings.reward_weights_from == "defaults")
    base.institution = "cu_mid";
  base.institutions.clear();
  report.settings.institution = base.institution;
  {
    const auto institution = LoadInstitution(base.institution);
    report.settings.regime = institution->capital.regime;
    report.settings.currency = institution->currency;
  }
  report.settings.paths = o.paths;
  std::optional<ApplicantGroupTable> groups;
  if (!o.applicant_groups.empty()) {
    if (distributed)
      throw std::invalid_argument(
          "the fair-lending analysis (applicant groups) runs in one process: drop --distributed");
    groups = ApplicantGroupTable::Load(o.applicant_groups);
  }
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
  mc.resolve_failures = true;  // a failed institution is resolved, not left to recover
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
    std::string first_macro_digest;
    for (size_t k = 0; k < policies.size(); ++k) {
      StressPolicy& policy = *policies[k];
      TwinEnvConfig c = base;
      c.scenario = scenarios[s];
      c.scenarios.clear();
      for (int r = 0; r < kNumTwinRoles; ++r) c.roles[r].fallback = policy.fallbacks[r];
      c.guardrails = policy.guardrails;
      c.pricing_reference = policy.pricing_reference;
      c.applicant_groups = o.applicant_groups;
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
      // The paths are reduced batch by batch as they are simulated (memory bounded by the
      // batch and the per-path figures, docs/stress-testing.md).
      PolicyRunReducer reducer(policy.info.name, o.months, k == 0, o.exact_band_paths);
      reducer.SetConstraints(policy.info.constraints);
      std::optional<BandAccumulator> bands;
      if (!o.metric_bands_dir.empty() && root) bands.emplace(o.months, o.exact_band_paths);
      const auto reduce = [&](const PathBlock& block) {
        reducer.Add(block);
        if (bands) bands->Add(block);
      };
      PolicyRun run;
      if (distributed) {
        run = RunShardedPolicy(c, policy, mc, reduce, *o.group);
        if (!root) continue;
      } else {
        mc.sink = reduce;
        run = RunPolicyMonteCarlo(c, &policy, mc);
      }
      if (bands) {
        const fs::path dir = fs::path(o.metric_bands_dir) / SafeFileName(sr.name);
        fs::create_directories(dir);
        bands->Write((dir / (SafeFileName(policy.info.name) + ".csv")).string());
      }
      progress.done = before + static_cast<int64_t>(o.paths) * o.months;
      sr.results.push_back(reducer.Finish(run));
      if (!run.group_outcomes.empty()) {
        PolicyScenarioResult& pr = sr.results.back();
        pr.fairness =
            BuildFairness(run.group_outcomes, *groups, pr.per_path.at("cumulative_net_income"));
        if (k > 0 && sr.results[0].fairness) PairFairness(*sr.results[0].fairness, &*pr.fairness);
      }
      report.loan_months += sr.results.back().loan_months;
      report.instance_months += static_cast<int64_t>(o.paths) * o.months;
      if (k == 0) {
        sr.macro = reducer.MacroBands();
        first_macro_digest = reducer.macro_digest();
      } else if (reducer.macro_digest() != first_macro_digest) {
        sr.macro_paths_identical = false;
      }
    }
    if (!root) continue;
    CompareToFirst(sr, o.seed);
    report.scenarios.push_back(std::move(sr));
  }
  report.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return report;
}

}  // namespace loantwin
