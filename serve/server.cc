#include "serve/server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string_view>
#include <thread>

#include "core/log_text.h"
#include "env/twin/product.h"
#include "env/twin_env.h"
#include "serve/audit.h"
#include "serve/batcher.h"
#include "serve/bundle.h"
#include "serve/credit_application.h"
#include "serve/decide_request.h"
#include "serve/http_session.h"
#include "serve/metrics.h"

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using json = nlohmann::json;

namespace loantwin {
using Clock = std::chrono::steady_clock;

// The server's state and its routes. Sessions (serve/http_session.*) read requests and call
// Dispatch on their I/O thread; decisions go through that thread's Batcher (serve/batcher.*).
struct Server::Impl : RequestHandler {
  ServerOptions opt;
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<tcp::acceptor> acceptor;     ///< on workers[0]
  std::shared_ptr<const PolicyBundle> bundle;  // std::atomic_load / atomic_store
  std::mutex reload_mu;
  std::unique_ptr<QueueBudget> budget;  ///< observations waiting per role, all threads
  std::map<std::string, std::string, std::less<>> decide_routes;  ///< role -> metrics label
  std::unique_ptr<AuditLog> audit;
  ServeMetrics metrics;
  HttpContext http;
  std::atomic<bool> ready{false}, draining{false};
  std::atomic<int64_t> sequence{0};
  std::string id_prefix;
  std::atomic<int> in_flight{0};
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;
  std::unique_ptr<net::signal_set> signals;

  std::shared_ptr<const PolicyBundle> Bundle() const { return std::atomic_load(&bundle); }

  std::string NextId() { return fmt::format("{}-{:08x}", id_prefix, sequence.fetch_add(1) + 1); }

  /// Loads `dir` (empty: the current bundle's directory) and swaps it in; "" or the error.
  std::string Reload(const std::string& dir);

