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
