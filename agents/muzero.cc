#include "agents/muzero.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

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

void MuZeroAgent::Search(const float* obs, const uint8_t* masks, int n, bool explore,
                         int32_t* actions, bool record, const uint8_t* acting) {
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
  TorchSearchModel model(net_, support_);
  // A greedy search draws nothing: it leaves the agent's random stream untouched.
  const uint64_t key = explore ? DeriveKey(rng_key_, search_counter_++) : 0;
  mcts_->Search(model, scratch_obs_.data(), scratch_masks_.data(), m, explore,
                explore ? temperature() : 0.0, key);
  for (int j = 0; j < m; ++j) {
    const int i = rows_[j];
    actions[i] = mcts_->action(j);
    if (!record) continue;
    GameHistory& g = open_[i];
    g.obs.insert(g.obs.end(), obs + static_cast<size_t>(i) * obs_dim_,
                 obs + static_cast<size_t>(i + 1) * obs_dim_);
    g.actions.push_back(actions[i]);
    g.rewards.push_back(0.0f);
    g.discounts.push_back(1.0f);
    g.root_values.push_back(mcts_->root_value(j));
    g.policies.insert(g.policies.end(), mcts_->policy(j), mcts_->policy(j) + num_actions_);
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
  Search(b.obs, b.masks, b.n, true, actions, true, b.acting);
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
    if (!where.empty()) {
      torch::InferenceMode guard;
      MuZeroNet& net = config_.reanalyse ? net_ : target_;
      const int64_t m = static_cast<int64_t>(where.size());
      rows = Normalized(rows.data(), m);
      const auto [p, v] =
          net->Predict(net->Represent(torch::from_blob(rows.data(), {m, obs_dim_})));
      const torch::Tensor values = support_.Decode(v).contiguous();
      for (int64_t j = 0; j < m; ++j)
        bootstrap[where[j].first][where[j].second] = values.data_ptr<float>()[j];
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
  auto f32 = [](std::vector<float>& v, std::vector<int64_t> shape) {
    return torch::from_blob(v.data(), shape);
  };
  const torch::Tensor value_t = support_.TwoHot(f32(values, {B * (K + 1)})).view({B, K + 1, -1});
  const torch::Tensor reward_t = support_.TwoHot(f32(rewards, {B * (K + 1)})).view({B, K + 1, -1});
  const torch::Tensor policy_t = f32(policies, {B, K + 1, A});
  const torch::Tensor vw_t = f32(vw, {B, K + 1}), rw_t = f32(rw, {B, K + 1}),
                      pw_t = f32(pw, {B, K + 1});
  const torch::Tensor act_t = torch::from_blob(actions.data(), {B, K}, torch::kLong);
  torch::Tensor weights = torch::ones({B});
  if (config_.prioritized) {
    for (int b = 0; b < B; ++b)
      weights[b] = static_cast<float>(std::pow(positions * probs[b], -config_.beta));
    weights = weights / weights.max();
  }

  obs0 = Normalized(obs0.data(), B);  // stored raw, normalised with the current statistics
  torch::Tensor s = net_->Represent(f32(obs0, {B, obs_dim_}));
  auto [p0, v0] = net_->Predict(s);
  torch::Tensor value_loss = CrossEntropy(v0, value_t.select(1, 0)) * vw_t.select(1, 0);
  torch::Tensor policy_loss = CrossEntropy(p0, policy_t.select(1, 0)) * pw_t.select(1, 0);
  torch::Tensor reward_loss = torch::zeros({B});
  const torch::Tensor v0_scalar = support_.Decode(v0.detach());
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
  CheckFinite("loss", loss.item<double>());
  optimizer_->ZeroGrad();
  loss.backward();
  CheckFinite("gradient norm", config_.max_grad_norm > 0
                                   ? optimizer_->ClipGradNorm(config_.max_grad_norm)
                                   : optimizer_->GradNorm());
  optimizer_->Step();
  ++training_steps_;
  if (training_steps_ % config_.target_update_interval == 0) CopyParameters(*net_, *target_);

  if (config_.prioritized) {  // |search value - n-step target| of the root, as priority
    const float* pred = v0_scalar.contiguous().data_ptr<float>();
    for (int b = 0; b < B; ++b) {
      const auto [g, t] = samples[b];
      const float err = std::abs(pred[b] - values[static_cast<size_t>(b) * (K + 1)]);
      priorities_[g][t] = static_cast<float>(std::pow(err + 1e-6, config_.alpha));
    }
    for (int b = 0; b < B; ++b) {
      double sum = 0;
      for (float p : priorities_[samples[b].first]) sum += p;
      game_tree_->Set(samples[b].first, sum);
    }
  }
  UpdateStats stats;
  stats["losses/value_loss"] = value_loss.mean().item<double>();
  stats["losses/reward_loss"] = reward_loss.mean().item<double>();
  stats["losses/policy_loss"] = policy_loss.mean().item<double>();
  stats["losses/total_loss"] = loss.item<double>();
  stats["charts/temperature"] = temperature();
  stats["charts/games"] = static_cast<double>(games_.size());
  stats["charts/training_steps"] = static_cast<double>(training_steps_);
  return stats;
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
