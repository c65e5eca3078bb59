// The decision server on a loopback port: every endpoint's happy path, each error case, hot
// reload under concurrent requests, a broken bundle rejected while the old one serves, the
// audit log's hash chain (and tampering), graceful shutdown that drains (docs/serving.md).

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/csrc/jit/api/compilation_unit.h>
#include <torch/csrc/jit/frontend/parser.h>
#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/script.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "core/atomic_file.h"
#include "core/sha256.h"
#include "serve/admission.h"
#include "serve/adverse_action.h"
#include "serve/audit.h"
#include "serve/bundle.h"
#include "serve/decide_request.h"
#include "serve/json_number.h"
#include "serve/server.h"
#include "tests/agent_test_util.h"
#include "tests/test_util.h"
#include "training/checkpoint.h"
#include "training/export.h"
#include "training/monitor.h"
#include "training/trainer.h"

namespace loantwin {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using testing::ReadFile;
using testing::TempDir;

/// A keep-alive HTTP client for one connection.
class Client {
 public:
  explicit Client(int port) : stream_(ioc_) {
    stream_.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)));
  }
  http::response<http::string_body> Request(http::verb verb, const std::string& target,
                                            const std::string& body = "",
                                            const std::string& authorization = "") {
    http::request<http::string_body> req{verb, target, 11};
    req.set(http::field::host, "localhost");
    if (!authorization.empty()) req.set(http::field::authorization, authorization);
    req.keep_alive(true);
    if (verb == http::verb::post) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
      req.prepare_payload();
    }
    http::write(stream_, req);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(stream_, buf, res);
    return res;
  }
  json Post(const std::string& target, const json& body, int* status = nullptr) {
    auto res = Request(http::verb::post, target, body.dump());
    if (status) *status = res.result_int();
    return json::parse(res.body());
  }
  beast::tcp_stream& stream() { return stream_; }

 private:
  net::io_context ioc_;
  beast::tcp_stream stream_;
};

/// A small trained run exported twice (two versions of the bundle) into a temporary directory.
class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const std::string yaml = testing::TinyTwinExperiment("serve-test", 5, 640, "ppo");
    Trainer t(ExperimentConfig::Parse(YamlValue::LoadString(yaml, "serve.yaml")));
    t.Train(256);
    CheckpointManager ckpt(Dir() + "/run/checkpoints", 2);
    ExportRun(t, Dir() + "/run", ckpt.Save(t), Dir() + "/v1");
    t.Train();
    ExportRun(t, Dir() + "/run", ckpt.Save(t), Dir() + "/v2");
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string Dir() { return dir_->path(); }

  static json Observation(const std::string& role, float value = 0.0f) {
    const auto m = json::parse(ReadFile(Dir() + "/v1/manifest.json"));
    json obs = json::object();
    for (const auto& f : m["roles"][role]["observation"]["features"])
      obs[f.get<std::string>()] = value;
    return obs;
  }
  static json State() {
    json s = Observation("credit");
    const json pricing = Observation("pricing");
    for (const auto& [k, v] : pricing.items()) s[k] = v;
    return s;
  }
  static std::unique_ptr<Server> Start(ServerOptions o = {}) {
    if (o.bundle.empty()) o.bundle = Dir() + "/v1";
    o.port = 0;
    auto s = std::make_unique<Server>(o);
    s->Start();
    return s;
  }
  static TempDir* dir_;
};
TempDir* ServeTest::dir_ = nullptr;

