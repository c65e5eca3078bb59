#include "training/trainer.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <utility>

#include "agents/agent_registry.h"
#include "agents/module_util.h"
#include "agents/numerics.h"
#include "core/binary_state.h"
#include "core/collective.h"
#include "core/config_error.h"
#include "core/counter_rng.h"
#include "core/parallel_runner.h"
#include "env/env_registry.h"
#include "training/evaluation.h"
#include "training/metrics_logger.h"

namespace loantwin {
namespace {

/// FNV-1a over bytes, continuing from `h` (the offset basis to start).
uint64_t Fnv1a(const void* data, size_t size, uint64_t h = 1469598103934665603ULL) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i < size; ++i) h = (h ^ bytes[i]) * 1099511628211ULL;
  return h;
}

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

struct Trainer::Learner {
  std::unique_ptr<Agent> agent;
  std::vector<int32_t> actions;
  std::vector<int32_t> demonstrations;  ///< the baseline's decisions (imitation phase)
  UpdateStats last_stats;
};

Trainer::Trainer(ExperimentConfig config, Collective* group)
    : config_(std::move(config)), group_(group), world_(group ? group->world_size() : 1) {
  at::set_num_threads(1);  // small networks: one intra-op thread is fastest and deterministic
  PinBlasToOneThread();
  if (group_ != nullptr) {
    // Every rank runs the same experiment (and so makes the same collective calls).
    const std::string yaml = config_.ToYaml();
    group_->CheckSame(Fnv1a(yaml.data(), yaml.size()), "experiment (config.yaml)");
  }
  EnvOptions eo;
  eo.num_envs = config_.num_envs;
  eo.num_threads = config_.threads;
  eo.seed = config_.seed;
  // A rank's shard: the next num_envs instances of the seed's streams.
  if (group_ != nullptr) eo.instance_offset = group_->rank() * config_.num_envs;
  eo.max_episode_steps = config_.max_episode_steps;
  try {
    env_ = MakeEnv(config_.env_name, eo, config_.env_config ? &*config_.env_config : nullptr);
  } catch (const std::invalid_argument& e) {
    throw ConfigError(fmt::format("{}: env: {}", config_.file, e.what()));
  }
  if (!config_.guardrails.empty()) {
    try {
      env_->SetGuardrails(config_.guardrails);
    } catch (const std::invalid_argument& e) {
      config_.guardrails_node->Fail(e.what());
    }
    guardrail_seen_.assign(config_.guardrails.size(), {});
  }
  const int n = env_->num_envs();
  learners_.resize(env_->num_roles());
  frozen_.resize(env_->num_roles());
  auto LoadFrozen = [&](int r, const std::string& path, const YamlValue& node) {
    auto module = std::make_unique<torch::jit::Module>();
    try {
      *module = torch::jit::load(path);
    } catch (const c10::Error& e) {
      node.Fail(
          fmt::format("cannot load frozen policy '{}': {}", path, e.what_without_backtrace()));
    }
    const RoleSpec& spec = env_->role(r);
    try {  // a dry run checks the policy fits this role's observation and mask
      torch::NoGradGuard no_grad;
      const torch::Tensor out =
          module
              ->forward({torch::zeros({1, spec.obs_dim()}),
                         torch::ones({1, spec.action_space.mask_width()}, torch::kUInt8)})
              .toTensor();
      if (out.dim() != 2 || out.size(1) != spec.action_space.action_dims())
        throw std::runtime_error("wrong output shape");
    } catch (const std::exception& e) {
      node.Fail(
          fmt::format("frozen policy '{}' does not fit role '{}' (obs {}, mask {}, {} action "
                      "components): {}",
                      path, spec.name, spec.obs_dim(), spec.action_space.mask_width(),
                      spec.action_space.action_dims(), e.what()));
    }
    frozen_[r] = std::move(module);
  };
  if (!config_.constraints.empty()) {
    // Before the agents: an agent that learns costs itself is built with one cost channel per
    // constraint pricing its role.
    std::vector<bool> learning(env_->num_roles());
    for (const auto& [name, rc] : config_.roles) {
      const int r = env_->FindRole(name);
      if (r >= 0 && rc.learning()) learning[r] = true;
    }
    constraints_ = ConstraintTracker(config_.constraints, config_.constraint_nodes, *env_, learning,
                                     config_.return_window);
    shaped_rewards_.resize(n);
  }
  std::string role_names;
  for (int r = 0; r < env_->num_roles(); ++r)
    role_names += (role_names.empty() ? "" : ", ") + env_->role(r).name;
  for (const auto& [name, rc] : config_.roles) {
    const int r = env_->FindRole(name);
    const YamlValue& node = config_.role_nodes.at(name);
    if (r < 0)
      node.Fail(fmt::format("unknown role '{}' for environment '{}' (roles: {})", name,
                            config_.env_name, role_names));
    if (rc.has_rewards) {
      try {
        env_->SetRewardWeights(r, rc.rewards);
      } catch (const std::invalid_argument& e) {
        node.Fail(e.what());
      }
    }
    if (rc.agent == "random") env_->SetFallback(r, FallbackPolicy::kRandom);
    if (rc.agent == "baseline") env_->SetFallback(r, FallbackPolicy::kBaseline);
    if (rc.agent == "frozen") {
      LoadFrozen(r, rc.policy, node);
      continue;
    }
    if (!rc.learning()) continue;
    const RoleSpec& spec = env_->role(r);
    AgentSpec as;
    as.role = name;
    as.obs_dim = spec.obs_dim();
    for (int k = 0; k < env_->num_roles(); ++k) as.global_state_dim += env_->role(k).obs_dim();
    as.nvec.assign(spec.action_space.dims().nvec().begin(), spec.action_space.dims().nvec().end());
    as.num_envs = n;
    as.cadence = spec.cadence;
    as.seed = DeriveKey(config_.seed, 0x6167656e74 + r);
    as.total_steps = config_.total_steps / world_;  // an agent counts its own rank's steps
    if (!constraints_.empty()) as.num_costs = constraints_.num_applying(r);
    auto l = std::make_unique<Learner>();
    try {
      l->agent = AgentAlgorithms().Get(rc.agent).make(as, *rc.options);
    } catch (const std::invalid_argument& e) {
      node.Fail(e.what());
    }
    l->actions.resize(static_cast<size_t>(n) * spec.action_space.action_dims());
    l->agent->SetGroup(group_);
    learners_[r] = std::move(l);
  }
  for (int r = 0; r < env_->num_roles(); ++r)
    if (learners_[r]) learning_roles_.push_back(r);
  update_errors_.assign(learning_roles_.size(), nullptr);
  const int learner_threads = std::min(config_.threads, static_cast<int>(learning_roles_.size()));
  // No spinning: a spinning learner thread would compete with the environment's workers.
  // Distributed: the roles update in turn, so every rank makes its collectives in one order.
  if (learner_threads > 1 && world_ == 1)
    learner_runner_ = std::make_unique<ParallelRunner>(learner_threads, 0);
  if (config_.overlap_updates) {
    if (group_ != nullptr)
      throw ConfigError(fmt::format(
          "{}: overlap_updates: not in distributed training (the ranks' updates are collective "
          "operations in a fixed order); set it to false",
          config_.file));
    for (int r : learning_roles_)
      if (learners_[r]->agent->can_defer_update()) deferred_roles_.push_back(r);
    deferred_errors_.assign(deferred_roles_.size(), nullptr);
  }
  if (group_ != nullptr) {
    if (!constraints_.empty()) constraints_.DeferMultiplierUpdates();
    // Identical initial parameters (same seeds on every rank), checked once.
    for (int r : learning_roles_)
      group_->CheckSame(ParameterHash(r), "initial parameters of role " + env_->role(r).name);
  }
  updated_.assign(env_->num_roles(), false);
  budget_.act.assign(env_->num_roles(), 0.0);
  budget_.observe.assign(env_->num_roles(), 0.0);
  budget_.update.assign(env_->num_roles(), 0.0);
  episode_return_.assign(env_->num_roles(), std::vector<double>(n, 0.0));
  recent_returns_.resize(env_->num_roles());
  env_->Reset();
}

