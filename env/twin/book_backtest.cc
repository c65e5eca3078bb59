#include "env/twin/book_backtest.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <tuple>
#include <unordered_map>

#include "core/atomic_file.h"
#include "core/config_error.h"
#include "core/normal_dist.h"
#include "core/parallel_runner.h"
#include "env/twin/levers.h"
#include "env/twin/loan_tape.h"
#include "env/twin/scenario.h"
#include "env/twin/twin.h"

namespace loantwin {
namespace {

constexpr int8_t kAbsent = -100;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

int8_t ExitCode(LoanExit e) {
  return static_cast<int8_t>(-1 - static_cast<int>(e));
}

double Quantile(std::vector<double> v, double q) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return std::isnan(x); }), v.end());
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  const double pos = q * (v.size() - 1);
  const size_t lo = static_cast<size_t>(pos);
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

/// Wilson score interval (95%) of k successes in n trials.
std::pair<double, double> Wilson(int64_t k, int64_t n) {
  if (n == 0) return {0, 1};
  const double z = 1.959963984540054, p = static_cast<double>(k) / n;
  const double d = 1 + z * z / n;
  const double c = (p + z * z / (2 * n)) / d;
  const double h = z * std::sqrt(p * (1 - p) / n + z * z / (4.0 * n * n)) / d;
  return {std::max(0.0, c - h), std::min(1.0, c + h)};
}

/// The levers of a static-pool run: the institution's defaults with no new lending.
Levers RunOffLevers(const InstitutionConfig& inst) {
  Levers l = DefaultLevers(inst);
  for (int p = 0; p < kNumProducts; ++p) l.origination_budget[p] = 0;
  return l;
}

}  // namespace

LoanExit InferExit(const ProductSpec& s, int bucket, double balance, int remaining) {
  if (bucket > 0) return LoanExit::kChargedOff;
  if (s.revolving())
    return balance * (1 - s.payment_rate) < 0.01 ? LoanExit::kPaid : LoanExit::kPrepaid;
  return remaining <= 1 ? LoanExit::kPaid : LoanExit::kPrepaid;
}

const char* ExitName(LoanExit e) {
  switch (e) {
    case LoanExit::kChargedOff:
      return "charged_off";
    case LoanExit::kPaid:
      return "paid";
    case LoanExit::kPrepaid:
      return "prepaid";
    default:
      return "";
  }
}

void BookMonth::Add(int bucket, double bal, int nb, LoanExit exit, double nbal) {
  const int cb = std::min(bucket, 3);
  count[cb] += 1;
  opening += bal;
  if (cb == 0) current_opening += bal;
  switch (exit) {
    case LoanExit::kNone:
      closing += nbal;
      if (nb >= 1) dq30 += nbal;
      if (cb == 0 && nb >= 1) entries += 1;
      if (cb >= 1 && nb == 0) cures += 1;
      if (cb == 1 && nb == 2) forward30 += 1;
      if (cb == 2 && nb >= 3) forward60 += 1;
      break;
    case LoanExit::kChargedOff:
      charged_off += bal;
      charged_off_n += 1;
      if (cb == 2) forward60 += 1;
      break;
    case LoanExit::kPrepaid:
      prepaid += bal;
      prepaid_n += 1;
      break;
    case LoanExit::kPaid:
      break;
  }
}

void BookMonth::Merge(const BookMonth& o) {
  opening += o.opening, closing += o.closing, charged_off += o.charged_off;
  prepaid += o.prepaid, dq30 += o.dq30, current_opening += o.current_opening;
  for (int k = 0; k < 4; ++k) count[k] += o.count[k];
  entries += o.entries, forward30 += o.forward30, forward60 += o.forward60, cures += o.cures;
  prepaid_n += o.prepaid_n, charged_off_n += o.charged_off_n;
}

const std::array<const char*, kNumBookMetrics>& BookMetricNames() {
  static const std::array<const char*, kNumBookMetrics> kNames = {
      "balance",    "charge_off_rate", "dq30_rate", "entry_rate",
      "roll_30_60", "roll_60_90",      "cure_rate", "prepay_rate"};
  return kNames;
}

double BookMetricValue(const BookMonth& m, int metric) {
  auto ratio = [](double a, double b) { return b > 0 ? a / b : kNaN; };
  switch (metric) {
    case kBmBalance:
      return m.closing;
    case kBmChargeOffRate:
      return ratio(12 * m.charged_off, m.opening);
    case kBmDq30Rate:
      return ratio(m.dq30, m.closing);
    case kBmEntryRate:
      return ratio(static_cast<double>(m.entries), static_cast<double>(m.count[0]));
    case kBmRoll30to60:
      return ratio(static_cast<double>(m.forward30), static_cast<double>(m.count[1]));
    case kBmRoll60to90:
      return ratio(static_cast<double>(m.forward60), static_cast<double>(m.count[2]));
    case kBmCureRate:
      return ratio(static_cast<double>(m.cures),
                   static_cast<double>(m.count[1] + m.count[2] + m.count[3]));
    case kBmPrepayRate:
      return ratio(m.prepaid, m.current_opening);
  }
  return kNaN;
}