TEST(Sha256, KnownDigests) {
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha256Hex(std::string(1000, 'a')).substr(0, 16), "41edece42d63e8d9");
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// The SHA-extension rounds (where the CPU has them) and the portable rounds agree on every
// length around the block boundaries, and streaming in pieces equals one call.
TEST(Sha256, AcceleratedPortableAndStreamingAgree) {
  std::mt19937 rng(5);
  std::string data(1000, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (size_t n = 0; n <= data.size(); n += (n < 200 ? 1 : 37)) {
    const std::string_view v(data.data(), n);
    Sha256::UseAcceleration(false);
    const std::string portable = Sha256Hex(v);
    Sha256::UseAcceleration(true);
    EXPECT_EQ(Sha256Hex(v), portable)
        << n << " bytes (accelerated: " << Sha256::Accelerated() << ")";
    Sha256 s;
    size_t at = 0;
    while (at < n) {
      const size_t take = std::min<size_t>(n - at, rng() % 90);
      s.Update(v.substr(at, take));
      at += take;
    }
    EXPECT_EQ(s.FinalHex(), portable) << n;
  }
  Sha256 midstate;
  midstate.Update("abcdbcdecdefdefgefghfghighij");
  Sha256 copy = midstate;
  copy.Update("hijkijkljklmklmnlmnomnopnopq");
  EXPECT_EQ(copy.FinalHex(), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

// The fast parser's numbers: JSON's grammar only, and bit for bit what std::from_chars reads.
TEST(JsonNumber, StrictGrammarAndCorrectRounding) {
  auto parse = [](const std::string& text, double* v) {
    const char* p = text.data();
    return ParseJsonNumber(&p, text.data() + text.size(), v) && p == text.data() + text.size();
  };
  double v = 0;
  for (const char* bad : {".5", "05", "5.", "-", "+1", "inf", "NaN", "1e", "0x10", "--1"}) {
    const std::string text(bad);
    const char* p = text.data();
    EXPECT_FALSE(ParseJsonNumber(&p, text.data() + text.size(), &v) &&
                 p == text.data() + text.size())
        << bad;
  }
  EXPECT_FALSE(parse("1e999", &v));  // overflows: not finite
  std::mt19937_64 rng(11);
  std::vector<std::string> cases = {"0",
                                    "-0",
                                    "0.1",
                                    "0.3",
                                    "1e-3",
                                    "123456789012345",
                                    "1234567890123456789",
                                    "0.000000000000000123",
                                    "-2.5E+3",
                                    "0.9999999999999999",
                                    "4503599627370497.5"};
  for (int i = 0; i < 20000; ++i) {
    const int digits = 1 + static_cast<int>(rng() % 18), point = static_cast<int>(rng() % 19);
    std::string t = rng() % 2 ? "-" : "";
    std::string m;
    for (int k = 0; k < digits; ++k) m += static_cast<char>('0' + rng() % 10);
    m.erase(0, std::min(m.find_first_not_of('0'), m.size() - 1));  // no leading zeros
    if (point > 0 && point < static_cast<int>(m.size()))
      m.insert(static_cast<size_t>(m.size() - point), ".");
    else if (point >= static_cast<int>(m.size()))
      m = "0." + std::string(static_cast<size_t>(point - static_cast<int>(m.size())), '0') + m;
    cases.push_back(t + m);
  }
  for (const auto& text : cases) {
    double expected = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), expected);
    ASSERT_EQ(ec, std::errc()) << text;
    ASSERT_TRUE(parse(text, &v)) << text;
    EXPECT_EQ(std::memcmp(&v, &expected, sizeof v), 0) << text << " " << v << " " << expected;
  }
}

TEST_F(ServeTest, EveryEndpointHappyPath) {
  TempDir tmp;
  ServerOptions o;
  o.audit_log = tmp.path() + "/audit.log";
  auto server = Start(o);
  Client c(server->port());
  auto health = c.Request(http::verb::get, "/healthz");
  EXPECT_EQ(health.result_int(), 200);
  auto ready = c.Request(http::verb::get, "/readyz");
  EXPECT_EQ(ready.result_int(), 200);
  EXPECT_EQ(json::parse(ready.body())["bundle"], server->BundleVersion());
  // One decision: every component with its index, meaning and value; version and id.
  int status = 0;
  json one = c.Post("/v1/roles/credit/decide", {{"observation", Observation("credit")}}, &status);
  ASSERT_EQ(status, 200) << one.dump();
  EXPECT_EQ(one["policy_version"], server->BundleVersion());
  EXPECT_FALSE(one["decision_id"].get<std::string>().empty());
  ASSERT_EQ(one["action"].size(), 5u);
  EXPECT_TRUE(one["action"]["cutoff/card"]["meaning"].is_string());
  EXPECT_TRUE(one["action"]["cutoff/card"]["value"].is_number());
  // The served decision equals the module's greedy decision.
  auto bundle = PolicyBundle::Load(Dir() + "/v1", "", 4);
  const ServedRole* credit = bundle->role("credit");
  std::vector<float> obs(credit->features.size(), 0.0f);
  std::vector<uint8_t> mask(credit->mask_width, 1);
  const auto direct = bundle->Decide(*credit, obs, mask, 1);
  for (size_t k = 0; k < credit->components.size(); ++k)
    EXPECT_EQ(one["action"][credit->components[k].name]["index"].get<int64_t>(), direct[k]);
  // The served (frozen) module decides exactly as the exported module does, on varied rows.
  {
    torch::jit::Module exported = torch::jit::load(Dir() + "/v1/credit.pt");
    exported.eval();
    const int n = 32;
    std::mt19937 rng(3);
    std::vector<float> rows(static_cast<size_t>(n) * credit->features.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      const size_t k = i % credit->features.size();
      const float lo = std::max(credit->low[k], -3.0f), hi = std::min(credit->high[k], 3.0f);
      rows[i] = lo + (hi - lo) * std::uniform_real_distribution<float>(0, 1)(rng);
    }
    std::vector<uint8_t> masks(static_cast<size_t>(n) * credit->mask_width, 1);
    c10::InferenceMode guard;
    const auto expected =
        exported
            .forward(
                {torch::from_blob(rows.data(), {n, static_cast<int64_t>(credit->features.size())}),
                 torch::from_blob(masks.data(), {n, credit->mask_width}, torch::kUInt8)})
            .toTensor()
            .to(torch::kInt64)
            .contiguous();
    const auto served = bundle->Decide(*credit, rows, masks, n);
    ASSERT_EQ(static_cast<int64_t>(served.size()), expected.numel());
    for (size_t i = 0; i < served.size(); ++i)
      EXPECT_EQ(served[i], expected.data_ptr<int64_t>()[i]) << i;
  }
  // The same observation written by hand in manifest order, with whitespace (the fast path).
  std::string pretty = "{\n  \"observation\" : {";
  for (size_t k = 0; k < credit->features.size(); ++k)
    pretty += std::string(k ? ",\n" : "\n") + "    \"" + credit->features[k] + "\": 0.0";
  pretty += "\n  }\n}\n";
  Client c2(server->port());
  const auto pretty_res = c2.Request(http::verb::post, "/v1/roles/credit/decide", pretty);
  ASSERT_EQ(pretty_res.result_int(), 200) << pretty_res.body();
  EXPECT_EQ(json::parse(pretty_res.body())["action"], one["action"]);
  // A batch, with a mask that allows only "none" for the card cutoff.
  json masks = json::array();
  std::vector<int> m(credit->mask_width, 1);
  for (const auto& comp : credit->components)
    if (comp.name == "cutoff/card")
      for (int v = 1; v < comp.size; ++v) m[comp.mask_offset + v] = 0;
  masks.push_back(m);
  masks.push_back(m);
  masks.push_back(m);
  json batch =
      c.Post("/v1/roles/credit/decide",
             {{"observations",
               {Observation("credit"), Observation("credit", 0.5f), Observation("credit", 0.25f)}},
              {"masks", masks}},
             &status);
  ASSERT_EQ(status, 200) << batch.dump();
  ASSERT_EQ(batch["decisions"].size(), 3u);
  std::set<std::string> ids;
  for (const auto& d : batch["decisions"]) {
    EXPECT_EQ(d["action"]["cutoff/card"]["meaning"], "none");
    ids.insert(d["decision_id"]);
  }
  EXPECT_EQ(ids.size(), 3u);
  json price =
      c.Post("/v1/roles/pricing/decide", {{"observation", Observation("pricing")}}, &status);
  EXPECT_EQ(status, 200) << price.dump();
  EXPECT_TRUE(price["action"].contains("spread_offset/card"));
  // Credit applications: a decision with the rule or policy that made it.
  json app = {{"product", "card"}, {"amount", 3000},  {"term_months", 0},
              {"band", "A"},       {"income", 80000}, {"state", State()}};
  json r = c.Post("/v1/credit/applications", app, &status);
  ASSERT_EQ(status, 200) << r.dump();
  EXPECT_TRUE(r["decision"] == "approve" || r["decided_by"] == "policy:credit") << r.dump();
  if (r["decision"] == "approve") {
    EXPECT_EQ(r["priced_by"], "policy:pricing");
    EXPECT_GT(r["offered_rate"].get<double>(), 0.0);
  }
  app["amount"] = 1e7;
  r = c.Post("/v1/credit/applications", app, &status);
  EXPECT_EQ(r["decided_by"], "rule:amount_limit") << r.dump();
  ASSERT_TRUE(r.contains("reasons")) << r.dump();  // adverse-action reasons, ranked
  EXPECT_EQ(r["reasons"][0]["code"], "AM01") << r.dump();
  app["amount"] = 3000;
  app["term_months"] = 36;
  r = c.Post("/v1/credit/applications", app, &status);
  EXPECT_EQ(r["decided_by"], "rule:term_not_offered") << r.dump();
  EXPECT_EQ(r["reasons"][0]["code"], "TM01") << r.dump();
  app["term_months"] = 0;
  app["income"] = 100;
  app["band"] = "A";
  r = c.Post("/v1/credit/applications", app, &status);
  EXPECT_TRUE(r["decided_by"] == "rule:dti_limit" || r["decided_by"] == "policy:credit")
      << r.dump();
  // Metrics in Prometheus text format.
  auto metrics = c.Request(http::verb::get, "/metrics");
  EXPECT_EQ(metrics.result_int(), 200);
  for (const char* text :
       {"loantwin_requests_total{route=\"/v1/roles/credit/decide\",status=\"200\"} 3",
        "loantwin_request_duration_seconds_bucket{le=\"+Inf\"}", "loantwin_batch_size_bucket",
        "loantwin_queue_depth{role=\"credit\"}", "loantwin_bundle_info{version=\""})
    EXPECT_NE(metrics.body().find(text), std::string::npos) << text << "\n" << metrics.body();
  server->Shutdown();
  const AuditVerification v = VerifyAuditLog(tmp.path() + "/audit.log");
  EXPECT_TRUE(v.ok) << v.reason;
  EXPECT_EQ(v.lines, 10);  // 2 single + 3 batch decisions + 1 pricing + 4 applications
  // A batch is recorded one line per decision: its observation and mask, its decision.
  std::vector<json> records;
  std::ifstream in(tmp.path() + "/audit.log");
  for (std::string l; std::getline(in, l);) records.push_back(json::parse(l));
  // The audit line of a declined application carries its reasons.
  int declines_with_reasons = 0;
  for (const json& rec : records)
    if (rec["response"].contains("decided_by") &&
        rec["response"]["decided_by"] == "rule:amount_limit")
      declines_with_reasons += rec["response"]["reasons"][0]["code"] == "AM01";
  EXPECT_EQ(declines_with_reasons, 1);
  for (int i = 0; i < 3; ++i) {
    const json& r = records[2 + i];
    EXPECT_EQ(r["response"]["decision_id"], batch["decisions"][i]["decision_id"]);
    EXPECT_EQ(r["response"]["action"], batch["decisions"][i]["action"]);
    EXPECT_EQ(r["response"]["policy_version"], server->BundleVersion());
    EXPECT_EQ(r["request"]["mask"], masks[i]);
    EXPECT_EQ(r["request"]["observation"], json(Observation("credit", i == 0   ? 0.0f
                                                                      : i == 1 ? 0.5f
                                                                               : 0.25f)));
  }
}

TEST(JsonDepth, CountsNestingOutsideStrings) {
  EXPECT_EQ(JsonNestingDepth("{}"), 1);
  EXPECT_EQ(JsonNestingDepth("{\"a\": [1, {\"b\": [[2]]}]}"), 5);
  EXPECT_EQ(JsonNestingDepth("{\"a\": \"[[[{{{\"}"), 1);          // brackets inside a string
  EXPECT_EQ(JsonNestingDepth("{\"a\": \"\\\"[[[\"}"), 1);         // an escaped quote
  EXPECT_EQ(JsonNestingDepth(std::string(100000, '[')), 100000);  // no recursion
  json out;
  EXPECT_NE(ParseJsonObject(std::string(65, '[') + std::string(65, ']'), &out).find("nested 65"),
            std::string::npos);
  EXPECT_EQ(ParseJsonObject("{\"a\": " + std::string(63, '[') + std::string(63, ']') + "}", &out),
            "");
}

/// A credit application whose state holds a `depth`-deep array as a feature's value.
std::string DeepApplication(int depth) {
  return "{\"product\": \"card\", \"amount\": 5, \"income\": 1, \"band\": \"A\", \"state\": "
         "{\"macro/unemployment\": " +
         std::string(depth, '[') + std::string(depth, ']') + "}}";
}

TEST_F(ServeTest, BadRequestsGetClearErrorsAndTheServerSurvives) {
  ServerOptions o;
  o.body_limit = 64 * 1024;
  o.read_timeout_ms = 300;
  auto server = Start(o);
  struct Case {
    std::string target, body;
    int status;
    std::string expect;
  };
  json missing = Observation("credit");
  const std::string first = missing.begin().key();
  missing.erase(first);
  json unknown = Observation("credit");
  unknown["no_such_feature"] = 1;
  json wrong_type = Observation("credit");
  wrong_type[first] = "high";
  json range = Observation("credit");
  // A bounded feature set far outside its bounds.
  auto bundle = PolicyBundle::Load(Dir() + "/v1", "", 4);
  const ServedRole* credit = bundle->role("credit");
  std::string bounded;
  for (size_t k = 0; k < credit->features.size() && bounded.empty(); ++k)
    if (std::isfinite(credit->high[k])) bounded = credit->features[k];
  ASSERT_FALSE(bounded.empty());
  range[bounded] = 1e6;
  std::string inf_body = json{{"observation", Observation("credit")}}.dump();
  const std::string key = "\"" + first + "\":0.0";
  ASSERT_NE(inf_body.find(key), std::string::npos);
  inf_body.replace(inf_body.find(key), key.size(), "\"" + first + "\":1e999");
  const std::vector<Case> cases = {
      {"/v1/roles/credit/decide", "{not json", 400, "malformed JSON"},
      {"/v1/roles/credit/decide", "[1, 2]", 400, "JSON object"},
      {"/v1/roles/credit/decide", json{{"observation", missing}}.dump(), 400,
       "missing feature '" + first + "'"},
      {"/v1/roles/credit/decide", json{{"observation", unknown}}.dump(), 400,
       "unknown feature 'no_such_feature'"},
      {"/v1/roles/credit/decide", json{{"observation", wrong_type}}.dump(), 400,
       "must be a number"},
      {"/v1/roles/credit/decide", json{{"observation", range}}.dump(), 400, "outside its range"},
      {"/v1/roles/credit/decide", inf_body, 400, "overflow"},
      {"/v1/roles/credit/decide", "{\"observation\": {\"" + first + "\": NaN}}", 400, "NaN"},
      {"/v1/roles/credit/decide", json{{"observations", json::array()}}.dump(), 400,
       "non-empty array"},
      {"/v1/roles/credit/decide", json{{"obs", 1}}.dump(), 400, "unknown key 'obs'"},
      {"/v1/roles/credit/decide",
       json{{"observation", Observation("credit")}, {"mask", {1, 0}}}.dump(), 400,
       "zeros and ones"},
      {"/v1/roles/risk/decide", json{{"observation", json::object()}}.dump(), 404,
       "unknown role 'risk'"},
      {"/v1/roles/nobody/decide", "{}", 404, "unknown role"},
      {"/v2/whatever", "{}", 404, "no route"},
      {"/v1/credit/applications", json{{"product", "yacht"}}.dump(), 400, "unknown product"},
      {"/v1/credit/applications",
       json{{"product", "card"}, {"amount", -5}, {"income", 1}, {"band", "A"}, {"state", State()}}
           .dump(),
       400, "'amount'"},
      {"/v1/credit/applications",
       json{{"product", "card"}, {"amount", 5}, {"income", 1}, {"score", 900}, {"state", State()}}
           .dump(),
       400, "'score'"},
      {"/v1/credit/applications",
       json{{"product", "card"}, {"amount", 5}, {"income", 1}, {"band", "A"}}.dump(), 400,
       "missing 'state'"},
      {"/admin/reload", "{\"bundel\": 1}", 400, "unknown key 'bundel'"},
      // Deeply nested values are refused before any tree is built or copied (a 150,000-deep
      // array here once crashed the server; the body limit of this server keeps it to 20,000).
      {"/v1/credit/applications", DeepApplication(20000), 400, "nested 20002 levels deep"},
      {"/v1/roles/credit/decide",
       "{\"observation\": {\"" + first + "\": " + std::string(20000, '[') +
           std::string(20000, ']') + "}}",
       400, "must be a number"},
      {"/admin/reload", "{\"bundle\": " + std::string(20000, '[') + std::string(20000, ']') + "}",
       400, "body must be a JSON object"},
  };
  Client c(server->port());
  for (const auto& k : cases) {
    auto res = c.Request(http::verb::post, k.target, k.body);
    EXPECT_EQ(res.result_int(), k.status) << k.target << " " << k.body.substr(0, 80) << "\n"
                                          << res.body();
    EXPECT_NE(res.body().find(k.expect), std::string::npos) << res.body();
    if (k.status == 400 && k.expect.find("feature") != std::string::npos) {
      EXPECT_TRUE(json::parse(res.body()).contains("field")) << res.body();
    }
  }
  EXPECT_EQ(c.Request(http::verb::get, "/v1/roles/credit/decide").result_int(), 405);
  EXPECT_EQ(c.Request(http::verb::post, "/healthz").result_int(), 405);
  // Body over the limit: 413.
  {
    Client big(server->port());
    auto res = big.Request(http::verb::post, "/v1/roles/credit/decide", std::string(100000, ' '));
    EXPECT_EQ(res.result_int(), 413);
  }
  // A slow client (half a request, then silence) is disconnected after the read timeout.
  {
    Client slow(server->port());
    const std::string partial =
        "POST /v1/roles/credit/decide HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"obs";
    net::write(slow.stream().socket(), net::buffer(partial));
    char buf[64];
    beast::error_code ec;
    slow.stream().socket().read_some(net::buffer(buf), ec);
    EXPECT_TRUE(ec) << "the server should close the connection";
  }
  // Garbage that is not HTTP: 400, and the server goes on.
  {
    Client junk(server->port());
    net::write(junk.stream().socket(), net::buffer(std::string("\x01\x02 NOT HTTP\r\n\r\n")));
    beast::flat_buffer b;
    http::response<http::string_body> res;
    beast::error_code ec;
    http::read(junk.stream(), b, res, ec);
    if (!ec) {
      EXPECT_EQ(res.result_int(), 400);
    }
  }
  EXPECT_EQ(c.Request(http::verb::get, "/healthz").result_int(), 200);
}

/// Writes raw bytes on a new connection to `port`; returns the connection.
std::unique_ptr<Client> RawClient(int port, const std::string& bytes) {
  auto c = std::make_unique<Client>(port);
  net::write(c->stream().socket(), net::buffer(bytes));
  return c;
}

/// Reads until the server closes the connection; true if it did (rather than answering).
bool ServerCloses(Client& c) {
  char buf[256];
  beast::error_code ec;
  for (;;) {
    c.stream().socket().read_some(net::buffer(buf), ec);
    if (ec) return ec == net::error::eof || ec == net::error::connection_reset;
  }
}

TEST_F(ServeTest, LimitsAndHostileClients) {
  ServerOptions o;
  o.body_limit = 64 * 1024;
  o.max_inflight_body = 100 * 1024;
  o.read_timeout_ms = 200;
  o.idle_timeout_ms = 3600000;  // a slow header must not get this long
  o.max_connections = 4;
  auto server = Start(o);
  const int port = server->port();
  // A header that never ends is closed after the read timeout, not the idle timeout.
  {
    auto slow = RawClient(port, "POST /v1/roles/credit/decide HTTP/1.1\r\nHost: x\r\nX-A");
    EXPECT_TRUE(ServerCloses(*slow));
  }
  // Invalid UTF-8 in the path or in a JSON string: 404 / 400, never 500.
  {
    Client c(port);
    auto res = c.Request(http::verb::post, "/v1/roles/cr\xff\xfe/decide", "{}");
    EXPECT_TRUE(res.result_int() == 404 || res.result_int() == 400) << res.body();
    EXPECT_NO_THROW(json::parse(res.body()));
    res = c.Request(http::verb::post, "/v1/roles/credit/decide",
                    "{\"observation\": {\"\xc3\x28\": 1}}");
    EXPECT_EQ(res.result_int(), 400) << res.body();
    res = c.Request(http::verb::post, "/admin/reload", "{\"bund\xe9\": 1}");
    EXPECT_EQ(res.result_int(), 400) << res.body();
    EXPECT_NO_THROW(json::parse(res.body()));
  }
  // Request bodies held by all connections are bounded: a second large upload waits for 503.
  {
    const std::string head =
        "POST /v1/roles/credit/decide HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n";
    auto first = RawClient(port, head + "{\"observation\":");
    while (server->RequestBodyBytes() < 60000) std::this_thread::yield();
    Client second(port);
    auto res = second.Request(http::verb::post, "/v1/roles/credit/decide", std::string(60000, ' '));
    EXPECT_EQ(res.result_int(), 503) << res.body();
    EXPECT_NE(res.body().find("too many request bytes in flight"), std::string::npos);
    EXPECT_EQ(res[http::field::retry_after], "1");
    net::write(first->stream().socket(), net::buffer(std::string(60000 - 15, ' ')));
    beast::flat_buffer b;
    http::response<http::string_body> answer;
    http::read(first->stream(), b, answer);
    EXPECT_EQ(answer.result_int(), 400);  // the first one was read and answered
    EXPECT_EQ(server->RequestBodyBytes(), 0);
  }
  // An oversized upload gets its 413 even though the server answers before the upload ends:
  // the server reads and drops the rest instead of resetting the connection.
  {
    Client big(port);
    http::request<http::string_body> req{http::verb::post, "/v1/roles/credit/decide", 11};
    req.set(http::field::host, "x");
    req.body() = std::string(16 << 20, ' ');
    req.prepare_payload();
    beast::error_code ec;
    http::write(big.stream(), req, ec);
    EXPECT_FALSE(ec) << "upload cut off: " << ec.message();
    beast::flat_buffer b;
    http::response<http::string_body> res;
    http::read(big.stream(), b, res, ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(res.result_int(), 413);
  }
  // Connections beyond --max-connections are closed at once; those open keep working.
  while (server->OpenConnections() > 0) std::this_thread::yield();  // the ones above are gone
  {
    std::vector<std::unique_ptr<Client>> open;
    for (int i = 0; i < 4; ++i) {
      open.push_back(std::make_unique<Client>(port));
      EXPECT_EQ(open.back()->Request(http::verb::get, "/healthz").result_int(), 200);
    }
    Client extra(port);
    EXPECT_TRUE(ServerCloses(extra));
    auto metrics = open[0]->Request(http::verb::get, "/metrics").body();
    EXPECT_NE(metrics.find("loantwin_connections_refused_total 1"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("loantwin_connections 4"), std::string::npos) << metrics;
  }
}

TEST_F(ServeTest, TheDocumentedLargestBatchFitsTheDefaultBodyLimit) {
  // 1,024 observations with every value at full double precision (17 significant digits).
  auto bundle = PolicyBundle::Load(Dir() + "/v1", "", 4);
  const ServedRole* credit = bundle->role("credit");
  json obs = json::object();
  for (size_t k = 0; k < credit->features.size(); ++k) {
    double v = -0.12345678901234567;  // within the feature's bounds, still 17 digits long
    if (v < credit->low[k] || v > credit->high[k])
      v = credit->low[k] +
          (std::min<double>(credit->high[k], credit->low[k] + 1.0) - credit->low[k]) *
              0.12345678901234567;
    obs[credit->features[k]] = v;
  }
  const json observations(1024, obs);
  const std::string body = json{{"observations", observations}}.dump();
  EXPECT_LE(body.size(), ServerOptions{}.body_limit);
  EXPECT_EQ(ServerOptions{}.max_batch_request, 1024);
  auto server = Start();
  Client c(server->port());
  auto res = c.Request(http::verb::post, "/v1/roles/credit/decide", body);
  ASSERT_EQ(res.result_int(), 200) << res.body().substr(0, 300);
  EXPECT_EQ(json::parse(res.body())["decisions"].size(), 1024u);
}

TEST_F(ServeTest, AdminRoutesNeedTheTokenAndStayUnderTheBundleRoot) {
  TempDir tmp;
  const std::string token = "0123456789abcdef-admin";
  { std::ofstream(tmp.path() + "/token") << token << "\n"; }
  ServerOptions o;
  o.admin_token_file = tmp.path() + "/token";
  auto server = Start(o);  // bundle root: the parent of v1, which holds v2
  Client c(server->port());
  const std::string v2 = json{{"bundle", Dir() + "/v2"}}.dump();
  auto res = c.Request(http::verb::post, "/admin/reload", v2);
  EXPECT_EQ(res.result_int(), 401) << res.body();
  res = c.Request(http::verb::post, "/admin/reload", v2, "Bearer " + token + "x");
  EXPECT_EQ(res.result_int(), 401);
  res = c.Request(http::verb::post, "/admin/reload", v2, "Bearer " + token.substr(1));
  EXPECT_EQ(res.result_int(), 401);
  res = c.Request(http::verb::post, "/admin/reload", v2, "Bearer " + token);
  EXPECT_EQ(res.result_int(), 200) << res.body();
  // Outside the bundle root (also through '..'): 403, nothing loaded.
  for (const std::string& dir : {std::string("/etc"), tmp.path(), Dir() + "/v1/../../"}) {
    res = c.Request(http::verb::post, "/admin/reload", json{{"bundle", dir}}.dump(),
                    "Bearer " + token);
    EXPECT_EQ(res.result_int(), 403) << dir << " " << res.body();
  }
  // A "bundle" whose manifest is some other file: the error does not quote its contents.
  std::filesystem::create_directories(Dir() + "/secret");
  std::ofstream(Dir() + "/secret/manifest.json") << "password=hunter2-SECRET\n";
  res = c.Request(http::verb::post, "/admin/reload", json{{"bundle", Dir() + "/secret"}}.dump(),
                  "Bearer " + token);
  EXPECT_EQ(res.result_int(), 422) << res.body();
  EXPECT_EQ(res.body().find("hunter2"), std::string::npos) << res.body();
  EXPECT_NE(res.body().find("not valid JSON"), std::string::npos) << res.body();
}

/// A tenants file for two tenants: "north" (bundle v1, token file, small queue) and "south"
/// (bundle v2, token from the environment), each with its audit log, in `dir`.
std::string TwoTenants(const std::string& dir, const std::string& bundles,
                       const std::string& extra = "") {
  { std::ofstream(dir + "/north.token") << "north-token-0123456789\n"; }
  ::setenv("LOANTWIN_TEST_SOUTH_TOKEN", "south-token-9876543210", 1);
  std::ofstream(dir + "/tenants.yaml") << "tenants:\n"
                                       << "  - name: north\n"
                                       << "    bundle: " << bundles << "/v1\n"
                                       << "    token_file: north.token\n"
                                       << "    audit_log: north.log\n"
                                       << "    max_queue: 2\n"
                                       << "    max_inflight: 1\n"
                                       << "  - name: south\n"
                                       << "    bundle: " << bundles << "/v2\n"
                                       << "    token_env: LOANTWIN_TEST_SOUTH_TOKEN\n"
                                       << "    audit_log: south.log\n"
                                       << "    metrics_label: south_cu\n"
                                       << extra;
  return dir + "/tenants.yaml";
}

TEST_F(ServeTest, TenantsStayApart) {
  TempDir tmp;
  ServerOptions o;
  o.tenants = TwoTenants(tmp.path(), Dir());
  o.max_batch = 1;
  o.port = 0;
  Server server(o);
  server.Start();
  EXPECT_EQ(server.Tenants(), (std::vector<std::string>{"north", "south"}));
  EXPECT_NE(server.TenantBundleVersion("north"), server.TenantBundleVersion("south"));
  Client c(server.port());
  const std::string north = "Bearer north-token-0123456789",
                    south = "Bearer south-token-9876543210";
  const std::string one = json{{"observation", Observation("credit")}}.dump();
  auto decide = [&](const std::string& tenant, const std::string& token, const std::string& body) {
    return c.Request(http::verb::post, "/v1/tenants/" + tenant + "/roles/credit/decide", body,
                     token);
  };
  // Each token reaches its own tenant only; an unknown tenant looks like a wrong token.
  auto res = decide("north", north, one);
  ASSERT_EQ(res.result_int(), 200) << res.body();
  EXPECT_EQ(json::parse(res.body())["decision_id"].get<std::string>().rfind("north-", 0), 0u);
  EXPECT_EQ(json::parse(res.body())["policy_version"], server.TenantBundleVersion("north"));
  res = decide("south", south, one);
  ASSERT_EQ(res.result_int(), 200) << res.body();
  EXPECT_EQ(json::parse(res.body())["policy_version"], server.TenantBundleVersion("south"));
  const std::string refused = decide("south", north, one).body();
  for (const auto& [tenant, token] :
       std::vector<std::pair<std::string, std::string>>{{"south", north},
                                                        {"north", south},
                                                        {"north", ""},
                                                        {"north", north + "x"},
                                                        {"nobody", north},
                                                        {"North", north}}) {
    res = decide(tenant, token, one);
    EXPECT_EQ(res.result_int(), 401) << tenant << " " << token;
    EXPECT_EQ(res.body(), refused);  // nothing tells which tenants exist
  }
  for (const std::string route : {"/readyz", "/audit"})
    EXPECT_EQ(c.Request(http::verb::get, "/v1/tenants/south" + route, "", north).result_int(), 401)
        << route;
  EXPECT_EQ(c.Request(http::verb::post, "/v1/tenants/south/admin/reload", "", north).result_int(),
            401);
  EXPECT_EQ(c.Request(http::verb::post, "/v1/tenants/south/credit/applications", "{}", north)
                .result_int(),
            401);
  // North admits one decision request at a time: the others wait unread and are all served.
  {
    std::vector<std::future<int>> clients;
    for (int k = 0; k < 8; ++k)
      clients.push_back(std::async(std::launch::async, [&] {
        Client own(server.port());
        int ok = 0;
        for (int i = 0; i < 5; ++i)
          ok += own.Request(http::verb::post, "/v1/tenants/north/roles/credit/decide", one, north)
                    .result_int() == 200;
        return ok;
      }));
    int ok = 0;
    for (auto& f : clients) ok += f.get();
    EXPECT_EQ(ok, 40);
  }
  // The single-bundle routes are not served with --tenants.
  EXPECT_EQ(c.Request(http::verb::post, "/v1/roles/credit/decide", one, north).result_int(), 404);
  // Queue limits are per tenant: three observations overflow north's queue of 2, not south's.
  const std::string three =
      json{{"observations", {Observation("credit"), Observation("credit"), Observation("credit")}}}
          .dump();
  EXPECT_EQ(decide("north", north, three).result_int(), 503);
  EXPECT_EQ(decide("south", south, three).result_int(), 200);
  // Each tenant's audit log holds its own decisions only, and only its token reads it.
  res = c.Request(http::verb::get, "/v1/tenants/north/audit?lines=10", "", north);
  ASSERT_EQ(res.result_int(), 200) << res.body();
  json audit = json::parse(res.body());
  EXPECT_EQ(audit["records_total"], 41);
  ASSERT_EQ(audit["records"].size(), 10u);
  EXPECT_EQ(audit["records"][0]["response"]["policy_version"], server.TenantBundleVersion("north"));
  res = c.Request(http::verb::get, "/v1/tenants/south/audit", "", south);
  EXPECT_EQ(json::parse(res.body())["records_total"], 4);  // 1 + the batch of 3
  EXPECT_EQ(c.Request(http::verb::get, "/v1/tenants/south/audit?lines=0", "", south).result_int(),
            400);
  EXPECT_EQ(VerifyAuditLog(tmp.path() + "/north.log").lines, 41);
  EXPECT_TRUE(VerifyAuditLog(tmp.path() + "/south.log").ok);
  EXPECT_EQ(ReadFile(tmp.path() + "/north.log").find(server.TenantBundleVersion("south")),
            std::string::npos);
  // A tenant reloads its own bundle (under its bundle root) with its token; the other tenant
  // keeps serving what it served.
  const std::string south_version = server.TenantBundleVersion("south");
  res = c.Request(http::verb::post, "/v1/tenants/north/admin/reload",
                  json{{"bundle", Dir() + "/v2"}}.dump(), north);
  ASSERT_EQ(res.result_int(), 200) << res.body();
  EXPECT_EQ(server.TenantBundleVersion("north"), south_version);
  res = c.Request(http::verb::post, "/v1/tenants/north/admin/reload",
                  json{{"bundle", "/etc"}}.dump(), north);
  EXPECT_EQ(res.result_int(), 403);
  EXPECT_EQ(res.body().find(Dir()), std::string::npos);  // the root is not disclosed
  res = c.Request(http::verb::get, "/v1/tenants/north/readyz", "", north);
  EXPECT_EQ(json::parse(res.body())["tenant"], "north");
  // The operator's /admin/reload names the tenant.
  EXPECT_EQ(c.Request(http::verb::post, "/admin/reload", "{}").result_int(), 400);
  EXPECT_EQ(c.Request(http::verb::post, "/admin/reload", json{{"tenant", "x"}}.dump()).result_int(),
            404);
  EXPECT_EQ(c.Request(http::verb::post, "/admin/reload",
                      json{{"tenant", "north"}, {"bundle", Dir() + "/v1"}}.dump())
                .result_int(),
            200);
  EXPECT_NE(server.TenantBundleVersion("north"), south_version);
  // Server-wide routes name no tenant; /metrics labels each tenant's series.
  EXPECT_EQ(c.Request(http::verb::get, "/readyz").body().find("north"), std::string::npos);
  const std::string metrics = c.Request(http::verb::get, "/metrics").body();
  EXPECT_NE(
      metrics.find("loantwin_requests_total{tenant=\"north\",route=\"/v1/roles/credit/decide\","
                   "status=\"503\"} 1"),
      std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("loantwin_requests_total{tenant=\"south_cu\",route=\"/v1/roles/credit/"
                         "decide\",status=\"200\"} 2"),
            std::string::npos);
  EXPECT_NE(metrics.find("loantwin_requests_total{route=\"/v1/tenants\",status=\"401\"}"),
            std::string::npos);
  const std::string waits = "loantwin_admission_waits_total{tenant=\"north\"} ";
  ASSERT_NE(metrics.find(waits), std::string::npos);
  EXPECT_GT(std::stoi(metrics.substr(metrics.find(waits) + waits.size())), 0);  // some waited
  size_t helps = 0;
  for (size_t p = 0; (p = metrics.find("# HELP loantwin_requests_total ", p)) != std::string::npos;
       ++p)
    ++helps;
  EXPECT_EQ(helps, 1u);
}

/// Nice values of this process's threads, from /proc/self/task/<tid>/stat.
std::vector<int> ThreadNiceValues() {
  std::vector<int> out;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    const std::string stat = ReadFile(task.path().string() + "/stat");
    std::istringstream fields(stat.substr(stat.rfind(')') + 2));
    std::string field;
    for (int i = 0; i <= 16 && fields >> field; ++i) {  // state is field 3, nice field 19
    }
    out.push_back(std::stoi(field));
  }
  return out;
}

TEST_F(ServeTest, ATenantsNiceValueIsSetOnItsPolicyThreadsOnly) {
  TempDir tmp;
  ServerOptions o;
  o.max_batch = 1;
  o.tenants = TwoTenants(tmp.path(), Dir(), "    nice: 7\n    threads: 2\n");  // south
  const auto before = ThreadNiceValues();
  EXPECT_EQ(std::count(before.begin(), before.end(), 7), 0);
  o.port = 0;
  auto server = std::make_unique<Server>(o);
  server->Start();
  // The server's threads start before Start returns; south's two policy threads run at nice 7,
  // every other thread (north's, the I/O threads, this one) as before.
  const auto after = ThreadNiceValues();
  EXPECT_EQ(std::count(after.begin(), after.end(), 7), 2);
  EXPECT_EQ(std::count(after.begin(), after.end(), 0) + 2, static_cast<long>(after.size()));
  Client c(server->port());
  auto res = c.Request(http::verb::post, "/v1/tenants/south/roles/credit/decide",
                       json{{"observation", Observation("credit")}}.dump(),
                       "Bearer south-token-9876543210");
  EXPECT_EQ(res.result_int(), 200) << res.body();
}

TEST_F(ServeTest, BadTenantFilesAreRefusedNamingTheLine) {
  TempDir tmp;
  ServerOptions small;
  small.max_batch = 1;  // north's queue of 2 fits
  auto refused = [&](const std::string& extra, const std::string& expect,
                     ServerOptions o = ServerOptions{}) {
    if (o.max_batch == ServerOptions{}.max_batch) o.max_batch = small.max_batch;
    o.tenants = TwoTenants(tmp.path(), Dir(), extra);
    try {
      Server s(o);
      ADD_FAILURE() << "accepted: " << extra;
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
    }
  };
  refused("    colour: red\n", "colour");
  refused("    nice: 20\n", "nice");
  refused("    nice: -5\n", "nice");
  refused("    cpu_quota: 2\n", "exceeds the 1 policy thread(s)");
  refused("    cpu_quota: 0.001\n", "below 0.01 cores");
  refused("    cpu_quota: -1\n", "cpu_quota");
  refused("  - name: north\n    bundle: " + Dir() + "/v1\n    token_env: HOME_TOKEN_X\n",
          "listed twice");
  refused("  - name: east\n    bundle: " + Dir() + "/v1\n    token_file: north.token\n",
          "have the same token");
  refused("  - name: east\n    bundle: " + Dir() + "/v1\n", "exactly one of token_file");
  refused("  - name: east\n    bundle: " + Dir() + "/nowhere\n    token_env: X\n",
          "not a directory");
  refused("  - name: 'a/b'\n    bundle: " + Dir() + "/v1\n    token_env: X\n", "URL segment");
  refused("  - name: east\n    bundle: " + Dir() + "/v1\n    token_env: LOANTWIN_UNSET_VAR\n",
          "LOANTWIN_UNSET_VAR is not set");
  ::setenv("LOANTWIN_TEST_SHORT", "short", 1);
  refused("  - name: east\n    bundle: " + Dir() + "/v1\n    token_env: LOANTWIN_TEST_SHORT\n",
          "at least 16 characters");
  refused(
      "  - name: east\n    bundle: " + Dir() + "/v1\n    token_env: LOANTWIN_TEST_SOUTH_TOKEN\n",
      "have the same token");
  ::setenv("LOANTWIN_TEST_EAST_TOKEN", "east-token-0123456789ab", 1);
  refused("  - name: east\n    bundle: " + Dir() +
              "/v1\n    token_env: LOANTWIN_TEST_EAST_TOKEN\n    audit_log: north.log\n",
          "same audit log");
  refused("", "tenants.yaml:", [] {
    ServerOptions o;
    o.max_batch = 8;  // north's max_queue 2 is below it
    return o;
  }());
  ServerOptions both;
  both.bundle = Dir() + "/v1";
  refused("", "--bundle does not go with --tenants", both);
}

TEST(TenantAdmission, InflightAndRateLimitsHoldRequestsAndResumeThemInOrder) {
  // max_inflight 2: the third waits until one of the first two is answered.
  TenantAdmission inflight({2, 0, 1}, nullptr);
  std::vector<std::string> log;
  std::vector<Admission> held;  // the resumed requests' places, kept as if in progress
  auto resume = [&log, &held](std::string name) {
    return [&log, &held, name](Admission a) {
      log.push_back(name + (a ? "" : " dropped"));
      held.push_back(std::move(a));
    };
  };
  Admission a, b, c, d;
  ASSERT_TRUE(inflight.Acquire(&a, resume("a")));
  ASSERT_TRUE(inflight.Acquire(&b, resume("b")));
  EXPECT_FALSE(inflight.Acquire(&c, resume("c")));
  EXPECT_FALSE(inflight.Acquire(&d, resume("d")));
  EXPECT_EQ(inflight.waiting(), 2);
  a.reset();  // answered: c (the first to wait) goes on
  EXPECT_EQ(log, (std::vector<std::string>{"c"}));
  EXPECT_EQ(inflight.inflight(), 2);
  inflight.DropWaiting();  // shutdown: d will not be served
  EXPECT_EQ(log, (std::vector<std::string>{"c", "d dropped"}));
  EXPECT_EQ(inflight.waits(), 2);

  // 10 requests a second, bursts of 2, on a clock the test moves.
  held.clear();
  auto now = TenantAdmission::Clock::time_point();
  TenantAdmission rate({0, 10, 2}, nullptr, [&now] { return now; });
  log.clear();
  Admission r1, r2, r3, r4;
  ASSERT_TRUE(rate.Acquire(&r1, resume("r1")));
  ASSERT_TRUE(rate.Acquire(&r2, resume("r2")));
  EXPECT_FALSE(rate.Acquire(&r3, resume("r3")));
  rate.Pump();
  EXPECT_TRUE(log.empty());  // no time has passed: no token
  now += std::chrono::milliseconds(60);
  rate.Pump();
  EXPECT_TRUE(log.empty());  // 0.6 of a token
  now += std::chrono::milliseconds(50);
  rate.Pump();
  EXPECT_EQ(log, (std::vector<std::string>{"r3"}));
  EXPECT_FALSE(rate.Acquire(&r4, resume("r4")));  // the bucket is empty again
  now += std::chrono::seconds(10);                // refills to the burst, not beyond
  rate.Pump();
  EXPECT_EQ(log, (std::vector<std::string>{"r3", "r4"}));
  Admission r5, r6;
  EXPECT_FALSE(rate.Acquire(&r5, resume("r5")) && rate.Acquire(&r6, resume("r6")));
  EXPECT_THROW(TenantAdmission({-1, 0, 1}, nullptr), std::invalid_argument);
  held.clear();
}

// A tenant's CPU quota on clocks the test moves: at 0.5 cores with a 2 ms bucket, 10 ms of CPU
// in 10 ms of wall time leaves the bucket 8 ms in debt (full at 2 ms, minus 10), which takes
// 16 ms to refill at half a core: the thread sleeps that long. Idle time refills the bucket up
// to its depth, not beyond; over a long run the thread's CPU share is the quota.
TEST(CpuPacer, SleepsOffTheCpuTimeBeyondTheQuota) {
  using std::chrono::milliseconds;
  using Nanos = CpuPacer::Nanos;
  Nanos wall(0), cpu(0), slept(0);
  CpuPacer::Clocks clocks{[&] { return wall; }, [&] { return cpu; },
                          [&](Nanos d) {
                            slept += d;
                            wall += d;  // sleeping takes wall time, not CPU
                          }};
  CpuPacer pacer(0.5, milliseconds(2), clocks);
  wall += milliseconds(1), cpu += milliseconds(1);  // within the bucket: no pause
  EXPECT_EQ(pacer.AfterWork(), Nanos(0));
  wall += milliseconds(10), cpu += milliseconds(10);  // 1 + 5 refilled, capped at 2; -10
  EXPECT_EQ(pacer.AfterWork(), milliseconds(16));     // a debt of 8 ms at 0.5 cores
  EXPECT_EQ(slept, milliseconds(16));
  wall += milliseconds(100);  // idle: refills to the 2 ms depth only
  cpu += milliseconds(3);
  EXPECT_EQ(pacer.AfterWork(), milliseconds(2));  // 2 - 3 = -1 ms -> 2 ms at half speed
  // Over a long stretch of back-to-back work the thread's share of wall time is the quota.
  const Nanos wall0 = wall, cpu0 = cpu;
  for (int i = 0; i < 1000; ++i) {
    wall += milliseconds(1), cpu += milliseconds(1);
    pacer.AfterWork();
  }
  const double share = static_cast<double>((cpu - cpu0).count()) / (wall - wall0).count();
  EXPECT_NEAR(share, 0.5, 0.01);
  EXPECT_THROW(CpuPacer(0, milliseconds(2), clocks), std::invalid_argument);
}

TEST_F(ServeTest, AdminListenerAndTheRefusalToExposeAdminWithoutAToken) {
  ServerOptions o;
  o.admin_address = "127.0.0.1";
  auto server = Start(o);
  ASSERT_GT(server->admin_port(), 0);
  Client pub(server->port()), admin(server->admin_port());
  EXPECT_EQ(pub.Request(http::verb::post, "/admin/reload").result_int(), 404);
  EXPECT_EQ(admin.Request(http::verb::post, "/admin/reload").result_int(), 200);
  int status = 0;
  admin.Post("/v1/roles/credit/decide", {{"observation", Observation("credit")}}, &status);
  EXPECT_EQ(status, 404);
  pub.Post("/v1/roles/credit/decide", {{"observation", Observation("credit")}}, &status);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(admin.Request(http::verb::get, "/readyz").result_int(), 200);
  // Beyond loopback without a token: refused unless --insecure-admin.
  ServerOptions open;
  open.bundle = Dir() + "/v1";
  open.address = "0.0.0.0";
  try {
    Server refused(open);
    FAIL() << "admin routes exposed without a token";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--admin-token-file"), std::string::npos) << e.what();
  }
  open.admin_address = "127.0.0.1";  // admin kept on loopback: fine
  EXPECT_NO_THROW(Server{open});
  open.admin_address.clear();
  open.insecure_admin = true;  // an explicit choice: a loud warning
  EXPECT_NO_THROW(Server{open});
}

// HTTP details clients rely on: 100-continue for large bodies (curl sends it), HTTP/1.0
// without keep-alive gets "Connection: close", idle keep-alive connections are closed.
TEST_F(ServeTest, ExpectContinueHttp10AndIdleTimeout) {
  ServerOptions o;
  o.idle_timeout_ms = 300;
  auto server = Start(o);
  auto raw = [&](tcp::socket& s, const std::string& bytes) { net::write(s, net::buffer(bytes)); };
  auto read_some = [&](tcp::socket& s) {
    std::string got;
    char buf[4096];
    beast::error_code ec;
    const size_t n = s.read_some(net::buffer(buf), ec);
    if (!ec) got.assign(buf, n);
    return got;
  };
  const std::string body = json{{"observation", Observation("credit")}}.dump();
  {
    Client c(server->port());
    tcp::socket& s = c.stream().socket();
    raw(s,
        "POST /v1/roles/credit/decide HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        "Content-Length: " +
            std::to_string(body.size()) + "\r\n\r\n");
    EXPECT_EQ(read_some(s), "HTTP/1.1 100 Continue\r\n\r\n");
    raw(s, body);
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(c.stream(), buf, res);
    EXPECT_EQ(res.result_int(), 200) << res.body();
    EXPECT_TRUE(res.keep_alive());
  }
  {
    Client c(server->port());
    tcp::socket& s = c.stream().socket();
    raw(s, "GET /healthz HTTP/1.0\r\n\r\n");
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(c.stream(), buf, res);
    EXPECT_EQ(res.result_int(), 200);
    EXPECT_EQ(res.version(), 10);
    EXPECT_FALSE(res.keep_alive());
    EXPECT_EQ(read_some(s), "") << "the server closes an HTTP/1.0 connection";
  }
  {  // A chunked body, sent in two pieces.
    Client c(server->port());
    tcp::socket& s = c.stream().socket();
    const size_t half = body.size() / 2;
    auto chunk = [](const std::string& part) {
      return fmt::format("{:x}\r\n{}\r\n", part.size(), part);
    };
    raw(s,
        "POST /v1/roles/credit/decide HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
            chunk(body.substr(0, half)));
    raw(s, chunk(body.substr(half)) + "0\r\n\r\n");
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    http::read(c.stream(), buf, res);
    EXPECT_EQ(res.result_int(), 200) << res.body();
  }
  {  // An idle keep-alive connection is closed after --idle-timeout-ms (and only when idle:
     // the request before it was answered on the same connection).
    Client c(server->port());
    EXPECT_EQ(c.Request(http::verb::get, "/healthz").result_int(), 200);
    EXPECT_EQ(read_some(c.stream().socket()), "");
  }
}

// Micro-batching: concurrent requests of a role within --max-delay-us share one policy call,
// and each gets its own row's decision.
TEST_F(ServeTest, ConcurrentRequestsShareOnePolicyCall) {
  ServerOptions o;
  o.threads = 1;
  o.max_delay_us = 60000000;  // the batch closes when full (6), not by time
  o.max_batch = 6;
  auto server = Start(o);
  const int port = server->port();
  std::vector<std::future<json>> answers;
  for (int i = 0; i < 6; ++i)
    answers.push_back(std::async(std::launch::async, [port, i] {
      Client c(port);
      return c.Post("/v1/roles/credit/decide",
                    {{"observation", Observation("credit", 0.15f * static_cast<float>(i))}});
    }));
  auto bundle = PolicyBundle::Load(Dir() + "/v1", "", 4);
  const ServedRole* credit = bundle->role("credit");
  for (int i = 0; i < 6; ++i) {
    const json got = answers[i].get();
    const auto row = Observation("credit", 0.15f * static_cast<float>(i));
    std::vector<float> obs;
    for (const auto& f : credit->features) obs.push_back(row.at(f).get<float>());
    const auto direct =
        bundle->Decide(*credit, obs, std::vector<uint8_t>(credit->mask_width, 1), 1);
    for (size_t k = 0; k < credit->components.size(); ++k)
      EXPECT_EQ(got["action"][credit->components[k].name]["index"].get<int64_t>(), direct[k]);
  }
  Client c(port);
  const std::string metrics = c.Request(http::verb::get, "/metrics").body();
  EXPECT_NE(metrics.find("loantwin_batch_size_count 1\n"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("loantwin_batch_size_sum 6\n"), std::string::npos) << metrics;
}

TEST_F(ServeTest, FullQueueAnswers503WithRetryAfter) {
  ServerOptions o;
  o.max_batch = 1;
  o.max_queue = 2;
  auto server = Start(o);
  Client c(server->port());
  auto res = c.Request(
      http::verb::post, "/v1/roles/credit/decide",
      json{{"observations", {Observation("credit"), Observation("credit"), Observation("credit")}}}
          .dump());
  EXPECT_EQ(res.result_int(), 503);
  EXPECT_EQ(res[http::field::retry_after], "1");
  // A batch that fits (no audit log here) is answered.
  const auto fits = c.Request(
      http::verb::post, "/v1/roles/credit/decide",
      json{{"observations", {Observation("credit"), Observation("credit", 0.5f)}}}.dump());
  ASSERT_EQ(fits.result_int(), 200) << fits.body();
  EXPECT_EQ(json::parse(fits.body())["decisions"].size(), 2u);
  EXPECT_EQ(c.Request(http::verb::post, "/v1/roles/credit/decide",
                      json{{"observation", Observation("credit")}}.dump())
                .result_int(),
            200);
}

TEST_F(ServeTest, HotReloadUnderConcurrentRequestsLosesNothing) {
  auto server = Start();
  const std::string v1 = server->BundleVersion();
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::mutex mu;
  std::set<std::string> versions;
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t)
    clients.emplace_back([&] {
      Client c(server->port());
      while (!stop) {
        int status = 0;
        json r =
            c.Post("/v1/roles/credit/decide", {{"observation", Observation("credit")}}, &status);
        if (status == 200) {
          ++ok;
          std::lock_guard<std::mutex> lock(mu);
          versions.insert(r["policy_version"]);
        } else {
          ++failed;
        }
      }
    });
  Client admin(server->port());
  // Reload while requests flow: each reload waits until the clients completed 20 more.
  auto requests_pass = [&] {
    const int target = ok.load() + failed.load() + 20;
    while (ok.load() + failed.load() < target) std::this_thread::yield();
  };
  for (const char* dir : {"/v2", "/v1", "/v2"}) {
    requests_pass();
    int status = 0;
    json r = admin.Post("/admin/reload", {{"bundle", Dir() + dir}}, &status);
    EXPECT_EQ(status, 200) << r.dump();
  }
  requests_pass();
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(ok.load(), 50);
  EXPECT_EQ(versions.size(), 2u);
  EXPECT_NE(server->BundleVersion(), v1);
  // Reload with an empty body re-reads the current directory.
  int status = 0;
  admin.Post("/admin/reload", json::object(), &status);
  EXPECT_EQ(status, 200);
}

TEST_F(ServeTest, ModifiedModuleIsRefusedNamingTheFile) {
  TempDir tmp;
  std::filesystem::copy(Dir() + "/v1", tmp.path() + "/edited");
  {  // one byte appended to the policy's weights after export
    std::ofstream f(tmp.path() + "/edited/credit.pt", std::ios::app | std::ios::binary);
    f << 'x';
  }
  try {
    PolicyBundle::Load(tmp.path() + "/edited", "", 4);
    ADD_FAILURE() << "a modified module was loaded";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("credit.pt"), std::string::npos) << msg;
    EXPECT_NE(msg.find("modified after export"), std::string::npos) << msg;
  }
  // The served version names the weights: manifest digest and weights digest.
  const auto b = PolicyBundle::Load(Dir() + "/v1", "", 4);
  EXPECT_EQ(b->version().find('.'), b->version().find('#') + 13) << b->version();
  EXPECT_NE(b->version().find(b->manifest().WeightsDigest()), std::string::npos);
}

TEST_F(ServeTest, ModuleOfTheWrongWidthIsRefusedAndTheOldBundleKeepsServing) {
  // The pricing policy (another input width) in place of the credit policy, its digest updated
  // so the manifest vouches for it: the warm-up's probe call fails, at start-up and on reload.
  TempDir tmp;
  const std::string dir = tmp.path() + "/swapped";
  std::filesystem::copy(Dir() + "/v1", dir);
  std::filesystem::copy_file(dir + "/pricing.pt", dir + "/credit.pt",
                             std::filesystem::copy_options::overwrite_existing);
  auto m = json::parse(ReadFile(dir + "/manifest.json"));
  m["module_sha256"]["credit.pt"] = Sha256Hex(ReadFile(dir + "/credit.pt"));
  std::ofstream(dir + "/manifest.json", std::ios::trunc) << m.dump();
  try {
    PolicyBundle::Load(dir, "", 4);
    ADD_FAILURE() << "a module of the wrong width was loaded";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("role 'credit': the module fails on one observation"), std::string::npos)
        << msg;
    EXPECT_EQ(msg.find("Traceback"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  ServerOptions o;
  o.bundle_root = tmp.path();
  auto server = Start(o);
  const std::string v1 = server->BundleVersion();
  Client c(server->port());
  auto res = c.Request(http::verb::post, "/admin/reload", json{{"bundle", dir}}.dump());
  EXPECT_EQ(res.result_int(), 422) << res.body();
  EXPECT_EQ(server->BundleVersion(), v1);
  int status = 0;
  c.Post("/v1/roles/credit/decide", {{"observation", Observation("credit")}}, &status);
  EXPECT_EQ(status, 200);
}

/// A module shaped as Python's torch.jit.script writes a policy with a swappable part: the
/// policy calls its network through an interface-typed attribute that forward may reassign.
/// It loads and runs, but torch::jit::freeze refuses it ("failed to freeze interface attribute").
void WriteModuleThatCannotBeFrozen(const std::string& inner_file, const std::string& out_file) {
  namespace jit = torch::jit;
  torch::jit::Module inner = torch::jit::load(inner_file);
  auto cu = std::make_shared<jit::CompilationUnit>();
  jit::Parser parser(std::make_shared<jit::Source>(R"(
class PolicyCore:
    def forward(self, obs: Tensor, mask: Tensor) -> Tensor:
        pass
)"));
  const jit::ClassDef core_def(parser.parseClass());
  cu->define_interface(c10::QualifiedName("__torch__.PolicyCore"), core_def, jit::nativeResolver(),
                       /*is_module=*/true);
  jit::Module m("__torch__.SwappablePolicy", cu, /*shouldMangle=*/true);
  m.type()->addAttribute("core", cu->get_interface("__torch__.PolicyCore"));
  m._ivalue()->setAttr("core", inner._ivalue());
  m.register_module("fallback", inner.clone());
  m.define(R"(
def forward(self, obs: Tensor, mask: Tensor) -> Tensor:
    if bool(obs.abs().sum() > 1.0e30):
        self.core = self.fallback
    return self.core.forward(obs, mask)
)");
  m.eval();
  m.save(out_file);
}

TEST_F(ServeTest, ModuleThatCannotBeFrozenIsServedUnfrozenWithAWarning) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/swappable";
  std::filesystem::copy(Dir() + "/v1", dir);
  WriteModuleThatCannotBeFrozen(Dir() + "/v1/credit.pt", dir + "/credit.pt");
  {  // the precondition: freezing this module fails
    auto probe = torch::jit::load(dir + "/credit.pt");
    probe.eval();
    EXPECT_THROW(torch::jit::freeze(probe, c10::nullopt, false), c10::Error);
  }
  auto m = json::parse(ReadFile(dir + "/manifest.json"));
  m["module_sha256"]["credit.pt"] = Sha256Hex(ReadFile(dir + "/credit.pt"));
  std::ofstream(dir + "/manifest.json", std::ios::trunc) << m.dump();

  // The warning is one line naming the role, the file and the reason; no backtrace.
  std::ostringstream log;
  auto logger = spdlog::default_logger();
  const auto sinks = logger->sinks();
  logger->sinks().push_back(std::make_shared<spdlog::sinks::ostream_sink_mt>(log));
  std::shared_ptr<const PolicyBundle> swappable;
  try {
    swappable = PolicyBundle::Load(dir, "", 4);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "a module that cannot be frozen was refused: " << e.what();
  }
  logger->sinks() = sinks;
  const std::string warned = log.str();
  EXPECT_NE(warned.find("role 'credit'"), std::string::npos) << warned;
  EXPECT_NE(warned.find("cannot be frozen (failed to freeze interface attribute 'core')"),
            std::string::npos)
      << warned;
  EXPECT_NE(warned.find("serving it unfrozen"), std::string::npos) << warned;
  EXPECT_EQ(warned.find("Traceback"), std::string::npos) << warned;
  EXPECT_EQ(warned.find("frame #"), std::string::npos) << warned;
  EXPECT_EQ(std::count(warned.begin(), warned.end(), '\n'), 1) << warned;
  ASSERT_TRUE(swappable);

  // Served unfrozen, it decides as the frozen original does, one by one and in a batch.
  const auto original = PolicyBundle::Load(Dir() + "/v1", "", 4);
  const ServedRole& a = *original->role("credit");
  const ServedRole& b = *swappable->role("credit");
  std::mt19937 rng(7);
  std::normal_distribution<float> z(0.0f, 1.0f);
  const int n = 16;
  std::vector<float> obs(static_cast<size_t>(n) * a.features.size());
  for (float& x : obs) x = z(rng);
  const std::vector<uint8_t> masks(static_cast<size_t>(n) * a.mask_width, 1);
  EXPECT_EQ(swappable->Decide(b, obs, masks, n), original->Decide(a, obs, masks, n));

  // And over HTTP, from start-up and after a hot reload onto it.
  ServerOptions o;
  o.bundle_root = tmp.path();
  auto server = Start(o);
  Client c(server->port());
  auto res = c.Request(http::verb::post, "/admin/reload", json{{"bundle", dir}}.dump());
  EXPECT_EQ(res.result_int(), 200) << res.body();
  int status = 0;
  c.Post("/v1/roles/credit/decide", {{"observation", Observation("credit", 0.5f)}}, &status);
  EXPECT_EQ(status, 200);
}

TEST_F(ServeTest, BrokenBundleIsRejectedAndTheOldOneKeepsServing) {
  TempDir tmp;
  std::filesystem::copy(Dir() + "/v2", tmp.path() + "/broken");
  std::ofstream(tmp.path() + "/broken/credit.pt", std::ios::trunc) << "not a torchscript file";
  std::filesystem::copy(Dir() + "/v2", tmp.path() + "/badversion");
  auto m = json::parse(ReadFile(tmp.path() + "/badversion/manifest.json"));
  m["environment_version"] = 42;
  std::ofstream(tmp.path() + "/badversion/manifest.json", std::ios::trunc) << m.dump();
  ServerOptions o;
  o.bundle_root = tmp.path();
  auto server = Start(o);
  const std::string v1 = server->BundleVersion();
  Client c(server->port());
  for (const std::string& dir :
       {tmp.path() + "/broken", tmp.path() + "/badversion", tmp.path() + "/missing"}) {
    int status = 0;
    json r = c.Post("/admin/reload", {{"bundle", dir}}, &status);
    EXPECT_EQ(status, 422) << r.dump();
    EXPECT_NE(r["error"].get<std::string>().find("reload failed"), std::string::npos);
    EXPECT_EQ(r["serving"], v1);
    EXPECT_EQ(server->BundleVersion(), v1);
    json d = c.Post("/v1/roles/credit/decide", {{"observation", Observation("credit")}}, &status);
    EXPECT_EQ(status, 200);
    EXPECT_EQ(d["policy_version"], v1);
  }
  EXPECT_FALSE(server->Reload(tmp.path() + "/broken").empty());
  auto metrics = c.Request(http::verb::get, "/metrics");
  EXPECT_NE(metrics.body().find("loantwin_reloads_total{result=\"failed\"} 4"), std::string::npos)
      << metrics.body();
  ServerOptions broken;
  broken.bundle = tmp.path() + "/broken";
  EXPECT_THROW(Server{broken}, std::runtime_error);
}

TEST_F(ServeTest, AuditChainVerifiesAndDetectsTampering) {
  TempDir tmp;
  const std::string log = tmp.path() + "/audit.log";
  {
    ServerOptions o;
    o.audit_log = log;
    auto server = Start(o);
    Client c(server->port());
    for (int i = 0; i < 5; ++i)
      c.Post("/v1/roles/credit/decide", {{"observation", Observation("credit", 0.1f * i)}});
  }
  {  // A restart continues the chain.
    ServerOptions o;
    o.audit_log = log;
    auto server = Start(o);
    Client c(server->port());
    c.Post("/v1/roles/pricing/decide", {{"observation", Observation("pricing")}});
  }
  {  // A batch without masks (the fast parser) and a request with line breaks.
    ServerOptions o;
    o.audit_log = log;
    auto server = Start(o);
    Client c(server->port());
    const json sent = {{"observations", {Observation("credit", 0.3f), Observation("credit")}}};
    int status = 0;
    const json got = c.Post("/v1/roles/credit/decide", sent, &status);
    ASSERT_EQ(status, 200);
    const auto res = c.Request(http::verb::post, "/v1/roles/pricing/decide",
                               json{{"observation", Observation("pricing")}}.dump(2));
    ASSERT_EQ(res.result_int(), 200);
    server->Shutdown();
    std::vector<json> records;
    std::ifstream in(log);
    for (std::string l; std::getline(in, l);) records.push_back(json::parse(l));
    ASSERT_EQ(records.size(), 9u);
    for (int i = 0; i < 2; ++i) {
      EXPECT_EQ(records[6 + i]["request"], json({{"observation", sent["observations"][i]}}));
      EXPECT_EQ(records[6 + i]["response"]["decision_id"], got["decisions"][i]["decision_id"]);
    }
    EXPECT_EQ(records[8]["request"], json({{"observation", Observation("pricing")}}));
  }
  AuditVerification v = VerifyAuditLog(log);
  ASSERT_TRUE(v.ok) << v.reason;
  EXPECT_EQ(v.lines, 9);
  std::vector<std::string> lines;
  {
    std::ifstream in(log);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
  }
  const json rec = json::parse(lines[2]);
  EXPECT_EQ(rec["route"], "/v1/roles/credit/decide");
  EXPECT_TRUE(rec.contains("request") && rec.contains("response") && rec.contains("time"));
  EXPECT_EQ(rec["prev"], json::parse(lines[1])["hash"]);
  // "hash" is the SHA-256 of the line's bytes without the hash member (any tool can check it).
  const std::string hash_member = ",\"hash\":\"" + rec["hash"].get<std::string>() + "\"";
  ASSERT_NE(lines[2].find(hash_member), std::string::npos);
  std::string without = lines[2];
  without.erase(without.find(hash_member), hash_member.size());
  EXPECT_EQ(Sha256Hex(without), rec["hash"]);
  // One byte changed in place (layout intact) is detected.
  {
    auto flipped = lines;
    const size_t at = flipped[4].find("\"index\":") + 8;
    flipped[4][at] = flipped[4][at] == '0' ? '1' : '0';
    std::ofstream out(log, std::ios::trunc);
    for (const auto& l : flipped) out << l << "\n";
  }
  v = VerifyAuditLog(log);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad, 5);
  auto write = [&](const std::vector<std::string>& ls) {
    std::ofstream out(log, std::ios::trunc);
    for (const auto& l : ls) out << l << "\n";
  };
  // An edited decision.
  auto edited = lines;
  json e = json::parse(edited[3]);
  e["response"]["action"]["cutoff/card"]["index"] = 0;
  edited[3] = e.dump();
  write(edited);
  v = VerifyAuditLog(log);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad, 4);
  // A removed line.
  auto removed = lines;
  removed.erase(removed.begin() + 1);
  write(removed);
  v = VerifyAuditLog(log);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad, 2);
  // The last line edited is detected too; a server refuses to extend a broken chain.
  auto last = lines;
  last.back().replace(last.back().find("pricing"), 7, "credit!");
  write(last);
  v = VerifyAuditLog(log);
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad, 9);
  ServerOptions o;
  o.bundle = Dir() + "/v1";
  o.audit_log = log;
  EXPECT_THROW(Server{o}, std::runtime_error);
}

