#include "serve/server.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
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
#include "serve/metrics.h"

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using json = nlohmann::json;

namespace loantwin {
namespace {

using Clock = std::chrono::steady_clock;

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

/// One request's observations for one role, waiting to be batched.
struct Job {
  std::shared_ptr<const PolicyBundle> bundle;
  const ServedRole* role = nullptr;
  int n = 0;
  std::vector<float> obs;
  std::vector<uint8_t> mask;
  /// Called on the batcher thread with the actions [n x components] (or an error).
  std::function<void(std::vector<int64_t> actions, std::string error)> done;
};

/// Micro-batches one role's jobs: a batch closes at max_batch observations or max_delay after
/// its first job; jobs of one batch share a bundle. Bounded: Submit refuses beyond max_queue.
class Batcher {
 public:
  Batcher(std::string role, int max_batch, int max_delay_us, int max_queue, ServeMetrics* metrics)
      : role_(std::move(role)),
        max_batch_(max_batch),
        max_delay_(std::chrono::microseconds(max_delay_us)),
        max_queue_(max_queue),
        metrics_(metrics),
        thread_([this] { Loop(); }) {}
  ~Batcher() { Stop(); }

  bool Submit(Job job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || queued_ + job.n > max_queue_) return false;
      queued_ += job.n;
      metrics_->SetQueueDepth(role_, queued_);
      queue_.push_back(std::move(job));
    }
    cv_.notify_one();
    return true;
  }

  /// Finishes the queued jobs, then stops the thread.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    ConfigureTorchThread();
    std::vector<Job> batch;
    for (;;) {
      batch.clear();
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping and drained
        const auto deadline = Clock::now() + max_delay_;
        int rows = 0;
        const PolicyBundle* bundle = queue_.front().bundle.get();
        for (;;) {
          while (!queue_.empty() && queue_.front().bundle.get() == bundle &&
                 (rows == 0 || rows + queue_.front().n <= max_batch_)) {
            rows += queue_.front().n;
            batch.push_back(std::move(queue_.front()));
            queue_.pop_front();
          }
          const bool full =
              rows >= max_batch_ || (!queue_.empty() && (queue_.front().bundle.get() != bundle ||
                                                         rows + queue_.front().n > max_batch_));
          if (full || stopping_ || max_delay_.count() == 0) break;
          if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
            while (!queue_.empty() && queue_.front().bundle.get() == bundle &&
                   rows + queue_.front().n <= max_batch_) {
              rows += queue_.front().n;
              batch.push_back(std::move(queue_.front()));
              queue_.pop_front();
            }
            break;
          }
        }
        queued_ -= rows;
        metrics_->SetQueueDepth(role_, queued_);
      }
      Run(batch);
    }
  }

  void Run(std::vector<Job>& batch) {
    const ServedRole& role = *batch.front().role;
    int rows = 0;
    for (const Job& j : batch) rows += j.n;
    obs_.resize(static_cast<size_t>(rows) * role.features.size());
    mask_.resize(static_cast<size_t>(rows) * role.mask_width);
    size_t o = 0, m = 0;
    for (const Job& j : batch) {
      std::copy(j.obs.begin(), j.obs.end(), obs_.begin() + o);
      std::copy(j.mask.begin(), j.mask.end(), mask_.begin() + m);
      o += j.obs.size(), m += j.mask.size();
    }
    metrics_->ObserveBatch(rows);
    std::vector<int64_t> actions;
    std::string error;
    try {
      actions = batch.front().bundle->Decide(role, obs_, mask_, rows);
    } catch (const std::exception& e) {
      error = e.what();
    }
    const size_t dims = role.components.size();
    size_t at = 0;
    for (Job& j : batch) {
      if (error.empty())
        j.done(std::vector<int64_t>(actions.begin() + at, actions.begin() + at + j.n * dims), "");
      else
        j.done({}, error);
      at += j.n * dims;
    }
  }

  std::string role_;
  const int max_batch_;
  const std::chrono::microseconds max_delay_;
  const int max_queue_;
  ServeMetrics* metrics_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  int queued_ = 0;
  bool stopping_ = false;
  std::vector<float> obs_;
  std::vector<uint8_t> mask_;
  std::thread thread_;  // last: starts after the members above exist
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
/// are matched in manifest order first (clients usually send them so), numbers parsed with
/// std::from_chars. Anything else returns false and the body goes to DecideBodyParser, which
/// gives the precise error (or accepts the less common forms).
bool FastDecideParse(const std::string& body, const ServedRole& role, int max_rows, int* rows,
                     std::vector<float>* obs, bool* batch) {
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
    while (p < end && *p != '"') {
      if (*p == '\\') return false;
      ++p;
    }
    if (p >= end) return false;
    *out = std::string_view(s, static_cast<size_t>(p - s));
    ++p;
    return true;
  };
  std::vector<uint8_t> seen(d);
  auto object = [&](float* row) {
    if (!lit('{')) return false;
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
      const auto [q, ec] = std::from_chars(p, end, v);
      if (ec != std::errc() || q == p || !std::isfinite(v)) return false;
      p = q;
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
  net::io_context ioc;
  tcp::acceptor acceptor{ioc};
  /// Keeps the I/O threads running while requests wait in the batchers (no socket operation
  /// pending) during shutdown.
  net::executor_work_guard<net::io_context::executor_type> work = net::make_work_guard(ioc);
  std::vector<std::thread> threads;
  std::shared_ptr<const PolicyBundle> bundle;  // std::atomic_load / atomic_store
  std::mutex reload_mu;
  std::map<std::string, std::unique_ptr<Batcher>> batchers;
  std::unique_ptr<AuditLog> audit;
  ServeMetrics metrics;
  std::atomic<bool> ready{false}, draining{false};
  std::atomic<int64_t> sequence{0};
  std::string id_prefix;
  std::atomic<int> in_flight{0};
  std::mutex sessions_mu;
  std::unordered_map<void*, std::function<void()>> sessions;  // session -> close if idle
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;
  std::unique_ptr<net::signal_set> signals;

  std::shared_ptr<const PolicyBundle> Bundle() const { return std::atomic_load(&bundle); }

  std::string NextId() { return fmt::format("{}-{:08x}", id_prefix, sequence.fetch_add(1) + 1); }

  void Audit(const std::string& route, const json& request, const json& response) {
    if (!audit) return;
    json rec = {{"time", std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count()},
                {"route", route},
                {"request", request},
                {"response", response}};
    audit->Append(std::move(rec));
  }

  using Respond = std::function<void(Reply)>;

  /// Loads `dir` (empty: the current bundle's directory) and swaps it in; "" or the error.
  std::string Reload(const std::string& dir);

  void Dispatch(const http::request<http::string_body>& req, Respond respond);
  void Decide(const std::string& role_name, const std::string& body, Respond respond);
  void Application(const std::string& body, Respond respond);
  void SubmitOrReject(const std::string& role, Job job, const Respond& respond);
};