Performance LoadPerformance(const std::string& path, const InstitutionConfig& inst) {
  if (!inst.book)
    throw ConfigError(
        fmt::format("institution {} has no loan book (sync one with loantwin sync; "
                    "a preset's book has no loan ids to match)",
                    inst.name));
  std::ifstream in(path);
  if (!in) throw ConfigError(fmt::format("cannot open the performance file '{}'", path));
  std::string line;
  if (!std::getline(in, line))
    throw ConfigError(fmt::format("{}: empty file (a header line was expected)", path));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  const std::string kHeader = "loan_id,product,month,balance,days_past_due,event,amount";
  if (line != kHeader)
    throw ConfigError(
        fmt::format("{} line 1: the header must be '{}', not '{}'", path, kHeader, line));
  // As-of loans by id.
  std::unordered_map<std::string, std::pair<int, uint32_t>> ids;
  for (int p = 0; p < kNumProducts; ++p)
    for (size_t j = 0; j < inst.book->loans[p].size(); ++j)
      ids.emplace(inst.book->loans[p][j].id, std::make_pair(p, static_cast<uint32_t>(j)));
  struct Row {
    int product;
    uint32_t loan;
    int month;
    int8_t state;
    float balance;
  };
  std::vector<Row> rows;
  Performance perf;
  perf.file = path;
  int64_t lineno = 1, row = 0;
  auto fail = [&](const char* column, const std::string& msg) {
    throw ConfigError(
        fmt::format("{}: row {} (line {}), column {}: {}", path, row, lineno, column, msg));
  };
  std::vector<std::string_view> f;
  std::vector<std::string> scratch;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    ++row;
    if (!SplitLine(line, ',', &f, &scratch)) fail("-", "unterminated quote");
    if (f.size() != 7) fail("-", fmt::format("{} fields, 7 expected", f.size()));
    ++perf.rows;
    std::string_view event = f[5];
    double month = 0, bal = 0, dpd = 0;
    if (!ParseDouble(f[2], &month) || month < 1 || month > 600 || month != static_cast<int>(month))
      fail("month", fmt::format("'{}' is not a month 1..600", f[2]));
    if (!ParseDouble(f[3], &bal) || bal < 0)
      fail("balance", fmt::format("'{}' is not a balance >= 0", f[3]));
    const bool dpd_given = ParseDouble(f[4], &dpd);
    if (event != "recovered" && (!dpd_given || dpd < 0 || dpd != static_cast<int>(dpd)))
      fail("days_past_due", fmt::format("'{}' is not a whole number of days >= 0", f[4]));
    LoanExit exit = LoanExit::kNone;
    if (event == "charged_off") {
      exit = LoanExit::kChargedOff;
    } else if (event == "paid") {
      exit = LoanExit::kPaid;
    } else if (event == "prepaid") {
      exit = LoanExit::kPrepaid;
    } else if (event == "recovered") {
      ++perf.recovered_rows;
      continue;
    } else if (!event.empty() && event != "originated") {
      fail("event", fmt::format("'{}' is not an event (originated, paid, prepaid, charged_off, "
                                "recovered, or empty for an open loan)",
                                event));
    }
    auto it = ids.find(std::string(f[0]));
    if (it == ids.end()) {
      ++perf.new_loan_rows;  // originated after the as-of date: not in the static pool
      continue;
    }
    const int p = it->second.first;
    if (std::string_view(kProductNames[p]) != f[1])
      fail("product",
           fmt::format("loan {} is a {} loan in the book, not {}", f[0], kProductNames[p], f[1]));
    const int8_t state = exit == LoanExit::kNone
                             ? static_cast<int8_t>(std::min(12, static_cast<int>(dpd) / 30))
                             : ExitCode(exit);
    rows.push_back({p, it->second.second, static_cast<int>(month), state, static_cast<float>(bal)});
    perf.months = std::max(perf.months, static_cast<int>(month));
  }
  if (perf.months == 0)
    throw ConfigError(fmt::format("{}: no row of a loan in {}'s book", path, inst.name));
  for (int p = 0; p < kNumProducts; ++p) {
    const size_t n = inst.book->loans[p].size() * perf.months;
    perf.state[p].assign(n, kAbsent);
    perf.balance[p].assign(n, 0.0f);
  }
  for (const Row& r : rows) {
    const size_t k = static_cast<size_t>(r.loan) * perf.months + r.month - 1;
    if (perf.state[r.product][k] != kAbsent)
      throw ConfigError(fmt::format("{}: loan {} has two rows for month {}", path,
                                    inst.book->loans[r.product][r.loan].id, r.month));
    perf.state[r.product][k] = r.state;
    perf.balance[r.product][k] = r.balance;
  }
  return perf;
}

