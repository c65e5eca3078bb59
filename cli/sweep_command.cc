// `loantwin sweep <sweep.yaml>`: trains a family of runs that differ in a few experiment keys
// (for example reward weights), then draws their efficient frontier (docs/stress-testing.md).

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "cli/commands.h"
#include "cli/stress_common.h"
#include "core/atomic_file.h"
#include "core/config_error.h"
#include "core/yaml_reader.h"
#include "report/frontier.h"
#include "training/checkpoint.h"
#include "training/experiment.h"

namespace fs = std::filesystem;

namespace loantwin::cli {

void RunFrontier(std::vector<std::string> specs, const std::string& scenario,
                 const std::string& return_metric, const std::string& risk_metric,
                 bool with_baseline, const StressArgs& args, const std::string& out);

namespace {

/// `key.path: value` overrides of the base experiment.
struct Override {
  std::string path;
  YAML::Node value;
  YamlValue where;
};

struct SweepRun {
  std::string name;
  std::vector<Override> set;
  YamlValue where;
};

struct Sweep {
  std::string file, name, base, out;
  std::vector<Override> set;  ///< every run
  std::vector<SweepRun> runs;
  bool frontier = false;
  std::string scenario = "severe_recession", return_metric = "cumulative_net_income",
              risk_metric = "es_975";
  StressArgs stress;
};

std::vector<Override> ReadOverrides(const YamlValue& v) {
  if (!v.IsMap()) v.Fail("expected a mapping of 'key.path: value' overrides");
  std::vector<Override> out;
  for (const auto& kv : v.node()) {
    const std::string key = kv.first.as<std::string>();
    if (key.empty() || key.front() == '.' || key.back() == '.' ||
        key.find("..") != std::string::npos)
      YamlValue(kv.first, v.file_ptr(), v.path()).Fail("bad key path '" + key + "'");
    out.push_back(
        {key, YAML::Clone(kv.second), YamlValue(kv.second, v.file_ptr(), v.path() + "." + key)});
  }
  return out;
}

Sweep ParseSweep(const std::string& file) {
  const YamlValue root = YamlValue::LoadFile(file);
  YamlMap m(root);
  Sweep s;
  s.file = file;
  s.name = m.Require("name").AsString();
  const YamlValue base = m.Require("base");
  s.base = base.AsString();
  if (fs::path(s.base).is_relative()) s.base = (fs::path(file).parent_path() / s.base).string();
  if (!fs::is_regular_file(s.base)) base.Fail("base experiment '" + s.base + "' does not exist");
  s.out = "runs/sweeps/" + s.name;
  s.stress.paths = 500;
  m.Read("out", &s.out);
  if (auto v = m.Get("set")) s.set = ReadOverrides(*v);
  const YamlValue runs = m.Require("runs");
  if (!runs.IsSequence() || runs.Items().empty()) runs.Fail("expected a non-empty list of runs");
  std::set<std::string> names;
  for (const YamlValue& item : runs.Items()) {
    YamlMap r(item);
    SweepRun run{r.Require("name").AsString(), {}, item};
    if (run.name.empty() || run.name.find('/') != std::string::npos ||
        run.name.find('=') != std::string::npos)
      item.Fail("run names must be non-empty without '/' or '='");
    if (!names.insert(run.name).second) item.Fail("duplicate run name '" + run.name + "'");
    if (auto v = r.Get("set")) run.set = ReadOverrides(*v);
    r.Done();
    s.runs.push_back(std::move(run));
  }
  if (auto f = m.Get("frontier")) {
    YamlMap fm(*f);
    s.frontier = true;
    fm.Read("scenario", &s.scenario);
    if (auto v = fm.Get("return")) s.return_metric = v->AsEnum({"cumulative_net_income", "roe"});
    if (auto v = fm.Get("risk")) s.risk_metric = v->AsEnum(FrontierRiskMetrics());
    fm.Read("paths", &s.stress.paths, 1, 1000000);
    fm.Read("months", &s.stress.months, 1, 1200);
    fm.Read("institution", &s.stress.institution);
    if (auto v = fm.Get("seed")) s.stress.seed = static_cast<uint64_t>(v->AsInt(0, INT64_MAX));
    fm.Done();
  }
  m.Done();
  return s;
}

/// Sets node[a][b][c] = value for path "a.b.c", creating mappings on the way.
void Apply(YAML::Node root, const Override& o) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t dot; (dot = o.path.find('.', start)) != std::string::npos; start = dot + 1)
    parts.push_back(o.path.substr(start, dot - start));
  parts.push_back(o.path.substr(start));
  YAML::Node node = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node child = node[parts[i]];
    if (child && !child.IsMap())
      o.where.Fail(fmt::format("'{}' in the base experiment is not a mapping", parts[i]));
    if (!child) node[parts[i]] = YAML::Node(YAML::NodeType::Map);
    node.reset(node[parts[i]]);
  }
  node[parts.back()] = o.value;
}

