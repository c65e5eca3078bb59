#pragma once
// Regional house prices (docs/fund-model.md): zones (metro areas, states) grouped in tiers, each
// with its own drift, volatility and loading on the scenario's national house-price path, and a
// correlation matrix of the zones' own shocks (Cholesky factor, validated positive definite):
//
//   ln H_z(t) = ln H_z(t-1) + beta_z * ln(N(t) / N(t-1)) + drift_z / 12 + sigma_z / sqrt(12) *
//   e_z(t) e(t) = L u(t),  L L' = correlation,  u(t) ~ N(0, I)
//
// N is the scenario's national house-price index (MacroModel), so a named scenario stresses every
// zone consistently; H_z(0) = 1.

#include <Eigen/Dense>
#include <string>
#include <vector>

namespace loantwin {

class YamlValue;

/// Origination characteristics and house-price dynamics of one zone.
struct Zone {
  std::string name;
  std::string tier;
  double beta = 1.0;         ///< loading on the national log house-price change
  double drift = 0.0;        ///< annual log drift on top of the national path
  double volatility = 0.05;  ///< annual volatility of the zone's own shock
  double home_value = 4e5;   ///< mean home value at origination (contract size)
  double ltv_mean = 0.55;    ///< senior mortgage LTV at origination: mean
  double ltv_sd = 0.15;      ///<   and spread across the LTV buckets
  double term_months = 120;  ///< contract term: settled at maturity
};

/// A tier's defaults: zones of the tier inherit every key they do not set.
struct ZoneTier {
  std::string name;
  Zone defaults;
};

struct ZoneSet {
  std::vector<ZoneTier> tiers;
  std::vector<Zone> zones;
  Eigen::MatrixXd correlation;  ///< of the zones' own shocks, [Z, Z]
  Eigen::MatrixXd cholesky;     ///< lower-triangular factor of `correlation`

  int size() const { return static_cast<int>(zones.size()); }
  int Find(const std::string& name) const;
  /// Six zones in three tiers (coastal, sun belt, heartland) with illustrative parameters.
  static ZoneSet Default();
  /// `tiers:` (name -> defaults), `zones:` (list; tier + overrides) and `correlation:` (a Z x Z
  /// matrix, or one number: the same correlation between every pair). ConfigError with file and
  /// line for unknown keys, bad ranges, a non-symmetric or non-positive-definite matrix.
  static ZoneSet Parse(const YamlValue& value);
  std::string ToYaml() const;
  /// Factorises `correlation` into `cholesky`; std::invalid_argument naming the problem (not
  /// square, not symmetric, diagonal not 1, not positive definite) otherwise.
  void Factorise();
};

/// Advances every zone's log house-price index one month: `national_log_change` is
/// ln(N(t)/N(t-1)), `normals` Z standard normals; log_hpi updated in place.
void StepZoneHpi(const ZoneSet& zones, double national_log_change, const double* normals,
                 double* log_hpi);

}  // namespace loantwin
