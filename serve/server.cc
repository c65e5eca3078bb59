#include "serve/server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>
#include <thread>

#include "core/log_text.h"
#include "env/twin/product.h"
#include "env/twin_env.h"
#include "serve/admission.h"
#include "serve/adverse_action.h"
#include "serve/audit.h"
#include "serve/batcher.h"
#include "serve/bundle.h"
#include "serve/credit_application.h"
#include "serve/decide_request.h"
#include "serve/http_session.h"
#include "serve/metrics.h"
#include "serve/tenants.h"

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using json = nlohmann::json;

namespace loantwin {
using Clock = std::chrono::steady_clock;

/// One institution's bundle and what is kept apart per institution: API token, audit log,
/// queue limit, micro-batches, metrics, decision ids. Without --tenants the server has one,
/// unnamed, whose routes are /v1/... (no token); with --tenants, /v1/tenants/<name>/...
struct Tenant {
  std::string name;         ///< "" without --tenants
  std::string label;        ///< the tenant="..." label on /metrics ("" without --tenants)
  std::string token;        ///< required on the tenant's routes ("" without --tenants)
  std::string institution;  ///< --institution / the tenant's institution ("" = the bundle's)
  std::string bundle_root;  ///< canonical; reloads stay under it
  std::shared_ptr<const PolicyBundle> bundle;  // std::atomic_load / atomic_store
  std::mutex reload_mu;
  std::unique_ptr<QueueBudget> budget;  ///< observations waiting per role
  /// With --tenants, the tenant's own policy threads: its requests are parsed, batched, run
  /// and answered there, so the operating system shares the cores between tenants and a busy
  /// tenant cannot hold up another's requests on the I/O threads. Without, none (the I/O
  /// threads run the policy).
  std::vector<std::unique_ptr<Worker>> executors;
  /// The executors' nice value (tenants file `nice`, 0..19): a bulk tenant's threads yield the
  /// cores to other tenants' work whenever both are ready to run.
  int nice = 0;
  /// The executors' CPU quota in cores, shared equally between them (0: none; tenants file
  /// `cpu_quota`): each paces itself with a CpuPacer.
  double cpu_quota = 0;
  /// One per executor, or one per I/O thread without executors.
  std::vector<std::unique_ptr<Batcher>> batchers;
  std::unique_ptr<AuditLog> audit;
  ServeMetrics metrics;
  std::atomic<int64_t> sequence{0};
  std::string id_prefix;
  /// --tenants: max_inflight and the request rate (after the executors: destroyed before them).
  std::unique_ptr<TenantAdmission> admission;

  std::shared_ptr<const PolicyBundle> Bundle() const { return std::atomic_load(&bundle); }
  std::string NextId() { return fmt::format("{}-{:08x}", id_prefix, sequence.fetch_add(1) + 1); }
  Batcher& batcher(const Worker& w) { return *batchers[w.index]; }
  /// The executor that takes the requests read by I/O thread `io`.
  Worker& executor(const Worker& io) { return *executors[io.index % executors.size()]; }
  /// "" or " of tenant <name>" (log lines).
  std::string Of() const { return name.empty() ? "" : " of tenant " + name; }
};

// The server's state and its routes. Sessions (serve/http_session.*) read requests and call
// Dispatch on their I/O thread; decisions go through that thread's Batcher of the tenant
// (serve/batcher.*).
struct Server::Impl : RequestHandler {
  ServerOptions opt;
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<tcp::acceptor> acceptor;        ///< on workers[0]
  std::unique_ptr<tcp::acceptor> admin_acceptor;  ///< --admin-address, on workers[0]
  HttpContext admin_http;                         ///< its sessions' context
  std::string admin_token;                        ///< empty: admin routes need no token
  std::vector<std::unique_ptr<Tenant>> tenants;   ///< one without --tenants
  std::map<std::string, Tenant*, std::less<>> by_name;
  bool multi = false;    ///< --tenants
  ServeMetrics metrics;  ///< with --tenants: requests no tenant can be named for
  std::map<std::string, std::string, std::less<>> decide_routes;  ///< role -> metrics label
  HttpContext http;
  std::atomic<bool> ready{false}, draining{false};
  std::atomic<int> in_flight{0};
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;
  std::unique_ptr<net::signal_set> signals;

  /// Loads `dir` (empty: the tenant's current bundle directory) and swaps it in; "" or the
  /// error.
  std::string Reload(Tenant& t, const std::string& dir);
  /// Every tenant's current directory again (SIGHUP); "" or the errors.
  std::string ReloadAll();

