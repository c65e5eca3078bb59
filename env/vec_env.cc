#include "env/vec_env.h"

#include <fmt/format.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <stdexcept>

namespace loantwin {

VecEnv::VecEnv(std::shared_ptr<const InstitutionConfig> institution,
               std::shared_ptr<const Scenario> scenario, const VecEnvOptions& options)
    : num_threads_(options.num_threads) {
  if (options.num_envs < 1)
    throw std::invalid_argument(fmt::format("num_envs must be >= 1, got {}", options.num_envs));
  if (options.num_threads < 1)
    throw std::invalid_argument(fmt::format("num_threads must be >= 1, got {}", options.num_threads));
  twins_.resize(options.num_envs);
  metrics_.assign(static_cast<size_t>(options.num_envs) * kNumMetrics, 0.0);
  if (num_threads_ > 1) pool_ = std::make_unique<boost::asio::thread_pool>(num_threads_);
  // Building the initial books is the expensive part of construction: do it in parallel too.
  ParallelFor([&](int i) {
    twins_[i] = std::make_unique<Twin>(institution, scenario, options.seed,
                                       options.first_instance + i, options.twin);
  });
}

VecEnv::~VecEnv() {
  if (pool_) pool_->join();
}

template <typename Fn>
void VecEnv::ParallelFor(Fn&& fn) {
  const int n = static_cast<int>(twins_.size());
  if (!pool_) {
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  // Workers pull instance indices from a shared counter (dynamic load balance); which thread
  // runs an instance does not affect its result.
  std::atomic<int> next{0};
  std::mutex mu;
  std::condition_variable done_cv;
  int running = num_threads_;
  std::exception_ptr error;
  for (int t = 0; t < num_threads_; ++t) {
    boost::asio::post(*pool_, [&] {
      for (int i = next.fetch_add(1); i < n; i = next.fetch_add(1)) {
        try {
          fn(i);
        } catch (...) {
          std::lock_guard<std::mutex> lock(mu);
          if (!error) error = std::current_exception();
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      if (--running == 0) done_cv.notify_one();
    });
  }
  std::unique_lock<std::mutex> lock(mu);
  done_cv.wait(lock, [&] { return running == 0; });
  if (error) std::rethrow_exception(error);
}

void VecEnv::Reset(uint64_t episode) {
  ParallelFor([&](int i) { twins_[i]->Reset(episode); });
}

void VecEnv::Step(const std::vector<Levers>& levers) {
  if (levers.size() != 1 && levers.size() != twins_.size())
    throw std::invalid_argument(fmt::format("Step: got {} lever sets for {} instances (give 1 or {})",
                                            levers.size(), twins_.size(), twins_.size()));
  ParallelFor([&](int i) {
    twins_[i]->Step(levers.size() == 1 ? levers[0] : levers[i],
                    metrics_.data() + static_cast<size_t>(i) * kNumMetrics);
  });
}

}  // namespace loantwin
