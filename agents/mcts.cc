#include "agents/mcts.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/check.h"
#include "core/counter_rng.h"

namespace loantwin {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Gamma(alpha, 1) by Marsaglia and Tsang (alpha < 1 through the alpha + 1 boost).
double SampleGamma(CounterRng& rng, double alpha) {
  if (alpha < 1.0)
    return SampleGamma(rng, alpha + 1.0) * std::pow(rng.Uniform() + 1e-300, 1.0 / alpha);
  const double d = alpha - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (;;) {
    double x, v;
    do {
      x = rng.Normal();
      v = 1.0 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = rng.Uniform();
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (std::log(u + 1e-300) < 0.5 * x * x + d * (1.0 - v + std::log(v))) return d * v;
  }
}

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

}  // namespace

std::vector<int32_t> SequentialHalvingVisits(int num_considered, int num_simulations) {
  std::vector<int32_t> seq;
  seq.reserve(num_simulations);
  if (num_considered <= 1) {
    for (int s = 0; s < num_simulations; ++s) seq.push_back(s);
    return seq;
  }
  const int phases = static_cast<int>(std::ceil(std::log2(num_considered)));
  std::vector<int32_t> visits(num_considered, 0);
  int count = num_considered;
  while (static_cast<int>(seq.size()) < num_simulations) {
    const int extra = std::max(1, num_simulations / (phases * count));
    for (int r = 0; r < extra; ++r)
      for (int i = 0; i < count; ++i) seq.push_back(visits[i]++);
    count = std::max(2, count / 2);
  }
  seq.resize(num_simulations);
  return seq;
}

BatchedMcts::BatchedMcts(int max_envs, int num_actions, int latent_dim, const MctsConfig& config)
    : max_envs_(max_envs),
      num_actions_(num_actions),
      latent_dim_(latent_dim),
      max_nodes_(config.num_simulations + 1),
      config_(config) {
  LT_CHECK_GE(max_envs, 1);
  LT_CHECK_GE(num_actions, 1);
  LT_CHECK_GE(latent_dim, 1);
  LT_CHECK_GE(config.num_simulations, 1);
  const size_t nodes = static_cast<size_t>(max_envs) * max_nodes_;
  visits_.assign(nodes, 0);
  value_sum_.assign(nodes, 0.0f);
  reward_.assign(nodes, 0.0f);
  prior_.assign(nodes * num_actions, 0.0f);
  child_.assign(nodes * num_actions, -1);
  latent_.assign(nodes * latent_dim, 0.0f);
  num_nodes_.assign(max_envs, 0);
  path_.assign(nodes, 0);
  path_len_.assign(max_envs, 0);
  leaf_parent_.assign(max_envs, 0);
  leaf_action_.assign(max_envs, 0);
  masks_.assign(static_cast<size_t>(max_envs) * num_actions, 0);
  logits_root_.assign(static_cast<size_t>(max_envs) * num_actions, 0.0f);
  min_q_.assign(max_envs, 0.0);
  max_q_.assign(max_envs, 0.0);
  gumbel_.assign(static_cast<size_t>(max_envs) * num_actions, 0.0);
  considered_visits_.assign(static_cast<size_t>(max_envs) * config.num_simulations, 0);
  considered_.assign(static_cast<size_t>(max_envs) * num_actions, 0);
  actions_.assign(max_envs, 0);
  root_values_.assign(max_envs, 0.0f);
  net_values_.assign(max_envs, 0.0f);
  policy_.assign(static_cast<size_t>(max_envs) * num_actions, 0.0f);
  batch_latent_.assign(static_cast<size_t>(max_envs) * latent_dim, 0.0f);
  batch_next_.assign(static_cast<size_t>(max_envs) * latent_dim, 0.0f);
  batch_reward_.assign(max_envs, 0.0f);
  batch_value_.assign(max_envs, 0.0f);
  batch_logits_.assign(static_cast<size_t>(max_envs) * num_actions, 0.0f);
  batch_actions_.assign(max_envs, 0);
}

int32_t BatchedMcts::visits(int e, int a) const {
  const int32_t c = Children(e, 0)[a];
  return c < 0 ? 0 : visits_[Node(e, c)];
}

void BatchedMcts::Expand(int e, int k, const float* logits) {
  // Masked softmax: the prior of a masked action is 0, so it is never selected.
  const uint8_t* mask = Mask(e);
  float* prior = Prior(e, k);
  double mx = kNegInf;
  for (int a = 0; a < num_actions_; ++a)
    if (mask[a]) mx = std::max(mx, static_cast<double>(logits[a]));
  double z = 0;
  for (int a = 0; a < num_actions_; ++a) {
    const double p = mask[a] ? std::exp(logits[a] - mx) : 0.0;
    prior[a] = static_cast<float>(p);
    z += p;
  }
  for (int a = 0; a < num_actions_; ++a) prior[a] = static_cast<float>(prior[a] / z);
  std::fill(Children(e, k), Children(e, k) + num_actions_, -1);
}

double BatchedMcts::NodeValue(int e, int k) const {
  const int32_t n = visits_[Node(e, k)];
  return n > 0 ? value_sum_[Node(e, k)] / n : 0.0;
}

double BatchedMcts::ChildQ(int e, int k, int a) const {
  const int32_t c = Children(e, k)[a];
  return reward_[Node(e, c)] + config_.discount * NodeValue(e, c);
}

double BatchedMcts::Normalize(int e, double q) const {
  if (max_q_[e] < min_q_[e]) return q;  // nothing seen yet
  return (q - min_q_[e]) / std::max(max_q_[e] - min_q_[e], config_.min_max_floor);
}

int BatchedMcts::SelectPuct(int e, int k) const {
  const uint8_t* mask = Mask(e);
  const float* prior = Prior(e, k);
  const int32_t* children = Children(e, k);
  const double n = visits_[Node(e, k)];
  const double pb_c =
      (std::log((n + config_.pb_c_base + 1) / config_.pb_c_base) + config_.pb_c_init) *
      std::sqrt(n);
  int best = -1;
  double best_score = kNegInf;
  for (int a = 0; a < num_actions_; ++a) {
    if (!mask[a]) continue;
    const int32_t c = children[a];
    const int32_t na = c < 0 ? 0 : visits_[Node(e, c)];
    double score = pb_c * prior[a] / (1.0 + na);
    if (na > 0) score += Normalize(e, ChildQ(e, k, a));
    if (score > best_score) best_score = score, best = a;
  }
  return best;
}

void BatchedMcts::CompletedQScores(int e, std::vector<double>& out) const {
  // Completed Q: visited actions keep their Q; unvisited ones get v_mix, the network's root value
  // mixed with the prior-weighted Q of the visited actions. Rescaled to [0, 1] over the allowed
  // actions and scaled by (c_visit + max N) * c_scale.
  const uint8_t* mask = Mask(e);
  const float* prior = Prior(e, 0);
  double sum_n = 0, max_n = 0, weighted_q = 0, weight = 0;
  for (int a = 0; a < num_actions_; ++a) {
    const int32_t n = visits(e, a);
    sum_n += n;
    max_n = std::max<double>(max_n, n);
    if (n > 0 && mask[a]) {
      weighted_q += prior[a] * ChildQ(e, 0, a);
      weight += prior[a];
    }
  }
  const double v_net = net_values_[e];
  const double v_mix = weight > 0 ? (v_net + sum_n * weighted_q / weight) / (1.0 + sum_n) : v_net;
  out.assign(num_actions_, 0.0);
  double lo = std::numeric_limits<double>::infinity(), hi = kNegInf;
  for (int a = 0; a < num_actions_; ++a) {
    if (!mask[a]) continue;
    out[a] = visits(e, a) > 0 ? ChildQ(e, 0, a) : v_mix;
    lo = std::min(lo, out[a]), hi = std::max(hi, out[a]);
  }
  const double range = std::max(hi - lo, config_.min_max_floor);
  const double scale = (config_.gumbel_c_visit + max_n) * config_.gumbel_c_scale;
  for (int a = 0; a < num_actions_; ++a) out[a] = mask[a] ? scale * (out[a] - lo) / range : 0.0;
}

int BatchedMcts::SelectGumbelRoot(int e, int simulation) const {
  std::vector<double>& sigma = sigma_;  // reused: this runs once per simulation
  CompletedQScores(e, sigma);
  const int32_t target =
      considered_visits_[static_cast<size_t>(e) * config_.num_simulations + simulation];
  const uint8_t* considered = &considered_[static_cast<size_t>(e) * num_actions_];
  const float* log_prior = &logits_root_[static_cast<size_t>(e) * num_actions_];
  const double* g = &gumbel_[static_cast<size_t>(e) * num_actions_];
  int best = -1, fallback = -1;
  double best_score = kNegInf, fallback_score = kNegInf;
  for (int a = 0; a < num_actions_; ++a) {
    if (!considered[a]) continue;
    const double score = g[a] + log_prior[a] + sigma[a];
    if (score > fallback_score) fallback_score = score, fallback = a;
    if (visits(e, a) == target && score > best_score) best_score = score, best = a;
  }
  return best >= 0 ? best : fallback;
}

void BatchedMcts::AddDirichletNoise(int e, uint64_t key) {
  CounterRng rng(DeriveKey(key, 0x6e6f697365));
  const uint8_t* mask = Mask(e);
  float* prior = Prior(e, 0);
  std::vector<double> noise(num_actions_, 0.0);
  double total = 0;
  for (int a = 0; a < num_actions_; ++a)
    if (mask[a]) total += noise[a] = SampleGamma(rng, config_.root_dirichlet_alpha);
  if (total <= 0) return;
  const double f = config_.root_exploration_fraction;
  for (int a = 0; a < num_actions_; ++a)
    if (mask[a]) prior[a] = static_cast<float>((1 - f) * prior[a] + f * noise[a] / total);
}

void BatchedMcts::Search(SearchModel& model, const float* obs, const uint8_t* masks, int n,
                         bool explore, double temperature, uint64_t key) {
  LT_CHECK_LE(n, max_envs_);
  model_seconds_ = tree_seconds_ = 0;
  double t = Now();
  model.Initial(obs, n, batch_latent_.data(), batch_value_.data(), batch_logits_.data());
  model_seconds_ += Now() - t;
  t = Now();
  const int sims = config_.num_simulations;
  for (int e = 0; e < n; ++e) {
    std::copy(masks + static_cast<size_t>(e) * num_actions_,
              masks + static_cast<size_t>(e + 1) * num_actions_,
              &masks_[static_cast<size_t>(e) * num_actions_]);
    int allowed = 0;
    for (int a = 0; a < num_actions_; ++a) allowed += Mask(e)[a] != 0;
    if (allowed == 0) throw std::invalid_argument("BatchedMcts::Search: a mask allows no action");
    num_nodes_[e] = 1;
    visits_[Node(e, 0)] = 0;
    value_sum_[Node(e, 0)] = 0;
    reward_[Node(e, 0)] = 0;
    std::copy(&batch_latent_[static_cast<size_t>(e) * latent_dim_],
              &batch_latent_[static_cast<size_t>(e + 1) * latent_dim_],
              &latent_[Node(e, 0) * latent_dim_]);
    Expand(e, 0, &batch_logits_[static_cast<size_t>(e) * num_actions_]);
    net_values_[e] = batch_value_[e];
    min_q_[e] = std::numeric_limits<double>::infinity();
    max_q_[e] = kNegInf;
    const uint64_t env_key = DeriveKey(key, static_cast<uint64_t>(e));
    float* log_prior = &logits_root_[static_cast<size_t>(e) * num_actions_];
    for (int a = 0; a < num_actions_; ++a)
      log_prior[a] = Mask(e)[a] ? std::log(std::max(Prior(e, 0)[a], 1e-30f)) : -1e30f;
    if (!config_.gumbel) {
      if (explore) AddDirichletNoise(e, env_key);
      continue;
    }
    // Gumbel-top-k: the considered actions are the k largest g + log prior (g = 0 when greedy).
    CounterRng rng(DeriveKey(env_key, 0x67756d));
    double* g = &gumbel_[static_cast<size_t>(e) * num_actions_];
    std::vector<std::pair<double, int>> ranked;
    for (int a = 0; a < num_actions_; ++a) {
      g[a] = explore ? -std::log(-std::log(rng.Uniform() + 1e-300) + 1e-300) : 0.0;
      if (Mask(e)[a]) ranked.emplace_back(g[a] + log_prior[a], a);
    }
    const int m = std::min<int>(config_.gumbel_max_considered, static_cast<int>(ranked.size()));
    std::partial_sort(ranked.begin(), ranked.begin() + m, ranked.end(),
                      [](const auto& x, const auto& y) { return x.first > y.first; });
    uint8_t* considered = &considered_[static_cast<size_t>(e) * num_actions_];
    std::fill(considered, considered + num_actions_, 0);
    for (int j = 0; j < m; ++j) considered[ranked[j].second] = 1;
    const auto seq = SequentialHalvingVisits(m, sims);
    std::copy(seq.begin(), seq.end(), &considered_visits_[static_cast<size_t>(e) * sims]);
  }
  tree_seconds_ += Now() - t;

  for (int s = 0; s < sims; ++s) {
    t = Now();
    for (int e = 0; e < n; ++e) {  // descend to a leaf
      int32_t* path = &path_[Node(e, 0)];
      int len = 0, k = 0;
      path[len++] = 0;
      for (;;) {
        const int a = (k == 0 && config_.gumbel) ? SelectGumbelRoot(e, s) : SelectPuct(e, k);
        const int32_t c = Children(e, k)[a];
        if (c < 0) {
          leaf_parent_[e] = k, leaf_action_[e] = a;
          break;
        }
        k = c;
        path[len++] = c;
      }
      path_len_[e] = len;
      std::copy(&latent_[Node(e, k) * latent_dim_],
                &latent_[Node(e, k) * latent_dim_] + latent_dim_,
                &batch_latent_[static_cast<size_t>(e) * latent_dim_]);
      batch_actions_[e] = leaf_action_[e];
    }
    const double t_model = Now();
    tree_seconds_ += t_model - t;
    model.Recurrent(batch_latent_.data(), batch_actions_.data(), n, batch_next_.data(),
                    batch_reward_.data(), batch_value_.data(), batch_logits_.data());
    t = Now();
    model_seconds_ += t - t_model;
    for (int e = 0; e < n; ++e) {  // expand and back up
      const int32_t idx = num_nodes_[e]++;
      Children(e, leaf_parent_[e])[leaf_action_[e]] = idx;
      visits_[Node(e, idx)] = 0;
      value_sum_[Node(e, idx)] = 0;
      reward_[Node(e, idx)] = batch_reward_[e];
      std::copy(&batch_next_[static_cast<size_t>(e) * latent_dim_],
                &batch_next_[static_cast<size_t>(e + 1) * latent_dim_],
                &latent_[Node(e, idx) * latent_dim_]);
      Expand(e, idx, &batch_logits_[static_cast<size_t>(e) * num_actions_]);
      int32_t* path = &path_[Node(e, 0)];
      path[path_len_[e]++] = idx;
      double value = batch_value_[e];
      for (int j = path_len_[e] - 1; j >= 0; --j) {
        const size_t node = Node(e, path[j]);
        value_sum_[node] += static_cast<float>(value);
        visits_[node] += 1;
        const double q = reward_[node] + config_.discount * (value_sum_[node] / visits_[node]);
        min_q_[e] = std::min(min_q_[e], q), max_q_[e] = std::max(max_q_[e], q);
        value = reward_[node] + config_.discount * value;
      }
    }
    tree_seconds_ += Now() - t;
  }
  t = Now();
  for (int e = 0; e < n; ++e)
    Finish(e, explore, temperature, DeriveKey(key, static_cast<uint64_t>(e)));
  tree_seconds_ += Now() - t;
}

void BatchedMcts::Finish(int e, bool explore, double temperature, uint64_t key) {
  const uint8_t* mask = Mask(e);
  float* policy = &policy_[static_cast<size_t>(e) * num_actions_];
  if (config_.gumbel) {
    std::vector<double> sigma;
    CompletedQScores(e, sigma);
    const float* log_prior = &logits_root_[static_cast<size_t>(e) * num_actions_];
    // Policy target: softmax(log prior + sigma(completed Q)) over the allowed actions.
    double mx = kNegInf;
    for (int a = 0; a < num_actions_; ++a)
      if (mask[a]) mx = std::max(mx, log_prior[a] + sigma[a]);
    double z = 0;
    for (int a = 0; a < num_actions_; ++a) {
      policy[a] = mask[a] ? static_cast<float>(std::exp(log_prior[a] + sigma[a] - mx)) : 0.0f;
      z += policy[a];
    }
    for (int a = 0; a < num_actions_; ++a) policy[a] = static_cast<float>(policy[a] / z);
    // Action: the most visited considered action, ties by g + log prior + sigma.
    const uint8_t* considered = &considered_[static_cast<size_t>(e) * num_actions_];
    const double* g = &gumbel_[static_cast<size_t>(e) * num_actions_];
    int32_t max_visits = -1;
    for (int a = 0; a < num_actions_; ++a)
      if (considered[a]) max_visits = std::max(max_visits, visits(e, a));
    int best = -1;
    double best_score = kNegInf;
    for (int a = 0; a < num_actions_; ++a) {
      if (!considered[a] || visits(e, a) != max_visits) continue;
      const double score = g[a] + log_prior[a] + sigma[a];
      if (score > best_score) best_score = score, best = a;
    }
    actions_[e] = best;
  } else {
    double total = 0;
    for (int a = 0; a < num_actions_; ++a) total += visits(e, a);
    for (int a = 0; a < num_actions_; ++a)
      policy[a] = total > 0 ? static_cast<float>(visits(e, a) / total) : 0.0f;
    int best = -1;
    for (int a = 0; a < num_actions_; ++a)  // most visited, ties by prior
      if (mask[a] && (best < 0 || visits(e, a) > visits(e, best) ||
                      (visits(e, a) == visits(e, best) && Prior(e, 0)[a] > Prior(e, 0)[best])))
        best = a;
    if (explore && temperature > 0) {
      std::vector<double> w(num_actions_, 0.0);
      double sum = 0;
      for (int a = 0; a < num_actions_; ++a)
        if (mask[a] && visits(e, a) > 0) sum += w[a] = std::pow(visits(e, a), 1.0 / temperature);
      if (sum > 0) {
        CounterRng rng(DeriveKey(key, 0x616374));
        double u = rng.Uniform() * sum;
        for (int a = 0; a < num_actions_; ++a) {
          if (w[a] <= 0) continue;
          best = a;
          if ((u -= w[a]) < 0) break;
        }
      }
    }
    actions_[e] = best;
  }
  root_values_[e] = static_cast<float>(NodeValue(e, 0));
}

}  // namespace loantwin