  void Dispatch(Worker& w, const HttpRequest& request, Respond respond) override;
  /// With --tenants: a decision request carrying its tenant's token waits (unread) while the
  /// tenant has max_inflight requests in progress or has used its max_requests_per_second.
  bool Admit(std::string_view target, std::string_view authorization, Admission* admission,
             Resume resume) override;
  /// True when no admin token is set or the Authorization header carries it.
  bool Authorised(std::string_view authorization) const;
  /// The reload body's bundle directory, checked to lie under the tenant's bundle root; ""
  /// with `*error` set when it does not.
  std::string ReloadDirectory(const Tenant& t, const std::string& dir, std::string* error) const;
  /// POST /admin/reload and /v1/tenants/<t>/admin/reload: `body` {"bundle": dir} (and, on the
  /// operator's route with --tenants, "tenant"); answers from a separate thread.
  void AdminReload(Tenant* t, const std::string& body, bool operator_route,
                   std::function<void(Reply)> finish);
  /// The routes under /v1/tenants/<tenant>/: `sub` is what follows "<tenant>/".
  void TenantRoute(Worker& w, const HttpRequest& request, std::string_view tenant,
                   std::string_view sub,
                   std::function<void(ServeMetrics&, std::string_view, Reply)> finish);
  /// Runs `work` on the tenant's executor for I/O thread `io` (the request's body stays with
  /// its session until `respond` is called); an exception is answered 500.
  void OnExecutor(Worker& io, Tenant& t, Respond respond,
                  std::function<void(Worker&, Respond)> work);
  void Decide(Worker& w, Tenant& t, const std::string& role_name, const std::string& body,
              Respond respond);
  void Application(Worker& w, Tenant& t, const std::string& body, Respond respond);
  /// The decide response for `rows` decisions (and their audit lines).
  void AnswerDecisions(Tenant& t, const ServedRole& role, bool batch, int rows,
                       std::string_view raw, const std::vector<std::string>& row_requests,
                       const std::vector<uint64_t>& fired, std::string_view route,
                       const int64_t* actions, const Respond& respond);
  /// An application's final answer (approve or decline), audited.
  void AnswerApplication(Tenant& t, const PolicyBundle& b, std::string_view raw, json out,
                         const Respond& respond);
};

// ---------------------------------------------------------------------------------------------
// Routing and handlers

namespace {

/// The routes' one parser, shared by admission and dispatch. "roles/<role>/decide" -> <role>
/// (non-empty); anything else -> "".
std::string_view DecideRole(std::string_view path) {
  constexpr std::string_view prefix = "roles/", suffix = "/decide";
  if (path.size() <= prefix.size() + suffix.size() || path.substr(0, prefix.size()) != prefix ||
      path.substr(path.size() - suffix.size()) != suffix)
    return {};
  return path.substr(prefix.size(), path.size() - prefix.size() - suffix.size());
}

constexpr std::string_view kTenantsPrefix = "/v1/tenants/";

/// "/v1/tenants/<tenant>/<sub>" -> {tenant, sub}; false for other targets.
bool SplitTenantTarget(std::string_view target, std::string_view* tenant, std::string_view* sub) {
  if (target.substr(0, kTenantsPrefix.size()) != kTenantsPrefix) return false;
  const std::string_view rest = target.substr(kTenantsPrefix.size());
  *tenant = rest.substr(0, rest.find('/'));
  *sub = rest.size() > tenant->size() ? rest.substr(tenant->size() + 1) : std::string_view();
  return true;
}

}  // namespace

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

namespace {
/// Whether `authorization` is "Bearer <token>"; constant time in the token's content (every
/// byte is compared whatever differs first).
bool BearerMatches(std::string_view authorization, const std::string& token) {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.substr(0, kBearer.size()) != kBearer) return false;
  const std::string_view given = authorization.substr(kBearer.size());
  unsigned diff = given.size() == token.size() ? 0u : 1u;
  for (size_t i = 0; i < token.size(); ++i)
    diff |= static_cast<unsigned char>(token[i]) ^
            static_cast<unsigned char>(i < given.size() ? given[i] : 0);
  return diff == 0;
}

/// The value of `key` in a query string ("a=1&b=2"), or nullopt.
std::optional<std::string_view> QueryValue(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    if (pair.substr(0, key.size()) == key && pair.size() > key.size() && pair[key.size()] == '=')
      return pair.substr(key.size() + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}
}  // namespace

bool Server::Impl::Authorised(std::string_view authorization) const {
  return admin_token.empty() || BearerMatches(authorization, admin_token);
}

std::string Server::Impl::ReloadDirectory(const Tenant& t, const std::string& dir,
                                          std::string* error) const {
  std::error_code ec;
  const auto canonical = std::filesystem::weakly_canonical(dir, ec);
  const std::string path = ec ? std::string() : canonical.string();
  const std::string& root = t.bundle_root;
  if (path.size() <= root.size() + 1 || path.compare(0, root.size(), root) ||
      path[root.size()] != '/') {
    *error = "bundle must be a directory under the bundle root" +
             (multi ? std::string(" of the tenant") : " " + root);
    return "";
  }
  return path;
}

void Server::Impl::AdminReload(Tenant* t, const std::string& body, bool operator_route,
                               std::function<void(Reply)> finish) {
  std::string dir;
  if (!body.empty()) {
    json j;
    if (!ParseJsonObject(body, &j).empty())
      return finish(
          ErrorReply(400, operator_route && multi
                              ? "body must be a JSON object {\"tenant\": <name>, "
                                "\"bundle\": <dir>}"
                              : "body must be a JSON object {\"bundle\": <dir>} or empty"));
    for (const auto& [k, v] : j.items())
      if (k != "bundle" && !(k == "tenant" && operator_route && multi))
        return finish(ErrorReply(400, "unknown key '" + k + "'", k));
    if (operator_route && multi) {
      if (!j.contains("tenant") || !j["tenant"].is_string())
        return finish(ErrorReply(400, "name the tenant to reload: {\"tenant\": <name>}", "tenant"));
      const auto it = by_name.find(j["tenant"].get<std::string>());
      if (it == by_name.end()) return finish(ErrorReply(404, "unknown tenant", "tenant"));
      t = it->second;
    }
    if (j.contains("bundle")) {
      if (!j["bundle"].is_string())
        return finish(ErrorReply(400, "bundle must be a string", "bundle"));
      std::string error;
      dir = ReloadDirectory(*t, j["bundle"].get<std::string>(), &error);
      if (dir.empty()) return finish(ErrorReply(403, error, "bundle"));
    }
  } else if (operator_route && multi) {
    return finish(ErrorReply(400, "name the tenant to reload: {\"tenant\": <name>}", "tenant"));
  }
  // Loading and warming up takes a while: off the I/O threads.
  std::thread([this, t, dir, finish]() mutable {
    const std::string error = Reload(*t, dir);
    if (error.empty())
      finish(JsonReply(200, {{"status", "reloaded"}, {"bundle", t->Bundle()->version()}}));
    else
      finish(JsonReply(
          422, {{"error", "reload failed: " + error}, {"serving", t->Bundle()->version()}}));
  }).detach();
}

void Server::Impl::Dispatch(Worker& w, const HttpRequest& request, Respond respond) {
  const http::verb method = request.method;
  const std::string_view full_target = request.target;
  const std::string& body = *request.body;
  const auto t0 = Clock::now();
  const std::string_view target = full_target.substr(0, full_target.find('?'));
  const bool is_get = method == http::verb::get, is_post = method == http::verb::post;
  // Requests are counted on their tenant's metrics where one is named and authorised.
  auto finish_on = [t0, respond = std::move(respond)](ServeMetrics& m, std::string_view r,
                                                      Reply reply) {
    m.ObserveRequest(r, reply.status, std::chrono::duration<double>(Clock::now() - t0).count());
    respond(std::move(reply));
  };
  ServeMetrics& server_metrics = multi ? metrics : tenants.front()->metrics;
  auto finish = [finish_on, &server_metrics](std::string_view r, Reply reply) {
    finish_on(server_metrics, r, std::move(reply));
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
    for (const auto& t : tenants)  // no decision may be answered without its record
      if (t->audit && !t->audit->Probe())
        return finish(route, JsonReply(503, {{"status", "audit log not writable"}}));
    if (multi)  // tenant names and versions only to their tokens (/v1/tenants/<t>/readyz)
      return finish(route, JsonReply(200, {{"status", "ready"}, {"tenants", tenants.size()}}));
    return finish(route, JsonReply(200, {{"status", "ready"},
                                         {"bundle", tenants.front()->Bundle()->version()}}));
  }
  if (target == "/metrics") {
    if (!is_get) return method_not_allowed("GET");
    std::string text;
    if (multi) {
      std::vector<std::pair<std::string, std::string>> parts;
      parts.emplace_back("", metrics.Render("", {}));
      for (const auto& t : tenants) {
        int64_t waits = 0;
        {
          if (t->admission) waits = t->admission->waits();
        }
        parts.emplace_back(
            t->label,
            t->metrics.Render(t->Bundle()->version(), t->budget->Depths()) +
                fmt::format("# HELP loantwin_admission_waits_total Decision requests that waited "
                            "(unread) for a place under the tenant's max_inflight.\n"
                            "# TYPE loantwin_admission_waits_total counter\n"
                            "loantwin_admission_waits_total {}\n",
                            waits));
      }
      text = MergeLabelledExpositions(parts);
    } else {
      const Tenant& t = *tenants.front();
      text = t.metrics.Render(t.Bundle()->version(), t.budget->Depths());
    }
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
    return AdminReload(tenants.front().get(), body, /*operator_route=*/true,
                       [finish, route](Reply r) { finish(route, std::move(r)); });
  }
  if (!request.routes.decisions && target.substr(0, 4) == "/v1/")
    return finish("unknown", ErrorReply(404,
                                        "decision routes are not served on the admin "
                                        "listener"));
  if (std::string_view tenant, sub; SplitTenantTarget(target, &tenant, &sub)) {
    if (!multi)
      return finish("unknown", ErrorReply(404,
                                          "no tenants here: this server serves one bundle "
                                          "(/v1/roles/<role>/decide); tenant routes need "
                                          "serve --tenants"));
    return TenantRoute(w, request, tenant, sub, finish_on);
  }
  if (multi && target.substr(0, 4) == "/v1/")
    return finish("unknown",
                  ErrorReply(404,
                             "this server hosts tenants: use /v1/tenants/<tenant>/... with "
                             "the tenant's token (docs/serving.md)"));
  Tenant& t = *tenants.front();
  if (const std::string_view decide_role =
          target.substr(0, 4) == "/v1/" ? DecideRole(target.substr(4)) : std::string_view();
      !decide_role.empty()) {
    const std::string role(decide_role);
    const auto known = decide_routes.find(role);
    const std::string_view label = known == decide_routes.end() ? std::string_view("unknown")
                                                                : std::string_view(known->second);
    if (!is_post) return method_not_allowed("POST");
    return Decide(w, t, role, body, [finish, label](Reply r) { finish(label, std::move(r)); });
  }
  if (target == "/v1/credit/applications") {
    if (!is_post) return method_not_allowed("POST");
    return Application(w, t, body, [finish, route](Reply r) { finish(route, std::move(r)); });
  }
  finish(route, ErrorReply(404, fmt::format("no route {}", EscapeForLog(target, 200))));
}

bool Server::Impl::Admit(std::string_view target, std::string_view authorization,
                         Admission* admission, Resume resume) {
  if (!multi || draining) return true;
  std::string_view name, sub;
  if (!SplitTenantTarget(target, &name, &sub)) return true;
  const auto it = by_name.find(name);
  if (it == by_name.end() || !it->second->admission || it->second->admission->unlimited() ||
      !BearerMatches(authorization, it->second->token))
    return true;  // answered (or refused) as usual
  const bool decision = sub == "credit/applications" || !DecideRole(sub).empty();
  if (!decision) return true;
  return it->second->admission->Acquire(admission, std::move(resume));
}

void Server::Impl::TenantRoute(
    Worker& w, const HttpRequest& request, std::string_view name, std::string_view sub,
    std::function<void(ServeMetrics&, std::string_view, Reply)> finish_on) {
  const auto it = by_name.find(name);
  // An unknown tenant and a wrong token get the same answer: a token never learns which
  // other tenants exist.
  if (it == by_name.end() || !BearerMatches(request.authorization, it->second->token))
    return finish_on(metrics, "/v1/tenants",
                     ErrorReply(401,
                                "unknown tenant, or 'Authorization: Bearer <token>' is not "
                                "this tenant's token"));
  Tenant& t = *it->second;
  auto finish = [finish_on, &t](std::string_view r, Reply reply) {
    finish_on(t.metrics, r, std::move(reply));
  };
  const bool is_get = request.method == http::verb::get,
             is_post = request.method == http::verb::post;
  auto method_not_allowed = [&](std::string_view r, const char* allowed) {
    finish(r, ErrorReply(405, fmt::format("{} accepts {} only", EscapeForLog(request.target, 200),
                                          allowed)));
  };
  const std::string& body = *request.body;
  if (const std::string_view decide_role = DecideRole(sub); !decide_role.empty()) {
    const std::string role(decide_role);
    const auto known = decide_routes.find(role);
    const std::string_view label = known == decide_routes.end() ? std::string_view("unknown")
                                                                : std::string_view(known->second);
    if (!is_post) return method_not_allowed(label, "POST");
    return OnExecutor(
        w, t, [finish, label](Reply r) { finish(label, std::move(r)); },
        [this, &t, role, &body](Worker& ex, Respond r) {
          Decide(ex, t, role, body, std::move(r));
        });
  }
  if (sub == "credit/applications") {
    constexpr std::string_view label = "/v1/credit/applications";
    if (!is_post) return method_not_allowed(label, "POST");
    return OnExecutor(
        w, t, [finish, label](Reply r) { finish(label, std::move(r)); },
        [this, &t, &body](Worker& ex, Respond r) { Application(ex, t, body, std::move(r)); });
  }
  if (sub == "readyz") {
    if (!is_get) return method_not_allowed("/readyz", "GET");
    if (!ready || draining)
      return finish("/readyz", JsonReply(503, {{"status", draining ? "draining" : "loading"}}));
    if (t.audit && !t.audit->Probe())
      return finish("/readyz", JsonReply(503, {{"status", "audit log not writable"}}));
    return finish("/readyz", JsonReply(200, {{"status", "ready"},
                                             {"tenant", t.name},
                                             {"bundle", t.Bundle()->version()}}));
  }
  if (sub == "admin/reload") {
    if (!is_post) return method_not_allowed("/admin/reload", "POST");
    return AdminReload(&t, body, /*operator_route=*/false,
                       [finish](Reply r) { finish("/admin/reload", std::move(r)); });
  }
  if (sub == "audit") {
    if (!is_get) return method_not_allowed("/audit", "GET");
    if (!t.audit) return finish("/audit", ErrorReply(404, "this tenant has no audit log"));
    const std::string_view target = request.target;
    const size_t q = target.find('?');
    int n = 100;
    if (q != std::string_view::npos) {
      if (const auto v = QueryValue(target.substr(q + 1), "lines")) {
        const std::string text(*v);
        char* end = nullptr;
        const long value = std::strtol(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0' || value < 1 || value > 1000)
          return finish("/audit",
                        ErrorReply(400, "lines must be an integer in [1, 1000]", "lines"));
        n = static_cast<int>(value);
      }
    }
    std::vector<std::string> records;
    try {
      records = t.audit->Tail(n);
    } catch (const std::exception& e) {
      return finish("/audit", ErrorReply(503, "the audit log cannot be read back"));
    }
    // Records are JSON objects written by the server itself: sent as they are.
    std::string out = "{\"tenant\":" + json(t.name).dump() +
                      ",\"records_total\":" + std::to_string(t.audit->lines()) + ",\"records\":[";
    for (size_t i = 0; i < records.size(); ++i) (out += i ? "," : "") += records[i];
    out += "]}";
    return finish("/audit", Reply{200, std::move(out), "application/json", 0});
  }
  finish("unknown", ErrorReply(404, fmt::format("no route {}", EscapeForLog(request.target, 200))));
}

void Server::Impl::OnExecutor(Worker& io, Tenant& t, Respond respond,
                              std::function<void(Worker&, Respond)> work) {
  Worker& ex = t.executor(io);
  net::post(ex.ioc, [&ex, respond = std::move(respond), work = std::move(work)]() mutable {
    try {
      work(ex, respond);
    } catch (const std::exception& e) {
      spdlog::error("tenant request failed: {}", e.what());
      respond(ErrorReply(500, "internal error (logged)"));
    }
  });
}

void Server::Impl::Decide(Worker& w, Tenant& t, const std::string& role_name,
                          const std::string& body, Respond respond) {
  auto b = t.Bundle();
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
  if (!ParseDecideRequest(body, *role, opt.max_batch_request, t.audit != nullptr, request.get(),
                          &error))
    return respond(ErrorReply(400, error.message, error.field));
  const auto known = decide_routes.find(role_name);
  const std::string_view route =
      known == decide_routes.end() ? std::string_view("unknown") : std::string_view(known->second);
  // The session keeps the body until the response is sent: the audit record reads it there.
  const std::string_view raw = t.audit ? std::string_view(body) : std::string_view();
  Job job;
  job.bundle = b;
  job.role = role;
  job.n = request->rows;
  // Guardrails restrict the masks on the observation before the policy decides.
  request->guardrails_fired = ApplyGuardrails(*role, request->obs, request->masks, request->rows);
  job.obs = std::move(request->obs);
  job.mask = std::move(request->masks);
  job.respond = respond;
  // `b` keeps the bundle (and so `role`) alive until the answer is written.
  job.done = [this, &t, b, role, request, raw, route, respond](const int64_t* actions) {
    AnswerDecisions(t, *role, request->batch, request->rows, raw, request->row_requests,
                    request->guardrails_fired, route, actions, respond);
  };
  t.batcher(w).SubmitOrReject(std::move(job));
}

void Server::Impl::AnswerDecisions(Tenant& t, const ServedRole& role, bool batch, int rows,
                                   std::string_view raw,
                                   const std::vector<std::string>& row_requests,
                                   const std::vector<uint64_t>& fired, std::string_view route,
                                   const int64_t* actions, const Respond& respond) {
  const size_t dims = role.components.size();
  auto action = [&](size_t i, std::string& out) {
    out += "{";
    for (size_t c = 0; c < dims; ++c) {
      if (c) out += ',';
      out += role.action_json[c][actions[i * dims + c]];
    }
    out += "}";
    // The guardrails that restricted this decision (in the response and so in its audit line).
    if (i < fired.size() && fired[i]) out += ",\"guardrails\":" + GuardrailJson(role, fired[i]);
  };
  const std::string& head = role.response_head;
  std::string out = head;
  std::vector<AuditEntry> entries;
  std::vector<std::string> responses;  // audit lines of a batch: one per decision
  if (batch) {
    out += "\"decisions\":[";
    if (t.audit) responses.resize(rows);
    for (size_t i = 0; i < static_cast<size_t>(rows); ++i) {
      const size_t from = out.size() + (i ? 1 : 0);
      out += i ? ",{\"decision_id\":\"" : "{\"decision_id\":\"";
      out += t.NextId() + "\",\"action\":";
      action(i, out);
      out += "}";
      if (t.audit) {  // the decision as a single response, the observation as its request
        responses[i] = head;
        responses[i].append(out, from + 1, std::string::npos);
      }
    }
    out += "]}";
    if (t.audit)
      for (int i = 0; i < rows; ++i) entries.push_back({row_requests[i], responses[i]});
  } else {
    out += "\"decision_id\":\"" + t.NextId() + "\",\"action\":";
    action(0, out);
    out += "}";
    entries.push_back({raw, out});
  }
  if (t.audit) {
    try {
      t.audit->Append(route, entries);
    } catch (const std::exception& e) {
      return respond(AuditFailure(e));
    }
  }
  respond(Reply{200, std::move(out), "application/json", 0});
}

void Server::Impl::AnswerApplication(Tenant& t, const PolicyBundle& b, std::string_view raw,
                                     json out, const Respond& respond) {
  out["decision_id"] = t.NextId();
  out["policy_version"] = b.version();
  try {
    if (t.audit) t.audit->Append("/v1/credit/applications", raw, out.dump());
  } catch (const std::exception& e) {
    return respond(AuditFailure(e));
  }
  respond(JsonReply(200, out));
}

void Server::Impl::Application(Worker& w, Tenant& t, const std::string& body, Respond respond) {
  auto b = t.Bundle();
  Tenant* tp = &t;  // lambdas below copy what they capture
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
    ApplyPricingReference(*b, *credit, app.get());
  } catch (const BadRequest& e) {
    return respond(ErrorReply(400, e.message, e.field));
  }
  job.n = 1;
  job.mask.assign(credit->mask_width, 1);
  // The guardrails that restricted the credit (and pricing) decision go into the answer.
  auto fired = std::make_shared<json>(json::array());
  if (const uint64_t bits = ApplyGuardrails(*credit, job.obs, job.mask, 1)[0])
    *fired = json::parse(GuardrailJson(*credit, bits));
  const ProductSpec& spec = b->institution().products[app->product].spec;
  const std::string band_name = kBandNames[app->band];
  // The session keeps the body until the response is sent: the audit record reads it there.
  const std::string_view raw(body);
  auto decline = [this, tp, b, raw, respond, fired](const Decline& d, json extra) {
    json out = {{"decision", "decline"}, {"decided_by", d.by}, {"reason", d.reason}};
    for (auto& [k, v] : extra.items()) out[k] = v;
    if (!fired->empty()) out["guardrails"] = *fired;
    AnswerApplication(*tp, *b, raw, std::move(out), respond);
  };
  // Adverse-action reasons (serve/adverse_action.h) go into every decline and into approvals
  // priced above the best rate; they are part of the audit record.
  auto explain = [b, app, credit](const DecisionContext& ctx) {
    return ExplainCredit(b->institution(), *app, *credit, ctx);
  };
  if (auto d = UnderwritingRules(b->institution(), *app)) {  // rules that need no policy
    DecisionContext ctx;
    ctx.policy_ran = false;
    return decline(*d, {{"band", band_name}, {"reasons", explain(ctx).ReasonsJson()}});
  }
  // The credit policy's cutoff for the product, then pricing.
  const std::string product = kProductNames[app->product];
  job.bundle = b;
  job.role = credit;
  job.respond = respond;
  job.done = [this, tp, wp = &w, b, app, credit, pricing, product, band_name, raw, respond, decline,
              spec, fired, explain](const int64_t* actions) {
    const auto cutoff = CutoffFromActions(*credit, product, actions);
    if (!cutoff) return respond(ErrorReply(500, "credit policy has no cutoff for " + product));
    DecisionContext ctx;
    ctx.cutoff = cutoff->band;
    if (app->band > cutoff->band)
      return decline({"policy:credit", fmt::format("band {} is worse than the credit policy's "
                                                   "cutoff ({})",
                                                   band_name, cutoff->meaning)},
                     {{"band", band_name},
                      {"cutoff", cutoff->meaning},
                      {"reasons", explain(ctx).ReasonsJson()}});
    auto price = [=](double offset, const std::string& priced_by) {
      Offer offer;
      Explanation why;
      try {
        offer = PriceApplication(*app, spec, *credit, offset, priced_by, cutoff->meaning);
        DecisionContext priced = ctx;
        priced.offset = offset;
        priced.reference_rate = offer.detail["rate_parts"]["reference"].get<double>();
        why = explain(priced);
      } catch (const BadRequest& e) {
        return respond(ErrorReply(400, e.message, e.field));
      }
      if (offer.decline) {
        offer.detail["reasons"] = why.ReasonsJson();
        return decline(*offer.decline, offer.detail);
      }
      json out = offer.detail;
      out["price_reasons"] = why.PriceReasonsJson();
      out["decision"] = "approve";
      out["decided_by"] = "policy:credit";
      out["reason"] =
          fmt::format("band {} within the credit policy's cutoff ({})", band_name, cutoff->meaning);
      if (!fired->empty()) out["guardrails"] = *fired;
      AnswerApplication(*tp, *b, raw, std::move(out), respond);
    };
    const std::string rule = app->cost_plus ? "rule:cost_plus" : "rule:standard_spread";
    if (!pricing) return price(0.0, rule);
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
    if (const uint64_t bits = ApplyGuardrails(*pricing, pj.obs, pj.mask, 1)[0])
      for (const auto& name : json::parse(GuardrailJson(*pricing, bits)))
        if (std::find(fired->begin(), fired->end(), name) == fired->end()) fired->push_back(name);
    pj.respond = respond;
    pj.done = [pricing, product, price, rule](const int64_t* pa) {
      if (const auto offset = PricingOffsetFromActions(*pricing, product, pa))
        return price(*offset, "policy:pricing");
      price(0.0, rule);
    };
    tp->batcher(*wp).SubmitOrReject(std::move(pj));
  };
  t.batcher(w).SubmitOrReject(std::move(job));
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
    try {
      s.admin_token = ReadTokenFile(o.admin_token_file);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("--admin-token-file ") + e.what());
    }
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
                 admin_on,
                 !o.tenants.empty()      ? "each tenant's bundle root"
                 : o.bundle_root.empty() ? "the bundle's parent directory"
                                         : o.bundle_root);
  }
  if (!o.admin_address.empty()) IsLoopback(o.admin_address);  // a valid address
}