Trainer::~Trainer() = default;

Agent* Trainer::agent(int role) const {
  return learners_.at(role) ? learners_[role]->agent.get() : nullptr;
}

bool Trainer::HasPolicy(int role) const {
  return learners_.at(role) || frozen_.at(role);
}

void Trainer::Decide(int role, const float* obs, const uint8_t* masks, int n, bool deterministic,
                     int32_t* actions) {
  if (learners_.at(role)) {
    learners_[role]->agent->Act(obs, masks, n, deterministic, actions);
    return;
  }
  const RoleSpec& spec = env_->role(role);
  torch::NoGradGuard no_grad;
  const torch::Tensor out =
      frozen_.at(role)
          ->forward({torch::from_blob(const_cast<float*>(obs), {n, spec.obs_dim()}),
                     torch::from_blob(const_cast<uint8_t*>(masks),
                                      {n, spec.action_space.mask_width()}, torch::kUInt8)})
          .toTensor()
          .to(torch::kInt32)
          .contiguous();
  std::copy(out.data_ptr<int32_t>(), out.data_ptr<int32_t>() + out.numel(), actions);
}

double Trainer::MeanEpisodicReturn(int role) const {
  const auto& q = recent_returns_.at(role);
  if (q.empty()) return std::numeric_limits<double>::quiet_NaN();
  double s = 0;
  for (double v : q) s += v;
  return s / q.size();
}

