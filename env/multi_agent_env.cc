#include "env/multi_agent_env.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>

#include "core/counter_rng.h"

namespace loantwin {

MultiAgentEnv::MultiAgentEnv(std::string name, std::vector<RoleSpec> roles, const EnvOptions& o,
                             int default_max_episode_steps)
    : name_(std::move(name)),
      roles_(std::move(roles)),
      n_(o.num_envs),
      seed_(o.seed),
      offset_(o.instance_offset) {
  if (o.num_envs < 1)
    throw std::invalid_argument(fmt::format("num_envs must be >= 1, got {}", o.num_envs));
  if (o.num_threads < 1)
    throw std::invalid_argument(fmt::format("num_threads must be >= 1, got {}", o.num_threads));
  if (o.max_episode_steps < 0)
    throw std::invalid_argument(
        fmt::format("max_episode_steps must be >= 0, got {}", o.max_episode_steps));
  if (roles_.empty()) throw std::invalid_argument("an environment needs at least one role");
  max_steps_ = o.max_episode_steps > 0 ? o.max_episode_steps : default_max_episode_steps;
  runner_ = std::make_unique<ParallelRunner>(o.num_threads, o.spin_microseconds);
  chunk_ = std::max(1, n_ / (4 * o.num_threads));
  const size_t n = static_cast<size_t>(n_);
  for (const RoleSpec& r : roles_) {
    if (r.cadence < 1) throw std::invalid_argument("role '" + r.name + "': cadence must be >= 1");
    obs_.emplace_back(n * r.obs_dim(), 0.0f);
    final_obs_.emplace_back(n * r.obs_dim(), 0.0f);
    reward_vec_.emplace_back(n * r.objectives.size(), 0.0f);
    reward_.emplace_back(n, 0.0f);
    masks_.emplace_back(n * r.action_space.mask_width(), 1);
    final_masks_.emplace_back(n * r.action_space.mask_width(), 1);
    acting_.emplace_back(n, 1);
    actions_.emplace_back(n * r.action_space.action_dims(), 0);
    scratch_.emplace_back(n * r.action_space.action_dims(), 0);
    fallback_.push_back(FallbackPolicy::kBaseline);
    acted_.push_back(false);
  }
  terminated_.assign(n, 0);
  truncated_.assign(n, 0);
  steps_.assign(n, 0);
  episodes_.assign(n, 0);
}

MultiAgentEnv::~MultiAgentEnv() = default;

int MultiAgentEnv::FindRole(const std::string& name) const {
  for (size_t r = 0; r < roles_.size(); ++r)
    if (roles_[r].name == name) return static_cast<int>(r);
  return -1;
}

void MultiAgentEnv::SetFallback(int role, FallbackPolicy policy) {
  fallback_.at(role) = policy;
}

void MultiAgentEnv::SetRewardWeights(int role, const std::vector<std::pair<std::string, double>>&) {
  throw std::invalid_argument(
      fmt::format("environment '{}' has fixed rewards for role '{}'", name_, roles_.at(role).name));
}

namespace {

// Instances [0, n) in chunks of `chunk` on the runner's threads, after `extra_items` calls of
// extra(k) handed out first (MultiAgentEnv::StepWith).
template <typename Fn>
void ForChunks(ParallelRunner& runner, int n, int chunk, Fn&& fn, int extra_items = 0,
               const std::function<void(int)>* extra = nullptr) {
  const int chunks = (n + chunk - 1) / chunk;
  runner.For(extra_items + chunks, [&](int c) {
    if (c < extra_items) {
      (*extra)(c);
    } else {
      c -= extra_items;
      fn(c * chunk, std::min(n, (c + 1) * chunk));
    }
  });
}

}  // namespace

template <typename Fn>
void MultiAgentEnv::ForRanges(Fn&& fn) {
  ForChunks(*runner_, n_, chunk_, fn);
}

void MultiAgentEnv::Reset() {
  // Episode indices never repeat on an instance: a later Reset continues its count.
  const bool first = !reset_done_;
  ForRanges([&](int begin, int end) {
    for (int i = begin; i < end; ++i) {
      episodes_[i] = first ? 0 : episodes_[i] + 1;
      steps_[i] = 0;
      terminated_[i] = truncated_[i] = 0;
      ResetInstance(i, static_cast<uint64_t>(episodes_[i]));
    }
    for (size_t r = 0; r < roles_.size(); ++r) {
      std::fill(acting_[r].begin() + begin, acting_[r].begin() + end, 1);
      RefreshMasks(static_cast<int>(r), begin, end);
    }
  });
  for (size_t r = 0; r < roles_.size(); ++r) {
    std::fill(reward_[r].begin(), reward_[r].end(), 0.0f);
    std::fill(reward_vec_[r].begin(), reward_vec_[r].end(), 0.0f);
    acted_[r] = false;
  }
  reset_done_ = true;
}

void MultiAgentEnv::GuardedBaseline(int role, int begin, int end, int32_t* out) {
  BaselineActions(role, begin, end, out);
  if (guards_.empty() || guards_[role].empty()) return;
  const int dims = roles_[role].action_space.action_dims();
  for (int i = begin; i < end; ++i)
    if (acting_[role][i])
      guards_[role].Project(mask_row(role, i), out + static_cast<size_t>(i) * dims);
}

void MultiAgentEnv::ActAbove(int role, const char* caller) {
  if (!reset_done_)
    throw std::logic_error(fmt::format("{}: call Reset() before {}()", name_, caller));
  if (role < 0 || role >= num_roles())
    throw std::invalid_argument(
        fmt::format("{}: no role {} (it has {})", name_, role, num_roles()));
  for (int above = 0; above < role; ++above)
    if (!acted_[above]) Act(above, nullptr);
}

void MultiAgentEnv::BaselineDecisions(int role, int32_t* out) {
  ActAbove(role, "BaselineDecisions");
  ForRanges([&](int begin, int end) { GuardedBaseline(role, begin, end, out); });
}

void MultiAgentEnv::Act(int role, const int32_t* actions) {
  ActAbove(role, "Act");
  if (acted_[role])
    throw std::logic_error(
        fmt::format("{}: role '{}' already acted this step", name_, roles_[role].name));
  const RoleSpec& spec = roles_[role];
  const int dims = spec.action_space.action_dims();
  if (actions) {
    // Validate every acting instance before changing anything (in parallel); report the
    // lowest offending instance so the message does not depend on thread timing.
    std::atomic<int> first_bad{n_};
    ForRanges([&](int begin, int end) {
      for (int i = begin; i < end; ++i) {
        if (acting_[role][i] &&
            !spec.action_space.Allows(mask_row(role, i), actions + static_cast<size_t>(i) * dims)) {
          int seen = first_bad.load();
          while (i < seen && !first_bad.compare_exchange_weak(seen, i)) {
          }
          return;
        }
      }
    });
    if (first_bad.load() < n_) {
      const int i = first_bad.load();
      const int32_t* a = actions + static_cast<size_t>(i) * dims;
      int bad = 0;
      spec.action_space.Allows(mask_row(role, i), a, &bad);
      const int n_values = spec.action_space.dims().nvec()[bad];
      const bool in_range = a[bad] >= 0 && a[bad] < n_values;
      const std::string meaning = in_range && bad < static_cast<int>(spec.action_meanings.size())
                                      ? " (" + spec.action_meanings[bad][a[bad]] + ")"
                                      : "";
      const std::string dim_name = bad < static_cast<int>(spec.action_dim_names.size())
                                       ? spec.action_dim_names[bad]
                                       : std::to_string(bad);
      const std::string why = ExplainMask(role, i, bad);
      throw std::invalid_argument(
          fmt::format("{}: role '{}', instance {}: action component '{}' = {}{} is {}{}", name_,
                      spec.name, i, dim_name, a[bad], meaning,
                      in_range ? "masked out" : fmt::format("out of range [0, {})", n_values),
                      why.empty() ? "" : " (" + why + ")"));
    }
  }
  ForRanges([&](int begin, int end) {
    const int32_t* src = actions;
    if (!src) {
      int32_t* out = scratch_[role].data();
      if (fallback_[role] == FallbackPolicy::kBaseline) {
        GuardedBaseline(role, begin, end, out);
      } else {
        for (int i = begin; i < end; ++i) {
          CounterRng rng(DeriveKey(DeriveKey(DeriveKey(seed_, 0x72616e64), instance_id(i)),
                                   (step_count_ << 8) | static_cast<uint64_t>(role)));
          spec.action_space.Sample(rng, out + static_cast<size_t>(i) * dims, mask_row(role, i));
        }
      }
      src = out;
    }
    if (!guards_.empty() && guards_[role].applies()) {
      const uint64_t applies = guards_[role].applies();
      for (int i = begin; i < end; ++i) {
        if (!acting_[role][i]) continue;
        const uint64_t fired = guard_fired_[role][i];
        for (size_t k = 0; k < guard_rules_.size(); ++k) {
          if (!(applies >> k & 1)) continue;
          guard_decisions_[k * n_ + i] += 1;
          guard_fired_count_[k * n_ + i] += fired >> k & 1;
        }
      }
    }
    int32_t* dst = actions_[role].data();
    for (int i = begin; i < end; ++i)
      if (acting_[role][i])
        std::memcpy(dst + static_cast<size_t>(i) * dims, src + static_cast<size_t>(i) * dims,
                    sizeof(int32_t) * dims);
    OnDecision(role, begin, end);
  });
  acted_[role] = true;
}

void MultiAgentEnv::Step() {
  StepWith(0, {});
}

void MultiAgentEnv::StepWith(int extra_items, const std::function<void(int)>& extra) {
  if (!reset_done_) throw std::logic_error(name_ + ": call Reset() before Step()");
  for (int r = 0; r < num_roles(); ++r)
    if (!acted_[r]) Act(r, nullptr);
  auto step = [&](int begin, int end) {
    std::fill(terminated_.begin() + begin, terminated_.begin() + end, 0);
    StepInstances(begin, end);
    for (int i = begin; i < end; ++i) {
      steps_[i] += 1;
      truncated_[i] = !terminated_[i] && steps_[i] >= max_steps_;
      if (terminated_[i] || truncated_[i]) {
        for (size_t r = 0; r < roles_.size(); ++r) {
          const size_t d = roles_[r].obs_dim();
          std::memcpy(final_obs_[r].data() + i * d, obs_[r].data() + i * d, sizeof(float) * d);
          // Masks of the final state (before the reset replaces the state).
          const size_t w = roles_[r].action_space.mask_width();
          RefreshMasks(static_cast<int>(r), i, i + 1);
          std::memcpy(final_masks_[r].data() + i * w, masks_[r].data() + i * w, w);
        }
        episodes_[i] += 1;
        steps_[i] = 0;
        ResetInstance(i, static_cast<uint64_t>(episodes_[i]));
      }
      for (size_t r = 0; r < roles_.size(); ++r) acting_[r][i] = steps_[i] % roles_[r].cadence == 0;
    }
    for (size_t r = 0; r < roles_.size(); ++r) RefreshMasks(static_cast<int>(r), begin, end);
  };
  ForChunks(*runner_, n_, chunk_, step, std::max(extra_items, 0), &extra);
  std::fill(acted_.begin(), acted_.end(), false);
  ++step_count_;
}

}  // namespace loantwin

