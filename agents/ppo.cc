#include "agents/ppo.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "agents/agent_registry.h"
#include "agents/distributions.h"
#include "agents/module_util.h"
#include "agents/numerics.h"
#include "agents/schedule.h"
#include "core/check.h"
#include "core/counter_rng.h"

namespace loantwin {

ActorCriticImpl::ActorCriticImpl(int64_t obs_dim, int64_t critic_dim, int64_t logits,
                                 const PpoConfig& c, int64_t num_costs) {
  const Activation act = ParseActivation(c.activation);
  actor = register_module("actor", Mlp(obs_dim, c.hidden, logits, 0.01, act));
  critic = register_module("critic", Mlp(critic_dim, c.hidden, 1, 1.0, act));
  if (num_costs > 0)
    cost_critic = register_module("cost_critic", Mlp(critic_dim, c.hidden, num_costs, 1.0, act));
}

PpoAgent::PpoAgent(int obs_dim, int critic_dim, std::vector<int64_t> nvec, int num_envs,
                   const PpoConfig& config, uint64_t seed, int64_t planned_updates, int num_costs)
    : Agent(obs_dim, DeriveKey(seed, 0x70706f)),
      obs_dim_(obs_dim),
      critic_dim_(critic_dim),
      num_costs_(config.cost_critic ? num_costs : 0),
      nvec_(std::move(nvec)),
      config_(config),
      critic_rms_(critic_dim),
      reward_scaler_(num_envs, config.gamma),
      planned_updates_(std::max<int64_t>(1, planned_updates)),
      num_envs_(num_envs),
      buffer_(num_envs, obs_dim, critic_dim, static_cast<int>(nvec_.size()),
              static_cast<int>(std::accumulate(nvec_.begin(), nvec_.end(), int64_t{0})),
              config.gamma, config.gae_lambda, num_costs_) {
  for (int64_t n : nvec_) mask_width_ += static_cast<int>(n);
  if (config_.imitation_kl_coef > 0 && config_.imitation_fraction <= 0)
    throw std::invalid_argument(
        "ppo.imitation_kl_coef needs an imitation phase to stay near (imitation_fraction > 0)");
  if (config_.imitation_smoothing > 0 && config_.imitation_fraction <= 0)
    throw std::invalid_argument(
        "ppo.imitation_smoothing needs an imitation phase to smooth (imitation_fraction > 0)");
  if (config_.imitation_fraction > 0)
    imitation_updates_ = std::max<int64_t>(
        1, std::llround(config_.imitation_fraction * static_cast<double>(planned_updates_)));
  torch::manual_seed(seed);
  net_ = ActorCritic(obs_dim, critic_dim, mask_width_, config_, num_costs_);
  // One flat parameter/gradient buffer: an Adam step and the gradient-norm clip are a handful
  // of tensor operations instead of several per layer tensor (same update as torch.optim.Adam).
  optimizer_ = std::make_unique<FlatAdam>(net_->parameters(), config_.learning_rate, 1e-5);
}

torch::Tensor PpoAgent::Uniforms(int64_t rows, int64_t cols) {
  torch::Tensor u = torch::empty({rows, cols}, torch::kFloat32);
  float* p = u.data_ptr<float>();
  for (int64_t k = 0; k < rows * cols; ++k) p[k] = static_cast<float>(ToUniform(NextBits()));
  return u;
}

void PpoAgent::NormalizeObs(const float* in, int n, float* out) const {
  if (config_.normalize_obs)
    obs_rms_.Normalize(in, n, out);
  else
    std::copy(in, in + static_cast<size_t>(n) * obs_dim_, out);
}

void PpoAgent::NormalizeCritic(const float* in, int n, float* out) const {
  if (config_.normalize_obs)
    critic_rms_.Normalize(in, n, out);
  else
    std::copy(in, in + static_cast<size_t>(n) * critic_dim_, out);
}

void PpoAgent::DoAct(const float* obs, const uint8_t* masks, int n, bool deterministic,
                     int32_t* actions) {
  torch::InferenceMode guard;
  scratch_obs_.resize(static_cast<size_t>(n) * obs_dim_);
  NormalizeObs(obs, n, scratch_obs_.data());
  const torch::Tensor x = torch::from_blob(scratch_obs_.data(), {n, obs_dim_});
  const torch::Tensor m =
      torch::from_blob(const_cast<uint8_t*>(masks), {n, mask_width_}, torch::kUInt8);
  const MultiCategorical dist(net_->actor->forward(x), nvec_, m);
  const torch::Tensor a =
      (deterministic ? dist.Mode() : dist.Sample(Uniforms(n, static_cast<int64_t>(nvec_.size()))))
          .to(torch::kInt32)
          .contiguous();
  std::copy(a.data_ptr<int32_t>(), a.data_ptr<int32_t>() + a.numel(), actions);
}

namespace {

/// Log-softmax of one action component's k logits into lp, masked entries set to -1e8 first
/// (MultiCategorical's convention): the sampling path and the fused update share it.
/// exp(x), skipping the call where the result underflows to exactly +0 (x < -745.2): masked
/// entries sit at -1e8, and libm's underflow path is slow.
inline double ExpOrZero(double x) {
  return x < -750 ? 0.0 : std::exp(x);
}

void MaskedLogSoftmax(const float* z, const uint8_t* mask, int64_t k, double* lp) {
  double mx = -1e300;
  for (int64_t v = 0; v < k; ++v) {
    lp[v] = mask[v] ? z[v] : -1e8;
    mx = std::max(mx, lp[v]);
  }
  double sum = 0;
  for (int64_t v = 0; v < k; ++v) sum += ExpOrZero(lp[v] - mx);
  const double log_z = mx + std::log(sum);
  for (int64_t v = 0; v < k; ++v) lp[v] -= log_z;
}

/// Masked sampling from logits in plain C++ (small batches: cheaper than a chain of tensor ops).
/// Same maths as MultiCategorical: masked logits -> log-softmax per component -> inverse CDF.
void SampleRows(const float* logits, const uint8_t* masks, int64_t n,
                const std::vector<int64_t>& nvec, int64_t width, const float* uniforms,
                int32_t* actions, float* log_probs) {
  const int64_t dims = static_cast<int64_t>(nvec.size());
  std::vector<double> lp;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits + i * width;
    const uint8_t* mask = masks + i * width;
    double total_lp = 0;
    int64_t off = 0;
    for (int64_t d = 0; d < dims; ++d) {
      const int64_t k = nvec[d];
      lp.resize(k);
      MaskedLogSoftmax(row + off, mask + off, k, lp.data());
      const double u = uniforms[i * dims + d];
      double cdf = 0;
      int64_t pick = -1, best = 0;
      for (int64_t v = 0; v < k; ++v) {
        if (lp[v] > lp[best]) best = v;
        cdf += ExpOrZero(lp[v]);
        if (pick < 0 && cdf > u) pick = v;
      }
      if (pick < 0 || !mask[off + pick]) pick = best;  // rounding at the top end
      actions[i * dims + d] = static_cast<int32_t>(pick);
      total_lp += lp[pick];
      off += k;
    }
    log_probs[i] = static_cast<float>(total_lp);
  }
}

/// Log-probabilities of given actions under masked logits (the imitation phase records the
/// baseline's decisions with the probability the current policy gives them).
void LogProbRows(const float* logits, const uint8_t* masks, int64_t n,
                 const std::vector<int64_t>& nvec, int64_t width, const int32_t* actions,
                 float* log_probs) {
  const int64_t dims = static_cast<int64_t>(nvec.size());
  std::vector<double> lp(static_cast<size_t>(width));
  for (int64_t i = 0; i < n; ++i) {
    double total = 0;
    int64_t off = 0;
    for (int64_t d = 0; d < dims; ++d) {
      MaskedLogSoftmax(logits + i * width + off, masks + i * width + off, nvec[d], &lp[off]);
      total += lp[off + actions[i * dims + d]];
      off += nvec[d];
    }
    log_probs[i] = static_cast<float>(total);
  }
}

/// max(a, b)'s derivative share for a: torch's max splits ties.
inline double MaxWeight(double a, double b) {
  return a > b ? 1.0 : a == b ? 0.5 : 0.0;
}

/// One row's value loss and its derivative in v: 0.5 (v - R)^2, or with clipping 0.5 max((v -
/// R)^2, (v_clip - R)^2), v_clip = old + clamp(v - old, -eps, eps) (clamp passes the gradient
/// inside the closed range).
struct ValueTerm {
  double loss, grad;
};
ValueTerm ValueLoss(double v, double ret, double old_v, bool clip, double eps) {
  if (!clip) return {0.5 * (v - ret) * (v - ret), v - ret};
  const double diff = v - old_v;
  const double vc = old_v + std::clamp(diff, -eps, eps);
  const double l1 = (v - ret) * (v - ret), l2 = (vc - ret) * (vc - ret);
  const double wa = MaxWeight(l1, l2);
  const bool in_range = diff >= -eps && diff <= eps;
  return {0.5 * std::max(l1, l2), wa * (v - ret) + (1 - wa) * (in_range ? vc - ret : 0.0)};
}

/// 1 - Var(y - v) / Var(y), unbiased variances as torch.var (0 when y is constant).
double ExplainedVariance(const std::vector<float>& y, const std::vector<float>& v) {
  const size_t s = y.size();
  if (s == 0) return 0.0;
  double my = 0, md = 0;
  for (size_t i = 0; i < s; ++i) my += y[i], md += y[i] - v[i];
  my /= s, md /= s;
  double vy = 0, vd = 0;
  for (size_t i = 0; i < s; ++i)
    vy += (y[i] - my) * (y[i] - my), vd += (y[i] - v[i] - md) * (y[i] - v[i] - md);
  return vy == 0 ? 0.0 : 1.0 - vd / vy;
}

}  // namespace

