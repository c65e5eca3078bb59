#include "serve/server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "env/product.h"
#include "env/twin_env.h"
#include "serve/audit.h"
#include "serve/bundle.h"
#include "serve/json_number.h"
#include "serve/metrics.h"

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using json = nlohmann::json;

namespace loantwin {
using Clock = std::chrono::steady_clock;

namespace {

/// What a handler answers; the session turns it into an HTTP response.
struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  int retry_after = 0;  ///< seconds, 503 only
};

Reply JsonReply(int status, const json& j) {
  return {status, j.dump(), "application/json", 0};
}
Reply Error(int status, const std::string& message, const std::string& field = "") {
  json j = {{"error", message}};
  if (!field.empty()) j["field"] = field;
  return JsonReply(status, j);
}

/// A client error found while reading a request (400 naming the field).
struct BadRequest {
  std::string message, field;
};

using Respond = std::function<void(Reply)>;

/// One request's observations for one role, waiting to be batched.
struct Job {
  std::shared_ptr<const PolicyBundle> bundle;
  const ServedRole* role = nullptr;
  int n = 0;
  std::vector<float> obs;
  std::vector<uint8_t> mask;
  Respond respond;  ///< answers the request (also with an error when the policy fails)
  /// Called with the actions [n x components] of this job's rows.
  std::function<void(const int64_t* actions)> done;
};

/// Micro-batching on one I/O thread: the jobs of one role wait here until max_batch
/// observations are queued or max_delay has passed since the first (a posted flush when
/// max_delay is 0: the batch then holds what arrived in the same round of I/O).
struct RoleQueue {
  explicit RoleQueue(net::io_context& ioc) : timer(ioc) {}
  std::vector<Job> jobs;
  int rows = 0;
  uint64_t generation = 0;  ///< bumped at each flush; stale timer and post handlers skip
  net::steady_timer timer;
  std::vector<float> obs;  ///< scratch: the batch's observations and masks
  std::vector<uint8_t> mask;
};

class Session;

/// One I/O thread with its own io_context: its connections, batches and policy calls never
/// need a lock or a thread hop.
struct Worker {
  explicit Worker(int index) : index(index) {}
  const int index;
  std::mutex mu;  ///< guards sessions (touched at connect and disconnect, by sweeps)
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;
  net::io_context ioc{1};
  net::executor_work_guard<net::io_context::executor_type> work = net::make_work_guard(ioc);
  net::steady_timer sweeper{ioc};  ///< closes connections past their deadline
  std::map<std::string, std::unique_ptr<RoleQueue>, std::less<>> queues;
  std::thread thread;
};

/// Parses a request body that must be a JSON object; "" or the error (with its position).
/// JSON has no NaN or infinity: such values, and numbers that overflow, fail here.
std::string ParseJson(const std::string& body, json* out) {
  try {
    *out = json::parse(body);
  } catch (const json::exception& e) {
    return std::string(
               "malformed JSON body (NaN, Infinity and overflowing numbers are not "
               "JSON): ") +
           e.what();
  }
  if (!out->is_object()) return "body must be a JSON object";
  return "";
}

/// Reads one role's observations from a JSON object keyed by feature names.
void ReadObservation(const json& obj, const ServedRole& role, const std::string& where,
                     float* out) {
  if (!obj.is_object()) throw BadRequest{where + " must be an object of feature values", where};
  std::vector<uint8_t> seen(role.features.size(), 0);
  for (const auto& [key, value] : obj.items()) {
    const auto it = role.feature_index.find(key);
    if (it == role.feature_index.end())
      throw BadRequest{fmt::format("unknown feature '{}' for role '{}'", key, role.name),
                       where + "." + key};
    if (!value.is_number())
      throw BadRequest{fmt::format("feature '{}' must be a number, not {}", key, value.type_name()),
                       where + "." + key};
    const double v = value.get<double>();
    const int k = it->second;
    if (!std::isfinite(v))
      throw BadRequest{fmt::format("feature '{}' is not finite", key), where + "." + key};
    if (v < role.low[k] || v > role.high[k])
      throw BadRequest{fmt::format("feature '{}' = {} is outside its range [{}, {}]", key, v,
                                   role.low[k], role.high[k]),
                       where + "." + key};
    out[k] = static_cast<float>(v);
    seen[k] = 1;
  }
  for (size_t k = 0; k < seen.size(); ++k)
    if (!seen[k])
      throw BadRequest{fmt::format("missing feature '{}' for role '{}' ({} features expected)",
                                   role.features[k], role.name, role.features.size()),
                       where + "." + role.features[k]};
}

/// Streaming parser of a decide body: {"observation": {feature: number, ...}, "mask": [0/1...]}
/// or {"observations": [{...}, ...], "masks": [[...], ...]}, validated as it is read.
class DecideBodyParser : public nlohmann::json_sax<json> {
 public:
  DecideBodyParser(const ServedRole& role, int max_rows)
      : role_(role), d_(role.features.size()), max_rows_(max_rows) {}

  bool null() override { return NotNumber("null"); }
  bool boolean(bool) override { return NotNumber("a boolean"); }
  bool number_integer(number_integer_t v) override { return Number(static_cast<double>(v), true); }
  bool number_unsigned(number_unsigned_t v) override {
    return Number(static_cast<double>(v), true);
  }
  // (a number as the whole body also lands in Number -> NotNumber -> "must be a JSON object")
  bool number_float(number_float_t v, const string_t&) override { return Number(v, false); }
  bool string(string_t&) override { return NotNumber("a string"); }
  bool binary(binary_t&) override { return NotNumber("binary data"); }

