#include "serve/batcher.h"

#include <boost/asio/post.hpp>

namespace net = boost::asio;

namespace loantwin {

QueueBudget::QueueBudget(const std::vector<std::string>& roles, int max_queue)
    : max_queue_(max_queue) {
  for (const auto& role : roles) waiting_.emplace(role, std::make_unique<std::atomic<int>>(0));
}

bool QueueBudget::Take(std::string_view role, int n) {
  const auto it = waiting_.find(role);
  if (it == waiting_.end()) return false;
  int waiting = it->second->load(std::memory_order_relaxed);
  do {
    if (waiting + n > max_queue_) return false;
  } while (!it->second->compare_exchange_weak(waiting, waiting + n));
  return true;
}

void QueueBudget::Give(std::string_view role, int n) {
  const auto it = waiting_.find(role);
  if (it != waiting_.end()) it->second->fetch_sub(n);
}

std::map<std::string, int> QueueBudget::Depths() const {
  std::map<std::string, int> depths;
  for (const auto& [role, n] : waiting_) depths[role] = n->load();
  return depths;
}

struct Batcher::RoleQueue {
  explicit RoleQueue(net::io_context& ioc) : timer(ioc) {}
  std::vector<Job> jobs;
  int rows = 0;
  uint64_t generation = 0;  ///< bumped at each flush; stale timer and post handlers skip
  net::steady_timer timer;
  std::vector<float> obs;  ///< scratch: the batch's observations and masks
  std::vector<uint8_t> mask;
};

Batcher::Batcher(net::io_context& ioc, BatchOptions options, QueueBudget& budget,
                 const std::vector<std::string>& roles, std::function<void(int rows)> on_batch,
                 const std::atomic<bool>& draining)
    : ioc_(ioc),
      options_(options),
      budget_(budget),
      on_batch_(std::move(on_batch)),
      draining_(draining) {
  for (const auto& role : roles) queues_.emplace(role, std::make_unique<RoleQueue>(ioc));
}

Batcher::~Batcher() = default;

bool Batcher::Submit(Job& job) {
  const auto queue = queues_.find(job.role->name);
  if (queue == queues_.end() || !budget_.Take(job.role->name, job.n)) return false;
  RoleQueue& q = *queue->second;
  // A batch runs on one bundle and holds at most max_batch observations (or one larger job).
  if (!q.jobs.empty() &&
      (q.jobs.front().bundle != job.bundle || q.rows + job.n > options_.max_batch))
    Flush(q);
  q.rows += job.n;
  q.jobs.push_back(std::move(job));
  if (q.rows >= options_.max_batch || draining_) {
    Flush(q);
  } else if (q.jobs.size() == 1) {
    const uint64_t generation = q.generation;
    auto fire = [this, &q, generation] {
      if (q.generation == generation) Flush(q);
    };
    if (options_.max_delay_us <= 0) {
      net::post(ioc_, fire);
    } else {
      q.timer.expires_after(std::chrono::microseconds(options_.max_delay_us));
      q.timer.async_wait([fire](const boost::system::error_code&) { fire(); });
    }
  }
  return true;
}

void Batcher::SubmitOrReject(Job job) {
  if (Submit(job)) return;
  Reply r = ErrorReply(503, "decision queue full; retry later");
  r.retry_after = 1;
  job.respond(std::move(r));
}

void Batcher::FlushAll() {
  for (auto& [role, q] : queues_) Flush(*q);
}

void Batcher::Flush(RoleQueue& q) {
  if (q.jobs.empty()) return;
  // Take the batch first: answering may queue new jobs (the pricing step of an application).
  std::vector<Job> batch;
  batch.swap(q.jobs);
  const int rows = q.rows;
  q.rows = 0;
  ++q.generation;
  const ServedRole& role = *batch.front().role;
  budget_.Give(role.name, rows);
  q.obs.resize(static_cast<size_t>(rows) * role.features.size());
  q.mask.resize(static_cast<size_t>(rows) * role.mask_width);
  size_t o = 0, m = 0;
  for (const Job& j : batch) {
    std::copy(j.obs.begin(), j.obs.end(), q.obs.begin() + o);
    std::copy(j.mask.begin(), j.mask.end(), q.mask.begin() + m);
    o += j.obs.size(), m += j.mask.size();
  }
  if (on_batch_) on_batch_(rows);
  std::vector<int64_t> actions;
  std::string error;
  try {
    actions = batch.front().bundle->Decide(role, q.obs, q.mask, rows);
  } catch (const std::exception& e) {
    error = e.what();
  }
  const size_t dims = role.components.size();
  size_t at = 0;
  for (Job& j : batch) {
    try {
      if (error.empty())
        j.done(actions.data() + at);
      else
        j.respond(ErrorReply(500, "policy failed: " + error));
    } catch (const std::exception& e) {
      j.respond(ErrorReply(500, std::string("internal error: ") + e.what()));
    }
    at += static_cast<size_t>(j.n) * dims;
  }
  if (q.jobs.empty()) {  // keep the capacity for the next batch
    batch.clear();
    q.jobs.swap(batch);
  }
}

}  // namespace loantwin