void PpoAgent::ActForTraining(const float* obs, const float* critic_obs, const uint8_t* masks,
                              int n, int32_t* actions, float* log_probs, float* values,
                              float* norm_obs, float* norm_critic, const int32_t* given) {
  if (config_.normalize_obs) {
    obs_rms_.Update(obs, n);
    if (critic_obs != obs || critic_dim_ != obs_dim_) critic_rms_.Update(critic_obs, n);
  }
  NormalizeObs(obs, n, norm_obs);
  if (critic_obs == obs && critic_dim_ == obs_dim_ && !config_.normalize_obs)
    std::copy(norm_obs, norm_obs + static_cast<size_t>(n) * obs_dim_, norm_critic);
  else if (critic_obs == obs && critic_dim_ == obs_dim_)
    obs_rms_.Normalize(critic_obs, n, norm_critic);
  else
    NormalizeCritic(critic_obs, n, norm_critic);
  // Plain Eigen forward passes (MlpImpl::ForwardFast): at acting batch sizes LibTorch's
  // per-operation overhead costs more than the arithmetic.
  logits_.resize(static_cast<size_t>(n) * mask_width_);
  net_->actor->ForwardFast(norm_obs, n, logits_.data());
  net_->critic->ForwardFast(norm_critic, n, values);
  const int64_t dims = static_cast<int64_t>(nvec_.size());
  if (given != nullptr) {
    std::copy(given, given + static_cast<size_t>(n) * dims, actions);
    LogProbRows(logits_.data(), masks, n, nvec_, mask_width_, actions, log_probs);
    return;
  }
  uniforms_.resize(static_cast<size_t>(n) * dims);
  for (auto& u : uniforms_) u = static_cast<float>(ToUniform(NextBits()));
  SampleRows(logits_.data(), masks, n, nvec_, mask_width_, uniforms_.data(), actions, log_probs);
}

