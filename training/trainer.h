#pragma once
// The training loop: every step goes through the roles top-down; learning roles decide through
// their Agent (ActAndRecord, then Observe and MaybeUpdate after the environment step), frozen
// roles through their exported policy, the others fall back to baseline or random. Each agent
// learns on its own cadence (PPO: after num_steps environment steps; DQN: every
// train_frequency steps once learning_starts steps have passed).

#include <torch/script.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agents/agent.h"
#include "env/multi_agent_env.h"
#include "training/experiment.h"

namespace loantwin {

class MetricsLogger;

/// Sets OpenBLAS (if it is the BLAS in use) to one thread: reproducible numbers on any machine.
void PinBlasToOneThread();

struct TrainProgress {
  int64_t step = 0, total = 0;
  double seconds = 0, steps_per_second = 0;
  std::map<std::string, double> episodic_return;  ///< role -> mean over the return window
  int64_t episodes = 0;
};

class Trainer {
 public:
  /// Builds the environment and agents; ConfigError (naming the experiment file's line) for
  /// unknown roles, rewards on fixed-reward environments and similar.
  explicit Trainer(ExperimentConfig config);
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

  int64_t global_step() const { return global_step_; }
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

 private:
  struct Learner;
  void StepOnce();
  int active_role_ = 0;  ///< the role StepOnce is calling (error messages)
  void LogMetrics(bool force);
  void RunEvaluation();
  const float* GlobalState(bool final);

  ExperimentConfig config_;
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
};

}  // namespace loantwin
