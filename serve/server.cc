#include "serve/server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
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
  std::unique_ptr<tcp::acceptor> acceptor;        ///< on workers[0]
  std::unique_ptr<tcp::acceptor> admin_acceptor;  ///< --admin-address, on workers[0]
  HttpContext admin_http;                         ///< its sessions' context
  std::string admin_token;                        ///< empty: admin routes need no token
  std::string bundle_root;                        ///< canonical
  std::shared_ptr<const PolicyBundle> bundle;     // std::atomic_load / atomic_store
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

  void Dispatch(Worker& w, const HttpRequest& request, Respond respond) override;
  /// True when no admin token is set or the Authorization header carries it.
  bool Authorised(std::string_view authorization) const;
  /// The reload body's bundle directory, checked to lie under the bundle root; "" with `*error`
  /// set when it does not.
  std::string ReloadDirectory(const std::string& dir, std::string* error) const;
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
  std::string note;
  if (limiter.Allow(&note)) spdlog::error("{}{}", e.what(), note);
  Reply r = ErrorReply(503, "decision not made: its audit record could not be written");
  r.retry_after = 1;
  return r;
}
}  // namespace

bool Server::Impl::Authorised(std::string_view authorization) const {
  if (admin_token.empty()) return true;
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.substr(0, kBearer.size()) != kBearer) return false;
  const std::string_view given = authorization.substr(kBearer.size());
  // Constant time in the token's content: every byte is compared whatever differs first.
  unsigned diff = given.size() == admin_token.size() ? 0u : 1u;
  for (size_t i = 0; i < admin_token.size(); ++i)
    diff |= static_cast<unsigned char>(admin_token[i]) ^
            static_cast<unsigned char>(i < given.size() ? given[i] : 0);
  return diff == 0;
}

std::string Server::Impl::ReloadDirectory(const std::string& dir, std::string* error) const {
  std::error_code ec;
  const auto canonical = std::filesystem::weakly_canonical(dir, ec);
  const std::string path = ec ? std::string() : canonical.string();
  if (path.size() <= bundle_root.size() + 1 || path.compare(0, bundle_root.size(), bundle_root) ||
      path[bundle_root.size()] != '/') {
    *error = "bundle must be a directory under the bundle root " + bundle_root;
    return "";
  }
  return path;
}

