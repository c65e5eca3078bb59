#include "serve/admission.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <stdexcept>
#include <thread>
#include <vector>

namespace loantwin {

CpuPacer::Clocks CpuPacer::RealClocks() {
  Clocks c;
  c.wall = [] {
    return std::chrono::duration_cast<Nanos>(std::chrono::steady_clock::now().time_since_epoch());
  };
  c.thread_cpu = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return Nanos(static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec);
  };
  c.sleep = [](Nanos d) { std::this_thread::sleep_for(d); };
  return c;
}

CpuPacer::CpuPacer(double cores, Nanos burst, Clocks clocks)
    : cores_(cores),
      burst_(burst),
      clocks_(std::move(clocks)),
      tokens_ns_(static_cast<double>(burst.count())),
      last_wall_(clocks_.wall()),
      last_cpu_(clocks_.thread_cpu()) {
  if (!(cores > 0)) throw std::invalid_argument("CpuPacer: cores must be positive");
}

CpuPacer::Nanos CpuPacer::AfterWork() {
  const Nanos wall = clocks_.wall(), cpu = clocks_.thread_cpu();
  // Refill for the wall time since the last call (idle time included, up to the burst), then
  // charge the CPU time used.
  tokens_ns_ = std::min(tokens_ns_ + cores_ * static_cast<double>((wall - last_wall_).count()),
                        static_cast<double>(burst_.count()));
  tokens_ns_ -= static_cast<double>((cpu - last_cpu_).count());
  last_cpu_ = cpu;
  last_wall_ = wall;
  if (tokens_ns_ >= 0) return Nanos(0);
  const Nanos pause(static_cast<int64_t>(std::ceil(-tokens_ns_ / cores_)));
  clocks_.sleep(pause);
  // The refill for the pause is counted at the next call (from last_wall_).
  return pause;
}

struct TenantAdmission::Core : std::enable_shared_from_this<Core> {
  using Clock = TenantAdmission::Clock;
  Limits limits;
  std::function<Clock::time_point()> now;
  std::mutex mu;
  boost::asio::steady_timer* timer = nullptr;  ///< null once the admission is gone (mu)
  int inflight = 0;
  double tokens = 0;
  Clock::time_point refilled;
  bool timer_armed = false;
  std::deque<Resume> waiting;
  int64_t waits = 0;

  bool HasRoom() const {
    return (limits.max_inflight == 0 || inflight < limits.max_inflight) &&
           (limits.rate == 0 || tokens >= 1);
  }
  void Take() {
    ++inflight;
    if (limits.rate > 0) tokens -= 1;
  }
  void Refill() {
    if (limits.rate == 0) return;
    const Clock::time_point t = now();
    tokens = std::min(limits.burst,
                      tokens + std::chrono::duration<double>(t - refilled).count() * limits.rate);
    refilled = t;
  }
  /// Holding `mu`: wakes Pump when the bucket will hold a token (a full house is resumed by the
  /// next release instead).
  void ArmTimer() {
    if (!timer || timer_armed || waiting.empty() || limits.rate == 0 || tokens >= 1) return;
    if (limits.max_inflight > 0 && inflight >= limits.max_inflight) return;
    timer_armed = true;
    const auto wait = std::chrono::duration<double>((1 - tokens) / limits.rate);
    timer->expires_after(std::chrono::duration_cast<Clock::duration>(wait) +
                         std::chrono::microseconds(1));
    timer->async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
      const auto self = weak.lock();
      if (!self) return;
      {
        std::lock_guard<std::mutex> lock(self->mu);
        self->timer_armed = false;
      }
      if (!ec) self->Pump();
    });
  }
  void Pump() {
    std::vector<Resume> ready;
    {
      std::lock_guard<std::mutex> lock(mu);
      Refill();
      while (!waiting.empty() && HasRoom()) {
        Take();
        ready.push_back(std::move(waiting.front()));
        waiting.pop_front();
      }
      ArmTimer();
    }
    for (auto& r : ready) r(Place());
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu);
      --inflight;
    }
    Pump();
  }
  Admission Place() {
    struct Held {
      std::weak_ptr<Core> core;
      ~Held() {
        if (const auto c = core.lock()) c->Release();
      }
    };
    return std::shared_ptr<Held>(
        new Held{weak_from_this()});  // no temporary Held (it would release)
  }
};

TenantAdmission::TenantAdmission(Limits limits, boost::asio::io_context* timers,
                                 std::function<Clock::time_point()> now)
    : core_(std::make_shared<Core>()) {
  if (limits.max_inflight < 0 || limits.rate < 0 || limits.burst < 1)
    throw std::invalid_argument("TenantAdmission: limits out of range");
  core_->limits = limits;
  core_->now = std::move(now);
  core_->tokens = limits.burst;
  core_->refilled = core_->now();
  if (timers) {
    timer_ = std::make_unique<boost::asio::steady_timer>(*timers);
    core_->timer = timer_.get();
  }
}

TenantAdmission::~TenantAdmission() {
  std::lock_guard<std::mutex> lock(core_->mu);
  core_->timer = nullptr;
}

bool TenantAdmission::unlimited() const {
  return core_->limits.max_inflight == 0 && core_->limits.rate == 0;
}

bool TenantAdmission::Acquire(Admission* admission, Resume resume) {
  Core& c = *core_;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.Refill();
    if (!c.waiting.empty() || !c.HasRoom()) {  // arrival order: nobody overtakes a waiter
      c.waiting.push_back(std::move(resume));
      ++c.waits;
      c.ArmTimer();
      return false;
    }
    c.Take();
  }
  *admission = c.Place();
  return true;
}

void TenantAdmission::Pump() {
  core_->Pump();
}

void TenantAdmission::DropWaiting() {
  std::deque<Resume> dropped;
  {
    std::lock_guard<std::mutex> lock(core_->mu);
    dropped.swap(core_->waiting);
  }
  for (auto& r : dropped) r(nullptr);
}

int64_t TenantAdmission::waits() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return core_->waits;
}
int TenantAdmission::waiting() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return static_cast<int>(core_->waiting.size());
}
int TenantAdmission::inflight() const {
  std::lock_guard<std::mutex> lock(core_->mu);
  return core_->inflight;
}

}  // namespace loantwin
