#pragma once
// Asset-liability management: the funding and liquidity side of the balance sheet
// (institution YAML `alm:`). Liquid assets are cash plus a laddered securities portfolio held
// available for sale (coupon fixed at purchase, fair value from the yield curve, unrealised
// gains and losses in AOCI); member deposits are non-maturity shares, whose rate follows the
// policy rate with a lag, plus share certificates, whose rate is fixed until they mature;
// deposits grow, migrate into certificates as the rate gap widens and run off in stress;
// shortfalls are borrowed against collateral (a secured line sized by pledged mortgages and
// securities), then covered by selling securities, then by emergency borrowing: the liquidity
// shortfall event. Economic value of equity (EVE / NEV) under parallel shifts and the
// repricing gap by bucket read the same state. docs/twin-model.md ("Asset-liability
// management").

#include <array>
#include <string>
#include <vector>

#include "core/yaml_reader.h"
#include "env/twin/scenario.h"

namespace loantwin {

/// Longest securities maturity and certificate term, months.
inline constexpr int kMaxLadderMonths = 120;
inline constexpr int kLadderSlots = kMaxLadderMonths + 1;

struct AlmRules {
  // Securities (the term share of liquid assets: balance_sheet.liquid_term_share).
  int securities_maturity_months = 60;  ///< ladder length: equal monthly rungs, bullets
  double securities_spread = 0.002;     ///< yield over the curve at the rung's maturity
  // Member deposits.
  double certificate_share = 0.30;     ///< share certificates / member deposits at month 0
  int certificate_term_months = 12;    ///< term of a new certificate
  double certificate_spread = -0.006;  ///< certificate rate = curve(term) + spread (>= 0)
  double certificate_renewal = 0.80;   ///< share of maturing certificates renewed
  /// Annual share of non-maturity shares moving into certificates per percentage point the
  /// certificate rate exceeds the shares' rate beyond its month-0 gap.
  double certificate_migration = 0.05;
  double deposit_lag_months = 6;  ///< the shares' rate closes 1/lag of its gap each month
  /// Annual run-off of non-maturity shares per percentage point the BBB spread is above its
  /// month-0 level (stress outflows) ...
  double stress_outflow = 0.02;
  /// ... and per percentage point the policy rate exceeds the shares' rate beyond the month-0
  /// gap (members moving to money-market funds).
  double rate_outflow = 0.02;
  // Borrowing capacity (a secured line: advance rates on pledged collateral) and the lender of
  // last resort.
  double mortgage_advance_rate = 0.75;    ///< x current first-lien home loans
  double securities_advance_rate = 0.95;  ///< x fair value of securities
  double unsecured_line = 0.0;            ///< x total assets
  double emergency_spread = 0.02;         ///< emergency borrowing rate = policy + spread
  // Economic value of equity.
  double nmd_decay = 0.20;    ///< annual run-off of non-maturity shares assumed by EVE
  int eve_every_months = 12;  ///< EVE metrics refresh interval (month 0 always)
};

/// Parses the `alm:` block (strict: unknown keys and out-of-range values name the key).
void ParseAlmRules(const YamlValue& node, AlmRules* rules);

/// The yield curve of a month: linear in maturity from the policy rate (0 months) to the
/// 10-year rate (120 months and beyond), shifted by `shift` (annual fraction), floored at 0.
double CurveRate(const MacroState& m, int months, double shift = 0);

/// Price per unit par of a bullet with monthly coupons (annual `coupon`) and `months` left,
/// at annual yield `yield` (monthly compounding).
double BondPrice(double coupon, double yield, int months);

/// Present value of a fixed-rate annuity loan: balance, annual contract rate, months left,
/// monthly prepayment rate `smm` (at par), discounted at the annual rate `discount`. Equals the
/// balance when discount == rate, whatever smm is.
double AnnuityLoanValue(double balance, double rate, int months, double smm, double discount);

/// AnnuityLoanValue with its two powers, (q / (1 + discount / 12))^months and
/// (1 + rate / 12)^-months, remembered per (rate, months, smm, discount) in a direct-mapped
/// table: a book holds many loans of one band, rate and age (a cohort; the opening book's bands),
/// whose powers are equal. Returns exactly what AnnuityLoanValue returns.
class AnnuityValuer {
 public:
  AnnuityValuer();
  double Value(double balance, double rate, int months, double smm, double discount);