  bool start_object(std::size_t) override {
    switch (state_) {
      case kStart:
        state_ = kTop;
        return true;
      case kTopValue:
        if (key_ != "observation") return Fail(TopShape(), key_);
        return BeginRow(kTop);
      case kObsArray:
        return BeginRow(kObsArray);
      default:
        return Fail(Where() + " must be a number", Where());
    }
  }
  bool key(string_t& k) override {
    if (state_ == kTop) {
      if (k != "observation" && k != "observations" && k != "mask" && k != "masks")
        return Fail("unknown key '" + k + "' (expected observation or observations)", k);
      if (k == "observation" || k == "observations") {
        if (kind_ != 0) return Fail("give exactly one of 'observation' and 'observations'", k);
        kind_ = k == "observation" ? 1 : 2;
      }
      key_ = k;
      state_ = kTopValue;
      return true;
    }
    // kObsObject
    const auto it = role_.feature_index.find(k);
    if (it == role_.feature_index.end())
      return Fail(fmt::format("unknown feature '{}' for role '{}'", k, role_.name),
                  RowName() + "." + k);
    feature_ = it->second;
    feature_name_ = k;
    state_ = kFeatureValue;
    return true;
  }
  bool end_object() override {
    if (state_ == kObsObject) {
      for (size_t k = 0; k < d_; ++k)
        if (!seen_[k])
          return Fail(fmt::format("missing feature '{}' for role '{}' ({} features expected)",
                                  role_.features[k], role_.name, d_),
                      RowName() + "." + role_.features[k]);
      state_ = row_parent_;
      return true;
    }
    state_ = kDone;  // the top-level object
    return true;
  }
  bool start_array(std::size_t) override {
    if (state_ == kStart) return Fail("body must be a JSON object", "");
    if (state_ == kTopValue) {
      if (key_ == "observations") return state_ = kObsArray, true;
      if (key_ == "mask") return BeginMask(kTop);
      if (key_ == "masks") return state_ = kMasksArray, true;
      return Fail(TopShape(), key_);
    }
    if (state_ == kMasksArray) return BeginMask(kMasksArray);
    if (state_ == kFeatureValue) return Fail(Where() + " must be a number", Where());
    return Fail("unexpected array in " + key_, key_);
  }
  bool end_array() override {
    if (state_ == kMaskRow) {
      if (mask_pos_ != static_cast<size_t>(role_.mask_width))
        return Fail(
            fmt::format("{} must be an array of {} zeros and ones", MaskName(), role_.mask_width),
            MaskName());
      state_ = mask_parent_;
      return true;
    }
    if (state_ == kObsArray) {
      if (rows_ == 0) return Fail("'observations' must be a non-empty array", "observations");
      state_ = kTop;
      return true;
    }
    if (state_ == kMasksArray) {
      state_ = kTop;
      return true;
    }
    return Fail("unexpected end of array", key_);
  }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    return Fail(std::string("malformed JSON body (NaN, Infinity and overflowing numbers are not "
                            "JSON): ") +
                    ex.what(),
                "");
  }

  bool Fail(const std::string& message, const std::string& field) {
    if (error_.empty()) error_ = message, field_ = field;
    return false;
  }
  /// Checks done after the body: presence, counts, masks.
  void Finish() {
    if (state_ != kDone) return void(Fail("body must be a JSON object", ""));
    if (kind_ == 0)
      return void(Fail("give exactly one of 'observation' (object) and 'observations' (array)",
                       "observation"));
    if (kind_ == 1 && mask_rows_ > 0 && saw_masks_)
      return void(Fail("one observation takes 'mask'", "masks"));
    if (kind_ == 2 && saw_mask_) return void(Fail("a batch takes 'masks'", "mask"));
    if (saw_masks_ && mask_rows_ != rows_)
      return void(Fail("'masks' must have one entry per observation", "masks"));
    masks_.resize(static_cast<size_t>(rows_) * role_.mask_width, 1);
    for (int r = 0; r < rows_; ++r)
      for (const auto& c : role_.components) {
        bool any = false;
        for (int v = 0; v < c.size; ++v)
          any |= masks_[static_cast<size_t>(r) * role_.mask_width + c.mask_offset + v] != 0;
        if (!any) {
          const std::string name = kind_ == 1 ? "mask" : fmt::format("masks[{}]", r);
          return void(
              Fail(fmt::format("{} allows no value of component '{}'", name, c.name), name));
        }
      }
  }
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& field() const { return field_; }
  int rows() const { return rows_; }
  bool batch() const { return kind_ == 2; }
  std::vector<float>& obs() { return obs_; }
  std::vector<uint8_t>& masks() { return masks_; }

 private:
  enum State {
    kStart,
    kTop,
    kTopValue,
    kObsObject,
    kFeatureValue,
    kObsArray,
    kMasksArray,
    kMaskRow,
    kDone
  };