  void Dispatch(Worker& w, http::verb method, std::string_view target, const std::string& body,
                Respond respond) override;
  void Decide(Worker& w, const std::string& role_name, const std::string& body, Respond respond);
  void Application(Worker& w, const std::string& body, Respond respond);
  /// The decide response for `rows` decisions (and their audit lines).
  void AnswerDecisions(const ServedRole& role, bool batch, int rows, std::string_view raw,
                       const std::vector<std::string>& row_requests, std::string_view route,
                       const int64_t* actions, const Respond& respond);
  /// An application's final answer (approve or decline), audited.
  void AnswerApplication(const PolicyBundle& b, std::string_view raw, json out,
                         const Respond& respond);
};

// ---------------------------------------------------------------------------------------------
// Routing and handlers

namespace {
/// A decision whose audit record could not be written is not answered: 503, logged (the
/// message names the log file and the system error, never request contents).
Reply AuditFailure(const std::exception& e) {
  static LogRateLimiter limiter;
  int64_t held = 0;
  if (limiter.Allow(&held))
    spdlog::error("{}{}", e.what(),
                  held ? fmt::format(" ({} more such failures not logged)", held) : "");
  Reply r = ErrorReply(503, "decision not made: its audit record could not be written");
  r.retry_after = 1;
  return r;
}
}  // namespace

void Server::Impl::Dispatch(Worker& w, http::verb method, std::string_view full_target,
                            const std::string& body, Respond respond) {
  const auto t0 = Clock::now();
  const std::string_view target = full_target.substr(0, full_target.find('?'));
  const bool is_get = method == http::verb::get, is_post = method == http::verb::post;
  auto finish = [this, t0, respond = std::move(respond)](std::string_view r, Reply reply) {
    metrics.ObserveRequest(r, reply.status,
                           std::chrono::duration<double>(Clock::now() - t0).count());
    respond(std::move(reply));
  };
  static const std::set<std::string, std::less<>> kFixedRoutes = {
      "/healthz", "/readyz", "/metrics", "/admin/reload", "/v1/credit/applications"};
  const auto fixed = kFixedRoutes.find(target);
  const std::string_view route =
      fixed == kFixedRoutes.end() ? std::string_view("unknown") : std::string_view(*fixed);
  auto method_not_allowed = [&](const char* allowed) {
    Reply r = ErrorReply(405, fmt::format("{} accepts {} only", target, allowed));
    finish(route, std::move(r));
  };
  if (target == "/healthz") {
    if (!is_get) return method_not_allowed("GET");
    return finish(route, JsonReply(200, {{"status", "alive"}}));
  }
  if (target == "/readyz") {
    if (!is_get) return method_not_allowed("GET");
    if (!ready || draining)
      return finish(route, JsonReply(503, {{"status", draining ? "draining" : "loading"}}));
    if (audit && !audit->Probe())  // no decision may be answered without its record
      return finish(route, JsonReply(503, {{"status", "audit log not writable"}}));
    return finish(route, JsonReply(200, {{"status", "ready"}, {"bundle", Bundle()->version()}}));
  }
  if (target == "/metrics") {
    if (!is_get) return method_not_allowed("GET");
    Reply r{200, metrics.Render(Bundle()->version(), budget->Depths()), "text/plain; version=0.0.4",
            0};
    return finish(route, std::move(r));
  }
  if (target == "/admin/reload") {
    if (!is_post) return method_not_allowed("POST");
    std::string dir;
    if (!body.empty()) {
      json j;
      if (!ParseJsonObject(body, &j).empty())
        return finish(route,
                      ErrorReply(400, "body must be a JSON object {\"bundle\": <dir>} or empty"));
      for (const auto& [k, v] : j.items())
        if (k != "bundle") return finish(route, ErrorReply(400, "unknown key '" + k + "'", k));
      if (j.contains("bundle")) {
        if (!j["bundle"].is_string())
          return finish(route, ErrorReply(400, "bundle must be a string", "bundle"));
        dir = j["bundle"];
      }
    }
    // Loading and warming up takes a while: off the I/O threads.
    std::thread([this, dir, finish, route]() mutable {
      const std::string error = Reload(dir);
      if (error.empty())
        finish(route, JsonReply(200, {{"status", "reloaded"}, {"bundle", Bundle()->version()}}));
      else
        finish(route, JsonReply(422, {{"error", "reload failed: " + error},
                                      {"serving", Bundle()->version()}}));
    }).detach();
    return;
  }
  constexpr std::string_view prefix = "/v1/roles/", suffix = "/decide";
  if (target.substr(0, prefix.size()) == prefix && target.size() > prefix.size() + suffix.size() &&
      target.substr(target.size() - suffix.size()) == suffix) {
    const std::string role(
        target.substr(prefix.size(), target.size() - prefix.size() - suffix.size()));
    const auto known = decide_routes.find(role);
    const std::string_view label = known == decide_routes.end() ? std::string_view("unknown")
                                                                : std::string_view(known->second);
    if (!is_post) return method_not_allowed("POST");
    return Decide(w, role, body, [finish, label](Reply r) { finish(label, std::move(r)); });
  }
  if (target == "/v1/credit/applications") {
    if (!is_post) return method_not_allowed("POST");
    return Application(w, body, [finish, route](Reply r) { finish(route, std::move(r)); });
  }
  finish(route, ErrorReply(404, fmt::format("no route {}", target)));
}

void Server::Impl::Decide(Worker& w, const std::string& role_name, const std::string& body,
                          Respond respond) {
  auto b = Bundle();
  const ServedRole* role = b->role(role_name);
  if (!role) {
    std::string names;
    for (const auto& [n, r] : b->roles()) names += (names.empty() ? "" : ", ") + n;
    return respond(ErrorReply(
        404, fmt::format("unknown role '{}' (this bundle serves: {})", role_name, names)));
  }
  // Streaming parse straight into the observation rows: no JSON tree on the hot path.
  auto request = std::make_shared<DecideRequest>();
  BadRequest error;
  if (!ParseDecideRequest(body, *role, opt.max_batch_request, audit != nullptr, request.get(),
                          &error))
    return respond(ErrorReply(400, error.message, error.field));
  const auto known = decide_routes.find(role_name);
  const std::string_view route =
      known == decide_routes.end() ? std::string_view("unknown") : std::string_view(known->second);
  // The session keeps the body until the response is sent: the audit record reads it there.
  const std::string_view raw = audit ? std::string_view(body) : std::string_view();
  Job job;
  job.bundle = b;
  job.role = role;
  job.n = request->rows;
  job.obs = std::move(request->obs);
  job.mask = std::move(request->masks);
  job.respond = respond;
  // `b` keeps the bundle (and so `role`) alive until the answer is written.
  job.done = [this, b, role, request, raw, route, respond](const int64_t* actions) {
    AnswerDecisions(*role, request->batch, request->rows, raw, request->row_requests, route,
                    actions, respond);
  };
  w.batcher->SubmitOrReject(std::move(job));
}

void Server::Impl::AnswerDecisions(const ServedRole& role, bool batch, int rows,
                                   std::string_view raw,
                                   const std::vector<std::string>& row_requests,
                                   std::string_view route, const int64_t* actions,
                                   const Respond& respond) {
  const size_t dims = role.components.size();
  auto action = [&](size_t i, std::string& out) {
    out += "{";
    for (size_t c = 0; c < dims; ++c) {
      if (c) out += ',';
      out += role.action_json[c][actions[i * dims + c]];
    }
    out += "}";
  };
  const std::string& head = role.response_head;
  std::string out = head;
  std::vector<AuditEntry> entries;
  std::vector<std::string> responses;  // audit lines of a batch: one per decision
  if (batch) {
    out += "\"decisions\":[";
    if (audit) responses.resize(rows);
    for (size_t i = 0; i < static_cast<size_t>(rows); ++i) {
      const size_t from = out.size() + (i ? 1 : 0);
      out += i ? ",{\"decision_id\":\"" : "{\"decision_id\":\"";
      out += NextId() + "\",\"action\":";
      action(i, out);
      out += "}";
      if (audit) {  // the decision as a single response, the observation as its request
        responses[i] = head;
        responses[i].append(out, from + 1, std::string::npos);
      }
    }
    out += "]}";
    if (audit)
      for (int i = 0; i < rows; ++i) entries.push_back({row_requests[i], responses[i]});
  } else {
    out += "\"decision_id\":\"" + NextId() + "\",\"action\":";
    action(0, out);
    out += "}";
    entries.push_back({raw, out});
  }
  if (audit) {
    try {
      audit->Append(route, entries);
    } catch (const std::exception& e) {
      return respond(AuditFailure(e));
    }
  }
  respond(Reply{200, std::move(out), "application/json", 0});
}

void Server::Impl::AnswerApplication(const PolicyBundle& b, std::string_view raw, json out,
                                     const Respond& respond) {
  out["decision_id"] = NextId();
  out["policy_version"] = b.version();
  try {
    if (audit) audit->Append("/v1/credit/applications", raw, out.dump());
  } catch (const std::exception& e) {
    return respond(AuditFailure(e));
  }
  respond(JsonReply(200, out));
}

void Server::Impl::Application(Worker& w, const std::string& body, Respond respond) {
  auto b = Bundle();
  const ServedRole* credit = b->role("credit");
  const ServedRole* pricing = b->role("pricing");
  if (!credit) return respond(ErrorReply(404, "this bundle has no credit policy"));
  json req;
  if (auto error = ParseJsonObject(body, &req); !error.empty())
    return respond(ErrorReply(400, error));
  Job job;
  auto app = std::make_shared<CreditApplication>();
  try {
    *app = ParseCreditApplication(req, *credit, pricing, &job.obs);
  } catch (const BadRequest& e) {
    return respond(ErrorReply(400, e.message, e.field));
  }
  job.n = 1;
  job.mask.assign(credit->mask_width, 1);
  const ProductSpec& spec = b->institution().products[app->product].spec;
  const std::string band_name = kBandNames[app->band];
  // The session keeps the body until the response is sent: the audit record reads it there.
  const std::string_view raw(body);
  auto decline = [this, b, raw, respond](const Decline& d, json extra) {
    json out = {{"decision", "decline"}, {"decided_by", d.by}, {"reason", d.reason}};
    for (auto& [k, v] : extra.items()) out[k] = v;
    AnswerApplication(*b, raw, std::move(out), respond);
  };
  if (auto d = UnderwritingRules(b->institution(), *app))  // rules that need no policy
    return decline(*d, {{"band", band_name}});
  // The credit policy's cutoff for the product, then pricing.
  const std::string product = kProductNames[app->product];
  job.bundle = b;
  job.role = credit;
  job.respond = respond;
  job.done = [this, wp = &w, b, app, credit, pricing, product, band_name, raw, respond, decline,
              spec](const int64_t* actions) {
    const auto cutoff = CutoffFromActions(*credit, product, actions);
    if (!cutoff) return respond(ErrorReply(500, "credit policy has no cutoff for " + product));
    if (app->band > cutoff->band)
      return decline({"policy:credit", fmt::format("band {} is worse than the credit policy's "
                                                   "cutoff ({})",
                                                   band_name, cutoff->meaning)},
                     {{"band", band_name}, {"cutoff", cutoff->meaning}});
    auto price = [=](double offset, const std::string& priced_by) {
      Offer offer;
      try {
        offer = PriceApplication(*app, spec, *credit, offset, priced_by, cutoff->meaning);
      } catch (const BadRequest& e) {
        return respond(ErrorReply(400, e.message, e.field));
      }
      if (offer.decline) return decline(*offer.decline, offer.detail);
      json out = offer.detail;
      out["decision"] = "approve";
      out["decided_by"] = "policy:credit";
      out["reason"] =
          fmt::format("band {} within the credit policy's cutoff ({})", band_name, cutoff->meaning);
      AnswerApplication(*b, raw, std::move(out), respond);
    };
    if (!pricing) return price(0.0, "rule:standard_spread");
    Job pj;
    pj.bundle = b;
    pj.role = pricing;
    pj.n = 1;
    try {
      pj.obs = PricingObservation(*app, *pricing);
    } catch (const BadRequest& e) {
      return respond(ErrorReply(400, e.message, e.field));
    }
    pj.mask.assign(pricing->mask_width, 1);
    pj.respond = respond;
    pj.done = [pricing, product, price](const int64_t* pa) {
      if (const auto offset = PricingOffsetFromActions(*pricing, product, pa))
        return price(*offset, "policy:pricing");
      price(0.0, "rule:standard_spread");
    };
    wp->batcher->SubmitOrReject(std::move(pj));
  };
  w.batcher->SubmitOrReject(std::move(job));
}

// ---------------------------------------------------------------------------------------------

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.opt = std::move(options);
  ValidateFields(s.opt);  // every option within its range (VisitFields in server.h)
  if (s.opt.max_queue < s.opt.max_batch)
    throw std::invalid_argument("max_queue must be at least max_batch");
  s.bundle = PolicyBundle::Load(s.opt.bundle, s.opt.institution, s.opt.max_batch);
  if (!s.opt.audit_log.empty())
    s.audit = std::make_unique<AuditLog>(s.opt.audit_log, s.opt.audit_fsync);
  s.id_prefix = fmt::format("{:x}", std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
  const std::vector<std::string> roles(kTwinRoleNames.begin(), kTwinRoleNames.end());
  s.budget = std::make_unique<QueueBudget>(roles, s.opt.max_queue);
  for (int i = 0; i < s.opt.threads; ++i) {
    auto w = std::make_unique<Worker>(i);
    w->batcher = std::make_unique<Batcher>(
        w->ioc, BatchOptions{s.opt.max_batch, s.opt.max_delay_us}, *s.budget, roles,
        [&s](int rows) { s.metrics.ObserveBatch(rows); }, s.draining);
    s.workers.push_back(std::move(w));
  }
  for (const auto& role : roles)
    s.decide_routes.emplace(role, fmt::format("/v1/roles/{}/decide", role));
  s.http.limits = {s.opt.body_limit, s.opt.read_timeout_ms, s.opt.idle_timeout_ms};
  s.http.handler = &s;
  s.http.draining = &s.draining;
  s.http.in_flight = &s.in_flight;
  s.acceptor = std::make_unique<tcp::acceptor>(s.workers.front()->ioc);
  s.ready = true;
}

Server::~Server() {
  Shutdown();
  Wait();
}

void Server::Start() {
  Impl& s = *impl_;
  const tcp::endpoint ep(net::ip::make_address(s.opt.address), static_cast<uint16_t>(s.opt.port));
  s.acceptor->open(ep.protocol());
  s.acceptor->set_option(net::socket_base::reuse_address(true));
  s.acceptor->bind(ep);
  s.acceptor->listen(net::socket_base::max_listen_connections);
  if (s.opt.handle_signals) {
    s.signals = std::make_unique<net::signal_set>(s.workers.front()->ioc, SIGINT, SIGTERM, SIGHUP);
    auto handler = std::make_shared<std::function<void(beast::error_code, int)>>();
    *handler = [this, handler](beast::error_code ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        std::thread([this] { Reload(); }).detach();  // logs its result
        impl_->signals->async_wait(*handler);
        return;
      }
      spdlog::info("signal {}: shutting down", sig);
      std::thread([this] { Shutdown(); }).detach();
    };
    s.signals->async_wait(*handler);
  }
  StartAccepting(*s.acceptor, s.workers, s.http);
  for (auto& worker : s.workers) {
    Worker& w = *worker;
    SweepSessions(w, s.http.limits);
    w.thread = std::thread([&s, &w] {
      ConfigureTorchThread();  // the policy runs on this thread
      for (;;) {
        try {
          w.ioc.run();
          return;
        } catch (const std::exception& e) {  // a handler's bug must not take the server down
          spdlog::error("I/O thread {}: {}", w.index, e.what());
        }
      }
    });
  }
}