namespace {

/// Walks each as-of loan's months: fn(p, loan, month, bucket, balance, new_bucket, exit,
/// new_balance) for every month the loan starts open and has a row.
template <typename Fn>
void ForEachTransition(const Performance& perf, const InstitutionConfig& inst, int months,
                       Fn&& fn) {
  for (int p = 0; p < kNumProducts; ++p) {
    const auto& loans = inst.book->loans[p];
    for (size_t j = 0; j < loans.size(); ++j) {
      int bucket = loans[j].months_past_due;
      double bal = loans[j].balance;
      for (int t = 1; t <= months; ++t) {
        const int8_t s = perf.At(p, j, t);
        if (s == kAbsent) break;  // censored: no row
        const double nbal = perf.BalanceAt(p, j, t);
        if (s >= 0) {
          fn(p, j, t, bucket, bal, static_cast<int>(s), LoanExit::kNone, nbal);
          bucket = s, bal = nbal;
        } else {
          fn(p, j, t, bucket, bal, -1, static_cast<LoanExit>(-1 - s), 0.0);
          break;
        }
      }
    }
  }
}

}  // namespace

std::array<std::vector<BookMonth>, kNumProducts> ActualOutcomes(const Performance& perf,
                                                                const InstitutionConfig& inst) {
  std::array<std::vector<BookMonth>, kNumProducts> out;
  for (auto& v : out) v.resize(perf.months);
  ForEachTransition(perf, inst, perf.months,
                    [&](int p, size_t, int t, int b, double bal, int nb, LoanExit e, double nbal) {
                      out[p][t - 1].Add(b, bal, nb, e, nbal);
                    });
  return out;
}

