#include "serve/http_session.h"

#include <fmt/format.h>
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <optional>

#include "core/log_text.h"

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace loantwin {
using Clock = std::chrono::steady_clock;

namespace {

using Socket = net::basic_stream_socket<tcp, net::io_context::executor_type>;

/// An HTTP request parser that keeps only what the server uses (method, target, version,
/// keep-alive, Expect: 100-continue, body): no header map to allocate per request.
class RequestParser : public http::basic_parser<true> {
 public:
  RequestParser(std::string* target, std::string* body, std::string* authorization)
      : target_(target), body_(body), authorization_(authorization) {
    target_->clear();
    body_->clear();
    authorization_->clear();
  }
  http::verb method() const { return method_; }
  int version() const { return version_; }
  bool expect_continue() const { return expect_continue_; }

 private:
  void on_request_impl(http::verb method, beast::string_view, beast::string_view target,
                       int version, beast::error_code&) override {
    method_ = method;
    target_->assign(target.data(), target.size());
    version_ = version;
  }
  void on_response_impl(int, beast::string_view, int, beast::error_code& ec) override {
    ec = http::error::bad_version;  // never called for requests
  }
  void on_field_impl(http::field name, beast::string_view, beast::string_view value,
                     beast::error_code&) override {
    if (name == http::field::expect && beast::iequals(value, "100-continue"))
      expect_continue_ = true;
    else if (name == http::field::authorization)
      authorization_->assign(value.data(), value.size());
  }
  void on_header_impl(beast::error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>& length,
                         beast::error_code&) override {
    if (length) body_->reserve(static_cast<size_t>(*length));
  }
  size_t on_body_impl(beast::string_view data, beast::error_code&) override {
    body_->append(data.data(), data.size());
    return data.size();
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, beast::error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, beast::string_view data, beast::error_code&) override {
    body_->append(data.data(), data.size());
    return data.size();
  }
  void on_finish_impl(beast::error_code&) override {}

  std::string *target_, *body_, *authorization_;
  http::verb method_ = http::verb::unknown;
  int version_ = 11;
  bool expect_continue_ = false;
};

}  // namespace

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket socket, HttpContext* context, Worker* worker)
      : socket_(std::move(socket)), ctx_(context), worker_(worker) {}

  void Start() {
    ctx_->connections.fetch_add(1);
    {
      std::lock_guard<std::mutex> lock(worker_->mu);
      worker_->sessions[this] = weak_from_this();
    }
    net::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->ReadHeader(); });
  }

  ~Session() {
    ReleaseBody();
    ctx_->connections.fetch_sub(1);
    std::lock_guard<std::mutex> lock(worker_->mu);
    worker_->sessions.erase(this);
  }

  /// On the worker's thread: close when past the deadline (idle, slow request or response).
  /// A request's header counts against the read timeout from the sweep that first sees its
  /// bytes (the idle timeout governs only a connection that sent nothing).
  void Expire(Clock::time_point now) {
    if (!busy_ && buffer_.size() > 0 && header_seen_ == Clock::time_point::max()) {
      header_seen_ = now;
      deadline_ =
          std::min(deadline_, now + std::chrono::milliseconds(ctx_->limits.read_timeout_ms));
    }
    if (now > deadline_) Close();
  }
  void CloseIfIdle() {
    if (!busy_) Close();
  }

 private:
  void ReadHeader() {
    if (*ctx_->draining) return Close();
    if (buffer_.capacity() < kReadBuffer) buffer_.reserve(kReadBuffer);
    busy_ = false;
    parser_.emplace(&target_, &body_, &authorization_);
    parser_->body_limit(ctx_->limits.body_limit);
    parser_->header_limit(16 * 1024);
    const auto now = Clock::now();
    header_seen_ = Clock::time_point::max();
    deadline_ = now + std::chrono::milliseconds(buffer_.size() > 0 ? ctx_->limits.read_timeout_ms
                                                                   : ctx_->limits.idle_timeout_ms);
    http::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadErrorReply(ec);
    busy_ = true;
    // The body's bytes count against the server-wide bound from now until the response.
    const auto length = parser_->content_length();
    reserved_ =
        length ? static_cast<size_t>(*length) : (parser_->chunked() ? ctx_->limits.body_limit : 0);
    if (reserved_ > 0 &&
        ctx_->body_bytes.fetch_add(reserved_) + reserved_ > ctx_->limits.max_inflight_body) {
      ReleaseBody();
      close_ = drain_ = true;
      Reply r = ErrorReply(503, "server busy: too many request bytes in flight; retry");
      r.retry_after = 1;
      return Send(std::move(r));
    }
    // The handler may hold the request back (a tenant at its limit): its body stays unread
    // until a place frees.
    const bool admitted = ctx_->handler->Admit(
        target_, authorization_, &admission_, [self = shared_from_this()](Admission admission) {
          net::post(self->socket_.get_executor(),
                    [self, admission = std::move(admission)]() mutable {
                      if (!admission || !self->socket_.is_open()) return self->Close();
                      self->admission_ = std::move(admission);
                      self->ReadAdmittedBody();
                    });
        });
    if (!admitted) return;
    ReadAdmittedBody();
  }

  void ReadAdmittedBody() {
    const auto length = parser_->content_length();
    // Beast reads at most the buffer's spare capacity (512 bytes when it has none): room for
    // the whole body makes it one recv(2) instead of one per 512 bytes. The capacity stays
    // for the connection's next requests (bounded by --max-body).
    if (length) buffer_.reserve(buffer_.size() + static_cast<size_t>(*length));
    deadline_ = Clock::now() + std::chrono::milliseconds(ctx_->limits.read_timeout_ms);
    // The body usually came in the same read as the header: parse it from the buffer, which
    // saves an asynchronous step (and its trip through the event loop).
    parser_->eager(true);
    while (!parser_->is_done() && buffer_.size() > 0) {
      beast::error_code pec;
      const size_t used = parser_->put(buffer_.data(), pec);
      buffer_.consume(used);
      if (pec == http::error::need_more || (!pec && used == 0)) break;
      if (pec) return OnReadErrorReply(pec);
    }
    if (parser_->is_done()) return OnRead({});
    if (parser_->expect_continue()) {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      return net::async_write(socket_, net::buffer(kContinue),
                              [self = shared_from_this()](beast::error_code ec, size_t) {
                                if (ec) return self->Close();
                                self->ReadBody();
                              });
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnReadErrorReply(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      close_ = drain_ = true;
      return Send(
          ErrorReply(413, fmt::format("body larger than {} bytes", ctx_->limits.body_limit)));
    }
    if (ec == http::error::header_limit) {
      close_ = true;
      return Send(ErrorReply(431, "request header too large"));
    }
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset || ec == net::error::eof ||
        ec == net::error::bad_descriptor)
      return Close();
    close_ = true;
    Send(ErrorReply(400, std::string("malformed HTTP request: ") + ec.message()));
  }

  void OnRead(beast::error_code ec) {
    if (ec) return OnReadErrorReply(ec);
    deadline_ = Clock::time_point::max();  // being answered
    version_ = parser_->version();
    close_ = !parser_->keep_alive() || *ctx_->draining;
    ctx_->in_flight->fetch_add(1);
    const uint64_t seq = ++seq_;
    answered_ = false;
    Respond respond = [self = shared_from_this(), seq](Reply reply) {
      if (self->socket_.get_executor().running_in_this_thread())
        return self->Finish(seq, std::move(reply));
      net::post(self->socket_.get_executor(), [self, seq, reply = std::move(reply)]() mutable {
        self->Finish(seq, std::move(reply));
      });
    };
    try {  // the server never crashes on input: anything unexpected is a 500
      HttpRequest request;
      request.method = parser_->method();
      request.target = target_;
      request.authorization = authorization_;
      request.body = &body_;
      request.routes = ctx_->routes;
      ctx_->handler->Dispatch(*worker_, request, respond);
    } catch (const std::exception& e) {
      spdlog::error("request {} failed: {}", EscapeForLog(target_), e.what());
      respond(ErrorReply(500, std::string("internal error: ") + e.what()));
    }
  }

  /// The one response to request `seq` (later calls are ignored).
  void Finish(uint64_t seq, Reply reply) {
    if (seq != seq_ || answered_) return;
    answered_ = true;
    admission_.reset();  // the next waiting request of the tenant may go on
    ctx_->in_flight->fetch_sub(1);
    Send(std::move(reply));
  }

  void Send(Reply reply) {
    busy_ = true;
    // The request is answered: its body's bytes are released, and a large body's memory with
    // them (kept capacity would hold --max-body per idle connection).
    ReleaseBody();
    if (body_.capacity() > kKeepCapacity || buffer_.capacity() > kKeepCapacity + kReadBuffer) {
      std::string().swap(body_);
      buffer_.shrink_to_fit();
      ctx_->trim_pending.store(true, std::memory_order_relaxed);
    }
    const bool keep_alive = !close_ && !*ctx_->draining;
    const auto status = static_cast<http::status>(reply.status);
    const beast::string_view reason = http::obsolete_reason(status);
    header_out_.clear();
    fmt::format_to(std::back_inserter(header_out_),
                   "HTTP/1.{} {} {}\r\nServer: loantwin\r\nContent-Type: {}\r\nContent-Length: "
                   "{}\r\n",
                   version_ == 10 ? 0 : 1, reply.status,
                   std::string_view(reason.data(), reason.size()), reply.content_type,
                   reply.body.size());
    if (reply.retry_after > 0)
      fmt::format_to(std::back_inserter(header_out_), "Retry-After: {}\r\n", reply.retry_after);
    if (!keep_alive)
      header_out_ += "Connection: close\r\n";
    else if (version_ == 10)
      header_out_ += "Connection: keep-alive\r\n";
    header_out_ += "\r\n";
    body_out_ = std::move(reply.body);
    deadline_ = Clock::now() + std::chrono::milliseconds(ctx_->limits.read_timeout_ms);
    const std::array<net::const_buffer, 2> buffers = {net::buffer(header_out_),
                                                      net::buffer(body_out_)};
    net::async_write(socket_, buffers,
                     [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                       if (!ec && self->drain_) return self->Drain();
                       if (ec || !keep_alive) return self->Close();
                       self->ReadHeader();
                     });
  }

  /// After a 413 sent while the client may still be uploading: stop sending, then read and
  /// drop what it sends (up to kDrainBytes, within the read timeout) until it closes, so it
  /// reads the status instead of a reset connection.
  void Drain() {
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    deadline_ = Clock::now() + std::chrono::milliseconds(ctx_->limits.read_timeout_ms);
    buffer_.clear();
    DrainSome();
  }
  void DrainSome() {
    if (discarded_ >= kDrainBytes) return Close();
    socket_.async_read_some(buffer_.prepare(kReadBuffer),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) return self->Close();
                              self->discarded_ += n;
                              self->DrainSome();
                            });
  }

  void ReleaseBody() {
    if (reserved_ > 0) ctx_->body_bytes.fetch_sub(reserved_);
    reserved_ = 0;
  }

  void Close() {
    admission_.reset();
    deadline_ = Clock::time_point::max();
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  static constexpr size_t kReadBuffer = 8192;  ///< initial read size (headers and small bodies)
  static constexpr size_t kDrainBytes = size_t{64} << 20;    ///< most dropped after a 413
  static constexpr size_t kKeepCapacity = size_t{64} << 10;  ///< body memory kept for reuse
  Socket socket_;
  HttpContext* ctx_;
  Worker* worker_;
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  std::string target_, body_, authorization_, header_out_, body_out_;
  int version_ = 11;
  bool close_ = false, busy_ = false, answered_ = true, drain_ = false;
  uint64_t seq_ = 0;
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point header_seen_ = Clock::time_point::max();  ///< a header's first bytes seen
  size_t discarded_ = 0;  ///< bytes read and dropped after a 413
  size_t reserved_ = 0;   ///< this request's share of HttpContext::body_bytes
  Admission admission_;   ///< the handler's admission of the request being served
};

