#pragma once
// The training loop: every step goes through the roles top-down; learning roles decide through
// their Agent (ActAndRecord, then Observe and MaybeUpdate after the environment step), frozen
// roles through their exported policy, the others fall back to baseline or random. Each agent
// learns on its own cadence (PPO: after num_steps environment steps; DQN: every
// train_frequency steps once learning_starts steps have passed). The learning roles' updates run
// concurrently on up to env.threads learner threads (each touches only its own agent), so the
// core the environment uses between its steps is not idle; results do not depend on it. With
// overlap_updates, the roles whose algorithms learn off-policy from a replay (DQN, MuZero)
// learn during the next environment step instead, their policies acting one update behind.

#include <torch/script.h>

#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agents/agent.h"
#include "env/multi_agent_env.h"
#include "training/constraints.h"
#include "training/experiment.h"

namespace loantwin {

class Collective;
class MetricsLogger;
class ParallelRunner;

/// Sets OpenBLAS (if it is the BLAS in use) to one thread: reproducible numbers on any machine.
void PinBlasToOneThread();

struct TrainProgress {
  int64_t step = 0, total = 0;
  double seconds = 0, steps_per_second = 0;
  std::map<std::string, double> episodic_return;  ///< role -> mean over the return window
  int64_t episodes = 0;
};

/// Wall seconds the training loop spent per component since the trainer was built
/// (docs/performance.md, "Training time budget"). Per role: deciding (a learning agent's
/// ActAndRecord - network call, sampling, masks, search; a baseline's or frozen policy's decision
/// inside the environment's Act), observing (rewards, normalisers, episode ends) and updating
/// (MaybeUpdate: the gradient steps and their bootstrap values). Two clock reads per component
/// and step: about 0.1 us each.
struct TimeBudget {
  double env_step = 0;          ///< the environment's Step (all instances, its threads)
  std::vector<double> act;      ///< [role]
  std::vector<double> observe;  ///< [role]
  std::vector<double> update;   ///< [role], on whichever learner thread ran it
  double update_wall = 0;       ///< wall time of all roles' updates (run concurrently); with
                                ///< overlap_updates the deferred ones are in env_step
  double bookkeeping = 0;       ///< episode returns, the centralised critic's global state
  double logging = 0, evaluation = 0, checkpoint = 0;
  double total = 0;  ///< Train()'s wall time
};

class Trainer {
 public:
  /// Builds the environment and agents; ConfigError (naming the experiment file's line) for
  /// unknown roles, rewards on fixed-reward environments and similar.
  /// With a group (distributed training, docs/distributed.md): this rank steps its own shard
  /// of environments - instances [rank x num_envs, (rank + 1) x num_envs) of the seed - with
  /// agents whose gradients and normalisers are merged across the ranks; global_step counts
  /// every rank's steps, episode statistics and constraint multipliers are reduced over the
  /// ranks. Every rank must run the same experiment.
  explicit Trainer(ExperimentConfig config, Collective* group = nullptr);
  ~Trainer();

  /// Sends metrics to a logger (CSV + TensorBoard) every config.log_every_steps.
  void SetLogger(MetricsLogger* logger) { logger_ = logger; }
  /// Called at every logging point (progress bars, log lines).
  void SetProgressCallback(std::function<void(const TrainProgress&)> cb) {
    progress_ = std::move(cb);
  }
  /// Called after each completed rollout when a checkpoint is due (checkpoint cadence).
  void SetCheckpointCallback(std::function<void(int64_t step)> cb) { checkpoint_ = std::move(cb); }

  /// Trains until `until_step` environment steps (default: config.total_steps). Stops at a
  /// rollout boundary of the environment steps, so it may overshoot by less than num_envs.
  void Train(int64_t until_step = -1);

  /// Everything needed to continue exactly: agents, rollouts in progress, environment state,
  /// counters and episode statistics.
  void Save(torch::serialize::OutputArchive& archive) const;
  void Load(torch::serialize::InputArchive& archive);
  /// Resumes a distributed run written by `from` ranks on this trainer's number of ranks
  /// (docs/distributed.md): `own` is this rank's state in the checkpoint (a rank below
  /// `from`), or null for a new shard, which takes `first` (rank 0's state) for its counters,
  /// agents and constraint multipliers and starts its environments and statistics afresh.
  /// Every learning agent must CanReshard() (else std::invalid_argument naming the role).
  void LoadResharded(torch::serialize::InputArchive& first, torch::serialize::InputArchive* own,
                     int from);

