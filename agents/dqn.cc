#include "agents/dqn.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

#include "agents/agent_registry.h"
#include "agents/module_util.h"
#include "agents/numerics.h"
#include "core/binary_state.h"
#include "core/counter_rng.h"

namespace loantwin {

QNetworkImpl::QNetworkImpl(int64_t obs_dim, std::vector<int64_t> nvec_in,
                           const std::vector<int64_t>& hidden, Activation act, bool duel)
    : nvec(std::move(nvec_in)), activation(act), dueling(duel) {
  // PyTorch's default initialisation (as CleanRL's QNetwork).
  trunk = register_module("trunk", torch::nn::ModuleList());
  int64_t width = obs_dim;
  for (int64_t h : hidden) {
    trunk->push_back(torch::nn::Linear(width, h));
    width = h;
  }
  const int64_t w = std::accumulate(nvec.begin(), nvec.end(), int64_t{0});
  advantage = register_module("advantage", torch::nn::Linear(width, w));
  if (dueling) value = register_module("value", torch::nn::Linear(width, 1));
}

torch::Tensor QNetworkImpl::forward(torch::Tensor x) {
  for (const auto& layer : *trunk) {
    x = layer->as<torch::nn::Linear>()->forward(x);
    x = activation == Activation::kRelu ? torch::relu(x) : torch::tanh(x);
  }
  torch::Tensor a = advantage->forward(x);
  if (!dueling) return a;
  const torch::Tensor v = value->forward(x);
  if (nvec.size() == 1) return v + a - a.mean(1, true);
  std::vector<torch::Tensor> parts;
  int64_t off = 0;
  for (int64_t k : nvec) {
    const torch::Tensor ad = a.slice(1, off, off + k);
    parts.push_back(v + ad - ad.mean(1, true));
    off += k;
  }
  return torch::cat(parts, 1);
}

torch::Tensor MaskedArgmax(const torch::Tensor& q, const torch::Tensor& mask,
                           const std::vector<int64_t>& nvec) {
  const torch::Tensor masked =
      q.masked_fill(mask.logical_not(), -std::numeric_limits<float>::infinity());
  std::vector<torch::Tensor> parts;
  int64_t off = 0;
  for (int64_t k : nvec) {
    parts.push_back(masked.slice(1, off, off + k).argmax(1));
    off += k;
  }
  return torch::stack(parts, 1);
}

torch::Tensor GatherBranches(const torch::Tensor& q, const torch::Tensor& actions,
                             const std::vector<int64_t>& nvec) {
  std::vector<int64_t> offsets(nvec.size(), 0);
  for (size_t d = 1; d < nvec.size(); ++d) offsets[d] = offsets[d - 1] + nvec[d - 1];
  const torch::Tensor idx =
      actions + torch::tensor(offsets, torch::kLong).unsqueeze(0);  // columns of q
  return q.gather(1, idx);
}

torch::Tensor DqnTarget(const torch::Tensor& rewards, const torch::Tensor& discounts,
                        const torch::Tensor& q_next_target, const torch::Tensor& q_select,
                        const torch::Tensor& next_masks, const std::vector<int64_t>& nvec) {
  const torch::Tensor best = MaskedArgmax(q_select, next_masks, nvec);
  const torch::Tensor next_value = GatherBranches(q_next_target, best, nvec).mean(1);
  // A discount of 0 (termination) ignores the next state whatever its values are.
  return rewards + torch::where(discounts > 0, discounts * next_value, torch::zeros_like(rewards));
}

DqnAgent::DqnAgent(int obs_dim, std::vector<int64_t> nvec, int num_envs, const DqnConfig& config,
                   uint64_t seed, int64_t total_steps)
    : Agent(obs_dim, DeriveKey(seed, 0x64716e)),
      obs_dim_(obs_dim),
      nvec_(std::move(nvec)),
      config_(config),
      total_steps_(std::max<int64_t>(1, total_steps)),
      nstep_(num_envs, obs_dim, static_cast<int>(nvec_.size()), config.n_step, config.gamma),
      replay_(obs_dim, static_cast<int>(nvec_.size()),
              static_cast<int>(std::accumulate(nvec_.begin(), nvec_.end(), int64_t{0})),
              ReplayBuffer::Options{config.buffer_size, config.prioritized, config.alpha,
                                    config.priority_eps}) {
  for (int64_t k : nvec_) mask_width_ += static_cast<int>(k);
  if (config_.imitation_fraction > 0)
    imitation_steps_ = std::max<int64_t>(
        1, std::llround(config_.imitation_fraction * static_cast<double>(total_steps_)));
  torch::manual_seed(seed);
  const Activation act = ParseActivation(config_.activation);
  q_ = QNetwork(obs_dim, nvec_, config_.hidden, act, config_.dueling);
  target_ = QNetwork(obs_dim, nvec_, config_.hidden, act, config_.dueling);
  CopyParameters(*q_, *target_);
  for (auto& p : target_->parameters()) p.set_requires_grad(false);
  optimizer_ = std::make_unique<FlatAdam>(q_->parameters(), config_.learning_rate);
  if (config_.dueling) {
    // The stacked heads hold copies (RefreshDuelingHeads): their initialisation must not move
    // the global generator that later modules draw from.
    const int64_t width = q_->advantage->weight.size(1);
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    const at::Tensor rng_state = gen.get_state();
    q_head_ = torch::nn::Linear(width, mask_width_ + 1);
    target_head_ = torch::nn::Linear(width, mask_width_ + 1);
    gen.set_state(rng_state);
    for (torch::Tensor* t : {&q_head_->weight, &q_head_->bias})
      t->mutable_grad() = torch::zeros_like(*t);
  }
  auto layers_of = [&](QNetwork& net, torch::nn::Linear& head) {
    std::vector<torch::nn::LinearImpl*> layers;
    for (const auto& l : *net->trunk) layers.push_back(l->as<torch::nn::Linear>());
    layers.push_back(config_.dueling ? head.get() : net->advantage.get());
    return layers;
  };
  q_stack_ = LinearStack(layers_of(q_, q_head_), act);
  target_stack_ = LinearStack(layers_of(target_, target_head_), act);
}

namespace {

// A dueling network's advantage and value layers copied into one stacked layer [A; V] of W + 1
// outputs (plain copies of the contiguous weights).
void StackHead(const QNetwork& net, torch::nn::Linear& head, int64_t w) {
  const int64_t width = net->advantage->weight.size(1);
  float* weight = head->weight.data_ptr<float>();
  float* bias = head->bias.data_ptr<float>();
  std::copy_n(net->advantage->weight.data_ptr<float>(), w * width, weight);
  std::copy_n(net->value->weight.data_ptr<float>(), width, weight + w * width);
  std::copy_n(net->advantage->bias.data_ptr<float>(), w, bias);
  bias[w] = net->value->bias.data_ptr<float>()[0];
}

}  // namespace

void DqnAgent::RefreshDuelingHeads() {
  StackHead(q_, q_head_, mask_width_);
  StackHead(target_, target_head_, mask_width_);
}

void DqnAgent::DuelingCombine(const float* raw, int64_t n, float* q) const {
  // QNetworkImpl::forward's v + a - a.mean(1) per branch, in its order of operations.
  const int64_t w = mask_width_;
  for (int64_t i = 0; i < n; ++i) {
    const float* r = raw + i * (w + 1);
    float* row = q + i * w;
    const float v = r[w];
    int64_t off = 0;
    for (int64_t k : nvec_) {
      float sum = 0;
      for (int64_t u = 0; u < k; ++u) sum += r[off + u];
      const float mean = sum / static_cast<float>(k);
      for (int64_t u = 0; u < k; ++u) row[off + u] = (v + r[off + u]) - mean;
      off += k;
    }
  }
}

double DqnAgent::epsilon() const {
  const double duration = config_.exploration_fraction * static_cast<double>(total_steps_);
  if (duration <= 0) return config_.end_e;
  const double slope = (config_.end_e - config_.start_e) / duration;
  // With an imitation phase the schedule starts when the phase ends (the baseline acts in it).
  const int64_t steps = std::max<int64_t>(0, env_steps_ - imitation_steps_);
  return std::max(config_.end_e, config_.start_e + slope * static_cast<double>(steps));
}

double DqnAgent::beta() const {
  const double p = std::min(1.0, static_cast<double>(env_steps_) / total_steps_);
  return config_.beta_start + (1.0 - config_.beta_start) * p;
}

torch::Tensor DqnAgent::Normalize(const torch::Tensor& raw) const {
  if (!config_.normalize_obs) return raw;
  const torch::Tensor mean = torch::tensor(obs_rms_.mean(), torch::kFloat64).to(torch::kFloat32);
  const torch::Tensor var = torch::tensor(obs_rms_.var(), torch::kFloat64).to(torch::kFloat32);
  return ((raw - mean) / torch::sqrt(var + 1e-8)).clamp(-10.0, 10.0);
}

torch::Tensor DqnAgent::QValues(const float* obs, int n) {
  torch::InferenceMode guard;
  scratch_.resize(static_cast<size_t>(n) * obs_dim_);
  if (config_.normalize_obs)
    obs_rms_.Normalize(obs, n, scratch_.data());
  else
    std::copy(obs, obs + static_cast<size_t>(n) * obs_dim_, scratch_.data());
  return q_->forward(torch::from_blob(scratch_.data(), {n, obs_dim_})).contiguous();
}

void DqnAgent::ForwardSmall(const float* x, int n, float* q) const {
  QNetwork& net = const_cast<QNetwork&>(q_);  // reads the weights only
  if (!net->dueling) {  // Eigen matrix-vector products (vectorised) on the same weights
    q_stack_.Forward(x, n, q);
    return;
  }
  const bool relu = net->activation == Activation::kRelu;
  std::vector<float>& in = small_in_;
  std::vector<float>& out = small_out_;
  in.assign(x, x + static_cast<size_t>(n) * obs_dim_);
  int64_t width = obs_dim_;
  // out[i, o] = bias[o] + sum_k w[o, k] in[i, k]
  auto linear = [&](const torch::nn::LinearImpl& l, const std::vector<float>& src, int64_t in_w,
                    float* dst) {
    const int64_t out_w = l.weight.size(0);
    const float* w = l.weight.data_ptr<float>();
    const float* bias = l.bias.data_ptr<float>();
    for (int i = 0; i < n; ++i) {
      const float* xr = src.data() + static_cast<size_t>(i) * in_w;
      for (int64_t o = 0; o < out_w; ++o) {
        const float* wr = w + o * in_w;
        float acc = 0;
        for (int64_t k = 0; k < in_w; ++k) acc += wr[k] * xr[k];
        dst[static_cast<size_t>(i) * out_w + o] = acc + bias[o];
      }
    }
    return out_w;
  };
  for (const auto& layer : *net->trunk) {
    const auto& l = *layer->as<torch::nn::Linear>();
    out.resize(static_cast<size_t>(n) * l.weight.size(0));
    const int64_t w = linear(l, in, width, out.data());
    for (float& v : out) v = relu ? std::max(v, 0.0f) : std::tanh(v);
    std::swap(in, out);
    width = w;
  }
  linear(*net->advantage, in, width, q);
  if (!net->dueling) return;
  float value[64];
  for (int i0 = 0; i0 < n; i0 += 64) {
    const int rows = std::min(64, n - i0);
    std::vector<float> part(in.begin() + static_cast<size_t>(i0) * width,
                            in.begin() + static_cast<size_t>(i0 + rows) * width);
    const float* w = net->value->weight.data_ptr<float>();
    for (int r = 0; r < rows; ++r) {
      float acc = 0;
      for (int64_t k = 0; k < width; ++k) acc += w[k] * part[static_cast<size_t>(r) * width + k];
      value[r] = acc + net->value->bias.data_ptr<float>()[0];
    }
    for (int r = 0; r < rows; ++r) {
      float* row = q + static_cast<size_t>(i0 + r) * mask_width_;
      int64_t off = 0;
      for (int64_t k : nvec_) {
        float mean = 0;
        for (int64_t v = 0; v < k; ++v) mean += row[off + v];
        mean /= static_cast<float>(k);
        for (int64_t v = 0; v < k; ++v) row[off + v] = value[r] + row[off + v] - mean;
        off += k;
      }
    }
  }
}

void DqnAgent::Greedy(const float* obs, const uint8_t* masks, int n, int32_t* actions) {
  torch::Tensor q;
  const float* qp;
  if (n <= kStackBatch) {  // plain C++: microseconds instead of a dozen tensor operations
    scratch_.resize(static_cast<size_t>(n) * obs_dim_);
    if (config_.normalize_obs)
      obs_rms_.Normalize(obs, n, scratch_.data());
    else
      std::copy(obs, obs + static_cast<size_t>(n) * obs_dim_, scratch_.data());
    small_q_.resize(static_cast<size_t>(n) * mask_width_);
    if (n <= kSmallBatch || !config_.dueling) {
      ForwardSmall(scratch_.data(), n, small_q_.data());
    } else {  // the trunk and the stacked [A; V] head through LinearStack, then V + A - mean A
      StackHead(q_, q_head_, mask_width_);  // stale after every gradient step
      small_raw_.resize(static_cast<size_t>(n) * (mask_width_ + 1));
      q_stack_.Forward(scratch_.data(), n, small_raw_.data());
      DuelingCombine(small_raw_.data(), n, small_q_.data());
    }
    qp = small_q_.data();
  } else {
    q = QValues(obs, n);
    qp = q.data_ptr<float>();
  }
  const int dims = static_cast<int>(nvec_.size());
  for (int i = 0; i < n; ++i) {
    const float* row = qp + static_cast<size_t>(i) * mask_width_;
    const uint8_t* m = masks + static_cast<size_t>(i) * mask_width_;
    int off = 0;
    for (int d = 0; d < dims; ++d) {
      int best = -1;
      for (int v = 0; v < nvec_[d]; ++v)
        if (m[off + v] && (best < 0 || row[off + v] > row[off + best])) best = v;
      actions[static_cast<size_t>(i) * dims + d] = std::max(best, 0);
      off += static_cast<int>(nvec_[d]);
    }
  }
}

void DqnAgent::DoAct(const float* obs, const uint8_t* masks, int n, bool deterministic,
                     int32_t* actions) {
  if (deterministic) {
    Greedy(obs, masks, n, actions);
    return;
  }
  const double eps = epsilon();
  const int dims = static_cast<int>(nvec_.size());
  // Epsilon-greedy without recording: same draws as ActAndRecord would make.
  explore_.resize(n);
  bool any_greedy = false;
  for (int i = 0; i < n; ++i) {
    explore_[i] = ToUniform(NextBits()) < eps;
    any_greedy |= !explore_[i];
  }
  if (any_greedy) Greedy(obs, masks, n, actions);  // skipped while every row explores
  for (int i = 0; i < n; ++i) {
    if (!explore_[i]) continue;
    const uint8_t* m = masks + static_cast<size_t>(i) * mask_width_;
    int off = 0;
    for (int d = 0; d < dims; ++d) {
      int allowed = 0;
      for (int v = 0; v < nvec_[d]; ++v) allowed += m[off + v] != 0;
      int pick = static_cast<int>(NextBits() % static_cast<uint64_t>(std::max(allowed, 1)));
      int chosen = 0;
      for (int v = 0; v < nvec_[d]; ++v)
        if (m[off + v] && pick-- == 0) {
          chosen = v;
          break;
        }
      actions[static_cast<size_t>(i) * dims + d] = chosen;
      off += static_cast<int>(nvec_[d]);
    }
  }
}

void DqnAgent::DoActAndRecord(const AgentBatch& b, int32_t* actions) {
  const int n = b.n, dims = static_cast<int>(nvec_.size());
  if (config_.normalize_obs) {
    scratch_.clear();
    for (int i = 0; i < n; ++i)
      if (b.acting[i])
        scratch_.insert(scratch_.end(), b.obs + static_cast<size_t>(i) * obs_dim_,
                        b.obs + static_cast<size_t>(i + 1) * obs_dim_);
    if (!scratch_.empty())
      obs_rms_.Update(scratch_.data(), static_cast<int64_t>(scratch_.size()) / obs_dim_);
  }
  if (wants_demonstrations())  // the imitation phase: the baseline's decisions (DQfD)
    std::copy(b.demonstrations, b.demonstrations + static_cast<size_t>(n) * dims, actions);
  else
    Act(b.obs, b.masks, n, /*deterministic=*/false, actions);
  for (int i = 0; i < n; ++i) {
    if (!b.acting[i]) continue;
    nstep_.Open(i, b.obs + static_cast<size_t>(i) * obs_dim_,
                actions + static_cast<size_t>(i) * dims);
  }
}

void DqnAgent::DoObserve(const AgentFeedback& f) {
  const NStepAccumulator::Sink sink = [this](const TransitionView& t) { replay_.Add(t); };
  for (int i = 0; i < f.n; ++i) {
    if (nstep_.pending(i) > 0) nstep_.AddReward(i, f.rewards[i]);
    if (f.terminated[i] || f.truncated[i]) {
      nstep_.End(i, f.truncated[i] && !f.terminated[i],
                 f.final_obs + static_cast<size_t>(i) * obs_dim_,
                 f.final_masks + static_cast<size_t>(i) * mask_width_, sink);
    }
  }
}

UpdateStats DqnAgent::DoMaybeUpdate(const AgentBatch& current) {
  DoPrepareUpdate(current);
  return DoRunPreparedUpdate();
}

void DqnAgent::DoPrepareUpdate(const AgentBatch& current) {
  const NStepAccumulator::Sink sink = [this](const TransitionView& t) { replay_.Add(t); };
  for (int i = 0; i < current.n; ++i)
    if (current.acting[i])
      nstep_.Advance(i, current.obs + static_cast<size_t>(i) * obs_dim_,
                     current.masks + static_cast<size_t>(i) * mask_width_, sink);
  // The phase has ended: the network as it left it is the anchor of the margin loss from now on.
  if (config_.imitation_anchor_coef > 0 && imitation_steps_ > 0 && !anchor_ &&
      env_steps_ >= imitation_steps_)
    MakeAnchor();
  const int64_t ls = config_.learning_starts;
  if (env_steps_ <= ls) return;
  const int64_t prev = std::max<int64_t>(env_steps_ - current.n, ls);
  due_rounds_ += env_steps_ / config_.train_frequency - prev / config_.train_frequency;
  due_target_updates_ +=
      env_steps_ / config_.target_network_frequency - prev / config_.target_network_frequency;
}

UpdateStats DqnAgent::DoRunPreparedUpdate() {
  UpdateStats stats;
  const int64_t rounds = std::exchange(due_rounds_, 0);
  const int64_t target_updates = std::exchange(due_target_updates_, 0);
  // Distributed: every rank's replay must hold a batch before any rank trains (the ranks'
  // gradient steps are all-reduced together). `rounds` is alike on every rank.
  bool ready = replay_.size() >= config_.batch_size;
  if (group_ != nullptr) {
    if (rounds > 0 && !replay_ready_) replay_ready_ = AllRanks(ready);
    ready = replay_ready_;
  }
  if (ready) {
    for (int64_t r = 0; r < rounds; ++r)
      for (int g = 0; g < config_.gradient_steps; ++g) stats = TrainStep();
    for (int64_t t = 0; t < target_updates; ++t) UpdateTarget();
  }
  if (!stats.empty()) {
    stats["charts/epsilon"] = epsilon();
    if (config_.prioritized) stats["charts/beta"] = beta();
    stats["charts/replay_size"] = static_cast<double>(replay_.size());
  }
  return stats;
}

void DqnAgent::MakeAnchor() {
  anchor_ = QNetwork(obs_dim_, nvec_, config_.hidden, ParseActivation(config_.activation),
                     config_.dueling);
  CopyParameters(*q_, *anchor_);
  for (auto& p : anchor_->parameters()) p.set_requires_grad(false);
}

bool DqnAgent::MarginTargets(const float* obs, const int64_t* stored, int64_t bs,
                             std::vector<int64_t>* expert, double* coef) {
  const int64_t dims = static_cast<int64_t>(nvec_.size());
  if (wants_demonstrations()) {  // the replay holds the baseline's transitions only
    expert->assign(stored, stored + bs * dims);
    *coef = config_.imitation_coef;
    return *coef > 0;
  }
  if (!anchor_) return false;
  // The anchor's greedy action per component (over every action: the replay keeps no mask of
  // the decision's state; the baseline it copied only took allowed ones).
  torch::InferenceMode guard;
  const torch::Tensor q =
      anchor_->forward(torch::from_blob(const_cast<float*>(obs), {bs, obs_dim_})).contiguous();
  const float* qp = q.data_ptr<float>();
  expert->resize(static_cast<size_t>(bs * dims));
  for (int64_t b = 0; b < bs; ++b) {
    int64_t off = 0;
    for (int64_t d = 0; d < dims; ++d) {
      const float* row = qp + b * mask_width_ + off;
      (*expert)[b * dims + d] = std::max_element(row, row + nvec_[d]) - row;
      off += nvec_[d];
    }
  }
  *coef = config_.imitation_anchor_coef;
  return true;
}

void DqnAgent::UpdateTarget() {
  torch::NoGradGuard no_grad;
  const auto src = q_->parameters();
  auto dst = target_->parameters();
  for (size_t k = 0; k < src.size(); ++k) {
    if (config_.tau >= 1.0)
      dst[k].copy_(src[k]);
    else
      dst[k].mul_(1.0 - config_.tau).add_(src[k], config_.tau);
  }
}

UpdateStats DqnAgent::TrainStep() {
  return config_.fused_update ? TrainStepFused() : TrainStepAutograd();
}

double DqnAgent::ClipAndStep() {
  const double grad_norm = config_.max_grad_norm > 0
                               ? optimizer_->ClipGradNorm(config_.max_grad_norm)
                               : optimizer_->GradNorm();
  CheckFinite("gradient norm", grad_norm);
  optimizer_->Step();
  ++updates_;
  return grad_norm;
}

UpdateStats DqnAgent::TrainStepFused() {
  // TrainStepAutograd's loss and its gradient by hand: y = r + discount * mean_d Q_target(s',
  // argmax over allowed a' of Q_select(s')_d) (no gradient); td = y - Q(s, a)_d per branch;
  // loss = mean_b w_b mean_d l(td) with l = td^2 (d/dtd 2 td) or Huber (td inside [-1, 1],
  // else sign(td)); dLoss/dQ(s, a)_d = -w_b l'(td) / (B D); other Q-values get no gradient.
  const int64_t bs = config_.batch_size, dims = static_cast<int64_t>(nvec_.size());
  const int64_t w = mask_width_;
  FusedBuffers& f = fused_;
  ReplayBuffer::RawBatch& batch = f.batch;
  replay_.SampleInto(bs, config_.prioritized ? beta() : 0.0, rng_key_, &rng_counter_, &batch);
  if (config_.normalize_obs) {
    obs_rms_.Normalize(batch.obs.data(), bs, batch.obs.data());
    obs_rms_.Normalize(batch.next_obs.data(), bs, batch.next_obs.data());
  }
  // Dueling: the stacked head's [A, V] rows go through DuelingCombine (raw) into Q-values.
  const bool duel = config_.dueling;
  if (duel) {
    RefreshDuelingHeads();
    f.raw.resize(static_cast<size_t>(bs * (w + 1)));
  }
  auto forward = [&](LinearStack& stack, const float* x, bool train, std::vector<float>* q) {
    q->resize(static_cast<size_t>(bs * w));
    float* out = duel ? f.raw.data() : q->data();
    if (train)
      stack.ForwardTrain(x, bs, out);
    else
      stack.Forward(x, bs, out);
    if (duel) DuelingCombine(out, bs, q->data());
  };
  forward(target_stack_, batch.next_obs.data(), false, &f.q_next_target);
  const float* q_select = f.q_next_target.data();
  if (config_.double_q) {
    forward(q_stack_, batch.next_obs.data(), false, &f.q_next_select);
    q_select = f.q_next_select.data();
  }
  forward(q_stack_, batch.obs.data(), true, &f.q);
  f.dq.assign(static_cast<size_t>(bs * w), 0.0f);
  f.td.resize(bs);
  const bool huber = config_.loss == "huber";
  double loss = 0, q_sum = 0;
  const double scale = 1.0 / static_cast<double>(bs * dims);
  for (int64_t b = 0; b < bs; ++b) {
    const float* sel = q_select + b * w;
    const float* tgt = f.q_next_target.data() + b * w;
    const uint8_t* mask = batch.next_masks.data() + b * w;
    // Next value: mean over branches of the target's value at the selected allowed action
    // (torch's argmax: the first maximum; index 0 when nothing is allowed).
    float next_value_sum = 0;
    int64_t off = 0;
    for (int64_t d = 0; d < dims; ++d) {
      int64_t best = -1;
      for (int64_t v = 0; v < nvec_[d]; ++v)
        if (mask[off + v] && (best < 0 || sel[off + v] > sel[off + best])) best = v;
      next_value_sum += tgt[off + std::max<int64_t>(best, 0)];
      off += nvec_[d];
    }
    const float next_value = next_value_sum / static_cast<float>(dims);
    const float disc = batch.discounts[b];
    const float y = batch.rewards[b] + (disc > 0 ? disc * next_value : 0.0f);
    const double wb = config_.prioritized ? batch.weights[b] : 1.0;
    double per_sample = 0, abs_td = 0;
    off = 0;
    for (int64_t d = 0; d < dims; ++d) {
      const int64_t col = off + batch.actions[b * dims + d];
      const float q_taken = f.q[b * w + col];
      const float td = y - q_taken;
      q_sum += q_taken;
      abs_td += std::abs(td);
      double grad;
      if (huber) {
        const bool inside = std::abs(td) <= 1.0f;
        per_sample += inside ? 0.5 * td * td : std::abs(td) - 0.5;
        grad = inside ? td : (td > 0) - (td < 0);
      } else {
        per_sample += static_cast<double>(td) * td;
        grad = 2.0 * td;
      }
      f.dq[b * w + col] = static_cast<float>(-wb * grad * scale);
      off += nvec_[d];
    }
    loss += wb * per_sample;
    f.td[b] = static_cast<float>(abs_td / static_cast<double>(dims));
  }
  loss *= scale;
  // The large-margin loss (imitation): per row and component J = max_v [Q(v) + l 1(v != a_E)]
  // - Q(a_E), weighted as the TD loss; dJ/dQ(v*) = +1 at the maximiser, -1 at a_E.
  double margin_coef = 0, margin_loss = 0, matches = 0;
  const bool margin =
      MarginTargets(batch.obs.data(), batch.actions.data(), bs, &f.expert, &margin_coef);
  if (margin) {
    const float l = static_cast<float>(config_.imitation_margin);
    for (int64_t b = 0; b < bs; ++b) {
      const double g = margin_coef * (config_.prioritized ? batch.weights[b] : 1.0) * scale;
      const float* q = f.q.data() + b * w;
      int64_t off = 0;
      for (int64_t d = 0; d < dims; ++d) {
        const int64_t e = f.expert[b * dims + d];
        int64_t best = 0, greedy = 0;
        for (int64_t v = 1; v < nvec_[d]; ++v) {
          if (q[off + v] + (v != e ? l : 0.0f) > q[off + best] + (best != e ? l : 0.0f)) best = v;
          if (q[off + v] > q[off + greedy]) greedy = v;
        }
        matches += greedy == e;
        margin_loss += g * (q[off + best] + (best != e ? l : 0.0f) - q[off + e]);
        f.dq[b * w + off + best] += static_cast<float>(g);
        f.dq[b * w + off + e] -= static_cast<float>(g);
        off += nvec_[d];
      }
    }
    loss += margin_loss;
  }
  CheckFinite("loss", loss);
  optimizer_->ZeroGrad();
  if (duel) {
    // Through V + A - mean_branch(A): dA_u = dQ_u - mean over u's branch of dQ, dV = sum dQ.
    f.draw.assign(static_cast<size_t>(bs * (w + 1)), 0.0f);
    for (int64_t b = 0; b < bs; ++b) {
      const float* g = f.dq.data() + b * w;
      float* d = f.draw.data() + b * (w + 1);
      int64_t off = 0;
      for (int64_t k : nvec_) {
        float sum = 0;
        for (int64_t u = 0; u < k; ++u) sum += g[off + u];
        const float mean = sum / static_cast<float>(k);
        for (int64_t u = 0; u < k; ++u) d[off + u] = g[off + u] - mean;
        d[w] += sum;
        off += k;
      }
    }
    torch::NoGradGuard no_grad;
    q_head_->weight.mutable_grad().zero_();
    q_head_->bias.mutable_grad().zero_();
    q_stack_.BackwardTrain(f.draw.data(), bs);
    q_->advantage->weight.mutable_grad().add_(q_head_->weight.grad().slice(0, 0, w));
    q_->advantage->bias.mutable_grad().add_(q_head_->bias.grad().slice(0, 0, w));
    q_->value->weight.mutable_grad().add_(q_head_->weight.grad().slice(0, w, w + 1));
    q_->value->bias.mutable_grad().add_(q_head_->bias.grad().slice(0, w, w + 1));
  } else {
    q_stack_.BackwardTrain(f.dq.data(), bs);
  }
  const double grad_norm = ClipAndStep();
  if (config_.prioritized) replay_.UpdatePriorities(batch.indices, f.td.data());
  UpdateStats stats;
  stats["losses/td_loss"] = loss - margin_loss;
  stats["losses/q_values"] = q_sum * scale;
  stats["losses/grad_norm"] = grad_norm;
  if (margin) {
    stats["losses/margin_loss"] = margin_loss;
    stats["losses/imitation_accuracy"] = matches * scale;
  }
  return stats;
}

UpdateStats DqnAgent::TrainStepAutograd() {
  const double b = config_.prioritized ? beta() : 0.0;
  ReplayBuffer::Batch batch = replay_.Sample(config_.batch_size, b, rng_key_, &rng_counter_);
  const torch::Tensor obs = Normalize(batch.obs), next_obs = Normalize(batch.next_obs);
  torch::Tensor y;
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor q_next_target = target_->forward(next_obs);
    const torch::Tensor q_select = config_.double_q ? q_->forward(next_obs) : q_next_target;
    y = DqnTarget(batch.rewards, batch.discounts, q_next_target, q_select, batch.next_masks, nvec_);
  }
  const torch::Tensor q_all = q_->forward(obs);
  const torch::Tensor q_taken = GatherBranches(q_all, batch.actions, nvec_);  // [B, D]
  const torch::Tensor td = y.unsqueeze(1) - q_taken;
  const torch::Tensor per_branch =
      config_.loss == "huber" ? torch::where(td.abs() <= 1.0, 0.5 * td.pow(2), td.abs() - 0.5)
                              : td.pow(2);
  const torch::Tensor per_sample = per_branch.mean(1);
  const torch::Tensor td_loss =
      config_.prioritized ? (batch.weights * per_sample).mean() : per_sample.mean();
  torch::Tensor loss = td_loss, margin_loss;
  // The large-margin loss (imitation), per component: max_v [Q(v) + l 1(v != a_E)] - Q(a_E).
  std::vector<int64_t> expert;
  double margin_coef = 0;
  const torch::Tensor obs_c = obs.contiguous();
  const torch::Tensor stored = batch.actions.to(torch::kLong).contiguous();
  if (MarginTargets(obs_c.data_ptr<float>(), stored.data_ptr<int64_t>(), batch.obs.size(0), &expert,
                    &margin_coef)) {
    const int64_t dims = static_cast<int64_t>(nvec_.size());
    const torch::Tensor e = torch::tensor(expert, torch::kLong).view({-1, dims});
    std::vector<torch::Tensor> parts;
    int64_t off = 0;
    for (int64_t d = 0; d < dims; ++d) {
      const torch::Tensor qd = q_all.slice(1, off, off + nvec_[d]);
      const torch::Tensor ed = e.select(1, d).unsqueeze(1);
      const torch::Tensor margins =
          torch::full_like(qd, config_.imitation_margin).scatter(1, ed, 0.0);
      parts.push_back(std::get<0>((qd + margins).max(1)) - qd.gather(1, ed).squeeze(1));
      off += nvec_[d];
    }
    const torch::Tensor j = torch::stack(parts, 1).mean(1);
    margin_loss = margin_coef * (config_.prioritized ? (batch.weights * j).mean() : j.mean());
    loss = loss + margin_loss;
  }
  CheckFinite("loss", loss.item<double>());
  optimizer_->ZeroGrad();
  loss.backward();
  const double grad_norm = ClipAndStep();
  if (config_.prioritized) {
    const torch::Tensor abs_td = td.detach().abs().mean(1).contiguous();
    replay_.UpdatePriorities(batch.indices, abs_td.data_ptr<float>());
  }
  UpdateStats stats;
  stats["losses/td_loss"] = td_loss.item<double>();
  if (margin_loss.defined()) stats["losses/margin_loss"] = margin_loss.item<double>();
  stats["losses/q_values"] = q_taken.detach().mean().item<double>();
  stats["losses/grad_norm"] = grad_norm;
  return stats;
}

