#pragma once
// A private fund's distribution waterfall and a tranched capital structure
// (docs/fund-model.md), as plain state machines the fund model drives month by month and the
// tests drive by hand.
//
// Equity waterfall (European, whole-fund), each distribution in order:
//   1. return of capital: 100% to the investors until contributions are returned;
//   2. preferred return: 100% to the investors until the pref account (pref_rate a year,
//      compounded monthly on unreturned capital and unpaid pref) is paid;
//   3. GP catch-up: `catch_up` of each dollar to the GP (the rest to the investors) until the
//      GP holds `carry` of all profit distributed (pref + split + catch-up);
//   4. carried interest: `carry` to the GP, 1 - carry to the investors.
// "Investors" are the LPs and the GP's own commitment pro rata (gp_commitment).
//
// Tranches: senior and mezzanine notes ahead of the equity, funded pro rata with every capital
// call, paying coupons monthly; their overcollateralisation tests (assets / notes at and above
// the tranche >= trigger) divert cash from the juniors to senior principal while failing, and a
// failing mezzanine test defers its coupon (capitalised, paid-in-kind).

#include <array>
#include <string>
#include <vector>

namespace loantwin {

struct WaterfallTerms {
  double pref_rate = 0.08;      ///< annual preferred return
  double catch_up = 1.0;        ///< GP's share of tier 3 (must exceed carry)
  double carry = 0.20;          ///< carried interest
  double gp_commitment = 0.01;  ///< GP's share of the equity commitment
};

/// Amounts one distribution paid, by tier and party.
struct WaterfallSplit {
  double return_of_capital = 0, preferred = 0, catch_up = 0, carry_split = 0;
  double lp = 0;          ///< LPs' total (their pro-rata share of tiers 1, 2 and 4's investor part)
  double gp = 0;          ///< GP's total: its pro-rata investor share + catch-up + carry
  double gp_promote = 0;  ///< catch-up + carried interest (part of gp)
};

class EquityWaterfall {
 public:
  explicit EquityWaterfall(const WaterfallTerms& terms = {});
  /// Equity contributed (capital called for the equity).
  void Contribute(double amount);
  /// One month of preferred-return accrual.
  void AccrueMonth();
  /// Distributes `amount` through the four tiers.
  WaterfallSplit Distribute(double amount);

  double contributed() const { return contributed_; }
  double returned() const { return returned_; }
  double pref_due() const { return pref_due_; }
  double investor_profit() const { return investor_profit_; }
  double gp_promote() const { return gp_promote_; }
  const WaterfallTerms& terms() const { return t_; }
  std::array<double, 5> Save() const {
    return {contributed_, returned_, pref_due_, investor_profit_, gp_promote_};
  }
  void Load(const std::array<double, 5>& s) {
    contributed_ = s[0], returned_ = s[1], pref_due_ = s[2], investor_profit_ = s[3];
    gp_promote_ = s[4];
  }

 private:
  WaterfallTerms t_;
  double monthly_pref_;
  double contributed_ = 0, returned_ = 0, pref_due_ = 0;
  double investor_profit_ = 0;  ///< pref + investors' split paid
  double gp_promote_ = 0;       ///< catch-up + carry paid
};

struct TrancheTerms {
  std::string name;
  double share = 0;       ///< of the commitment
  double coupon = 0;      ///< annual, on the outstanding balance, paid monthly
  double oc_trigger = 0;  ///< assets / (this and senior notes) must stay >= this (0: no test)
};

/// Senior and mezzanine notes (in that order) ahead of the equity.
class Notes {
 public:
  Notes() = default;
  explicit Notes(std::vector<TrancheTerms> tranches);
  int size() const { return static_cast<int>(t_.size()); }
  const TrancheTerms& terms(int k) const { return t_[k]; }
  double balance(int k) const { return balance_[k]; }
  double total_balance() const;
  /// A capital call's share for tranche k (its `share` of the call).
  void Fund(int k, double amount) { balance_[k] += amount; }
  /// Coupon due this month on tranche k.
  double CouponDue(int k) const { return balance_[k] * t_[k].coupon / 12.0; }
  /// OC ratio of tranche k: assets / (balances of tranches 0..k); +inf without notes.
  double OcRatio(int k, double assets) const;
  bool OcPasses(int k, double assets) const;
  /// Capitalises an unpaid coupon (paid-in-kind).
  void Capitalise(int k, double amount) { balance_[k] += amount; }
  /// Repays up to `amount` of tranche k; returns what was repaid.
  double Repay(int k, double amount);
  std::vector<double>& balances() { return balance_; }
  const std::vector<double>& balances() const { return balance_; }

 private:
  std::vector<TrancheTerms> t_;
  std::vector<double> balance_;
};

/// Annualised internal rate of return of monthly cash flows (flows[m] at month m; negative =
/// paid in): the r with sum flows[m] / (1 + r)^(m / 12) = 0, to 1e-12 in the monthly rate.
/// NaN when undefined (no sign change).
double AnnualIrr(const std::vector<double>& flows);
/// Money multiple: total received / total paid in (NaN when nothing was paid in).
double EquityMultiple(const std::vector<double>& flows);

}  // namespace loantwin