void PpoAgent::DoActAndRecord(const AgentBatch& b, int32_t* actions) {
  const int n = b.n, dims = static_cast<int>(nvec_.size());
  step_log_probs_.resize(n), step_values_.resize(n);
  step_obs_.resize(static_cast<size_t>(n) * obs_dim_);
  step_critic_.resize(static_cast<size_t>(n) * critic_dim_);
  ActForTraining(b.obs, b.critic_obs, b.masks, n, actions, step_log_probs_.data(),
                 step_values_.data(), step_obs_.data(), step_critic_.data(),
                 wants_demonstrations() ? b.demonstrations : nullptr);
  if (num_costs_ > 0) {
    step_cost_values_.resize(static_cast<size_t>(n) * num_costs_);
    net_->cost_critic->ForwardFast(step_critic_.data(), n, step_cost_values_.data());
  }
  for (int i = 0; i < n; ++i)
    if (b.acting[i])
      buffer_.Open(
          i, &step_obs_[static_cast<size_t>(i) * obs_dim_],
          &step_critic_[static_cast<size_t>(i) * critic_dim_],
          b.masks + static_cast<size_t>(i) * mask_width_, actions + static_cast<size_t>(i) * dims,
          step_log_probs_[i], step_values_[i],
          num_costs_ > 0 ? &step_cost_values_[static_cast<size_t>(i) * num_costs_] : nullptr);
}

void PpoAgent::DoObserve(const AgentFeedback& f) {
  const int n = f.n;
  step_rewards_.assign(f.rewards, f.rewards + n);
  step_done_.resize(n);
  bool any_truncated = false;
  for (int i = 0; i < n; ++i) {
    step_done_[i] = f.terminated[i] || f.truncated[i];
    any_truncated |= f.truncated[i] != 0;
  }
  ScaleRewards(step_rewards_.data(), step_done_.data(), n);
  const size_t k = static_cast<size_t>(num_costs_);
  if (num_costs_ > 0) {
    // Costs share the rewards' scale (normalize_reward), so lambda prices them alike.
    const double scale = config_.normalize_reward ? reward_scaler_.last_scale() : 1.0;
    step_costs_.resize(n * k);
    for (size_t j = 0; j < n * k; ++j) {
      if (!std::isfinite(f.costs[j]))
        throw NonFiniteError(fmt::format("cost (instance {})", j / k), f.costs[j]);
      step_costs_[j] = static_cast<float>(f.costs[j] * scale);
    }
    cost_weights_.assign(f.cost_weights, f.cost_weights + k);
  }
  for (int i = 0; i < n; ++i)
    buffer_.AddReward(i, step_rewards_[i], num_costs_ > 0 ? &step_costs_[i * k] : nullptr);
  final_values_.assign(n, 0.0f);
  final_cost_values_.assign(n * k, 0.0f);
  if (any_truncated) {  // time-limit bootstrap
    Values(f.final_critic_obs, n, final_values_.data());
    if (num_costs_ > 0) CostValues(f.final_critic_obs, n, final_cost_values_.data());
  }
  for (int i = 0; i < n; ++i)
    if (step_done_[i])
      buffer_.EndEpisode(i, f.truncated[i], final_values_[i],
                         num_costs_ > 0 ? &final_cost_values_[i * k] : nullptr);
  ++steps_in_rollout_;
}

UpdateStats PpoAgent::DoMaybeUpdate(const AgentBatch& current) {
  if (steps_in_rollout_ < config_.num_steps) return {};
  std::vector<float> last(current.n), last_cost(static_cast<size_t>(current.n) * num_costs_);
  Values(current.critic_obs, current.n, last.data());
  if (num_costs_ > 0) CostValues(current.critic_obs, current.n, last_cost.data());
  buffer_.Finish(last.data(), num_costs_ > 0 ? last_cost.data() : nullptr);
  const double progress = std::min(1.0, static_cast<double>(updates_) / planned_updates_);
  UpdateStats stats = Update(buffer_, progress, cost_weights_.data());
  buffer_.Clear();
  steps_in_rollout_ = 0;
  return stats;
}

const float* PpoAgent::NormalizedCriticInput(const float* critic_obs, int n) {
  scratch_critic_.resize(static_cast<size_t>(n) * critic_dim_);
  if (config_.normalize_obs && critic_dim_ == obs_dim_ && !config_.centralized_critic)
    obs_rms_.Normalize(critic_obs, n, scratch_critic_.data());
  else
    NormalizeCritic(critic_obs, n, scratch_critic_.data());
  return scratch_critic_.data();
}