BookBacktestResult RunBookBacktest(std::shared_ptr<const InstitutionConfig> inst,
                                   const Performance& perf, const BookBacktestOptions& o) {
  if (!inst->book) throw ConfigError("the backtest needs a synced institution (loantwin sync)");
  const int months = o.months > 0 ? std::min(o.months, perf.months) : perf.months;
  const int horizon = std::min(12, months);
  const auto scenario = LoadScenario(o.scenario);
  const Levers levers = RunOffLevers(*inst);
  // Per path: metric values [p][t][metric] and defaults by band of the loans current at month 0.
  struct PathOut {
    std::array<std::vector<BookMonth>, kNumProducts> months;
    std::array<std::vector<BandArray>, kNumProducts> band_balance;  ///< closing, by score band
    std::array<std::array<int64_t, kNumBands>, kNumProducts> defaults{};
  };
  std::vector<PathOut> paths(o.paths);
  ParallelRunner runner(o.threads);
  runner.For(o.paths, [&](int path) {
    Twin twin(inst, scenario, o.seed, path);
    PathOut& out = paths[path];
    std::array<std::vector<uint8_t>, kNumProducts> defaulted;
    for (int p = 0; p < kNumProducts; ++p) {
      out.months[p].resize(months);
      out.band_balance[p].assign(months, BandArray{});
      defaulted[p].assign(twin.book(p).size(), 0);
    }
    struct Prev {
      uint32_t id;
      int bucket, remaining;
      double balance;
    };
    std::array<std::vector<Prev>, kNumProducts> prev;
    std::vector<double> row(kNumMetrics);
    for (int t = 1; t <= months; ++t) {
      for (int p = 0; p < kNumProducts; ++p) {
        const LoanBook& bk = twin.book(p);
        prev[p].clear();
        for (size_t i = 0; i < bk.size(); ++i)
          prev[p].push_back({bk.id[i], bk.bucket[i], bk.remaining[i], bk.balance[i]});
      }
      twin.Step(levers, row.data());
      for (int p = 0; p < kNumProducts; ++p) {
        const ProductSpec& s = inst->products[p].spec;
        const LoanBook& bk = twin.book(p);
        BookMonth m;
        size_t i = 0;  // ids stay in order (compaction keeps it; no new loans)
        for (const Prev& pv : prev[p]) {
          while (i < bk.size() && bk.id[i] < pv.id) ++i;
          if (i < bk.size() && bk.id[i] == pv.id) {
            m.Add(pv.bucket, pv.balance, bk.bucket[i], LoanExit::kNone, bk.balance[i]);
            out.band_balance[p][t - 1][bk.band[i]] += bk.balance[i];
            if (t <= horizon && bk.bucket[i] >= 3) defaulted[p][pv.id] = 1;
          } else {
            const LoanExit e = InferExit(s, pv.bucket, pv.balance, pv.remaining);
            m.Add(pv.bucket, pv.balance, -1, e, 0);
            if (t <= horizon && e == LoanExit::kChargedOff) defaulted[p][pv.id] = 1;
          }
        }
        out.months[p][t - 1] = m;
      }
    }
    for (int p = 0; p < kNumProducts; ++p) {
      const auto& loans = inst->book->loans[p];
      for (size_t j = 0; j < loans.size(); ++j)
        if (loans[j].months_past_due == 0 && defaulted[p][j]) out.defaults[p][loans[j].band] += 1;
    }
  });

  BookBacktestResult r;
  r.institution = inst->name;
  r.scenario = o.scenario;
  r.performance = perf.file;
  r.months = months;
  r.paths = o.paths;
  r.seed = o.seed;
  r.horizon_pd = horizon;
  const auto actual = ActualOutcomes(perf, *inst);
  double mape_sum = 0;
  int mape_n = 0;
  for (int p = 0; p < kNumProducts; ++p) {
    r.offered.push_back(!inst->book->loans[p].empty());
    if (inst->book->loans[p].empty()) continue;
    double product_mape = 0;
    int product_n = 0;
    for (int k = 0; k < kNumBookMetrics; ++k) {
      MetricComparison c;
      c.product = p, c.metric = k;
      double abs_sum = 0, bias_sum = 0, pct_sum = 0;
      int covered = 0, pct_n = 0;
      for (int t = 0; t < months; ++t) {
        std::vector<double> v(o.paths);
        for (int path = 0; path < o.paths; ++path)
          v[path] = BookMetricValue(paths[path].months[p][t], k);
        double sum = 0;
        int n = 0;
        for (double x : v)
          if (!std::isnan(x)) sum += x, ++n;
        const double mean = n ? sum / n : kNaN;
        const double a = BookMetricValue(actual[p][t], k);
        c.actual.push_back(a);
        c.mean.push_back(mean);
        c.p05.push_back(Quantile(v, 0.05));
        c.p95.push_back(Quantile(v, 0.95));
        if (std::isnan(a) || std::isnan(mean)) continue;
        ++c.months_compared;
        bias_sum += mean - a;
        abs_sum += std::abs(mean - a);
        if (std::abs(a) > 0) pct_sum += std::abs(mean - a) / std::abs(a), ++pct_n;
        covered += a >= c.p05.back() - 1e-12 && a <= c.p95.back() + 1e-12;
      }
      if (c.months_compared > 0) {
        c.bias = bias_sum / c.months_compared;
        c.mae = abs_sum / c.months_compared;
        c.coverage = static_cast<double>(covered) / c.months_compared;
      }
      c.mape = pct_n ? pct_sum / pct_n : kNaN;
      if (k >= kBmEntryRate && !std::isnan(c.mape)) product_mape += c.mape, ++product_n;
      r.metrics.push_back(std::move(c));
    }
    if (product_n) mape_sum += product_mape / product_n, ++mape_n;

    // PD calibration: loans current at month 0 reaching 90+ dpd or charged off within the
    // horizon, by band.
    std::array<int64_t, kNumBands> n{}, observed{};
    const auto& loans = inst->book->loans[p];
    for (size_t j = 0; j < loans.size(); ++j) {
      if (loans[j].months_past_due != 0) continue;
      n[loans[j].band] += 1;
      for (int t = 1; t <= horizon; ++t) {
        const int8_t s = perf.At(p, j, t);
        if (s == kAbsent) break;
        if (s >= 3 || s == ExitCode(LoanExit::kChargedOff)) {
          observed[loans[j].band] += 1;
          break;
        }
        if (s < 0) break;
      }
    }
    for (int b = 0; b < kNumBands; ++b) {
      if (n[b] == 0) continue;
      BandCalibration bc;
      bc.product = p, bc.band = b, bc.loans = n[b], bc.defaults = observed[b];
      bc.observed = static_cast<double>(observed[b]) / n[b];
      std::tie(bc.lo, bc.hi) = Wilson(observed[b], n[b]);
      double pred = 0;
      for (const PathOut& po : paths) pred += static_cast<double>(po.defaults[p][b]) / n[b];
      bc.predicted = pred / o.paths;
      r.calibration.push_back(bc);
    }
    // Population stability of the book's band mix against the preset's approved applicants.
    const ProductSpec& s = inst->products[p].spec;
    double expected_total = 0;
    for (int b = 0; b <= s.default_cutoff; ++b) expected_total += s.applicant_mix[b];
    double psi = 0;
    for (int b = 0; b < kNumBands; ++b) {
      const double e =
          std::max(1e-4, b <= s.default_cutoff ? s.applicant_mix[b] / expected_total : 0.0);
      int64_t count = 0;
      for (const auto& l : loans) count += l.band == b;
      const double a = std::max(1e-4, static_cast<double>(count) / loans.size());
      psi += (a - e) * std::log(a / e);
    }
    r.psi_band[p] = psi;
  }
  r.transition_mape = mape_n ? mape_sum / mape_n : kNaN;

  // Quarterly: the transition metrics on each quarter's pooled counts (three months' trials),
  // where single months hold few transitions.
  const int quarters = months / 3;
  double q_sum = 0;
  int q_n = 0;
  for (int p = 0; p < kNumProducts && quarters > 0; ++p) {
    if (inst->book->loans[p].empty()) continue;
    double product_mape = 0;
    int product_n = 0;
    for (int k = kBmEntryRate; k < kNumBookMetrics; ++k) {
      double pct = 0;
      int n = 0;
      for (int q = 0; q < quarters; ++q) {
        BookMonth a;
        for (int t = 3 * q; t < 3 * q + 3; ++t) a.Merge(actual[p][t]);
        double sum = 0;
        int count = 0;
        for (const PathOut& po : paths) {
          BookMonth m;
          for (int t = 3 * q; t < 3 * q + 3; ++t) m.Merge(po.months[p][t]);
          const double v = BookMetricValue(m, k);
          if (!std::isnan(v)) sum += v, ++count;
        }
        const double av = BookMetricValue(a, k);
        if (count == 0 || std::isnan(av) || av == 0) continue;
        pct += std::abs(sum / count - av) / std::abs(av), ++n;
      }
      if (n) product_mape += pct / n, ++product_n;
    }
    if (product_n) q_sum += product_mape / product_n, ++q_n;
  }
  r.quarterly_transition_mape = q_n ? q_sum / q_n : kNaN;

  // Balances by product and score band (the segments of the book).
  std::array<std::vector<BandArray>, kNumProducts> actual_band;
  for (auto& v : actual_band) v.assign(months, BandArray{});
  ForEachTransition(perf, *inst, months,
                    [&](int p, size_t j, int t, int, double, int, LoanExit e, double nbal) {
                      if (e == LoanExit::kNone)
                        actual_band[p][t - 1][inst->book->loans[p][j].band] += nbal;
                    });
  for (int p = 0; p < kNumProducts; ++p) {
    if (inst->book->loans[p].empty()) continue;
    for (int b = 0; b < kNumBands; ++b) {
      if (actual_band[p][0][b] <= 0 && paths[0].band_balance[p][0][b] <= 0) continue;
      SegmentComparison c;
      c.product = p, c.band = b;
      double pct = 0;
      int n = 0, covered = 0;
      for (int t = 0; t < months; ++t) {
        std::vector<double> v(o.paths);
        double sum = 0;
        for (int path = 0; path < o.paths; ++path)
          sum += v[path] = paths[path].band_balance[p][t][b];
        c.actual.push_back(actual_band[p][t][b]);
        c.mean.push_back(sum / o.paths);
        c.p05.push_back(Quantile(v, 0.05));
        c.p95.push_back(Quantile(v, 0.95));
        if (c.actual.back() > 0) pct += std::abs(c.mean.back() / c.actual.back() - 1), ++n;
        covered += c.actual.back() >= c.p05.back() - 1e-6 && c.actual.back() <= c.p95.back() + 1e-6;
      }
      c.mape = n ? pct / n : kNaN;
      c.coverage = static_cast<double>(covered) / months;
      r.segments.push_back(std::move(c));
    }
  }
  return r;
}

