#pragma once
// The vectorised multi-agent environment API shared by every environment (the twin,
// CartPole, ...). N instances step in lockstep into pre-allocated buffers.
//
// One step, top-down:
//   for each role r in order:        // risk, portfolio, pricing, credit, collection for the twin
//     read observations(r), action_masks(r), acting(r)
//     Act(r, actions)                // [N, action_dims] int32; nullptr = the role's fallback
//   Step()                           // advance; fills rewards, terminated, truncated, next obs
//
// A role acts on instances where acting(r) is 1 (its cadence); elsewhere its last decision
// holds and the actions passed for that instance are ignored. A role's Act may change the
// observations and masks of the roles below it (its directive), so read a role's buffers after
// the roles above it acted. Roles not given actions fall back to the environment's rule-based
// baseline (or a uniformly random mask-respecting policy, SetFallback). Actions outside the
// mask are rejected with std::invalid_argument naming role, instance and component.
//
// Episodes end by `terminated` (the environment's own end) or `truncated` (max_episode_steps
// reached), kept separate. Auto-reset happens in the same Step: observations() then hold the
// first observation of the new episode and final_observations() the last observation of the
// finished one (valid where terminated or truncated is 1), so a truncated episode can be
// bootstrapped from V(final observation).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/binary_state.h"
#include "core/parallel_runner.h"
#include "env/guardrails.h"
#include "spaces/space.h"

namespace loantwin {

struct RoleSpec {
  std::string name;
  int cadence = 1;  ///< acts at episode steps 0, cadence, 2 cadence, ...
  FeatureLayout features;
  ActionSpace action_space = Discrete(1);
  std::vector<std::string> action_dim_names;              ///< one per action component
  std::vector<std::vector<std::string>> action_meanings;  ///< [component][value]
  /// Numeric value each action index stands for, [component][value] (the budget multiple, the
  /// cutoff band, ...); empty = the index itself. Exported policies decode with it.
  std::vector<std::vector<double>> action_values;
  std::vector<std::string> objectives;  ///< reward vector components
  int obs_dim() const { return features.size(); }
  Box observation_space() const { return features.ToBox(); }
};

struct EnvOptions {
  int num_envs = 1;
  int num_threads = 1;
  uint64_t seed = 0;
  int max_episode_steps = 0;  ///< 0 = the environment's default
  int spin_microseconds = 200;
  int instance_offset = 0;  ///< instance i draws from stream instance_offset + i (batching)
};

enum class FallbackPolicy { kBaseline, kRandom };

class MultiAgentEnv {
 public:
  virtual ~MultiAgentEnv();
  MultiAgentEnv(const MultiAgentEnv&) = delete;
  MultiAgentEnv& operator=(const MultiAgentEnv&) = delete;

  const std::string& name() const { return name_; }
  int num_envs() const { return n_; }
  int num_roles() const { return static_cast<int>(roles_.size()); }
  const RoleSpec& role(int r) const { return roles_.at(r); }
  /// Index of a role by name; -1 if none.
  int FindRole(const std::string& name) const;
  int max_episode_steps() const { return max_steps_; }
  /// Version of the observation and action layouts; bumped whenever a role's features or
  /// action components change, so exported policies from another version are refused.
  virtual int version() const { return 1; }
  /// The environment's own configuration (env.config of an experiment) with every default
  /// filled in, as a YAML mapping: what the run directory's resolved config.yaml records.
  virtual std::string ConfigYaml() const { return "{}"; }
  uint64_t seed() const { return seed_; }
  /// Random-stream id of instance i (instance_offset + i).
  uint64_t instance_id(int i) const { return static_cast<uint64_t>(offset_) + i; }