// ---------------------------------------------------------------------------------------------
// Sessions

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Server::Impl* server) : stream_(std::move(socket)), server_(server) {}

  void Start() {
    auto self = shared_from_this();
    {
      std::lock_guard<std::mutex> lock(server_->sessions_mu);
      server_->sessions[this] = [weak = std::weak_ptr<Session>(self)] {
        if (auto s = weak.lock()) net::post(s->stream_.get_executor(), [s] { s->CloseIfIdle(); });
      };
    }
    net::dispatch(stream_.get_executor(), [self] { self->ReadHeader(); });
  }

  ~Session() {
    std::lock_guard<std::mutex> lock(server_->sessions_mu);
    server_->sessions.erase(this);
  }

 private:
  void ReadHeader() {
    if (server_->draining) return Close();
    busy_ = false;
    parser_.emplace();
    parser_->body_limit(server_->opt.body_limit);
    parser_->header_limit(16 * 1024);
    stream_.expires_after(std::chrono::milliseconds(server_->opt.idle_timeout_ms));
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    busy_ = true;
    stream_.expires_after(std::chrono::milliseconds(server_->opt.read_timeout_ms));
    http::async_read(
        stream_, buffer_, *parser_,
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
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset ||
        ec == net::error::eof)
      return Close();
    close_ = true;
    Send(Error(400, std::string("malformed HTTP request: ") + ec.message()));
  }

  void OnRead(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    stream_.expires_never();
    request_ = parser_->release();
    close_ = !request_.keep_alive() || server_->draining;
    server_->in_flight.fetch_add(1);
    auto answered = std::make_shared<std::atomic<bool>>(false);
    auto respond = [self = shared_from_this(), answered](Reply reply) {
      if (answered->exchange(true)) return;  // one response per request
      net::post(self->stream_.get_executor(), [self, reply = std::move(reply)]() mutable {
        self->server_->in_flight.fetch_sub(1);
        self->Send(std::move(reply));
      });
    };
    try {  // the server never crashes on input: anything unexpected is a 500
      server_->Dispatch(request_, respond);
    } catch (const std::exception& e) {
      spdlog::error("request {} failed: {}", std::string(request_.target()), e.what());
      respond(Error(500, std::string("internal error: ") + e.what()));
    }
  }

  void Send(Reply reply) {
    busy_ = true;
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(reply.status), request_.version() ? request_.version() : 11);
    res->set(http::field::server, "loantwin");
    res->set(http::field::content_type, reply.content_type);
    if (reply.retry_after > 0)
      res->set(http::field::retry_after, std::to_string(reply.retry_after));
    res->keep_alive(!close_ && !server_->draining);
    res->body() = std::move(reply.body);
    res->prepare_payload();
    stream_.expires_after(std::chrono::milliseconds(server_->opt.read_timeout_ms));
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res](beast::error_code ec, size_t) {
                        if (ec || !res->keep_alive()) return self->Close();
                        self->ReadHeader();
                      });
  }

  void CloseIfIdle() {
    if (!busy_) Close();
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  beast::tcp_stream stream_;
  Server::Impl* server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> request_;
  bool close_ = false, busy_ = false;
};

