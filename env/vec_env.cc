#include "env/vec_env.h"

#include <fmt/format.h>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <utility>

namespace loantwin {
namespace {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

}  // namespace

VecEnv::VecEnv(std::shared_ptr<const InstitutionConfig> institution,
               std::shared_ptr<const Scenario> scenario, const VecEnvOptions& options)
    : num_threads_(options.num_threads), spin_microseconds_(options.spin_microseconds) {
  if (options.num_envs < 1)
    throw std::invalid_argument(fmt::format("num_envs must be >= 1, got {}", options.num_envs));
  if (options.num_threads < 1)
    throw std::invalid_argument(
        fmt::format("num_threads must be >= 1, got {}", options.num_threads));
  if (options.spin_microseconds < 0) throw std::invalid_argument("spin_microseconds must be >= 0");
  twins_.resize(options.num_envs);
  metrics_.assign(static_cast<size_t>(options.num_envs) * kNumMetrics, 0.0);
  if (num_threads_ > 1) {
    // The pool's threads run one long-lived worker loop each until the VecEnv is destroyed.
    pool_ = std::make_unique<boost::asio::thread_pool>(num_threads_ - 1);
    for (int t = 0; t < num_threads_ - 1; ++t) boost::asio::post(*pool_, [this] { WorkerLoop(); });
  }
  // Building the initial books is the expensive part of construction: do it in parallel too.
  ParallelFor([&](int i) {
    twins_[i] = std::make_unique<Twin>(institution, scenario, options.seed,
                                       options.first_instance + i, options.twin);
  });
}

VecEnv::~VecEnv() {
  if (!pool_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }
  work_cv_.notify_all();
  pool_->join();
}

void VecEnv::RunItems() {
  const int n = static_cast<int>(twins_.size());
  for (int i = next_.fetch_add(1, std::memory_order_relaxed); i < n;
       i = next_.fetch_add(1, std::memory_order_relaxed)) {
    try {
      (*job_)(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::current_exception();
    }
  }
}

void VecEnv::WorkerLoop() {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    const auto spin_end =
        std::chrono::steady_clock::now() + std::chrono::microseconds(spin_microseconds_);
    while (gen == seen && std::chrono::steady_clock::now() < spin_end) {
      for (int k = 0; k < 64; ++k) CpuRelax();
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      gen = generation_.load(std::memory_order_acquire);
    }
    seen = gen;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    RunItems();
    if (pending_workers_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);
      done_cv_.notify_one();
    }
  }
}

void VecEnv::ParallelFor(const std::function<void(int)>& fn) {
  if (!pool_) {
    for (int i = 0; i < static_cast<int>(twins_.size()); ++i) fn(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    error_ = nullptr;
    next_.store(0, std::memory_order_relaxed);
    pending_workers_.store(num_threads_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  work_cv_.notify_all();
  RunItems();  // the calling thread works too
  // Workers finish their last instance; spin briefly, then block.
  const auto spin_end =
      std::chrono::steady_clock::now() + std::chrono::microseconds(spin_microseconds_);
  while (pending_workers_.load(std::memory_order_acquire) > 0 &&
         std::chrono::steady_clock::now() < spin_end)
    CpuRelax();
  {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return pending_workers_.load(std::memory_order_acquire) == 0; });
    job_ = nullptr;
  }
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void VecEnv::Reset(uint64_t episode) {
  ParallelFor([&](int i) { twins_[i]->Reset(episode); });
}

void VecEnv::Step(const std::vector<Levers>& levers) {
  if (levers.size() != 1 && levers.size() != twins_.size())
    throw std::invalid_argument(
        fmt::format("Step: got {} lever sets for {} instances (give 1 or {})", levers.size(),
                    twins_.size(), twins_.size()));
  ParallelFor([&](int i) {
    twins_[i]->Step(levers.size() == 1 ? levers[0] : levers[i],
                    metrics_.data() + static_cast<size_t>(i) * kNumMetrics);
  });
}

}  // namespace loantwin
