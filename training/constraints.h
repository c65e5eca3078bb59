#pragma once
// Constraints of an experiment (docs/training.md, "Constraints"): a per-step cost from one of the
// environment's metrics (MultiAgentEnv::metric_names) outside [min, max], an allowed expected
// discounted cost per episode (limit), and a Lagrange multiplier per constraint that prices the
// cost into the rewards of the roles it applies to (r - sum_k lambda_k c_k). The multiplier
// rises while the episodes' cost is above the limit and falls (not below 0) while it is under:
// gradient ascent on the Lagrangian, lambda <- max(0, lambda + lr (J_c - limit)), or the
// PID-Lagrangian of Stooke, Achiam & Abbeel (2020, "Responsive Safety in Reinforcement Learning
// by PID Lagrangian Methods"), which damps the multiplier's oscillation.
//
// Every constraint's cost and violations are counted per episode and per instance label (the
// twin: the scenario) and logged as constraints/<name>/cost, constraints/<name>/violation_rate,
// constraints/<name>/lambda and constraints/<name>/<label>/violation_rate.

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config_fields.h"
#include "core/yaml_reader.h"

namespace loantwin {

class Collective;

class MultiAgentEnv;
class StateWriter;
class StateReader;

struct ConstraintConfig {
  std::string name;
  std::string metric;  ///< a name from the environment's metric_names()
  std::optional<double> min, max;
  std::string cost = "shortfall";   ///< shortfall: distance outside [min, max]; indicator: 1
  double limit = 0;                 ///< allowed expected discounted cost per episode
  double discount = 1.0;            ///< per-step discount of the episode cost
  std::vector<std::string> roles;   ///< roles whose rewards carry the cost (empty: all learning)
  std::string update = "gradient";  ///< gradient | pid | fixed
  double lambda_init = 0;
  double lambda_lr = 0.1;   ///< gradient: step per unit of (J_c - limit)
  double lambda_max = 1e4;  ///< the multiplier's cap
  double pid_kp = 0, pid_ki = 0.1, pid_kd = 0;
  int episodes_per_update = 0;  ///< episodes averaged per multiplier update (0: num_envs)
  /// true: a terminated episode (the twin: the institution failed) ends in an absorbing state
  /// whose cost repeats every remaining step to the horizon, charged at the terminal step, so
  /// failing is no way out of the costs of breaching. Off by default: on the quickstart it made
  /// failures more frequent, not less (docs/training.md, "Failure and the cost stream").
  bool absorbing = false;

  /// Parses one item of `constraints:` (ConfigError naming file, line and key).
  static ConstraintConfig Parse(const YamlValue& node);
  /// The resolved item as YAML (every field).
  void Write(YAML::Emitter& out) const;
};

/// The scalar fields, listed once (parsing, the resolved config, docs).
template <typename V>
void VisitFields(ConstraintConfig& c, V&& v) {
  v("metric", c.metric, "the environment metric (the twin: a metrics-row column)");
  v("cost", c.cost, Choices{"shortfall", "indicator"},
    "per step: distance outside [min, max], or 1 when outside");
  v("limit", c.limit, 0.0, 1e12, "allowed expected discounted cost per episode");
  v("discount", c.discount, 0.0, 1.0, "per-step discount of the episode cost");
  v("roles", c.roles, "roles whose rewards carry lambda x cost (empty: every learning role)");
  v("update", c.update, Choices{"gradient", "pid", "fixed"},
    "multiplier update: gradient ascent, PID-Lagrangian, or held at lambda_init");
  v("lambda_init", c.lambda_init, 0.0, 1e12, "the multiplier at the start");
  v("lambda_lr", c.lambda_lr, 0.0, 1e12, "gradient: lambda += lambda_lr x (J_c - limit)");
  v("lambda_max", c.lambda_max, 0.0, 1e12, "the multiplier's cap");
  v("pid_kp", c.pid_kp, 0.0, 1e12, "pid: proportional gain on J_c - limit");
  v("pid_ki", c.pid_ki, 0.0, 1e12, "pid: integral gain (the integral is kept >= 0)");
  v("pid_kd", c.pid_kd, 0.0, 1e12, "pid: derivative gain on the rise of J_c");
  v("episodes_per_update", c.episodes_per_update, 0, 1000000,
    "finished episodes averaged into J_c per update (0: env.num_envs)");
  v("absorbing", c.absorbing,
    "a terminated episode's last cost repeats to the horizon (charged at the terminal step)");
}

/// The multiplier's update rule alone (unit-testable).
struct Multiplier {
  double lambda = 0;
  double integral = 0;    ///< pid: sum of (J_c - limit), kept >= 0
  double previous_j = 0;  ///< pid: J_c of the previous update
  bool has_previous = false;
  /// One update from the mean episode cost j.
  void Update(const ConstraintConfig& c, double j);
};

/// Per-step costs, episode accounting, multipliers and reward shaping for an experiment's
/// constraints.
class ConstraintTracker {
 public:
  ConstraintTracker() = default;
  /// Resolves metrics and roles against the environment; ConfigError naming the constraint's
  /// line for an unknown metric or role. `learning` marks the roles with a learning agent.
  ConstraintTracker(std::vector<ConstraintConfig> configs, std::vector<YamlValue> nodes,
                    const MultiAgentEnv& env, const std::vector<bool>& learning, int window);

