#include "env/twin/rate_sensitivity.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace loantwin {

std::shared_ptr<const Scenario> ShiftRates(const Scenario& scenario, double shift_bp) {
  auto s = std::make_shared<Scenario>(scenario);
  const double pp = shift_bp / 100;
  for (int v : {kPolicyRateVar, kRate10yVar, kMortgageRateVar}) {
    for (double& x : s->anchors[v]) x += pp;
    s->long_run[v] += pp;
  }
  return s;
}

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
  auto mean_nii = [&](std::shared_ptr<const Scenario> sc) {
    double total = 0;
    options.sink = [&](const PathBlock& b) {
      for (int p = 0; p < b.count; ++p)
        for (int m = 0; m < b.months; ++m) total += b.at(p, m, kNii);
    };
    RunMonteCarlo(inst, std::move(sc), levers, options);
    return total / options.paths;
  };
  std::vector<NiiSensitivityRow> rows;
  const double base = mean_nii(scenario);
  rows.push_back({0, base, 0, 0});
  for (double bp : shifts_bp) {
    const double nii = mean_nii(ShiftRates(*scenario, bp));
    rows.push_back({bp, nii, nii - base, (nii - base) / std::max(std::abs(base), 1e-9) * 100});
  }
  return rows;
}

}  // namespace loantwin