/// Writes beyond `bytes` in any file fail with EFBIG (SIGXFSZ ignored) while this lives: a
/// disk that fills up, without a small file system to fill.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(uint64_t bytes) {
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &old_);
    rlimit lim = old_;
    lim.rlim_cur = bytes;
    EXPECT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit old_{};
  void (*old_handler_)(int) = nullptr;
};

uint64_t FileSize(const std::string& file) {
  return std::filesystem::file_size(file);
}

TEST(AuditLog, InterruptedFinalRecordIsRemovedAndTheChainContinues) {
  TempDir tmp;
  const std::string log = tmp.path() + "/audit.log";
  {
    AuditLog a(log, false);
    for (int i = 0; i < 3; ++i) a.Append("/r", fmt::format("{{\"i\":{}}}", i), "{}");
  }
  const uint64_t complete = FileSize(log);
  {  // kill -9 in the middle of a write: the last record has no newline
    std::ofstream out(log, std::ios::app | std::ios::binary);
    out << "{\"time\":1,\"route\":\"/r\",\"request\":{\"i\":\x01";
  }
  AuditVerification v = VerifyAuditLog(log);
  EXPECT_TRUE(v.ok) << v.reason;
  EXPECT_EQ(v.lines, 3);
  EXPECT_EQ(v.complete_bytes, complete);
  EXPECT_EQ(v.torn_tail_bytes, FileSize(log) - complete);
  {
    AuditLog a(log, false);  // removes the tail and continues the chain
    EXPECT_EQ(FileSize(log), complete);
    EXPECT_EQ(a.lines(), 3);
    a.Append("/r", "{\"i\":3}", "{}");
  }
  v = VerifyAuditLog(log);
  EXPECT_TRUE(v.ok) << v.reason;
  EXPECT_EQ(v.lines, 4);
  EXPECT_EQ(v.torn_tail_bytes, 0u);
  // Anything else broken is still refused, torn tail or not.
  std::string text = ReadFile(log);
  text[text.find("\"i\":1") + 4] = '7';
  {
    std::ofstream out(log, std::ios::trunc | std::ios::binary);
    out << text << "{\"time\":";
  }
  EXPECT_FALSE(VerifyAuditLog(log).ok);
  EXPECT_THROW(AuditLog(log, false), std::runtime_error);
  EXPECT_EQ(ReadFile(log), text + "{\"time\":");  // nothing removed from a refused log
}

