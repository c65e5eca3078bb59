#include "env/twin/metrics.h"

#include <algorithm>
#include <vector>

namespace loantwin {
namespace {

struct Catalogue {
  std::vector<std::string> names, descriptions;
  Catalogue() {
#define LOANTWIN_ADD_GLOBAL(id, name, desc) \
  names.emplace_back(name);                 \
  descriptions.emplace_back(desc);
    LOANTWIN_GLOBAL_METRICS(LOANTWIN_ADD_GLOBAL)
#undef LOANTWIN_ADD_GLOBAL
    for (int p = 0; p < kNumProducts; ++p) {
      const std::string prefix = std::string(kProductNames[p]) + "_";
#define LOANTWIN_ADD_PRODUCT(id, name, desc) \
  names.push_back(prefix + name);            \
  descriptions.push_back(std::string(kProductNames[p]) + ": " + desc);
      LOANTWIN_PRODUCT_METRICS(LOANTWIN_ADD_PRODUCT)
#undef LOANTWIN_ADD_PRODUCT
    }
  }
};

const Catalogue& Get() {
  static const Catalogue catalogue;
  return catalogue;
}

}  // namespace

void ResolveFailureMonth(double* row) {
  const double stake = std::max(row[kEquity], 0.0);
  row[kNetIncome] -= stake;
  for (int c : {kEquity, kCet1Ratio, kLeverageRatio, kCapitalRatio, kRbcRatio})
    row[c] = std::min(row[c], 0.0);
  row[kCapitalCategory] = 4;  // critically undercapitalised
}

void ResolvedMonth(const double* resolved, const double* live, double* out) {
  std::copy_n(resolved, kNumMetrics, out);
  // Macro variables: every column before the book's.
  static_assert(kLoans == kCreditFactor + 1, "the macro columns come first");
  std::copy_n(live, kLoans, out);
  static constexpr int kFlows[] = {kApplications,
                                   kApprovals,
                                   kApprovalRate,
                                   kOriginations,
                                   kInterestIncome,
                                   kFeeIncome,
                                   kFundingCost,
                                   kNii,
                                   kOpex,
                                   kCollectionCost,
                                   kProvisionExpense,
                                   kGrossChargeOffs,
                                   kRecoveries,
                                   kNetChargeOffs,
                                   kForeclosedLosses,
                                   kTax,
                                   kNetIncome,
                                   kDividends,
                                   kSecuritiesGains,
                                   kLiquidityShortfall,
                                   kRoe,
                                   kRoa,
                                   kNim,
                                   kCostToIncome,
                                   kChargeOffRate};
  for (int c : kFlows) out[c] = 0;
  for (int p = 0; p < kNumProducts; ++p)
    for (ProductMetric m : {kPOriginations, kPChargeOffRate, kPYield})
      out[ProductMetricIndex(p, m)] = 0;
}

const std::string& MetricName(int index) {
  return Get().names.at(index);
}
const std::string& MetricDescription(int index) {
  return Get().descriptions.at(index);
}
int FindMetric(const std::string& name) {
  const auto& names = Get().names;
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<int>(i);
  return -1;
}

}  // namespace loantwin