void PpoAgent::Values(const float* critic_obs, int n, float* out) {
  net_->critic->ForwardFast(NormalizedCriticInput(critic_obs, n), n, out);
}

void PpoAgent::CostValues(const float* critic_obs, int n, float* out) {
  LT_CHECK(num_costs_ > 0);
  net_->cost_critic->ForwardFast(NormalizedCriticInput(critic_obs, n), n, out);
}

void PpoAgent::ScaleRewards(float* rewards, const uint8_t* done, int n) {
  if (config_.normalize_reward) reward_scaler_.Scale(rewards, done, n);
}

PpoAgent::MinibatchLosses PpoAgent::MinibatchGradAutograd(int64_t m, float* log_ratio_out) {
  MinibatchBuffers& g = minibatch_;
  const int64_t dims = static_cast<int64_t>(nvec_.size());
  auto f32 = [](std::vector<float>& v, std::vector<int64_t> shape) {
    return torch::from_blob(v.data(), shape);
  };
  const torch::Tensor obs = f32(g.obs, {m, obs_dim_});
  const torch::Tensor critic_obs = f32(g.critic, {m, critic_dim_});
  const torch::Tensor masks = torch::from_blob(g.masks.data(), {m, mask_width_}, torch::kUInt8);
  const torch::Tensor actions = torch::from_blob(g.actions.data(), {m, dims}, torch::kLong);
  const torch::Tensor adv = f32(g.adv, {m}), ret = f32(g.returns, {m});
  const MultiCategorical dist(net_->actor->forward(obs), nvec_, masks);
  const torch::Tensor new_logp = dist.LogProb(actions);
  const torch::Tensor entropy = dist.Entropy();
  const torch::Tensor new_value = net_->critic->forward(critic_obs).squeeze(1);
  const torch::Tensor log_ratio = new_logp - f32(g.old_logp, {m});
  std::copy_n(log_ratio.data_ptr<float>(), m, log_ratio_out);
  const torch::Tensor ratio = log_ratio.exp();
  // Imitation: the actor's loss is the cross-entropy of the demonstrated actions, no entropy
  // bonus (the critics learn as usual: the rollout is the baseline's own).
  // With imitation_smoothing eps the target per component is (1 - eps) on the demonstrated
  // action plus eps / K on each of its K allowed values: -sum_v t_v log p_v.
  torch::Tensor pg_loss;
  if (wants_demonstrations() && config_.imitation_smoothing > 0) {
    const torch::Tensor& lps = dist.log_probs();  // [m, dims, width]
    const int64_t width = lps.size(2);
    torch::Tensor target = torch::zeros({m, dims, width});
    float* t = target.data_ptr<float>();
    const double eps = config_.imitation_smoothing;
    for (int64_t r = 0; r < m; ++r) {
      int64_t off = 0;
      for (int64_t d = 0; d < dims; ++d) {
        const uint8_t* mk = &g.masks[r * mask_width_ + off];
        int64_t allowed = 0;
        for (int64_t v = 0; v < nvec_[d]; ++v) allowed += mk[v] != 0;
        float* td = t + (r * dims + d) * width;
        for (int64_t v = 0; v < nvec_[d]; ++v)
          if (mk[v]) td[v] = static_cast<float>(eps / static_cast<double>(allowed));
        td[g.actions[r * dims + d]] += static_cast<float>(1 - eps);
        off += nvec_[d];
      }
    }
    pg_loss = -(target * lps).sum({1, 2}).mean();
  } else {
    pg_loss = wants_demonstrations()
                  ? -new_logp.mean()
                  : torch::max(-adv * ratio,
                               -adv * ratio.clamp(1 - config_.clip_coef, 1 + config_.clip_coef))
                        .mean();
  }
  torch::Tensor v_loss;
  if (config_.clip_vloss) {
    const torch::Tensor old_v = f32(g.old_values, {m});
    const torch::Tensor clipped =
        old_v + (new_value - old_v).clamp(-config_.clip_coef, config_.clip_coef);
    v_loss = 0.5 * torch::max((new_value - ret).pow(2), (clipped - ret).pow(2)).mean();
  } else {
    v_loss = 0.5 * (new_value - ret).pow(2).mean();
  }
  const torch::Tensor entropy_loss = entropy.mean();
  const double ent_coef = wants_demonstrations() ? 0.0 : config_.ent_coef;
  torch::Tensor loss = pg_loss - ent_coef * entropy_loss + config_.vf_coef * v_loss;
  double anchor_kl = 0;
  if (anchor_ && !wants_demonstrations()) {
    // KL(anchor || policy) summed over the components, mean over the rows.
    torch::Tensor anchor_lp;
    {
      torch::NoGradGuard no_grad;
      anchor_lp = MultiCategorical(anchor_->forward(obs), nvec_, masks).log_probs();
    }
    const torch::Tensor kl = (anchor_lp.exp() * (anchor_lp - dist.log_probs())).sum({1, 2}).mean();
    loss = loss + config_.imitation_kl_coef * kl;
    anchor_kl = kl.item<double>();
  }
  double cost_value_loss = 0;
  if (num_costs_ > 0) {
    // The cost critic's loss, the value loss's rules per output, summed over the outputs.
    const int64_t k = num_costs_;
    const torch::Tensor cv = net_->cost_critic->forward(critic_obs);
    const torch::Tensor cret = f32(g.cost_returns, {m, k});
    torch::Tensor c_loss;
    if (config_.clip_vloss) {
      const torch::Tensor old_cv = f32(g.old_cost_values, {m, k});
      const torch::Tensor clipped =
          old_cv + (cv - old_cv).clamp(-config_.clip_coef, config_.clip_coef);
      c_loss = 0.5 * torch::max((cv - cret).pow(2), (clipped - cret).pow(2)).sum(1).mean();
    } else {
      c_loss = 0.5 * (cv - cret).pow(2).sum(1).mean();
    }
    loss = loss + config_.vf_coef * c_loss;
    cost_value_loss = c_loss.item<double>();
  }
  CheckFinite("loss", loss.item<double>());
  loss.backward();
  double matches = 0;
  if (wants_demonstrations()) matches = (dist.Mode() == actions).all(1).sum().item<double>();
  return {pg_loss.item<double>(),
          v_loss.item<double>(),
          entropy_loss.item<double>(),
          cost_value_loss,
          matches,
          anchor_kl};
}

