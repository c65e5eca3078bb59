#pragma once
// Micro-batching of policy calls on one I/O thread (docs/serving.md, "Threading model"): the
// jobs of one role wait in a queue until max_batch observations are queued or max_delay has
// passed since the first (with max_delay 0, a posted flush: the batch then holds what arrived
// in the same round of I/O). A batch runs on one bundle; its jobs are answered on the same
// thread. Waiting observations are bounded per role over all threads (QueueBudget): beyond
// max_queue a job is answered 503 with Retry-After.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "serve/bundle.h"
#include "serve/reply.h"

namespace loantwin {

/// One request's observations for one role, waiting to be batched.
struct Job {
  std::shared_ptr<const PolicyBundle> bundle;
  const ServedRole* role = nullptr;
  int n = 0;
  std::vector<float> obs;     ///< [n x features]
  std::vector<uint8_t> mask;  ///< [n x mask_width]
  Respond respond;            ///< answers the request (also with an error when the policy fails)
  /// Called with the actions [n x components] of this job's rows.
  std::function<void(const int64_t* actions)> done;
};

/// Observations waiting per role over all I/O threads, bounded by max_queue. Thread-safe.
class QueueBudget {
 public:
  QueueBudget(const std::vector<std::string>& roles, int max_queue);
  /// Reserves n places; false when the role is unknown or that would exceed max_queue.
  bool Take(std::string_view role, int n);
  void Give(std::string_view role, int n);
  std::map<std::string, int> Depths() const;

 private:
  std::map<std::string, std::unique_ptr<std::atomic<int>>, std::less<>> waiting_;
  int max_queue_;
};

struct BatchOptions {
  int max_batch = 64;    ///< observations per policy call (a larger single job runs alone)
  int max_delay_us = 0;  ///< 0: flush after the current round of I/O
};

class Batcher {
 public:
  /// `on_batch(rows)` is told each policy call's size (metrics). While `draining` is set,
  /// every job runs at once.
  Batcher(boost::asio::io_context& ioc, BatchOptions options, QueueBudget& budget,
          const std::vector<std::string>& roles, std::function<void(int rows)> on_batch,
          const std::atomic<bool>& draining);
  ~Batcher();
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  /// Queues `job` (taking it) or returns false (queue full, job untouched). I/O thread only.
  bool Submit(Job& job);
  /// Submit, or answer the job 503 + Retry-After: 1.
  void SubmitOrReject(Job job);
  /// Runs every waiting batch now (shutdown).
  void FlushAll();

 private:
  struct RoleQueue;
  void Flush(RoleQueue& q);

  boost::asio::io_context& ioc_;
  BatchOptions options_;
  QueueBudget& budget_;
  std::function<void(int)> on_batch_;
  const std::atomic<bool>& draining_;
  std::map<std::string, std::unique_ptr<RoleQueue>, std::less<>> queues_;
};

}  // namespace loantwin