  bool BeginRow(State parent) {
    if (rows_ >= max_rows_)
      return Fail(fmt::format("more than {} observations in one request", max_rows_),
                  "observations");
    ++rows_;
    obs_.resize(static_cast<size_t>(rows_) * d_, 0.0f);
    seen_.assign(d_, 0);
    row_parent_ = parent;
    state_ = kObsObject;
    return true;
  }
  bool BeginMask(State parent) {
    if (parent == kTop)
      saw_mask_ = true;
    else
      saw_masks_ = true;
    ++mask_rows_;
    if (mask_rows_ > max_rows_) return Fail("too many masks", "masks");
    masks_.resize(static_cast<size_t>(mask_rows_) * role_.mask_width, 1);
    mask_pos_ = 0;
    mask_parent_ = parent;
    state_ = kMaskRow;
    return true;
  }
  bool Number(double v, bool integer) {
    if (state_ == kFeatureValue) {
      if (!std::isfinite(v))
        return Fail(fmt::format("feature '{}' is not finite", feature_name_), Where());
      if (v < role_.low[feature_] || v > role_.high[feature_])
        return Fail(fmt::format("feature '{}' = {} is outside its range [{}, {}]", feature_name_, v,
                                role_.low[feature_], role_.high[feature_]),
                    Where());
      obs_[static_cast<size_t>(rows_ - 1) * d_ + feature_] = static_cast<float>(v);
      seen_[feature_] = 1;
      state_ = kObsObject;
      return true;
    }
    if (state_ == kMaskRow) {
      if (!integer || (v != 0 && v != 1) || mask_pos_ >= static_cast<size_t>(role_.mask_width))
        return Fail(
            fmt::format("{} must be an array of {} zeros and ones", MaskName(), role_.mask_width),
            MaskName());
      masks_[static_cast<size_t>(mask_rows_ - 1) * role_.mask_width + mask_pos_++] =
          static_cast<uint8_t>(v);
      return true;
    }
    return NotNumber("a number");
  }
  bool NotNumber(const char* what) {
    if (state_ == kStart) return Fail("body must be a JSON object", "");
    if (state_ == kFeatureValue)
      return Fail(fmt::format("feature '{}' must be a number, not {}", feature_name_, what),
                  Where());
    if (state_ == kMaskRow)
      return Fail(
          fmt::format("{} must be an array of {} zeros and ones", MaskName(), role_.mask_width),
          MaskName());
    if (state_ == kTopValue) return Fail(TopShape(), key_);
    if (state_ == kObsArray)
      return Fail(fmt::format("observations[{}] must be an object of feature values", rows_),
                  fmt::format("observations[{}]", rows_));
    return Fail(std::string("unexpected ") + what, key_);
  }
  std::string TopShape() const {
    if (key_ == "observation") return "'observation' must be an object of feature values";
    if (key_ == "observations") return "'observations' must be a non-empty array";
    if (key_ == "mask")
      return fmt::format("mask must be an array of {} zeros and ones", role_.mask_width);
    return "'masks' must have one entry per observation";
  }
  std::string RowName() const {
    return kind_ == 2 ? fmt::format("observations[{}]", rows_ - 1) : "observation";
  }
  std::string Where() const { return RowName() + "." + feature_name_; }
  std::string MaskName() const {
    return mask_parent_ == kTop ? "mask" : fmt::format("masks[{}]", mask_rows_ - 1);
  }

  const ServedRole& role_;
  const size_t d_;
  const int max_rows_;
  State state_ = kStart, row_parent_ = kTop, mask_parent_ = kTop;
  int kind_ = 0;  // 1 observation, 2 observations
  std::string key_, feature_name_, error_, field_;
  int feature_ = 0, rows_ = 0, mask_rows_ = 0;
  size_t mask_pos_ = 0;
  bool saw_mask_ = false, saw_masks_ = false;
  std::vector<float> obs_;
  std::vector<uint8_t> seen_, masks_;
};

/// FICO-like score -> band A..G (docs/serving.md).
int BandOfScore(double score) {
  const double floors[] = {760, 720, 690, 660, 630, 600};
  for (int b = 0; b < 6; ++b)
    if (score >= floors[b]) return b;
  return 6;
}

/// The fast path of a decide body: well-formed {"observation": {...}} or {"observations":
/// [{...}, ...]} without masks, keys without escapes, every feature present and valid. Keys
/// are matched in manifest order first (clients usually send them so), numbers read by
/// ParseJsonNumber (strict JSON, exact). Anything else returns false and the body goes to
/// DecideBodyParser, which gives the precise error (or accepts the less common forms).
/// `objects` (optional) receives each observation object's text, for the audit log.
bool FastDecideParse(const std::string& body, const ServedRole& role, int max_rows, int* rows,
                     std::vector<float>* obs, bool* batch,
                     std::vector<std::string_view>* objects = nullptr) {
  const char* p = body.data();
  const char* end = p + body.size();
  const size_t d = role.features.size();
  auto ws = [&] {
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) ++p;
  };
  auto lit = [&](char c) {
    ws();
    if (p >= end || *p != c) return false;
    ++p;
    return true;
  };
  auto str = [&](std::string_view* out) {
    if (!lit('"')) return false;
    const char* s = p;
    const auto* q = static_cast<const char*>(std::memchr(p, '"', static_cast<size_t>(end - p)));
    if (!q || std::memchr(s, '\\', static_cast<size_t>(q - s))) return false;  // escapes: slow path
    *out = std::string_view(s, static_cast<size_t>(q - s));
    p = q + 1;
    return true;
  };
  std::vector<uint8_t> seen(d);
  auto object = [&](float* row) {
    if (!lit('{')) return false;
    const char* start = p - 1;
    std::fill(seen.begin(), seen.end(), 0);
    size_t next = 0, count = 0;
    ws();
    if (p < end && *p == '}') return false;  // empty: let the full parser name the feature
    for (;;) {
      std::string_view key;
      if (!str(&key) || !lit(':')) return false;
      size_t k = next < d && role.features[next] == key ? next : d;
      if (k == d) {
        const auto it = role.feature_index.find(std::string(key));
        if (it == role.feature_index.end()) return false;
        k = static_cast<size_t>(it->second);
      }
      next = k + 1;
      ws();
      double v = 0;
      if (!ParseJsonNumber(&p, end, &v)) return false;
      if (v < role.low[k] || v > role.high[k]) return false;
      row[k] = static_cast<float>(v);
      count += !seen[k];
      seen[k] = 1;
      ws();
      if (p < end && *p == ',') {
        ++p;
        continue;
      }
      if (!lit('}')) return false;
      if (objects) objects->emplace_back(start, static_cast<size_t>(p - start));
      return count == d;
    }
  };
  std::string_view top;
  if (!lit('{') || !str(&top) || !lit(':')) return false;
  if (top == "observation") {
    obs->assign(d, 0.0f);
    if (!object(obs->data())) return false;
    *rows = 1;
    *batch = false;
  } else if (top == "observations") {
    if (!lit('[')) return false;
    obs->clear();
    int n = 0;
    for (;;) {
      if (++n > max_rows) return false;
      obs->resize(static_cast<size_t>(n) * d, 0.0f);
      if (!object(obs->data() + static_cast<size_t>(n - 1) * d)) return false;
      ws();
      if (p < end && *p == ',') {
        ++p;
        continue;
      }
      if (!lit(']')) return false;
      break;
    }
    *rows = n;
    *batch = true;
  } else {
    return false;
  }
  if (!lit('}')) return false;
  ws();
  return p == end;
}

}  // namespace