/// The canonical bundle root: `root`, or the bundle's parent directory when it is empty.
std::string BundleRoot(const std::string& bundle, const std::string& root, const char* what) {
  std::error_code ec;
  const std::string out = root.empty()
                              ? std::filesystem::weakly_canonical(bundle, ec).parent_path().string()
                              : std::filesystem::weakly_canonical(root, ec).string();
  if (ec || out.empty() || !std::filesystem::is_directory(out, ec))
    throw std::invalid_argument(
        fmt::format("{} {}: not a directory", what, root.empty() ? bundle : root));
  return out;
}

std::string IdPrefix(const std::string& tenant) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  return tenant.empty() ? fmt::format("{:x}", ms) : fmt::format("{}-{:x}", tenant, ms);
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
  ConfigureAdmin(s);
  const std::vector<std::string> roles(kTwinRoleNames.begin(), kTwinRoleNames.end());
  if (!s.opt.tenants.empty()) {
    s.multi = true;
    for (const auto& [flag, value] :
         {std::pair<const char*, const std::string*>{"--bundle", &s.opt.bundle},
          {"--institution", &s.opt.institution},
          {"--audit-log", &s.opt.audit_log},
          {"--bundle-root", &s.opt.bundle_root}})
      if (!value->empty())
        throw std::invalid_argument(fmt::format(
            "{} does not go with --tenants: each tenant names its own in {}", flag, s.opt.tenants));
    for (const TenantConfig& c : LoadTenants(s.opt.tenants, s.opt.max_queue, s.opt.max_batch)) {
      if (!s.admin_token.empty() && c.token == s.admin_token)
        throw std::invalid_argument("tenant '" + c.name +
                                    "' has the admin token as its token: give it its own");
      auto t = std::make_unique<Tenant>();
      t->name = c.name;
      t->label = c.metrics_label;
      t->token = c.token;
      t->institution = c.institution;
      t->nice = c.nice;
      t->cpu_quota = c.cpu_quota;
      try {
        t->bundle = PolicyBundle::Load(c.bundle, c.institution, s.opt.max_batch);
      } catch (const std::exception& e) {
        throw std::invalid_argument(fmt::format("tenant '{}': {}", c.name, e.what()));
      }
      t->bundle_root = BundleRoot(c.bundle, c.bundle_root, "bundle_root");
      if (!c.audit_log.empty()) t->audit = std::make_unique<AuditLog>(c.audit_log, c.audit_fsync);
      t->budget = std::make_unique<QueueBudget>(roles, c.max_queue);
      for (int i = 0; i < c.threads; ++i) t->executors.push_back(std::make_unique<Worker>(i));
      t->admission = std::make_unique<TenantAdmission>(
          TenantAdmission::Limits{c.max_inflight, c.max_requests_per_second, c.burst},
          &t->executors.front()->ioc);
      t->id_prefix = IdPrefix(c.name);
      s.by_name.emplace(t->name, t.get());
      spdlog::info("tenant {}: bundle {} ({}), queue {} per role, audit log {}", c.name, c.bundle,
                   t->bundle->version(), c.max_queue, c.audit_log.empty() ? "none" : c.audit_log);
      s.tenants.push_back(std::move(t));
    }
  } else {
    if (s.opt.bundle.empty())
      throw std::invalid_argument("give --bundle <export dir> or --tenants <tenants.yaml>");
    auto t = std::make_unique<Tenant>();
    t->institution = s.opt.institution;
    t->bundle = PolicyBundle::Load(s.opt.bundle, s.opt.institution, s.opt.max_batch);
    t->bundle_root = BundleRoot(s.opt.bundle, s.opt.bundle_root, "--bundle-root");
    if (!s.opt.audit_log.empty())
      t->audit = std::make_unique<AuditLog>(s.opt.audit_log, s.opt.audit_fsync);
    t->budget = std::make_unique<QueueBudget>(roles, s.opt.max_queue);
    t->id_prefix = IdPrefix("");
    s.tenants.push_back(std::move(t));
  }
  for (int i = 0; i < s.opt.threads; ++i) s.workers.push_back(std::make_unique<Worker>(i));
  for (auto& t : s.tenants) {  // batches on the tenant's executors, else on the I/O threads
    Tenant* tp = t.get();
    for (auto& w : t->executors.empty() ? s.workers : t->executors)
      t->batchers.push_back(std::make_unique<Batcher>(
          w->ioc, BatchOptions{s.opt.max_batch, s.opt.max_delay_us}, *t->budget, roles,
          [tp](int rows) { tp->metrics.ObserveBatch(rows); }, s.draining));
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
        std::thread([this] { impl_->ReloadAll(); }).detach();  // logs its result
        impl_->signals->async_wait(*handler);
        return;
      }
      spdlog::info("signal {}: shutting down", sig);
      std::thread([this] { Shutdown(); }).detach();
    };
    s.signals->async_wait(*handler);
  }
  // Each policy thread is configured (nice value included) before the first connection is
  // accepted: Start returns with every thread as it will serve.
  std::vector<std::future<void>> configured;
  for (auto& t : s.tenants)
    for (auto& executor : t->executors) {
      Worker& ex = *executor;
      std::promise<void> ready;
      configured.push_back(ready.get_future());
      // A CPU quota is shared equally by the tenant's policy threads.
      const double quota = t->cpu_quota / static_cast<double>(t->executors.size());
      ex.thread = std::thread(
          [&ex, name = t->name, nice = t->nice, quota, ready = std::move(ready)]() mutable {
            ConfigureTorchThread();  // the tenant's policy runs on this thread
            if (nice != 0 &&
                setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), nice) != 0)
              spdlog::warn("tenant {}: cannot set nice {} on policy thread {}: {}", name, nice,
                           ex.index, std::strerror(errno));
            // Paced: after each handler the thread sleeps while it is over its CPU quota (a 2 ms
            // bucket); its requests wait in the tenant's own queue meanwhile.
            std::optional<CpuPacer> pacer;
            if (quota > 0) pacer.emplace(quota, std::chrono::milliseconds(2));
            ready.set_value();
            for (;;) {
              try {
                if (!pacer) {
                  ex.ioc.run();
                  return;
                }
                while (ex.ioc.run_one() > 0) pacer->AfterWork();
                return;
              } catch (const std::exception& e) {
                spdlog::error("policy thread {} of tenant {}: {}", ex.index, name, e.what());
              }
            }
          });
    }
  for (auto& f : configured) f.wait();
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
  return impl_->tenants.front()->Bundle()->version();
}

