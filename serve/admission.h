#pragma once
// Admission of one tenant's decision requests (docs/serving.md, "Multi-tenant serving"): at most
// `max_inflight` in progress and at most `rate` admitted per second (a token bucket of `burst`).
// A request beyond either waits - its body unread, so the client feels TCP back-pressure - and
// is resumed in arrival order when a place frees or the bucket refills.

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include "serve/http_session.h"

namespace loantwin {

/// A tenant's CPU quota (tenants file `cpu_quota`): paces one policy thread to `cores` seconds
/// of CPU per second of wall time, a token bucket of CPU time `burst` deep. After each piece of
/// work the thread sleeps while the bucket is in debt, so a flooding tenant cannot take more
/// than its share of the cores however many requests it sends; its excess waits in its own
/// queue. Clocks and sleep are injectable (tests drive them by hand).
class CpuPacer {
 public:
  using Nanos = std::chrono::nanoseconds;
  struct Clocks {
    std::function<Nanos()> wall;        ///< monotonic wall time
    std::function<Nanos()> thread_cpu;  ///< CPU time of the calling thread
    std::function<void(Nanos)> sleep;   ///< sleeps the calling thread
  };
  /// The real clocks: steady_clock, CLOCK_THREAD_CPUTIME_ID, this_thread::sleep_for.
  static Clocks RealClocks();
  CpuPacer(double cores, Nanos burst, Clocks clocks = RealClocks());
  /// After each piece of work on the paced thread: charges the CPU time it used, then sleeps
  /// until the bucket is out of debt. Returns the time slept.
  Nanos AfterWork();

 private:
  double cores_;
  Nanos burst_;
  Clocks clocks_;
  double tokens_ns_;  ///< CPU time the thread may still use now (negative: in debt)
  Nanos last_wall_, last_cpu_;
};

class TenantAdmission {
 public:
  using Clock = std::chrono::steady_clock;
  struct Limits {
    int max_inflight = 0;  ///< requests in progress at once (0: no limit)
    double rate = 0;       ///< requests admitted per second (0: no limit)
    double burst = 1;      ///< requests admitted at once after a quiet spell (>= 1)
  };
  /// `timers`: where refills are scheduled (null: the caller calls Pump, tests); `now`: the
  /// clock (tests pass their own).
  TenantAdmission(Limits limits, boost::asio::io_context* timers,
                  std::function<Clock::time_point()> now = Clock::now);
  ~TenantAdmission();

  /// True when requests go through without admission (no limits set).
  bool unlimited() const;
  /// A place now (`*admission` set; releasing it frees the place), or false with `resume`
  /// queued: it is called with a place later (from any thread), or with null at shutdown.
  bool Acquire(Admission* admission, Resume resume);
  /// Admits waiting requests that fit now (after a release or a refill).
  void Pump();
  /// Shutdown: every waiting request is told it will not be served.
  void DropWaiting();
  int64_t waits() const;
  int waiting() const;
  int inflight() const;

 private:
  struct Core;  // shared with the admissions handed out, which may outlive this object
  std::shared_ptr<Core> core_;
  std::unique_ptr<boost::asio::steady_timer> timer_;
};

}  // namespace loantwin