namespace {

void Accept(tcp::acceptor& acceptor, std::vector<std::unique_ptr<Worker>>& workers,
            HttpContext& ctx, size_t next, int backoff_ms = 0);

/// After an accept error: wait (10 ms, doubling to 1 s while errors repeat) before accepting
/// again. Without it, a process out of file descriptors spins on accept at 100% CPU (the
/// pending connection stays in the backlog and is reported again at once).
void AcceptLater(tcp::acceptor& acceptor, std::vector<std::unique_ptr<Worker>>& workers,
                 HttpContext& ctx, size_t next, int backoff_ms) {
  auto timer = std::make_shared<net::steady_timer>(acceptor.get_executor());
  timer->expires_after(std::chrono::milliseconds(backoff_ms));
  timer->async_wait([timer, &acceptor, &workers, &ctx, next, backoff_ms](beast::error_code ec) {
    if (ec || !acceptor.is_open() || *ctx.draining) return;
    Accept(acceptor, workers, ctx, next, backoff_ms);
  });
}

void Accept(tcp::acceptor& acceptor, std::vector<std::unique_ptr<Worker>>& workers,
            HttpContext& ctx, size_t next, int backoff_ms) {
  Worker& w = *workers[next % workers.size()];
  acceptor.async_accept(
      w.ioc, [&acceptor, &workers, &ctx, &w, next, backoff_ms](beast::error_code ec, Socket sock) {
        if (ec) {
          if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
          ctx.accept_errors.fetch_add(1);
          static LogRateLimiter limiter;
          std::string note;
          if (limiter.Allow(&note)) spdlog::warn("accept: {}{}; backing off", ec.message(), note);
          const int wait = std::clamp(backoff_ms * 2, 10, 1000);
          if (!*ctx.draining) AcceptLater(acceptor, workers, ctx, next, wait);
          return;
        }
        if (ctx.connections.load() >= ctx.limits.max_connections) {
          ctx.refused_connections.fetch_add(1);
          static LogRateLimiter limiter;
          std::string note;
          if (limiter.Allow(&note))
            spdlog::warn("{} connections open (--max-connections): closing a new one{}",
                         ctx.limits.max_connections, note);
          beast::error_code ignored;
          sock.close(ignored);
        } else {
          sock.set_option(tcp::no_delay(true), ec);
          std::make_shared<Session>(std::move(sock), &ctx, &w)->Start();
        }
        if (!*ctx.draining) Accept(acceptor, workers, ctx, next + 1);
      });
}

/// `w`'s open sessions, held alive (collected under the lock, used outside it: using them may
/// end sessions, which takes the lock).
std::vector<std::shared_ptr<Session>> LiveSessions(Worker& w) {
  std::vector<std::shared_ptr<Session>> live;
  std::lock_guard<std::mutex> lock(w.mu);
  for (auto& [ptr, weak] : w.sessions)
    if (auto s = weak.lock()) live.push_back(std::move(s));
  return live;
}

}  // namespace