  /// Starts a new episode on every instance (the first call: episode 0; later calls continue
  /// each instance's episode count, so no episode's randomness repeats).
  void Reset();
  /// Decides role r's actions for this step; roles above r that have not acted fall back first.
  void Act(int role, const int32_t* actions);
  /// The rule-based baseline's actions of role r for this step into out ([N, action_dims]; rows
  /// of acting instances), moved inside the guardrails as the baseline fallback is: what Act(r,
  /// nullptr) would take under FallbackPolicy::kBaseline. Roles above r that have not acted fall
  /// back first. Changes nothing else (the trainer's imitation phase, docs/training.md).
  void BaselineDecisions(int role, int32_t* out);
  /// Advances every instance one step (roles that have not acted fall back).
  void Step();
  /// Step, with `extra_items` calls extra(k), k in [0, extra_items), handed out first to the
  /// environment's threads beside the instances' work (the trainer's overlapped updates: they
  /// fill the threads' idle time without more threads than cores). extra must not touch the
  /// environment and must not throw.
  void StepWith(int extra_items, const std::function<void(int)>& extra);
  void SetFallback(int role, FallbackPolicy policy);
  /// Complete state (buffers, counters, every instance) for checkpoints: a restored environment
  /// continues bit for bit. Call between steps (not between Act and Step).
  void SaveState(StateWriter& w) const;
  void LoadState(StateReader& r);
  /// Replaces role r's reward weights (objective -> weight; others 0). Environments with fixed
  /// rewards throw std::invalid_argument.
  virtual void SetRewardWeights(int role,
                                const std::vector<std::pair<std::string, double>>& weights);
  FallbackPolicy fallback(int role) const { return fallback_.at(role); }
  /// Per-instance metrics of the last step that constraints read (training/constraints.h), by
  /// name; empty for environments without any. The twin: its metrics row (docs/twin-model.md)
  /// and max_product_share.
  virtual const std::vector<std::string>& metric_names() const;
  /// Metric k (an index into metric_names()) of instance i after the last Step; after an
  /// auto-reset, still the finished episode's last month.
  virtual double metric(int /*i*/, int /*k*/) const { return 0.0; }
  /// A label of instance i's episodes for per-scenario statistics (the twin: its scenario);
  /// empty by default.
  virtual std::string instance_label(int /*i*/) const { return ""; }

  /// Guardrails (env/guardrails.h) applied to every role's masks after the environment's own
  /// rules, before any policy (agent, baseline or random fallback) acts; baselines' actions are
  /// moved to the nearest allowed ones. Call before the first Reset. std::invalid_argument
  /// naming the rule if one does not fit the roles.
  void SetGuardrails(std::vector<GuardrailRule> rules);
  const std::vector<GuardrailRule>& guardrails() const { return guard_rules_; }
  struct GuardrailCount {
    int64_t fired = 0;      ///< decisions the rule restricted
    int64_t decisions = 0;  ///< decisions of the roles it applies to
  };
  /// Per rule, summed over instances since construction (or the checkpoint loaded).
  std::vector<GuardrailCount> guardrail_counts() const;
  /// Rules that restricted role r's current mask of instance i (bit k: rule k).
  uint64_t guardrails_fired(int r, int i) const {
    return guards_.empty() ? 0 : guard_fired_[r][static_cast<size_t>(i)];
  }

  // Buffers, row-major over instances; valid after Reset and after each Step.
  const float* observations(int r) const { return obs_[r].data(); }
  const float* final_observations(int r) const { return final_obs_[r].data(); }
  /// Action masks of the final state of an episode that ended this step (rows valid where
  /// terminated or truncated): a value-based learner's bootstrap maximises over these.
  const uint8_t* final_action_masks(int r) const { return final_masks_[r].data(); }
  const uint8_t* action_masks(int r) const { return masks_[r].data(); }
  const uint8_t* acting(int r) const { return acting_[r].data(); }
  /// Actions in force for each instance (last decision), [N, action_dims].
  const int32_t* actions(int r) const { return actions_[r].data(); }
  const float* reward_vectors(int r) const { return reward_vec_[r].data(); }
  const float* rewards(int r) const { return reward_[r].data(); }
  const uint8_t* terminated() const { return terminated_.data(); }
  const uint8_t* truncated() const { return truncated_.data(); }
  /// Steps taken in the current episode (0 right after a reset).
  const int32_t* episode_steps() const { return steps_.data(); }
  /// Episode index per instance (counts resets).
  const int64_t* episodes() const { return episodes_.data(); }

 protected:
  MultiAgentEnv(std::string name, std::vector<RoleSpec> roles, const EnvOptions& options,
                int default_max_episode_steps);

