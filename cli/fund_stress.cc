// The fund's stress report and frontier (cli/fund_stress.h).

#include "cli/fund_stress.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "agents/export_manifest.h"
#include "cli/fund_cli.h"
#include "core/atomic_file.h"
#include "core/config_error.h"
#include "core/yaml_reader.h"
#include "env/twin/monte_carlo.h"
#include "report/frontier.h"
#include "report/gnuplot.h"
#include "report/render_util.h"
#include "training/checkpoint.h"
#include "training/experiment.h"
#include "training/trainer.h"

namespace fs = std::filesystem;

namespace loantwin::cli {
namespace {

std::pair<std::string, std::string> SplitLabel(const std::string& spec) {
  if (const auto eq = spec.find('='); eq != std::string::npos && eq > 0 &&
                                      spec.substr(0, eq).find('/') == std::string::npos &&
                                      spec.compare(0, 8, "weights:") != 0)
    return {spec.substr(0, eq), spec.substr(eq + 1)};
  return {"", spec};
}

/// One allocation policy: the equal-weight baseline, fixed weights, or a trained run.
class FundPolicy : public RoleDriver {
 public:
  std::string name, kind, source, checkpoint, checkpoint_sha256;
  std::map<std::string, std::string> roles;
  std::optional<FundEnvConfig> env_config;  ///< a run's
  std::vector<int> weights;                 ///< fixed weights (levels 0..3 per zone)
  std::unique_ptr<Trainer> trainer;