const float* Trainer::GlobalState(bool final) {
  const int n = env_->num_envs();
  int dim = 0;
  for (int r = 0; r < env_->num_roles(); ++r) dim += env_->role(r).obs_dim();
  global_state_.resize(static_cast<size_t>(n) * dim);
  for (int i = 0; i < n; ++i) {
    float* out = global_state_.data() + static_cast<size_t>(i) * dim;
    for (int r = 0; r < env_->num_roles(); ++r) {
      const int d = env_->role(r).obs_dim();
      const float* src = (final ? env_->final_observations(r) : env_->observations(r)) +
                         static_cast<size_t>(i) * d;
      out = std::copy(src, src + d, out);
    }
  }
  return global_state_.data();
}

void Trainer::StepOnce() {
  const int n = env_->num_envs();
  double t0 = WallSeconds(), t1;
  for (int r = 0; r < env_->num_roles(); ++r) {
    Learner* l = learners_[r].get();
    if (!l) {
      if (frozen_[r]) {
        frozen_actions_.resize(static_cast<size_t>(n) * env_->role(r).action_space.action_dims());
        Decide(r, env_->observations(r), env_->action_masks(r), n, true, frozen_actions_.data());
        env_->Act(r, frozen_actions_.data());
      } else {
        env_->Act(r, nullptr);
      }
    } else {
      active_role_ = r;
      AgentBatch batch;
      batch.n = n;
      batch.obs = env_->observations(r);
      batch.critic_obs = l->agent->wants_global_state() ? GlobalState(false) : batch.obs;
      batch.masks = env_->action_masks(r);
      batch.acting = env_->acting(r);
      if (l->agent->wants_demonstrations()) {  // the imitation phase: the baseline acts
        l->demonstrations.resize(l->actions.size());
        env_->BaselineDecisions(r, l->demonstrations.data());
        batch.demonstrations = l->demonstrations.data();
      }
      l->agent->ActAndRecord(batch, l->actions.data());
      env_->Act(r, l->actions.data());
    }
    t1 = WallSeconds();
    budget_.act[r] += t1 - t0;
    t0 = t1;
  }
  // overlap_updates: the deferred roles learn what their last PrepareUpdate noted during the
  // environment step, as work items of its threads beside the instances (their policies have
  // acted above, one update behind; each touches only its own agent).
  if (deferred_roles_.empty())
    env_->Step();
  else
    env_->StepWith(static_cast<int>(deferred_roles_.size()), [this](int k) { RunDeferred(k); });
  t1 = WallSeconds();
  budget_.env_step += t1 - t0;  // with overlap_updates, the deferred updates too
  t0 = t1;
  RethrowDeferredError();  // nothing without deferred roles
  global_step_ += static_cast<int64_t>(n) * world_;

  const int roles = env_->num_roles();
  if (!constraints_.empty()) constraints_.Observe(*env_);
  for (int r = 0; r < roles; ++r) {
    for (int i = 0; i < n; ++i) {
      episode_return_[r][i] += env_->rewards(r)[i];
      if (env_->terminated()[i] || env_->truncated()[i]) {
        auto& q = recent_returns_[r];
        q.push_back(episode_return_[r][i]);
        while (static_cast<int>(q.size()) > config_.return_window) q.pop_front();
        episode_return_[r][i] = 0;
        if (r == 0) ++episodes_;
      }
    }
    Learner* l = learners_[r].get();
    if (!l) continue;
    active_role_ = r;
    const bool central = l->agent->wants_global_state();
    AgentFeedback feedback;
    feedback.n = n;
    feedback.rewards = env_->rewards(r);
    // Constrained roles learn from the Lagrangian reward r - sum_k lambda_k c_k, or (agents with
    // a cost critic) from the reward and the costs apart; the episodic returns logged above
    // stay the environment's own.
    if (l->agent->learns_costs()) {
      const int k = constraints_.num_applying(r);
      role_costs_.resize(static_cast<size_t>(n) * k), role_cost_weights_.resize(k);
      constraints_.CostsFor(r, n, role_costs_.data(), role_cost_weights_.data());
      feedback.costs = role_costs_.data();
      feedback.cost_weights = role_cost_weights_.data();
    } else if (constraints_.Shape(r, env_->rewards(r), n, shaped_rewards_.data())) {
      feedback.rewards = shaped_rewards_.data();
    }
    feedback.terminated = env_->terminated();
    feedback.truncated = env_->truncated();
    feedback.final_critic_obs = central ? GlobalState(true) : env_->final_observations(r);
    feedback.final_obs = env_->final_observations(r);
    feedback.final_masks = env_->final_action_masks(r);
    t1 = WallSeconds();
    budget_.bookkeeping += t1 - t0;
    t0 = t1;
    l->agent->Observe(feedback);
    t1 = WallSeconds();
    budget_.observe[r] += t1 - t0;
    t0 = t1;
  }
  // Updates: each learning role's MaybeUpdate touches only its own agent (network, optimiser,
  // buffers, random stream) and reads the environment's current arrays, so the roles update
  // concurrently on the learner threads; which thread runs a role never changes its numbers.
  const float* global_state = nullptr;
  for (int r = 0; r < roles; ++r)
    if (learners_[r] && learners_[r]->agent->wants_global_state()) {
      global_state = GlobalState(false);
      break;
    }
  auto UpdateRole = [&](int k) {
    const int r = learning_roles_[k];
    Learner* l = learners_[r].get();
    const double u0 = WallSeconds();
    try {
      AgentBatch current;
      current.n = n;
      current.obs = env_->observations(r);
      current.critic_obs = l->agent->wants_global_state() ? global_state : current.obs;
      current.masks = env_->action_masks(r);
      current.acting = env_->acting(r);
      if (config_.overlap_updates && l->agent->can_defer_update()) {
        l->agent->PrepareUpdate(current);  // learned during the next environment step
      } else {
        UpdateStats stats = l->agent->MaybeUpdate(current);
        updated_[r] = !stats.empty();
        if (!stats.empty()) l->last_stats = std::move(stats);
      }
    } catch (...) {
      update_errors_[k] = std::current_exception();
    }
    budget_.update[r] += WallSeconds() - u0;
  };
  t1 = WallSeconds();
  budget_.bookkeeping += t1 - t0;
  t0 = t1;
  const int count = static_cast<int>(learning_roles_.size());
  if (learner_runner_ && count > 1)
    learner_runner_->For(count, UpdateRole);
  else
    for (int k = 0; k < count; ++k) UpdateRole(k);
  t1 = WallSeconds();
  budget_.update_wall += t1 - t0;
  // The lowest failing role's error, whatever the threads' timing.
  for (int k = 0; k < count; ++k)
    if (update_errors_[k]) {
      active_role_ = learning_roles_[k];
      std::exception_ptr e = update_errors_[k];
      std::fill(update_errors_.begin(), update_errors_.end(), nullptr);
      std::rethrow_exception(e);
    }
  // Distributed: the multipliers merge the ranks' finished episodes at the steps where the
  // learning roles update (the same steps on every rank), not at every step - a collective per
  // step would cost more than the step.
  if (group_ != nullptr && !constraints_.empty() &&
      std::any_of(updated_.begin(), updated_.end(), [](uint8_t u) { return u != 0; }))
    constraints_.SyncMultipliers(*group_);
  if (check_parameters_ && group_ != nullptr)
    for (int r : learning_roles_)
      if (updated_[r]) {
        ++parameter_checks_;
        group_->CheckSame(ParameterHash(r), fmt::format("parameters of role {} after the update "
                                                        "at step {}",
                                                        env_->role(r).name, global_step_));
      }
}

