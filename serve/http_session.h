#pragma once
// The HTTP/1.1 layer of the decision engine (Boost.Asio/Beast): one event loop per I/O thread
// (Worker), keep-alive sessions with a lean request parser (method, target, version,
// keep-alive, Expect: 100-continue, body), header/body/idle deadlines enforced by a per-thread
// sweep, hand-written response heads sent with the body in one write. What a request means is
// the RequestHandler's business; a session only reads requests and writes replies.

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http/verb.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "serve/batcher.h"
#include "serve/reply.h"

namespace loantwin {

class Session;

/// One I/O thread with its own io_context: its connections, batches and policy calls never
/// need a lock or a thread hop.
struct Worker {
  explicit Worker(int index) : index(index) {}
  const int index;
  std::mutex mu;  ///< guards sessions (touched at connect and disconnect, by sweeps)
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
  boost::asio::io_context ioc{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work =
      boost::asio::make_work_guard(ioc);
  boost::asio::steady_timer sweeper{ioc};  ///< closes connections past their deadline
  std::thread thread;
};

/// What a listener serves (the decision port, and an optional separate admin port).
struct ListenerRoutes {
  bool decisions = true;  ///< /v1/...
  bool admin = true;      ///< /admin/...
};

/// A request as the handler sees it. The views stay valid until `respond` is called.
struct HttpRequest {
  boost::beast::http::verb method = boost::beast::http::verb::unknown;
  std::string_view target;
  std::string_view authorization;  ///< the Authorization header's value ("" if none)
  const std::string* body = nullptr;
  ListenerRoutes routes;  ///< of the listener the request came in on
};

/// Held by a session from a request's admission until its response is sent; releasing it
/// (destroying the last copy) frees the place (or hands it to a waiting request).
using Admission = std::shared_ptr<void>;
/// Called once for a request that had to wait: with its admission, or null when it will never
/// get one (shutdown); from any thread.
using Resume = std::function<void(Admission)>;

class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  /// Called on the worker's thread when a request's header has been read, before its body:
  /// true to go on (with `*admission` set or left empty); false when the request must wait -
  /// its body is not read (TCP back-pressure) until the handler calls `resume`.
  virtual bool Admit(std::string_view target, std::string_view authorization, Admission* admission,
                     Resume resume) {
    return true;
  }
  /// Handles one request on worker `w`'s thread; `respond` may be called from any thread,
  /// once. An exception is answered 500.
  virtual void Dispatch(Worker& w, const HttpRequest& request, Respond respond) = 0;
};

struct HttpLimits {
  size_t body_limit = 8 << 20;  ///< bytes; beyond: 413
  int read_timeout_ms = 10000;  ///< a request (after its first byte) must arrive within this
  int idle_timeout_ms = 30000;  ///< keep-alive connections idle longer are closed
  /// Request-body bytes held by all connections together (a body counts from its header, by
  /// its Content-Length, or the body limit when chunked, until its response is sent); a
  /// request that would pass it is answered 503.
  uint64_t max_inflight_body = uint64_t{256} << 20;
  int max_connections = 10000;  ///< open connections; more are closed at accept
};

/// What sessions share with the server.
struct HttpContext {
  HttpLimits limits;
  ListenerRoutes routes;
  RequestHandler* handler = nullptr;
  std::atomic<bool>* draining = nullptr;  ///< set: answer what was read, then close
  std::atomic<int>* in_flight = nullptr;  ///< requests read and not yet answered
  std::atomic<uint64_t> body_bytes{0};    ///< request-body bytes held (max_inflight_body)
  std::atomic<int> connections{0};        ///< open sessions (max_connections)
  std::atomic<int64_t> refused_connections{0}, accept_errors{0};
  std::atomic<bool> trim_pending{false};  ///< large buffers were freed: return memory to the OS
};

/// Accepts connections on `acceptor` (running on workers[0]'s io_context), dealing them to the
/// workers in turn, until the acceptor closes or the server drains.
void StartAccepting(boost::asio::ip::tcp::acceptor& acceptor,
                    std::vector<std::unique_ptr<Worker>>& workers, HttpContext& context);
/// Closes `w`'s connections past their deadline; re-arms itself on w.sweeper.
void SweepSessions(Worker& w, HttpContext& context);
/// Closes `w`'s connections that are not in the middle of a request (shutdown).
void CloseIdleSessions(Worker& w);

}  // namespace loantwin
