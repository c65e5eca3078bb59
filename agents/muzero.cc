#include "agents/muzero.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "agents/agent_registry.h"
#include "agents/module_util.h"
#include "agents/numerics.h"
#include "core/binary_state.h"
#include "core/counter_rng.h"

namespace loantwin {
namespace {

torch::Tensor CrossEntropy(const torch::Tensor& logits, const torch::Tensor& target) {
  return -(target * torch::log_softmax(logits, 1)).sum(1);
}

void PutGame(StateWriter& w, const GameHistory& g) {
  w.Put<int32_t>(g.obs_dim), w.Put<int32_t>(g.num_actions);
  w.PutVector(g.obs), w.PutVector(g.actions), w.PutVector(g.rewards), w.PutVector(g.discounts);
  w.PutVector(g.root_values), w.PutVector(g.policies);
  w.Put<uint8_t>(g.terminated), w.Put(g.final_value);
}

void GetGame(StateReader& r, GameHistory* g) {
  g->obs_dim = r.Get<int32_t>(), g->num_actions = r.Get<int32_t>();
  r.GetVector(&g->obs), r.GetVector(&g->actions), r.GetVector(&g->rewards);
  r.GetVector(&g->discounts), r.GetVector(&g->root_values), r.GetVector(&g->policies);
  g->terminated = r.Get<uint8_t>() != 0;
  r.Get(&g->final_value);
}

}  // namespace

MuZeroAgent::MuZeroAgent(int obs_dim, int num_actions, int num_envs, int cadence,
                         const MuZeroConfig& config, uint64_t seed, int64_t total_steps)
    : Agent(obs_dim, DeriveKey(seed, 0x6d757a)),
      obs_dim_(obs_dim),
      num_actions_(num_actions),
      num_envs_(num_envs),
      cadence_(std::max(1, cadence)),
      config_(config),
      total_steps_(std::max<int64_t>(1, total_steps)),
      support_(config.support_size) {
  if (config_.imitation_fraction > 0)
    imitation_steps_ = std::max<int64_t>(
        1, std::llround(config_.imitation_fraction * static_cast<double>(total_steps_)));
  torch::manual_seed(seed);
  MuZeroNetConfig nc;
  nc.latent_dim = config.latent_dim;
  nc.hidden = config.hidden;
  nc.support_size = config.support_size;
  net_config_ = nc;
  net_ = MuZeroNet(obs_dim, num_actions, nc);
  target_ = MuZeroNet(obs_dim, num_actions, nc);
  CopyParameters(*net_, *target_);
  for (auto& p : target_->parameters()) p.set_requires_grad(false);
  // One flat parameter/gradient buffer (as DQN and PPO): same update as torch.optim.Adam with
  // its L2 weight decay, in a handful of tensor operations.
  optimizer_ = std::make_unique<FlatAdam>(net_->parameters(), config.learning_rate, 1e-8, 0.9,
                                          0.999, config.weight_decay);
  MctsConfig mc;
  mc.num_simulations = config.num_simulations;
  mc.discount = std::pow(config.gamma, cadence_);
  mc.pb_c_init = config.pb_c_init;
  mc.pb_c_base = config.pb_c_base;
  mc.root_dirichlet_alpha = config.root_dirichlet_alpha;
  mc.root_exploration_fraction = config.root_exploration_fraction;
  mc.gumbel = config.gumbel;
  mc.gumbel_max_considered = config.gumbel_max_considered;
  mc.gumbel_c_visit = config.gumbel_c_visit;
  mc.gumbel_c_scale = config.gumbel_c_scale;
  mcts_ = std::make_unique<BatchedMcts>(num_envs, num_actions, config.latent_dim, mc);
  open_.resize(num_envs);
  for (auto& g : open_) g.obs_dim = obs_dim, g.num_actions = num_actions;
  pending_.assign(num_envs, 0);
  pending_discount_.assign(num_envs, 1.0);
  game_tree_ = std::make_unique<SumTree>(config.buffer_size);
}

std::vector<float> MuZeroAgent::Normalized(const float* obs, int64_t n) const {
  std::vector<float> out(static_cast<size_t>(n) * obs_dim_);
  if (config_.normalize_obs)
    obs_rms_.Normalize(obs, n, out.data());
  else
    std::copy(obs, obs + out.size(), out.data());
  return out;
}

double MuZeroAgent::temperature() const {
  const double p = static_cast<double>(env_steps_) / total_steps_;
  return config_.temperature_start * (p < 0.5 ? 1.0 : p < 0.75 ? 0.5 : 0.25);
}

void MuZeroAgent::MakeAnchor() {
  anchor_ = MuZeroNet(obs_dim_, num_actions_, net_config_);
  CopyParameters(*net_, *anchor_);
  for (auto& p : anchor_->parameters()) p.set_requires_grad(false);
}

void MuZeroAgent::Search(const float* obs, const uint8_t* masks, int n, bool explore,
                         int32_t* actions, bool record, const uint8_t* acting,
                         const int32_t* demonstrations) {
  rows_.clear();
  for (int i = 0; i < n; ++i) {
    const uint8_t* m = masks + static_cast<size_t>(i) * num_actions_;
    actions[i] = static_cast<int32_t>(std::find(m, m + num_actions_, 1) - m);  // placeholder
    if (!acting || acting[i]) rows_.push_back(i);
  }
  const int m = static_cast<int>(rows_.size());
  if (m == 0) return;
  scratch_obs_.resize(static_cast<size_t>(m) * obs_dim_);
  scratch_masks_.resize(static_cast<size_t>(m) * num_actions_);
  for (int j = 0; j < m; ++j) {
    const int i = rows_[j];
    std::copy(obs + static_cast<size_t>(i) * obs_dim_, obs + static_cast<size_t>(i + 1) * obs_dim_,
              &scratch_obs_[static_cast<size_t>(j) * obs_dim_]);
    std::copy(masks + static_cast<size_t>(i) * num_actions_,
              masks + static_cast<size_t>(i + 1) * num_actions_,
              &scratch_masks_[static_cast<size_t>(j) * num_actions_]);
  }
  if (config_.normalize_obs) {
    if (record) obs_rms_.Update(scratch_obs_.data(), m);  // statistics of acting decisions
    scratch_obs_ = Normalized(scratch_obs_.data(), m);
  }
  FastSearchModel model(net_, support_);  // plain C++ (MuZeroNet.FastSearchModelMatches...)
  // A greedy search draws nothing: it leaves the agent's random stream untouched.
  const uint64_t key = explore ? DeriveKey(rng_key_, search_counter_++) : 0;
  mcts_->Search(model, scratch_obs_.data(), scratch_masks_.data(), m, explore,
                explore ? temperature() : 0.0, key);
  // After the imitation phase (imitation_anchor_weight): the anchor's prior of every root.
  const bool anchored = record && anchor_ && !demonstrations;
  if (anchored) {
    anchor_latent_.resize(static_cast<size_t>(m) * config_.latent_dim);
    anchor_value_.resize(m);
    anchor_logits_.resize(static_cast<size_t>(m) * num_actions_);
    FastSearchModel(anchor_, support_)
        .Initial(scratch_obs_.data(), m, anchor_latent_.data(), anchor_value_.data(),
                 anchor_logits_.data());
  }
  std::vector<float>& target = policy_target_;
  target.resize(num_actions_);
  for (int j = 0; j < m; ++j) {
    const int i = rows_[j];
    actions[i] = demonstrations ? demonstrations[i] : mcts_->action(j);
    if (!record) continue;
    const uint8_t* mask = &scratch_masks_[static_cast<size_t>(j) * num_actions_];
    const float* searched = mcts_->policy(j);
    if (demonstrations) {  // the baseline's action, label-smoothed over the allowed actions
      const int allowed = static_cast<int>(std::count(mask, mask + num_actions_, 1));
      const double eps = config_.imitation_smoothing;
      for (int a = 0; a < num_actions_; ++a)
        target[a] = static_cast<float>((a == actions[i] ? 1.0 - eps : 0.0) +
                                       (mask[a] ? eps / std::max(allowed, 1) : 0.0));
      searched = target.data();
    } else if (anchored) {  // (1 - w) search + w anchor's masked softmax
      const float* l = &anchor_logits_[static_cast<size_t>(j) * num_actions_];
      float top = -std::numeric_limits<float>::infinity();
      for (int a = 0; a < num_actions_; ++a)
        if (mask[a]) top = std::max(top, l[a]);
      double z = 0;
      for (int a = 0; a < num_actions_; ++a) z += mask[a] ? std::exp(l[a] - top) : 0.0;
      const double w = config_.imitation_anchor_weight;
      for (int a = 0; a < num_actions_; ++a)
        target[a] = static_cast<float>((1.0 - w) * searched[a] +
                                       (mask[a] ? w * std::exp(l[a] - top) / z : 0.0));
      searched = target.data();
    }
    GameHistory& g = open_[i];
    g.obs.insert(g.obs.end(), obs + static_cast<size_t>(i) * obs_dim_,
                 obs + static_cast<size_t>(i + 1) * obs_dim_);
    g.actions.push_back(actions[i]);
    g.rewards.push_back(0.0f);
    g.discounts.push_back(1.0f);
    g.root_values.push_back(mcts_->root_value(j));
    g.policies.insert(g.policies.end(), searched, searched + num_actions_);
    pending_[i] = 1;
    pending_discount_[i] = 1.0;
  }
}

void MuZeroAgent::DoAct(const float* obs, const uint8_t* masks, int n, bool deterministic,
                        int32_t* actions) {
  for (int start = 0; start < n; start += num_envs_) {  // the trees are sized for num_envs
    const int rows = std::min(num_envs_, n - start);
    Search(obs + static_cast<size_t>(start) * obs_dim_,
           masks + static_cast<size_t>(start) * num_actions_, rows, !deterministic, actions + start,
           false, nullptr);
  }
}

void MuZeroAgent::DoActAndRecord(const AgentBatch& b, int32_t* actions) {
  const bool imitating = wants_demonstrations();
  // The phase has ended: the network as it left it is the anchor of the policy targets.
  if (!imitating && imitation_steps_ > 0 && config_.imitation_anchor_weight > 0 && !anchor_)
    MakeAnchor();
  Search(b.obs, b.masks, b.n, true, actions, true, b.acting,
         imitating ? b.demonstrations : nullptr);
  if (imitating)  // every row decides as the baseline (rows not acting this step too)
    std::copy(b.demonstrations, b.demonstrations + b.n, actions);
}

void MuZeroAgent::CloseGame(int i, bool terminated, float final_value) {
  GameHistory& g = open_[i];
  pending_[i] = 0;
  if (g.length() == 0) return;
  g.terminated = terminated;
  g.final_value = terminated ? 0.0f : final_value;
  const int64_t slot = next_game_ % config_.buffer_size;
  if (slot < static_cast<int64_t>(games_.size())) {
    games_[slot] = std::move(g);
  } else {
    games_.push_back(std::move(g));
    priorities_.emplace_back();
  }
  // New positions enter with the largest priority so far (uniform: 1 each).
  float max_p = 1.0f;
  for (const auto& ps : priorities_)
    for (float p : ps) max_p = std::max(max_p, p);
  priorities_[slot].assign(games_[slot].length(), config_.prioritized ? max_p : 1.0f);
  double sum = 0;
  for (float p : priorities_[slot]) sum += p;
  game_tree_->Set(slot, sum);
  ++next_game_;
  g = GameHistory();
  g.obs_dim = obs_dim_, g.num_actions = num_actions_;
}

void MuZeroAgent::DoObserve(const AgentFeedback& f) {
  std::vector<int> truncated_rows;
  for (int i = 0; i < f.n; ++i) {
    if (pending_[i]) {
      GameHistory& g = open_[i];
      g.rewards.back() += static_cast<float>(pending_discount_[i] * f.rewards[i]);
      pending_discount_[i] *= config_.gamma;
      g.discounts.back() = static_cast<float>(pending_discount_[i]);
    }
    if (f.truncated[i] && !f.terminated[i]) truncated_rows.push_back(i);
  }
  std::vector<float> final_values(f.n, 0.0f);
  if (!truncated_rows.empty()) {  // the final observations' values bootstrap the last targets
    torch::InferenceMode guard;
    std::vector<float> rows;
    for (int i : truncated_rows)
      rows.insert(rows.end(), f.final_obs + static_cast<size_t>(i) * obs_dim_,
                  f.final_obs + static_cast<size_t>(i + 1) * obs_dim_);
    const int m = static_cast<int>(truncated_rows.size());
    rows = Normalized(rows.data(), m);
    const auto [p, v] =
        net_->Predict(net_->Represent(torch::from_blob(rows.data(), {m, obs_dim_})));
    const torch::Tensor values = support_.Decode(v).contiguous();
    for (int j = 0; j < m; ++j) final_values[truncated_rows[j]] = values.data_ptr<float>()[j];
  }
  for (int i = 0; i < f.n; ++i)
    if (f.terminated[i] || f.truncated[i]) CloseGame(i, f.terminated[i] != 0, final_values[i]);
}

UpdateStats MuZeroAgent::DoMaybeUpdate(const AgentBatch&) {
  UpdateStats stats;
  if (env_steps_ < config_.learning_starts) return stats;
  // Distributed: every rank must have a stored game before any rank trains (env_steps_ is alike
  // on every rank, so they all ask here together).
  if (group_ == nullptr ? games_.empty()
                        : !(games_ready_ = games_ready_ || AllRanks(!games_.empty())))
    return stats;
  const auto due =
      static_cast<int64_t>((env_steps_ - config_.learning_starts) * config_.train_ratio);
  while (training_steps_ < due) stats = TrainStep();
  return stats;
}

std::pair<int, int> MuZeroAgent::SamplePosition(double* probability) {
  const double total = game_tree_->Total();
  const int64_t g = game_tree_->Find(ToUniform(NextBits()) * total);
  const auto& ps = priorities_[g];
  double mass = ToUniform(NextBits()) * game_tree_->Get(g);
  int t = static_cast<int>(ps.size()) - 1;
  for (int k = 0; k < static_cast<int>(ps.size()); ++k) {
    if (mass < ps[k]) {
      t = k;
      break;
    }
    mass -= ps[k];
  }
  *probability = ps[t] / total;
  return {static_cast<int>(g), t};
}

UpdateStats MuZeroAgent::TrainStep() {
  const int B = config_.batch_size, K = config_.unroll_steps, A = num_actions_;
  const int n = config_.td_steps;
  int64_t positions = 0;
  for (const auto& g : games_) positions += g.length();
  std::vector<std::pair<int, int>> samples(B);
  std::vector<double> probs(B);
  for (int b = 0; b < B; ++b) samples[b] = SamplePosition(&probs[b]);

  // Bootstrap values of the positions the n-step targets reach: the target network's (or the
  // latest network's when reanalysing) instead of the values stored at acting time.
  std::vector<std::vector<float>> bootstrap(B);
  if (config_.use_target_network || config_.reanalyse) {
    std::vector<float> rows;
    std::vector<std::pair<int, int>> where;  // (sample, position)
    for (int b = 0; b < B; ++b) {
      const GameHistory& g = games_[samples[b].first];
      bootstrap[b] = g.root_values;
      for (int k = 0; k <= K; ++k) {
        const int u = samples[b].second + k + n;
        if (u >= g.length()) break;
        rows.insert(rows.end(), &g.obs[static_cast<size_t>(u) * obs_dim_],
                    &g.obs[static_cast<size_t>(u + 1) * obs_dim_]);
        where.emplace_back(b, u);
      }
    }
    if (!where.empty()) {  // in plain C++ (FastSearchModel), as the search
      FastSearchModel model(config_.reanalyse ? net_ : target_, support_);
      const int m = static_cast<int>(where.size());
      rows = Normalized(rows.data(), m);
      std::vector<float> latent(static_cast<size_t>(m) * net_->latent_dim), values(m),
          logits(static_cast<size_t>(m) * num_actions_);
      model.Initial(rows.data(), m, latent.data(), values.data(), logits.data());
      for (int j = 0; j < m; ++j) bootstrap[where[j].first][where[j].second] = values[j];
    }
  }
  std::vector<float> obs0(static_cast<size_t>(B) * obs_dim_);
  std::vector<int64_t> actions(static_cast<size_t>(B) * K);
  std::vector<float> values(static_cast<size_t>(B) * (K + 1)), rewards(values.size()),
      vw(values.size()), rw(values.size()), pw(values.size()),
      policies(static_cast<size_t>(B) * (K + 1) * A);
  CounterRng rng(DeriveKey(rng_key_, 0x7472 + static_cast<uint64_t>(training_steps_)));
  for (int b = 0; b < B; ++b) {
    const GameHistory& g = games_[samples[b].first];
    const int t = samples[b].second;
    std::copy(&g.obs[static_cast<size_t>(t) * obs_dim_],
              &g.obs[static_cast<size_t>(t + 1) * obs_dim_],
              &obs0[static_cast<size_t>(b) * obs_dim_]);
    const UnrollTargets u = MakeUnrollTargets(
        g, t, K, n, bootstrap[b].empty() ? nullptr : bootstrap[b].data(), g.final_value, rng);
    for (int k = 0; k < K; ++k) actions[static_cast<size_t>(b) * K + k] = u.actions[k];
    for (int k = 0; k <= K; ++k) {
      const size_t i = static_cast<size_t>(b) * (K + 1) + k;
      values[i] = u.values[k], rewards[i] = u.rewards[k];
      vw[i] = u.value_weight[k], rw[i] = u.reward_weight[k], pw[i] = u.policy_weight[k];
    }
    std::copy(u.policies.begin(), u.policies.end(),
              &policies[static_cast<size_t>(b) * (K + 1) * A]);
  }
  std::vector<float> weights(B, 1.0f);
  if (config_.prioritized) {
    for (int b = 0; b < B; ++b)
      weights[b] = static_cast<float>(std::pow(positions * probs[b], -config_.beta));
    const float top = *std::max_element(weights.begin(), weights.end());
    for (float& w : weights) w /= top;
  }
  obs0 = Normalized(obs0.data(), B);  // stored raw, normalised with the current statistics
  UnrollBatch batch{obs0, actions, values, rewards, vw, rw, pw, policies, weights};
  // Both check the loss for finiteness before their backward pass.
  const UnrollLosses l = config_.fused_update ? UnrollGradFused(batch) : UnrollGradAutograd(batch);
  CheckFinite("gradient norm", config_.max_grad_norm > 0
                                   ? optimizer_->ClipGradNorm(config_.max_grad_norm)
                                   : optimizer_->GradNorm());
  optimizer_->Step();
  ++training_steps_;
  if (training_steps_ % config_.target_update_interval == 0) CopyParameters(*net_, *target_);

  if (config_.prioritized) {  // |search value - n-step target| of the root, as priority
    for (int b = 0; b < B; ++b) {
      const auto [g, t] = samples[b];
      const float err = std::abs(l.root_values[b] - values[static_cast<size_t>(b) * (K + 1)]);
      priorities_[g][t] = static_cast<float>(std::pow(err + 1e-6, config_.alpha));
    }
    for (int b = 0; b < B; ++b) {
      double sum = 0;
      for (float p : priorities_[samples[b].first]) sum += p;
      game_tree_->Set(samples[b].first, sum);
    }
  }
  UpdateStats stats;
  stats["losses/value_loss"] = l.value;
  stats["losses/reward_loss"] = l.reward;
  stats["losses/policy_loss"] = l.policy;
  stats["losses/total_loss"] = l.total;
  stats["charts/temperature"] = temperature();
  stats["charts/games"] = static_cast<double>(games_.size());
  stats["charts/training_steps"] = static_cast<double>(training_steps_);
  return stats;
}

MuZeroAgent::UnrollLosses MuZeroAgent::UnrollGradAutograd(const UnrollBatch& u) {
  const int B = config_.batch_size, K = config_.unroll_steps, A = num_actions_;
  auto f32 = [](const std::vector<float>& v, std::vector<int64_t> shape) {
    return torch::from_blob(const_cast<float*>(v.data()), shape);
  };
  const torch::Tensor value_t = support_.TwoHot(f32(u.values, {B * (K + 1)})).view({B, K + 1, -1});
  const torch::Tensor reward_t =
      support_.TwoHot(f32(u.rewards, {B * (K + 1)})).view({B, K + 1, -1});
  const torch::Tensor policy_t = f32(u.policies, {B, K + 1, A});
  const torch::Tensor vw_t = f32(u.vw, {B, K + 1}), rw_t = f32(u.rw, {B, K + 1}),
                      pw_t = f32(u.pw, {B, K + 1});
  const torch::Tensor act_t =
      torch::from_blob(const_cast<int64_t*>(u.actions.data()), {B, K}, torch::kLong);
  const torch::Tensor weights = f32(u.weights, {B});

  torch::Tensor s = net_->Represent(f32(u.obs0, {B, obs_dim_}));
  auto [p0, v0] = net_->Predict(s);
  torch::Tensor value_loss = CrossEntropy(v0, value_t.select(1, 0)) * vw_t.select(1, 0);
  torch::Tensor policy_loss = CrossEntropy(p0, policy_t.select(1, 0)) * pw_t.select(1, 0);
  torch::Tensor reward_loss = torch::zeros({B});
  const torch::Tensor v0_scalar = support_.Decode(v0.detach()).contiguous();
  for (int k = 1; k <= K; ++k) {
    auto [next, r] = net_->Dynamics(s, act_t.select(1, k - 1));
    s = 0.5 * next + 0.5 * next.detach();  // scale the gradient through the dynamics by 1/2
    auto [p, v] = net_->Predict(s);
    const double scale = 1.0 / K;  // unrolled steps share one step's weight
    value_loss = value_loss + scale * CrossEntropy(v, value_t.select(1, k)) * vw_t.select(1, k);
    reward_loss = reward_loss + scale * CrossEntropy(r, reward_t.select(1, k)) * rw_t.select(1, k);
    policy_loss = policy_loss + scale * CrossEntropy(p, policy_t.select(1, k)) * pw_t.select(1, k);
  }
  const torch::Tensor per_sample =
      config_.value_loss_weight * value_loss + reward_loss + policy_loss;
  const torch::Tensor loss = (weights * per_sample).mean();
  UnrollLosses out;
  out.total = loss.item<double>();
  CheckFinite("loss", out.total);
  optimizer_->ZeroGrad();
  loss.backward();
  out.value = value_loss.mean().item<double>();
  out.reward = reward_loss.mean().item<double>();
  out.policy = policy_loss.mean().item<double>();
  out.root_values.assign(v0_scalar.data_ptr<float>(), v0_scalar.data_ptr<float>() + B);
  return out;
}

namespace {
/// Cross-entropy -sum t log softmax(z) of one row, and its gradient c * (softmax(z) sum t - t)
/// added into dz.
double CrossEntropyRow(const float* z, const float* t, int n, float c, float* dz) {
  float m = z[0];
  for (int j = 1; j < n; ++j) m = std::max(m, z[j]);
  double total = 0, mass = 0;
  for (int j = 0; j < n; ++j) total += std::exp(static_cast<double>(z[j]) - m), mass += t[j];
  const double log_total = std::log(total);
  double ce = 0;
  for (int j = 0; j < n; ++j) {
    const double log_p = static_cast<double>(z[j]) - m - log_total;
    ce -= t[j] * log_p;
    dz[j] += static_cast<float>(c * (std::exp(log_p) * mass - t[j]));
  }
  return ce;
}
}  // namespace

MuZeroAgent::UnrollLosses MuZeroAgent::UnrollGradFused(const UnrollBatch& u) {
  // The autograd graph of UnrollGradAutograd differentiated by hand: representation, K dynamics
  // steps (each scaling the gradient into the previous latent by 1/2), the prediction network on
  // all K + 1 latents at once, min-max scaling and the cross-entropies.
  const int B = config_.batch_size, K = config_.unroll_steps, A = num_actions_;
  const int L = static_cast<int>(net_->latent_dim), Z = support_.atoms();
  const int DI = L + A, DO = L + Z, PO = A + Z;
  FusedScratch& f = fused_;
  f.value_t.resize(static_cast<size_t>(B) * (K + 1) * Z);
  f.reward_t.resize(f.value_t.size());
  support_.TwoHotInto(u.values.data(), B * (K + 1), f.value_t.data());
  support_.TwoHotInto(u.rewards.data(), B * (K + 1), f.reward_t.data());

  // Forward. Latents of step k are rows k B .. k B + B - 1 of f.latent.
  f.latent.resize(static_cast<size_t>(K + 1) * B * L);
  f.repr_out.resize(static_cast<size_t>(B) * L);
  net_->representation->ForwardTrain(u.obs0.data(), B, f.repr_out.data(), &f.repr_tape);
  f.scaling.resize(K + 1);
  f.dyn_tape.resize(K + 1), f.dyn_in.resize(K + 1), f.dyn_out.resize(K + 1);
  f.d_dyn.resize(K + 1);
  NormalizeLatentRows(f.repr_out.data(), B, L, L, f.latent.data(), &f.scaling[0]);
  for (int k = 1; k <= K; ++k) {
    std::vector<float>& in = f.dyn_in[k];
    in.assign(static_cast<size_t>(B) * DI, 0.0f);
    for (int b = 0; b < B; ++b) {
      const float* s = &f.latent[(static_cast<size_t>(k - 1) * B + b) * L];
      std::copy(s, s + L, &in[static_cast<size_t>(b) * DI]);
      in[static_cast<size_t>(b) * DI + L + u.actions[static_cast<size_t>(b) * K + k - 1]] = 1.0f;
    }
    f.dyn_out[k].resize(static_cast<size_t>(B) * DO);
    net_->dynamics->ForwardTrain(in.data(), B, f.dyn_out[k].data(), &f.dyn_tape[k]);
    NormalizeLatentRows(f.dyn_out[k].data(), B, L, DO, &f.latent[static_cast<size_t>(k) * B * L],
                        &f.scaling[k]);
  }
  f.pred_out.resize(static_cast<size_t>(K + 1) * B * PO);
  net_->prediction->ForwardTrain(f.latent.data(), (K + 1) * B, f.pred_out.data(), &f.pred_tape);

  // Losses and their gradients with respect to the logits.
  UnrollLosses out;
  f.d_pred.assign(f.pred_out.size(), 0.0f);
  for (int k = 1; k <= K; ++k) f.d_dyn[k].assign(static_cast<size_t>(B) * DO, 0.0f);
  double value_sum = 0, reward_sum = 0, policy_sum = 0, total = 0;
  out.root_values.resize(B);
  for (int b = 0; b < B; ++b) {
    const float g = u.weights[b] / static_cast<float>(B);
    double value_b = 0, reward_b = 0, policy_b = 0;
    for (int k = 0; k <= K; ++k) {
      const size_t i = static_cast<size_t>(b) * (K + 1) + k;
      const float scale = k == 0 ? 1.0f : 1.0f / static_cast<float>(K);
      const size_t row = static_cast<size_t>(k) * B + b;
      const float* logits = &f.pred_out[row * PO];
      float* d = &f.d_pred[row * PO];
      policy_b +=
          scale * u.pw[i] * CrossEntropyRow(logits, &u.policies[i * A], A, g * scale * u.pw[i], d);
      value_b += scale * u.vw[i] *
                 CrossEntropyRow(
                     logits + A, &f.value_t[i * Z], Z,
                     g * static_cast<float>(config_.value_loss_weight) * scale * u.vw[i], d + A);
      if (k == 0) {
        out.root_values[b] = support_.DecodeLogits(logits + A);
      } else {
        const float* r = &f.dyn_out[k][static_cast<size_t>(b) * DO + L];
        reward_b += scale * u.rw[i] *
                    CrossEntropyRow(r, &f.reward_t[i * Z], Z, g * scale * u.rw[i],
                                    &f.d_dyn[k][static_cast<size_t>(b) * DO + L]);
      }
    }
    value_sum += value_b, reward_sum += reward_b, policy_sum += policy_b;
    total += u.weights[b] * (config_.value_loss_weight * value_b + reward_b + policy_b);
  }
  out.value = value_sum / B, out.reward = reward_sum / B, out.policy = policy_sum / B;
  out.total = total / B;
  CheckFinite("loss", out.total);

  // Backward.
  optimizer_->ZeroGrad();
  f.d_latent.resize(f.latent.size());
  net_->prediction->BackwardTrain(f.d_pred.data(), (K + 1) * B, f.pred_tape, f.d_latent.data());
  f.d_in.resize(static_cast<size_t>(B) * DI);
  for (int k = K; k >= 1; --k) {
    float* ds = &f.d_latent[static_cast<size_t>(k) * B * L];  // pred + later dynamics
    for (size_t j = 0; j < static_cast<size_t>(B) * L; ++j) ds[j] *= 0.5f;
    NormalizeLatentBackward(&f.latent[static_cast<size_t>(k) * B * L], ds, B, L, f.scaling[k],
                            f.d_dyn[k].data(), DO);
    net_->dynamics->BackwardTrain(f.d_dyn[k].data(), B, f.dyn_tape[k], f.d_in.data());
    float* prev = &f.d_latent[static_cast<size_t>(k - 1) * B * L];
    for (int b = 0; b < B; ++b)
      for (int j = 0; j < L; ++j)
        prev[static_cast<size_t>(b) * L + j] += f.d_in[static_cast<size_t>(b) * DI + j];
  }
  f.d_repr.resize(static_cast<size_t>(B) * L);
  NormalizeLatentBackward(f.latent.data(), f.d_latent.data(), B, L, f.scaling[0], f.d_repr.data(),
                          L);
  net_->representation->BackwardTrain(f.d_repr.data(), B, f.repr_tape, nullptr);
  return out;
}

void MuZeroAgent::PriorActions(const float* obs, const uint8_t* masks, int n, int32_t* actions) {
  torch::InferenceMode guard;
  std::vector<float> x = Normalized(obs, n);
  const auto [p, v] = net_->Predict(net_->Represent(torch::from_blob(x.data(), {n, obs_dim_})));
  const torch::Tensor logits = p.contiguous();
  const float* l = logits.data_ptr<float>();
  for (int i = 0; i < n; ++i) {
    int best = -1;
    for (int a = 0; a < num_actions_; ++a)
      if (masks[static_cast<size_t>(i) * num_actions_ + a] &&
          (best < 0 || l[i * num_actions_ + a] > l[i * num_actions_ + best]))
        best = a;
    actions[i] = std::max(best, 0);
  }
}

void MuZeroAgent::SaveState(torch::serialize::OutputArchive& archive) const {
  torch::serialize::OutputArchive net, target, opt;
  net_->save(net);
  target_->save(target);
  optimizer_->Save(opt);
  archive.write("net", net);
  archive.write("target", target);
  archive.write("optimizer", opt);
  StateWriter w;
  w.Tag("muzero");
  w.Put(search_counter_), w.Put(training_steps_);
  w.Put(next_game_);
  w.Put<int64_t>(static_cast<int64_t>(games_.size()));
  for (size_t k = 0; k < games_.size(); ++k) {
    PutGame(w, games_[k]);
    w.PutVector(priorities_[k]);
  }
  for (const auto& g : open_) PutGame(w, g);
  w.PutVector(pending_), w.PutVector(pending_discount_);
  WriteStateBytes(archive, "state", w.bytes());
  if (anchor_) {
    torch::serialize::OutputArchive anchor;
    anchor_->save(anchor);
    archive.write("anchor", anchor);
  }
}

void MuZeroAgent::LoadState(torch::serialize::InputArchive& archive) {
  torch::serialize::InputArchive net, target, opt;
  archive.read("net", net);
  archive.read("target", target);
  archive.read("optimizer", opt);
  {
    // Loading replaces a module's parameter storage; copy into the optimiser's flat views.
    MuZeroNet loaded = MuZeroNet(obs_dim_, num_actions_, net_config_);
    loaded->load(net);
    CopyParameters(*loaded, *net_);
  }
  target_->load(target);
  for (auto& p : target_->parameters()) p.set_requires_grad(false);
  optimizer_->Load(opt);
  const std::string state = ReadStateBytes(archive, "state");
  StateReader r(state.data(), state.size());
  r.Tag("muzero");
  r.Get(&search_counter_), r.Get(&training_steps_);
  r.Get(&next_game_);
  const int64_t count = r.Get<int64_t>();
  if (count > config_.buffer_size)
    throw std::runtime_error("checkpoint holds more games than buffer_size");
  games_.assign(count, GameHistory());
  priorities_.assign(count, {});
  game_tree_ = std::make_unique<SumTree>(config_.buffer_size);
  for (int64_t k = 0; k < count; ++k) {
    GetGame(r, &games_[k]);
    r.GetVector(&priorities_[k]);
    double sum = 0;
    for (float p : priorities_[k]) sum += p;
    game_tree_->Set(k, sum);
  }
  for (auto& g : open_) GetGame(r, &g);
  r.GetVector(&pending_), r.GetVector(&pending_discount_);
  anchor_ = nullptr;
  torch::serialize::InputArchive anchor;
  if (archive.try_read("anchor", anchor)) {
    // Loading replaces a module's parameter storage; copy into the storage the search reads.
    MuZeroNet loaded = MuZeroNet(obs_dim_, num_actions_, net_config_);
    loaded->load(anchor);
    MakeAnchor();
    CopyParameters(*loaded, *anchor_);
  }
}

std::string CheckFields(const MuZeroConfig& c) {
  if (c.imitation_fraction <= 0 && c.imitation_smoothing > 0)
    return "imitation_smoothing needs an imitation phase to smooth (imitation_fraction > 0)";
  if (c.imitation_fraction <= 0 && c.imitation_anchor_weight > 0)
    return "imitation_anchor_weight needs an imitation phase to stay near (imitation_fraction > 0)";
  return "";
}

AgentAlgorithm MuZeroAlgorithm() {
  return {[] { return std::make_unique<AgentOptionsOf<MuZeroConfig>>(); },
          [](const AgentSpec& s, const AgentOptions& o) -> std::unique_ptr<Agent> {
            if (s.nvec.size() != 1)
              throw std::invalid_argument(fmt::format(
                  "muzero plans over Discrete actions; role '{}' has {} action components (use "
                  "ppo or dqn)",
                  s.role, s.nvec.size()));
            return std::make_unique<MuZeroAgent>(s.obs_dim, static_cast<int>(s.nvec[0]), s.num_envs,
                                                 s.cadence, OptionsAs<MuZeroConfig>(o), s.seed,
                                                 s.total_steps);
          }};
}

void MuZeroAgent::OnGroup(Collective* group) {
  optimizer_->set_group(group);
}

}  // namespace loantwin