namespace {

/// One Bernoulli trial of a transition: the twin's probability q and whether it happened.
struct Trials {
  std::vector<float> q;
  std::vector<uint8_t> y;
  void Add(double prob, bool happened) {
    q.push_back(static_cast<float>(prob));
    y.push_back(happened);
  }
};

/// Maximum likelihood of m in P(event) = m q over Bernoulli trials (Newton on the score, kept
/// below m q < 1), with the standard error from the observed information.
FittedMultiplier Mle(const std::vector<float>& q, const std::vector<uint8_t>& y) {
  FittedMultiplier f;
  f.trials = static_cast<int64_t>(q.size());
  double sq = 0, qmax = 0;
  for (size_t i = 0; i < q.size(); ++i)
    f.events += y[i], sq += q[i], qmax = std::max<double>(qmax, q[i]);
  if (f.trials == 0 || sq <= 0) return FittedMultiplier{1, kNaN, f.trials, f.events};
  const double cap = 0.999 / std::max(qmax, 1e-12);
  double m = std::clamp(f.events / sq, 1e-6, cap * 0.999);
  if (f.events == 0) return FittedMultiplier{0, kNaN, f.trials, 0};
  auto derivs = [&](double mm, double* d1, double* d2) {
    *d1 = 0, *d2 = 0;
    for (size_t i = 0; i < q.size(); ++i) {
      if (y[i]) {
        *d1 += 1 / mm;
        *d2 -= 1 / (mm * mm);
      } else {
        const double den = 1 - mm * q[i];
        *d1 -= q[i] / den;
        *d2 -= q[i] * q[i] / (den * den);
      }
    }
  };
  for (int it = 0; it < 50; ++it) {
    double d1, d2;
    derivs(m, &d1, &d2);
    double next = m - d1 / d2;
    if (!(next > 0)) next = m / 2;
    if (next >= cap) next = (m + cap) / 2;
    if (std::abs(next - m) < 1e-10 * m) {
      m = next;
      break;
    }
    m = next;
  }
  double d1, d2;
  derivs(m, &d1, &d2);
  f.value = m;
  f.se = d2 < 0 ? 1 / std::sqrt(-d2) : kNaN;
  return f;
}

}  // namespace

