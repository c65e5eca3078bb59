#pragma once
// Runs fn(i) for i in [0, n) on a Boost.Asio thread pool plus the calling thread. Workers are
// long-lived loops on the pool's threads that spin briefly for the next batch before blocking:
// environment steps of a few hundred microseconds would otherwise pay a thread wake-up each.
// Which thread runs an index never matters to the results (each index owns its state).

#include <atomic>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>

namespace boost::asio {
class thread_pool;
}

namespace loantwin {

class ParallelRunner {
 public:
  /// num_threads >= 1 (1 = everything runs in the calling thread); spin_microseconds >= 0.
  explicit ParallelRunner(int num_threads, int spin_microseconds = 200);
  ~ParallelRunner();
  ParallelRunner(const ParallelRunner&) = delete;
  ParallelRunner& operator=(const ParallelRunner&) = delete;

  /// Calls fn(i) for every i in [0, n), indices handed out in chunks of `grain`. Rethrows the
  /// first exception after all work stopped.
  void For(int n, const std::function<void(int)>& fn, int grain = 1);
  int num_threads() const { return num_threads_; }

 private:
  void WorkerLoop();
  void RunItems();

  int num_threads_;
  int spin_microseconds_;
  std::unique_ptr<boost::asio::thread_pool> pool_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> next_{0};
  std::atomic<int> pending_workers_{0};
  const std::function<void(int)>* job_ = nullptr;
  int n_ = 0, grain_ = 1;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace loantwin
