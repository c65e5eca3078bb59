#include "env/twin/applicant_groups.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/binary_state.h"
#include "core/config_error.h"
#include "core/counter_rng.h"
#include "core/yaml_reader.h"
#include "env/twin/config_paths.h"

namespace loantwin {

namespace {

/// Linear interpolation of ys over the increasing grid xs (flat outside).
double Interp(const std::vector<double>& xs, const std::vector<double>& ys, double x) {
  if (x <= xs.front()) return ys.front();
  if (x >= xs.back()) return ys.back();
  const size_t k = static_cast<size_t>(std::upper_bound(xs.begin(), xs.end(), x) - xs.begin());
  const double t = (x - xs[k - 1]) / (xs[k] - xs[k - 1]);
  return ys[k - 1] + t * (ys[k] - ys[k - 1]);
}

}  // namespace

ApplicantGroupTable ApplicantGroupTable::Load(const std::string& name_or_path) {
  const std::string file = ResolveConfig("applicant_groups", name_or_path);
  const YamlValue root = YamlValue::LoadFile(file);
  YamlMap m(root);
  ApplicantGroupTable t;
  t.name = name_or_path;
  const YamlValue scores = m.Require("scores");
  t.scores = scores.AsDoubleList(0, -1e6, 1e6);
  if (t.scores.size() < 2) scores.Fail("at least two score points are needed");
  for (size_t k = 1; k < t.scores.size(); ++k)
    if (!(t.scores[k] > t.scores[k - 1]))
      scores.Fail(fmt::format("scores must increase (point {}: {} after {})", k, t.scores[k],
                              t.scores[k - 1]));
  m.Read("reference", &t.reference);
  m.Read("score_gain_repay", &t.score_gain_repay, 0.0, 1000.0);
  m.Read("score_loss_default", &t.score_loss_default, 0.0, 1000.0);
  const YamlValue list = m.Require("groups");
  for (const YamlValue& item : list.Items()) {
    YamlMap g(item);
    const std::string name = g.Require("name").AsString();
    if (name.empty()) item.Fail("a group needs a name");
    if (std::find(t.groups.begin(), t.groups.end(), name) != t.groups.end())
      item.Fail(fmt::format("group '{}' is listed twice", name));
    double share = 0;
    g.Read("share", &share, 0.0, 1.0);
    if (!g.Has("share")) item.Fail(fmt::format("group '{}' needs a share", name));
    const YamlValue cdf_node = g.Require("cdf");
    std::vector<double> cdf = cdf_node.AsDoubleList(t.scores.size(), 0.0, 1.0);
    for (size_t k = 1; k < cdf.size(); ++k)
      if (cdf[k] < cdf[k - 1])
        cdf_node.Fail(fmt::format("the cdf of '{}' decreases at score {} ({} after {})", name,
                                  t.scores[k], cdf[k], cdf[k - 1]));
    if (std::abs(cdf.back() - 1) > 1e-6)
      cdf_node.Fail(
          fmt::format("the cdf of '{}' must reach 1 at the last score (got {})", name, cdf.back()));
    const YamlValue bad_node = g.Require("bad_rate");
    t.bad.push_back(bad_node.AsDoubleList(t.scores.size(), 0.0, 1.0));
    g.Done();
    t.groups.push_back(name);
    t.shares.push_back(share);
    t.cdf.push_back(std::move(cdf));
  }
  if (t.groups.size() < 2) list.Fail("at least two groups are needed");
  if (t.groups.size() > 16) list.Fail("at most 16 groups");
  const double total = std::accumulate(t.shares.begin(), t.shares.end(), 0.0);
  if (total <= 0) list.Fail("the group shares must have a positive total");
  for (double& s : t.shares) s /= total;
  if (!t.reference.empty() &&
      std::find(t.groups.begin(), t.groups.end(), t.reference) == t.groups.end())
    m.Require("reference").Fail(fmt::format("unknown group '{}'", t.reference));
  m.Done();
  return t;
}

double ApplicantGroupTable::Cdf(int g, double s) const {
  if (s < scores.front()) return 0;
  return Interp(scores, cdf[g], s);
}

double ApplicantGroupTable::Quantile(int g, double u) const {
  const std::vector<double>& c = cdf[g];
  if (u <= c.front()) return scores.front();
  const size_t k = static_cast<size_t>(std::lower_bound(c.begin(), c.end(), u) - c.begin());
  if (k >= c.size()) return scores.back();
  const double span = c[k] - c[k - 1];
  const double t = span > 0 ? (u - c[k - 1]) / span : 1.0;
  return scores[k - 1] + t * (scores[k] - scores[k - 1]);
}

double ApplicantGroupTable::BadRate(int g, double s) const {
  return Interp(scores, bad[g], s);
}

double ApplicantGroupTable::PooledCdf(double s) const {
  double f = 0;
  for (int g = 0; g < num_groups(); ++g) f += shares[g] * Cdf(g, s);
  return f;
}

double ApplicantGroupTable::PooledQuantile(double u) const {
  double lo = scores.front(), hi = scores.back();
  if (u <= PooledCdf(lo)) return lo;
  for (int i = 0; i < 60; ++i) {
    const double mid = 0.5 * (lo + hi);
    (PooledCdf(mid) < u ? lo : hi) = mid;
  }
  return hi;
}

double ApplicantGroupTable::MeanScore(int g) const {
  // E[S] = s_0 + integral of (1 - F) over the grid (trapezoids; F is linear between points).
  double mean = scores.front();
  for (size_t k = 1; k < scores.size(); ++k)
    mean += (scores[k] - scores[k - 1]) * (1 - 0.5 * (cdf[g][k] + cdf[g][k - 1]));
  return mean;
}

void GroupOutcomes::Resize(int groups) {
  num_groups = groups;
  cells.assign(static_cast<size_t>(kNumProducts) * groups * kNumBands, GroupCell{});
}

GroupCell GroupOutcomes::Group(int g) const {
  GroupCell s;
  for (int p = 0; p < kNumProducts; ++p)
    for (int b = 0; b < kNumBands; ++b) {
      const GroupCell& c = at(p, g, b);
      s.applications += c.applications, s.approvals += c.approvals;
      s.repay_applications += c.repay_applications, s.repay_approvals += c.repay_approvals;
      s.bad_approvals += c.bad_approvals, s.amount += c.amount, s.rate_amount += c.rate_amount;
      s.margin += c.margin, s.score_change += c.score_change, s.score_sum += c.score_sum;
    }
  return s;
}

void GroupOutcomes::Add(const GroupOutcomes& o) {
  if (cells.empty()) {
    *this = o;
    return;
  }
  for (size_t i = 0; i < cells.size(); ++i) {
    GroupCell& a = cells[i];
    const GroupCell& c = o.cells[i];
    a.applications += c.applications, a.approvals += c.approvals;
    a.repay_applications += c.repay_applications, a.repay_approvals += c.repay_approvals;
    a.bad_approvals += c.bad_approvals, a.amount += c.amount, a.rate_amount += c.rate_amount;
    a.margin += c.margin, a.score_change += c.score_change, a.score_sum += c.score_sum;
  }
}

void GroupOutcomes::Clear() {
  std::fill(cells.begin(), cells.end(), GroupCell{});
}

FairnessSummary Summarise(const GroupOutcomes& o, const ApplicantGroupTable& table) {
  FairnessSummary s;
  const int n = o.num_groups;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  s.approval_rate.assign(n, nan);
  s.air.assign(n, nan);
  s.tpr.assign(n, nan);
  double best = -1;
  for (int g = 0; g < n; ++g) {
    const GroupCell c = o.Group(g);
    if (c.applications > 0) s.approval_rate[g] = c.approvals / c.applications;
    if (c.repay_applications > 0) s.tpr[g] = c.repay_approvals / c.repay_applications;
    if (c.applications > 0 && s.approval_rate[g] > best) best = s.approval_rate[g], s.reference = g;
  }
  if (!table.reference.empty())
    s.reference =
        static_cast<int>(std::find(table.groups.begin(), table.groups.end(), table.reference) -
                         table.groups.begin());
  const double ref = s.approval_rate[s.reference];
  double tpr_lo = 2, tpr_hi = -1;
  for (int g = 0; g < n; ++g) {
    if (!std::isnan(s.approval_rate[g]) && ref > 0) {
      s.air[g] = s.approval_rate[g] / ref;
      s.min_air = std::min(s.min_air, s.air[g]);
    }
    if (!std::isnan(s.tpr[g]))
      tpr_lo = std::min(tpr_lo, s.tpr[g]), tpr_hi = std::max(tpr_hi, s.tpr[g]);
  }
  s.eo_gap = tpr_hi >= tpr_lo ? tpr_hi - tpr_lo : 0;
  return s;
}

ApplicantLens::ApplicantLens(const ApplicantGroupTable* table) : table_(table) {
  episode_.Resize(table->num_groups());
  total_.Resize(table->num_groups());
}

const ApplicantLens::BandSlices& ApplicantLens::Slices(int p, const BandArray& mix) {
  BandSlices& sl = slices_[p];
  if (sl.ready && sl.mix == mix) return sl;
  sl.ready = true;
  sl.mix = mix;
  const ApplicantGroupTable& t = *table_;
  const double total = std::accumulate(mix.begin(), mix.end(), 0.0);
  // Worst band (G) first: edge[0] is the lowest score, edge[kNumBands] the highest.
  double q = 0;
  sl.edge[0] = t.scores.front() - 1;  // below the grid: the CDF is 0 there
  for (int k = 0; k < kNumBands; ++k) {
    q += mix[kNumBands - 1 - k] / total;
    sl.edge[k + 1] = k + 1 == kNumBands ? t.scores.back() : t.PooledQuantile(std::min(q, 1.0));
  }
  for (int b = 0; b < kNumBands; ++b) {
    const double lo = sl.edge[kNumBands - 1 - b], hi = sl.edge[kNumBands - b];
    std::vector<double>& c = sl.group_cdf[b];
    c.assign(t.num_groups(), 0.0);
    double acc = 0;
    for (int g = 0; g < t.num_groups(); ++g) {
      acc += t.shares[g] * std::max(0.0, t.Cdf(g, hi) - t.Cdf(g, lo));
      c[g] = acc;
    }
    for (double& v : c) v = acc > 0 ? v / acc : 1.0;
  }
  return sl;
}

void ApplicantLens::Observe(int p, const BandArray& mix, int band, int64_t n, bool approved,
                            double apr, double amount, double funding_rate, double lgd,
                            uint64_t key) {
  if (n <= 0) return;
  const ApplicantGroupTable& t = *table_;
  const BandSlices& sl = Slices(p, mix);
  const double lo = sl.edge[kNumBands - 1 - band], hi = sl.edge[kNumBands - band];
  const std::vector<double>& gc = sl.group_cdf[band];
  const double each = approved ? amount / static_cast<double>(n) : 0.0;
  CounterRng rng(key);
  for (int64_t j = 0; j < n; ++j) {
    const double u = rng.Uniform();
    int g = 0;
    while (g + 1 < t.num_groups() && gc[g] <= u) ++g;
    const double f_lo = t.Cdf(g, lo), f_hi = t.Cdf(g, hi);
    const double score = t.Quantile(g, f_lo + rng.Uniform() * (f_hi - f_lo));
    const double bad = t.BadRate(g, score);
    for (GroupOutcomes* o : {&episode_, &total_}) {
      GroupCell& c = o->at(p, g, band);
      c.applications += 1;
      c.repay_applications += 1 - bad;
      c.score_sum += score;
      if (!approved) continue;
      c.approvals += 1;
      c.repay_approvals += 1 - bad;
      c.bad_approvals += bad;
      c.amount += each;
      c.rate_amount += each * apr;
      c.margin += each * (apr - funding_rate - 0.5 * bad * lgd);
      c.score_change += (1 - bad) * t.score_gain_repay - bad * t.score_loss_default;
    }
  }
}

void ApplicantLens::SaveState(StateWriter& w) const {
  w.Tag("applicant_lens");
  w.PutVector(episode_.cells);
  w.PutVector(total_.cells);
}

void ApplicantLens::LoadState(StateReader& r) {
  r.Tag("applicant_lens");
  const size_t n = episode_.cells.size();
  r.GetVector(&episode_.cells);
  r.GetVector(&total_.cells);
  if (episode_.cells.size() != n || total_.cells.size() != n)
    throw std::runtime_error("checkpoint state: applicant groups differ from the checkpoint's");
}

}  // namespace loantwin