  bool Decides(int role) const override {
    if (trainer) return trainer->HasPolicy(role);
    return !weights.empty() && role == kFundPortfolioRole;
  }
  void Decide(int role, const float* obs, const uint8_t* masks, int n, int32_t* actions) override {
    if (trainer) {
      trainer->Decide(role, obs, masks, n, /*deterministic=*/true, actions);
      return;
    }
    const int zn = static_cast<int>(weights.size()), width = 4 * zn + 2, dims = zn + 1;
    for (int i = 0; i < n; ++i) {
      const uint8_t* m = masks + static_cast<size_t>(i) * width;
      int32_t* a = actions + static_cast<size_t>(i) * dims;
      for (int z = 0; z < zn; ++z) a[z] = m[4 * z + weights[z]] ? weights[z] : 0;
      a[zn] = m[4 * zn + 1] ? 1 : 0;
    }
  }
};

/// An export of a fund run (manifest.json): its TorchScript modules decide their roles.
std::unique_ptr<FundPolicy> LoadFundExport(const fs::path& dir, const std::string& label,
                                           const std::string& spec_in) {
  auto p = std::make_unique<FundPolicy>();
  const std::string manifest_file = (dir / "manifest.json").string();
  EnvOptions eo;
  HomeEquityFundEnv probe(eo, FundEnvConfig{});  // the layouts of the built-in fund's roles
  const ExportManifest manifest = LoadExportForEvaluation(dir.string(), "home_equity_fund", probe);
  for (const char* role : kFundRoleNames) p->roles[role] = "baseline";
  for (const auto& [role, entry] : manifest.roles) p->roles[role] = "export:" + entry.algorithm;
  const std::string yaml =
      FrozenExportExperimentYaml(manifest, dir.string(), "fund-export", "home_equity_fund");
  p->trainer = std::make_unique<Trainer>(
      ExperimentConfig::Parse(YamlValue::LoadString(yaml, manifest_file)));
  p->name = label.empty() ? dir.filename().string() : label;
  if (p->name.empty()) p->name = dir.parent_path().filename().string();
  p->kind = "export";
  p->source = dir.string();
  p->checkpoint = manifest.checkpoint;
  return p;
}

std::unique_ptr<FundPolicy> LoadFundPolicy(const std::string& spec_in) {
  auto [label, spec] = SplitLabel(spec_in);
  auto p = std::make_unique<FundPolicy>();
  p->source = spec;
  if (spec == "baseline") {
    p->name = label.empty() ? "baseline" : label;
    p->kind = "baseline";
    p->source = "built-in";
    p->roles = {{"risk", "baseline"}, {"portfolio", "baseline (equal weight)"}};
    return p;
  }
  if (spec.compare(0, 8, "weights:") == 0) {
    const std::string list = spec.substr(8);
    std::stringstream ss(list);
    for (std::string item; std::getline(ss, item, ',');) {
      if (item.size() != 1 || item[0] < '0' || item[0] > '3')
        throw std::invalid_argument(fmt::format(
            "policy '{}': weights are levels 0, 1, 2 or 3 per zone, comma-separated (got '{}')",
            spec_in, item));
      p->weights.push_back(item[0] - '0');
    }
    if (p->weights.empty())
      throw std::invalid_argument(fmt::format("policy '{}': no weights given", spec_in));
    p->name = label.empty() ? spec : label;
    p->kind = "weights";
    p->source = "built-in";
    p->roles = {{"risk", "baseline"}, {"portfolio", "fixed weights " + list}};
    return p;
  }
  const fs::path dir(spec);
  if (fs::is_regular_file(dir / "manifest.json")) return LoadFundExport(dir, label, spec_in);
  if (!fs::is_regular_file(dir / "config.yaml"))
    throw std::invalid_argument(fmt::format(
        "policy '{}': give 'baseline', 'weights:<levels>' or a home_equity_fund run directory "
        "(config.yaml + checkpoints/)",
        spec_in));
  const ExperimentConfig config = ExperimentConfig::Load((dir / "config.yaml").string());
  if (config.env_name != "home_equity_fund")
    throw std::invalid_argument(fmt::format(
        "policy '{}': a run of environment '{}', not home_equity_fund (fund and twin policies "
        "are evaluated separately)",
        spec_in, config.env_name));
  p->trainer = std::make_unique<Trainer>(config);
  p->checkpoint = LoadLatestCheckpoint(*p->trainer, dir.string(), "evaluate");
  p->checkpoint_sha256 = FileSha256(p->checkpoint);
  p->env_config = config.env_config ? FundEnvConfig::Parse(*config.env_config) : FundEnvConfig{};
  p->name = label.empty() ? dir.filename().string() : label;
  if (p->name.empty()) p->name = dir.parent_path().filename().string();
  p->kind = "run";
  for (const char* role : kFundRoleNames) {
    const auto it = config.roles.find(role);
    p->roles[role] = it == config.roles.end() ? "baseline" : it->second.agent;
  }
  return p;
}

std::vector<std::unique_ptr<FundPolicy>> LoadFundPolicies(std::vector<std::string> specs,
                                                          bool with_baseline) {
  const bool has_baseline = std::any_of(specs.begin(), specs.end(), [](const std::string& s) {
    return SplitLabel(s).second == "baseline";
  });
  if (with_baseline && !has_baseline) specs.insert(specs.begin(), "baseline");
  std::vector<std::unique_ptr<FundPolicy>> out;
  std::set<std::string> names;
  for (const auto& s : specs) {
    out.push_back(LoadFundPolicy(s));
    if (!names.insert(out.back()->name).second)
      throw std::invalid_argument(
          fmt::format("two policies are named '{}': label them (label=spec)", out.back()->name));
  }
  return out;
}

/// The fund every policy runs: --fund-config, else the first run's, else the built-in one.
FundEnvConfig ReportFund(const std::vector<std::unique_ptr<FundPolicy>>& policies,
                         const std::string& fund_config) {
  std::optional<FundEnvConfig> fund;
  if (!fund_config.empty()) fund = LoadFundConfig(fund_config);
  for (const auto& p : policies) {
    if (!p->env_config) continue;
    if (!fund) {
      fund = *p->env_config;
      continue;
    }
    YAML::Emitter a, b;
    a << YAML::BeginMap, b << YAML::BeginMap;
    fund->fund.EmitYaml(&a), p->env_config->fund.EmitYaml(&b);
    a << YAML::EndMap, b << YAML::EndMap;
    if (std::string(a.c_str()) != b.c_str())
      spdlog::warn("{} was trained on another fund; it is evaluated on the report's fund", p->name);
  }
  FundEnvConfig f = fund ? *fund : FundEnvConfig{};
  for (const auto& p : policies)
    if (!p->weights.empty() && static_cast<int>(p->weights.size()) != f.fund.zones.size())
      throw std::invalid_argument(
          fmt::format("policy '{}': {} weights for the fund's {} zones ({})", p->name,
                      p->weights.size(), f.fund.zones.size(), [&] {
                        std::string s;
                        for (const auto& z : f.fund.zones.zones)
                          s += (s.empty() ? "" : ", ") + z.name;
                        return s;
                      }()));
  return f;
}

struct FundStats {
  double lp_irr_mean = 0, lp_irr_p05 = 0, lp_irr_p50 = 0, lp_irr_p95 = 0, var95 = 0, es95 = 0;
  double lp_multiple_p50 = 0, gp_irr_p50 = 0, equity_irr_mean = 0, equity_irr_p50 = 0;
  double senior_irr_p50 = 0, mezzanine_irr_p50 = 0, senior_impaired = 0, mezzanine_impaired = 0;
  double breached = 0, breach_months = 0, oc_fail = 0, default_losses = 0, fees = 0;
  double gp_promote = 0, max_leverage_p95 = 0;
};

double Finite(double x) {
  return std::isfinite(x) ? x : -1.0;
}

FundStats Summarise(const FundRun& run) {
  FundStats s;
  std::vector<double> lp, eq, mult, gp, sen, mez, lev;
  const double n = std::max(1, run.paths);
  for (const auto& r : run.results) {
    lp.push_back(Finite(r.lp_irr)), eq.push_back(Finite(r.equity_irr));
    mult.push_back(std::isfinite(r.lp_multiple) ? r.lp_multiple : 0.0);
    gp.push_back(Finite(r.gp_irr)), sen.push_back(Finite(r.senior_irr));
    mez.push_back(Finite(r.mezzanine_irr)), lev.push_back(r.max_leverage);
    s.lp_irr_mean += lp.back() / n, s.equity_irr_mean += eq.back() / n;
    s.senior_impaired += (r.senior_loss > 1) / n,
        s.mezzanine_impaired += (r.mezzanine_loss > 1) / n;
    s.breached += (r.breach_months > 0) / n, s.breach_months += r.breach_months / n;
    s.oc_fail += (r.oc_fail_months > 0) / n, s.default_losses += r.default_losses / n;
    s.fees += r.fees / n, s.gp_promote += r.gp_promote / n;
  }
  s.lp_irr_p05 = Quantile(lp, 0.05), s.lp_irr_p50 = Quantile(lp, 0.5);
  s.lp_irr_p95 = Quantile(lp, 0.95);
  const TailRisk t = ReturnTail(lp, 0.95);
  s.var95 = t.var, s.es95 = t.es;
  s.lp_multiple_p50 = Quantile(mult, 0.5), s.gp_irr_p50 = Quantile(gp, 0.5);
  s.equity_irr_p50 = Quantile(eq, 0.5), s.senior_irr_p50 = Quantile(sen, 0.5);
  s.mezzanine_irr_p50 = Quantile(mez, 0.5), s.max_leverage_p95 = Quantile(lev, 0.95);
  return s;
}

/// Paired difference (policy - baseline) across the same paths: mean and 95% interval.
struct Paired {
  double mean = 0, lo = 0, hi = 0;
};
Paired PairedDiff(const FundRun& a, const FundRun& b, double FundPathResult::*f) {
  const int n = std::min(a.paths, b.paths);
  double s = 0, s2 = 0;
  for (int i = 0; i < n; ++i) {
    const double d = Finite(a.results[i].*f) - Finite(b.results[i].*f);
    s += d, s2 += d * d;
  }
  Paired p;
  p.mean = s / std::max(1, n);
  const double sd = n > 1 ? std::sqrt(std::max(0.0, (s2 - n * p.mean * p.mean) / (n - 1))) : 0;
  const double half = 1.96 * sd / std::sqrt(std::max(1, n));
  p.lo = p.mean - half, p.hi = p.mean + half;
  return p;
}

struct FundReport {
  Provenance provenance;
  int paths = 0;
  uint64_t seed = 0;
  std::vector<std::string> scenarios;
  std::vector<std::unique_ptr<FundPolicy>>* policies = nullptr;
  FundEnvConfig fund;
  std::vector<std::vector<FundRun>> runs;  ///< [scenario][policy]
  std::vector<std::vector<FundStats>> stats;
};

FundReport RunFundStress(std::vector<std::unique_ptr<FundPolicy>>& policies,
                         const std::vector<std::string>& scenarios, const FundEnvConfig& fund,
                         const StressArgs& args) {
  FundReport r;
  r.provenance = CurrentProvenance();
  r.paths = args.paths, r.seed = args.seed;
  r.scenarios = ResolveScenarios(scenarios);
  r.policies = &policies;
  r.fund = fund;
  FundMonteCarloOptions o;
  o.paths = args.paths;
  o.seed = args.seed;
  o.threads = args.threads > 0 ? args.threads
                               : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  if (args.batch > 0) o.batch = args.batch;
  for (const auto& s : r.scenarios) {
    FundEnvConfig c = fund;
    c.scenario = s;
    c.scenarios.clear();
    r.runs.emplace_back();
    r.stats.emplace_back();
    for (auto& p : policies) {
      spdlog::info("{} under {}: {} paths", p->name, s, args.paths);
      r.runs.back().push_back(RunFundMonteCarlo(c, FallbackPolicy::kBaseline, o, p.get()));
      r.stats.back().push_back(Summarise(r.runs.back().back()));
    }
  }
  return r;
}

std::string Pct(double x) {
  return fmt::format("{:.2f}%", 100 * x);
}

/// A table rendered both as Markdown and HTML.
struct Table {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::string Markdown() const {
    std::string s = "|";
    for (const auto& h : header) s += " " + h + " |";
    s += "\n|";
    for (size_t i = 0; i < header.size(); ++i) s += i == 0 ? "---|" : "---:|";
    s += "\n";
    for (const auto& r : rows) {
      s += "|";
      for (const auto& c : r) s += " " + c + " |";
      s += "\n";
    }
    return s;
  }
  std::string Html() const {
    std::string s = "<table><tr>";
    for (const auto& h : header) s += "<th>" + HtmlEscape(h) + "</th>";
    s += "</tr>\n";
    for (const auto& r : rows) {
      s += "<tr>";
      for (const auto& c : r) s += "<td>" + HtmlEscape(c) + "</td>";
      s += "</tr>\n";
    }
    return s + "</table>\n";
  }
};

Table ScenarioTable(const FundReport& r, size_t s) {
  Table t;
  t.header = {
      "policy",          "LP IRR mean",   "LP IRR p05 / p50 / p95", "VaR 95%",           "ES 95%",
      "LP multiple p50", "GP IRR p50",    "senior IRR p50",         "mezz. IRR p50",     "breached",
      "breach months",   "coverage fail", "notes impaired",         "default losses (M)"};
  for (size_t p = 0; p < r.policies->size(); ++p) {
    const FundStats& x = r.stats[s][p];
    t.rows.push_back({(*r.policies)[p]->name, Pct(x.lp_irr_mean),
                      Pct(x.lp_irr_p05) + " / " + Pct(x.lp_irr_p50) + " / " + Pct(x.lp_irr_p95),
                      Pct(x.var95), Pct(x.es95), fmt::format("{:.2f}x", x.lp_multiple_p50),
                      Pct(x.gp_irr_p50), Pct(x.senior_irr_p50), Pct(x.mezzanine_irr_p50),
                      Pct(x.breached), fmt::format("{:.2f}", x.breach_months), Pct(x.oc_fail),
                      Pct(x.senior_impaired) + " / " + Pct(x.mezzanine_impaired),
                      fmt::format("{:.3f}", x.default_losses * 1e-6)});
  }
  return t;
}

Table DifferenceTable(const FundReport& r, size_t s) {
  Table t;
  t.header = {"policy vs " + (*r.policies)[0]->name, "LP IRR (paired, 95% interval)",
              "equity IRR (paired)", "breached (share of paths)", "coverage fail"};
  const FundRun& base = r.runs[s][0];
  for (size_t p = 1; p < r.policies->size(); ++p) {
    const Paired lp = PairedDiff(r.runs[s][p], base, &FundPathResult::lp_irr);
    const Paired eq = PairedDiff(r.runs[s][p], base, &FundPathResult::equity_irr);
    t.rows.push_back(
        {(*r.policies)[p]->name,
         fmt::format("{:+.2f} pp [{:+.2f}, {:+.2f}]", 100 * lp.mean, 100 * lp.lo, 100 * lp.hi),
         fmt::format("{:+.2f} pp [{:+.2f}, {:+.2f}]", 100 * eq.mean, 100 * eq.lo, 100 * eq.hi),
         fmt::format("{:+.2f} pp", 100 * (r.stats[s][p].breached - r.stats[s][0].breached)),
         fmt::format("{:+.2f} pp", 100 * (r.stats[s][p].oc_fail - r.stats[s][0].oc_fail))});
  }
  return t;
}

Table ZoneTable(const FundReport& r, size_t s) {
  Table t;
  t.header = {"policy"};
  for (const auto& z : r.fund.fund.zones.zones) t.header.push_back(z.name);
  for (size_t p = 0; p < r.policies->size(); ++p) {
    const FundRun& run = r.runs[s][p];
    double total = 0;
    for (double x : run.zone_invested) total += x;
    std::vector<std::string> row = {(*r.policies)[p]->name};
    for (size_t z = 0; z < run.zones.size(); ++z)
      row.push_back(fmt::format("{:.0f}% / {:.3f}",
                                total > 0 ? 100 * run.zone_invested[z] / total : 0.0,
                                run.zone_losses[z] / run.paths * 1e-6));
    t.rows.push_back(row);
  }
  return t;
}

/// The verdict lines at the top: plainly, whether each policy breaches more than the baseline.
std::vector<std::string> Verdict(const FundReport& r) {
  std::vector<std::string> lines;
  const auto& ps = *r.policies;
  const size_t ns = r.scenarios.size();
  for (size_t p = 0; p < ps.size(); ++p) {
    double worst_es = 1e9, worst_breach = 0;
    std::string worst_es_s, worst_breach_s;
    for (size_t s = 0; s < ns; ++s) {
      if (r.stats[s][p].es95 < worst_es) worst_es = r.stats[s][p].es95, worst_es_s = r.scenarios[s];
      if (r.stats[s][p].breached >= worst_breach)
        worst_breach = r.stats[s][p].breached, worst_breach_s = r.scenarios[s];
    }
    std::string line = fmt::format(
        "**{}**: worst LP IRR tail ES 95% {} ({}); borrowing base breached on up to {} of paths "
        "({})",
        ps[p]->name, Pct(worst_es), worst_es_s, Pct(worst_breach), worst_breach_s);
    if (p > 0) {
      int better = 0, significant = 0, more_breaches = 0, more_oc = 0;
      std::string breach_list;
      for (size_t s = 0; s < ns; ++s) {
        const Paired d = PairedDiff(r.runs[s][p], r.runs[s][0], &FundPathResult::lp_irr);
        better += d.mean > 0, significant += d.lo > 0;
        if (r.stats[s][p].breached > r.stats[s][0].breached) {
          ++more_breaches;
          breach_list +=
              fmt::format("{}{} {} vs {}", breach_list.empty() ? "" : "; ", r.scenarios[s],
                          Pct(r.stats[s][p].breached), Pct(r.stats[s][0].breached));
        }
        more_oc += r.stats[s][p].oc_fail > r.stats[s][0].oc_fail;
      }
      line += fmt::format(
          ". Against {}: LP IRR higher in {} of {} scenarios ({} with the paired 95% interval "
          "above 0); MORE borrowing-base breaches in {} of {}{}; more coverage-test failures in "
          "{} of {}",
          ps[0]->name, better, ns, significant, more_breaches, ns,
          more_breaches ? " (" + breach_list + ")" : "", more_oc, ns);
    }
    lines.push_back(line + ".");
  }
  return lines;
}

nlohmann::json ReportJson(const FundReport& r) {
  nlohmann::json j;
  j["environment"] = "home_equity_fund";
  j["provenance"] = {{"generated_at", r.provenance.generated_at},
                     {"loantwin_version", r.provenance.loantwin_version},
                     {"source_revision", r.provenance.source_revision}};
  j["settings"] = {{"paths", r.paths}, {"seed", r.seed}, {"months", r.fund.fund.fund.term_months}};
  j["fund"] = r.fund.ToYaml();
  j["verdict"] = Verdict(r);
  for (const auto& p : *r.policies)
    j["policies"].push_back({{"name", p->name},
                             {"kind", p->kind},
                             {"source", p->source},
                             {"roles", p->roles},
                             {"checkpoint", p->checkpoint},
                             {"checkpoint_sha256", p->checkpoint_sha256}});
  for (size_t s = 0; s < r.scenarios.size(); ++s) {
    nlohmann::json sj;
    sj["name"] = r.scenarios[s];
    for (size_t p = 0; p < r.policies->size(); ++p) {
      const FundStats& x = r.stats[s][p];
      const FundRun& run = r.runs[s][p];
      nlohmann::json pj = {{"policy", (*r.policies)[p]->name},
                           {"lp_irr_mean", x.lp_irr_mean},
                           {"lp_irr_p05", x.lp_irr_p05},
                           {"lp_irr_p50", x.lp_irr_p50},
                           {"lp_irr_p95", x.lp_irr_p95},
                           {"lp_irr_var95", x.var95},
                           {"lp_irr_es95", x.es95},
                           {"lp_multiple_p50", x.lp_multiple_p50},
                           {"gp_irr_p50", x.gp_irr_p50},
                           {"equity_irr_mean", x.equity_irr_mean},
                           {"senior_irr_p50", x.senior_irr_p50},
                           {"mezzanine_irr_p50", x.mezzanine_irr_p50},
                           {"senior_impaired", x.senior_impaired},
                           {"mezzanine_impaired", x.mezzanine_impaired},
                           {"breached", x.breached},
                           {"breach_months_mean", x.breach_months},
                           {"oc_fail", x.oc_fail},
                           {"default_losses_mean", x.default_losses},
                           {"fees_mean", x.fees},
                           {"gp_promote_mean", x.gp_promote},
                           {"max_leverage_p95", x.max_leverage_p95}};
      std::vector<double> nav, dist;
      for (int m = 0; m < run.months; ++m) {
        nav.push_back(Quantile(run.nav[m], 0.5));
        double sum = 0;
        for (double v : run.lp_distributions[m]) sum += v;
        dist.push_back(sum / std::max(1, run.paths));
      }
      pj["nav_median"] = nav;
      pj["lp_distributions_mean"] = dist;
      for (size_t z = 0; z < run.zones.size(); ++z)
        pj["zones"].push_back({{"zone", run.zones[z]},
                               {"invested_mean", run.zone_invested[z] / run.paths},
                               {"defaulted_value_mean", run.zone_defaults[z] / run.paths},
                               {"loss_mean", run.zone_losses[z] / run.paths}});
      if (p > 0) {
        const Paired d = PairedDiff(run, r.runs[s][0], &FundPathResult::lp_irr);
        pj["lp_irr_vs_baseline"] = {{"mean", d.mean}, {"lo95", d.lo}, {"hi95", d.hi}};
      }
      sj["policies"].push_back(pj);
    }
    j["scenarios"].push_back(sj);
  }
  return j;
}

std::string ReportMarkdown(const FundReport& r, bool html) {
  std::string s;
  auto heading = [&](int level, const std::string& text) {
    s += html ? fmt::format("<h{0}>{1}</h{0}>\n", level, HtmlEscape(text))
              : std::string(level, '#') + " " + text + "\n\n";
  };
  auto para = [&](const std::string& text) {
    s += html ? "<p>" + HtmlEscape(text) + "</p>\n" : text + "\n\n";
  };
  if (html)
    s += "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>loantwin fund stress "
         "report</title><style>body{font-family:sans-serif;max-width:1200px;margin:auto}"
         "table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px "
         "6px;text-align:right}td:first-child,th:first-child{text-align:left}</style></head>"
         "<body>\n";
  heading(1, "Stress report: home_equity_fund");
  para(fmt::format(
      "{} paths x {} months per scenario and policy, seed {}, the same paths for every policy "
      "(common random numbers). {:.0f}M committed, {} zones. Generated {} by loantwin {} ({}).",
      r.paths, r.fund.fund.fund.term_months, r.seed, r.fund.fund.fund.commitment * 1e-6,
      r.fund.fund.zones.size(), r.provenance.generated_at, r.provenance.loantwin_version,
      r.provenance.source_revision));
  heading(2, "Verdict");
  for (const auto& line : Verdict(r)) para((html ? "" : "- ") + line);
  para(
      "IRRs are annualised; a path on which the LPs got nothing back counts as -100%. VaR and ES "
      "are of the LP IRR's low tail (the 5% quantile and the mean below it). 'breached': the "
      "share of paths on which the facility's borrowing-base test failed in some month (each "
      "failure sweeps the cash); 'coverage fail': a note's overcollateralisation test failed; "
      "'notes impaired': senior / mezzanine principal not repaid at the end.");
  for (size_t sc = 0; sc < r.scenarios.size(); ++sc) {
    heading(2, "Scenario: " + r.scenarios[sc]);
    const Table t = ScenarioTable(r, sc);
    s += html ? t.Html() : t.Markdown() + "\n";
    if (r.policies->size() > 1) {
      const Table d = DifferenceTable(r, sc);
      s += html ? d.Html() : d.Markdown() + "\n";
    }
    para("Invested share / loss (millions, mean a path) by zone:");
    const Table z = ZoneTable(r, sc);
    s += html ? z.Html() : z.Markdown() + "\n";
  }
  if (html) s += "</body></html>\n";
  return s;
}

void PrintConsole(const FundReport& r) {
  fmt::print("\nhome_equity_fund stress: {} paths x {} months, seed {}\n", r.paths,
             r.fund.fund.fund.term_months, r.seed);
  for (const auto& line : Verdict(r)) {
    std::string plain = line;
    for (size_t k; (k = plain.find("**")) != std::string::npos;) plain.erase(k, 2);
    fmt::print("  {}\n", plain);
  }
  fmt::print("{:<22} {:<26} {:>9} {:>9} {:>9} {:>9} {:>9}\n", "scenario", "policy", "LP IRR",
             "ES 95%", "breached", "cov.fail", "senior");
  for (size_t s = 0; s < r.scenarios.size(); ++s)
    for (size_t p = 0; p < r.policies->size(); ++p) {
      const FundStats& x = r.stats[s][p];
      fmt::print("{:<22} {:<26} {:>9} {:>9} {:>9} {:>9} {:>9}\n", r.scenarios[s],
                 (*r.policies)[p]->name, Pct(x.lp_irr_mean), Pct(x.es95), Pct(x.breached),
                 Pct(x.oc_fail), Pct(x.senior_irr_p50));
    }
}

void WriteReport(const FundReport& r, const std::string& dir) {
  fs::create_directories(dir);
  WriteFileAtomically(dir + "/report.json",
                      [&](std::ostream& o) { o << ReportJson(r).dump(2) << "\n"; });
  WriteFileAtomically(dir + "/report.md", [&](std::ostream& o) { o << ReportMarkdown(r, false); });
  WriteFileAtomically(dir + "/report.html", [&](std::ostream& o) { o << ReportMarkdown(r, true); });
}

}  // namespace

bool IsFundPolicy(const std::string& spec_in) {
  const std::string spec = SplitLabel(spec_in).second;
  if (spec.compare(0, 8, "weights:") == 0) return true;
  std::error_code ec;
  if (fs::is_regular_file(fs::path(spec) / "manifest.json", ec)) {
    try {
      return ExportManifest::Load(spec).environment == "home_equity_fund";
    } catch (const std::exception&) {
      return false;  // the twin's loader reports the problem
    }
  }
  const fs::path config = fs::path(spec) / "config.yaml";
  if (!fs::is_regular_file(config, ec)) return false;
  try {
    return ExperimentConfig::Load(config.string()).env_name == "home_equity_fund";
  } catch (const std::exception&) {
    return false;  // the twin's loader reports the problem
  }
}

int RunFundEvaluate(const std::vector<std::string>& specs,
                    const std::vector<std::string>& scenarios, const std::string& fund_config,
                    bool with_baseline, const StressArgs& args, const std::string& out_in) {
  auto policies = LoadFundPolicies(specs, with_baseline);
  const FundEnvConfig fund = ReportFund(policies, fund_config);
  const FundReport r = RunFundStress(policies, scenarios, fund, args);
  PrintConsole(r);
  std::string out = out_in;
  if (out.empty()) {
    out = "stress-report";
    for (const auto& p : policies)
      if (p->kind == "run") {
        out = (fs::path(p->source) / "report").string();
        break;
      }
  }
  WriteReport(r, out);
  fmt::print("\nwrote {}/report.json, report.md, report.html\n", out);
  return 0;
}

const std::vector<std::string>& FundFrontierReturns() {
  static const std::vector<std::string> v = {"lp_irr", "equity_irr"};
  return v;
}
const std::vector<std::string>& FundFrontierRisks() {
  static const std::vector<std::string> v = {"lp_irr_es95", "breached", "oc_fail"};
  return v;
}

int RunFundFrontier(const std::vector<std::string>& specs, const std::string& scenario,
                    const std::string& fund_config, const std::string& return_metric,
                    const std::string& risk_metric, bool with_baseline, const StressArgs& args,
                    const std::string& out) {
  auto check = [](const std::string& v, const std::vector<std::string>& allowed, const char* what) {
    if (std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      throw std::invalid_argument(
          fmt::format("{} '{}' does not apply to the fund (choose {})", what, v, list));
    }
  };
  check(return_metric, FundFrontierReturns(), "--return");
  check(risk_metric, FundFrontierRisks(), "--risk");
  auto policies = LoadFundPolicies(specs, with_baseline);
  const FundEnvConfig fund = ReportFund(policies, fund_config);
  const FundReport r = RunFundStress(policies, {scenario}, fund, args);
  std::vector<std::pair<double, double>> points;
  for (const FundStats& x : r.stats[0]) {
    const double ret = return_metric == "lp_irr" ? x.lp_irr_mean : x.equity_irr_mean;
    const double risk = risk_metric == "lp_irr_es95" ? -x.es95
                        : risk_metric == "breached"  ? x.breached
                                                     : x.oc_fail;
    points.emplace_back(ret, risk);
  }
  const std::vector<bool> efficient = ParetoEfficient(points);
  const std::string risk_label =
      risk_metric == "lp_irr_es95" ? "loss at the LP IRR's 95% expected shortfall (-ES 95%)"
      : risk_metric == "breached"  ? "share of paths breaching the borrowing base"
                                   : "share of paths failing a coverage test";
  fmt::print("efficient frontier under {} ({} paths): return = mean {}, risk = {}\n",
             r.scenarios[0], r.paths, return_metric, risk_label);
  Table t;
  t.header = {"policy", "kind", "return", "risk", "efficient"};
  nlohmann::json j;
  j["environment"] = "home_equity_fund";
  j["scenario"] = r.scenarios[0];
  j["return_metric"] = return_metric;
  j["risk_metric"] = risk_metric;
  j["paths"] = r.paths;
  j["seed"] = r.seed;
  for (size_t p = 0; p < points.size(); ++p) {
    const auto& pol = *policies[p];
    fmt::print("  {:<28} {:<9} {:>10} {:>10}  {}\n", pol.name, pol.kind, Pct(points[p].first),
               Pct(points[p].second), efficient[p] ? "yes" : "no");
    t.rows.push_back({pol.name, pol.kind, Pct(points[p].first), Pct(points[p].second),
                      efficient[p] ? "yes" : "no"});
    j["points"].push_back({{"policy", pol.name},
                           {"kind", pol.kind},
                           {"return", points[p].first},
                           {"risk", points[p].second},
                           {"efficient", static_cast<bool>(efficient[p])}});
  }
  fs::create_directories(out);
  WriteFileAtomically(out + "/frontier.json", [&](std::ostream& o) { o << j.dump(2) << "\n"; });
  WriteFileAtomically(out + "/frontier.md", [&](std::ostream& o) {
    o << "# Frontier: home_equity_fund under " << r.scenarios[0] << "\n\n"
      << fmt::format(
             "{} paths, seed {}. Return: mean {}; risk: {}. A policy is efficient when no "
             "other has at least its return and at most its risk.\n\n",
             r.paths, r.seed, return_metric, risk_label)
      << t.Markdown();
  });
  std::string charts;
  if (!args.no_charts && GnuplotAvailable()) {
    std::string data;
    for (size_t p = 0; p < points.size(); ++p)
      data += fmt::format("{} {} \"{}\" {}\n", 100 * points[p].second, 100 * points[p].first,
                          policies[p]->name, efficient[p] ? 1 : 0);
    const std::string script = fmt::format(
        "set terminal svg size 800,560 dynamic enhanced font 'sans,11'\n"
        "set output 'frontier.svg'\nset title {}\nset xlabel {}\n"
        "set ylabel {}\nset grid\nunset key\nset offsets graph 0.1, graph 0.2, "
        "graph 0.1, graph 0.1\n"
        "plot 'points.dat' using 1:2:($4 > 0 ? 7 : 6) with points pointtype variable "
        "pointsize 1.5, '' using 1:2:3 with labels offset 0,1 font 'sans,9'\n",
        GnuplotQuote("home_equity_fund frontier under " + r.scenarios[0]),
        GnuplotQuote(risk_label + " (%)"), GnuplotQuote("mean " + return_metric + " (%)"));
    const std::string svg = RunGnuplot(script, {{"points.dat", data}}, "frontier.svg");
    WriteFileAtomically(out + "/frontier.svg", [&](std::ostream& o) { o << svg; });
    charts = ", frontier.svg";
  }
  WriteReport(r, out);
  fmt::print("wrote {}/frontier.json, frontier.md{} and report.*\n", out, charts);
  return 0;
}

}  // namespace loantwin::cli
