#include "env/fund/waterfall.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace loantwin {

EquityWaterfall::EquityWaterfall(const WaterfallTerms& terms)
    : t_(terms), monthly_pref_(std::pow(1.0 + terms.pref_rate, 1.0 / 12.0) - 1.0) {
  if (!(t_.catch_up > t_.carry || t_.catch_up == 0))
    throw std::invalid_argument("waterfall: catch_up must exceed carry (or be 0: no catch-up)");
}

void EquityWaterfall::Contribute(double amount) {
  contributed_ += amount;
}

void EquityWaterfall::AccrueMonth() {
  pref_due_ += (contributed_ - returned_ + pref_due_) * monthly_pref_;
}

WaterfallSplit EquityWaterfall::Distribute(double amount) {
  WaterfallSplit s;
  double x = std::max(0.0, amount);
  // 1. Return of capital.
  s.return_of_capital = std::min(x, std::max(0.0, contributed_ - returned_));
  returned_ += s.return_of_capital, x -= s.return_of_capital;
  // 2. Preferred return.
  s.preferred = std::min(x, pref_due_);
  pref_due_ -= s.preferred, investor_profit_ += s.preferred, x -= s.preferred;
  double investors = s.return_of_capital + s.preferred;
  // 3. Catch-up: GP gets catch_up of each dollar until promote = carry x (all profit paid).
  if (x > 0 && t_.catch_up > 0 && t_.carry > 0) {
    // promote + c y = carry (investor_profit + (1 - c) y + promote + c y)
    const double need =
        (t_.carry * (investor_profit_ + gp_promote_) - gp_promote_) / (t_.catch_up - t_.carry);
    const double y = std::clamp(need, 0.0, x);
    s.catch_up = y;
    gp_promote_ += t_.catch_up * y;
    investor_profit_ += (1 - t_.catch_up) * y;
    investors += (1 - t_.catch_up) * y;
    x -= y;
  }
  // 4. Carried interest split.
  s.carry_split = x;
  gp_promote_ += t_.carry * x;
  investor_profit_ += (1 - t_.carry) * x;
  investors += (1 - t_.carry) * x;
  s.gp_promote = t_.catch_up * s.catch_up + t_.carry * x;
  s.lp = investors * (1 - t_.gp_commitment);
  s.gp = investors * t_.gp_commitment + s.gp_promote;
  return s;
}

Notes::Notes(std::vector<TrancheTerms> tranches)
    : t_(std::move(tranches)), balance_(t_.size(), 0.0) {}

double Notes::total_balance() const {
  double s = 0;
  for (double b : balance_) s += b;
  return s;
}

double Notes::OcRatio(int k, double assets) const {
  double notes = 0;
  for (int j = 0; j <= k; ++j) notes += balance_[j];
  return notes > 0 ? assets / notes : std::numeric_limits<double>::infinity();
}

bool Notes::OcPasses(int k, double assets) const {
  return t_[k].oc_trigger <= 0 || OcRatio(k, assets) >= t_[k].oc_trigger;
}

double Notes::Repay(int k, double amount) {
  const double paid = std::clamp(amount, 0.0, balance_[k]);
  balance_[k] -= paid;
  if (balance_[k] < 1e-9) balance_[k] = 0;
  return paid;
}

double AnnualIrr(const std::vector<double>& flows) {
  bool pos = false, neg = false;
  for (double f : flows) pos |= f > 0, neg |= f < 0;
  if (!pos || !neg) return std::numeric_limits<double>::quiet_NaN();
  // NPV in the monthly rate r; bisection on a bracket then Newton polish.
  auto npv = [&](double r, double* d) {
    double v = 0, dv = 0, disc = 1.0;
    const double q = 1.0 / (1.0 + r);
    for (size_t m = 0; m < flows.size(); ++m) {
      v += flows[m] * disc;
      dv -= static_cast<double>(m) * flows[m] * disc * q;
      disc *= q;
    }
    if (d) *d = dv;
    return v;
  };
  double lo = -0.99, hi = 1.0;
  double flo = npv(lo, nullptr), fhi = npv(hi, nullptr);
  while (flo * fhi > 0 && hi < 1e6) hi *= 4, fhi = npv(hi, nullptr);
  if (flo * fhi > 0) return std::numeric_limits<double>::quiet_NaN();
  double r = 0.0;
  for (int it = 0; it < 300 && hi - lo > 1e-15; ++it) {
    r = 0.5 * (lo + hi);
    const double f = npv(r, nullptr);
    if (f == 0) break;
    if ((f > 0) == (flo > 0))
      lo = r, flo = f;
    else
      hi = r;
  }
  for (int it = 0; it < 3; ++it) {  // polish
    double d;
    const double f = npv(r, &d);
    if (d == 0) break;
    const double step = f / d;
    if (!(std::abs(step) < 1e-9)) break;
    r -= step;
  }
  return std::pow(1.0 + r, 12.0) - 1.0;
}

double EquityMultiple(const std::vector<double>& flows) {
  double in = 0, out = 0;
  for (double f : flows) (f < 0 ? in : out) += std::abs(f);
  return in > 0 ? out / in : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace loantwin
