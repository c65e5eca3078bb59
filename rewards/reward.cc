#include "rewards/reward.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/registry.h"

namespace loantwin {
namespace {

/// A module defined by a formula string and a function.
class FunctionReward : public RewardModule {
 public:
  FunctionReward(std::string name, std::string formula, double (*fn)(const RewardInput&))
      : RewardModule(std::move(name)), formula_(std::move(formula)), fn_(fn) {}
  std::string formula() const override { return formula_; }

 protected:
  double DoCompute(const RewardInput& in) const override { return fn_(in); }

 private:
  std::string formula_;
  double (*fn_)(const RewardInput&);
};

double SafeDiv(double a, double b) {
  return b > 0 ? a / b : 0.0;
}

double Profit(const RewardInput& in) {
  return 100 * SafeDiv(in.net_income, in.equity_open);
}
double Raroc(const RewardInput& in) {
  return 100 * SafeDiv(in.nii + in.fees - in.opex - in.expected_loss / 12, 0.08 * in.rwa);
}
double ExpectedLoss(const RewardInput& in) {
  return -100 * SafeDiv(in.expected_loss / 12, in.loan_balance);
}
double Capital(const RewardInput& in) {
  return -100 * std::max(0.0, in.capital_buffer - in.capital_ratio);
}
double Liquidity(const RewardInput& in) {
  return -std::max(0.0, 1.0 - in.liquidity_ratio);
}
double Concentration(const RewardInput& in) {
  double total = 0, hhi = 0;
  for (double e : in.exposures) total += std::max(0.0, e);
  if (total <= 0) return 0;
  for (double e : in.exposures) hhi += (std::max(0.0, e) / total) * (std::max(0.0, e) / total);
  return -hhi;
}
double Customer(const RewardInput& in) {
  return in.approval_rate;
}
double Stability(const RewardInput& in) {
  return -in.policy_churn;
}

Registry<RewardFactory>& Rewards() {
  static Registry<RewardFactory> registry("reward module", [] {
    std::vector<std::pair<std::string, RewardFactory>> entries;
    auto add = [&](const char* name, const char* formula, double (*fn)(const RewardInput&)) {
      entries.emplace_back(name,
                           [=] { return std::make_unique<FunctionReward>(name, formula, fn); });
    };
    add("profit", "100 x net income / opening equity (monthly ROE in percent; ~0.7 for a 9% ROE)",
        Profit);
    add("raroc",
        "100 x (NII + fees - opex - expected loss / 12) / (8% x RWA) (monthly return on required "
        "capital, percent)",
        Raroc);
    add("expected_loss",
        "-100 x (12-month expected loss / 12) / loan balance (percent of the book per month)",
        ExpectedLoss);
    add("capital",
        "-100 x max(0, target - capital ratio): the regime's target, 7% net worth (ncua) or 7% "
        "CET1 "
        "(basel, minimum + buffer); -1 per percentage point below it",
        Capital);
    add("liquidity", "-max(0, 1 - liquidity ratio) (0 when liquid assets cover stressed run-off)",
        Liquidity);
    add("concentration", "-HHI of exposure across products (-1 = one product, -1/n = even spread)",
        Concentration);
    add("customer", "approval rate (0..1: access to credit)", Customer);
    add("stability",
        "-share of the role's action components changed since its last decision (0..-1)",
        Stability);
    return entries;
  }());
  return registry;
}

}  // namespace

double RewardModule::Compute(const RewardInput& in) const {
  const double v = DoCompute(in);
  if (!std::isfinite(v))
    throw std::runtime_error(fmt::format("reward module '{}' produced {}", name_, v));
  return v;
}

void RegisterReward(const std::string& name, RewardFactory factory) {
  Rewards().Add(name, std::move(factory));
}

std::vector<std::string> RegisteredRewards() {
  return Rewards().Names();
}

std::unique_ptr<RewardModule> MakeReward(const std::string& name) {
  return Rewards().Get(name)();
}

RewardSet::RewardSet() {
  for (const auto& name : RegisteredRewards()) {
    modules_.push_back(MakeReward(name));
    names_.push_back(name);
    weights_.push_back(0.0);
  }
}

void RewardSet::SetWeight(const std::string& objective, double weight) {
  for (size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == objective) {
      weights_[i] = weight;
      return;
    }
  throw std::invalid_argument(
      fmt::format("unknown reward objective '{}' (known: {})", objective, fmt::join(names_, ", ")));
}

double RewardSet::Compute(const RewardInput& in, float* vec) const {
  double scalar = 0;
  for (size_t i = 0; i < modules_.size(); ++i) {
    const double v = modules_[i]->Compute(in);
    vec[i] = static_cast<float>(v);
    scalar += weights_[i] * v;
  }
  return scalar;
}

}  // namespace loantwin