namespace loantwin {

void MultiAgentEnv::SaveState(StateWriter& w) const {
  for (bool a : acted_)
    if (a) throw std::logic_error(name_ + ": SaveState between Act and Step");
  w.Tag("multi_agent_env");
  w.Put<int32_t>(n_), w.Put<int32_t>(num_roles());
  for (size_t r = 0; r < roles_.size(); ++r) {
    w.PutVector(obs_[r]), w.PutVector(final_obs_[r]), w.PutVector(final_masks_[r]);
    w.PutVector(reward_vec_[r]);
    w.PutVector(reward_[r]), w.PutVector(masks_[r]), w.PutVector(acting_[r]);
    w.PutVector(actions_[r]), w.Put(fallback_[r]);
  }
  w.PutVector(terminated_), w.PutVector(truncated_), w.PutVector(steps_), w.PutVector(episodes_);
  w.Put(reset_done_), w.Put(step_count_);
  SaveInstances(w);
  if (!guards_.empty()) {
    w.Tag("guardrails");
    for (const auto& f : guard_fired_) w.PutVector(f);
    w.PutVector(guard_fired_count_), w.PutVector(guard_decisions_);
  }
}

void MultiAgentEnv::LoadState(StateReader& r) {
  r.Tag("multi_agent_env");
  if (r.Get<int32_t>() != n_ || r.Get<int32_t>() != num_roles())
    throw std::runtime_error(name_ + ": checkpoint has a different number of instances or roles");
  for (size_t k = 0; k < roles_.size(); ++k) {
    r.GetVector(&obs_[k]), r.GetVector(&final_obs_[k]), r.GetVector(&final_masks_[k]);
    r.GetVector(&reward_vec_[k]);
    r.GetVector(&reward_[k]), r.GetVector(&masks_[k]), r.GetVector(&acting_[k]);
    r.GetVector(&actions_[k]), r.Get(&fallback_[k]);
  }
  r.GetVector(&terminated_), r.GetVector(&truncated_), r.GetVector(&steps_),
      r.GetVector(&episodes_);
  r.Get(&reset_done_), r.Get(&step_count_);
  std::fill(acted_.begin(), acted_.end(), false);
  LoadInstances(r);
  if (!guards_.empty()) {
    r.Tag("guardrails");
    for (auto& f : guard_fired_) r.GetVector(&f);
    r.GetVector(&guard_fired_count_), r.GetVector(&guard_decisions_);
    const size_t want = guard_rules_.size() * static_cast<size_t>(n_);
    if (guard_fired_count_.size() != want || guard_decisions_.size() != want)
      throw std::runtime_error(name_ + ": checkpoint has a different number of guardrails");
  }
}

void MultiAgentEnv::SetGuardrails(std::vector<GuardrailRule> rules) {
  if (reset_done_) throw std::logic_error(name_ + ": set guardrails before the first Reset()");
  guards_.clear();
  guard_rules_.clear();
  guard_fired_.clear();
  if (rules.empty()) return;
  if (rules.size() > static_cast<size_t>(kMaxGuardrails))
    throw std::invalid_argument(fmt::format("at most {} guardrails", kMaxGuardrails));
  std::vector<GuardrailLayout> layouts;
  for (const RoleSpec& r : roles_) layouts.push_back(GuardrailLayout::Of(r));
  guards_ = CompileGuardrails(rules, layouts);
  guard_rules_ = std::move(rules);
  guard_fired_.assign(roles_.size(), std::vector<uint64_t>(static_cast<size_t>(n_), 0));
  guard_fired_count_.assign(guard_rules_.size() * static_cast<size_t>(n_), 0);
  guard_decisions_.assign(guard_rules_.size() * static_cast<size_t>(n_), 0);
}

void MultiAgentEnv::RefreshMasks(int role, int begin, int end) {
  WriteMasks(role, begin, end);
  if (guards_.empty()) return;
  const RoleGuardrails& g = guards_[role];
  for (int i = begin; i < end; ++i)
    guard_fired_[role][i] = g.empty() ? 0 : g.Apply(obs_row(role, i), mask_row(role, i));
}

std::vector<MultiAgentEnv::GuardrailCount> MultiAgentEnv::guardrail_counts() const {
  std::vector<GuardrailCount> out(guard_rules_.size());
  for (size_t k = 0; k < out.size(); ++k)
    for (int i = 0; i < n_; ++i) {
      out[k].fired += guard_fired_count_[k * n_ + i];
      out[k].decisions += guard_decisions_[k * n_ + i];
    }
  return out;
}

const std::vector<std::string>& MultiAgentEnv::metric_names() const {
  static const std::vector<std::string> none;
  return none;
}

}  // namespace loantwin
