#pragma once
// Monte Carlo runs of the five-role environment: every role on its fallback (rule-based
// baseline or random) or decided by a RoleDriver (learned or exported policies, which live
// above env/). Path p is environment instance p of the seed, whatever the batch or thread count.

#include <cstdint>
#include <string>
#include <vector>

#include "env/twin/monte_carlo.h"
#include "env/twin_env.h"

namespace loantwin {

/// Rewards of each role over a policy run.
struct RoleRewards {
  std::vector<std::string> roles, objectives;
  /// [role][path * objectives + k]: objective k summed over the months of a path.
  std::vector<std::vector<double>> objective_sums;
  /// [role][path]: the role's scalar (weighted) reward summed over the months of a path.
  std::vector<std::vector<double>> returns;
};

struct PolicyRun {
  PathSet paths;  ///< empty when the options stream the metrics to a sink
  RoleRewards rewards;
  /// Per path, the first month (1-based) with CET1 below the config's floor or equity <= 0;
  /// 0 if the institution never failed. Failed paths run on (terminate_on_failure is off);
  /// with the options' resolve_failures their metrics show the resolution from that month on.
  std::vector<int> failed_month;
  /// Per path, the months with a broken accounting invariant (checked when the options'
  /// twin.check_invariants is on; counted, not thrown) and the first breach's message.
  std::vector<int> invariant_breaches;
  std::vector<std::string> first_invariant_breach;
  /// The config's guardrails and, per rule, the decisions it restricted over all paths.
  std::vector<std::string> guardrail_names;
  std::vector<MultiAgentEnv::GuardrailCount> guardrail_counts;
  /// With the config's applicant_groups, per path: the applicants by group and band over the
  /// run's months (applicant_groups.h); empty otherwise.
  std::vector<GroupOutcomes> group_outcomes;
};

/// Decides roles of the five-role environment for a batch of instances (learned or exported
/// policies, which live outside env/). Roles it does not decide run on the config's fallbacks.
class RoleDriver {
 public:
  virtual ~RoleDriver() = default;
  virtual bool Decides(int role) const = 0;
  /// Actions [n x action_dims] for observations [n x obs_dim] and masks [n x mask_width].
  virtual void Decide(int role, const float* obs, const uint8_t* masks, int n,
                      int32_t* actions) = 0;
};

/// Monte Carlo of the five-role environment with every role driven by its fallback policy
/// (rule-based baselines or uniformly random, mask-respecting actions). Path p is environment
/// instance p of the seed, whatever the batch size or thread count.
PolicyRun RunPolicyMonteCarlo(const TwinEnvConfig& config, FallbackPolicy policy,
                              const MonteCarloOptions& options);
/// The same with the config's per-role fallbacks and, when `driver` is not null, the roles it
/// decides acting on its decisions (top-down, each role seeing the directives above it).
PolicyRun RunPolicyMonteCarlo(const TwinEnvConfig& config, RoleDriver* driver,
                              const MonteCarloOptions& options);

}  // namespace loantwin
