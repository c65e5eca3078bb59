#include "core/parallel_runner.h"

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

ParallelRunner::ParallelRunner(int num_threads, int spin_microseconds)
    : num_threads_(num_threads), spin_microseconds_(spin_microseconds) {
  if (num_threads < 1) throw std::invalid_argument("num_threads must be >= 1");
  if (spin_microseconds < 0) throw std::invalid_argument("spin_microseconds must be >= 0");
  if (num_threads_ > 1) {
    pool_ = std::make_unique<boost::asio::thread_pool>(num_threads_ - 1);
    for (int t = 0; t < num_threads_ - 1; ++t) boost::asio::post(*pool_, [this] { WorkerLoop(); });
  }
}

ParallelRunner::~ParallelRunner() {
  if (!pool_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }
  work_cv_.notify_all();
  pool_->join();
}

void ParallelRunner::RunItems() {
  for (int start = next_.fetch_add(grain_, std::memory_order_relaxed); start < n_;
       start = next_.fetch_add(grain_, std::memory_order_relaxed)) {
    const int end = std::min(n_, start + grain_);
    for (int i = start; i < end; ++i) {
      try {
        (*job_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }
}

void ParallelRunner::WorkerLoop() {
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

void ParallelRunner::For(int n, const std::function<void(int)>& fn, int grain) {
  if (!pool_ || n <= 1) {
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    n_ = n;
    grain_ = std::max(1, grain);
    error_ = nullptr;
    next_.store(0, std::memory_order_relaxed);
    pending_workers_.store(num_threads_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  work_cv_.notify_all();
  RunItems();  // the calling thread works too
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

}  // namespace loantwin
