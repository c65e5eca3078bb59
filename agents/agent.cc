#include "agents/agent.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "agents/numerics.h"
#include "core/check.h"
#include "core/collective.h"
#include "core/counter_rng.h"
#include "env/multi_agent_env.h"

namespace loantwin {

void Agent::Act(const float* obs, const uint8_t* masks, int n, bool deterministic,
                int32_t* actions) {
  LT_CHECK_GE(n, 0);
  LT_CHECK(n == 0 || (obs && masks && actions));
  DoAct(obs, masks, n, deterministic, actions);
}

void Agent::ActAndRecord(const AgentBatch& batch, int32_t* actions) {
  LT_CHECK_GE(batch.n, 0);
  LT_CHECK(batch.n == 0 ||
           (batch.obs && batch.critic_obs && batch.masks && batch.acting && actions));
  if (batch.n > 0 && batch.demonstrations == nullptr && wants_demonstrations())
    throw std::invalid_argument(
        fmt::format("{}: the agent imitates the baseline now (imitation_fraction) and needs the "
                    "baseline's decisions (AgentBatch::demonstrations)",
                    algorithm()));
  const int dim = obs_features();
  for (int i = 0; i < batch.n; ++i) {  // training input: a NaN here becomes a NaN loss later
    if (!batch.acting[i]) continue;
    const float* row = batch.obs + static_cast<size_t>(i) * dim;
    for (int k = 0; k < dim; ++k)
      if (!std::isfinite(row[k]))
        throw NonFiniteError(fmt::format("observation (feature {} of instance {})", k, i), row[k]);
  }
  DoActAndRecord(batch, actions);
}

void Agent::Observe(const AgentFeedback& feedback) {
  LT_CHECK_GE(feedback.n, 0);
  LT_CHECK(feedback.n == 0 || (feedback.rewards && feedback.terminated && feedback.truncated));
  for (int i = 0; i < feedback.n; ++i)
    if (!std::isfinite(feedback.rewards[i]))
      throw NonFiniteError(fmt::format("reward (instance {})", i), feedback.rewards[i]);
  LT_CHECK(!learns_costs() || feedback.n == 0 || (feedback.costs && feedback.cost_weights));
  DoObserve(feedback);
  env_steps_ += feedback.n;
}

UpdateStats Agent::MaybeUpdate(const AgentBatch& current) {
  LT_CHECK_GE(current.n, 0);
  UpdateStats stats = DoMaybeUpdate(current);
  if (!stats.empty()) CheckFiniteParameters(Parameters());  // after every update, any algorithm
  if (!stats.empty() && group_ != nullptr) {
    // Every rank updated at this step (the algorithms' cadences are in environment steps,
    // which every rank counts alike): merge the normalisers' statistics.
    obs_rms_.Sync(*group_);
    SyncStatistics(*group_);
  }
  return stats;
}

void Agent::PrepareUpdate(const AgentBatch& current) {
  LT_CHECK_GE(current.n, 0);
  if (!can_defer_update() || group_ != nullptr)
    throw std::logic_error(algorithm() + ": updates cannot be deferred" +
                           (group_ != nullptr ? " in distributed training" : ""));
  DoPrepareUpdate(current);
}

UpdateStats Agent::RunPreparedUpdate() {
  LT_CHECK(can_defer_update() && group_ == nullptr);
  UpdateStats stats = DoRunPreparedUpdate();
  if (!stats.empty()) CheckFiniteParameters(Parameters());
  return stats;
}

void Agent::DoPrepareUpdate(const AgentBatch&) {
  throw std::logic_error(algorithm() + ": updates cannot be deferred");
}

UpdateStats Agent::DoRunPreparedUpdate() {
  throw std::logic_error(algorithm() + ": updates cannot be deferred");
}

void Agent::SetGroup(Collective* group) {
  LT_CHECK(group_ == nullptr);
  group_ = group;
  if (group == nullptr) return;
  if (group->rank() > 0) rng_key_ = DeriveKey(rng_key_, 0x72616e6b00000000ULL + group->rank());
  obs_rms_.TrackForSync();
  OnGroup(group);
}

void Agent::Reshard(int from, int to, bool fresh) {
  LT_CHECK(CanReshard());
  LT_CHECK_GT(from, 0);
  LT_CHECK_GT(to, 0);
  env_steps_ = env_steps_ * from / to;
  obs_rms_.RevertToSynced();
  OnReshard(from, to, fresh);
}

bool Agent::AllRanks(bool local) {
  if (group_ == nullptr) return local;
  int64_t missing = local ? 0 : 1;
  group_->AllReduceSum(&missing, 1);
  return missing == 0;
}

torch::jit::Module Agent::Export(const RoleSpec& role) const {
  LT_CHECK_EQ(role.obs_dim(), obs_features());
  return DoExport(role);
}

void Agent::Save(torch::serialize::OutputArchive& archive) const {
  obs_rms_.Save(archive, "obs_rms");
  archive.write("agent_counters", torch::tensor({static_cast<int64_t>(rng_counter_), env_steps_}));
  SaveState(archive);
}

void Agent::Load(torch::serialize::InputArchive& archive) {
  obs_rms_.Load(archive, "obs_rms");
  torch::Tensor t;
  archive.read("agent_counters", t);
  LT_CHECK_EQ(t.numel(), 2);
  rng_counter_ = static_cast<uint64_t>(t[0].item<int64_t>());
  env_steps_ = t[1].item<int64_t>();
  LoadState(archive);
}

}  // namespace loantwin