std::vector<std::string> Server::Tenants() const {
  std::vector<std::string> out;
  if (impl_->multi)
    for (const auto& t : impl_->tenants) out.push_back(t->name);
  return out;
}

std::string Server::TenantBundleVersion(const std::string& tenant) const {
  const auto it = impl_->by_name.find(tenant);
  if (it == impl_->by_name.end()) throw std::invalid_argument("unknown tenant '" + tenant + "'");
  return it->second->Bundle()->version();
}

int Server::QueuedObservations() const {
  int n = 0;
  for (const auto& t : impl_->tenants)
    for (const auto& [role, depth] : t->budget->Depths()) n += depth;
  return n;
}

int64_t Server::RequestBodyBytes() const {
  return static_cast<int64_t>(impl_->http.body_bytes.load());
}

int Server::OpenConnections() const {
  return impl_->http.connections.load();
}

std::string Server::Impl::Reload(Tenant& t, const std::string& dir) {
  std::lock_guard<std::mutex> lock(t.reload_mu);
  try {
    auto b =
        PolicyBundle::Load(dir.empty() ? t.Bundle()->dir() : dir, t.institution, opt.max_batch);
    std::atomic_store(&t.bundle, b);
    t.metrics.CountReload(true);
    spdlog::info("reloaded bundle {} ({}){}", b->dir(), b->version(), t.Of());
    return "";
  } catch (const std::exception& e) {
    t.metrics.CountReload(false);
    spdlog::error("reload failed{}, still serving {}: {}", t.Of(), t.Bundle()->version(), e.what());
    return e.what();
  }
}