PpoAgent::MinibatchLosses PpoAgent::MinibatchGradFused(int64_t m, float* log_ratio_out) {
  // The loss of MinibatchGradAutograd and its gradient by hand. Per row r with advantage A,
  // ratio rho = exp(logp - old_logp), masked log-softmax p = softmax per action component:
  //   policy  max(-A rho, -A clip(rho)): d/d rho = -A where the unclipped term is the larger or
  //           rho is inside the clip range (torch's max splits ties, clamp passes inside the
  //           closed range), else 0; d logp / d z_v = 1[v = a] - p_v;
  //   entropy H_d = -sum p log p: dH_d / d z_v = -p_v (log p_v + H_d);
  //   value   0.5 max((v - R)^2, (v_clip - R)^2), same tie and clamp rules;
  // each averaged over the m rows; masked logits get no gradient (masked_fill).
  MinibatchBuffers& g = minibatch_;
  const int64_t dims = static_cast<int64_t>(nvec_.size()), w = mask_width_;
  const double eps = config_.clip_coef, inv_m = 1.0 / static_cast<double>(m);
  g.logits.resize(static_cast<size_t>(m * w));
  g.values.resize(m);
  g.dlogits.assign(static_cast<size_t>(m * w), 0.0f);
  g.dvalues.resize(m);
  net_->actor->ForwardTrain(g.obs.data(), m, g.logits.data());
  net_->critic->ForwardTrain(g.critic.data(), m, g.values.data());
  // the loss carries -ent_coef * mean(H); imitation: none, and the actor's loss is -mean(logp)
  // of the demonstrated actions (d/dz_v = -(1[v = a] - p_v) / m)
  const double d_ent = wants_demonstrations() ? 0.0 : config_.ent_coef * inv_m;
  // After the imitation phase, KL(anchor || policy) = sum_d sum_v q_v (log q_v - log p_v) with
  // the anchor's masked softmax q: d/dz_v = kl_coef (p_v - q_v) / m.
  const bool anchored = anchor_ && !wants_demonstrations();
  if (anchored) {
    g.anchor_logits.resize(static_cast<size_t>(m * w));
    anchor_->ForwardFast(g.obs.data(), m, g.anchor_logits.data());
  }
  const double d_kl = config_.imitation_kl_coef * inv_m;
  MinibatchLosses out;
  std::vector<double> lp(static_cast<size_t>(w)), p(static_cast<size_t>(w));
  std::vector<double> alp(anchored ? static_cast<size_t>(w) : 0);
  std::vector<double> comp_h(static_cast<size_t>(dims));
  // imitation_smoothing: per component the target (1 - eps) 1[v = a] + eps / K over the K
  // allowed values; the loss -sum_v t_v log p_v, its derivative d/dz_v = -(t_v - p_v) / m
  const double smooth = wants_demonstrations() ? config_.imitation_smoothing : 0.0;
  std::vector<int64_t> allowed(static_cast<size_t>(dims));
  for (int64_t r = 0; r < m; ++r) {
    const float* z = &g.logits[r * w];
    const uint8_t* mask = &g.masks[r * w];
    double logp = 0, h = 0, smooth_ll = 0;
    bool greedy_match = true;
    int64_t off = 0;
    for (int64_t d = 0; d < dims; ++d) {
      const int64_t k = nvec_[d];
      MaskedLogSoftmax(z + off, mask + off, k, &lp[off]);
      double hd = 0;
      int64_t best = off;
      for (int64_t v = off; v < off + k; ++v) {
        p[v] = ExpOrZero(lp[v]);
        if (p[v] > 0) hd -= p[v] * lp[v];
        if (lp[v] > lp[best]) best = v;
      }
      comp_h[d] = hd, h += hd;
      if (anchored) {
        MaskedLogSoftmax(&g.anchor_logits[r * w + off], mask + off, k, &alp[off]);
        for (int64_t v = off; v < off + k; ++v) {
          const double q = ExpOrZero(alp[v]);
          if (q > 0) out.anchor_kl += q * (alp[v] - lp[v]);
        }
      }
      logp += lp[off + g.actions[r * dims + d]];
      if (smooth > 0) {
        allowed[d] = 0;
        double sum_lp = 0;
        for (int64_t v = off; v < off + k; ++v)
          if (mask[v]) ++allowed[d], sum_lp += lp[v];
        smooth_ll += (1 - smooth) * lp[off + g.actions[r * dims + d]] +
                     smooth * sum_lp / static_cast<double>(allowed[d]);
      }
      greedy_match &= best == off + g.actions[r * dims + d];
      off += k;
    }
    out.matches += greedy_match;
    const float log_ratio = static_cast<float>(logp) - g.old_logp[r];
    log_ratio_out[r] = log_ratio;
    const double rho = std::exp(static_cast<double>(log_ratio)), a = g.adv[r];
    double d_logp;
    if (wants_demonstrations()) {
      out.policy -= smooth > 0 ? smooth_ll : logp;
      out.entropy += h;
      d_logp = -inv_m;
    } else {
      const double rho_c = std::clamp(rho, 1 - eps, 1 + eps);
      const double t1 = -a * rho, t2 = -a * rho_c;
      out.policy += std::max(t1, t2), out.entropy += h;
      const double w1 = MaxWeight(t1, t2);
      const bool inside = rho >= 1 - eps && rho <= 1 + eps;
      d_logp = -a * (w1 + (1 - w1) * (inside ? 1.0 : 0.0)) * rho * inv_m;
    }
    float* dz = &g.dlogits[r * w];
    off = 0;
    for (int64_t d = 0; d < dims; ++d) {
      const int64_t k = nvec_[d], act = off + g.actions[r * dims + d];
      for (int64_t v = off; v < off + k; ++v) {
        if (!mask[v]) continue;
        const double ent_term = p[v] > 0 ? p[v] * (lp[v] + comp_h[d]) : 0.0;
        const double kl_term = anchored ? d_kl * (p[v] - ExpOrZero(alp[v])) : 0.0;
        // smoothed imitation: the one-hot target becomes (1 - eps) 1[v = a] + eps / K
        const double target =
            smooth > 0 ? (v == act ? 1 - smooth : 0.0) + smooth / static_cast<double>(allowed[d])
                       : (v == act ? 1.0 : 0.0);
        dz[v] = static_cast<float>(d_logp * (target - p[v]) + d_ent * ent_term + kl_term);
      }
      off += k;
    }
    // Value.
    const ValueTerm vt =
        ValueLoss(g.values[r], g.returns[r], g.old_values[r], config_.clip_vloss, eps);
    out.value += vt.loss;
    g.dvalues[r] = static_cast<float>(config_.vf_coef * vt.grad * inv_m);
  }
  if (num_costs_ > 0) {
    // The cost critic: per output the value loss's rules, summed over outputs, mean over rows.
    const int64_t k = num_costs_;
    g.cost_values.resize(static_cast<size_t>(m * k));
    g.dcost.resize(static_cast<size_t>(m * k));
    net_->cost_critic->ForwardTrain(g.critic.data(), m, g.cost_values.data());
    for (int64_t j = 0; j < m * k; ++j) {
      const ValueTerm vt = ValueLoss(g.cost_values[j], g.cost_returns[j], g.old_cost_values[j],
                                     config_.clip_vloss, eps);
      out.cost_value += vt.loss;
      g.dcost[j] = static_cast<float>(config_.vf_coef * vt.grad * inv_m);
    }
    out.cost_value *= inv_m;
    net_->cost_critic->BackwardTrain(g.dcost.data(), m);
  }
  out.policy *= inv_m, out.value *= inv_m, out.entropy *= inv_m, out.anchor_kl *= inv_m;
  net_->actor->BackwardTrain(g.dlogits.data(), m);
  net_->critic->BackwardTrain(g.dvalues.data(), m);
  return out;
}