void Accept(Server::Impl* s) {
  s->acceptor.async_accept(net::make_strand(s->ioc), [s](beast::error_code ec, tcp::socket sock) {
    if (ec) {
      if (ec == net::error::operation_aborted || !s->acceptor.is_open()) return;
      spdlog::warn("accept: {}", ec.message());
    } else {
      sock.set_option(tcp::no_delay(true), ec);
      std::make_shared<Session>(std::move(sock), s)->Start();
    }
    if (!s->draining) Accept(s);
  });
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Routing and handlers

void Server::Impl::Dispatch(const http::request<http::string_body>& req, Respond respond) {
  const auto t0 = Clock::now();
  std::string target(req.target());
  if (const auto q = target.find('?'); q != std::string::npos) target.resize(q);
  std::string route = target;
  const bool is_get = req.method() == http::verb::get, is_post = req.method() == http::verb::post;
  auto finish = [this, t0, respond = std::move(respond)](const std::string& r, Reply reply) {
    metrics.ObserveRequest(r, reply.status,
                           std::chrono::duration<double>(Clock::now() - t0).count());
    respond(std::move(reply));
  };
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
    Reply r{200, metrics.Render(Bundle()->version()), "text/plain; version=0.0.4", 0};
    return finish(route, std::move(r));
  }
  if (target == "/admin/reload") {
    if (!is_post) return method_not_allowed("POST");
    std::string dir;
    if (!req.body().empty()) {
      json j = json::parse(req.body(), nullptr, false);
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
  const std::string prefix = "/v1/roles/", suffix = "/decide";
  if (target.rfind(prefix, 0) == 0 && target.size() > prefix.size() + suffix.size() &&
      target.compare(target.size() - suffix.size(), suffix.size(), suffix) == 0) {
    const std::string role =
        target.substr(prefix.size(), target.size() - prefix.size() - suffix.size());
    if (!is_post) return method_not_allowed("POST");
    return Decide(role, req.body(), [finish, role](Reply r) {
      finish("/v1/roles/" + role + "/decide", std::move(r));
    });
  }
  if (target == "/v1/credit/applications") {
    if (!is_post) return method_not_allowed("POST");
    return Application(req.body(), [finish, route](Reply r) { finish(route, std::move(r)); });
  }
  finish("unknown", Error(404, "no route " + target));
}

void Server::Impl::SubmitOrReject(const std::string& role, Job job, const Respond& respond) {
  const auto it = batchers.find(role);
  if (it == batchers.end() || !it->second->Submit(std::move(job))) {
    Reply r = Error(503, "decision queue full; retry later");
    r.retry_after = 1;
    respond(std::move(r));
  }
}

void Server::Impl::Decide(const std::string& role_name, const std::string& body, Respond respond) {
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
  if (FastDecideParse(body, *role, opt.max_batch_request, &job.n, &job.obs, &batch)) {
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
  }
  const std::string route = "/v1/roles/" + role_name + "/decide";
  auto raw = audit ? std::make_shared<std::string>(body) : nullptr;
  job.done = [this, b, role, batch, raw, respond, route](std::vector<int64_t> actions,
                                                         std::string error) {
    if (!error.empty()) return respond(Error(500, "policy failed: " + error));
    const size_t dims = role->components.size();
    auto action = [&](size_t i, std::string& out) {
      out += "{";
      for (size_t c = 0; c < dims; ++c) {
        if (c) out += ',';
        out += role->action_json[c][actions[i * dims + c]];
      }
      out += "}";
    };
    std::string out =
        "{\"policy_version\":" + json(b->version()).dump() + ",\"role\":\"" + role->name + "\",";
    if (batch) {
      out += "\"decisions\":[";
      for (size_t i = 0; i < actions.size() / dims; ++i) {
        out += i ? ",{\"decision_id\":\"" : "{\"decision_id\":\"";
        out += NextId() + "\",\"action\":";
        action(i, out);
        out += "}";
      }
      out += "]}";
    } else {
      out += "\"decision_id\":\"" + NextId() + "\",\"action\":";
      action(0, out);
      out += "}";
    }
    if (raw) {
      try {
        Audit(route, json::parse(*raw), json::parse(out));
      } catch (const std::exception& e) {
        return respond(Error(500, std::string("audit log: ") + e.what()));
      }
    }
    respond(Reply{200, std::move(out), "application/json", 0});
  };
  SubmitOrReject(role_name, std::move(job), respond);
}

void Server::Impl::Application(const std::string& body, Respond respond) {
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
  auto decline = [this, b, request, respond](const std::string& by, const std::string& reason,
                                             json extra) {
    json out = {{"decision_id", NextId()},
                {"policy_version", b->version()},
                {"decision", "decline"},
                {"decided_by", by},
                {"reason", reason}};
    for (auto& [k, v] : extra.items()) out[k] = v;
    try {
      Audit("/v1/credit/applications", *request, out);
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
  job.done = [this, b, a, credit, pricing, product, band_name, request, respond, decline, spec](
                 std::vector<int64_t> actions, std::string error) {
    if (!error.empty()) return respond(Error(500, "credit policy failed: " + error));
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
        Audit("/v1/credit/applications", *request, out);
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
    pj.done = [pricing, product, price, respond](std::vector<int64_t> pa, std::string err) {
      if (!err.empty()) return respond(Error(500, "pricing policy failed: " + err));
      for (size_t c = 0; c < pricing->components.size(); ++c)
        if (pricing->components[c].name == "spread_offset/" + product) {
          const auto& comp = pricing->components[c];
          const double offset =
              pa[c] < static_cast<int64_t>(comp.values.size()) ? comp.values[pa[c]] : 0.0;
          return price(offset, "policy:pricing");
        }
      price(0.0, "rule:standard_spread");
    };
    SubmitOrReject("pricing", std::move(pj), respond);
  };
  SubmitOrReject("credit", std::move(job), respond);
}

// ---------------------------------------------------------------------------------------------

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.opt = std::move(options);
  if (s.opt.max_batch < 1) throw std::invalid_argument("--max-batch must be >= 1");
  if (s.opt.max_queue < s.opt.max_batch)
    throw std::invalid_argument("--max-queue must be at least --max-batch");
  s.bundle = PolicyBundle::Load(s.opt.bundle, s.opt.institution, s.opt.max_batch);
  if (!s.opt.audit_log.empty())
    s.audit = std::make_unique<AuditLog>(s.opt.audit_log, s.opt.audit_fsync);
  s.id_prefix = fmt::format("{:x}", std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
  for (const char* role : kTwinRoleNames)
    s.batchers[role] = std::make_unique<Batcher>(role, s.opt.max_batch, s.opt.max_delay_us,
                                                 s.opt.max_queue, &s.metrics);
  s.ready = true;
}

Server::~Server() {
  Shutdown();
  Wait();
}

void Server::Start() {
  Impl& s = *impl_;
  const tcp::endpoint ep(net::ip::make_address(s.opt.address), static_cast<uint16_t>(s.opt.port));
  s.acceptor.open(ep.protocol());
  s.acceptor.set_option(net::socket_base::reuse_address(true));
  s.acceptor.bind(ep);
  s.acceptor.listen(net::socket_base::max_listen_connections);
  if (s.opt.handle_signals) {
    s.signals = std::make_unique<net::signal_set>(s.ioc, SIGINT, SIGTERM, SIGHUP);
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
  for (int i = 0; i < std::max(1, s.opt.threads); ++i)
    s.threads.emplace_back([&s] { s.ioc.run(); });
}

int Server::port() const {
  return impl_->acceptor.local_endpoint().port();
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
  // Stop accepting; close idle connections; requests already read are answered.
  net::post(s.ioc, [&s] {
    beast::error_code ec;
    s.acceptor.close(ec);
    if (s.signals) s.signals->cancel(ec);
  });
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  for (;;) {
    std::vector<std::function<void()>> closers;
    {
      std::lock_guard<std::mutex> lock(s.sessions_mu);
      for (auto& [ptr, close] : s.sessions) closers.push_back(close);
    }
    for (auto& close : closers) close();  // outside the lock: a session may end in here
    if (s.in_flight.load() == 0) {
      std::lock_guard<std::mutex> lock(s.sessions_mu);
      if (s.sessions.empty()) break;
    }
    if (Clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& [role, b] : s.batchers) b->Stop();
  s.work.reset();
  s.ioc.stop();
  for (auto& t : s.threads)
    if (t.joinable() && t.get_id() != std::this_thread::get_id()) t.join();
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