struct Server::Impl {
  ServerOptions opt;
  std::vector<std::unique_ptr<Worker>> workers;
  std::unique_ptr<tcp::acceptor> acceptor;     ///< on workers[0]
  size_t next_worker = 0;                      ///< the acceptor's thread only
  std::shared_ptr<const PolicyBundle> bundle;  // std::atomic_load / atomic_store
  std::mutex reload_mu;
  /// Observations waiting per role, over all I/O threads (bounded by max_queue).
  std::map<std::string, std::unique_ptr<std::atomic<int>>, std::less<>> queued;
  std::map<std::string, std::string, std::less<>> decide_routes;  ///< role -> metrics label
  std::unique_ptr<AuditLog> audit;
  ServeMetrics metrics;
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

  void Audit(std::string_view route, std::string_view request, std::string_view response) {
    if (audit) audit->Append(route, request, response);
  }

  /// Loads `dir` (empty: the current bundle's directory) and swaps it in; "" or the error.
  std::string Reload(const std::string& dir);

  /// Handles one request on worker `w`'s thread. `body` stays valid until `respond` is called.
  void Dispatch(Worker& w, http::verb method, std::string_view target, const std::string& body,
                Respond respond);
  void Decide(Worker& w, const std::string& role_name, const std::string& body, Respond respond);
  void Application(Worker& w, const std::string& body, Respond respond);

  /// Queues `job` on `w` (taking it) or returns false (queue full, job untouched).
  bool Submit(Worker& w, Job& job);
  void SubmitOrReject(Worker& w, Job job);
  /// Runs the waiting batch of `q` and answers its jobs.
  void Flush(Worker& w, RoleQueue& q);
  void FlushAll(Worker& w) {
    for (auto& [role, q] : w.queues) Flush(w, *q);
  }
  /// Closes `w`'s connections past their deadline; re-arms itself.
  void Sweep(Worker& w);
  void CloseIdle(Worker& w);
};

// ---------------------------------------------------------------------------------------------
// Sessions

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

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket socket, Server::Impl* server, Worker* worker)
      : socket_(std::move(socket)), server_(server), worker_(worker) {}

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
    if (server_->draining) return Close();
    if (buffer_.capacity() < kReadBuffer) buffer_.reserve(kReadBuffer);
    busy_ = false;
    parser_.emplace(&target_, &body_);
    parser_->body_limit(server_->opt.body_limit);
    parser_->header_limit(16 * 1024);
    deadline_ = Clock::now() + std::chrono::milliseconds(server_->opt.idle_timeout_ms);
    http::async_read_header(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    busy_ = true;
    // Beast reads at most the buffer's spare capacity (512 bytes when it has none): room for
    // the whole body makes it one recv(2) instead of one per 512 bytes. The capacity stays
    // for the connection's next requests (bounded by --max-body).
    if (const auto length = parser_->content_length())
      buffer_.reserve(buffer_.size() + static_cast<size_t>(*length));
    deadline_ = Clock::now() + std::chrono::milliseconds(server_->opt.read_timeout_ms);
    // The body usually came in the same read as the header: parse it from the buffer, which
    // saves an asynchronous step (and its trip through the event loop).
    parser_->eager(true);
    while (!parser_->is_done() && buffer_.size() > 0) {
      beast::error_code pec;
      const size_t used = parser_->put(buffer_.data(), pec);
      buffer_.consume(used);
      if (pec == http::error::need_more || (!pec && used == 0)) break;
      if (pec) return OnReadError(pec);
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

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::body_limit) {
      close_ = true;
      return Send(Error(413, fmt::format("body larger than {} bytes", server_->opt.body_limit)));
    }
    if (ec == http::error::header_limit) {
      close_ = true;
      return Send(Error(431, "request header too large"));
    }
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted ||
        ec == net::error::connection_reset || ec == net::error::eof ||
        ec == net::error::bad_descriptor)
      return Close();
    close_ = true;
    Send(Error(400, std::string("malformed HTTP request: ") + ec.message()));
  }

  void OnRead(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    deadline_ = Clock::time_point::max();  // being answered
    version_ = parser_->version();
    close_ = !parser_->keep_alive() || server_->draining;
    server_->in_flight.fetch_add(1);
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
      server_->Dispatch(*worker_, parser_->method(), target_, body_, respond);
    } catch (const std::exception& e) {
      spdlog::error("request {} failed: {}", target_, e.what());
      respond(Error(500, std::string("internal error: ") + e.what()));
    }
  }

  /// The one response to request `seq` (later calls are ignored).
  void Finish(uint64_t seq, Reply reply) {
    if (seq != seq_ || answered_) return;
    answered_ = true;
    server_->in_flight.fetch_sub(1);
    Send(std::move(reply));
  }

  void Send(Reply reply) {
    busy_ = true;
    const bool keep_alive = !close_ && !server_->draining;
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
    deadline_ = Clock::now() + std::chrono::milliseconds(server_->opt.read_timeout_ms);
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
  Server::Impl* server_;
  Worker* worker_;
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  std::string target_, body_, header_out_, body_out_;
  int version_ = 11;
  bool close_ = false, busy_ = false, answered_ = true;
  uint64_t seq_ = 0;
  Clock::time_point deadline_ = Clock::time_point::max();
};