std::vector<ProductFit> FitMultipliers(std::shared_ptr<const InstitutionConfig> inst,
                                       const Performance& perf, const std::string& scenario,
                                       uint64_t seed) {
  if (!inst->book) throw ConfigError("fitting needs a synced institution (loantwin sync)");
  TwinOptions opt;
  opt.record_transitions = true;
  Twin twin(inst, LoadScenario(scenario), seed, 0, opt);
  const Levers levers = RunOffLevers(*inst);
  std::vector<double> row(kNumMetrics);
  std::vector<std::array<ProductTransitions, kNumProducts>> months(perf.months);
  for (int t = 1; t <= perf.months; ++t) {
    twin.Step(levers, row.data());
    for (int p = 0; p < kNumProducts; ++p) months[t - 1][p] = twin.transitions(p);
  }
  std::array<Trials, kNumProducts> entry, forward, prepay, cure90;
  // Cures from 30 and 60 dpd compete with the forward roll: kept with the forward probability
  // to condition on "did not roll" once the roll multiplier is known.
  struct CureTrial {
    float q_cure, q_fwd;
    uint8_t y;
  };
  std::array<std::vector<CureTrial>, kNumProducts> cure_early;
  // Collateral in house-price units, as the twin holds it (month-0 index).
  Twin opening(inst, LoadScenario(scenario), seed, 0);
  ForEachTransition(
      perf, *inst, perf.months,
      [&](int p, size_t j, int t, int b, double bal, int nb, LoanExit e, double) {
        const ProductSpec& s = inst->products[p].spec;
        const ProductTransitions& tr = months[t - 1][p];
        const TapeLoan& l = inst->book->loans[p][j];
        if (b == 0) {
          double h = tr.hazard[l.band];
          if (l.restructured) h *= tr.redefault;
          if (p == kHome && s.ltv_mean > 0) {
            const double value = opening.book(p).collateral[j] * tr.hpi;
            h *= 1 + s.negative_equity_beta * std::max(0.0, bal / value - 1);
          }
          const bool entered = e == LoanExit::kNone && nb >= 1;
          entry[p].Add(std::min(h, 0.999), entered);
          if (entered || e == LoanExit::kPaid) return;
          double smm;
          if (!s.revolving() && !s.variable_rate) {
            const double rate = std::max(0.0, l.rate);
            const int idx = static_cast<int>((rate * tr.inv_market_rate[l.band] - 0.5) * 100 + 0.5);
            smm = tr.smm[std::clamp(idx, 0, kPrepaySmmTableSize - 1)];
          } else {
            smm = tr.smm[50];
          }
          const int age = l.age + t - 1;
          smm *= std::min(1.0, (age + 1) / s.prepay_seasoning);
          prepay[p].Add(smm, e == LoanExit::kPrepaid);
        } else if (b < 3) {
          const bool fwd = (e == LoanExit::kNone && nb == b + 1) || e == LoanExit::kChargedOff;
          forward[p].Add(tr.forward[b], fwd);
          if (!fwd)
            cure_early[p].push_back({static_cast<float>(tr.cure[b]),
                                     static_cast<float>(tr.forward[b]),
                                     static_cast<uint8_t>(e == LoanExit::kNone && nb == 0)});
        } else {
          cure90[p].Add(tr.cure[3], e == LoanExit::kNone && nb == 0);
        }
      });
  std::vector<ProductFit> fits;
  for (int p = 0; p < kNumProducts; ++p) {
    if (inst->book->loans[p].empty()) continue;
    ProductFit f;
    f.product = p;
    f.entry = Mle(entry[p].q, entry[p].y);
    f.roll = Mle(forward[p].q, forward[p].y);
    f.prepay = Mle(prepay[p].q, prepay[p].y);
    Trials cures = cure90[p];
    const double mf = std::isnan(f.roll.se) ? 1.0 : f.roll.value;
    for (const CureTrial& c : cure_early[p])
      cures.Add(c.q_cure / std::max(1e-6, 1 - mf * c.q_fwd), c.y);
    f.cure = Mle(cures.q, cures.y);
    fits.push_back(f);
  }
  return fits;
}

