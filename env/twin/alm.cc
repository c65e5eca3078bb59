#include "env/twin/alm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/yaml_reader.h"

namespace loantwin {

void ParseAlmRules(const YamlValue& node, AlmRules* r) {
  YamlMap m(node);
  m.Read("securities_maturity_months", &r->securities_maturity_months, 1, kMaxLadderMonths);
  m.Read("securities_spread", &r->securities_spread, -0.05, 0.1);
  m.Read("certificate_share", &r->certificate_share, 0.0, 0.95);
  m.Read("certificate_term_months", &r->certificate_term_months, 1, kMaxLadderMonths);
  m.Read("certificate_spread", &r->certificate_spread, -0.05, 0.1);
  m.Read("certificate_renewal", &r->certificate_renewal, 0.0, 1.0);
  m.Read("certificate_migration", &r->certificate_migration, 0.0, 2.0);
  m.Read("deposit_lag_months", &r->deposit_lag_months, 1.0, 120.0);
  m.Read("stress_outflow", &r->stress_outflow, 0.0, 2.0);
  m.Read("rate_outflow", &r->rate_outflow, 0.0, 2.0);
  m.Read("mortgage_advance_rate", &r->mortgage_advance_rate, 0.0, 1.0);
  m.Read("securities_advance_rate", &r->securities_advance_rate, 0.0, 1.0);
  m.Read("unsecured_line", &r->unsecured_line, 0.0, 1.0);
  m.Read("emergency_spread", &r->emergency_spread, 0.0, 0.2);
  m.Read("nmd_decay", &r->nmd_decay, 0.01, 0.99);
  m.Read("eve_every_months", &r->eve_every_months, 1, 120);
  m.Done();
}

double CurveRate(const MacroState& m, int months, double shift) {
  const double w = std::min(1.0, std::max(0, months) / 120.0);
  return std::max(0.0, m.policy_rate + (m.rate_10y - m.policy_rate) * w + shift);
}

double BondPrice(double coupon, double yield, int months) {
  if (months <= 0) return 1;
  const double y = std::max(0.0, yield) / 12;
  const double c = coupon / 12;
  if (y < 1e-12) return 1 + c * months;
  const double v = std::pow(1 + y, -months);
  return c * (1 - v) / y + v;
}

namespace {

/// x + x^2 + ... + x^n, given x^n.
double GeomSum(double x, int n, double xn) {
  if (std::abs(1 - x) < 1e-10) return n * x;
  return x * (1 - xn) / (1 - x);
}

}  // namespace

namespace {

/// The annuity loan's value given its powers xn = x^months and inv_a = (1 + i)^-months.
double AnnuityValueFromPowers(double balance, double i, int months, double q, double x, double xn,
                              double inv_a) {
  const double s1 = GeomSum(x, months, xn);
  if (i < 1e-9) {
    // Straight-line principal B/n: cash flow k = q^(k-1) [B/n + (1 - q) B (n - k) / n].
    // PV = (B / (q n)) [sum x^k + (1 - q) sum x^k (n - k)].
    double weighted = 0, xk = 1;
    for (int k = 1; k <= months; ++k) xk *= x, weighted += xk * (months - k);
    return balance / (q * months) * (s1 + (1 - q) * weighted);
  }
  const double payment = balance * i / (1 - inv_a);
  // Cash flow k = q^(k-1) [P + (1 - q) B_k], B_k = (P / i)(1 - (1 + i)^(k - n)) scheduled.
  const double y = x * (1 + i);
  const double s2_scaled =
      std::abs(1 - y) < 1e-10 ? months * y * inv_a : y * (inv_a - xn) / (1 - y);
  return payment / q * (s1 + (1 - q) / i * (s1 - s2_scaled));
}

constexpr int kValuerBits = 12;

}  // namespace

double AnnuityLoanValue(double balance, double rate, int months, double smm, double discount) {
  if (months <= 0 || balance <= 0) return std::max(0.0, balance);
  const double i = std::max(0.0, rate) / 12;
  const double j = std::max(0.0, discount) / 12;
  const double q = 1 - std::clamp(smm, 0.0, 0.999);
  const double x = q / (1 + j);
  const double xn = std::pow(x, months);
  const double inv_a = i < 1e-9 ? 0.0 : std::pow(1 + i, -months);  // (1 + i)^-n
  return AnnuityValueFromPowers(balance, i, months, q, x, xn, inv_a);
}

AnnuityValuer::AnnuityValuer() : table_(size_t{1} << kValuerBits) {}

double AnnuityValuer::Value(double balance, double rate, int months, double smm, double discount) {
  if (months <= 0 || balance <= 0) return std::max(0.0, balance);
  const double i = std::max(0.0, rate) / 12;
  const double j = std::max(0.0, discount) / 12;
  const double q = 1 - std::clamp(smm, 0.0, 0.999);
  const double x = q / (1 + j);
  uint64_t bits;
  std::memcpy(&bits, &rate, sizeof bits);
  const uint64_t h = (bits ^ (static_cast<uint64_t>(months) << 40)) * 0x9e3779b97f4a7c15ULL;
  Entry& e = table_[h >> (64 - kValuerBits)];
  if (e.months != months || e.rate != rate || e.smm != smm || e.discount != discount) {
    e.rate = rate, e.smm = smm, e.discount = discount, e.months = months;
    e.xn = std::pow(x, months);
    e.inv_a = i < 1e-9 ? 0.0 : std::pow(1 + i, -months);
  }
  return AnnuityValueFromPowers(balance, i, months, q, x, e.xn, e.inv_a);
}

double Ladder::Total() const {
  double t = 0;
  for (double p : par) t += p;
  return t;
}

double Ladder::AnnualInterest() const {
  double t = 0;
  for (int k = 0; k < kLadderSlots; ++k) t += par[k] * coupon[k];
  return t;
}

double Ladder::Value(const MacroState& m, int month, double spread, double shift) const {
  double v = 0;
  for (int k = 0; k < kLadderSlots; ++k) {
    if (par[k] == 0) continue;
    const int n = ((k - month) % kLadderSlots + kLadderSlots) % kLadderSlots;
    v += par[k] * BondPrice(coupon[k], CurveRate(m, n, shift) + spread, n);
  }
  return v;
}

Ladder::Valuation Ladder::ValueAndDuration(const MacroState& m, int month, double spread) const {
  // One pass: each rung's price and its derivative in the annual yield (the curve's rate, floored
  // at 0, plus the spread), differentiated in closed form: P = (c / y)(1 - v) + v with
  // y = Y / 12 and v = (1 + y)^-n.
  Valuation out;
  double slope = 0;  // dV/dY
  for (int k = 0; k < kLadderSlots; ++k) {
    if (par[k] == 0) continue;
    const int n = ((k - month) % kLadderSlots + kLadderSlots) % kLadderSlots;
    const double c = coupon[k] / 12;
    if (n <= 0) {
      out.value += par[k];
      continue;
    }
    const double base = m.policy_rate + (m.rate_10y - m.policy_rate) * std::min(1.0, n / 120.0);
    // The curve's floor and the yield's floor stop the price moving with the shift.
    const double yield = std::max(0.0, base) + spread;
    const bool moves = base > 0 && yield > 0;
    const double y = std::max(0.0, yield) / 12;
    if (y < 1e-12) {
      out.value += par[k] * (1 + c * n);
      if (moves) slope -= par[k] * (c * n * (n + 1) / 2.0 + n) / 12;
      continue;
    }
    const double v = std::pow(1 + y, -n);
    out.value += par[k] * (c * (1 - v) / y + v);
    if (moves) {
      const double dv = -n * v / (1 + y);
      slope += par[k] * (-c * (1 - v) / (y * y) - c * dv / y + dv) / 12;
    }
  }
  out.duration = out.value > 0 ? -slope / out.value : 0.0;
  return out;
}

double Ladder::Duration(const MacroState& m, int month, double spread) const {
  return ValueAndDuration(m, month, spread).duration;
}

void Ladder::Add(int maturity, double amount, double rate) {
  if (amount <= 0) return;
  const int k = maturity % kLadderSlots;
  const double total = par[k] + amount;
  coupon[k] = (par[k] * coupon[k] + amount * rate) / total;
  par[k] = total;
}

void AlmReset(const AlmRules& r, double term_share, double deposit_growth, double deposit_beta,
              double deposit_spread, const MacroState& m, double liquid, double deposits,
              AlmState* s) {
  *s = AlmState{};
  const int ms = r.securities_maturity_months;
  const double sec = term_share * liquid;
  // Rungs maturing in 1..M months with coupons at today's curve: fair value = par.
  for (int k = 1; k <= ms; ++k)
    s->securities.Add(k, sec / ms, CurveRate(m, k) + r.securities_spread);
  s->cash = liquid - s->securities.Total();
  const int t = r.certificate_term_months;
  const double cert_rate = std::max(0.0, CurveRate(m, t) + r.certificate_spread);
  const double certs = r.certificate_share * deposits;
  for (int k = 1; k <= t; ++k) s->certificates.Add(k, certs / t, cert_rate);
  s->shares = deposits - s->certificates.Total();
  s->share_rate = std::max(0.0, deposit_beta * m.policy_rate + deposit_spread);
  s->spread0 = m.credit_spread;
  s->rate_gap0 = m.policy_rate - s->share_rate;
  s->cert_gap0 = cert_rate - s->share_rate;
  if (s->shares > 0) {
    // Flows keeping the certificate share: renewals lost + the certificates' share of growth.
    const double c_over_n = s->certificates.Total() / s->shares;
    s->base_migration =
        std::max(0.0, 12 * c_over_n * ((1 - r.certificate_renewal) / t + deposit_growth / 12));
  }
}

void AlmAccrue(const AlmRules& r, double deposit_beta, double deposit_spread, double cash_spread,
               double wholesale_spread, const MacroState& m, int month, AlmState* s, AlmFlows* f) {
  (void)month;
  const double target = std::max(0.0, deposit_beta * m.policy_rate + deposit_spread);
  s->share_rate += (target - s->share_rate) / r.deposit_lag_months;
  f->liquid_income = s->cash * std::max(0.0, m.policy_rate + cash_spread) / 12 +
                     s->securities.AnnualInterest() / 12;
  f->funding = s->shares * s->share_rate / 12 + s->certificates.AnnualInterest() / 12 +
               s->wholesale * std::max(0.0, m.policy_rate + wholesale_spread) / 12 +
               s->emergency * std::max(0.0, m.policy_rate + r.emergency_spread) / 12;
}

void AlmDeposits(const AlmRules& r, double deposit_growth, const MacroState& m, int month,
                 AlmState* s, AlmFlows* f) {
  const int t = r.certificate_term_months;
  const double cert_rate = std::max(0.0, CurveRate(m, t) + r.certificate_spread);
  // Maturing certificates: renewed at today's rate or returned to shares.
  const int slot = month % kLadderSlots;
  const double maturing = s->certificates.par[slot];
  s->certificates.par[slot] = 0, s->certificates.coupon[slot] = 0;
  const double renewed = r.certificate_renewal * maturing;
  s->shares += maturing - renewed;
  // Migration from shares as the certificate-share rate gap widens.
  const double gap = (cert_rate - s->share_rate) - s->cert_gap0;
  const double migration =
      std::clamp(s->base_migration + r.certificate_migration * 100 * gap, 0.0, 6.0) / 12;
  const double moved = s->shares * migration;
  s->shares -= moved;
  s->certificates.Add(month + t, renewed + moved, cert_rate);
  // Growth of member money less run-off in stress and to market-rate alternatives.
  const double outflow =
      (r.stress_outflow * 100 * std::max(0.0, m.credit_spread - s->spread0) +
       r.rate_outflow * 100 * std::max(0.0, (m.policy_rate - s->share_rate) - s->rate_gap0)) /
      12;
  const double growth = (s->shares + s->certificates.Total()) * deposit_growth / 12;
  const double change = growth - s->shares * std::min(0.5, outflow);
  f->deposit_change = std::max(change, -s->shares);
  s->shares += f->deposit_change;
  s->cash += f->deposit_change;
}

double BorrowingCapacity(const AlmRules& r, const MacroState& m, int month, const AlmState& s,
                         double home_current, double total_assets) {
  return r.mortgage_advance_rate * home_current +
         r.securities_advance_rate * s.securities.Value(m, month, r.securities_spread, 0) +
         r.unsecured_line * std::max(0.0, total_assets);
}

void AlmManageLiquidity(const AlmRules& r, double term_share, const MacroState& m, int month,
                        double floor, double capacity, AlmState* s, AlmFlows* f) {
  const int slot = month % kLadderSlots;
  f->matured = s->securities.par[slot];
  s->cash += s->securities.par[slot];
  s->securities.par[slot] = 0, s->securities.coupon[slot] = 0;
  if (s->cash >= floor) {
    double surplus = s->cash - floor;
    const double repay_emergency = std::min(s->emergency, surplus);
    s->emergency -= repay_emergency, s->cash -= repay_emergency, surplus -= repay_emergency;
    const double repay = std::min(s->wholesale, surplus);
    s->wholesale -= repay, s->cash -= repay, surplus -= repay;
    const double held = s->securities.Total();
    const double buy = std::min(term_share * (s->cash + held) - held, surplus);
    if (buy > 0) {
      const int ms = r.securities_maturity_months;
      s->securities.Add(month + ms, buy, CurveRate(m, ms) + r.securities_spread);
      s->cash -= buy;
      f->bought = buy;
    }
    return;
  }
  double need = floor - s->cash;
  const double draw = std::min(need, std::max(0.0, capacity - s->wholesale));
  s->wholesale += draw, s->cash += draw, need -= draw;
  if (need <= 0) return;
  const double value = s->securities.Value(m, month, r.securities_spread, 0);
  if (value > 0) {
    const double fraction = std::min(1.0, need / value);
    const double book = s->securities.Total();
    f->securities_gains += fraction * (value - book);
    f->sold = fraction * book;
    for (double& p : s->securities.par) p *= 1 - fraction;
    if (fraction == 1.0) s->securities.coupon.fill(0);
    s->cash += fraction * value, need -= fraction * value;
  }
  if (need <= 0) return;
  s->emergency += need, s->cash += need;
  f->shortfall = need;
}

double LiabilityValue(const AlmRules& r, double deposit_beta, const MacroState& m, int month,
                      const AlmState& s, double shift) {
  // Shares: balance decaying at nmd_decay, paying the share rate moved by beta x shift.
  const double d = 1 - std::pow(1 - r.nmd_decay, 1.0 / 12);
  const double rate = std::max(0.0, s.share_rate + deposit_beta * shift) / 12;
  // Past 120 months the curve is flat: each month's discount factor is the last one's over
  // (1 + r / 12), so only the first 120 need a power.
  const double flat = 1 / (1 + CurveRate(m, 120, shift) / 12);
  double shares = 0, survive = 1, df = 1;
  int k = 1;
  for (; k <= 600 && survive > 1e-6; ++k) {
    df = k <= 120 ? std::pow(1 + CurveRate(m, k, shift) / 12, -k) : df * flat;
    shares += survive * (d + rate) * df;
    survive *= 1 - d;
  }
  // The balance left at 600 months (or when survival is negligible) repaid then.
  shares += survive * (k > 600 ? df : std::pow(1 + CurveRate(m, 600, shift) / 12, -600));
  return s.shares * shares + s.certificates.Value(m, month, r.certificate_spread, shift) +
         s.wholesale + s.emergency;
}

const std::array<std::string, kGapBuckets>& GapBucketNames() {
  static const std::array<std::string, kGapBuckets> names = {"0-3m", "3-12m", "1-3y", "3-5y",
                                                             "5y+"};
  return names;
}

}  // namespace loantwin