  // --- hooks, called on disjoint instance ranges from worker threads ---
  /// Starts episode `episode` on instance i and writes its observations for every role.
  virtual void ResetInstance(int i, uint64_t episode) = 0;
  /// Applies actions(r) of every role, advances instances [begin, end), writes reward vectors,
  /// scalar rewards, observations and sets terminated where the episode ended on its own.
  virtual void StepInstances(int begin, int end) = 0;
  /// Writes role r's action masks for instances [begin, end).
  virtual void WriteMasks(int role, int begin, int end) = 0;
  /// Rule-based actions of role r for instances [begin, end) into out ([N, dims] layout).
  virtual void BaselineActions(int role, int begin, int end, int32_t* out) = 0;
  /// After role r decided for instances [begin, end): refresh the roles below (directives).
  virtual void OnDecision(int /*role*/, int /*begin*/, int /*end*/) {}
  /// Checks the call (after Reset, a valid role) and lets the roles above that have not acted
  /// fall back.
  void ActAbove(int role, const char* caller);
  /// BaselineActions for [begin, end), then the guardrails' projection of acting instances.
  void GuardedBaseline(int role, int begin, int end, int32_t* out);
  /// WriteMasks and then the guardrails: what OnDecision calls to refresh the roles below.
  void RefreshMasks(int role, int begin, int end);
  /// The environment's own state (SaveState/LoadState call these).
  virtual void SaveInstances(StateWriter& w) const = 0;
  virtual void LoadInstances(StateReader& r) = 0;
  /// Why component `dim` of role r is masked as it is for instance i (error messages).
  virtual std::string ExplainMask(int /*role*/, int /*i*/, int /*dim*/) const { return ""; }

  // --- buffer access for implementations ---
  float* obs_row(int r, int i) {
    return obs_[r].data() + static_cast<size_t>(i) * roles_[r].obs_dim();
  }
  uint8_t* mask_row(int r, int i) {
    return masks_[r].data() + static_cast<size_t>(i) * roles_[r].action_space.mask_width();
  }
  const uint8_t* mask_row(int r, int i) const {
    return masks_[r].data() + static_cast<size_t>(i) * roles_[r].action_space.mask_width();
  }
  const int32_t* action_row(int r, int i) const {
    return actions_[r].data() + static_cast<size_t>(i) * roles_[r].action_space.action_dims();
  }
  float* reward_vec_row(int r, int i) {
    return reward_vec_[r].data() + static_cast<size_t>(i) * roles_[r].objectives.size();
  }
  void set_reward(int r, int i, float v) { reward_[r][i] = v; }
  /// Sets role r's actions in force for instance i (action_dims values).
  void set_action_row(int r, int i, const int32_t* a) {
    const int dims = roles_[r].action_space.action_dims();
    std::copy(a, a + dims, actions_[r].data() + static_cast<size_t>(i) * dims);
  }
  void set_terminated(int i) { terminated_[i] = 1; }
  int step_of(int i) const { return steps_[i]; }
  ParallelRunner& runner() { return *runner_; }

 private:
  template <typename Fn>
  void ForRanges(Fn&& fn);

  std::string name_;
  std::vector<RoleSpec> roles_;
  int n_;
  uint64_t seed_;
  int offset_;
  int max_steps_;
  int chunk_;
  std::unique_ptr<ParallelRunner> runner_;
  std::vector<std::vector<float>> obs_, final_obs_, reward_vec_, reward_;
  std::vector<std::vector<uint8_t>> masks_, final_masks_, acting_;
  std::vector<std::vector<int32_t>> actions_, scratch_;
  std::vector<uint8_t> terminated_, truncated_;
  std::vector<int32_t> steps_;
  std::vector<int64_t> episodes_;
  std::vector<FallbackPolicy> fallback_;
  std::vector<bool> acted_;
  bool reset_done_ = false;
  uint64_t step_count_ = 0;
  std::vector<GuardrailRule> guard_rules_;
  std::vector<RoleGuardrails> guards_;              ///< [role]; empty without guardrails
  std::vector<std::vector<uint64_t>> guard_fired_;  ///< [role][instance]: rules that fired
  std::vector<int64_t> guard_fired_count_, guard_decisions_;  ///< [rule * N + instance]
};

}  // namespace loantwin