int Server::port() const {
  return impl_->acceptor->local_endpoint().port();
}

std::string Server::BundleVersion() const {
  return impl_->Bundle()->version();
}

int Server::QueuedObservations() const {
  int n = 0;
  for (const auto& [role, depth] : impl_->budget->Depths()) n += depth;
  return n;
}

std::string Server::Impl::Reload(const std::string& dir) {
  std::lock_guard<std::mutex> lock(reload_mu);
  try {
    auto b =
        PolicyBundle::Load(dir.empty() ? Bundle()->dir() : dir, opt.institution, opt.max_batch);
    std::atomic_store(&bundle, b);
    metrics.CountReload(true);
    spdlog::info("reloaded bundle {} ({})", b->dir(), b->version());
    return "";
  } catch (const std::exception& e) {
    metrics.CountReload(false);
    spdlog::error("reload failed, still serving {}: {}", Bundle()->version(), e.what());
    return e.what();
  }
}

std::string Server::Reload(const std::string& dir) {
  return impl_->Reload(dir);
}

void Server::Shutdown() {
  Impl& s = *impl_;
  if (s.draining.exchange(true)) return;
  s.ready = false;
  // Stop accepting; answer the requests already read (waiting batches run now); close
  // connections as they become idle.
  net::post(s.workers.front()->ioc, [&s] {
    beast::error_code ec;
    s.acceptor->close(ec);
    if (s.signals) s.signals->cancel(ec);
  });
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  for (;;) {
    for (auto& worker : s.workers) {
      Worker* w = worker.get();
      net::post(w->ioc, [w] {
        w->batcher->FlushAll();
        CloseIdleSessions(*w);
      });
    }
    bool open = false;
    for (auto& worker : s.workers) {
      std::lock_guard<std::mutex> lock(worker->mu);
      open |= !worker->sessions.empty();
    }
    if ((s.in_flight.load() == 0 && !open) || Clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& w : s.workers) {
    w->work.reset();
    w->ioc.stop();
  }
  for (auto& w : s.workers)
    if (w->thread.joinable() && w->thread.get_id() != std::this_thread::get_id()) w->thread.join();
  if (s.audit) s.audit->Sync();
  {
    std::lock_guard<std::mutex> lock(s.done_mu);
    s.done = true;
  }
  s.done_cv.notify_all();
}

void Server::Wait() {
  Impl& s = *impl_;
  std::unique_lock<std::mutex> lock(s.done_mu);
  s.done_cv.wait(lock, [&] { return s.done; });
}

}  // namespace loantwin
