#pragma once
// Interest-rate sensitivity of net interest income: the scenario's rate paths (policy, 10-year,
// mortgage; long-run values too) shifted in parallel from month 0, on the same Monte Carlo paths
// as the unshifted run (common random numbers). docs/twin-model.md ("Interest-rate sensitivity").

#include <memory>
#include <vector>

#include "env/twin/institution.h"
#include "env/twin/levers.h"
#include "env/twin/monte_carlo.h"
#include "env/twin/scenario.h"

namespace loantwin {

/// A copy of the scenario with every rate anchor (and long-run rate) shifted by shift_bp / 100
/// percentage points; the twin floors rates at 0 as usual.
std::shared_ptr<const Scenario> ShiftRates(const Scenario& scenario, double shift_bp);

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

}  // namespace loantwin