  int64_t global_step() const { return global_step_; }
  Collective* group() const { return group_; }
  /// Debugging distributed training: after every update the ranks compare a hash of each
  /// updated role's parameters and stop with an error naming the role if they differ.
  void SetParameterCheck(bool on) { check_parameters_ = on; }
  /// Parameter hashes compared across the ranks so far (SetParameterCheck): one per learning
  /// role per update, each equal on every rank or the run stopped.
  int64_t parameter_checks() const { return parameter_checks_; }
  /// The parameter hash of a role's agent (FNV-1a over the parameters' bytes).
  uint64_t ParameterHash(int role) const;
  /// The number of parameters of a learning role's agent (4 bytes each in a gradient
  /// all-reduce).
  int64_t ParameterCount(int role) const;
  const ExperimentConfig& config() const { return config_; }
  MultiAgentEnv& env() { return *env_; }
  /// The learning agent of a role; nullptr if the role is not learning.
  Agent* agent(int role) const;
  /// True if the role is decided by a learning agent or a frozen exported policy.
  bool HasPolicy(int role) const;
  /// The role's policy decision for n instances (greedy when deterministic; frozen policies are
  /// always greedy). Requires HasPolicy(role).
  void Decide(int role, const float* obs, const uint8_t* masks, int n, bool deterministic,
              int32_t* actions);
  /// Mean episodic return of a role over the last return_window episodes (NaN if none).
  double MeanEpisodicReturn(int role) const;
  TrainProgress Progress() const;
  /// The experiment's constraints: costs, episode statistics and multipliers.
  const ConstraintTracker& constraints() const { return constraints_; }
  /// Where the wall time of Train() went, summed over its calls.
  const TimeBudget& budget() const { return budget_; }

 private:
  struct Learner;
  void StepOnce();
  int active_role_ = 0;  ///< the role StepOnce is calling (error messages)
  void LogMetrics(bool force);
  void RunEvaluation();
  const float* GlobalState(bool final);

  ExperimentConfig config_;
  Collective* group_ = nullptr;
  int world_ = 1;  ///< ranks (1 without a group)
  bool check_parameters_ = false;
  int64_t parameter_checks_ = 0;
  std::unique_ptr<MultiAgentEnv> env_;
  std::vector<std::unique_ptr<Learner>> learners_;           ///< per role, null if not learning
  std::vector<std::unique_ptr<torch::jit::Module>> frozen_;  ///< per role, null if not frozen
  int64_t next_eval_ = 0;
  int64_t global_step_ = 0, next_log_ = 0, next_checkpoint_ = 0;
  std::vector<std::vector<double>> episode_return_;  ///< [role][instance]
  std::vector<std::deque<double>> recent_returns_;   ///< [role]
  int64_t episodes_ = 0;
  std::vector<float> global_state_;
  std::vector<int32_t> frozen_actions_;
  MetricsLogger* logger_ = nullptr;
  std::function<void(const TrainProgress&)> progress_;
  std::function<void(int64_t)> checkpoint_;
  double start_time_ = 0;
  int64_t start_step_ = 0;
  TimeBudget budget_;
  std::vector<int> learning_roles_;  ///< roles with a learning agent, in order
  std::vector<uint8_t> updated_;     ///< [role]: updated at the last step
  /// Distributed: the ranks' mean episodic return per role and episodes, at the last log.
  std::vector<double> reduced_return_;
  int64_t reduced_episodes_ = 0;
  void ReduceEpisodeStatistics();
  std::unique_ptr<ParallelRunner> learner_runner_;  ///< null: updates run in turn
  std::vector<std::exception_ptr> update_errors_;   ///< per learning role, during an update
  /// overlap_updates: the learning roles whose updates run during the next environment step
  /// (Agent::can_defer_update) and their errors.
  std::vector<int> deferred_roles_;
  std::vector<std::exception_ptr> deferred_errors_;
  void RunDeferred(int k);  ///< the k-th deferred role's RunPreparedUpdate (never throws)
  void RethrowDeferredError();
  ConstraintTracker constraints_;
  std::vector<float> shaped_rewards_;                  ///< a role's rewards less lambda x costs
  std::vector<float> role_costs_, role_cost_weights_;  ///< costs for agents that learn them
  /// Guardrail counts at the last log line (per rule).
  std::vector<MultiAgentEnv::GuardrailCount> guardrail_seen_;
};

}  // namespace loantwin
