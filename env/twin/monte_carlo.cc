#include "env/twin/monte_carlo.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/atomic_file.h"
#include "env/twin/twin_batch.h"

namespace loantwin {

PathSet AllocatePaths(const MonteCarloOptions& o) {
  if (o.months < 1) throw std::invalid_argument("months must be >= 1");
  if (o.paths < 1) throw std::invalid_argument("paths must be >= 1");
  PathSet set;
  set.paths = o.paths;
  set.months = o.months;
  set.data.resize(static_cast<size_t>(o.paths) * o.months * kNumMetrics);
  return set;
}

PathSet RunMonteCarlo(std::shared_ptr<const InstitutionConfig> institution,
                      std::shared_ptr<const Scenario> scenario, const Levers& levers,
                      const MonteCarloOptions& o) {
  PathSet set = AllocatePaths(o);
  const std::vector<Levers> shared{levers};
  for (int start = 0; start < o.paths; start += o.batch) {
    TwinBatchOptions vo;
    vo.num_envs = std::min(o.batch, o.paths - start);
    vo.num_threads = std::min(o.threads, vo.num_envs);
    vo.seed = o.seed;
    vo.first_instance = start;
    vo.twin = o.twin;
    TwinBatch env(institution, scenario, vo);
    for (int m = 0; m < o.months; ++m) {
      env.Step(shared);
      for (int i = 0; i < vo.num_envs; ++i)
        std::copy_n(
            env.metrics(i), kNumMetrics,
            set.data.begin() + ((static_cast<size_t>(start + i) * o.months + m) * kNumMetrics));
    }
    if (o.progress) o.progress(start + vo.num_envs);
  }
  return set;
}

std::vector<PathSummary> SummarisePaths(const PathSet& set) {
  std::vector<PathSummary> out;
  for (int p = 0; p < set.paths; ++p) {
    PathSummary s{-std::numeric_limits<double>::infinity(),
                  std::numeric_limits<double>::infinity(),
                  0,
                  0,
                  0,
                  0};
    for (int m = 0; m < set.months; ++m) {
      double co = 0;
      int n = 0;
      for (int k = std::max(0, m - 2); k <= m; ++k, ++n) co += set.at(p, k, kChargeOffRate);
      s.peak_charge_off_rate = std::max(s.peak_charge_off_rate, co / n);
      const double cet1 = set.at(p, m, kCet1Ratio);
      s.min_cet1_ratio = std::min(s.min_cet1_ratio, cet1);
      s.cumulative_net_income += set.at(p, m, kNetIncome);
      s.months_below_minimum += cet1 < 0.045;
      s.months_below_buffer += cet1 < 0.07;
    }
    s.final_equity = set.at(p, set.months - 1, kEquity);
    out.push_back(s);
  }
  return out;
}

double Quantile(std::vector<double> v, double q) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::sort(v.begin(), v.end());
  const double pos = q * (v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

void WritePathsCsv(const PathSet& set, const std::string& file) {
  WriteFileAtomically(file, [&](std::ostream& out) {
    out << "path,month";
    for (int i = 0; i < kNumMetrics; ++i) out << ',' << MetricName(i);
    out << '\n';
    fmt::memory_buffer buf;
    for (int p = 0; p < set.paths; ++p)
      for (int m = 0; m < set.months; ++m) {
        buf.clear();
        fmt::format_to(std::back_inserter(buf), "{},{}", p, m + 1);
        for (int i = 0; i < kNumMetrics; ++i)
          fmt::format_to(std::back_inserter(buf), ",{:.10g}", set.at(p, m, i));
        buf.push_back('\n');
        out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
      }
  });
}

void WriteBandsCsv(const PathSet& set, const std::string& file) {
  WriteFileAtomically(file, [&](std::ostream& out) {
    out << "month,metric,mean,p05,p50,p95\n";
    std::vector<double> v(set.paths);
    for (int m = 0; m < set.months; ++m)
      for (int i = 0; i < kNumMetrics; ++i) {
        double mean = 0;
        for (int p = 0; p < set.paths; ++p) mean += (v[p] = set.at(p, m, i));
        mean /= set.paths;
        out << fmt::format("{},{},{:.10g},{:.10g},{:.10g},{:.10g}\n", m + 1, MetricName(i), mean,
                           Quantile(v, 0.05), Quantile(v, 0.5), Quantile(v, 0.95));
      }
  });
}

}  // namespace loantwin
