#include "report/stress_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/constraint_cost.h"
#include "core/version.h"
#include "env/twin/capital.h"
#include "env/twin/metrics.h"

namespace loantwin {

const std::vector<StressMetric>& StressMetrics() {
  static const std::vector<StressMetric> metrics = {
      {"cumulative_net_income", "cumulative net income", "currency", true,
       "net income summed over the horizon"},
      {"roe", "ROE (annualised)", "fraction", true,
       "cumulative net income x 12 / months / equity at the start (annualised return on "
       "starting equity)"},
      {"peak_charge_off_rate", "peak charge-off rate", "fraction", false,
       "highest trailing 3-month mean of the annualised net charge-off rate"},
      {"min_capital_ratio", "minimum capital ratio", "fraction", true,
       "lowest month-end capital ratio of the institution's regime (ncua: net worth / total "
       "assets; basel: CET1 / RWA)"},
      {"capital_trough_month", "month of the capital trough", "month", false,
       "first month (1-based) in which the capital ratio reaches its minimum (no better "
       "direction: differences are marked, not coloured)"},
      {"approval_rate", "approval rate", "fraction", true,
       "approvals / applications summed over the horizon"},
      {"final_equity", "final equity", "currency", true,
       "equity (net worth / CET1 capital) at the end"},
      {"min_capital_ratio_9q", "minimum capital ratio, quarters 1-9", "fraction", true,
       "DFAST-style: lowest quarter-end capital ratio over the first nine quarters (months 3, "
       "6, ..., 27, or the quarter-ends within a shorter horizon)"},
      {"cumulative_loss_rate_9q", "cumulative loss rate, quarters 1-9", "fraction", false,
       "DFAST-style: net charge-offs and losses on foreclosed collateral over the first 27 "
       "months, as a share of the average month-end loan balance over those months (not "
       "annualised)"},
  };
  return metrics;
}

const std::vector<std::pair<std::string, int>>& BandSeries() {
  static const std::vector<std::pair<std::string, int>> s = {
      {"capital_ratio", kCapitalRatio},
      {"charge_off_rate", kChargeOffRate},
      {"cumulative_net_income", -1},  // running sum of net_income
  };
  return s;
}

const std::vector<std::pair<std::string, int>>& MacroSeries() {
  static const std::vector<std::pair<std::string, int>> s = {
      {"unemployment", kUnemployment},
      {"gdp_growth", kGdpGrowth},
      {"policy_rate", kPolicyRate},
      {"rate_10y", kRate10y},
      {"hpi", kHpi},
      {"credit_spread", kCreditSpread},
  };
  return s;
}

namespace {

double Es975(const std::vector<double>& pnl) {
  return ExpectedShortfall(pnl, kEsLevel);
}
double Var99(const std::vector<double>& pnl) {
  return ValueAtRisk(pnl, kVarLevel);
}

}  // namespace

BandSketch::BandSketch(int months, size_t exact_paths)
    : cells(static_cast<size_t>(months), QuantileSketch(exact_paths)),
      sums(static_cast<size_t>(months), 0.0) {}

void BandSketch::Add(int month_index, double value) {
  cells[month_index].Add(value);
  sums[month_index] += value;
}

Band BandSketch::ToBand() const {
  Band b;
  for (size_t m = 0; m < cells.size(); ++m) {
    b.p05.push_back(cells[m].Quantile(0.05));
    b.p50.push_back(cells[m].Quantile(0.5));
    b.p95.push_back(cells[m].Quantile(0.95));
    b.mean.push_back(sums[m] / static_cast<double>(cells[m].count()));
  }
  return b;
}

void PolicyRunReducer::SetConstraints(std::vector<PolicyConstraint> constraints) {
  constraint_specs_ = std::move(constraints);
  constraint_cost_.assign(constraint_specs_.size(), 0.0);
  constraint_over_.assign(constraint_specs_.size(), 0);
  constraint_bad_.assign(constraint_specs_.size(), 0);
}

namespace {

/// A constraint's metric in one month's row (max_product_share derived from the products).
double ConstraintMetric(const PolicyConstraint& c, const double* row) {
  return c.column >= 0 ? row[c.column] : MaxProductShare(row);
}

}  // namespace

PolicyRunReducer::PolicyRunReducer(std::string policy, int months, bool macro, size_t exact_paths)
    : months_(months), macro_(macro) {
  r_.policy = std::move(policy);
  bands_.assign(BandSeries().size(), BandSketch(months, exact_paths));
  if (macro_) macro_bands_.assign(MacroSeries().size(), BandSketch(months, exact_paths));
}

void PolicyRunReducer::Add(const PathBlock& b) {
  if (b.months != months_)
    throw std::invalid_argument(
        fmt::format("PolicyRunReducer: a block of {} months for {} months", b.months, months_));
  if (b.first_path != r_.paths)
    throw std::invalid_argument(fmt::format(
        "PolicyRunReducer: block starts at path {}, expected {}", b.first_path, r_.paths));
  const auto& series = BandSeries();
  const auto& macro_series = MacroSeries();
  for (int p = 0; p < b.count; ++p) {
    double ni = 0, apps = 0, approvals = 0, peak_co = -1e300, min_capital = 1e300;
    int trough = 1;
    bool under = false, below_well = false, short_of_cash = false;
    // The DFAST nine-quarter window: months 1..27 (quarter-ends 3, 6, ..., 27).
    double min_capital_9q = 1e300, losses_9q = 0, balance_9q = 0;
    int months_9q = 0;
    for (int m = 0; m < months_; ++m) {
      const double* row = b.row(p, m);
      if (m < 27) {
        losses_9q += row[kNetChargeOffs] + row[kForeclosedLosses];
        balance_9q += row[kLoanBalance];
        ++months_9q;
        if ((m + 1) % 3 == 0) min_capital_9q = std::min(min_capital_9q, row[kCapitalRatio]);
      }
      ni += row[kNetIncome];
      apps += row[kApplications];
      approvals += row[kApprovals];
      double co = 0;
      int k = 0;
      for (int j = std::max(0, m - 2); j <= m; ++j, ++k) co += b.at(p, j, kChargeOffRate);
      peak_co = std::max(peak_co, co / k);
      const double capital = row[kCapitalRatio];
      if (capital < min_capital) min_capital = capital, trough = m + 1;
      under |= row[kCapitalCategory] >= kUndercapitalised;
      below_well |= row[kCapitalCategory] > kWellCapitalised;
      short_of_cash |= row[kLiquidityShortfall] > 0;
      r_.loan_months += row[kLoans];
      for (size_t s = 0; s < series.size(); ++s)
        bands_[s].Add(m, series[s].second < 0 ? ni : row[series[s].second]);
      for (size_t s = 0; s < macro_bands_.size(); ++s)
        macro_bands_[s].Add(m, row[macro_series[s].second]);
      for (const auto& [name, column] : macro_series)
        macro_digest_.Update(
            std::string_view(reinterpret_cast<const char*>(&row[column]), sizeof(double)));
    }
    const double equity0 = b.at(p, 0, kEquity) - b.at(p, 0, kNetIncome);
    per_path_["cumulative_net_income"].push_back(ni);
    per_path_["roe"].push_back(equity0 > 0 ? ni * 12.0 / months_ / equity0 : 0.0);
    per_path_["peak_charge_off_rate"].push_back(peak_co);
    per_path_["min_capital_ratio"].push_back(min_capital);
    per_path_["capital_trough_month"].push_back(trough);
    per_path_["approval_rate"].push_back(apps > 0 ? approvals / apps : 0.0);
    per_path_["final_equity"].push_back(b.at(p, months_ - 1, kEquity));
    // The policy's own constraints, costed month by month as in training.
    for (size_t k = 0; k < constraint_specs_.size(); ++k) {
      const PolicyConstraint& c = constraint_specs_[k];
      double cost = 0, weight = 1;
      for (int m = 0; m < months_; ++m) {
        const auto [step, violated] =
            ConstraintStepCost(ConstraintMetric(c, b.row(p, m)), c.min, c.max, c.indicator);
        cost += weight * step;
        weight *= c.discount;
        constraint_bad_[k] += violated;
      }
      constraint_cost_[k] += cost;
      constraint_over_[k] += cost > c.limit;
    }
    if (min_capital_9q > 1e299) min_capital_9q = min_capital;  // horizon under one quarter
    per_path_["min_capital_ratio_9q"].push_back(min_capital_9q);
    per_path_["cumulative_loss_rate_9q"].push_back(
        balance_9q > 0 ? losses_9q / (balance_9q / months_9q) : 0.0);
    r_.paths_undercapitalised += under;
    r_.paths_below_well_capitalised += below_well;
    r_.paths_liquidity_shortfall += short_of_cash;
    r_.path_flags["breach_minimum"].push_back(under);
    r_.path_flags["breach_buffer"].push_back(below_well);
    r_.path_flags["liquidity_shortfall"].push_back(short_of_cash);
    ++r_.paths;
  }
}

PolicyScenarioResult PolicyRunReducer::Finish(const PolicyRun& run) {
  PolicyScenarioResult r = std::move(r_);
  if (static_cast<int>(run.failed_month.size()) != r.paths)
    throw std::invalid_argument(fmt::format("PolicyRunReducer: {} paths reduced, the run has {}",
                                            r.paths, run.failed_month.size()));
  for (const auto& m : StressMetrics()) r.per_path[m.key] = std::move(per_path_[m.key]);
  std::vector<double>& failed = r.path_flags["failed"];
  for (int p = 0; p < r.paths; ++p) {
    r.paths_failed += run.failed_month[p] > 0;
    failed.push_back(run.failed_month[p] > 0);
    if (!run.invariant_breaches.empty() && run.invariant_breaches[p] > 0) {
      if (r.paths_with_invariant_breaches++ == 0)
        r.first_invariant_breach = run.first_invariant_breach[p];
    }
  }
  for (size_t k = 0; k < constraint_specs_.size(); ++k) {
    ConstraintOutcome o;
    o.name = constraint_specs_[k].name;
    o.limit = constraint_specs_[k].limit;
    o.mean_cost = r.paths > 0 ? constraint_cost_[k] / r.paths : 0.0;
    o.paths_over_limit = static_cast<int>(constraint_over_[k]);
    o.violation_rate =
        r.paths > 0 ? static_cast<double>(constraint_bad_[k]) / (double(r.paths) * months_) : 0.0;
    r.constraints.push_back(o);
  }
  for (size_t g = 0; g < run.guardrail_names.size() && g < run.guardrail_counts.size(); ++g) {
    const auto& c = run.guardrail_counts[g];
    r.guardrail_fired_rate.emplace_back(
        run.guardrail_names[g], c.decisions > 0 ? static_cast<double>(c.fired) / c.decisions : 0.0);
  }
  for (const auto& [key, values] : r.per_path) r.metrics[key] = Describe(values);
  r.var_99 = Var99(r.per_path["cumulative_net_income"]);
  r.es_975 = Es975(r.per_path["cumulative_net_income"]);
  for (size_t i = 0; i < run.rewards.roles.size(); ++i) {
    r.role_return_paths[run.rewards.roles[i]] = run.rewards.returns[i];
    r.role_returns[run.rewards.roles[i]] = Describe(run.rewards.returns[i]);
  }
  const auto& series = BandSeries();
  for (size_t s = 0; s < series.size(); ++s) r.bands[series[s].first] = bands_[s].ToBand();
  macro_digest_hex_ = macro_digest_.FinalHex();
  return r;
}

std::map<std::string, Band> PolicyRunReducer::MacroBands() const {
  std::map<std::string, Band> out;
  const auto& series = MacroSeries();
  for (size_t s = 0; s < macro_bands_.size(); ++s) out[series[s].first] = macro_bands_[s].ToBand();
  return out;
}

PolicyScenarioResult ReducePolicyRun(const std::string& policy, const PolicyRun& run) {
  PolicyRunReducer reducer(policy, run.paths.months, false,
                           static_cast<size_t>(std::max(1, run.paths.paths)));
  reducer.Add(WholeSet(run.paths));
  return reducer.Finish(run);
}

const std::vector<std::pair<std::string, std::string>>& BreachFlags() {
  static const std::vector<std::pair<std::string, std::string>> flags = {
      {"breach_minimum", "paths below the regime's minimum"},
      {"failed", "paths failed"},
      {"liquidity_shortfall", "paths short of liquidity"},
      {"breach_buffer", "paths below minimum + buffer (well capitalised)"},
  };
  return flags;
}

Verdict JudgeResult(const PolicyScenarioResult& r) {
  Verdict v;
  if (r.paths_undercapitalised > 0)
    v.reasons.push_back(
        fmt::format("{} of {} paths below the minimum", r.paths_undercapitalised, r.paths));
  if (r.paths_failed > 0)
    v.reasons.push_back(fmt::format("{} of {} paths failed", r.paths_failed, r.paths));
  if (r.paths_liquidity_shortfall > 0)
    v.reasons.push_back(
        fmt::format("{} of {} paths short of liquidity", r.paths_liquidity_shortfall, r.paths));
  for (const ConstraintOutcome& c : r.constraints)
    if (!c.pass())
      v.reasons.push_back(fmt::format(
          "constraint {}: mean cost {:.4g} over the horizon above its limit {:.4g} ({} of {} paths "
          "over)",
          c.name, c.mean_cost, c.limit, c.paths_over_limit, r.paths));
  v.pass = v.reasons.empty();
  for (const auto& [flag, label] : BreachFlags()) {
    const auto it = r.vs_first.find("paths/" + flag);
    if (it != r.vs_first.end() && it->second.low > 0) v.worse.push_back(flag);
  }
  return v;
}

void CompareToFirst(ScenarioReport& s, uint64_t seed) {
  if (s.results.empty()) return;
  const PolicyScenarioResult& ref = s.results[0];
  for (size_t i = 1; i < s.results.size(); ++i) {
    PolicyScenarioResult& r = s.results[i];
    r.vs_first.clear();
    for (const auto& m : StressMetrics())
      r.vs_first[m.key] = PairedMeanDifference(r.per_path.at(m.key), ref.per_path.at(m.key));
    const auto& x = r.per_path.at("cumulative_net_income");
    const auto& y = ref.per_path.at("cumulative_net_income");
    r.vs_first["var_99"] = PairedBootstrapDifference(x, y, Var99, 1000, seed);
    r.vs_first["es_975"] = PairedBootstrapDifference(x, y, Es975, 1000, seed);
    // Breach probabilities: the paired difference of 0/1 outcomes on the same paths.
    for (const auto& [flag, label] : BreachFlags()) {
      const auto a = r.path_flags.find(flag);
      const auto b = ref.path_flags.find(flag);
      if (a != r.path_flags.end() && b != ref.path_flags.end())
        r.vs_first["paths/" + flag] = PairedMeanDifference(a->second, b->second);
    }
    for (const auto& [role, values] : r.role_return_paths) {
      const auto it = ref.role_return_paths.find(role);
      if (it != ref.role_return_paths.end())
        r.vs_first["role_return/" + role] = PairedMeanDifference(values, it->second);
    }
  }
}

namespace {

nlohmann::json DistributionJson(const Distribution& d) {
  return {{"mean", d.mean}, {"median", d.median}, {"p05", d.p05}, {"p95", d.p95}, {"std", d.std}};
}

nlohmann::json BandJson(const Band& b) {
  return {{"p05", b.p05}, {"p50", b.p50}, {"p95", b.p95}, {"mean", b.mean}};
}

}  // namespace

std::string StressReportJson(const StressReport& report) {
  nlohmann::json j;
  j["schema"] = kStressReportSchema;
  j["schema_version"] = kStressReportSchemaVersion;
  j["generated_by"] = std::string("loantwin ") + LoantwinVersion();
  j["provenance"] = {{"generated_at", report.provenance.generated_at},
                     {"loantwin_version", report.provenance.loantwin_version},
                     {"source_revision", report.provenance.source_revision},
                     {"ranks", report.provenance.ranks}};
  const StressSettings& s = report.settings;
  j["settings"] = {{"institution", s.institution},
                   {"currency", s.currency},
                   {"paths", s.paths},
                   {"months", s.months},
                   {"seed", s.seed},
                   {"threads", s.threads},
                   {"reward_weights_from", s.reward_weights_from},
                   {"var_level", kVarLevel},
                   {"es_level", kEsLevel},
                   {"regime", CapitalRegimeName(s.regime)},
                   {"capital_ratio_name", CapitalRatioName(s.regime)},
                   {"capital_minimum", CapitalMinimum(s.regime)},
                   {"capital_buffer", CapitalBuffer(s.regime)}};
  nlohmann::json metrics = nlohmann::json::object();
  for (const auto& m : StressMetrics())
    metrics[m.key] = {{"label", m.label},
                      {"unit", m.unit},
                      {"higher_is_better", m.higher_is_better},
                      {"definition", m.definition}};
  j["metric_definitions"] = metrics;
  j["policies"] = nlohmann::json::array();
  for (const auto& p : report.policies) {
    nlohmann::json jp = {
        {"name", p.name}, {"kind", p.kind}, {"source", p.source}, {"roles", p.roles}};
    if (!p.checkpoint.empty()) jp["checkpoint"] = p.checkpoint;
    if (!p.checkpoint_sha256.empty()) jp["checkpoint_sha256"] = p.checkpoint_sha256;
    if (!p.module_sha256.empty()) jp["module_sha256"] = p.module_sha256;
    if (!p.guardrails.empty()) {
      jp["guardrails"] = nlohmann::json::array();
      for (const auto& g : p.guardrails) jp["guardrails"].push_back(nlohmann::json::parse(g));
    }
    j["policies"].push_back(jp);
  }
  j["scenarios"] = nlohmann::json::array();
  for (const auto& sc : report.scenarios) {
    nlohmann::json js;
    js["name"] = sc.name;
    js["source"] = sc.source;
    js["description"] = sc.description;
    js["macro_paths_identical"] = sc.macro_paths_identical;
    js["macro"] = nlohmann::json::object();
    for (const auto& [name, band] : sc.macro) js["macro"][name] = BandJson(band);
    js["results"] = nlohmann::json::array();
    for (const auto& r : sc.results) {
      nlohmann::json jr;
      jr["policy"] = r.policy;
      jr["paths"] = r.paths;
      jr["metrics"] = nlohmann::json::object();
      for (const auto& [k, d] : r.metrics) jr["metrics"][k] = DistributionJson(d);
      jr["tail"] = {{"var_99", r.var_99}, {"es_975", r.es_975}};
      jr["counts"] = {{"paths_undercapitalised", r.paths_undercapitalised},
                      {"paths_below_well_capitalised", r.paths_below_well_capitalised},
                      {"paths_failed", r.paths_failed},
                      {"paths_liquidity_shortfall", r.paths_liquidity_shortfall},
                      {"paths_with_invariant_breaches", r.paths_with_invariant_breaches}};
      if (!r.first_invariant_breach.empty())
        jr["counts"]["first_invariant_breach"] = r.first_invariant_breach;
      if (!r.constraints.empty()) {
        jr["constraints"] = nlohmann::json::array();
        for (const ConstraintOutcome& c : r.constraints)
          jr["constraints"].push_back({{"name", c.name},
                                       {"limit", c.limit},
                                       {"mean_cost", c.mean_cost},
                                       {"paths_over_limit", c.paths_over_limit},
                                       {"violation_rate", c.violation_rate},
                                       {"pass", c.pass()}});
      }
      if (!r.guardrail_fired_rate.empty()) {
        jr["guardrails"] = nlohmann::json::array();
        for (const auto& [name, rate] : r.guardrail_fired_rate)
          jr["guardrails"].push_back({{"name", name}, {"fired_rate", rate}});
      }
      const Verdict verdict = JudgeResult(r);
      jr["verdict"] = {{"pass", verdict.pass},
                       {"reasons", verdict.reasons},
                       {"worse_than_first", verdict.worse}};
      jr["role_returns"] = nlohmann::json::object();
      for (const auto& [role, d] : r.role_returns) jr["role_returns"][role] = DistributionJson(d);
      jr["bands"] = nlohmann::json::object();
      for (const auto& [name, band] : r.bands) jr["bands"][name] = BandJson(band);
      jr["loan_months"] = r.loan_months;
      if (r.vs_first.empty()) {
        jr["vs_first"] = nullptr;
      } else {
        jr["vs_first"] = nlohmann::json::object();
        for (const auto& [k, d] : r.vs_first)
          jr["vs_first"][k] = {{"difference", d.mean},
                               {"ci95_low", d.low},
                               {"ci95_high", d.high},
                               {"method", d.method}};
      }
      if (r.fairness) jr["fairness"] = FairnessJson(*r.fairness);
      js["results"].push_back(jr);
    }
    j["scenarios"].push_back(js);
  }
  j["timing"] = {{"wall_seconds", report.wall_seconds},
                 {"loan_months", report.loan_months},
                 {"instance_months", report.instance_months},
                 {"loan_months_per_second",
                  report.wall_seconds > 0 ? report.loan_months / report.wall_seconds : 0.0}};
  return j.dump(1) + "\n";
}

}  // namespace loantwin
