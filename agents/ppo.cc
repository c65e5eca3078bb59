#include "agents/ppo.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "agents/agent_registry.h"
#include "agents/distributions.h"
#include "agents/module_util.h"
#include "agents/numerics.h"
#include "agents/schedule.h"
#include "core/counter_rng.h"

namespace loantwin {

ActorCriticImpl::ActorCriticImpl(int64_t obs_dim, int64_t critic_dim, int64_t logits,
                                 const PpoConfig& c) {
  const Activation act = ParseActivation(c.activation);
  actor = register_module("actor", Mlp(obs_dim, c.hidden, logits, 0.01, act));
  critic = register_module("critic", Mlp(critic_dim, c.hidden, 1, 1.0, act));
}

PpoAgent::PpoAgent(int obs_dim, int critic_dim, std::vector<int64_t> nvec, int num_envs,
                   const PpoConfig& config, uint64_t seed, int64_t planned_updates)
    : Agent(obs_dim, DeriveKey(seed, 0x70706f)),
      obs_dim_(obs_dim),
      critic_dim_(critic_dim),
      nvec_(std::move(nvec)),
      config_(config),
      critic_rms_(critic_dim),
      reward_scaler_(num_envs, config.gamma),
      planned_updates_(std::max<int64_t>(1, planned_updates)),
      num_envs_(num_envs),
      buffer_(num_envs, obs_dim, critic_dim, static_cast<int>(nvec_.size()),
              static_cast<int>(std::accumulate(nvec_.begin(), nvec_.end(), int64_t{0})),
              config.gamma, config.gae_lambda) {
  for (int64_t n : nvec_) mask_width_ += static_cast<int>(n);
  torch::manual_seed(seed);
  net_ = ActorCritic(obs_dim, critic_dim, mask_width_, config_);
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

}  // namespace

void PpoAgent::ActForTraining(const float* obs, const float* critic_obs, const uint8_t* masks,
                              int n, int32_t* actions, float* log_probs, float* values,
                              float* norm_obs, float* norm_critic) {
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
                 step_values_.data(), step_obs_.data(), step_critic_.data());
  for (int i = 0; i < n; ++i)
    if (b.acting[i])
      buffer_.Open(i, &step_obs_[static_cast<size_t>(i) * obs_dim_],
                   &step_critic_[static_cast<size_t>(i) * critic_dim_],
                   b.masks + static_cast<size_t>(i) * mask_width_,
                   actions + static_cast<size_t>(i) * dims, step_log_probs_[i], step_values_[i]);
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
  for (int i = 0; i < n; ++i) buffer_.AddReward(i, step_rewards_[i]);
  final_values_.assign(n, 0.0f);
  if (any_truncated) Values(f.final_critic_obs, n, final_values_.data());  // time-limit bootstrap
  for (int i = 0; i < n; ++i)
    if (step_done_[i]) buffer_.EndEpisode(i, f.truncated[i], final_values_[i]);
  ++steps_in_rollout_;
}

UpdateStats PpoAgent::DoMaybeUpdate(const AgentBatch& current) {
  if (steps_in_rollout_ < config_.num_steps) return {};
  std::vector<float> last(current.n);
  Values(current.critic_obs, current.n, last.data());
  buffer_.Finish(last.data());
  const double progress = std::min(1.0, static_cast<double>(updates_) / planned_updates_);
  UpdateStats stats = Update(buffer_, progress);
  buffer_.Clear();
  steps_in_rollout_ = 0;
  return stats;
}

void PpoAgent::Values(const float* critic_obs, int n, float* out) {
  scratch_critic_.resize(static_cast<size_t>(n) * critic_dim_);
  if (config_.normalize_obs && critic_dim_ == obs_dim_ && !config_.centralized_critic)
    obs_rms_.Normalize(critic_obs, n, scratch_critic_.data());
  else
    NormalizeCritic(critic_obs, n, scratch_critic_.data());
  net_->critic->ForwardFast(scratch_critic_.data(), n, out);
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
  const torch::Tensor pg_loss =
      torch::max(-adv * ratio, -adv * ratio.clamp(1 - config_.clip_coef, 1 + config_.clip_coef))
          .mean();
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
  const torch::Tensor loss = pg_loss - config_.ent_coef * entropy_loss + config_.vf_coef * v_loss;
  CheckFinite("loss", loss.item<double>());
  loss.backward();
  return {pg_loss.item<double>(), v_loss.item<double>(), entropy_loss.item<double>()};
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
  const double d_ent = config_.ent_coef * inv_m;  // the loss carries -ent_coef * mean(H)
  auto max_weight = [](double a, double b) { return a > b ? 1.0 : a == b ? 0.5 : 0.0; };
  MinibatchLosses out;
  std::vector<double> lp(static_cast<size_t>(w)), p(static_cast<size_t>(w));
  std::vector<double> comp_h(static_cast<size_t>(dims));
  for (int64_t r = 0; r < m; ++r) {
    const float* z = &g.logits[r * w];
    const uint8_t* mask = &g.masks[r * w];
    double logp = 0, h = 0;
    int64_t off = 0;
    for (int64_t d = 0; d < dims; ++d) {
      const int64_t k = nvec_[d];
      MaskedLogSoftmax(z + off, mask + off, k, &lp[off]);
      double hd = 0;
      for (int64_t v = off; v < off + k; ++v) {
        p[v] = ExpOrZero(lp[v]);
        if (p[v] > 0) hd -= p[v] * lp[v];
      }
      comp_h[d] = hd, h += hd;
      logp += lp[off + g.actions[r * dims + d]];
      off += k;
    }
    const float log_ratio = static_cast<float>(logp) - g.old_logp[r];
    log_ratio_out[r] = log_ratio;
    const double rho = std::exp(static_cast<double>(log_ratio)), a = g.adv[r];
    const double rho_c = std::clamp(rho, 1 - eps, 1 + eps);
    const double t1 = -a * rho, t2 = -a * rho_c;
    out.policy += std::max(t1, t2), out.entropy += h;
    const double w1 = max_weight(t1, t2);
    const bool inside = rho >= 1 - eps && rho <= 1 + eps;
    const double d_logp = -a * (w1 + (1 - w1) * (inside ? 1.0 : 0.0)) * rho * inv_m;
    float* dz = &g.dlogits[r * w];
    off = 0;
    for (int64_t d = 0; d < dims; ++d) {
      const int64_t k = nvec_[d], act = off + g.actions[r * dims + d];
      for (int64_t v = off; v < off + k; ++v) {
        if (!mask[v]) continue;
        const double ent_term = p[v] > 0 ? p[v] * (lp[v] + comp_h[d]) : 0.0;
        dz[v] = static_cast<float>(d_logp * ((v == act ? 1.0 : 0.0) - p[v]) + d_ent * ent_term);
      }
      off += k;
    }
    // Value.
    const double v = g.values[r], ret = g.returns[r];
    double dv;
    if (config_.clip_vloss) {
      const double old_v = g.old_values[r], diff = v - old_v;
      const double vc = old_v + std::clamp(diff, -eps, eps);
      const double l1 = (v - ret) * (v - ret), l2 = (vc - ret) * (vc - ret);
      out.value += 0.5 * std::max(l1, l2);
      const double wa = max_weight(l1, l2);
      const bool in_range = diff >= -eps && diff <= eps;
      dv = wa * (v - ret) + (1 - wa) * (in_range ? vc - ret : 0.0);
    } else {
      out.value += 0.5 * (v - ret) * (v - ret);
      dv = v - ret;
    }
    g.dvalues[r] = static_cast<float>(config_.vf_coef * dv * inv_m);
  }
  out.policy *= inv_m, out.value *= inv_m, out.entropy *= inv_m;
  net_->actor->BackwardTrain(g.dlogits.data(), m);
  net_->critic->BackwardTrain(g.dvalues.data(), m);
  return out;
}