void Server::Impl::Dispatch(Worker& w, const HttpRequest& request, Respond respond) {
  const http::verb method = request.method;
  const std::string_view full_target = request.target;
  const std::string& body = *request.body;
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
    std::string text = metrics.Render(Bundle()->version(), budget->Depths());
    text += fmt::format(
        "# HELP loantwin_connections Open connections.\n# TYPE loantwin_connections gauge\n"
        "loantwin_connections {}\n"
        "# HELP loantwin_request_body_bytes Request-body bytes held (--max-inflight-body).\n"
        "# TYPE loantwin_request_body_bytes gauge\nloantwin_request_body_bytes {}\n"
        "# HELP loantwin_connections_refused_total Connections closed at accept "
        "(--max-connections).\n# TYPE loantwin_connections_refused_total counter\n"
        "loantwin_connections_refused_total {}\n"
        "# HELP loantwin_accept_errors_total Failed accepts (e.g. out of file descriptors).\n"
        "# TYPE loantwin_accept_errors_total counter\nloantwin_accept_errors_total {}\n",
        http.connections.load(), http.body_bytes.load(), http.refused_connections.load(),
        http.accept_errors.load());
    Reply r{200, std::move(text), "text/plain; version=0.0.4", 0};
    return finish(route, std::move(r));
  }
  if (target.substr(0, 7) == "/admin/" && !request.routes.admin)
    return finish("unknown", ErrorReply(404, fmt::format("no route {} on this listener (admin "
                                                         "routes are on --admin-address)",
                                                         EscapeForLog(target, 64))));
  if (target == "/admin/reload") {
    if (!is_post) return method_not_allowed("POST");
    if (!Authorised(request.authorization))
      return finish(route,
                    ErrorReply(401, "admin routes need 'Authorization: Bearer <admin token>'"));
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
        std::string error;
        dir = ReloadDirectory(j["bundle"].get<std::string>(), &error);
        if (dir.empty()) return finish(route, ErrorReply(403, error, "bundle"));
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
  if (!request.routes.decisions && target.substr(0, 4) == "/v1/")
    return finish("unknown", ErrorReply(404,
                                        "decision routes are not served on the admin "
                                        "listener"));
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
  finish(route, ErrorReply(404, fmt::format("no route {}", EscapeForLog(target, 200))));
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

namespace {

bool IsLoopback(const std::string& address) {
  beast::error_code ec;
  const auto a = net::ip::make_address(address, ec);
  if (ec) throw std::invalid_argument("address '" + address + "': " + ec.message());
  return a.is_loopback();
}

/// The admin token, the bundle root and the refusal to expose admin routes without a token.
void ConfigureAdmin(Server::Impl& s) {
  const ServerOptions& o = s.opt;
  if (!o.admin_token_file.empty()) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(o.admin_token_file, ec))
      throw std::invalid_argument("--admin-token-file " + o.admin_token_file + ": no such file");
    std::ifstream in(o.admin_token_file);
    std::getline(in, s.admin_token);
    while (!s.admin_token.empty() && std::isspace(static_cast<unsigned char>(s.admin_token.back())))
      s.admin_token.pop_back();
    if (s.admin_token.empty())
      throw std::invalid_argument("--admin-token-file " + o.admin_token_file + ": empty");
  } else if (const char* env = std::getenv("LOANTWIN_ADMIN_TOKEN"); env && *env) {
    s.admin_token = env;
  }
  if (!s.admin_token.empty() && s.admin_token.size() < 16)
    throw std::invalid_argument("the admin token must be at least 16 characters");
  const std::string& admin_on = o.admin_address.empty() ? o.address : o.admin_address;
  if (s.admin_token.empty() && !IsLoopback(admin_on)) {
    if (!o.insecure_admin)
      throw std::invalid_argument(fmt::format(
          "/admin/ routes would be reachable on {} without authentication: give "
          "--admin-token-file (or LOANTWIN_ADMIN_TOKEN), or --admin-address 127.0.0.1, or "
          "--insecure-admin to accept the risk",
          admin_on));
    spdlog::warn("*** --insecure-admin: anyone who reaches {} can reload bundles under {} ***",
                 admin_on, o.bundle_root.empty() ? "the bundle's parent directory" : o.bundle_root);
  }
  if (!o.admin_address.empty()) IsLoopback(o.admin_address);  // a valid address
  std::error_code ec;
  const std::string root =
      o.bundle_root.empty() ? std::filesystem::weakly_canonical(o.bundle, ec).parent_path().string()
                            : std::filesystem::weakly_canonical(o.bundle_root, ec).string();
  if (ec || root.empty() || !std::filesystem::is_directory(root, ec))
    throw std::invalid_argument("--bundle-root " +
                                (o.bundle_root.empty() ? o.bundle : o.bundle_root) +
                                ": not a directory");
  s.bundle_root = root;
}

}  // namespace

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.opt = std::move(options);
  ValidateFields(s.opt);  // every option within its range (VisitFields in server.h)
  if (s.opt.max_queue < s.opt.max_batch)
    throw std::invalid_argument("max_queue must be at least max_batch");
  if (s.opt.max_inflight_body < s.opt.body_limit)
    throw std::invalid_argument("max_inflight_body must be at least max_body");
  s.bundle = PolicyBundle::Load(s.opt.bundle, s.opt.institution, s.opt.max_batch);
  ConfigureAdmin(s);
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
  s.http.limits = {s.opt.body_limit, s.opt.read_timeout_ms, s.opt.idle_timeout_ms,
                   s.opt.max_inflight_body, s.opt.max_connections};
  s.http.handler = &s;
  s.http.draining = &s.draining;
  s.http.in_flight = &s.in_flight;
  s.acceptor = std::make_unique<tcp::acceptor>(s.workers.front()->ioc);
  if (!s.opt.admin_address.empty()) {
    s.http.routes = {/*decisions=*/true, /*admin=*/false};
    s.admin_http.limits = s.http.limits;
    s.admin_http.routes = {/*decisions=*/false, /*admin=*/true};
    s.admin_http.handler = &s;
    s.admin_http.draining = &s.draining;
    s.admin_http.in_flight = &s.in_flight;
    s.admin_acceptor = std::make_unique<tcp::acceptor>(s.workers.front()->ioc);
  }
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
  if (s.admin_acceptor) {
    const tcp::endpoint admin(net::ip::make_address(s.opt.admin_address),
                              static_cast<uint16_t>(s.opt.admin_port));
    s.admin_acceptor->open(admin.protocol());
    s.admin_acceptor->set_option(net::socket_base::reuse_address(true));
    s.admin_acceptor->bind(admin);
    s.admin_acceptor->listen(net::socket_base::max_listen_connections);
  }
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
  if (s.admin_acceptor) StartAccepting(*s.admin_acceptor, s.workers, s.admin_http);
  for (auto& worker : s.workers) {
    Worker& w = *worker;
    SweepSessions(w, s.http);
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

int Server::admin_port() const {
  return impl_->admin_acceptor ? impl_->admin_acceptor->local_endpoint().port() : 0;
}

std::string Server::BundleVersion() const {
  return impl_->Bundle()->version();
}

int Server::QueuedObservations() const {
  int n = 0;
  for (const auto& [role, depth] : impl_->budget->Depths()) n += depth;
  return n;
}

int64_t Server::RequestBodyBytes() const {
  return static_cast<int64_t>(impl_->http.body_bytes.load());
}

int Server::OpenConnections() const {
  return impl_->http.connections.load();
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
    if (s.admin_acceptor) s.admin_acceptor->close(ec);
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
