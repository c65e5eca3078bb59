// Asset-liability management: instrument values, deposit behaviour, the liquidity waterfall,
// EVE and the repricing gap, AOCI in capital (env/twin/alm.h).

#include "env/twin/alm.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/config_error.h"
#include "env/twin/institution.h"
#include "env/twin/metrics.h"
#include "env/twin/rate_sensitivity.h"
#include "env/twin/scenario.h"
#include "env/twin/twin.h"

namespace loantwin {
namespace {

/// The same loans valued month by month (independent of the closed form), as the twin books
/// them: each month every surviving loan pays its schedule, then a share smm of them prepays in
/// full.
double BruteForceLoanValue(double balance, double rate, int months, double smm, double discount) {
  const double i = rate / 12, j = discount / 12;
  const double payment = balance * i / (1 - std::pow(1 + i, -months));
  double b = balance, survive = 1, pv = 0, df = 1;
  for (int k = 1; k <= months; ++k) {
    df /= 1 + j;
    b = b * (1 + i) - payment;  // scheduled balance of a surviving loan
    pv += survive * (payment + smm * std::max(0.0, b)) * df;
    survive *= 1 - smm;
  }
  return pv;
}

TEST(Alm, LoanValueIsParAtTheCouponAndMatchesTheScheduleUnderShifts) {
  for (double smm : {0.0, 0.005, 0.03})
    EXPECT_NEAR(AnnuityLoanValue(200000, 0.065, 300, smm, 0.065), 200000, 1e-6) << smm;
  for (double smm : {0.0, 0.004, 0.02})
    for (double disc : {0.02, 0.095})
      for (int n : {12, 60, 359})
        EXPECT_NEAR(AnnuityLoanValue(1e5, 0.065, n, smm, disc),
                    BruteForceLoanValue(1e5, 0.065, n, smm, disc), 1e-6)
            << smm << " " << disc << " " << n;
  // Rates up: the value falls, less for a loan that prepays faster (shorter life).
  const double slow = AnnuityLoanValue(1e5, 0.06, 360, 0.002, 0.09);
  const double fast = AnnuityLoanValue(1e5, 0.06, 360, 0.02, 0.09);
  EXPECT_LT(slow, fast);
  EXPECT_LT(fast, 1e5);
  EXPECT_GT(AnnuityLoanValue(1e5, 0.06, 360, 0.005, 0.03), 1e5);
  // A bullet at its own yield is par; above it, a discount.
  EXPECT_NEAR(BondPrice(0.04, 0.04, 60), 1.0, 1e-12);
  EXPECT_LT(BondPrice(0.04, 0.07, 60), 1.0);
  EXPECT_NEAR(BondPrice(0.04, 0.0, 12), 1.04, 1e-12);
}

// The book's valuer remembers powers per (rate, months, smm, discount): every value, first seen,
// repeated, or after another key took its slot, is bit-identical to AnnuityLoanValue's.
TEST(Alm, RememberedPowersGiveExactlyTheLoanValue) {
  AnnuityValuer valuer;
  for (int pass = 0; pass < 2; ++pass)
    for (int n = -1; n <= 480; n += 7)
      for (double rate : {0.0, 0.031, 0.0655, 0.19})
        for (double smm : {0.0, 0.0042})
          for (double shift : {0.0, 0.03}) {
            const double balance = 1000 + 37.5 * n;
            EXPECT_EQ(valuer.Value(balance, rate, n, smm, rate + shift),
                      AnnuityLoanValue(balance, rate, n, smm, rate + shift))
                << rate << " " << n << " " << smm << " " << shift;
          }
}

MacroState Macro(double policy, double ten_year, double spread) {
  MacroState m;
  m.policy_rate = policy, m.rate_10y = ten_year, m.credit_spread = spread, m.unemployment = 0.04;
  return m;
}

TEST(Alm, SharesRepriceWithALagCertificatesAtMaturityAndMembersMoveWhenRatesRise) {
  AlmRules r;
  const double beta = 0.5, spread = 0.002;
  const MacroState calm = Macro(0.02, 0.03, 0.015);
  AlmState s;
  AlmReset(r, 0.5, 0.03, beta, spread, calm, 100, 900, &s);
  EXPECT_NEAR(s.certificates.Total(), r.certificate_share * 900, 1e-9);
  EXPECT_NEAR(s.shares + s.certificates.Total(), 900, 1e-9);
  EXPECT_NEAR(s.securities.Value(calm, 0, r.securities_spread, 0), s.securities.Total(), 1e-9);
  // A 60-month ladder of bullets: about 2.5 years of (modified) duration; a +100 bp shift loses
  // about duration x 1% of its value.
  const double duration = s.securities.Duration(calm, 0, r.securities_spread);
  EXPECT_GT(duration, 2.2);
  EXPECT_LT(duration, 2.8);
  EXPECT_NEAR(s.securities.Value(calm, 0, r.securities_spread, 0.01) / s.securities.Total() - 1,
              -duration * 0.01, 0.002);
  const double opening_rate = s.share_rate;
  const double cert_coupon = s.certificates.AnnualInterest() / s.certificates.Total();

  // Steady rates: the certificate share holds (flows balance), deposits grow at 3%.
  AlmState steady = s;
  for (int month = 1; month <= 24; ++month) {
    AlmFlows f;
    AlmAccrue(r, beta, spread, -0.002, 0.015, calm, month, &steady, &f);
    AlmDeposits(r, 0.03, calm, month, &steady, &f);
  }
  EXPECT_NEAR(steady.certificates.Total() / steady.deposits(), r.certificate_share, 0.02);
  EXPECT_NEAR(steady.deposits(), 900 * std::pow(1 + 0.03 / 12, 24), 1.0);

  // +300 bp: the share rate closes 1/lag of the gap per month; certificates keep their coupon
  // until they mature; members move into certificates and out of shares.
  const MacroState high = Macro(0.05, 0.06, 0.015);
  AlmState up = s;
  AlmFlows f;
  AlmAccrue(r, beta, spread, -0.002, 0.015, high, 1, &up, &f);
  const double target = beta * 0.05 + spread;
  EXPECT_NEAR(up.share_rate, opening_rate + (target - opening_rate) / r.deposit_lag_months, 1e-12);
  for (int month = 1; month <= 24; ++month) {
    AlmFlows g;
    if (month > 1) AlmAccrue(r, beta, spread, -0.002, 0.015, high, month, &up, &g);
    AlmDeposits(r, 0.03, high, month, &up, &g);
    if (month == 6) {
      // Half the ladder has renewed at the new rate, half still pays the old coupon.
      const double coupon = up.certificates.AnnualInterest() / up.certificates.Total();
      EXPECT_GT(coupon, cert_coupon + 0.005);
      EXPECT_LT(coupon,
                std::max(0.0, CurveRate(high, r.certificate_term_months) + r.certificate_spread));
    }
  }
  EXPECT_NEAR(up.share_rate, target, 0.002);
  EXPECT_GT(up.certificates.Total() / up.deposits(), r.certificate_share + 0.05);
  EXPECT_LT(up.deposits(), steady.deposits());  // run-off to market-rate alternatives

  // A stress: the BBB spread 3 pp above month 0 drains shares at stress_outflow per pp.
  AlmState stressed = s;
  AlmFlows h;
  const MacroState wide = Macro(0.02, 0.03, 0.045);
  AlmAccrue(r, beta, spread, -0.002, 0.015, wide, 1, &stressed, &h);
  const double shares_before = stressed.shares;
  AlmDeposits(r, 0.0, wide, 1, &stressed, &h);
  EXPECT_LT(h.deposit_change, 0);
  EXPECT_NEAR(h.deposit_change, -r.stress_outflow * 3 / 12 * (stressed.shares - h.deposit_change),
              1e-9);
  EXPECT_LT(stressed.shares, shares_before);
}

TEST(Alm, TheLaddersClosedFormDurationMatchesACentralDifference) {
  // Rungs of mixed coupons and maturities, on a normal curve, on one whose short end is floored at
  // zero (the shift does not move those rungs' yields), and with a negative spread.
  Ladder ladder;
  for (int k = 1; k <= 120; k += 7) ladder.Add(k, 10 + k, 0.01 + 0.0004 * k);
  ladder.Add(0, 5, 0.03);  // matures this month: valued at par, no duration
  struct Case {
    MacroState m;
    double spread;
  };
  for (const Case& c : {Case{Macro(0.02, 0.04, 0.015), 0.003}, Case{Macro(-0.005, 0.02, 0.01), 0.0},
                        Case{Macro(0.001, 0.03, 0.01), -0.004}}) {
    const Ladder::Valuation v = ladder.ValueAndDuration(c.m, 0, c.spread);
    EXPECT_DOUBLE_EQ(v.value, ladder.Value(c.m, 0, c.spread, 0));
    const double down = ladder.Value(c.m, 0, c.spread, -1e-5);
    const double up = ladder.Value(c.m, 0, c.spread, 1e-5);
    const double central = (down - up) / (2e-5 * 0.5 * (down + up));
    EXPECT_NEAR(v.duration, central, 1e-5 * central);
    EXPECT_GE(v.duration, 0.0);
    EXPECT_EQ(ladder.Duration(c.m, 0, c.spread), v.duration);
  }
  // Empty: zero value and duration.
  const Ladder empty;
  EXPECT_EQ(empty.ValueAndDuration(Macro(0.02, 0.04, 0.01), 0, 0.0).duration, 0.0);
}

TEST(Alm, AShortfallDrawsTheLineThenSellsSecuritiesAtALossThenBorrowsInAnEmergency) {
  AlmRules r;
  const MacroState calm = Macro(0.02, 0.03, 0.015);
  AlmState s;
  AlmReset(r, 0.5, 0.0, 0.5, 0.0, calm, 100, 900, &s);
  const double securities = s.securities.Total();  // 50
  const MacroState high = Macro(0.05, 0.06, 0.015);
  const double value = s.securities.Value(high, 1, r.securities_spread, 0);
  EXPECT_LT(value, securities);  // rates up: unrealised losses
  s.cash = 0;
  // Floor 60, capacity 10: the line gives 10, all securities are sold, the rest is emergency.
  AlmFlows f;
  AlmManageLiquidity(r, 0.5, high, 1, 60, 10, &s, &f);
  EXPECT_DOUBLE_EQ(s.wholesale, 10);
  EXPECT_EQ(s.securities.Total(), 0);
  EXPECT_NEAR(f.securities_gains, (value + f.matured) - securities - f.matured, 1e-9);
  EXPECT_LT(f.securities_gains, 0);
  EXPECT_NEAR(f.shortfall, 60 - 10 - value, 1e-9);  // the matured rung was worth par
  EXPECT_NEAR(s.emergency, f.shortfall, 1e-12);
  EXPECT_NEAR(s.cash, 60, 1e-9);
  // Back above the floor: emergency borrowing is repaid first, then the line.
  s.cash = 100;
  AlmFlows g;
  AlmManageLiquidity(r, 0.5, high, 2, 60, 10, &s, &g);
  EXPECT_EQ(s.emergency, 0);
  EXPECT_NEAR(s.wholesale, std::max(0.0, 10 - (40 - f.shortfall)), 1e-9);
}

TEST(Alm, TheTwinKeepsItsBooksThroughStressAndReportsEveAndTheGap) {
  auto inst = LoadInstitution("cu_mid");
  for (const char* scenario : {"dfast_2025_severely_adverse", "historic_2006_2012"}) {
    TwinOptions opts;
    opts.check_invariants = true;
    Twin twin(inst, LoadScenario(scenario), 7, 0, opts);
    twin.Reset();
    std::vector<double> row(kNumMetrics);
    twin.Snapshot(row.data());
    EXPECT_NEAR(row[kAoci], 0, 1e-6 * row[kSecurities]);  // bought at today's curve
    EXPECT_GT(row[kBorrowingCapacity], 0);
    EXPECT_GT(row[kNevRatio], 0);
    EXPECT_NE(row[kEveChangeUp300], 0);
    double min_aoci = 0;
    for (int m = 1; m <= 84; ++m) {
      twin.Step(DefaultLevers(*inst), row.data());  // invariants checked every month
      min_aoci = std::min(min_aoci, row[kAoci]);
      EXPECT_NEAR(row[kDeposits], row[kCertificates] + twin.alm().shares, 1e-6 * row[kDeposits]);
    }
    EXPECT_GT(row[kDepositRate], 0);
    (void)min_aoci;
  }
  // EVE: the unshifted row first, then -300..+300; the gap adds up to the balance sheet.
  auto rows = EveSensitivity(inst, LoadScenario("steady_state"), 3, StandardRateShocks());
  ASSERT_EQ(rows.size(), 7u);
  EXPECT_GT(rows[0].eve, 0);
  EXPECT_LT(rows[6].change, rows[4].change);  // +300 below +100: fixed-rate assets lose value
  EXPECT_LT(rows[6].change, 0);
  Twin twin(inst, LoadScenario("steady_state"), 3, 0);
  twin.Reset();
  std::vector<double> row(kNumMetrics);
  twin.Snapshot(row.data());
  EXPECT_NEAR(row[kEveChangeUp300], rows[6].change_pct / 100, 1e-12);
  const RepricingGap gap = twin.Gap();
  double assets = 0, liabilities = 0;
  for (int b = 0; b < kGapBuckets; ++b) assets += gap.Assets(b), liabilities += gap.Liabilities(b);
  EXPECT_NEAR(assets, row[kLiquidAssets] + row[kLoanBalance], 1e-6 * assets);
  EXPECT_NEAR(liabilities, row[kDeposits] + row[kWholesale] + row[kEmergencyBorrowing],
              1e-6 * liabilities);
  EXPECT_GT(gap.amount[0][4], 0);  // fixed-rate mortgages beyond five years
}

TEST(Alm, AociCountsInBaselCapitalOnlyWhereTheRulesSaySo) {
  const std::string head =
      "name: x\nmembers: 20000\nproducts:\n  home:\n    initial_loans: 2000\n"
      "balance_sheet:\n  liquid_share: 0.4\n  liquid_term_share: 0.9\n";
  // Rates jump 300 bp at month 1: securities lose value.
  TwinOptions jump;
  jump.rate_shift_bp = 300;
  auto ratio_after = [&](const std::string& capital) {
    auto inst = ParseInstitution(head + capital, "x.yaml");
    Twin twin(inst, LoadScenario("steady_state"), 1, 0, jump);
    twin.Reset();
    std::vector<double> row(kNumMetrics);
    for (int m = 0; m < 6; ++m) twin.Step(DefaultLevers(*inst), row.data());
    return std::make_pair(row[kCapitalRatio], row[kAoci]);
  };
  const auto with = ratio_after("capital:\n  regime: basel\n");
  const auto without = ratio_after("capital:\n  regime: basel\n  aoci_in_capital: false\n");
  const auto ncua = ratio_after("capital:\n  regime: ncua\n");
  EXPECT_LT(with.second, 0);
  EXPECT_LT(with.first, without.first);
  EXPECT_DOUBLE_EQ(with.second, without.second);
  EXPECT_GT(ncua.first, 0);
  try {
    ParseInstitution(head + "capital:\n  regime: ncua\n  aoci_in_capital: true\n", "x.yaml");
    ADD_FAILURE() << "NCUA with AOCI in capital accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("aoci_in_capital needs regime: basel"), std::string::npos)
        << e.what();
  }
  for (const char* bad :
       {"alm:\n  certificate_share: 1.5\n", "alm:\n  deposit_lag: 3\n",
        "alm:\n  securities_maturity_months: 121\n", "alm:\n  eve_every_months: 0\n"}) {
    try {
      ParseInstitution(head + bad, "x.yaml");
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("x.yaml:"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace loantwin
