#include "agents/rollout_buffer.h"

#include <stdexcept>

namespace loantwin {

RolloutBuffer::RolloutBuffer(int num_envs, int obs_dim, int critic_dim, int action_dims,
                             int mask_width, double gamma, double gae_lambda, int num_costs)
    : n_(num_envs),
      obs_dim_(obs_dim),
      critic_dim_(critic_dim),
      action_dims_(action_dims),
      mask_width_(mask_width),
      num_costs_(num_costs),
      gamma_(gamma),
      lambda_(gae_lambda),
      sequence_(num_envs),
      open_(num_envs, -1),
      running_discount_(num_envs, 1.0) {}

void RolloutBuffer::Clear() {
  obs_.clear(), critic_obs_.clear(), log_probs_.clear(), values_.clear(), rewards_.clear();
  discounts_.clear(), advantages_.clear(), returns_.clear(), masks_.clear(), dones_.clear();
  actions_.clear();
  costs_.clear(), cost_values_.clear(), cost_advantages_.clear(), cost_returns_.clear();
  for (auto& s : sequence_) s.clear();
  std::fill(open_.begin(), open_.end(), -1);
  std::fill(running_discount_.begin(), running_discount_.end(), 1.0);
}

void RolloutBuffer::Open(int i, const float* obs, const float* critic_obs, const uint8_t* mask,
                         const int32_t* action, float log_prob, float value,
                         const float* cost_values) {
  if (open_[i] >= 0) discounts_[open_[i]] = static_cast<float>(running_discount_[i]);
  const int k = size();
  obs_.insert(obs_.end(), obs, obs + obs_dim_);
  critic_obs_.insert(critic_obs_.end(), critic_obs, critic_obs + critic_dim_);
  masks_.insert(masks_.end(), mask, mask + mask_width_);
  actions_.insert(actions_.end(), action, action + action_dims_);
  log_probs_.push_back(log_prob);
  values_.push_back(value);
  rewards_.push_back(0.0f);
  if (num_costs_ > 0) {
    if (!cost_values) throw std::invalid_argument("RolloutBuffer::Open: cost values missing");
    cost_values_.insert(cost_values_.end(), cost_values, cost_values + num_costs_);
    costs_.insert(costs_.end(), static_cast<size_t>(num_costs_), 0.0f);
  }
  discounts_.push_back(static_cast<float>(gamma_));
  dones_.push_back(0);
  sequence_[i].push_back(k);
  open_[i] = k;
  running_discount_[i] = 1.0;
}

void RolloutBuffer::AddReward(int i, float reward, const float* costs) {
  const int k = open_[i];
  if (k < 0) return;
  rewards_[k] += static_cast<float>(running_discount_[i] * reward);
  if (num_costs_ > 0) {
    if (!costs) throw std::invalid_argument("RolloutBuffer::AddReward: costs missing");
    for (int c = 0; c < num_costs_; ++c)
      costs_[static_cast<size_t>(k) * num_costs_ + c] +=
          static_cast<float>(running_discount_[i] * costs[c]);
  }
  running_discount_[i] *= gamma_;
}

void RolloutBuffer::EndEpisode(int i, bool truncated, float final_value,
                               const float* final_cost_values) {
  const int k = open_[i];
  if (k < 0) return;
  if (truncated) {
    rewards_[k] += static_cast<float>(running_discount_[i] * final_value);
    if (num_costs_ > 0) {
      if (!final_cost_values)
        throw std::invalid_argument("RolloutBuffer::EndEpisode: final cost values missing");
      for (int c = 0; c < num_costs_; ++c)
        costs_[static_cast<size_t>(k) * num_costs_ + c] +=
            static_cast<float>(running_discount_[i] * final_cost_values[c]);
    }
  }
  dones_[k] = 1;
  discounts_[k] = static_cast<float>(running_discount_[i]);
  open_[i] = -1;
  running_discount_[i] = 1.0;
}

void RolloutBuffer::Gae(const float* r, const float* v, const float* last, int stride,
                        float* adv_out, float* ret_out) const {
  for (int i = 0; i < n_; ++i) {
    const auto& seq = sequence_[i];
    if (seq.empty()) continue;
    double next_value = 0, next_adv = 0;
    if (open_[i] >= 0) next_value = last[static_cast<size_t>(i) * stride];
    for (int j = static_cast<int>(seq.size()) - 1; j >= 0; --j) {
      const size_t k = static_cast<size_t>(seq[j]), at = k * stride;
      if (dones_[k]) next_value = 0, next_adv = 0;
      const double delta = r[at] + discounts_[k] * next_value - v[at];
      const double adv = delta + discounts_[k] * lambda_ * next_adv;
      adv_out[at] = static_cast<float>(adv);
      ret_out[at] = static_cast<float>(adv + v[at]);
      next_value = v[at];
      next_adv = adv;
    }
  }
}

void RolloutBuffer::Finish(const float* last_values, const float* last_cost_values) {
  for (int i = 0; i < n_; ++i)
    if (open_[i] >= 0) discounts_[open_[i]] = static_cast<float>(running_discount_[i]);
  advantages_.assign(size(), 0.0f);
  returns_.assign(size(), 0.0f);
  Gae(rewards_.data(), values_.data(), last_values, 1, advantages_.data(), returns_.data());
  if (num_costs_ == 0) return;
  if (!last_cost_values) throw std::invalid_argument("RolloutBuffer::Finish: cost values missing");
  cost_advantages_.assign(static_cast<size_t>(size()) * num_costs_, 0.0f);
  cost_returns_.assign(cost_advantages_.size(), 0.0f);
  for (int c = 0; c < num_costs_; ++c)
    Gae(costs_.data() + c, cost_values_.data() + c, last_cost_values + c, num_costs_,
        cost_advantages_.data() + c, cost_returns_.data() + c);
}

void RolloutBuffer::SaveState(StateWriter& w) const {
  w.Tag("rollout_buffer");
  w.PutVector(obs_), w.PutVector(critic_obs_), w.PutVector(log_probs_), w.PutVector(values_);
  w.PutVector(rewards_), w.PutVector(discounts_), w.PutVector(masks_), w.PutVector(dones_);
  w.PutVector(actions_), w.PutVector(open_), w.PutVector(running_discount_);
  for (const auto& s : sequence_) w.PutVector(s);
  if (num_costs_ > 0) w.PutVector(costs_), w.PutVector(cost_values_);
}

void RolloutBuffer::LoadState(StateReader& r) {
  r.Tag("rollout_buffer");
  r.GetVector(&obs_), r.GetVector(&critic_obs_), r.GetVector(&log_probs_), r.GetVector(&values_);
  r.GetVector(&rewards_), r.GetVector(&discounts_), r.GetVector(&masks_), r.GetVector(&dones_);
  r.GetVector(&actions_), r.GetVector(&open_), r.GetVector(&running_discount_);
  for (auto& s : sequence_) r.GetVector(&s);
  if (num_costs_ > 0) r.GetVector(&costs_), r.GetVector(&cost_values_);
  advantages_.clear(), returns_.clear(), cost_advantages_.clear(), cost_returns_.clear();
}

}  // namespace loantwin