std::string FittedInstitutionYaml(const InstitutionConfig& inst, const std::string& base,
                                  const std::vector<ProductFit>& fits) {
  std::string y = fmt::format(
      "# Written by loantwin calibrate --fit: {} with its transition multipliers fitted by "
      "maximum\n"
      "# likelihood on the monthly performance (docs/digital-twin.md, \"Fitting\").\n"
      "name: \"{}_fitted\"\nbase: \"{}\"\nas_of: \"{}\"\nbook: book.csv\nproducts:\n",
      inst.name, inst.name, base, inst.as_of);
  for (int p = 0; p < kNumProducts; ++p) {
    if (!inst.products[p].offered) continue;
    const ProductSpec& s = inst.products[p].spec;
    y += fmt::format("  {}:\n    initial_loans: {}\n", kProductNames[p],
                     inst.products[p].initial_loans);
    const ProductFit* f = nullptr;
    for (const auto& x : fits)
      if (x.product == p) f = &x;
    if (!f) continue;
    auto mult = [](const FittedMultiplier& m) { return std::isnan(m.se) ? 1.0 : m.value; };
    ProductSpec fitted = s;
    for (double& r : fitted.roll_forward) r = std::clamp(r * mult(f->roll), 0.0, 0.98);
    for (double& c : fitted.cure) c = std::clamp(c * mult(f->cure), 0.0, 0.98);
    // As the twin does with collection intensities: a loan that neither rolls nor cures stays,
    // so roll + cure out of 30 and 60 dpd is at most 0.98.
    for (int k = 0; k < 2; ++k) {
      const double sum = fitted.roll_forward[k] + fitted.cure[k];
      if (sum > 0.98) fitted.roll_forward[k] *= 0.98 / sum, fitted.cure[k] *= 0.98 / sum;
    }
    const double smm = AnnualToMonthly(std::clamp(s.prepay_cpr, 0.0, 0.95));
    fitted.prepay_cpr =
        std::clamp(1 - std::pow(1 - std::min(0.999, smm * mult(f->prepay)), 12), 0.0, 0.9);
    // Entry into 30 dpd is PD / (probability of charge-off from 30 dpd): keep the fitted entry
    // rate under the fitted rolls and cures.
    const double e0 = EventualChargeOff(s, inst.default_collection);
    const double e1 = EventualChargeOff(fitted, inst.default_collection);
    for (int b = 0; b < kNumBands; ++b) {
      const double monthly = std::min(0.5, AnnualToMonthly(s.pd[b]) * mult(f->entry) * e1 / e0);
      fitted.pd[b] = std::clamp(1 - std::pow(1 - monthly, 12), 1e-6, 0.99);
    }
    y += fmt::format("    roll_forward: [{}, {}]\n    cure: [{}, {}, {}]\n    prepay_cpr: {}\n",
                     fitted.roll_forward[0], fitted.roll_forward[1], fitted.cure[0], fitted.cure[1],
                     fitted.cure[2], fitted.prepay_cpr);
    y += fmt::format("    pd: [{}]\n", fmt::join(fitted.pd, ", "));
  }
  return y;
}