UpdateStats PpoAgent::Update(const RolloutBuffer& b, double progress) {
  const int64_t s = b.size();
  UpdateStats stats;
  if (s == 0) return stats;
  const Schedule lr_schedule = config_.anneal_lr ? Schedule::Linear(config_.learning_rate, 0.0)
                                                 : Schedule::Constant(config_.learning_rate);
  const double lr = lr_schedule.At(progress);
  optimizer_->set_lr(lr);

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
  std::vector<int64_t> order(s);
  double pg_sum = 0, v_sum = 0, ent_sum = 0, norm_sum = 0, kl = 0, old_kl = 0, clip_sum = 0;
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
        g.adv[r] = b.advantages()[i], g.returns[r] = b.returns()[i];
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
      CheckFinite("loss", l.policy - config_.ent_coef * l.entropy + config_.vf_coef * l.value);
      const double norm = optimizer_->ClipGradNorm(config_.max_grad_norm);
      CheckFinite("gradient norm", norm);
      optimizer_->Step();
      pg_sum += l.policy, v_sum += l.value, ent_sum += l.entropy, norm_sum += norm;
      ++steps;
    }
    if (config_.target_kl > 0 && kl > config_.target_kl) stop = true;
  }
  ++updates_;
  {
    // Explained variance of the rollout's values, unbiased variances as torch.var.
    const std::vector<float>& y = b.returns();
    const std::vector<float>& v = b.values();
    double my = 0, md = 0;
    for (int64_t i = 0; i < s; ++i) my += y[i], md += y[i] - v[i];
    my /= s, md /= s;
    double vy = 0, vd = 0;
    for (int64_t i = 0; i < s; ++i)
      vy += (y[i] - my) * (y[i] - my), vd += (y[i] - v[i] - md) * (y[i] - v[i] - md);
    stats["losses/explained_variance"] = vy == 0 ? 0.0 : 1.0 - vd / vy;
  }
  stats["charts/learning_rate"] = lr;
  stats["losses/policy_loss"] = pg_sum / steps;
  stats["losses/value_loss"] = v_sum / steps;
  stats["losses/entropy"] = ent_sum / steps;
  stats["losses/approx_kl"] = kl;
  stats["losses/old_approx_kl"] = old_kl;
  stats["losses/clipfrac"] = clip_sum / steps;
  stats["losses/grad_norm"] = norm_sum / steps;
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
  WriteStateBytes(archive, "rollout", w.bytes());
}

void PpoAgent::LoadState(torch::serialize::InputArchive& archive) {
  torch::serialize::InputArchive net, opt;
  archive.read("net", net);
  archive.read("optimizer", opt);
  {
    // Loading replaces a module's parameter storage; copy into the optimiser's flat views.
    ActorCritic loaded(obs_dim_, critic_dim_, mask_width_, config_);
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
}

AgentAlgorithm PpoAlgorithm() {
  return {[] { return std::make_unique<AgentOptionsOf<PpoConfig>>(); },
          [](const AgentSpec& s, const AgentOptions& o) -> std::unique_ptr<Agent> {
            const PpoConfig& c = OptionsAs<PpoConfig>(o);
            const int critic_dim = c.centralized_critic ? s.global_state_dim : s.obs_dim;
            const int64_t planned =
                s.total_steps / (static_cast<int64_t>(c.num_steps) * std::max(1, s.num_envs));
            return std::make_unique<PpoAgent>(s.obs_dim, critic_dim, s.nvec, s.num_envs, c, s.seed,
                                              planned);
          }};
}

}  // namespace loantwin