void Trainer::RunDeferred(int k) {
  const int r = deferred_roles_[k];
  Learner* l = learners_[r].get();
  const double u0 = WallSeconds();
  try {
    UpdateStats stats = l->agent->RunPreparedUpdate();
    updated_[r] = !stats.empty();
    if (!stats.empty()) l->last_stats = std::move(stats);
  } catch (...) {
    deferred_errors_[k] = std::current_exception();
  }
  budget_.update[r] += WallSeconds() - u0;
}

void Trainer::RethrowDeferredError() {
  // The lowest failing role's error, whatever the threads' timing.
  for (size_t k = 0; k < deferred_errors_.size(); ++k)
    if (deferred_errors_[k]) {
      active_role_ = deferred_roles_[k];
      std::exception_ptr e = deferred_errors_[k];
      std::fill(deferred_errors_.begin(), deferred_errors_.end(), nullptr);
      std::rethrow_exception(e);
    }
}

uint64_t Trainer::ParameterHash(int role) const {
  uint64_t h = Fnv1a(nullptr, 0);
  for (const torch::Tensor& p : learners_.at(role)->agent->Parameters()) {
    const torch::Tensor c = p.detach().contiguous();
    h = Fnv1a(c.data_ptr(), static_cast<size_t>(c.nbytes()), h);
  }
  return h;
}