void Accept(Server::Impl* s) {
  Worker& w = *s->workers[s->next_worker++ % s->workers.size()];
  s->acceptor->async_accept(w.ioc, [s, &w](beast::error_code ec, Socket sock) {
    if (ec) {
      if (ec == net::error::operation_aborted || !s->acceptor->is_open()) return;
      spdlog::warn("accept: {}", ec.message());
    } else {
      sock.set_option(tcp::no_delay(true), ec);
      std::make_shared<Session>(std::move(sock), s, &w)->Start();
    }
    if (!s->draining) Accept(s);
  });
}

}  // namespace

namespace {

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

void Server::Impl::Sweep(Worker& w) {
  const auto now = Clock::now();
  for (auto& s : LiveSessions(w)) s->Expire(now);
  const int period = std::clamp(std::min(opt.read_timeout_ms, opt.idle_timeout_ms) / 4, 1, 250);
  w.sweeper.expires_after(std::chrono::milliseconds(period));
  w.sweeper.async_wait([this, &w](beast::error_code ec) {
    if (!ec) Sweep(w);
  });
}

void Server::Impl::CloseIdle(Worker& w) {
  for (auto& s : LiveSessions(w)) s->CloseIfIdle();
}

// ---------------------------------------------------------------------------------------------
// Routing and handlers

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
    Reply r = Error(405, fmt::format("{} accepts {} only", target, allowed));
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
    return finish(route, JsonReply(200, {{"status", "ready"}, {"bundle", Bundle()->version()}}));
  }
  if (target == "/metrics") {
    if (!is_get) return method_not_allowed("GET");
    std::map<std::string, int> depths;
    for (const auto& [role, n] : queued) depths[role] = n->load();
    Reply r{200, metrics.Render(Bundle()->version(), depths), "text/plain; version=0.0.4", 0};
    return finish(route, std::move(r));
  }
  if (target == "/admin/reload") {
    if (!is_post) return method_not_allowed("POST");
    std::string dir;
    if (!body.empty()) {
      json j = json::parse(body, nullptr, false);
      if (j.is_discarded() || !j.is_object())
        return finish(route, Error(400, "body must be a JSON object {\"bundle\": <dir>} or empty"));
      for (const auto& [k, v] : j.items())
        if (k != "bundle") return finish(route, Error(400, "unknown key '" + k + "'", k));
      if (j.contains("bundle")) {
        if (!j["bundle"].is_string())
          return finish(route, Error(400, "bundle must be a string", "bundle"));
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
  finish(route, Error(404, fmt::format("no route {}", target)));
}

bool Server::Impl::Submit(Worker& w, Job& job) {
  const auto counter = queued.find(job.role->name);
  const auto queue = w.queues.find(job.role->name);
  if (counter == queued.end() || queue == w.queues.end()) return false;
  int waiting = counter->second->load(std::memory_order_relaxed);
  do {
    if (waiting + job.n > opt.max_queue) return false;
  } while (!counter->second->compare_exchange_weak(waiting, waiting + job.n));
  RoleQueue& q = *queue->second;
  // A batch runs on one bundle and holds at most max_batch observations (or one larger job).
  if (!q.jobs.empty() && (q.jobs.front().bundle != job.bundle || q.rows + job.n > opt.max_batch))
    Flush(w, q);
  q.rows += job.n;
  q.jobs.push_back(std::move(job));
  if (q.rows >= opt.max_batch || draining) {
    Flush(w, q);
  } else if (q.jobs.size() == 1) {
    const uint64_t generation = q.generation;
    auto fire = [this, &w, &q, generation] {
      if (q.generation == generation) Flush(w, q);
    };
    if (opt.max_delay_us <= 0) {
      net::post(w.ioc, fire);
    } else {
      q.timer.expires_after(std::chrono::microseconds(opt.max_delay_us));
      q.timer.async_wait([fire](beast::error_code) { fire(); });
    }
  }
  return true;
}

void Server::Impl::SubmitOrReject(Worker& w, Job job) {
  if (Submit(w, job)) return;
  Reply r = Error(503, "decision queue full; retry later");
  r.retry_after = 1;
  job.respond(std::move(r));
}

void Server::Impl::Flush(Worker& w, RoleQueue& q) {
  if (q.jobs.empty()) return;
  // Take the batch first: answering may queue new jobs (the pricing step of an application).
  std::vector<Job> batch;
  batch.swap(q.jobs);
  const int rows = q.rows;
  q.rows = 0;
  ++q.generation;
  const ServedRole& role = *batch.front().role;
  queued.find(role.name)->second->fetch_sub(rows);
  q.obs.resize(static_cast<size_t>(rows) * role.features.size());
  q.mask.resize(static_cast<size_t>(rows) * role.mask_width);
  size_t o = 0, m = 0;
  for (const Job& j : batch) {
    std::copy(j.obs.begin(), j.obs.end(), q.obs.begin() + o);
    std::copy(j.mask.begin(), j.mask.end(), q.mask.begin() + m);
    o += j.obs.size(), m += j.mask.size();
  }
  metrics.ObserveBatch(rows);
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
        j.respond(Error(500, "policy failed: " + error));
    } catch (const std::exception& e) {
      j.respond(Error(500, std::string("internal error: ") + e.what()));
    }
    at += static_cast<size_t>(j.n) * dims;
  }
  if (q.jobs.empty()) {  // keep the capacity for the next batch
    batch.clear();
    q.jobs.swap(batch);
  }
}