/// The run's experiment file, written and validated (errors name the override and the file).
ExperimentConfig PrepareRun(const Sweep& s, const SweepRun& run, const std::string& run_dir) {
  YAML::Node root = YAML::Clone(YAML::LoadFile(s.base));
  for (const auto& o : s.set) Apply(root, o);
  for (const auto& o : run.set) Apply(root, o);
  root["name"] = s.name + "-" + run.name;
  YAML::Emitter emitter;
  emitter << root;
  fs::create_directories(run_dir);
  const std::string file = run_dir + "/sweep_experiment.yaml";
  WriteFileAtomically(file, [&](std::ostream& out) {
    out << "# Generated by `loantwin sweep " << s.file << "`: " << s.base << " with the run '"
        << run.name << "' overrides.\n"
        << emitter.c_str() << "\n";
  });
  try {
    return ExperimentConfig::Load(file);
  } catch (const ConfigError& e) {
    throw ConfigError(fmt::format("{}: run '{}' (base {} with its overrides): {}",
                                  run.where.Where(), run.name, s.base, e.what()));
  }
}

}  // namespace

Runner RegisterSweep(CLI::App& app) {
  struct Args {
    std::string file, out;
    int64_t total_steps = 0;
    int threads = 0;
    bool no_frontier = false, no_charts = false;
    int paths = 0, months = 0;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "sweep", "Train the runs of a sweep YAML (e.g. reward weights), then draw their frontier");
  cmd->add_option("sweep", a->file, "sweep YAML (docs/stress-testing.md)")->required();
  cmd->add_option("--out", a->out, "sweep directory (overrides the file's 'out')");
  cmd->add_option("--total-steps", a->total_steps, "override every run's total_steps")
      ->check(CLI::Range(int64_t{1}, INT64_MAX));
  cmd->add_option("--threads", a->threads, "environment threads")->check(CLI::Range(1, 1024));
  cmd->add_flag("--no-frontier", a->no_frontier, "train only");
  cmd->add_flag("--no-charts", a->no_charts, "frontier without gnuplot charts");
  cmd->add_option("--paths", a->paths, "override the frontier's paths")
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--months", a->months, "override the frontier's months")
      ->check(CLI::Range(1, 1200));
  return [a] {
    Sweep s = ParseSweep(a->file);
    if (!a->out.empty()) s.out = a->out;
    // Validate every run before training any.
    std::vector<ExperimentConfig> configs;
    std::vector<std::string> dirs;
    for (const auto& run : s.runs) {
      dirs.push_back((fs::path(s.out) / run.name).string());
      configs.push_back(PrepareRun(s, run, dirs.back()));
      if (a->total_steps > 0) configs.back().total_steps = a->total_steps;
      if (a->threads > 0) configs.back().threads = a->threads;
      if (configs.back().env_name != "twin" && s.frontier && !a->no_frontier)
        throw ConfigError(
            fmt::format("{}: run '{}' is not a twin experiment; a frontier needs "
                        "the twin (or pass --no-frontier)",
                        run.where.Where(), run.name));
    }
    for (size_t i = 0; i < s.runs.size(); ++i) {
      CheckpointManager checkpoints(dirs[i] + "/checkpoints", 1000);
      const std::string latest = checkpoints.Latest();
      fmt::print("\n== sweep {}: run {}/{} '{}' -> {}{}\n", s.name, i + 1, s.runs.size(),
                 s.runs[i].name, dirs[i], latest.empty() ? "" : " (resuming)");
      TrainInto(configs[i], dirs[i], !latest.empty());
    }
    if (!s.frontier || a->no_frontier) return 0;
    StressArgs stress = s.stress;
    stress.no_charts = a->no_charts;
    if (a->paths > 0) stress.paths = a->paths;
    if (a->months > 0) stress.months = a->months;
    std::vector<std::string> specs;
    for (size_t i = 0; i < s.runs.size(); ++i) specs.push_back(s.runs[i].name + "=" + dirs[i]);
    fmt::print("\n== sweep {}: frontier under {}\n", s.name, s.scenario);
    RunFrontier(specs, s.scenario, s.return_metric, s.risk_metric, true, stress,
                (fs::path(s.out) / "frontier").string());
    return 0;
  };
}

}  // namespace loantwin::cli
