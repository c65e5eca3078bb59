#include "serve/http_session.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <optional>

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
  RequestParser(std::string* target, std::string* body) : target_(target), body_(body) {
    target_->clear();
    body_->clear();
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

  std::string *target_, *body_;
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
    {
      std::lock_guard<std::mutex> lock(worker_->mu);
      worker_->sessions[this] = weak_from_this();
    }
    net::dispatch(socket_.get_executor(), [self = shared_from_this()] { self->ReadHeader(); });
  }

  ~Session() {
    std::lock_guard<std::mutex> lock(worker_->mu);
    worker_->sessions.erase(this);
  }

  /// On the worker's thread: close when past the deadline (idle, slow request or response).
  void Expire(Clock::time_point now) {
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
    parser_.emplace(&target_, &body_);
    parser_->body_limit(ctx_->limits.body_limit);
    parser_->header_limit(16 * 1024);
    deadline_ = Clock::now() + std::chrono::milliseconds(ctx_->limits.idle_timeout_ms);
    http::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadErrorReply(ec);
    busy_ = true;
    // Beast reads at most the buffer's spare capacity (512 bytes when it has none): room for
    // the whole body makes it one recv(2) instead of one per 512 bytes. The capacity stays
    // for the connection's next requests (bounded by --max-body).
    if (const auto length = parser_->content_length())
      buffer_.reserve(buffer_.size() + static_cast<size_t>(*length));
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
      close_ = true;
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
      ctx_->handler->Dispatch(*worker_, parser_->method(), target_, body_, respond);
    } catch (const std::exception& e) {
      spdlog::error("request {} failed: {}", target_, e.what());
      respond(ErrorReply(500, std::string("internal error: ") + e.what()));
    }
  }

  /// The one response to request `seq` (later calls are ignored).
  void Finish(uint64_t seq, Reply reply) {
    if (seq != seq_ || answered_) return;
    answered_ = true;
    ctx_->in_flight->fetch_sub(1);
    Send(std::move(reply));
  }

  void Send(Reply reply) {
    busy_ = true;
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
                       if (ec || !keep_alive) return self->Close();
                       self->ReadHeader();
                     });
  }

  void Close() {
    deadline_ = Clock::time_point::max();
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  static constexpr size_t kReadBuffer = 8192;  ///< initial read size (headers and small bodies)
  Socket socket_;
  HttpContext* ctx_;
  Worker* worker_;
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  std::string target_, body_, header_out_, body_out_;
  int version_ = 11;
  bool close_ = false, busy_ = false, answered_ = true;
  uint64_t seq_ = 0;
  Clock::time_point deadline_ = Clock::time_point::max();
};

namespace {

void Accept(tcp::acceptor& acceptor, std::vector<std::unique_ptr<Worker>>& workers,
            HttpContext& ctx, size_t next) {
  Worker& w = *workers[next % workers.size()];
  acceptor.async_accept(w.ioc,
                        [&acceptor, &workers, &ctx, &w, next](beast::error_code ec, Socket sock) {
                          if (ec) {
                            if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
                            spdlog::warn("accept: {}", ec.message());
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

void SweepSessions(Worker& w, const HttpLimits& limits) {
  const auto now = Clock::now();
  for (auto& s : LiveSessions(w)) s->Expire(now);
  const int period =
      std::clamp(std::min(limits.read_timeout_ms, limits.idle_timeout_ms) / 4, 1, 250);
  w.sweeper.expires_after(std::chrono::milliseconds(period));
  w.sweeper.async_wait([&w, &limits](beast::error_code ec) {
    if (!ec) SweepSessions(w, limits);
  });
}

void CloseIdleSessions(Worker& w) {
  for (auto& s : LiveSessions(w)) s->CloseIfIdle();
}

}  // namespace loantwin