void DqnAgent::SaveState(torch::serialize::OutputArchive& archive) const {
  torch::serialize::OutputArchive q, target, opt;
  q_->save(q);
  target_->save(target);
  optimizer_->Save(opt);
  archive.write("q", q);
  archive.write("target", target);
  archive.write("optimizer", opt);
  archive.write("counters", torch::tensor({updates_}));
  // Learning noted as due and not yet run (overlap_updates: the checkpoint falls between the
  // halves of an update); absent when none, as in checkpoints written before the halves.
  if (due_rounds_ != 0 || due_target_updates_ != 0)
    archive.write("due_updates", torch::tensor({due_rounds_, due_target_updates_}));
  StateWriter w;
  nstep_.SaveState(w);
  WriteStateBytes(archive, "nstep", w.bytes());
  if (anchor_) {
    torch::serialize::OutputArchive anchor;
    anchor_->save(anchor);
    archive.write("anchor", anchor);
  }
  if (config_.checkpoint_replay) {
    torch::serialize::OutputArchive replay;
    replay_.Save(replay);
    archive.write("replay", replay);
  }
}

void DqnAgent::LoadState(torch::serialize::InputArchive& archive) {
  torch::serialize::InputArchive q, target, opt;
  archive.read("q", q);
  archive.read("target", target);
  archive.read("optimizer", opt);
  {
    // Loading replaces a module's parameter storage; copy into the optimiser's flat views.
    QNetwork loaded(obs_dim_, nvec_, config_.hidden, ParseActivation(config_.activation),
                    config_.dueling);
    loaded->load(q);
    CopyParameters(*loaded, *q_);
  }
  target_->load(target);
  for (auto& p : target_->parameters()) p.set_requires_grad(false);
  optimizer_->Load(opt);
  torch::Tensor t;
  archive.read("counters", t);
  updates_ = t[0].item<int64_t>();
  due_rounds_ = due_target_updates_ = 0;
  if (archive.try_read("due_updates", t)) {
    due_rounds_ = t[0].item<int64_t>();
    due_target_updates_ = t[1].item<int64_t>();
  }
  anchor_ = nullptr;
  torch::serialize::InputArchive anchor;
  if (archive.try_read("anchor", anchor)) {
    MakeAnchor();  // the shape; then the saved parameters
    anchor_->load(anchor);
    for (auto& p : anchor_->parameters()) p.set_requires_grad(false);
  }
  const std::string nstep = ReadStateBytes(archive, "nstep");
  StateReader r(nstep.data(), nstep.size());
  nstep_.LoadState(r);
  torch::serialize::InputArchive replay;
  if (archive.try_read("replay", replay)) {
    replay_.Load(replay);
  } else {
    // Without the replay the run goes on, refilling it; pending decisions are dropped.
    replay_.Clear();
    nstep_.Clear();
  }
}

std::string CheckFields(const DqnConfig& c) {
  if (c.batch_size > c.buffer_size)
    return "batch_size (" + std::to_string(c.batch_size) + ") is larger than buffer_size (" +
           std::to_string(c.buffer_size) + ")";
  if (c.imitation_anchor_coef > 0 && c.imitation_fraction <= 0)
    return "imitation_anchor_coef needs an imitation phase to stay near (imitation_fraction > 0)";
  if (c.end_e > c.start_e)
    return "end_e (" + std::to_string(c.end_e) + ") is above start_e (" +
           std::to_string(c.start_e) + ")";
  return "";
}

AgentAlgorithm DqnAlgorithm() {
  return {[] { return std::make_unique<AgentOptionsOf<DqnConfig>>(); },
          [](const AgentSpec& s, const AgentOptions& o) -> std::unique_ptr<Agent> {
            return std::make_unique<DqnAgent>(s.obs_dim, s.nvec, s.num_envs,
                                              OptionsAs<DqnConfig>(o), s.seed, s.total_steps);
          }};
}

void DqnAgent::OnGroup(Collective* group) {
  optimizer_->set_group(group);
}

}  // namespace loantwin
