#pragma once
// Training targets for MuZero's K-step unroll from a stored episode (GameHistory).
//
// For a position t and unroll steps k = 0..K (state u = t + k; action k - 1 leads into it):
// - value: the n-step return sum_{i<n} D_i r_{u+i} + D_n v_{u+n}, where D_i is the product of the
//   transitions' discounts (gamma^(environment steps) per decision) and v a bootstrap value
//   (search values, or a target network's / reanalysed values); an episode end inside the window
//   stops the sum: no bootstrap after a termination, the final observation's value after a
//   truncation;
// - reward: the reward of the transition into u (no reward target at k = 0);
// - policy: the search policy at u.
// Past the end of a terminated episode the states are absorbing: value 0, reward 0, uniform
// policy, all trained. Past the end of a truncated episode nothing is known: the state u = T
// (the final observation) trains its value (the final value) and its reward; later states are
// not trained (weight 0). Actions past the end are drawn uniformly.

#include <cstdint>
#include <vector>

namespace loantwin {

class CounterRng;

struct GameHistory {
  int obs_dim = 0, num_actions = 0;
  std::vector<float> obs;        ///< [T, obs_dim]
  std::vector<int32_t> actions;  ///< [T]
  std::vector<float> rewards;    ///< [T] reward of transition t (collected until the next decision)
  std::vector<float> discounts;  ///< [T] discount of transition t (gamma^environment steps)
  std::vector<float> root_values;  ///< [T] search value at t
  std::vector<float> policies;     ///< [T, num_actions] search policy at t
  bool terminated = false;         ///< ended by termination (else truncation)
  float final_value = 0;           ///< truncated: value estimate of the final observation
  int length() const { return static_cast<int>(actions.size()); }
};

struct UnrollTargets {
  std::vector<int32_t> actions;                                   ///< [K]
  std::vector<float> values, rewards, policies;                   ///< [K+1], [K+1], [(K+1) * A]
  std::vector<float> value_weight, reward_weight, policy_weight;  ///< [K+1], 1 = trained
};

/// Targets for position t (0 <= t < length). `bootstrap` [T] holds the values used for
/// bootstrapping (nullptr: the stored root values) and `final_value` the final observation's
/// value of a truncated episode (h.final_value, or a target network's re-estimate).
UnrollTargets MakeUnrollTargets(const GameHistory& h, int t, int unroll_steps, int td_steps,
                                const float* bootstrap, float final_value, CounterRng& rng);

}  // namespace loantwin
