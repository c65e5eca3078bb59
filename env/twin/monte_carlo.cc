#include "env/twin/monte_carlo.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/atomic_file.h"
#include "env/twin/capital.h"
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

PathOutput::PathOutput(const MonteCarloOptions& o) : options_(o) {
  if (o.sink) {
    if (o.months < 1) throw std::invalid_argument("months must be >= 1");
    if (o.paths < 1) throw std::invalid_argument("paths must be >= 1");
    if (o.batch < 1) throw std::invalid_argument("batch must be >= 1");
    block_.resize(static_cast<size_t>(std::min(o.batch, o.paths)) * o.months * kNumMetrics);
  } else {
    set_ = AllocatePaths(o);
  }
}

double* PathOutput::Batch(int first_path) {
  return options_.sink
             ? block_.data()
             : set_.data.data() + static_cast<size_t>(first_path) * options_.months * kNumMetrics;
}

void PathOutput::Done(int first_path, int count) {
  if (options_.sink) options_.sink(PathBlock{first_path, count, options_.months, block_.data()});
}

PathSet RunMonteCarlo(std::shared_ptr<const InstitutionConfig> institution,
                      std::shared_ptr<const Scenario> scenario, const Levers& levers,
                      const MonteCarloOptions& o) {
  PathOutput output(o);
  const std::vector<Levers> shared{levers};
  for (int start = 0; start < o.paths; start += o.batch) {
    TwinBatchOptions vo;
    vo.num_envs = std::min(o.batch, o.paths - start);
    vo.num_threads = std::min(o.threads, vo.num_envs);
    vo.seed = o.seed;
    vo.first_instance = start;
    vo.twin = o.twin;
    TwinBatch env(institution, scenario, vo);
    double* out = output.Batch(start);
    for (int m = 0; m < o.months; ++m) {
      env.Step(shared);
      for (int i = 0; i < vo.num_envs; ++i)
        std::copy_n(env.metrics(i), kNumMetrics,
                    out + (static_cast<size_t>(i) * o.months + m) * kNumMetrics);
    }
    output.Done(start, vo.num_envs);
    if (o.progress) o.progress(start + vo.num_envs);
  }
  return output.Take();
}

PathBlock WholeSet(const PathSet& set) {
  return PathBlock{0, set.paths, set.months, set.data.data()};
}

PathSummary SummarisePath(const PathBlock& b, int p) {
  PathSummary s{-std::numeric_limits<double>::infinity(),
                std::numeric_limits<double>::infinity(),
                0,
                0,
                0,
                0,
                0};
  for (int m = 0; m < b.months; ++m) {
    double co = 0;
    int n = 0;
    for (int k = std::max(0, m - 2); k <= m; ++k, ++n) co += b.at(p, k, kChargeOffRate);
    s.peak_charge_off_rate = std::max(s.peak_charge_off_rate, co / n);
    s.min_capital_ratio = std::min(s.min_capital_ratio, b.at(p, m, kCapitalRatio));
    s.cumulative_net_income += b.at(p, m, kNetIncome);
    const int category = static_cast<int>(b.at(p, m, kCapitalCategory));
    s.months_undercapitalised += category >= kUndercapitalised;
    s.months_below_well += category > kWellCapitalised;
    s.worst_category = std::max(s.worst_category, category);
  }
  s.final_equity = b.at(p, b.months - 1, kEquity);
  return s;
}

std::vector<PathSummary> SummarisePaths(const PathSet& set) {
  std::vector<PathSummary> out;
  const PathBlock all = WholeSet(set);
  for (int p = 0; p < set.paths; ++p) out.push_back(SummarisePath(all, p));
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

void WritePathsCsvHeader(std::ostream& out) {
  out << "path,month";
  for (int i = 0; i < kNumMetrics; ++i) out << ',' << MetricName(i);
  out << '\n';
}

void WritePathsCsvRows(const PathBlock& b, std::ostream& out) {
  fmt::memory_buffer buf;
  for (int p = 0; p < b.count; ++p)
    for (int m = 0; m < b.months; ++m) {
      buf.clear();
      fmt::format_to(std::back_inserter(buf), "{},{}", b.first_path + p, m + 1);
      for (int i = 0; i < kNumMetrics; ++i)
        fmt::format_to(std::back_inserter(buf), ",{:.10g}", b.at(p, m, i));
      buf.push_back('\n');
      out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
    }
}

void WritePathsCsv(const PathSet& set, const std::string& file) {
  WriteFileAtomically(file, [&](std::ostream& out) {
    WritePathsCsvHeader(out);
    WritePathsCsvRows(WholeSet(set), out);
  });
}

BandAccumulator::BandAccumulator(int months, int exact_paths)
    : months_(months),
      cells_(static_cast<size_t>(months) * kNumMetrics,
             QuantileSketch(static_cast<size_t>(std::max(1, exact_paths)))),
      sums_(static_cast<size_t>(months) * kNumMetrics, 0.0) {}

void BandAccumulator::Add(const PathBlock& b) {
  if (b.months != months_)
    throw std::invalid_argument(
        fmt::format("BandAccumulator: a block of {} months for {} months", b.months, months_));
  for (int p = 0; p < b.count; ++p)
    for (int m = 0; m < months_; ++m) {
      const double* row = b.row(p, m);
      for (int i = 0; i < kNumMetrics; ++i) {
        const size_t c = static_cast<size_t>(m) * kNumMetrics + i;
        cells_[c].Add(row[i]);
        sums_[c] += row[i];
      }
    }
  paths_ += b.count;
}

void BandAccumulator::Write(const std::string& file) const {
  WriteFileAtomically(file, [&](std::ostream& out) {
    out << "month,metric,mean,p05,p50,p95\n";
    for (int m = 0; m < months_; ++m)
      for (int i = 0; i < kNumMetrics; ++i) {
        const QuantileSketch& c = cell(m, i);
        out << fmt::format("{},{},{:.10g},{:.10g},{:.10g},{:.10g}\n", m + 1, MetricName(i),
                           mean(m, i), c.Quantile(0.05), c.Quantile(0.5), c.Quantile(0.95));
      }
  });
}

void WriteBandsCsv(const PathSet& set, const std::string& file) {
  BandAccumulator bands(set.months, set.paths);
  bands.Add(WholeSet(set));
  bands.Write(file);
}

}  // namespace loantwin