std::string Server::Impl::ReloadAll() {
  std::string errors;
  for (auto& t : tenants)
    if (const std::string e = Reload(*t, ""); !e.empty())
      errors += (errors.empty() ? "" : "; ") + (t->name.empty() ? e : t->name + ": " + e);
  return errors;
}

std::string Server::Reload(const std::string& dir) {
  if (impl_->multi) {
    if (!dir.empty()) return "with --tenants, name the tenant to reload (ReloadTenant)";
    return impl_->ReloadAll();
  }
  return impl_->Reload(*impl_->tenants.front(), dir);
}

std::string Server::ReloadTenant(const std::string& tenant, const std::string& dir) {
  const auto it = impl_->by_name.find(tenant);
  if (it == impl_->by_name.end()) return "unknown tenant '" + tenant + "'";
  return impl_->Reload(*it->second, dir);
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
  for (auto& t : s.tenants)
    if (t->admission) t->admission->DropWaiting();
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  for (;;) {
    for (auto& worker : s.workers) {
      Worker* w = worker.get();
      net::post(w->ioc, [&s, w] {
        for (auto& t : s.tenants)
          if (t->executors.empty()) t->batcher(*w).FlushAll();
        CloseIdleSessions(*w);
      });
    }
    for (auto& t : s.tenants)
      for (auto& executor : t->executors) {
        Worker* ex = executor.get();
        Tenant* tp = t.get();
        net::post(ex->ioc, [tp, ex] { tp->batcher(*ex).FlushAll(); });
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
  for (auto& t : s.tenants)
    for (auto& ex : t->executors) {
      ex->work.reset();
      ex->ioc.stop();
    }
  for (auto& w : s.workers)
    if (w->thread.joinable() && w->thread.get_id() != std::this_thread::get_id()) w->thread.join();
  for (auto& t : s.tenants) {
    for (auto& ex : t->executors)
      if (ex->thread.joinable()) ex->thread.join();
    if (t->audit) t->audit->Sync();
  }
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