void Server::Impl::Decide(Worker& w, const std::string& role_name, const std::string& body,
                          Respond respond) {
  auto b = Bundle();
  const ServedRole* role = b->role(role_name);
  if (!role) {
    std::string names;
    for (const auto& [n, r] : b->roles()) names += (names.empty() ? "" : ", ") + n;
    return respond(
        Error(404, fmt::format("unknown role '{}' (this bundle serves: {})", role_name, names)));
  }
  // Streaming (SAX) parse straight into the observation rows: no JSON tree on the hot path.
  Job job;
  job.bundle = b;
  job.role = role;
  bool batch = false;
  // With an audit log, a batch is recorded one line per decision: each line's request is that
  // observation as sent (spans of the body; the session keeps the body until the response
  // is sent) or, for bodies with masks, re-serialised from the parsed JSON.
  std::vector<std::string_view> objects;
  std::shared_ptr<std::vector<std::string>> owned;
  if (FastDecideParse(body, *role, opt.max_batch_request, &job.n, &job.obs, &batch,
                      audit ? &objects : nullptr)) {
    job.mask.assign(static_cast<size_t>(job.n) * role->mask_width, 1);
  } else {
    DecideBodyParser parser(*role, opt.max_batch_request);
    try {
      json::sax_parse(body, &parser);
    } catch (const json::exception& e) {  // e.g. numbers that overflow
      parser.Fail(std::string("malformed JSON body: ") + e.what(), "");
    }
    if (parser.ok()) parser.Finish();
    if (!parser.ok()) return respond(Error(400, parser.error(), parser.field()));
    job.n = parser.rows();
    job.obs = std::move(parser.obs());
    job.mask = std::move(parser.masks());
    batch = parser.batch();
    objects.clear();
    if (audit && batch) {
      const json j = json::parse(body);
      owned = std::make_shared<std::vector<std::string>>();
      for (size_t i = 0; i < j["observations"].size(); ++i) {
        json one = {{"observation", j["observations"][i]}};
        if (j.contains("masks")) one["mask"] = j["masks"][i];
        owned->push_back(one.dump());
      }
    }
  }
  const auto known = decide_routes.find(role_name);
  const std::string_view route =
      known == decide_routes.end() ? std::string_view("unknown") : std::string_view(known->second);
  const std::string_view raw = audit ? std::string_view(body) : std::string_view();
  job.respond = respond;
  const int rows = job.n;
  job.done = [this, b, role, batch, rows, raw, respond, route, owned,
              objects = std::move(objects)](const int64_t* actions) {
    const size_t dims = role->components.size();
    auto action = [&](size_t i, std::string& out) {
      out += "{";
      for (size_t c = 0; c < dims; ++c) {
        if (c) out += ',';
        out += role->action_json[c][actions[i * dims + c]];
      }
      out += "}";
    };
    const std::string& head = role->response_head;
    std::string out = head;
    std::vector<AuditEntry> entries;
    std::vector<std::string> requests, responses;  // audit lines of a batch
    if (batch) {
      out += "\"decisions\":[";
      if (audit) requests.resize(rows), responses.resize(rows);
      for (size_t i = 0; i < static_cast<size_t>(rows); ++i) {
        const size_t from = out.size() + (i ? 1 : 0);
        out += i ? ",{\"decision_id\":\"" : "{\"decision_id\":\"";
        out += NextId() + "\",\"action\":";
        action(i, out);
        out += "}";
        if (audit) {  // the decision as a single response, the observation as its request
          responses[i] = head;
          responses[i].append(out, from + 1, std::string::npos);
          requests[i] = owned ? (*owned)[i] : "{\"observation\":" + std::string(objects[i]) + "}";
        }
      }
      out += "]}";
      if (audit)
        for (int i = 0; i < rows; ++i) entries.push_back({requests[i], responses[i]});
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
        return respond(Error(500, std::string("audit log: ") + e.what()));
      }
    }
    respond(Reply{200, std::move(out), "application/json", 0});
  };
  SubmitOrReject(w, std::move(job));
}