TEST(AuditLog, AFailedWriteLeavesNoPartialRecordAndFailsClosed) {
  TempDir tmp;
  const std::string log = tmp.path() + "/audit.log";
  for (const bool fsync : {false, true}) {
    std::filesystem::remove(log);
    AuditLog a(log, fsync);
    a.Append("/r", "{\"i\":0}", "{}");
    const uint64_t size = FileSize(log);
    const std::string big = "{\"x\":\"" + std::string(4000, 'a') + "\"}";
    {
      FileSizeLimit full(size + 100);  // the record starts to go in, then the disk is full
      EXPECT_THROW(a.Append("/r", big, "{}"), AuditWriteError);
      EXPECT_EQ(FileSize(log), size) << "the partial record was removed";
      EXPECT_FALSE(a.writable());
      EXPECT_FALSE(a.Probe()) << "the probe write fails too";
      EXPECT_THROW(a.Append("/r", big, "{}"), AuditWriteError);
      EXPECT_THROW(a.Append("/r", {{"{\"b\":1}", "{}"}, {"{\"b\":2}", "{}"}}), AuditWriteError);
      EXPECT_EQ(FileSize(log), size);
      EXPECT_EQ(a.lines(), 1);
    }
    EXPECT_TRUE(a.Probe());  // space again
    EXPECT_FALSE(std::filesystem::exists(log + ".probe"));
    a.Append("/r", big, "{}");
    const AuditVerification v = VerifyAuditLog(log);
    EXPECT_TRUE(v.ok) << v.reason;
    EXPECT_EQ(v.lines, 2);
    EXPECT_EQ(v.torn_tail_bytes, 0u);
  }
}

