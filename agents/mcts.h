#pragma once
// Batched Monte Carlo tree search for MuZero-style agents (Schrittwieser et al. 2020). All N
// environments search in lockstep: each simulation descends every environment's tree, then ONE
// batched call of the learned model expands all N leaves, then every path is backed up. Trees
// live in flat arrays allocated once per (environment, node) for num_simulations + 1 nodes: no
// heap allocation per node.
//
// Selection is pUCT (c1 + log((N + c2 + 1) / c2)) * P(a) * sqrt(N) / (1 + N(a)) plus the child's
// Q = r + discount * V normalised to [0, 1] by the min and max Q seen in that tree (with a floor
// on the range, so tiny differences are not blown up). Dirichlet noise is mixed into the root
// prior when exploring. The root's action mask applies at every node of its tree (the role's
// constraint set is taken to hold over the planning horizon). Optionally the root uses Gumbel
// MuZero's selection (Danihelka et al. 2022): Gumbel-top-k sampling of the considered actions,
// sequential halving of the simulation budget, and the completed-Q policy target, which improves
// on the prior even with very few simulations.
//
// The search is independent of LibTorch: the model is reached through SearchModel.

#include <cstdint>
#include <vector>

namespace loantwin {

struct MctsConfig {
  int num_simulations = 50;
  double discount = 0.997;                  ///< per model step
  double pb_c_init = 1.25;                  ///< c1
  double pb_c_base = 19652;                 ///< c2
  double root_dirichlet_alpha = 0.25;       ///< Dirichlet(alpha) root noise (exploring only)
  double root_exploration_fraction = 0.25;  ///< weight of the noise in the root prior
  double min_max_floor = 0.01;              ///< smallest Q range used to normalise
  bool gumbel = false;                      ///< Gumbel MuZero root selection
  int gumbel_max_considered = 16;           ///< actions sampled without replacement at the root
  double gumbel_c_visit = 50;               ///< sigma(q) = (c_visit + max N) * c_scale * q
  double gumbel_c_scale = 1.0;
};

/// The learned model as the search sees it; every call is batched over environments.
class SearchModel {
 public:
  virtual ~SearchModel() = default;
  virtual int latent_dim() const = 0;
  /// Representation + prediction for n observations: latent [n, L], value [n], logits [n, A].
  virtual void Initial(const float* obs, int n, float* latent, float* value, float* logits) = 0;
  /// Dynamics + prediction for n (latent, action) pairs: next latent [n, L], reward [n],
  /// value [n], logits [n, A].
  virtual void Recurrent(const float* latent, const int32_t* actions, int n, float* next_latent,
                         float* reward, float* value, float* logits) = 0;
};

class BatchedMcts {
 public:
  BatchedMcts(int max_envs, int num_actions, int latent_dim, const MctsConfig& config);

  /// Searches from n observations with their masks [n, A] (at least one allowed action each).
  /// `explore`: Dirichlet noise (pUCT) or Gumbel samples (Gumbel) at the root, and actions drawn
  /// from the visit counts with `temperature` (pUCT; 0 = most visited). Random draws come from
  /// streams derived from `key` per environment: results do not depend on the batch split.
  void Search(SearchModel& model, const float* obs, const uint8_t* masks, int n, bool explore,
              double temperature, uint64_t key);

  /// After Search: the chosen action, the search value of the root, the policy target [A]
  /// (visit distribution; Gumbel: softmax(logits + sigma(completed Q))), visit counts [A].
  int32_t action(int e) const { return actions_[e]; }
  float root_value(int e) const { return root_values_[e]; }
  const float* policy(int e) const { return &policy_[static_cast<size_t>(e) * num_actions_]; }
  int32_t visits(int e, int a) const;
  /// Prior of the root after noise, [A].
  const float* root_prior(int e) const { return Prior(e, 0); }
  /// Seconds spent in model calls and in the tree during the last Search.
  double model_seconds() const { return model_seconds_; }
  double tree_seconds() const { return tree_seconds_; }
  const MctsConfig& config() const { return config_; }

 private:
  size_t Node(int e, int k) const { return static_cast<size_t>(e) * max_nodes_ + k; }
  float* Prior(int e, int k) { return &prior_[Node(e, k) * num_actions_]; }
  const float* Prior(int e, int k) const { return &prior_[Node(e, k) * num_actions_]; }
  int32_t* Children(int e, int k) { return &child_[Node(e, k) * num_actions_]; }
  const int32_t* Children(int e, int k) const { return &child_[Node(e, k) * num_actions_]; }
  const uint8_t* Mask(int e) const { return &masks_[static_cast<size_t>(e) * num_actions_]; }
  void Expand(int e, int k, const float* logits);
  double NodeValue(int e, int k) const;
  /// r + discount * V of the child reached by action a from node k (needs a visited child).
  double ChildQ(int e, int k, int a) const;
  double Normalize(int e, double q) const;
  int SelectPuct(int e, int k) const;
  int SelectGumbelRoot(int e, int simulation) const;
  /// sigma(completed Q) per root action (Gumbel); out [A].
  void CompletedQScores(int e, std::vector<double>& out) const;
  void AddDirichletNoise(int e, uint64_t key);
  void Finish(int e, bool explore, double temperature, uint64_t key);

  int max_envs_, num_actions_, latent_dim_, max_nodes_;
  MctsConfig config_;
  std::vector<int32_t> visits_, child_, num_nodes_, path_, path_len_, leaf_parent_, leaf_action_;
  std::vector<float> value_sum_, reward_, prior_, latent_, logits_root_;
  std::vector<uint8_t> masks_;
  std::vector<double> min_q_, max_q_, gumbel_;
  std::vector<int32_t> considered_visits_;  ///< Gumbel: visit count to equalise per simulation
  std::vector<uint8_t> considered_;         ///< Gumbel: [envs, A] actions in the considered set
  std::vector<int32_t> actions_;
  std::vector<float> root_values_, net_values_, policy_;
  // batch scratch for model calls
  std::vector<float> batch_latent_, batch_next_, batch_reward_, batch_value_, batch_logits_;
  std::vector<int32_t> batch_actions_;
  double model_seconds_ = 0, tree_seconds_ = 0;
  mutable std::vector<double> sigma_;  ///< Gumbel: scratch for sigma(completed Q)
};

/// Gumbel sequential halving: for each simulation, the visit count the considered actions are
/// being brought up to (phases of halving candidate sets over the simulation budget).
std::vector<int32_t> SequentialHalvingVisits(int num_considered, int num_simulations);

}  // namespace loantwin