 private:
  struct Entry {
    double rate, smm, discount, xn, inv_a;
    int months = -1;
  };
  std::vector<Entry> table_;
};

/// A ladder of fixed-rate positions indexed by the month they mature (modulo kLadderSlots).
struct Ladder {
  std::array<double, kLadderSlots> par{}, coupon{};
  double Total() const;
  /// Par x coupon summed (annual interest).
  double AnnualInterest() const;
  /// Value at the curve (+ spread + shift), `month` the current month.
  double Value(const MacroState& m, int month, double spread, double shift) const;
  /// Value at the curve (+ spread) and modified duration in years, -dV/dy / V with the price's
  /// derivative in closed form (0 when empty), in one pass over the rungs.
  struct Valuation {
    double value = 0, duration = 0;
  };
  Valuation ValueAndDuration(const MacroState& m, int month, double spread) const;
  /// ValueAndDuration(...).duration.
  double Duration(const MacroState& m, int month, double spread) const;
  /// Adds `amount` at `coupon` maturing at month `maturity`, blending the coupon.
  void Add(int maturity, double amount, double coupon);
};

/// Funding and liquidity state (part of the twin's saved state).
struct AlmState {
  double cash = 0;
  Ladder securities;  ///< par at amortised cost (bought at par)
  Ladder certificates;
  double shares = 0;          ///< non-maturity shares (regular, share drafts, money market)
  double share_rate = 0;      ///< their current annual rate
  double wholesale = 0;       ///< secured line drawn
  double emergency = 0;       ///< emergency borrowing (liquidity shortfall)
  double spread0 = 0;         ///< BBB spread at month 0 (stress outflows)
  double rate_gap0 = 0;       ///< policy - share rate at month 0
  double cert_gap0 = 0;       ///< certificate - share rate at month 0
  double base_migration = 0;  ///< annual migration keeping the certificate share stable
  // EVE metrics (refreshed every eve_every_months).
  double eve = 0, eve_up300 = 0, pv_assets = 0, pv_assets_up300 = 0;

  double deposits() const { return shares + certificates.Total(); }
};

/// This month's ALM flows.
struct AlmFlows {
  double liquid_income = 0;     ///< cash and securities interest
  double funding = 0;           ///< shares, certificates, secured line, emergency borrowing
  double deposit_change = 0;    ///< net new member money (growth less outflows)
  double securities_gains = 0;  ///< realised on sales (losses negative), in net income
  double shortfall = 0;         ///< emergency borrowing drawn this month
  double matured = 0, bought = 0, sold = 0;  ///< securities at par (amortised cost)
};

/// Opening position: liquid assets split into cash and a securities ladder at par (coupons at
/// the curve, so fair value = par), deposits into shares and certificates.
void AlmReset(const AlmRules& rules, double term_share, double deposit_growth, double deposit_beta,
              double deposit_spread, const MacroState& m, double liquid, double deposits,
              AlmState* s);

/// The month's interest on the opening positions; moves the share rate one lag step first.
/// `cash_spread`: added to the policy rate for cash; `wholesale_spread` for the secured line.
void AlmAccrue(const AlmRules& rules, double deposit_beta, double deposit_spread,
               double cash_spread, double wholesale_spread, const MacroState& m, int month,
               AlmState* s, AlmFlows* f);

/// Deposit behaviour for the month: maturing certificates renew or return to shares,
/// migration into certificates, growth and run-off of shares (the cash moves with them).
void AlmDeposits(const AlmRules& rules, double deposit_growth, const MacroState& m, int month,
                 AlmState* s, AlmFlows* f);

/// Secured-line capacity: advance rates on current first-lien home loans and securities, plus
/// the unsecured line on total assets.
double BorrowingCapacity(const AlmRules& rules, const MacroState& m, int month, const AlmState& s,
                         double home_current, double total_assets);

/// Month-end liquidity management: maturing securities to cash; with cash above `floor`, repay
/// emergency borrowing then the line, then buy securities up to `term_share` of liquid assets;
/// below it, draw the line up to `capacity`, then sell securities (gains realised), then
/// borrow in an emergency.
void AlmManageLiquidity(const AlmRules& rules, double term_share, const MacroState& m, int month,
                        double floor, double capacity, AlmState* s, AlmFlows* f);

/// The liability side's economic value under a parallel shift (annual fraction): shares as a
/// decaying balance paying the share rate moved by `deposit_beta` x shift, certificates at the
/// curve, borrowings at par.
double LiabilityValue(const AlmRules& rules, double deposit_beta, const MacroState& m, int month,
                      const AlmState& s, double shift);

/// Repricing gap buckets (months): [0,3), [3,12), [12,36), [36,60), [60,inf).
inline constexpr int kGapBuckets = 5;
const std::array<std::string, kGapBuckets>& GapBucketNames();
inline int GapBucket(int months) {
  return months < 3 ? 0 : months < 12 ? 1 : months < 36 ? 2 : months < 60 ? 3 : 4;
}

}  // namespace loantwin