UpdateStats PpoAgent::Update(const RolloutBuffer& b, double progress, const float* cost_weights) {
  const int64_t s = b.size();
  UpdateStats stats;
  if (s == 0) return stats;
  const Schedule lr_schedule = config_.anneal_lr ? Schedule::Linear(config_.learning_rate, 0.0)
                                                 : Schedule::Constant(config_.learning_rate);
  const double lr = lr_schedule.At(progress);
  optimizer_->set_lr(lr);
  // The update in progress imitates while updates_ (counted at its end) is inside the phase.
  const bool imitating = wants_demonstrations();
  const double ent_coef = imitating ? 0.0 : config_.ent_coef;

  const int64_t mb =
      std::max<int64_t>(1, (s + config_.num_minibatches - 1) / config_.num_minibatches);
  const int dims = b.action_dims();
  // Minibatches are gathered row by row in plain C++ into reused buffers (advantages normalised
  // on the way): a handful of memcpy calls instead of eight index_select and five normalisation
  // tensor operations per minibatch.
  MinibatchBuffers& g = minibatch_;
  g.obs.resize(static_cast<size_t>(mb) * obs_dim_);
  g.critic.resize(static_cast<size_t>(mb) * critic_dim_);
  g.masks.resize(static_cast<size_t>(mb) * mask_width_);
  g.actions.resize(static_cast<size_t>(mb) * dims);
  g.old_logp.resize(mb), g.old_values.resize(mb), g.adv.resize(mb), g.returns.resize(mb);
  const int64_t nc = num_costs_;
  g.old_cost_values.resize(static_cast<size_t>(mb * nc));
  g.cost_returns.resize(static_cast<size_t>(mb * nc));
  // PPO-Lagrangian: the surrogate's advantage is that of the Lagrangian reward, A_r - sum_k
  // lambda_k A_c,k, from the reward and cost critics' own GAE (standardised below with norm_adv).
  std::vector<float> lagrangian_adv;
  if (nc > 0) {
    LT_CHECK(cost_weights != nullptr);
    LT_CHECK_EQ(b.num_costs(), nc);
    lagrangian_adv.resize(s);
    for (int64_t i = 0; i < s; ++i) {
      double a = b.advantages()[i];
      for (int64_t c = 0; c < nc; ++c) a -= cost_weights[c] * b.cost_advantages()[i * nc + c];
      lagrangian_adv[i] = static_cast<float>(a);
    }
  }
  const std::vector<float>& advantages = nc > 0 ? lagrangian_adv : b.advantages();
  std::vector<int64_t> order(s);
  double pg_sum = 0, v_sum = 0, ent_sum = 0, norm_sum = 0, kl = 0, old_kl = 0, clip_sum = 0;
  double cv_sum = 0, matches = 0, rows = 0, anchor_kl_sum = 0;
  int steps = 0;
  bool stop = false;
  for (int epoch = 0; epoch < config_.update_epochs && !stop; ++epoch) {
    // Fisher-Yates shuffle from the agent's counter-based stream.
    std::iota(order.begin(), order.end(), 0);
    for (int64_t k = s - 1; k > 0; --k)
      std::swap(order[k], order[NextBits() % static_cast<uint64_t>(k + 1)]);
    for (int64_t start = 0; start < s; start += mb) {
      const int64_t m = std::min(s, start + mb) - start;
      double adv_mean = 0;
      for (int64_t r = 0; r < m; ++r) {
        const int64_t i = order[start + r];
        std::copy_n(&b.obs()[i * obs_dim_], obs_dim_, &g.obs[r * obs_dim_]);
        std::copy_n(&b.critic_obs()[i * critic_dim_], critic_dim_, &g.critic[r * critic_dim_]);
        std::copy_n(&b.masks()[i * mask_width_], mask_width_, &g.masks[r * mask_width_]);
        for (int d = 0; d < dims; ++d) g.actions[r * dims + d] = b.actions()[i * dims + d];
        g.old_logp[r] = b.log_probs()[i], g.old_values[r] = b.values()[i];
        g.adv[r] = advantages[i], g.returns[r] = b.returns()[i];
        if (nc > 0) {
          std::copy_n(&b.cost_values()[i * nc], nc, &g.old_cost_values[r * nc]);
          std::copy_n(&b.cost_returns()[i * nc], nc, &g.cost_returns[r * nc]);
        }
        adv_mean += g.adv[r];
      }
      if (config_.norm_adv && m > 1) {
        // (adv - mean) / (std + 1e-8), unbiased std as torch.std.
        adv_mean /= static_cast<double>(m);
        double ss = 0;
        for (int64_t r = 0; r < m; ++r) ss += (g.adv[r] - adv_mean) * (g.adv[r] - adv_mean);
        const double sd = std::sqrt(ss / static_cast<double>(m - 1));
        for (int64_t r = 0; r < m; ++r)
          g.adv[r] = static_cast<float>((g.adv[r] - adv_mean) / (sd + 1e-8));
      }
      g.log_ratio.resize(m);
      optimizer_->ZeroGrad();
      const MinibatchLosses l = config_.fused_update ? MinibatchGradFused(m, g.log_ratio.data())
                                                     : MinibatchGradAutograd(m, g.log_ratio.data());
      {
        // Diagnostics in plain C++ from the log-ratios (CleanRL's old/new approx KL, clipfrac).
        const float* lr = g.log_ratio.data();
        double k_old = 0, k_new = 0, clipped = 0;
        for (int64_t r = 0; r < m; ++r) {
          const double rt = std::exp(static_cast<double>(lr[r]));
          k_old += -lr[r], k_new += (rt - 1) - lr[r];
          clipped += std::abs(rt - 1.0) > config_.clip_coef;
        }
        old_kl = k_old / m, kl = k_new / m;
        clip_sum += clipped / m;
      }
      CheckFinite("loss", l.policy - ent_coef * l.entropy +
                              config_.vf_coef * (l.value + l.cost_value) +
                              config_.imitation_kl_coef * l.anchor_kl);
      const double norm = optimizer_->ClipGradNorm(config_.max_grad_norm);
      CheckFinite("gradient norm", norm);
      optimizer_->Step();
      pg_sum += l.policy, v_sum += l.value, ent_sum += l.entropy, norm_sum += norm;
      cv_sum += l.cost_value, anchor_kl_sum += l.anchor_kl;
      if (epoch + 1 == config_.update_epochs) matches += l.matches, rows += m;
      ++steps;
    }
    // (the imitation phase runs every epoch: its steps are not PPO's trust-region steps)
    if (config_.target_kl > 0 && kl > config_.target_kl && !imitating) stop = true;
  }
  const bool anchored = anchor_ && !imitating;
  ++updates_;
  if (imitating && updates_ == imitation_updates_ && config_.imitation_kl_coef > 0)
    MakeAnchor();  // the phase's last update: the policy to stay near from now on
  stats["losses/explained_variance"] = ExplainedVariance(b.returns(), b.values());
  stats["charts/learning_rate"] = lr;
  stats["losses/policy_loss"] = pg_sum / steps;
  stats["losses/value_loss"] = v_sum / steps;
  stats["losses/entropy"] = ent_sum / steps;
  stats["losses/approx_kl"] = kl;
  stats["losses/old_approx_kl"] = old_kl;
  stats["losses/clipfrac"] = clip_sum / steps;
  stats["losses/grad_norm"] = norm_sum / steps;
  if (anchored) stats["losses/anchor_kl"] = anchor_kl_sum / steps;
  if (imitating) {
    // The actor's cross-entropy on the baseline's actions, and how often its greedy action is
    // the baseline's (before each row's last step of the last epoch).
    stats["losses/imitation_loss"] = pg_sum / steps;
    stats["losses/imitation_accuracy"] = rows > 0 ? matches / rows : 0.0;
  }
  if (nc > 0) {
    stats["losses/cost_value_loss"] = cv_sum / steps;
    double mean_adv_c = 0;
    for (float a : b.cost_advantages()) mean_adv_c += a;
    stats["losses/cost_advantage"] = mean_adv_c / static_cast<double>(b.cost_advantages().size());
    // Explained variance of the cost values, over every channel.
    stats["losses/cost_explained_variance"] = ExplainedVariance(b.cost_returns(), b.cost_values());
  }
  return stats;
}