void Server::Impl::Application(Worker& w, const std::string& body, Respond respond) {
  auto b = Bundle();
  const ServedRole* credit = b->role("credit");
  const ServedRole* pricing = b->role("pricing");
  if (!credit) return respond(Error(404, "this bundle has no credit policy"));
  json req;
  if (auto error = ParseJson(body, &req); !error.empty()) return respond(Error(400, error));
  const InstitutionConfig& inst = b->institution();
  struct Applicant {
    int product = -1, band = -1, term = 0;
    double amount = 0, income = 0, monthly_debt = 0, reference_rate = NAN;
  } a;
  Job job;
  try {
    static const std::set<std::string> keys = {"product",      "amount",         "term_months",
                                               "score",        "band",           "income",
                                               "monthly_debt", "reference_rate", "state"};
    for (const auto& [k, v] : req.items())
      if (!keys.count(k)) throw BadRequest{"unknown key '" + k + "'", k};
    auto number = [&](const char* key, bool required, double lo, double hi, double* out) {
      if (!req.contains(key)) {
        if (required) throw BadRequest{std::string("missing '") + key + "'", key};
        return;
      }
      const json& v = req[key];
      if (!v.is_number()) throw BadRequest{std::string("'") + key + "' must be a number", key};
      const double x = v.get<double>();
      if (!std::isfinite(x) || x < lo || x > hi)
        throw BadRequest{fmt::format("'{}' = {} is outside [{}, {}]", key, x, lo, hi), key};
      *out = x;
    };
    if (!req.contains("product") || !req["product"].is_string())
      throw BadRequest{"missing 'product' (one of personal, auto, home, card, business)",
                       "product"};
    for (int p = 0; p < kNumProducts; ++p)
      if (req["product"] == kProductNames[p]) a.product = p;
    if (a.product < 0)
      throw BadRequest{"unknown product (one of personal, auto, home, card, business)", "product"};
    number("amount", true, 1e-9, 1e9, &a.amount);
    double term = 0;
    number("term_months", false, 0, 600, &term);
    a.term = static_cast<int>(term);
    if (term != a.term) throw BadRequest{"'term_months' must be a whole number", "term_months"};
    number("income", true, 1e-9, 1e10, &a.income);
    number("monthly_debt", false, 0, 1e9, &a.monthly_debt);
    number("reference_rate", false, -0.05, 0.5, &a.reference_rate);
    if (req.contains("score") == req.contains("band"))
      throw BadRequest{"give exactly one of 'score' (300-850) and 'band' (A-G)", "score"};
    if (req.contains("score")) {
      double score = 0;
      number("score", true, 300, 850, &score);
      a.band = BandOfScore(score);
    } else {
      if (!req["band"].is_string()) throw BadRequest{"'band' must be one of A-G", "band"};
      for (int k = 0; k < kNumBands; ++k)
        if (req["band"] == kBandNames[k]) a.band = k;
      if (a.band < 0) throw BadRequest{"'band' must be one of A-G", "band"};
    }
    if (!req.contains("state"))
      throw BadRequest{"missing 'state': the portfolio observation (credit features)", "state"};
    const json& state = req["state"];
    if (!state.is_object())
      throw BadRequest{"'state' must be an object of feature values", "state"};
    json credit_state = json::object();
    for (const auto& [k, v] : state.items()) {
      if (credit->feature_index.count(k))
        credit_state[k] = v;
      else if (!pricing || !pricing->feature_index.count(k))
        throw BadRequest{"unknown feature '" + k + "' (neither a credit nor a pricing feature)",
                         "state." + k};
    }
    job.n = 1;
    job.obs.assign(credit->features.size(), 0.0f);
    ReadObservation(credit_state, *credit, "state", job.obs.data());
    job.mask.assign(credit->mask_width, 1);
  } catch (const BadRequest& e) {
    return respond(Error(400, e.message, e.field));
  }
  const ProductLine& line = inst.products[a.product];
  const ProductSpec& spec = line.spec;
  auto request = std::make_shared<json>(req);
  // The session keeps the body until the response is sent: the audit record reads it there.
  const std::string_view raw(body);
  auto decline = [this, b, raw, respond](const std::string& by, const std::string& reason,
                                         json extra) {
    json out = {{"decision_id", NextId()},
                {"policy_version", b->version()},
                {"decision", "decline"},
                {"decided_by", by},
                {"reason", reason}};
    for (auto& [k, v] : extra.items()) out[k] = v;
    try {
      Audit("/v1/credit/applications", raw, out.dump());
    } catch (const std::exception& e) {
      return respond(Error(500, std::string("audit log: ") + e.what()));
    }
    respond(JsonReply(200, out));
  };
  const std::string band_name = kBandNames[a.band];
  // Underwriting rules that need no policy.
  if (!line.offered)
    return decline("rule:product_not_offered",
                   fmt::format("{} does not offer {}", inst.name, kProductNames[a.product]),
                   {{"band", band_name}});
  bool term_ok = false;
  std::string terms;
  for (const auto& t : spec.terms) {
    term_ok |= t.months == a.term;
    terms += (terms.empty() ? "" : ", ") + std::to_string(t.months);
  }
  if (!term_ok)
    return decline("rule:term_not_offered",
                   fmt::format("term {} months is not offered (terms: {})", a.term, terms),
                   {{"band", band_name}});
  const double max_amount = 5 * spec.mean_amount;
  if (a.amount > max_amount)
    return decline("rule:amount_limit",
                   fmt::format("amount {:.0f} above the product limit {:.0f} (5 x mean amount)",
                               a.amount, max_amount),
                   {{"band", band_name}});
  // The credit policy's cutoff for the product, then pricing.
  const std::string product = kProductNames[a.product];
  job.bundle = b;
  job.role = credit;
  job.respond = respond;
  job.done = [this, wp = &w, b, a, credit, pricing, product, band_name, request, raw, respond,
              decline, spec](const int64_t* actions) {
    const ActionComponent* comp = nullptr;
    size_t ci = 0;
    for (size_t c = 0; c < credit->components.size(); ++c)
      if (credit->components[c].name == "cutoff/" + product) comp = &credit->components[c], ci = c;
    if (!comp) return respond(Error(500, "credit policy has no cutoff for " + product));
    const int64_t idx = actions[ci];
    const int cutoff = idx < static_cast<int64_t>(comp->values.size())
                           ? static_cast<int>(comp->values[idx])
                           : static_cast<int>(idx) - 1;  // -1 = none, 0 = A .. 6 = G
    const std::string cutoff_meaning =
        idx < static_cast<int64_t>(comp->meanings.size()) ? comp->meanings[idx] : "";
    json credit_part = {{"band", band_name}, {"cutoff", cutoff_meaning}};
    if (a.band > cutoff)
      return decline("policy:credit",
                     fmt::format("band {} is worse than the credit policy's cutoff ({})", band_name,
                                 cutoff_meaning),
                     credit_part);
    // Offered rate: reference + standard spread + band premium + pricing offset.
    auto price = [=](double offset, const std::string& priced_by) {
      double ref = a.reference_rate;
      std::string ref_source = "request";
      if (std::isnan(ref)) {
        const bool mortgage = spec.rate_index == RateIndex::kMortgage;
        const auto& fi = credit->feature_index;
        const char* feat = mortgage ? "macro/mortgage_rate" : "macro/policy_rate";
        const auto it = fi.find(feat);
        const double x = it == fi.end() ? 0.0 : (*request)["state"][feat].get<double>();
        ref = mortgage ? 0.06 + 0.02 * x : 0.035 + 0.02 * x;
        ref_source = std::string("state ") + feat;
      }
      const double rate = ref + spec.default_spread + spec.band_premium[a.band] + offset;
      const double r = rate / 12;
      const double payment =
          a.term == 0
              ? 0.03 * a.amount
              : (r > 1e-12 ? a.amount * r / (1 - std::pow(1 + r, -a.term)) : a.amount / a.term);
      const double dti = (payment + a.monthly_debt) / (a.income / 12);
      json out = {{"band", band_name},
                  {"cutoff", cutoff_meaning},
                  {"offered_rate", rate},
                  {"rate_parts",
                   {{"reference", ref},
                    {"reference_from", ref_source},
                    {"standard_spread", spec.default_spread},
                    {"band_premium", spec.band_premium[a.band]},
                    {"pricing_offset", offset}}},
                  {"priced_by", priced_by},
                  {"monthly_payment", payment},
                  {"debt_to_income", dti}};
      if (dti > 0.45)
        return decline(
            "rule:dti_limit",
            fmt::format("debt-to-income {:.1f}% above 45% at the offered rate", dti * 100), out);
      out["decision_id"] = NextId();
      out["policy_version"] = b->version();
      out["decision"] = "approve";
      out["decided_by"] = "policy:credit";
      out["reason"] =
          fmt::format("band {} within the credit policy's cutoff ({})", band_name, cutoff_meaning);
      try {
        Audit("/v1/credit/applications", raw, out.dump());
      } catch (const std::exception& e) {
        return respond(Error(500, std::string("audit log: ") + e.what()));
      }
      respond(JsonReply(200, out));
    };
    if (!pricing) return price(0.0, "rule:standard_spread");
    Job pj;
    pj.bundle = b;
    pj.role = pricing;
    pj.n = 1;
    pj.obs.assign(pricing->features.size(), 0.0f);
    try {
      json state = json::object();
      for (const auto& f : pricing->features)
        if ((*request)["state"].contains(f)) state[f] = (*request)["state"][f];
      ReadObservation(state, *pricing, "state", pj.obs.data());
    } catch (const BadRequest& e) {
      return respond(Error(400, e.message + " (the pricing policy needs it)", e.field));
    }
    pj.mask.assign(pricing->mask_width, 1);
    pj.respond = respond;
    pj.done = [pricing, product, price](const int64_t* pa) {
      for (size_t c = 0; c < pricing->components.size(); ++c)
        if (pricing->components[c].name == "spread_offset/" + product) {
          const auto& comp = pricing->components[c];
          const double offset =
              pa[c] < static_cast<int64_t>(comp.values.size()) ? comp.values[pa[c]] : 0.0;
          return price(offset, "policy:pricing");
        }
      price(0.0, "rule:standard_spread");
    };
    SubmitOrReject(*wp, std::move(pj));
  };
  SubmitOrReject(w, std::move(job));
}

