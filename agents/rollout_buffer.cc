#include "agents/rollout_buffer.h"

#include <stdexcept>

namespace loantwin {

RolloutBuffer::RolloutBuffer(int num_envs, int obs_dim, int critic_dim, int action_dims,
                             int mask_width, double gamma, double gae_lambda)
    : n_(num_envs),
      obs_dim_(obs_dim),
      critic_dim_(critic_dim),
      action_dims_(action_dims),
      mask_width_(mask_width),
      gamma_(gamma),
      lambda_(gae_lambda),
      sequence_(num_envs),
      open_(num_envs, -1),
      running_discount_(num_envs, 1.0) {}

void RolloutBuffer::Clear() {
  obs_.clear(), critic_obs_.clear(), log_probs_.clear(), values_.clear(), rewards_.clear();
  discounts_.clear(), advantages_.clear(), returns_.clear(), masks_.clear(), dones_.clear();
  actions_.clear();
  for (auto& s : sequence_) s.clear();
  std::fill(open_.begin(), open_.end(), -1);
  std::fill(running_discount_.begin(), running_discount_.end(), 1.0);
}

void RolloutBuffer::Open(int i, const float* obs, const float* critic_obs, const uint8_t* mask,
                         const int32_t* action, float log_prob, float value) {
  if (open_[i] >= 0) discounts_[open_[i]] = static_cast<float>(running_discount_[i]);
  const int k = size();
  obs_.insert(obs_.end(), obs, obs + obs_dim_);
  critic_obs_.insert(critic_obs_.end(), critic_obs, critic_obs + critic_dim_);
  masks_.insert(masks_.end(), mask, mask + mask_width_);
  actions_.insert(actions_.end(), action, action + action_dims_);
  log_probs_.push_back(log_prob);
  values_.push_back(value);
  rewards_.push_back(0.0f);
  discounts_.push_back(static_cast<float>(gamma_));
  dones_.push_back(0);
  sequence_[i].push_back(k);
  open_[i] = k;
  running_discount_[i] = 1.0;
}

void RolloutBuffer::AddReward(int i, float reward) {
  const int k = open_[i];
  if (k < 0) return;
  rewards_[k] += static_cast<float>(running_discount_[i] * reward);
  running_discount_[i] *= gamma_;
}

void RolloutBuffer::EndEpisode(int i, bool truncated, float final_value) {
  const int k = open_[i];
  if (k < 0) return;
  if (truncated) rewards_[k] += static_cast<float>(running_discount_[i] * final_value);
  dones_[k] = 1;
  discounts_[k] = static_cast<float>(running_discount_[i]);
  open_[i] = -1;
  running_discount_[i] = 1.0;
}

void RolloutBuffer::Finish(const float* last_values) {
  advantages_.assign(size(), 0.0f);
  returns_.assign(size(), 0.0f);
  for (int i = 0; i < n_; ++i) {
    const auto& seq = sequence_[i];
    if (seq.empty()) continue;
    double next_value = 0, next_adv = 0;
    if (open_[i] >= 0) {
      discounts_[open_[i]] = static_cast<float>(running_discount_[i]);
      next_value = last_values[i];
    }
    for (int j = static_cast<int>(seq.size()) - 1; j >= 0; --j) {
      const int k = seq[j];
      if (dones_[k]) next_value = 0, next_adv = 0;
      const double delta = rewards_[k] + discounts_[k] * next_value - values_[k];
      const double adv = delta + discounts_[k] * lambda_ * next_adv;
      advantages_[k] = static_cast<float>(adv);
      returns_[k] = static_cast<float>(adv + values_[k]);
      next_value = values_[k];
      next_adv = adv;
    }
  }
}

void RolloutBuffer::SaveState(StateWriter& w) const {
  w.Tag("rollout_buffer");
  w.PutVector(obs_), w.PutVector(critic_obs_), w.PutVector(log_probs_), w.PutVector(values_);
  w.PutVector(rewards_), w.PutVector(discounts_), w.PutVector(masks_), w.PutVector(dones_);
  w.PutVector(actions_), w.PutVector(open_), w.PutVector(running_discount_);
  for (const auto& s : sequence_) w.PutVector(s);
}

void RolloutBuffer::LoadState(StateReader& r) {
  r.Tag("rollout_buffer");
  r.GetVector(&obs_), r.GetVector(&critic_obs_), r.GetVector(&log_probs_), r.GetVector(&values_);
  r.GetVector(&rewards_), r.GetVector(&discounts_), r.GetVector(&masks_), r.GetVector(&dones_);
  r.GetVector(&actions_), r.GetVector(&open_), r.GetVector(&running_discount_);
  for (auto& s : sequence_) r.GetVector(&s);
  advantages_.clear(), returns_.clear();
}

}  // namespace loantwin
