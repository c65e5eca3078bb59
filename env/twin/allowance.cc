#include "env/twin/allowance.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/check.h"
#include "core/normal_dist.h"
#include "core/yaml_reader.h"

namespace loantwin {

const char* AllowanceMethodName(AllowanceMethod m) {
  return m == AllowanceMethod::kCecl ? "cecl" : "ifrs9";
}

void ParseAllowanceRules(const YamlValue& node, AllowanceRules* rules) {
  YamlMap m(node);
  if (auto method = m.Get("method"))
    rules->method = method->AsEnum({"cecl", "ifrs9"}) == "cecl" ? AllowanceMethod::kCecl
                                                                : AllowanceMethod::kIfrs9;
  m.Read("forecast_months", &rules->forecast_months, 0, 120);
  m.Read("reversion_months", &rules->reversion_months, 0, 120);
  m.Read("discount", &rules->discount);
  m.Read("probation_months", &rules->probation_months, 0, 31);
  m.Read("restructured_probation_months", &rules->restructured_probation_months, 0, 31);
  if (auto list = m.Get("scenarios")) {
    if (!list->IsSequence())
      list->Fail("'scenarios' must be a list of {name, weight, z_shift} mappings");
    rules->scenarios.clear();
    double total = 0;
    for (const YamlValue& item : list->Items()) {
      YamlMap sm(item);
      AllowanceScenario s;
      s.name = sm.Require("name").AsString();
      s.weight = sm.Require("weight").AsDouble(0.0, 1.0);
      sm.Read("z_shift", &s.z_shift, -6.0, 6.0);
      sm.Done();
      total += s.weight;
      rules->scenarios.push_back(s);
    }
    if (rules->scenarios.empty()) list->Fail("'scenarios' must not be empty (omit it instead)");
    if (std::abs(total - 1) > 1e-6)
      list->Fail(fmt::format("the scenario weights sum to {:.6g}, not 1", total));
  }
  m.Done();
}

void ForecastMonthlyPd(double pd_forecast, double pd_long_run, const AllowanceRules& rules,
                       int months, std::vector<double>* out) {
  out->resize(months);
  const double h_fc = AnnualToMonthly(pd_forecast), h_lr = AnnualToMonthly(pd_long_run);
  const int f = rules.forecast_months, r = rules.reversion_months;
  for (int t = 1; t <= months; ++t) {
    double h;
    if (t <= f)
      h = h_fc;
    else if (t <= f + r)
      h = h_fc + (h_lr - h_fc) * (t - f) / static_cast<double>(r);
    else
      h = h_lr;
    (*out)[t - 1] = h;
  }
}

void LossCurves(const std::vector<double>& monthly_pd, double smm, double annual_rate,
                Repayment repayment, double payment_rate, bool discount, int max_months,
                float* life, float* twelve) {
  LossCurvesMany(1, &monthly_pd, smm, &annual_rate, repayment, payment_rate, discount, max_months,
                 &life, &twelve);
}

namespace {

/// Up to this many curves share one interleaved pass (the score bands).
constexpr int kCurvesPerPass = 8;

void RevolvingLossCurve(const std::vector<double>& monthly_pd, double smm, double v,
                        double payment_rate, bool discount, float* life, float* twelve) {
  LT_CHECK_GE(static_cast<int>(monthly_pd.size()), kRevolvingLossMonths);
  double survival = 1, paydown = 1, df = 1, loss = 0;
  for (int t = 1; t <= kRevolvingLossMonths; ++t) {
    if (discount) df *= v;
    const double h = monthly_pd[t - 1];
    loss += survival * h * paydown * df;
    if (t == 12) twelve[0] = static_cast<float>(loss);
    survival *= std::max(0.0, 1 - h - smm);
    paydown *= 1 - payment_rate;
  }
  life[0] = static_cast<float>(loss);
}

}  // namespace

void LossCurvesMany(int count, const std::vector<double>* monthly_pd, double smm,
                    const double* annual_rate, Repayment repayment, double payment_rate,
                    bool discount, int max_months, float* const* life, float* const* twelve) {
  if (count > kCurvesPerPass) {
    for (int k = 0; k < count; k += kCurvesPerPass)
      LossCurvesMany(std::min(kCurvesPerPass, count - k), monthly_pd + k, smm, annual_rate + k,
                     repayment, payment_rate, discount, max_months, life + k, twelve + k);
    return;
  }
  std::array<double, kCurvesPerPass> v{};
  for (int k = 0; k < count; ++k) v[k] = 1 / (1 + std::max(0.0, annual_rate[k]) / 12);
  if (repayment == Repayment::kRevolving) {
    for (int k = 0; k < count; ++k)
      RevolvingLossCurve(monthly_pd[k], smm, v[k], payment_rate, discount, life[k], twelve[k]);
    return;
  }
  LT_CHECK(max_months >= 1 && max_months <= kMaxLossMonths);
  for (int k = 0; k < count; ++k) LT_CHECK_GE(static_cast<int>(monthly_pd[k].size()), max_months);
  // Prefix sums over months t <= n of the discounted default density a_t = S_{t-1} h_t DF_t:
  //   A(n) = sum a_t,  E(n) = sum a_t v^-t,  T(n) = sum t a_t.
  // Annuity (n months left): the balance before payment t is (1 - v^(n+1-t)) / (1 - v^n), so
  //   loss(n) = (A(n) - v^(n+1) E(n)) / (1 - v^n);
  // linear: the balance before payment t is (n + 1 - t) / n, so loss(n) = ((n+1) A(n) - T(n)) / n.
  // Month by month for all curves together: each curve's recurrences (v^-t above all, a division
  // a month) are sequential, the curves' are independent.
  struct Sums {
    std::array<double, kMaxLossMonths + 1> a, e, t;
  };
  const std::unique_ptr<Sums[]> sums(new Sums[count]);  // uninitialised: written before read
  std::array<double, kCurvesPerPass> survival, df, vinv;
  survival.fill(1), df.fill(1), vinv.fill(1);
  for (int k = 0; k < count; ++k) sums[k].a[0] = sums[k].e[0] = sums[k].t[0] = 0;
  for (int t = 1; t <= max_months; ++t) {
    for (int k = 0; k < count; ++k) {
      if (discount) df[k] *= v[k];
      vinv[k] /= v[k];
      const double h = monthly_pd[k][t - 1];
      const double a = survival[k] * h * df[k];
      Sums& sk = sums[k];
      sk.a[t] = sk.a[t - 1] + a;
      sk.e[t] = sk.e[t - 1] + a * vinv[k];
      sk.t[t] = sk.t[t - 1] + t * a;
      survival[k] *= std::max(0.0, 1 - h - smm);
    }
  }
  // Per curve: the powers v^n first, then every term's losses independently of the others (a
  // loop the compiler vectorises; the same operations as term by term). For n <= 12 the
  // 12-month horizon is the whole term.
  std::array<double, kMaxLossMonths + 1> vpow;
  const int short_end = std::min(max_months, 12);
  for (int k = 0; k < count; ++k) {
    const double vk = v[k];
    const bool linear =
        repayment == Repayment::kLinear || std::max(0.0, annual_rate[k]) / 12 < 1e-9;
    const auto& a_sum = sums[k].a;
    const auto& e_sum = sums[k].e;
    const auto& t_sum = sums[k].t;
    float* const lf = life[k];
    float* const tw = twelve[k];
    double vn = 1;
    for (int n = 1; n <= max_months; ++n) vn *= vk, vpow[n] = vn;
    lf[0] = tw[0] = 0;
    if (linear) {
      for (int n = 1; n <= short_end; ++n)
        lf[n] = tw[n] = static_cast<float>(((n + 1) * a_sum[n] - t_sum[n]) / n);
      for (int n = short_end + 1; n <= max_months; ++n) {
        lf[n] = static_cast<float>(((n + 1) * a_sum[n] - t_sum[n]) / n);
        tw[n] = static_cast<float>(((n + 1) * a_sum[12] - t_sum[12]) / n);
      }
    } else {
      for (int n = 1; n <= short_end; ++n)
        lf[n] = tw[n] = static_cast<float>((a_sum[n] - vpow[n] * vk * e_sum[n]) / (1 - vpow[n]));
      for (int n = short_end + 1; n <= max_months; ++n) {
        lf[n] = static_cast<float>((a_sum[n] - vpow[n] * vk * e_sum[n]) / (1 - vpow[n]));
        tw[n] = static_cast<float>((a_sum[12] - vpow[n] * vk * e_sum[12]) / (1 - vpow[n]));
      }
    }
  }
}

}  // namespace loantwin
