#pragma once
// Levers: every decision the five roles make, in one plain struct. The twin reads it each month.
// Units and ranges are part of the API (the multi-agent layer maps actions onto them).

#include <array>
#include <string>

#include "env/twin/institution.h"
#include "env/twin/product.h"

namespace loantwin {

/// Collection treatment of a delinquency bucket.
enum CollectionIntensity : int { kNone = 0, kSoft = 1, kHard = 2, kRestructure = 3 };
inline constexpr int kNumCollectionIntensities = 4;
inline constexpr std::array<const char*, kNumCollectionIntensities> kCollectionNames = {
    "none", "soft", "hard", "restructure"};

inline constexpr int kNumRiskAppetites = 5;
/// The range of a product's rate spread over the reference rate (levers and default_spread).
inline constexpr double kMinRateSpread = -0.05, kMaxRateSpread = 0.40;

/// What a risk-appetite level allows (the roles below act within it).
struct RiskAppetite {
  const char* name;
  int max_cutoff;     ///< worst score band any product may approve (0 = A .. 6 = G)
  double max_budget;  ///< highest origination budget multiplier
};
/// Levels 0 (very conservative) .. 4 (aggressive).
const RiskAppetite& GetRiskAppetite(int level);

struct Levers {
  /// Worst score band approved per product: 0 = A only .. 6 = all bands; -1 = approve none.
  std::array<int, kNumProducts> approval_cutoff{};
  /// Annual rate spread over the product's reference rate (policy or mortgage rate), as a
  /// fraction (0.05 = 500 bp), range [-0.05, 0.40]. Band risk premiums are added on top.
  std::array<double, kNumProducts> rate_spread{};
  /// Origination budget per product as a multiple of the baseline application flow (marketing
  /// spend scales with it), range [0, 3]. 0 stops new lending in the product.
  std::array<double, kNumProducts> origination_budget{};
  /// Treatment per delinquency bucket (30, 60, 90+ dpd), a CollectionIntensity.
  std::array<int, kNumDelinquentBuckets> collection_intensity{};
  /// Risk appetite level 0..4; clamps approval_cutoff and origination_budget (GetRiskAppetite).
  int risk_appetite = 2;
};

/// The rule-based default: each product's default cutoff and spread, budget 1, the preset's
/// collection intensities and risk appetite.
Levers DefaultLevers(const InstitutionConfig& config);

/// Throws std::invalid_argument naming the field and value when a lever is out of range.
void ValidateLevers(const Levers& levers);

/// Levers after the risk appetite is applied (what the twin acts on).
Levers ApplyRiskAppetite(const Levers& levers);

std::string DescribeLevers(const Levers& levers);

}  // namespace loantwin