TEST_F(ServeTest, DecisionsAreRefusedWhileTheAuditLogCannotBeWritten) {
  TempDir tmp;
  ServerOptions o;
  o.audit_log = tmp.path() + "/audit.log";
  auto server = Start(o);
  Client c(server->port());
  int status = 0;
  c.Post("/v1/roles/credit/decide", {{"observation", Observation("credit")}}, &status);
  ASSERT_EQ(status, 200);
  {
    FileSizeLimit full(FileSize(o.audit_log) + 50);
    json r = c.Post("/v1/roles/credit/decide", {{"observation", Observation("credit")}}, &status);
    EXPECT_EQ(status, 503);
    EXPECT_NE(r["error"].get<std::string>().find("audit record"), std::string::npos) << r;
    const json app = {{"product", "card"}, {"amount", 3000},  {"term_months", 0},
                      {"band", "A"},       {"income", 80000}, {"state", State()}};
    c.Post("/v1/credit/applications", app, &status);
    EXPECT_EQ(status, 503);
    auto ready = c.Request(http::verb::get, "/readyz");
    EXPECT_EQ(ready.result_int(), 503);
    EXPECT_NE(ready.body().find("audit log not writable"), std::string::npos) << ready.body();
  }
  EXPECT_EQ(c.Request(http::verb::get, "/readyz").result_int(), 200);
  c.Post("/v1/roles/credit/decide", {{"observation", Observation("credit")}}, &status);
  EXPECT_EQ(status, 200);
  server->Shutdown();
  const AuditVerification v = VerifyAuditLog(o.audit_log);
  EXPECT_TRUE(v.ok) << v.reason;
  EXPECT_EQ(v.lines, 2);
}

