#include "env/twin/rate_sensitivity.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace loantwin {

const std::vector<double>& StandardRateShocks() {
  static const std::vector<double> shocks = {-300, -200, -100, 100, 200, 300};
  return shocks;
}

std::vector<NiiSensitivityRow> NiiSensitivity(std::shared_ptr<const InstitutionConfig> inst,
                                              std::shared_ptr<const Scenario> scenario,
                                              const Levers& levers, MonteCarloOptions options,
                                              const std::vector<double>& shifts_bp,
                                              int horizon_months) {
  if (horizon_months < 1)
    throw std::invalid_argument("the NII sensitivity horizon must be at least one month");
  options.months = horizon_months;
  options.progress = nullptr;
  options.month_progress = nullptr;
  auto mean_nii = [&](double shift_bp) {
    options.twin.rate_shift_bp = shift_bp;
    double total = 0;
    options.sink = [&](const PathBlock& b) {
      for (int p = 0; p < b.count; ++p)
        for (int m = 0; m < b.months; ++m) total += b.at(p, m, kNii);
    };
    RunMonteCarlo(inst, scenario, levers, options);
    return total / options.paths;
  };
  std::vector<NiiSensitivityRow> rows;
  const double base = mean_nii(0);
  rows.push_back({0, base, 0, 0});
  for (double bp : shifts_bp) {
    const double nii = mean_nii(bp);
    rows.push_back({bp, nii, nii - base, (nii - base) / std::max(std::abs(base), 1e-9) * 100});
  }
  return rows;
}

std::vector<EveSensitivityRow> EveSensitivity(std::shared_ptr<const InstitutionConfig> inst,
                                              std::shared_ptr<const Scenario> scenario,
                                              uint64_t seed, const std::vector<double>& shifts_bp) {
  Twin twin(std::move(inst), std::move(scenario), seed, 0);
  twin.Reset();
  const EconomicValue base = twin.Value(0);
  std::vector<EveSensitivityRow> rows;
  rows.push_back({0, base.eve(), 0, 0, base.nev_ratio()});
  for (double bp : shifts_bp) {
    const EconomicValue v = twin.Value(bp);
    rows.push_back({bp, v.eve(), v.eve() - base.eve(),
                    (v.eve() - base.eve()) / std::max(std::abs(base.eve()), 1e-9) * 100,
                    v.nev_ratio()});
  }
  return rows;
}

RepricingGap OpeningGap(std::shared_ptr<const InstitutionConfig> inst,
                        std::shared_ptr<const Scenario> scenario, uint64_t seed) {
  Twin twin(std::move(inst), std::move(scenario), seed, 0);
  twin.Reset();
  return twin.Gap();
}

}  // namespace loantwin
