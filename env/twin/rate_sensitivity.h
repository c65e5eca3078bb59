#pragma once
// Interest-rate sensitivity: net interest income with the scenario's rate paths (policy,
// 10-year, mortgage) shifted in parallel from month 1 - the balance sheet opens at the
// scenario's rates, then the shock hits - on the same Monte Carlo paths as the unshifted run
// (common random numbers); the economic value of equity and the repricing gap of the opening
// balance sheet. docs/twin-model.md ("Interest-rate sensitivity").

#include <memory>
#include <vector>

#include "env/twin/institution.h"
#include "env/twin/levers.h"
#include "env/twin/monte_carlo.h"
#include "env/twin/scenario.h"
#include "env/twin/twin.h"

namespace loantwin {

struct NiiSensitivityRow {
  double shift_bp = 0;
  double nii = 0;         ///< mean over paths of NII summed over the horizon (currency)
  double change = 0;      ///< nii - the unshifted nii
  double change_pct = 0;  ///< change / |unshifted nii| x 100
};

/// The standard parallel shocks: -300, -200, -100, +100, +200, +300 bp.
const std::vector<double>& StandardRateShocks();

/// NII over the first `horizon_months` months, unshifted (first row, shift 0) and under each
/// shift, with the same paths (options.seed, options.paths; options.months is set to the
/// horizon). Throws std::invalid_argument on a horizon < 1.
std::vector<NiiSensitivityRow> NiiSensitivity(std::shared_ptr<const InstitutionConfig> inst,
                                              std::shared_ptr<const Scenario> scenario,
                                              const Levers& levers, MonteCarloOptions options,
                                              const std::vector<double>& shifts_bp,
                                              int horizon_months = 12);

struct EveSensitivityRow {
  double shift_bp = 0;
  double eve = 0;         ///< economic value of equity (currency)
  double change = 0;      ///< eve - the unshifted eve
  double change_pct = 0;  ///< change / |unshifted eve| x 100
  double nev_ratio = 0;   ///< eve / PV of assets
};

/// The opening balance sheet of path 0 (seed, instance 0; month 0), valued unshifted (first
/// row) and under each shift: docs/twin-model.md ("Economic value of equity").
std::vector<EveSensitivityRow> EveSensitivity(std::shared_ptr<const InstitutionConfig> inst,
                                              std::shared_ptr<const Scenario> scenario,
                                              uint64_t seed, const std::vector<double>& shifts_bp);

/// The repricing gap of the same opening balance sheet.
RepricingGap OpeningGap(std::shared_ptr<const InstitutionConfig> inst,
                        std::shared_ptr<const Scenario> scenario, uint64_t seed);

}  // namespace loantwin