int64_t Trainer::ParameterCount(int role) const {
  int64_t count = 0;
  for (const torch::Tensor& p : learners_.at(role)->agent->Parameters()) count += p.numel();
  return count;
}

TrainProgress Trainer::Progress() const {
  TrainProgress p;
  p.step = global_step_;
  p.total = config_.total_steps;
  p.seconds = WallSeconds() - start_time_;
  p.steps_per_second = p.seconds > 0 ? (global_step_ - start_step_) / p.seconds : 0;
  const bool reduced = group_ != nullptr && !reduced_return_.empty();
  p.episodes = reduced ? reduced_episodes_ : episodes_;
  for (int r = 0; r < env_->num_roles(); ++r)
    p.episodic_return[env_->role(r).name] = reduced ? reduced_return_[r] : MeanEpisodicReturn(r);
  return p;
}

void Trainer::ReduceEpisodeStatistics() {
  // Per role: the sum and count of each rank's recent returns; and the episodes.
  const int roles = env_->num_roles();
  std::vector<double> sums(2 * roles + 1, 0.0);
  for (int r = 0; r < roles; ++r) {
    for (double v : recent_returns_[r]) sums[2 * r] += v;
    sums[2 * r + 1] = static_cast<double>(recent_returns_[r].size());
  }
  sums[2 * roles] = static_cast<double>(episodes_);
  group_->AllReduceSum(sums.data(), sums.size());
  reduced_return_.assign(roles, std::numeric_limits<double>::quiet_NaN());
  for (int r = 0; r < roles; ++r)
    if (sums[2 * r + 1] > 0) reduced_return_[r] = sums[2 * r] / sums[2 * r + 1];
  reduced_episodes_ = static_cast<int64_t>(sums[2 * roles]);
}

void Trainer::LogMetrics(bool force) {
  if (!force && global_step_ < next_log_) return;
  if (group_ != nullptr) ReduceEpisodeStatistics();  // every rank logs at the same steps
  // The closing call of Train() right after a periodic one (or on a finished run resumed):
  // this step's rows are written; only the progress line is new.
  const bool logged = next_log_ == global_step_ + config_.log_every_steps;
  next_log_ = global_step_ + config_.log_every_steps;
  const TrainProgress p = Progress();
  if (logger_ && !logged) {
    logger_->Log("charts/SPS", p.steps_per_second, global_step_, p.seconds);
    for (int r = 0; r < env_->num_roles(); ++r) {
      const std::string& name = env_->role(r).name;
      const double ret = p.episodic_return.at(name);
      if (!std::isnan(ret))
        logger_->Log("charts/episodic_return/" + name, ret, global_step_, p.seconds);
      if (learners_[r])
        for (const auto& [k, v] : learners_[r]->last_stats) {
          const size_t slash = k.find('/');
          logger_->Log(k.substr(0, slash) + "/" + name + k.substr(slash), v, global_step_,
                       p.seconds);
        }
    }
    for (const auto& [k, v] : constraints_.Metrics()) logger_->Log(k, v, global_step_, p.seconds);
    // Guardrails: the share of the decisions since the last log line each one restricted.
    const auto counts = env_->guardrail_counts();
    for (size_t k = 0; k < counts.size(); ++k) {
      const int64_t decisions = counts[k].decisions - guardrail_seen_[k].decisions;
      const int64_t fired = counts[k].fired - guardrail_seen_[k].fired;
      if (decisions > 0)
        logger_->Log("guardrails/" + config_.guardrails[k].name + "/fired_rate",
                     static_cast<double>(fired) / decisions, global_step_, p.seconds);
      guardrail_seen_[k] = counts[k];
    }
    logger_->Flush();
  }
  if (progress_) progress_(p);
}

