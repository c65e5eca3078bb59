// `loantwin monitor`: drift of a deployed policy's requests and decisions (the decision
// engine's audit log) from the distribution it acts on in the twin (docs/digital-twin.md).

#include <fmt/format.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/atomic_file.h"
#include "training/monitor.h"

namespace loantwin::cli {
namespace {

std::string Markdown(const MonitorResult& r, const MonitorOptions& o) {
  const MonitorThresholds& t = o.thresholds;
  std::string md = fmt::format(
      "Drift of {} against {} ({} scenarios x {} paths x {} months, seed {}): **{}**\n\n"
      "Thresholds (warn / alert): feature PSI {:.2f} / {:.2f}, share outside the reference "
      "range {:.0f}% / {:.0f}%, decision-mix total variation {:.2f} / {:.2f}. Audit lines of "
      "other routes: {}.\n",
      o.audit_log, o.reference, o.scenarios.size(), o.paths, o.months, o.seed, r.level, t.psi_warn,
      t.psi_alert, 100 * t.outside_warn, 100 * t.outside_alert, t.mix_warn, t.mix_alert,
      r.skipped_lines);
  for (const auto& d : r.roles) {
    md += fmt::format(
        "\n## {}: {}\n\n{} requests against {} reference decisions; {:.1f}% of requests have a "
        "feature outside the reference range.\n\n"
        "| feature | PSI | outside | reference mean | live mean | reference range | level |\n"
        "|---|---|---|---|---|---|---|\n",
        d.role, d.level, d.live_rows, d.reference_rows, 100 * d.outside_any);
    for (const auto& f : d.features)
      if (f.level != "ok" || f.psi >= 0.05)
        md += fmt::format("| {} | {:.3f} | {:.1f}% | {:.4g} | {:.4g} | [{:.4g}, {:.4g}] | {} |\n",
                          f.name, f.psi, 100 * f.outside, f.ref_mean, f.live_mean, f.ref_min,
                          f.ref_max, f.level);
    int quiet = 0;
    for (const auto& f : d.features) quiet += f.level == "ok" && f.psi < 0.05;
    md += fmt::format("\n{} more features with PSI < 0.05 and none outside the range.\n\n", quiet);
    md += "| action component | total variation | level |\n|---|---|---|\n";
    for (const auto& a : d.actions)
      md += fmt::format("| {} | {:.3f} | {} |\n", a.name, a.tv, a.level);
  }
  return md;
}

nlohmann::json Json(const MonitorResult& r, const MonitorOptions& o) {
  nlohmann::json j;
  j["audit_log"] = o.audit_log;
  j["reference"] = o.reference;
  j["level"] = r.level;
  j["skipped_lines"] = r.skipped_lines;
  const MonitorThresholds& t = o.thresholds;
  j["thresholds"] = {{"psi", {t.psi_warn, t.psi_alert}},
                     {"outside", {t.outside_warn, t.outside_alert}},
                     {"mix", {t.mix_warn, t.mix_alert}}};
  for (const auto& d : r.roles) {
    nlohmann::json role = {{"role", d.role},
                           {"level", d.level},
                           {"requests", d.live_rows},
                           {"reference_rows", d.reference_rows},
                           {"outside_any", d.outside_any}};
    for (const auto& f : d.features)
      role["features"].push_back({{"name", f.name},
                                  {"psi", f.psi},
                                  {"outside", f.outside},
                                  {"reference_range", {f.ref_min, f.ref_max}},
                                  {"reference_mean", f.ref_mean},
                                  {"live_mean", f.live_mean},
                                  {"level", f.level}});
    for (const auto& a : d.actions)
      role["actions"].push_back({{"name", a.name},
                                 {"reference", a.reference},
                                 {"live", a.live},
                                 {"total_variation", a.tv},
                                 {"level", a.level}});
    j["roles"].push_back(role);
  }
  return j;
}

}  // namespace

Runner RegisterMonitor(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "monitor",
      "Compare a served policy's audit log with the distribution it acts on in the twin "
      "(exit 4 on an alert)");
  auto o = std::make_shared<MonitorOptions>();
  auto out = std::make_shared<std::string>();
  auto fail_on = std::make_shared<std::string>("alert");
  cmd->add_option("--audit-log", o->audit_log, "the decision engine's audit log")->required();
  cmd->add_option("--reference", o->reference, "the policy: a run or export directory")->required();
  cmd->add_option("--out", *out, "report directory (report.md, report.json)")->required();
  cmd->add_option("--institution", o->institution,
                  "institution of the reference (default: the "
                  "policy's)");
  cmd->add_option("--scenarios", o->scenarios, "scenarios of the reference")->capture_default_str();
  cmd->add_option("--paths", o->paths, "reference paths per scenario")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--months", o->months, "reference months")
      ->check(CLI::Range(1, 600))
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "seed (>= 0)")->check(SeedValidator())->capture_default_str();
  cmd->add_option("--min-requests", o->min_requests, "fewer requests of a role: not judged")
      ->check(CLI::Range(1, 100000000))
      ->capture_default_str();
  auto& t = o->thresholds;
  cmd->add_option("--psi-warn", t.psi_warn)->check(CLI::Range(0.0, 100.0))->capture_default_str();
  cmd->add_option("--psi-alert", t.psi_alert)->check(CLI::Range(0.0, 100.0))->capture_default_str();
  cmd->add_option("--outside-warn", t.outside_warn)
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--outside-alert", t.outside_alert)
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--mix-warn", t.mix_warn)->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd->add_option("--mix-alert", t.mix_alert)->check(CLI::Range(0.0, 1.0))->capture_default_str();
  cmd->add_option("--fail-on", *fail_on, "exit 4 from this level on")
      ->check(CLI::IsMember({"alert", "warn"}))
      ->capture_default_str();
  return [o, out, fail_on]() -> int {
    const MonitorThresholds& th = o->thresholds;
    if (th.psi_warn > th.psi_alert || th.outside_warn > th.outside_alert ||
        th.mix_warn > th.mix_alert)
      throw std::invalid_argument("each --*-warn threshold must not exceed its --*-alert");
    const MonitorResult r = RunMonitor(*o);
    namespace fs = std::filesystem;
    fs::create_directories(*out);
    const std::string md = "# Drift monitor\n\n" + Markdown(r, *o);
    WriteFileAtomically((fs::path(*out) / "report.md").string(),
                        [&](std::ostream& os) { os << md; });
    WriteFileAtomically((fs::path(*out) / "report.json").string(),
                        [&](std::ostream& os) { os << Json(r, *o).dump(2) << '\n'; });
    fmt::print("{}\nwrote {}/report.md, report.json\n", Markdown(r, *o), *out);
    const bool crossed = r.level == "alert" || (*fail_on == "warn" && r.level == "warn");
    return crossed ? 4 : 0;
  };
}

}  // namespace loantwin::cli
