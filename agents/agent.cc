#include "agents/agent.h"

#include "core/check.h"
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
  DoActAndRecord(batch, actions);
}

void Agent::Observe(const AgentFeedback& feedback) {
  LT_CHECK_GE(feedback.n, 0);
  LT_CHECK(feedback.n == 0 || (feedback.rewards && feedback.terminated && feedback.truncated));
  DoObserve(feedback);
  env_steps_ += feedback.n;
}

UpdateStats Agent::MaybeUpdate(const AgentBatch& current) {
  LT_CHECK_GE(current.n, 0);
  return DoMaybeUpdate(current);
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