void Trainer::Save(torch::serialize::OutputArchive& archive) const {
  StateWriter w;
  w.Tag("trainer");
  w.Put(global_step_), w.Put(next_log_), w.Put(next_checkpoint_), w.Put(episodes_);
  for (const auto& v : episode_return_) w.PutVector(v);
  for (const auto& q : recent_returns_) w.PutVector(std::vector<double>(q.begin(), q.end()));
  for (size_t r = 0; r < learners_.size(); ++r) {
    if (!learners_[r]) continue;
    try {  // a checkpoint never holds a NaN (a policy loaded elsewhere could be one)
      CheckFiniteParameters(learners_[r]->agent->Parameters());
    } catch (const NonFiniteError& e) {
      throw std::runtime_error(fmt::format("step {}: role {}: {}; refusing to write a checkpoint",
                                           global_step_, env_->role(static_cast<int>(r)).name,
                                           e.what()));
    }
    torch::serialize::OutputArchive agent;
    learners_[r]->agent->Save(agent);
    archive.write("agent/" + env_->role(static_cast<int>(r)).name, agent);
  }
  env_->SaveState(w);
  WriteStateBytes(archive, "state", w.bytes());
  if (!constraints_.empty()) {
    StateWriter cw;
    constraints_.Save(cw);
    WriteStateBytes(archive, "constraints", cw.bytes());
  }
  archive.write("format", torch::tensor(int64_t{2}));
}

void Trainer::Load(torch::serialize::InputArchive& archive) {
  const std::string bytes = ReadStateBytes(archive, "state");
  StateReader r(bytes.data(), bytes.size());
  r.Tag("trainer");
  r.Get(&global_step_), r.Get(&next_log_), r.Get(&next_checkpoint_), r.Get(&episodes_);
  for (auto& v : episode_return_) r.GetVector(&v);
  for (auto& q : recent_returns_) {
    std::vector<double> v;
    r.GetVector(&v);
    q.assign(v.begin(), v.end());
  }
  for (size_t k = 0; k < learners_.size(); ++k) {
    if (!learners_[k]) continue;
    torch::serialize::InputArchive agent;
    archive.read("agent/" + env_->role(static_cast<int>(k)).name, agent);
    learners_[k]->agent->Load(agent);
  }
  env_->LoadState(r);
  if (!r.done())
    throw std::runtime_error("checkpoint state: trailing data (different experiment?)");
  if (!constraints_.empty()) {
    std::string cbytes;
    try {
      cbytes = ReadStateBytes(archive, "constraints");
    } catch (const std::exception&) {
      throw std::runtime_error(
          "checkpoint state: the experiment has constraints but the checkpoint holds none");
    }
    StateReader cr(cbytes.data(), cbytes.size());
    constraints_.Load(cr);
    if (!cr.done()) throw std::runtime_error("checkpoint state: trailing constraint data");
  }
}

void Trainer::LoadResharded(torch::serialize::InputArchive& first,
                            torch::serialize::InputArchive* own, int from) {
  for (size_t k = 0; k < learners_.size(); ++k)
    if (learners_[k] && !learners_[k]->agent->CanReshard())
      throw std::invalid_argument(fmt::format(
          "role {} ({}) resumes only on the number of ranks that wrote the checkpoint ({}), not "
          "{}: each rank's replay and its schedules are its own (docs/distributed.md)",
          env_->role(static_cast<int>(k)).name, learners_[k]->agent->algorithm(), from, world_));
  if (own != nullptr) {
    Load(*own);  // this rank's shard continues
  } else {
    const std::string bytes = ReadStateBytes(first, "state");
    StateReader r(bytes.data(), bytes.size());
    r.Tag("trainer");
    int64_t their_episodes = 0;
    r.Get(&global_step_), r.Get(&next_log_), r.Get(&next_checkpoint_), r.Get(&their_episodes);
    episodes_ = 0;  // episode statistics are each rank's own (reduced when logged)
    for (size_t k = 0; k < learners_.size(); ++k) {
      if (!learners_[k]) continue;
      torch::serialize::InputArchive agent;
      first.read("agent/" + env_->role(static_cast<int>(k)).name, agent);
      learners_[k]->agent->Load(agent);
    }
    if (!constraints_.empty()) {
      const std::string cbytes = ReadStateBytes(first, "constraints");
      StateReader cr(cbytes.data(), cbytes.size());
      ConstraintTracker theirs = constraints_;
      theirs.Load(cr);
      constraints_.CopyMultipliersFrom(theirs);
    }
  }
  for (auto& l : learners_)
    if (l) l->agent->Reshard(from, world_, own == nullptr);
}

