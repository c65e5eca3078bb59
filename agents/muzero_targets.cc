#include "agents/muzero_targets.h"

#include <stdexcept>

#include "core/check.h"
#include "core/counter_rng.h"

namespace loantwin {

UnrollTargets MakeUnrollTargets(const GameHistory& h, int t, int K, int n, const float* bootstrap,
                                float final_value, CounterRng& rng) {
  const int T = h.length(), A = h.num_actions;
  LT_CHECK_GE(t, 0);
  LT_CHECK_LT(t, T);
  LT_CHECK_GE(K, 0);
  LT_CHECK_GE(n, 1);
  const float* v = bootstrap ? bootstrap : h.root_values.data();
  UnrollTargets out;
  out.actions.resize(K);
  out.values.assign(K + 1, 0.0f);
  out.rewards.assign(K + 1, 0.0f);
  out.policies.assign(static_cast<size_t>(K + 1) * A, 0.0f);
  out.value_weight.assign(K + 1, 0.0f);
  out.reward_weight.assign(K + 1, 0.0f);
  out.policy_weight.assign(K + 1, 0.0f);
  for (int k = 0; k < K; ++k)
    out.actions[k] =
        t + k < T ? h.actions[t + k] : static_cast<int32_t>(rng.Bits() % static_cast<uint64_t>(A));
  for (int k = 0; k <= K; ++k) {
    const int u = t + k;
    float* policy = &out.policies[static_cast<size_t>(k) * A];
    if (u < T) {
      double ret = 0, disc = 1;
      int i = 0;
      for (; i < n && u + i < T; ++i) {
        ret += disc * h.rewards[u + i];
        disc *= h.discounts[u + i];
      }
      if (u + i < T)
        ret += disc * v[u + i];  // n steps inside the episode
      else if (!h.terminated)
        ret += disc * final_value;  // truncated inside the window
      out.values[k] = static_cast<float>(ret);
      out.value_weight[k] = 1;
      std::copy(&h.policies[static_cast<size_t>(u) * A],
                &h.policies[static_cast<size_t>(u + 1) * A], policy);
      out.policy_weight[k] = 1;
    } else if (h.terminated) {  // absorbing: value 0, reward 0 (below), uniform policy
      out.value_weight[k] = 1;
      std::fill(policy, policy + A, 1.0f / A);
      out.policy_weight[k] = 1;
    } else if (u == T) {  // the final observation of a truncated episode
      out.values[k] = final_value;
      out.value_weight[k] = 1;
    }
    if (k == 0) continue;
    if (u - 1 < T) {
      out.rewards[k] = h.rewards[u - 1];
      out.reward_weight[k] = 1;
    } else if (h.terminated) {
      out.reward_weight[k] = 1;  // absorbing: reward 0
    }
  }
  return out;
}

}  // namespace loantwin
