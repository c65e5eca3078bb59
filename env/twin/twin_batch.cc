#include "env/twin/twin_batch.h"

#include <fmt/format.h>

#include <stdexcept>

namespace loantwin {

TwinBatch::TwinBatch(std::shared_ptr<const InstitutionConfig> institution,
                     std::shared_ptr<const Scenario> scenario, const TwinBatchOptions& options) {
  if (options.num_envs < 1)
    throw std::invalid_argument(fmt::format("num_envs must be >= 1, got {}", options.num_envs));
  if (options.num_threads < 1)
    throw std::invalid_argument(
        fmt::format("num_threads must be >= 1, got {}", options.num_threads));
  runner_ = std::make_unique<ParallelRunner>(options.num_threads, options.spin_microseconds);
  twins_.resize(options.num_envs);
  metrics_.assign(static_cast<size_t>(options.num_envs) * kNumMetrics, 0.0);
  // Building the initial books is the expensive part of construction: do it in parallel too.
  runner_->For(options.num_envs, [&](int i) {
    twins_[i] = std::make_unique<Twin>(institution, scenario, options.seed,
                                       options.first_instance + i, options.twin);
  });
}

TwinBatch::~TwinBatch() = default;

void TwinBatch::Reset(uint64_t episode) {
  runner_->For(num_envs(), [&](int i) { twins_[i]->Reset(episode); });
}

void TwinBatch::Step(const std::vector<Levers>& levers) {
  if (levers.size() != 1 && levers.size() != twins_.size())
    throw std::invalid_argument(
        fmt::format("Step: got {} lever sets for {} instances (give 1 or {})", levers.size(),
                    twins_.size(), twins_.size()));
  runner_->For(num_envs(), [&](int i) {
    twins_[i]->Step(levers.size() == 1 ? levers[0] : levers[i],
                    metrics_.data() + static_cast<size_t>(i) * kNumMetrics);
  });
}

}  // namespace loantwin