// ---------------------------------------------------------------------------------------------

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.opt = std::move(options);
  if (s.opt.max_batch < 1) throw std::invalid_argument("--max-batch must be >= 1");
  if (s.opt.max_queue < s.opt.max_batch)
    throw std::invalid_argument("--max-queue must be at least --max-batch");
  if (s.opt.max_delay_us < 0) throw std::invalid_argument("--max-delay-us must be >= 0");
  if (s.opt.threads < 1) throw std::invalid_argument("--threads must be >= 1");
  s.bundle = PolicyBundle::Load(s.opt.bundle, s.opt.institution, s.opt.max_batch);
  if (!s.opt.audit_log.empty())
    s.audit = std::make_unique<AuditLog>(s.opt.audit_log, s.opt.audit_fsync);
  s.id_prefix = fmt::format("{:x}", std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
  for (int i = 0; i < s.opt.threads; ++i) {
    auto w = std::make_unique<Worker>(i);
    for (const char* role : kTwinRoleNames)
      w->queues.emplace(role, std::make_unique<RoleQueue>(w->ioc));
    s.workers.push_back(std::move(w));
  }
  for (const char* role : kTwinRoleNames) {
    s.queued.emplace(role, std::make_unique<std::atomic<int>>(0));
    s.decide_routes.emplace(role, fmt::format("/v1/roles/{}/decide", role));
  }
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
  Accept(&s);
  for (auto& worker : s.workers) {
    Worker& w = *worker;
    s.Sweep(w);
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
      net::post(w->ioc, [&s, w] {
        s.FlushAll(*w);
        s.CloseIdle(*w);
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

int VerifyAuditCommand(const std::string& file) {
  const AuditVerification v = VerifyAuditLog(file);
  if (v.ok) {
    fmt::print("{}: {} lines, hash chain intact (last hash {})\n", file, v.lines, v.last_hash);
    return 0;
  }
  fmt::print("{}: BROKEN at line {} of {}: {}\n", file, v.first_bad, v.lines, v.reason);
  return 1;
}

}  // namespace loantwin