TEST_F(ServeTest, ShutdownDrainsInFlightRequests) {
  TempDir tmp;
  ServerOptions o;
  o.max_delay_us = 60000000;  // requests wait in the batcher until shutdown runs them
  o.max_batch = 64;
  o.audit_log = tmp.path() + "/audit.log";
  auto server = Start(o);
  const int port = server->port();
  std::vector<std::future<int>> pending;
  for (int i = 0; i < 8; ++i)
    pending.push_back(std::async(std::launch::async, [&] {
      Client c(port);
      int status = 0;
      c.Post("/v1/roles/credit/decide", {{"observation", Observation("credit")}}, &status);
      return status;
    }));
  while (server->QueuedObservations() < 8) std::this_thread::yield();  // all 8 are waiting
  server->Shutdown();
  for (auto& f : pending) EXPECT_EQ(f.get(), 200);
  EXPECT_EQ(VerifyAuditLog(tmp.path() + "/audit.log").lines, 8);
  // No longer accepting.
  net::io_context ioc;
  tcp::socket s(ioc);
  beast::error_code ec;
  s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)), ec);
  EXPECT_TRUE(ec);
}

}  // namespace
}  // namespace loantwin

namespace loantwin {
namespace {

/// Posts every live observation of every role to the server (batches of 64), so the audit log
/// holds them as served decisions.
void ServeObservations(Server& server, const std::map<std::string, RoleSample>& live,
                       const std::string& shift_role = "", int shift_feature = -1,
                       float shift_value = 0) {
  Client c(server.port());
  for (const auto& [role, s] : live) {
    const size_t nf = s.features.size();
    for (int64_t begin = 0; begin < s.rows; begin += 64) {
      json batch = json::array(), masks = json::array();
      for (int64_t i = begin; i < std::min<int64_t>(s.rows, begin + 64); ++i) {
        // The masks the policy acted under in the twin (products not offered, risk appetite).
        masks.push_back(std::vector<int>(s.masks.begin() + i * s.mask_width,
                                         s.masks.begin() + (i + 1) * s.mask_width));
        json obs = json::object();
        for (size_t k = 0; k < nf; ++k)
          obs[s.features[k]] = role == shift_role && static_cast<int>(k) == shift_feature
                                   ? shift_value
                                   : s.obs[i * nf + k];
        batch.push_back(obs);
      }
      int status = 0;
      const json r = c.Post("/v1/roles/" + role + "/decide",
                            {{"observations", batch}, {"masks", masks}}, &status);
      ASSERT_EQ(status, 200) << r.dump();
    }
  }
}

// The monitor on a served bundle's audit log: requests drawn from the policy's own
// distribution pass; the same requests with one feature moved to the top of its reference
// range cross the PSI alert, and the report names the feature.
TEST_F(ServeTest, MonitorPassesInDistributionAndAlertsOnAShiftedFeature) {
  MonitorOptions mo;
  mo.reference = Dir() + "/v1";
  mo.scenarios = {"steady_state", "mild_recession"};
  // Observations within a path are strongly autocorrelated (the macro moves slowly), so the
  // samples' sizes are in paths: many short paths on both sides.
  mo.paths = 128;
  mo.months = 12;
  MonitorOptions lo = mo;
  lo.seed = 2;  // other paths of the same distribution
  const auto live = CollectReference(lo);
  ASSERT_FALSE(live.empty());
  TempDir tmp;
  {
    ServerOptions so;
    so.audit_log = tmp.path() + "/in.log";
    auto server = Start(so);
    ServeObservations(*server, live);
  }
  mo.audit_log = tmp.path() + "/in.log";
  const MonitorResult in = RunMonitor(mo);
  ASSERT_FALSE(in.roles.empty());
  EXPECT_NE(in.level, "alert");
  for (const auto& d : in.roles) {
    double psi = 0, tv = 0;
    for (const auto& f : d.features) psi = std::max(psi, f.psi);
    for (const auto& a : d.actions) tv = std::max(tv, a.tv);
    std::printf("%s: %lld requests, largest feature PSI %.3f, largest decision-mix TV %.3f\n",
                d.role.c_str(), static_cast<long long>(d.live_rows), psi, tv);
    EXPECT_GE(d.live_rows, mo.min_requests) << d.role;
    for (const auto& f : d.features)
      EXPECT_LT(f.psi, mo.thresholds.psi_alert) << d.role << " " << f.name;
    for (const auto& a : d.actions)
      EXPECT_LT(a.tv, mo.thresholds.mix_alert) << d.role << " " << a.name;
  }
  // Shift the first credit feature that varies in the reference to its reference maximum.
  const auto& credit = in.roles.front();
  int feature = -1;
  float top = 0;
  for (size_t k = 0; k < credit.features.size(); ++k)
    if (credit.features[k].ref_max > credit.features[k].ref_min + 1e-3) {
      feature = static_cast<int>(k);
      top = static_cast<float>(credit.features[k].ref_max);
      break;
    }
  ASSERT_GE(feature, 0);
  {
    ServerOptions so;
    so.audit_log = tmp.path() + "/shifted.log";
    auto server = Start(so);
    ServeObservations(*server, live, credit.role, feature, top);
  }
  mo.audit_log = tmp.path() + "/shifted.log";
  const MonitorResult shifted = RunMonitor(mo);
  EXPECT_EQ(shifted.level, "alert");
  bool named = false;
  for (const auto& d : shifted.roles)
    if (d.role == credit.role)
      for (const auto& f : d.features)
        if (f.name == credit.features[feature].name) named = f.level == "alert";
  EXPECT_TRUE(named);

  // The command: exit 0 on the in-distribution log, 4 (a scheduler's alert) on the shifted one,
  // and a report naming the feature.
  auto monitor = [&](const std::string& log) {
    const std::string cmd = fmt::format(
        "{} monitor --audit-log {} --reference {}/v1 --scenarios steady_state mild_recession "
        "--paths 128 --months 12 --out {}/drift > {}/monitor.txt 2>&1",
        LOANTWIN_CLI, log, Dir(), tmp.path(), tmp.path());
    const int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  EXPECT_EQ(monitor(tmp.path() + "/in.log"), 0) << ReadFile(tmp.path() + "/monitor.txt");
  EXPECT_EQ(monitor(tmp.path() + "/shifted.log"), 4) << ReadFile(tmp.path() + "/monitor.txt");
  const std::string report = ReadFile(tmp.path() + "/drift/report.md");
  EXPECT_NE(report.find("| " + credit.features[feature].name + " |"), std::string::npos) << report;
  EXPECT_NE(ReadFile(tmp.path() + "/drift/report.json").find("\"level\": \"alert\""),
            std::string::npos);
}

// ---- Adverse-action reasons (serve/adverse_action.h) ----

TEST(AdverseAction, ShapleyOnALinearPolicyEqualsTheAnalyticAttribution) {
  // f(x) = w.x + c: the Shapley value of feature i is w_i (x_i - reference_i), exactly.
  const std::vector<double> w = {2.0, -3.0, 0.5, 0.0, 1.25};
  auto f = [&](const std::vector<double>& z) {
    double v = 7;
    for (size_t i = 0; i < w.size(); ++i) v += w[i] * z[i];
    return v;
  };
  const std::vector<double> x = {1.5, 4.0, -2.0, 9.0, 3.0}, ref = {0.5, 1.0, 2.0, -1.0, 3.0};
  const auto phi = ShapleyValues(f, x, ref);
  double sum = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_NEAR(phi[i], w[i] * (x[i] - ref[i]), 1e-12) << i;
    sum += phi[i];
  }
  EXPECT_NEAR(sum, f(x) - f(ref), 1e-12);  // efficiency
  // An interaction splits equally: f = z0 * z1 from (0, 0) to (1, 1) gives 0.5 each.
  const auto both =
      ShapleyValues([](const std::vector<double>& z) { return z[0] * z[1]; }, {1, 1}, {0, 0});
  EXPECT_DOUBLE_EQ(both[0], 0.5);
  EXPECT_DOUBLE_EQ(both[1], 0.5);
}

TEST(AdverseAction, ReasonsAreStableUnderIrrelevantChangesAndTheTopReasonFlipsTheDecision) {
  const auto inst = LoadInstitution("cu_mid");
  const ServedRole credit;  // only used for a reference rate, which the context gives
  CreditApplication a;
  a.product = 0;  // personal
  a.term = inst->products[0].spec.terms.front().months;
  a.amount = 0.5 * inst->products[0].spec.mean_amount;
  a.income = 90000;
  a.monthly_debt = 200;
  a.band = 4;  // E
  DecisionContext ctx;
  ctx.cutoff = 2;  // up to C
  ctx.reference_rate = 0.05;
  auto top = [](const Explanation& e) { return e.reasons.at(0).code; };
  const Explanation e = ExplainCredit(*inst, a, credit, ctx);
  ASSERT_TRUE(e.decline);
  EXPECT_EQ(top(e), "CS01");
  EXPECT_NEAR(e.reasons[0].contribution, 1.0, 1e-12);  // the score alone declines it
  // Irrelevant changes (income, other debt, amount within capacity) leave the reasons as they are.
  for (auto change : std::vector<std::function<void(CreditApplication&)>>{
           [](CreditApplication& c) { c.income = 150000; },
           [](CreditApplication& c) { c.monthly_debt = 0; },
           [](CreditApplication& c) { c.amount *= 0.8; }}) {
    CreditApplication b = a;
    change(b);
    const Explanation eb = ExplainCredit(*inst, b, credit, ctx);
    ASSERT_EQ(eb.reasons.size(), e.reasons.size());
    for (size_t i = 0; i < e.reasons.size(); ++i) {
      EXPECT_EQ(eb.reasons[i].code, e.reasons[i].code);
      EXPECT_DOUBLE_EQ(eb.reasons[i].contribution, e.reasons[i].contribution);
    }
  }
  // The top reason moved to the reference (approving) value approves.
  CreditApplication fixed = a;
  fixed.band = static_cast<int>(e.reference[0]);
  EXPECT_FALSE(Declines(*inst, fixed, credit, ctx));

  // Debt-to-income: a good score, heavy obligations and a low income.
  CreditApplication d = a;
  d.band = 0;
  d.income = 20000;
  d.monthly_debt = 600;
  const Explanation ed = ExplainCredit(*inst, d, credit, ctx);
  ASSERT_TRUE(ed.decline);
  std::set<std::string> codes;
  for (const auto& r : ed.reasons) codes.insert(r.code);
  EXPECT_TRUE(codes.count("IN01") && codes.count("OB01")) << ed.ReasonsJson().dump();
  EXPECT_FALSE(codes.count("CS01"));
  const std::string first = ed.reasons[0].feature;
  CreditApplication moved = d;
  if (first == "income") moved.income = ed.reference[3];
  if (first == "monthly_debt") moved.monthly_debt = ed.reference[4];
  if (first == "amount") moved.amount = ed.reference[1];
  EXPECT_FALSE(Declines(*inst, moved, credit, ctx)) << first;

  // A rule decline (amount above the product limit) before any policy ran.
  CreditApplication big = a;
  big.band = 0;
  big.amount = 6 * inst->products[0].spec.mean_amount;
  DecisionContext rules;
  rules.policy_ran = false;
  const Explanation eb = ExplainCredit(*inst, big, credit, rules);
  ASSERT_TRUE(eb.decline);
  EXPECT_EQ(top(eb), "AM01");

  // An approval priced above the best rate: the score's band premium, exactly.
  CreditApplication ok = a;
  ok.band = 2;
  const Explanation ep = ExplainCredit(*inst, ok, credit, ctx);
  ASSERT_FALSE(ep.decline);
  ASSERT_EQ(ep.price_reasons.size(), 1u);
  EXPECT_EQ(ep.price_reasons[0].code, "CS02");
  const ProductSpec& spec = inst->products[0].spec;
  EXPECT_NEAR(ep.price_reasons[0].contribution, spec.band_premium[2] - spec.band_premium[0], 1e-12);
}

}  // namespace
}  // namespace loantwin