  bool empty() const { return constraints_.empty(); }
  int size() const { return static_cast<int>(constraints_.size()); }
  const ConstraintConfig& config(int k) const { return constraints_[k].config; }
  double lambda(int k) const { return constraints_[k].multiplier.lambda; }
  /// True if constraint k prices role r's rewards.
  bool applies(int k, int role) const { return constraints_[k].roles[role]; }

  /// After env.Step(): each instance's cost this step, episode sums, and at episode ends the
  /// episode's statistics and (every episodes_per_update episodes) the multiplier update.
  void Observe(const MultiAgentEnv& env);
  /// Cost of constraint k for instance i in the last observed step.
  double cost(int k, int i) const { return constraints_[k].step_cost[i]; }
  /// rewards - sum over the constraints applying to `role` of lambda x cost, into out[n].
  /// Returns false (out untouched) if no constraint applies to the role.
  bool Shape(int role, const float* rewards, int n, float* out) const;
  /// Constraints pricing role r (in constraint order).
  int num_applying(int role) const;
  /// For agents that learn costs themselves (PPO-Lagrangian): the last observed step's costs of
  /// the constraints pricing `role`, [n, num_applying(role)], and their multipliers.
  void CostsFor(int role, int n, float* costs, float* weights) const;

  /// name -> value at this point: cost (mean discounted episode cost over the window),
  /// violation_rate (share of steps outside the bounds), episode_violation_rate (share of
  /// episodes with any), lambda, and per label <label>/violation_rate; keys without the
  /// constraints/<name>/ prefix are not used.
  std::vector<std::pair<std::string, double>> Metrics() const;

  void Save(StateWriter& w) const;
  void Load(StateReader& r);

  /// Distributed training: Observe keeps the finished episodes' costs for SyncMultipliers
  /// instead of updating the multipliers itself.
  void DeferMultiplierUpdates() { defer_updates_ = true; }
  /// Every rank's finished episodes since the last multiplier update, summed over the ranks:
  /// once there are episodes_per_update of them, every rank updates the multiplier with their
  /// mean cost (a collective; the trainer calls it at the steps where its roles update).
  void SyncMultipliers(Collective& group);
  /// Takes the multipliers (and their PID state) of `other`, a tracker of the same
  /// constraints: a new shard of a resumed distributed run starts its own statistics.
  void CopyMultipliersFrom(const ConstraintTracker& other);

 private:
  struct EpisodeStats {
    double cost = 0;
    int steps = 0, violations = 0;
  };
  struct Constraint {
    ConstraintConfig config;
    int metric = -1;
    std::vector<bool> roles;  ///< [role]
    Multiplier multiplier;
    // per instance, the episode in progress
    std::vector<double> step_cost, episode_cost, weight;
    std::vector<int> steps, violations;
    std::vector<double> pending;  ///< finished episodes' costs since the last update
    std::deque<EpisodeStats> recent;
    std::map<std::string, std::pair<int64_t, int64_t>> by_label;  ///< violations, steps
  };
  std::vector<Constraint> constraints_;
  std::vector<std::string> labels_;  ///< [instance]
  int window_ = 20;
  bool defer_updates_ = false;
  int num_envs_ = 0;
};

}  // namespace loantwin
