#include "agents/replay_buffer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/binary_state.h"
#include "core/check.h"
#include "core/counter_rng.h"

namespace loantwin {

NStepAccumulator::NStepAccumulator(int num_envs, int obs_dim, int action_dims, int n, double gamma)
    : num_envs_(num_envs),
      obs_dim_(obs_dim),
      action_dims_(action_dims),
      n_(n),
      gamma_(gamma),
      head_(num_envs, 0),
      count_(num_envs, 0),
      obs_(static_cast<size_t>(num_envs) * n * obs_dim),
      actions_(static_cast<size_t>(num_envs) * n * action_dims),
      ret_(static_cast<size_t>(num_envs) * n),
      disc_(static_cast<size_t>(num_envs) * n) {
  if (n < 1) throw std::invalid_argument("n-step returns need n >= 1");
}

void NStepAccumulator::Emit(int i, int slot, float discount, const float* next_obs,
                            const uint8_t* next_mask, const Sink& sink) {
  const size_t k = static_cast<size_t>(i) * n_ + slot;
  TransitionView t;
  t.obs = &obs_[k * obs_dim_];
  t.action = &actions_[k * action_dims_];
  t.reward = static_cast<float>(ret_[k]);
  t.discount = discount;
  t.next_obs = next_obs;
  t.next_mask = next_mask;
  sink(t);
}

void NStepAccumulator::Advance(int i, const float* obs, const uint8_t* mask, const Sink& sink) {
  if (count_[i] < n_) return;
  const int slot = head_[i];
  Emit(i, slot, static_cast<float>(disc_[static_cast<size_t>(i) * n_ + slot]), obs, mask, sink);
  head_[i] = (head_[i] + 1) % n_;
  --count_[i];
}

void NStepAccumulator::Open(int i, const float* obs, const int32_t* action) {
  LT_CHECK_LT(count_[i], n_);  // Open without Advance
  const int slot = (head_[i] + count_[i]) % n_;
  const size_t k = static_cast<size_t>(i) * n_ + slot;
  std::copy(obs, obs + obs_dim_, &obs_[k * obs_dim_]);
  std::copy(action, action + action_dims_, &actions_[k * action_dims_]);
  ret_[k] = 0;
  disc_[k] = 1;
  ++count_[i];
}

void NStepAccumulator::AddReward(int i, float reward) {
  for (int c = 0; c < count_[i]; ++c) {
    const size_t k = static_cast<size_t>(i) * n_ + (head_[i] + c) % n_;
    ret_[k] += disc_[k] * reward;
    disc_[k] *= gamma_;
  }
}

void NStepAccumulator::End(int i, bool truncated, const float* final_obs, const uint8_t* final_mask,
                           const Sink& sink) {
  for (int c = 0; c < count_[i]; ++c) {
    const int slot = (head_[i] + c) % n_;
    const float discount =
        truncated ? static_cast<float>(disc_[static_cast<size_t>(i) * n_ + slot]) : 0.0f;
    Emit(i, slot, discount, final_obs, final_mask, sink);
  }
  head_[i] = 0;
  count_[i] = 0;
}

void NStepAccumulator::Clear() {
  std::fill(head_.begin(), head_.end(), 0);
  std::fill(count_.begin(), count_.end(), 0);
}

void NStepAccumulator::SaveState(StateWriter& w) const {
  w.Tag("nstep");
  w.PutVector(head_), w.PutVector(count_), w.PutVector(obs_), w.PutVector(actions_);
  w.PutVector(ret_), w.PutVector(disc_);
}

void NStepAccumulator::LoadState(StateReader& r) {
  r.Tag("nstep");
  const size_t envs = head_.size(), slots = ret_.size(), obs = obs_.size(), acts = actions_.size();
  r.GetVector(&head_), r.GetVector(&count_), r.GetVector(&obs_), r.GetVector(&actions_);
  r.GetVector(&ret_), r.GetVector(&disc_);
  if (head_.size() != envs || count_.size() != envs || ret_.size() != slots ||
      disc_.size() != slots || obs_.size() != obs || actions_.size() != acts)
    throw std::runtime_error("n-step state does not match the agent (different experiment?)");
}

ReplayBuffer::ReplayBuffer(int obs_dim, int action_dims, int mask_width, const Options& options)
    : obs_dim_(obs_dim), action_dims_(action_dims), mask_width_(mask_width), options_(options) {
  if (options.capacity < 1) throw std::invalid_argument("replay capacity must be >= 1");
  const int64_t c = options.capacity;
  obs_ = torch::zeros({c, obs_dim});
  next_obs_ = torch::zeros({c, obs_dim});
  actions_ = torch::zeros({c, action_dims}, torch::kLong);
  rewards_ = torch::zeros({c});
  discounts_ = torch::zeros({c});
  next_masks_ = torch::zeros({c, mask_width}, torch::kBool);
  if (options.prioritized) tree_ = std::make_unique<SumTree>(c);
}

int64_t ReplayBuffer::bytes() const {
  int64_t b = 0;
  for (const auto* t : {&obs_, &next_obs_, &actions_, &rewards_, &discounts_, &next_masks_})
    b += t->numel() * static_cast<int64_t>(t->element_size());
  return b;
}

void ReplayBuffer::Add(const TransitionView& t) {
  const int64_t i = pos_;
  std::copy(t.obs, t.obs + obs_dim_, obs_.data_ptr<float>() + i * obs_dim_);
  std::copy(t.next_obs, t.next_obs + obs_dim_, next_obs_.data_ptr<float>() + i * obs_dim_);
  int64_t* a = actions_.data_ptr<int64_t>() + i * action_dims_;
  for (int d = 0; d < action_dims_; ++d) a[d] = t.action[d];
  rewards_.data_ptr<float>()[i] = t.reward;
  discounts_.data_ptr<float>()[i] = t.discount;
  bool* m = next_masks_.data_ptr<bool>() + i * mask_width_;
  for (int k = 0; k < mask_width_; ++k) m[k] = t.next_mask[k] != 0;
  if (tree_) tree_->Set(i, max_priority_);  // new transitions are replayed at least once soon
  pos_ = (pos_ + 1) % options_.capacity;
  size_ = std::min(size_ + 1, options_.capacity);
}

void ReplayBuffer::SampleIndices(int64_t batch, double beta, uint64_t key, uint64_t* counter,
                                 std::vector<int64_t>* indices, float* w) const {
  LT_CHECK_GT(size_, 0);  // sampling from an empty replay buffer
  indices->resize(batch);
  std::fill(w, w + batch, 1.0f);
  if (!tree_) {
    for (int64_t k = 0; k < batch; ++k)
      (*indices)[k] =
          static_cast<int64_t>(RandomBits(key, (*counter)++) % static_cast<uint64_t>(size_));
  } else {
    const double total = tree_->Total(), segment = total / batch;
    // Largest weight: the least likely transition's, (N p_min / total)^-beta.
    const double max_w = std::pow(size_ * tree_->Min() / total, -beta);
    for (int64_t k = 0; k < batch; ++k) {
      const double mass = (k + ToUniform(RandomBits(key, (*counter)++))) * segment;
      const int64_t i = tree_->Find(mass);
      (*indices)[k] = i;
      w[k] = static_cast<float>(std::pow(size_ * tree_->Get(i) / total, -beta) / max_w);
    }
  }
}

ReplayBuffer::Batch ReplayBuffer::Sample(int64_t batch, double beta, uint64_t key,
                                         uint64_t* counter) const {
  Batch b;
  torch::Tensor weights = torch::empty({batch});
  SampleIndices(batch, beta, key, counter, &b.indices, weights.data_ptr<float>());
  const torch::Tensor idx = torch::from_blob(b.indices.data(), {batch}, torch::kLong);
  b.obs = obs_.index_select(0, idx);
  b.next_obs = next_obs_.index_select(0, idx);
  b.actions = actions_.index_select(0, idx);
  b.rewards = rewards_.index_select(0, idx);
  b.discounts = discounts_.index_select(0, idx);
  b.next_masks = next_masks_.index_select(0, idx);
  b.weights = weights;
  return b;
}

void ReplayBuffer::SampleInto(int64_t batch, double beta, uint64_t key, uint64_t* counter,
                              RawBatch* b) const {
  b->weights.resize(batch);
  SampleIndices(batch, beta, key, counter, &b->indices, b->weights.data());
  b->obs.resize(static_cast<size_t>(batch) * obs_dim_);
  b->next_obs.resize(static_cast<size_t>(batch) * obs_dim_);
  b->actions.resize(static_cast<size_t>(batch) * action_dims_);
  b->rewards.resize(batch), b->discounts.resize(batch);
  b->next_masks.resize(static_cast<size_t>(batch) * mask_width_);
  const float *obs = obs_.data_ptr<float>(), *next = next_obs_.data_ptr<float>();
  const int64_t* act = actions_.data_ptr<int64_t>();
  const bool* masks = next_masks_.data_ptr<bool>();
  for (int64_t k = 0; k < batch; ++k) {
    const int64_t i = b->indices[k];
    std::copy_n(obs + i * obs_dim_, obs_dim_, &b->obs[k * obs_dim_]);
    std::copy_n(next + i * obs_dim_, obs_dim_, &b->next_obs[k * obs_dim_]);
    std::copy_n(act + i * action_dims_, action_dims_, &b->actions[k * action_dims_]);
    for (int v = 0; v < mask_width_; ++v)
      b->next_masks[k * mask_width_ + v] = masks[i * mask_width_ + v];
    b->rewards[k] = rewards_.data_ptr<float>()[i];
    b->discounts[k] = discounts_.data_ptr<float>()[i];
  }
}

void ReplayBuffer::UpdatePriorities(const std::vector<int64_t>& indices, const float* abs_td) {
  if (!tree_) return;
  for (size_t k = 0; k < indices.size(); ++k) {
    const double p =
        std::pow(static_cast<double>(abs_td[k]) + options_.priority_eps, options_.alpha);
    if (!std::isfinite(p)) throw std::runtime_error("non-finite TD error (diverged Q-values)");
    tree_->Set(indices[k], p);
    max_priority_ = std::max(max_priority_, p);
  }
}

void ReplayBuffer::Clear() {
  pos_ = size_ = 0;
  max_priority_ = 1.0;
  if (tree_) tree_ = std::make_unique<SumTree>(options_.capacity);
}

void ReplayBuffer::Save(torch::serialize::OutputArchive& a) const {
  a.write("obs", obs_.slice(0, 0, size_).clone());
  a.write("next_obs", next_obs_.slice(0, 0, size_).clone());
  a.write("actions", actions_.slice(0, 0, size_).clone());
  a.write("rewards", rewards_.slice(0, 0, size_).clone());
  a.write("discounts", discounts_.slice(0, 0, size_).clone());
  a.write("next_masks", next_masks_.slice(0, 0, size_).clone());
  a.write("counters", torch::tensor({pos_, size_, options_.capacity}));
  a.write("max_priority", torch::tensor(max_priority_, torch::kFloat64));
  if (tree_) {
    torch::Tensor p = torch::zeros({size_}, torch::kFloat64);
    for (int64_t i = 0; i < size_; ++i) p.data_ptr<double>()[i] = tree_->Get(i);
    a.write("priorities", p);
  }
}

void ReplayBuffer::Load(torch::serialize::InputArchive& a) {
  torch::Tensor counters;
  a.read("counters", counters);
  const int64_t pos = counters[0].item<int64_t>(), size = counters[1].item<int64_t>(),
                capacity = counters[2].item<int64_t>();
  if (capacity != options_.capacity)
    throw std::runtime_error(fmt::format("checkpoint replay buffer has capacity {}, the agent {}",
                                         capacity, options_.capacity));
  Clear();
  auto fill = [&](const char* name, torch::Tensor& dst) {
    torch::Tensor t;  // a fresh tensor per read: reading into a defined one re-seats its storage
    a.read(name, t);
    if (t.size(0) != size || (t.dim() > 1 && t.size(1) != dst.size(1)))
      throw std::runtime_error(std::string("checkpoint replay buffer: bad '") + name + "'");
    dst.slice(0, 0, size).copy_(t);
  };
  fill("obs", obs_), fill("next_obs", next_obs_), fill("actions", actions_);
  fill("rewards", rewards_), fill("discounts", discounts_), fill("next_masks", next_masks_);
  pos_ = pos, size_ = size;
  torch::Tensor t;
  a.read("max_priority", t);
  max_priority_ = t.item<double>();
  if (tree_) {
    t = torch::Tensor();
    a.read("priorities", t);
    t = t.contiguous();
    for (int64_t i = 0; i < size_; ++i) tree_->Set(i, t.data_ptr<double>()[i]);
  }
}

}  // namespace loantwin
