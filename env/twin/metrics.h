#pragma once
// The monthly metrics a twin writes per step, in a fixed order: the globals below, then a block
// of per-product metrics for each product. Names are stable: they are CSV column headers and,
// prefixed with "twin/", logging keys. Rates and ratios are fractions (0.05 = 5%); flows are
// currency per month; "annualised" rates are the month's flow x 12 over the opening stock.

#include <array>
#include <string>

#include "env/twin/product.h"

namespace loantwin {

// X(id, name, description)
#define LOANTWIN_GLOBAL_METRICS(X)                                                            \
  X(kUnemployment, "unemployment", "unemployment rate (fraction)")                            \
  X(kGdpGrowth, "gdp_growth", "real GDP growth, annualised (fraction)")                       \
  X(kPolicyRate, "policy_rate", "3-month / policy rate (fraction)")                           \
  X(kRate10y, "rate_10y", "10-year government yield (fraction)")                              \
  X(kMortgageRate, "mortgage_rate", "30-year mortgage rate (fraction)")                       \
  X(kHpi, "hpi", "house price index relative to month 0")                                     \
  X(kCreditSpread, "credit_spread", "BBB corporate spread over 10-year (fraction)")           \
  X(kCreditFactor, "credit_factor", "systematic credit factor z (negative = bad)")            \
  X(kLoans, "loans", "open loans (accounts)")                                                 \
  X(kLoanBalance, "loan_balance", "gross loan balance, end of month")                         \
  X(kApplications, "applications", "applications received this month")                        \
  X(kApprovals, "approvals", "applications approved and booked this month")                   \
  X(kApprovalRate, "approval_rate", "approvals / applications")                               \
  X(kOriginations, "originations", "new lending this month incl. card draws")                 \
  X(kInterestIncome, "interest_income", "interest on loans and liquid assets")                \
  X(kFeeIncome, "fee_income", "origination, annual and late fees")                            \
  X(kFundingCost, "funding_cost", "interest on deposits and wholesale funding")               \
  X(kNii, "nii", "net interest income")                                                       \
  X(kOpex, "opex", "fixed, servicing, origination, marketing and collection costs")           \
  X(kCollectionCost, "collection_cost", "collection costs (part of opex)")                    \
  X(kProvisionExpense, "provision_expense", "change in allowance + net charge-offs")          \
  X(kGrossChargeOffs, "gross_charge_offs", "charged off / written down this month")           \
  X(kRecoveries, "recoveries", "collected on earlier charge-offs")                            \
  X(kNetChargeOffs, "net_charge_offs", "gross charge-offs - recoveries")                      \
  X(kForeclosedLosses, "foreclosed_losses",                                                   \
    "losses (gains negative) on selling repossessed collateral, below the provision")         \
  X(kTax, "tax", "income tax")                                                                \
  X(kNetIncome, "net_income", "net income this month")                                        \
  X(kDividends, "dividends", "dividends paid (earnings above net_worth_target)")              \
  X(kMembers, "members", "members (grow at member_growth)")                                   \
  X(kEquity, "equity", "equity (net worth / CET1 capital), end of month")                     \
  X(kAllowance, "allowance", "loss allowance (CECL / IFRS 9) less recoveries to collect")     \
  X(kEclStage1, "ecl_stage1", "allowance on current loans (cecl lifetime; ifrs9 stage 1)")    \
  X(kEclStage2, "ecl_stage2", "allowance on 30-89 dpd loans (+ ifrs9 stage 2 current)")       \
  X(kEclStage3, "ecl_stage3", "allowance on 90+ dpd loans (stage 3)")                         \
  X(kStage2Share, "stage2_share", "30-89 dpd, probation (+ ifrs9 SICR) / loans")              \
  X(kExpectedLoss, "expected_loss", "12-month expected loss of the book (EAD x LGD x PD)")    \
  X(kLiquidAssets, "liquid_assets", "cash and securities")                                    \
  X(kSecurities, "securities", "securities at fair value (part of liquid assets)")            \
  X(kAoci, "aoci", "unrealised gains (losses negative) on securities, in equity")             \
  X(kSecuritiesDuration, "securities_duration", "modified duration of the securities, years") \
  X(kSecuritiesGains, "securities_gains", "gains realised on securities sold for liquidity")  \
  X(kDeposits, "deposits", "member deposits: shares and certificates")                        \
  X(kCertificates, "certificates", "share certificates (term deposits)")                      \
  X(kDepositRate, "deposit_rate", "annual rate paid on member deposits, blended")             \
  X(kWholesale, "wholesale_funding", "secured line drawn (borrowings)")                       \
  X(kBorrowingCapacity, "borrowing_capacity", "secured line capacity (pledged collateral)")   \
  X(kEmergencyBorrowing, "emergency_borrowing", "borrowing beyond capacity, outstanding")     \
  X(kLiquidityShortfall, "liquidity_shortfall",                                               \
    "emergency borrowing drawn this month (> 0: a liquidity shortfall event)")                \
  X(kNevRatio, "nev_ratio", "economic value of equity / PV of assets (refreshed, see docs)")  \
  X(kNevRatioUp300, "nev_ratio_up300", "NEV ratio after a +300 bp parallel shift")            \
  X(kEveChangeUp300, "eve_change_up300", "change in EVE at +300 bp / |EVE|")                  \
  X(kForeclosedAssets, "foreclosed_assets", "repossessed collateral awaiting sale (REO)")     \
  X(kTotalAssets, "total_assets", "loans - allowance + liquid + foreclosed")                  \
  X(kRwa, "rwa", "risk-weighted assets (IRB retail credit + operational)")                    \
  X(kCet1Ratio, "cet1_ratio", "equity / RWA")                                                 \
  X(kLeverageRatio, "leverage_ratio", "equity / total assets (NCUA: the net worth ratio)")    \
  X(kCapitalRatio, "capital_ratio", "the regime's ratio: net worth (ncua) or CET1 (basel)")   \
  X(kCapitalCategory, "capital_category",                                                     \
    "PCA category: 0 well, 1 adequately, 2 under, 3 significantly, 4 critically under")       \
  X(kRbcRatio, "rbc_ratio", "NCUA risk-based capital ratio (0 under basel)")                  \
  X(kLiquidityRatio, "liquidity_ratio", "liquid assets / (runoff x deposits), LCR-like")      \
  X(kRoe, "roe", "net income x 12 / opening equity")                                          \
  X(kRoa, "roa", "net income x 12 / opening total assets")                                    \
  X(kNim, "nim", "NII x 12 / opening earning assets")                                         \
  X(kCostToIncome, "cost_to_income", "opex / (NII + fees), capped to [0, 10]")                \
  X(kChargeOffRate, "charge_off_rate", "net charge-offs x 12 / opening loan balance")         \
  X(kDq30Rate, "dq30_rate", "30+ dpd balance / loan balance")                                 \
  X(kDq90Rate, "dq90_rate", "90+ dpd balance / loan balance")

#define LOANTWIN_PRODUCT_METRICS(X)                                               \
  X(kPBalance, "balance", "loan balance, end of month")                           \
  X(kPLoans, "loans", "open accounts")                                            \
  X(kPOriginations, "originations", "new lending incl. card draws")               \
  X(kPChargeOffRate, "charge_off_rate", "net charge-offs x 12 / opening balance") \
  X(kPDq30Rate, "dq30_rate", "30+ dpd balance / balance")                         \
  X(kPYield, "yield", "interest income x 12 / opening balance")

#define LOANTWIN_METRIC_ENUM(id, name, desc) id,
enum GlobalMetric : int { LOANTWIN_GLOBAL_METRICS(LOANTWIN_METRIC_ENUM) kNumGlobalMetrics };
enum ProductMetric : int { LOANTWIN_PRODUCT_METRICS(LOANTWIN_METRIC_ENUM) kNumProductMetrics };
#undef LOANTWIN_METRIC_ENUM

inline constexpr int kNumMetrics = kNumGlobalMetrics + kNumProducts * kNumProductMetrics;

/// Index of a per-product metric in the metrics row.
constexpr int ProductMetricIndex(int product, ProductMetric m) {
  return kNumGlobalMetrics + product * kNumProductMetrics + m;
}

/// The largest product's share of the loan balance in a metrics row (0 without loans): the
/// concentration metric max_product_share of constraints and reports.
inline double MaxProductShare(const double* row) {
  double largest = 0;
  for (int p = 0; p < kNumProducts; ++p)
    largest = largest > row[ProductMetricIndex(p, kPBalance)]
                  ? largest
                  : row[ProductMetricIndex(p, kPBalance)];
  return row[kLoanBalance] > 0 ? largest / row[kLoanBalance] : 0.0;
}

/// Resolution of a failed institution (docs/stress-testing.md, "Failure stops a path"), in the
/// failure month's row, in place: the owners' residual stake is the loss at resolution, so net
/// income falls by max(equity, 0), equity and the capital ratios become min(value, 0), and the
/// capital category critically undercapitalised (equity's change still equals net income's).
void ResolveFailureMonth(double* row);
/// A month after the failure month: the path's macro variables (`live`) go on; the balance
/// sheet stays as it was resolved (`resolved`, the failure month's row after
/// ResolveFailureMonth); every flow and flow ratio is 0.
void ResolvedMonth(const double* resolved, const double* live, double* out);

/// Column name: global name, or "<product>_<name>" for per-product metrics.
const std::string& MetricName(int index);
/// One-line description (docs and --list-metrics).
const std::string& MetricDescription(int index);
/// Index of a metric by its column name; -1 if unknown.
int FindMetric(const std::string& name);

}  // namespace loantwin