void PpoAgent::SaveState(torch::serialize::OutputArchive& archive) const {
  torch::serialize::OutputArchive net, opt;
  net_->save(net);
  optimizer_->Save(opt);
  archive.write("net", net);
  archive.write("optimizer", opt);
  critic_rms_.Save(archive, "critic_rms");
  reward_scaler_.Save(archive, "reward_scaler");
  archive.write("updates", torch::tensor(updates_));
  StateWriter w;
  w.Put<int32_t>(steps_in_rollout_);
  buffer_.SaveState(w);
  if (num_costs_ > 0) w.PutVector(cost_weights_);
  WriteStateBytes(archive, "rollout", w.bytes());
  if (anchor_) {
    torch::serialize::OutputArchive anchor;
    anchor_->save(anchor);
    archive.write("anchor", anchor);
  }
}

Mlp PpoAgent::NewActorShaped() const {
  return Mlp(obs_dim_, config_.hidden, mask_width_, 0.01, ParseActivation(config_.activation));
}

void PpoAgent::MakeAnchor() {
  anchor_ = NewActorShaped();
  CopyParameters(*net_->actor, *anchor_);
}

void PpoAgent::LoadState(torch::serialize::InputArchive& archive) {
  torch::serialize::InputArchive net, opt;
  archive.read("net", net);
  archive.read("optimizer", opt);
  {
    // Loading replaces a module's parameter storage; copy into the optimiser's flat views.
    ActorCritic loaded(obs_dim_, critic_dim_, mask_width_, config_, num_costs_);
    loaded->load(net);
    CopyParameters(*loaded, *net_);
  }
  optimizer_->Load(opt);
  critic_rms_.Load(archive, "critic_rms");
  reward_scaler_.Load(archive, "reward_scaler");
  torch::Tensor t;
  archive.read("updates", t);
  updates_ = t.item<int64_t>();
  const std::string rollout = ReadStateBytes(archive, "rollout");
  StateReader r(rollout.data(), rollout.size());
  steps_in_rollout_ = r.Get<int32_t>();
  buffer_.LoadState(r);
  if (num_costs_ > 0) r.GetVector(&cost_weights_);
  anchor_ = nullptr;
  if (config_.imitation_kl_coef > 0 && imitation_updates_ > 0 && updates_ >= imitation_updates_) {
    torch::serialize::InputArchive anchor;
    archive.read("anchor", anchor);
    // Loading replaces a module's parameter storage; copy into the storage the fast forward reads.
    Mlp loaded = NewActorShaped();
    loaded->load(anchor);
    anchor_ = NewActorShaped();
    CopyParameters(*loaded, *anchor_);
  }
}