void StartAccepting(tcp::acceptor& acceptor, std::vector<std::unique_ptr<Worker>>& workers,
                    HttpContext& context) {
  Accept(acceptor, workers, context, 0);
}

void SweepSessions(Worker& w, HttpContext& ctx) {
  const auto now = Clock::now();
  for (auto& s : LiveSessions(w)) s->Expire(now);
  // Freed request buffers go back to the OS (glibc keeps freed heap otherwise): at most once
  // a second, by whichever thread sweeps first.
  static std::atomic<int64_t> next_trim_ms{0};
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  int64_t due = next_trim_ms.load(std::memory_order_relaxed);
  if (ctx.trim_pending.load(std::memory_order_relaxed) && now_ms >= due &&
      next_trim_ms.compare_exchange_strong(due, now_ms + 1000)) {
    ctx.trim_pending.store(false, std::memory_order_relaxed);
    ::malloc_trim(0);
  }
  const HttpLimits& limits = ctx.limits;
  const int period =
      std::clamp(std::min(limits.read_timeout_ms, limits.idle_timeout_ms) / 4, 1, 250);
  w.sweeper.expires_after(std::chrono::milliseconds(period));
  w.sweeper.async_wait([&w, &ctx](beast::error_code ec) {
    if (!ec) SweepSessions(w, ctx);
  });
}

void CloseIdleSessions(Worker& w) {
  for (auto& s : LiveSessions(w)) s->CloseIfIdle();
}

}  // namespace loantwin