SnapshotSummary WriteSnapshot(const SnapshotOptions& o) {
  namespace fs = std::filesystem;
  const auto inst = LoadInstitution(o.institution);
  Twin twin(inst, LoadScenario(o.scenario), o.seed, o.instance);
  const Levers levers = DefaultLevers(*inst);
  std::vector<double> m(kNumMetrics);
  twin.Snapshot(m.data());
  const int64_t opening_loans = twin.num_loans();
  fs::create_directories(o.out);
  auto name = [&](int p, uint32_t id) {
    if (inst->book && id < inst->book->loans[p].size()) return inst->book->loans[p][id].id;
    return fmt::format("{}-{}", kProductNames[p], id);
  };
  // The book at month 0 as a tape, in the twin's units converted back to the tape's.
  WriteFileAtomically((fs::path(o.out) / "tape.csv").string(), [&](std::ostream& out) {
    WriteTapeHeader(out);
    for (int p = 0; p < kNumProducts; ++p) {
      const ProductSpec& s = inst->products[p].spec;
      const LoanBook& bk = twin.book(p);
      const MacroState& mac = twin.macro();
      const double add = s.variable_rate ? (s.rate_index == RateIndex::kPolicy ? mac.policy_rate
                                                                               : mac.mortgage_rate)
                                         : 0.0;
      for (size_t i = 0; i < bk.size(); ++i) {
        TapeLoan l;
        l.id = name(p, bk.id[i]);
        l.balance = bk.balance[i];
        l.rate = bk.rate[i] + add;
        l.age = bk.age[i];
        l.remaining = bk.remaining[i];
        l.term = s.revolving() ? 0 : s.terms[bk.term[i]].months;
        if (!s.revolving() && l.term < l.age + l.remaining) l.term = l.age + l.remaining;
        l.band = bk.band[i];
        l.months_past_due = bk.bucket[i];
        l.restructured = (bk.flags[i] & kRestructuredFlag) != 0;
        if (s.revolving())
          l.collateral = bk.collateral[i];
        else if (s.ltv_mean > 0)
          l.collateral = twin.CollateralValue(p, i);
        WriteTapeRow(out, p, s.variable_rate, l);
      }
    }
  });
  WriteFileAtomically((fs::path(o.out) / "balance_sheet.yaml").string(), [&](std::ostream& out) {
    const double securities = m[kSecurities];
    out << fmt::format(
        "# The balance sheet of {} at month 0 of {} (loantwin snapshot, seed {}).\n"
        "name: \"{}\"\nmembers: {}\nbase: \"{}\"\ncurrency: {}\n"
        "assets:\n  cash: {}\n  securities: {}\n  loans: {}\n  allowance: {}\n  other: {}\n"
        "liabilities:\n  shares: {}\n  certificates: {}\n  borrowings: {}\nequity: {}\n",
        inst->name, o.scenario, o.seed, inst->name, inst->members,
        inst->base.empty() ? o.institution : inst->base, inst->currency,
        m[kLiquidAssets] - securities, securities, m[kLoanBalance], m[kAllowance],
        m[kForeclosedAssets], m[kDeposits] - m[kCertificates], m[kCertificates],
        m[kWholesale] + m[kEmergencyBorrowing], m[kEquity] + m[kAoci]);
  });

  // Monthly loan-level performance: every loan open at a month end, and the month's exits.
  struct Prev {
    double balance;
    int bucket, remaining, age;
    double lgd;
  };
  std::array<std::vector<std::pair<uint32_t, Prev>>, kNumProducts> prev;
  auto capture = [&] {
    for (int p = 0; p < kNumProducts; ++p) {
      const LoanBook& bk = twin.book(p);
      prev[p].clear();
      prev[p].reserve(bk.size());
      for (size_t i = 0; i < bk.size(); ++i)
        prev[p].push_back({bk.id[i], Prev{bk.balance[i], bk.bucket[i], bk.remaining[i], bk.age[i],
                                          twin.LossGivenDefault(p, i)}});
    }
  };
  int64_t rows = 0;
  WriteFileAtomically((fs::path(o.out) / "performance.csv").string(), [&](std::ostream& out) {
    out << "loan_id,product,month,balance,days_past_due,event,amount\n";
    // Recoveries scheduled on charge-offs: (month, product, id) -> amount.
    std::vector<std::tuple<int, int, uint32_t, double>> recoveries;
    capture();
    for (int t = 1; t <= o.months; ++t) {
      twin.Step(levers, m.data());
      for (int p = 0; p < kNumProducts; ++p) {
        const ProductSpec& s = inst->products[p].spec;
        const LoanBook& bk = twin.book(p);
        std::unordered_map<uint32_t, size_t> now;
        now.reserve(bk.size());
        for (size_t i = 0; i < bk.size(); ++i) now.emplace(bk.id[i], i);
        std::unordered_map<uint32_t, const Prev*> before;
        before.reserve(prev[p].size());
        for (const auto& [id, pv] : prev[p]) before.emplace(id, &pv);
        std::unordered_map<uint32_t, bool> open;
        open.reserve(bk.size());
        for (size_t i = 0; i < bk.size(); ++i) {
          const bool existed = before.count(bk.id[i]) > 0;
          open.emplace(bk.id[i], true);
          if (existed)
            out << fmt::format("{},{},{},{},{},,\n", name(p, bk.id[i]), kProductNames[p], t,
                               bk.balance[i], 30 * bk.bucket[i]);
          else
            out << fmt::format("{},{},{},{},{},originated,{}\n", name(p, bk.id[i]),
                               kProductNames[p], t, bk.balance[i], 30 * bk.bucket[i],
                               bk.balance[i]);
          ++rows;
        }
        for (const auto& [id, pv] : prev[p]) {
          if (open.count(id)) continue;
          const LoanExit exit = InferExit(s, pv.bucket, pv.balance, pv.remaining);
          const char* event = ExitName(exit);
          if (exit == LoanExit::kChargedOff) {
            const double recovery = pv.balance * (1 - pv.lgd);
            if (recovery > 0) {
              if (s.ltv_mean > 0) {
                recoveries.emplace_back(t + s.recovery_months, p, id, recovery);
              } else {
                for (int k = 1; k <= s.recovery_months; ++k)
                  recoveries.emplace_back(t + k, p, id, recovery / s.recovery_months);
              }
            }
          }
          out << fmt::format("{},{},{},0,{},{},{}\n", name(p, id), kProductNames[p], t,
                             30 * pv.bucket, event, pv.balance);
          ++rows;
        }
      }
      for (const auto& [month, p, id, amount] : recoveries)
        if (month == t) {
          out << fmt::format("{},{},{},0,,recovered,{}\n", name(p, id), kProductNames[p], t,
                             amount);
          ++rows;
        }
      capture();
    }
  });
  return SnapshotSummary{inst->name, opening_loans, rows};
}

}  // namespace loantwin