AgentAlgorithm PpoAlgorithm() {
  return {[] { return std::make_unique<AgentOptionsOf<PpoConfig>>(); },
          [](const AgentSpec& s, const AgentOptions& o) -> std::unique_ptr<Agent> {
            const PpoConfig& c = OptionsAs<PpoConfig>(o);
            const int critic_dim = c.centralized_critic ? s.global_state_dim : s.obs_dim;
            const int64_t planned =
                s.total_steps / (static_cast<int64_t>(c.num_steps) * std::max(1, s.num_envs));
            return std::make_unique<PpoAgent>(s.obs_dim, critic_dim, s.nvec, s.num_envs, c, s.seed,
                                              planned, s.num_costs);
          }};
}

void PpoAgent::OnGroup(Collective* group) {
  optimizer_->set_group(group);
  critic_rms_.TrackForSync();
  reward_scaler_.TrackForSync();
}

void PpoAgent::SyncStatistics(Collective& group) {
  critic_rms_.Sync(group);
  reward_scaler_.Sync(group);
}

void PpoAgent::OnReshard(int from, int to, bool fresh) {
  // The schedules' place: updates so far as if every rank's steps had been this many ranks'.
  updates_ = updates_ * from / to;
  // The rollout in progress is dropped on every rank (a new shard has none to match it).
  buffer_.Clear();
  steps_in_rollout_ = 0;
  critic_rms_.RevertToSynced();
  reward_scaler_.Reshard(fresh);
}

}  // namespace loantwin
