#include "env/twin/levers.h"

#include <fmt/format.h>

#include <algorithm>
#include <stdexcept>

namespace loantwin {

const RiskAppetite& GetRiskAppetite(int level) {
  static const RiskAppetite kLevels[kNumRiskAppetites] = {
      {"very_conservative", 2, 0.50}, {"conservative", 3, 0.75},
      {"balanced", 4, 1.25},          {"growth", 5, 2.00},
      {"aggressive", 6, 3.00},
  };
  if (level < 0 || level >= kNumRiskAppetites)
    throw std::invalid_argument(fmt::format("risk_appetite {} is out of range [0, 4]", level));
  return kLevels[level];
}

Levers DefaultLevers(const InstitutionConfig& config) {
  Levers l;
  for (int p = 0; p < kNumProducts; ++p) {
    const auto& line = config.products[p];
    l.approval_cutoff[p] = line.offered ? line.spec.default_cutoff : -1;
    l.rate_spread[p] = line.spec.default_spread;
    l.origination_budget[p] = line.offered ? 1.0 : 0.0;
  }
  l.collection_intensity = config.default_collection;
  l.risk_appetite = config.default_risk_appetite;
  return l;
}

void ValidateLevers(const Levers& l) {
  GetRiskAppetite(l.risk_appetite);
  for (int p = 0; p < kNumProducts; ++p) {
    if (l.approval_cutoff[p] < -1 || l.approval_cutoff[p] >= kNumBands)
      throw std::invalid_argument(fmt::format("approval_cutoff[{}] = {} is out of range [-1, {}]",
                                              kProductNames[p], l.approval_cutoff[p],
                                              kNumBands - 1));
    if (!(l.rate_spread[p] >= kMinRateSpread && l.rate_spread[p] <= kMaxRateSpread))
      throw std::invalid_argument(fmt::format("rate_spread[{}] = {} is out of range [-0.05, 0.40]",
                                              kProductNames[p], l.rate_spread[p]));
    if (!(l.origination_budget[p] >= 0 && l.origination_budget[p] <= 3))
      throw std::invalid_argument(fmt::format("origination_budget[{}] = {} is out of range [0, 3]",
                                              kProductNames[p], l.origination_budget[p]));
  }
  for (int k = 0; k < kNumDelinquentBuckets; ++k)
    if (l.collection_intensity[k] < 0 || l.collection_intensity[k] >= kNumCollectionIntensities)
      throw std::invalid_argument(fmt::format(
          "collection_intensity[{}] = {} is out of range [0, 3]", k, l.collection_intensity[k]));
}

Levers ApplyRiskAppetite(const Levers& levers) {
  const RiskAppetite& a = GetRiskAppetite(levers.risk_appetite);
  Levers out = levers;
  for (int p = 0; p < kNumProducts; ++p) {
    out.approval_cutoff[p] = std::min(out.approval_cutoff[p], a.max_cutoff);
    out.origination_budget[p] = std::min(out.origination_budget[p], a.max_budget);
  }
  return out;
}

std::string DescribeLevers(const Levers& l) {
  std::string s =
      fmt::format("risk_appetite={} ({})", l.risk_appetite, GetRiskAppetite(l.risk_appetite).name);
  for (int p = 0; p < kNumProducts; ++p)
    s += fmt::format(" | {}: cutoff={} spread={:.4f} budget={:.2f}", kProductNames[p],
                     l.approval_cutoff[p] < 0 ? "none" : kBandNames[l.approval_cutoff[p]],
                     l.rate_spread[p], l.origination_budget[p]);
  s += fmt::format(" | collection={}/{}/{}", kCollectionNames[l.collection_intensity[0]],
                   kCollectionNames[l.collection_intensity[1]],
                   kCollectionNames[l.collection_intensity[2]]);
  return s;
}

}  // namespace loantwin