void Trainer::RunEvaluation() {
  EvaluationOptions o;
  o.scenarios = config_.eval_scenarios;
  o.paths = config_.eval_paths;
  o.seed = config_.eval_seed;
  o.threads = config_.threads;
  const auto results = Evaluate(*this, o);
  const double seconds = WallSeconds() - start_time_;
  for (const auto& e : results) {
    const std::string prefix =
        "eval/" + (e.scenario.empty() ? std::string("train_mix") : e.scenario) + "/";
    for (int r = 0; r < env_->num_roles(); ++r) {
      if (!HasPolicy(r)) continue;
      const std::string& name = env_->role(r).name;
      const double trained = e.trained.mean_return.at(name), base = e.baseline.mean_return.at(name);
      spdlog::info("evaluation at step {} {}{}: return {:.3f} (baseline {:.3f})", global_step_,
                   prefix, name, trained, base);
      if (logger_) {
        logger_->Log(prefix + name + "/return", trained, global_step_, seconds);
        logger_->Log(prefix + name + "/baseline_return", base, global_step_, seconds);
      }
    }
  }
}

void Trainer::Train(int64_t until_step) {
  const int64_t until =
      until_step < 0 ? config_.total_steps : std::min(until_step, config_.total_steps);
  start_time_ = WallSeconds();
  start_step_ = global_step_;
  if (next_log_ == 0) next_log_ = config_.log_every_steps;
  if (next_eval_ == 0 && config_.eval_every_steps > 0) next_eval_ = config_.eval_every_steps;
  if (next_checkpoint_ == 0 && config_.checkpoint_every_steps > 0)
    next_checkpoint_ = config_.checkpoint_every_steps;
  while (global_step_ < until) {
    try {
      StepOnce();
    } catch (const NonFiniteError& e) {
      // Nothing of this step is checkpointed: the exception leaves Train() before the next
      // checkpoint, and Save() refuses non-finite parameters anyway.
      const Learner* l = learners_[active_role_].get();
      throw std::runtime_error(fmt::format(
          "training stopped at step {}: role {} ({}): {}; no checkpoint of this state is written "
          "(lower the learning rate, or check the environment's rewards and observations)",
          global_step_, env_->role(active_role_).name, l ? l->agent->algorithm() : "-", e.what()));
    }
    double t = WallSeconds();
    LogMetrics(false);
    budget_.logging += WallSeconds() - t;
    if (config_.eval_every_steps > 0 && global_step_ >= next_eval_) {
      next_eval_ = global_step_ + config_.eval_every_steps;
      t = WallSeconds();
      if (group_ == nullptr || group_->rank() == 0) RunEvaluation();  // no collectives
      budget_.evaluation += WallSeconds() - t;
    }
    if (checkpoint_ && config_.checkpoint_every_steps > 0 && global_step_ >= next_checkpoint_) {
      next_checkpoint_ = global_step_ + config_.checkpoint_every_steps;
      t = WallSeconds();
      checkpoint_(global_step_);
      budget_.checkpoint += WallSeconds() - t;
    }
  }
  // overlap_updates: the run's last step learns what it noted, so the final parameters hold
  // every update (a resumed run ends the same way).
  if (!deferred_roles_.empty() && global_step_ >= config_.total_steps) {
    const double t = WallSeconds();
    try {
      for (size_t k = 0; k < deferred_roles_.size(); ++k) RunDeferred(static_cast<int>(k));
      RethrowDeferredError();
    } catch (const NonFiniteError& e) {
      throw std::runtime_error(fmt::format("training stopped at step {}: role {}: {}", global_step_,
                                           env_->role(active_role_).name, e.what()));
    }
    budget_.update_wall += WallSeconds() - t;
  }
  LogMetrics(true);
  budget_.total += WallSeconds() - start_time_;
}

}  // namespace loantwin
