// Guardrails (env/guardrails.h, docs/training.md "Guardrails"): parsing with clear errors, the
// mask on a hand-made layout, the twin's masks and baselines under guardrails, exact resume of
// their counts, and one observation getting the same masked decision in training, in stress
// evaluation and in the decision engine; the cost-plus pricing reference, priced alike in the
// environment and the decision engine.

#include "env/guardrails.h"

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "core/config_error.h"
#include "core/yaml_reader.h"
#include "env/twin_env.h"
#include "report/render_util.h"
#include "report/stress_report.h"
#include "serve/bundle.h"
#include "serve/credit_application.h"
#include "serve/server.h"
#include "tests/agent_test_util.h"
#include "tests/json_schema.h"
#include "tests/test_util.h"
#include "training/checkpoint.h"
#include "training/export.h"
#include "training/stress.h"
#include "training/trainer.h"

namespace loantwin {
namespace {

using json = nlohmann::json;

std::vector<GuardrailRule> Parse(const std::string& yaml) {
  return ParseGuardrails(YamlValue::LoadString(yaml, "g.yaml"));
}

std::string ParseError(const std::string& yaml) {
  try {
    Parse(yaml);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Guardrails, BadRulesAreRefusedNamingTheLine) {
  EXPECT_NE(ParseError("- {name: a, limit: [{actions: x, max: 1}], colour: red}\n").find("colour"),
            std::string::npos);
  EXPECT_NE(ParseError("- {name: a}\n").find("limit"), std::string::npos);
  EXPECT_NE(ParseError("- {name: a, limit: []}\n").find("limits nothing"), std::string::npos);
  EXPECT_NE(ParseError("- {name: a, limit: [{actions: x}]}\n").find("needs 'max', 'min'"),
            std::string::npos);
  EXPECT_NE(ParseError("- {name: a, limit: [{actions: x, max: soon}]}\n").find("g.yaml:1"),
            std::string::npos);
  EXPECT_NE(ParseError("- {name: a, limit: [{actions: x, max: 1, min: 2}]}\n").find("above max"),
            std::string::npos);
  EXPECT_NE(ParseError("- {name: a, when: [{feature: f}], limit: [{actions: x, max: 1}]}\n")
                .find("'below', 'above'"),
            std::string::npos);
  EXPECT_NE(ParseError("- {name: a, limit: [{actions: x, max: 1}]}\n"
                       "- {name: a, limit: [{actions: y, max: 1}]}\n")
                .find("g.yaml:2"),
            std::string::npos);
  EXPECT_NE(ParseError("- {name: \"a/b\", limit: [{actions: x, max: 1}]}\n").find("letters"),
            std::string::npos);
  // Round trip through the manifest's JSON form (YAML reads JSON).
  const auto rules = Parse(
      "- name: capital_buffer\n  roles: [portfolio]\n"
      "  when: [{feature: portfolio/capital_ratio, below: 0.085, above: -1}]\n"
      "  limit: [{actions: budget/*, max: 1.0}, {actions: cutoff/*, max: current, min: -1}]\n");
  const auto back = Parse(GuardrailsToJson(rules));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(GuardrailsToJson(back), GuardrailsToJson(rules));
  EXPECT_TRUE(back[0].limits[1].max_current);
  EXPECT_EQ(*back[0].when[0].below, 0.085);
}

/// capital (center 0.12, scale 0.05), self/cutoff/x; budget/x values {0, 0.5, 1, 2}, cutoff/x
/// values {-1, 0, 1, 2}.
GuardrailLayout HandLayout() {
  GuardrailLayout l;
  l.role = "r";
  l.features = {"capital", "self/budget/x", "self/cutoff/x"};
  l.centers = {0.12, 0, 0};
  l.scales = {0.05, 1, 1};
  l.components = {{"budget/x", 4, 0, {0, 0.5, 1, 2}}, {"cutoff/x", 4, 4, {-1, 0, 1, 2}}};
  l.mask_width = 8;
  return l;
}

TEST(Guardrails, MasksOnTheObservedStateOnly) {
  const auto rules = Parse(
      "- name: buffer\n  when: [{feature: capital, below: 0.10}]\n"
      "  limit: [{actions: budget/*, max: 1.0}, {actions: cutoff/x, max: current}]\n"
      "- name: floor\n  when: [{feature: capital, below: 0.05}]\n"
      "  limit: [{actions: \"budget/*\", max: 0}]\n");
  const auto g = CompileGuardrails(rules, {HandLayout()});
  ASSERT_EQ(g.size(), 1u);
  EXPECT_EQ(g[0].applies(), 3u);
  // Capital 12%: nothing fires, the mask is untouched.
  float obs[3] = {0.0f, 1.0f, 2.0f / 3.0f};  // cutoff in force: index 2 (value 1)
  std::vector<uint8_t> mask(8, 1);
  EXPECT_EQ(g[0].Apply(obs, mask.data()), 0u);
  EXPECT_EQ(mask, std::vector<uint8_t>(8, 1));
  // Capital 8% = 0.12 + 0.05 x (-0.8): the buffer rule fires; budgets <= 1, cutoffs <= in force.
  obs[0] = -0.8f;
  EXPECT_EQ(g[0].Apply(obs, mask.data()), 1u);
  EXPECT_EQ(mask, (std::vector<uint8_t>{1, 1, 1, 0, 1, 1, 1, 0}));
  // Capital 3%: both fire; the floor leaves budget 0 only.
  obs[0] = -1.8f;
  mask.assign(8, 1);
  EXPECT_EQ(g[0].Apply(obs, mask.data()), 3u);
  EXPECT_EQ(mask, (std::vector<uint8_t>{1, 0, 0, 0, 1, 1, 1, 0}));
  // A mask that already forbids everything the rule allows keeps the action nearest the bound.
  obs[0] = -0.8f;
  mask = {0, 0, 0, 1, 1, 1, 1, 1};
  g[0].Apply(obs, mask.data());
  EXPECT_EQ(mask, (std::vector<uint8_t>{0, 0, 0, 1, 1, 1, 1, 0}));
  // Baselines: a forbidden action moves to the allowed one of nearest value.
  mask = {1, 1, 1, 0, 1, 1, 0, 0};
  int32_t action[2] = {3, 3};
  g[0].Project(mask.data(), action);
  EXPECT_EQ(action[0], 2);
  EXPECT_EQ(action[1], 1);
  // A layout without the feature, or a limit that matches nothing, is refused naming the rule.
  GuardrailLayout other = HandLayout();
  other.features[0] = "something_else";
  try {
    CompileGuardrails(rules, {other});
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("guardrail 'buffer'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("capital"), std::string::npos) << e.what();
  }
  EXPECT_THROW(CompileGuardrails(Parse("- {name: z, limit: [{actions: spread/*, max: 0}]}\n"),
                                 {HandLayout()}),
               std::invalid_argument);
  EXPECT_THROW(CompileGuardrails(Parse("- {name: z, roles: [pricing], limit: [{actions: budget/*, "
                                       "max: 0}]}\n"),
                                 {HandLayout()}),
               std::invalid_argument);
}

const char* kTwinRules =
    "- name: buffer\n"
    "  when: [{feature: portfolio/capital_ratio, below: 0.5}]\n"  // always (capital < 50%)
    "  limit: [{actions: budget/*, max: 0.75}, {actions: spread_offset/*, min: 0}]\n"
    "- name: never\n"
    "  when: [{feature: portfolio/capital_ratio, above: 0.9}]\n"
    "  limit: [{actions: cutoff/*, max: -1}]\n";

TEST(Guardrails, TheTwinsMasksAndBaselinesObeyThem) {
  EnvOptions eo;
  eo.num_envs = 4;
  eo.seed = 3;
  TwinEnvConfig tc;
  tc.institution = "cu_mid";
  tc.horizon_months = 12;
  tc.guardrails = Parse(kTwinRules);
  TwinEnv env(eo, tc);
  env.Reset();
  for (int step = 0; step < 14; ++step) {
    for (int r = 0; r < env.num_roles(); ++r) {
      env.Act(r, nullptr);  // the baselines, moved inside the guardrails
      const int dims = env.role(r).action_space.action_dims();
      for (int i = 0; i < env.num_envs(); ++i) {
        const int32_t* a = env.actions(r) + static_cast<size_t>(i) * dims;
        if (r == kPortfolioRole)
          for (int p = 0; p < kNumProducts; ++p) EXPECT_LE(kBudgetLevels[a[p]], 0.75 + 1e-9);
        if (r == kPricingRole)
          for (int p = 0; p < kNumProducts; ++p) EXPECT_GE(kSpreadOffsets[a[p]], -1e-12);
      }
    }
    for (int i = 0; i < env.num_envs(); ++i) {
      EXPECT_EQ(env.guardrails_fired(kPortfolioRole, i), 1u);
      EXPECT_EQ(env.guardrails_fired(kCreditRole, i), 0u);
      EXPECT_EQ(env.guardrails_fired(kRiskRole, i), 0u);
    }
    env.Step();
  }
  const auto counts = env.guardrail_counts();
  ASSERT_EQ(counts.size(), 2u);
  // buffer: portfolio and pricing decide monthly on 4 instances for 14 months.
  EXPECT_EQ(counts[0].decisions, 2 * 4 * 14);
  EXPECT_EQ(counts[0].fired, counts[0].decisions);
  EXPECT_EQ(counts[1].decisions, 4 * 14);
  EXPECT_EQ(counts[1].fired, 0);
  // Agents' actions outside them are refused, naming the component.
  std::vector<int32_t> bad(static_cast<size_t>(env.num_envs()) * kNumProducts, 7);  // 3.0x
  EXPECT_THROW(env.Act(kPortfolioRole, bad.data()), std::invalid_argument);
  // Guardrails come before the first Reset; ones that do not fit the roles are refused.
  EXPECT_THROW(env.SetGuardrails(Parse(kTwinRules)), std::logic_error);
  TwinEnvConfig wrong = tc;
  wrong.guardrails = Parse(
      "- {name: x, when: [{feature: no/such, below: 1}], limit: "
      "[{actions: budget/*, max: 1}]}\n");
  EXPECT_THROW(TwinEnv(eo, wrong), std::invalid_argument);
}

std::string GuardedExperiment(const std::string& name) {
  return testing::TinyTwinExperiment(name, 5, 320, "ppo") + "guardrails:\n" +
         "  - name: buffer\n"
         "    when: [{feature: portfolio/capital_ratio, below: 0.5}]\n"
         "    limit: [{actions: spread_offset/*, min: 0.005}, {actions: cutoff/*, max: 1}]\n"
         "  - name: never\n"
         "    when: [{feature: portfolio/capital_ratio, above: 0.9}]\n"
         "    limit: [{actions: cutoff/*, max: -1}]\n";
}

TEST(Guardrails, TrainingResumesTheirCountsExactly) {
  const auto config =
      ExperimentConfig::Parse(YamlValue::LoadString(GuardedExperiment("g-resume"), "g.yaml"));
  Trainer straight(config);
  straight.Train(160);
  testing::TempDir dir;
  CheckpointManager ckpt(dir.path() + "/checkpoints", 2);
  ckpt.Save(straight);
  Trainer resumed(config);
  LoadLatestCheckpoint(resumed, dir.path(), "test");
  straight.Train(320);
  resumed.Train(320);
  const auto a = straight.env().guardrail_counts(), b = resumed.env().guardrail_counts();
  ASSERT_EQ(a.size(), 2u);
  EXPECT_GT(a[0].fired, 0);
  EXPECT_EQ(a[0].fired, b[0].fired);
  EXPECT_EQ(a[0].decisions, b[0].decisions);
  EXPECT_EQ(a[1].fired, 0);
  // The resolved config carries them (a resumed or evaluated run applies the same ones).
  const auto again = ExperimentConfig::Parse(YamlValue::LoadString(config.ToYaml(), "r.yaml"));
  EXPECT_EQ(GuardrailsToJson(again.guardrails), GuardrailsToJson(config.guardrails));
  // A rule that does not fit the environment is refused naming the experiment's line.
  const std::string bad = testing::TinyTwinExperiment("g-bad", 5, 320, "ppo") +
                          "guardrails:\n  - {name: x, limit: [{actions: nothing/*, max: 0}]}\n";
  try {
    Trainer t(ExperimentConfig::Parse(YamlValue::LoadString(bad, "bad.yaml")));
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.yaml:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("nothing/*"), std::string::npos) << e.what();
  }
}

namespace net = boost::asio;
namespace http = boost::beast::http;

json PostJson(int port, const std::string& target, const json& body, int* status) {
  net::io_context ioc;
  boost::beast::tcp_stream stream(ioc);
  stream.connect(
      net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)));
  http::request<http::string_body> req{http::verb::post, target, 11};
  req.set(http::field::host, "localhost");
  req.set(http::field::content_type, "application/json");
  req.body() = body.dump();
  req.prepare_payload();
  http::write(stream, req);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(stream, buf, res);
  *status = res.result_int();
  return json::parse(res.body());
}

TEST(Guardrails, OneObservationGetsOneMaskedDecisionInTrainingEvaluationAndServing) {
  testing::TempDir dir;
  const auto config =
      ExperimentConfig::Parse(YamlValue::LoadString(GuardedExperiment("g-same"), "g.yaml"));
  Trainer trainer(config);
  trainer.Train(320);
  CheckpointManager ckpt(dir.path() + "/run/checkpoints", 2);
  ExportRun(trainer, dir.path() + "/run", ckpt.Save(trainer), dir.path() + "/export");
  const auto manifest = json::parse(testing::ReadFile(dir.path() + "/export/manifest.json"));
  ASSERT_EQ(manifest["guardrails"].size(), 2u);
  const auto schema = json::parse(
      testing::ReadFile(std::string(LOANTWIN_SOURCE_DIR) + "/docs/schemas/manifest.schema.json"));
  EXPECT_EQ(testing::ValidateJson(manifest, schema, schema), "");

  // Training: the trainer's environment, its guarded masks and the policy's greedy decision.
  MultiAgentEnv& env = trainer.env();
  auto policy = StressPolicy::Load(dir.path() + "/export");
  ASSERT_EQ(policy->guardrails.size(), 2u);
  ServerOptions so;
  so.bundle = dir.path() + "/export";
  so.port = 0;
  Server server(so);
  server.Start();
  int checked = 0;
  for (int role : {kPricingRole, kCreditRole}) {
    const RoleSpec& spec = env.role(role);
    const int d = spec.obs_dim(), w = spec.action_space.mask_width(),
              dims = spec.action_space.action_dims();
    for (int i = 0; i < 3; ++i) {
      const float* obs = env.observations(role) + static_cast<size_t>(i) * d;
      const uint8_t* mask = env.action_masks(role) + static_cast<size_t>(i) * w;
      const uint64_t fired = env.guardrails_fired(role, i);
      EXPECT_EQ(fired, 1u);  // "buffer" fires, "never" does not
      std::vector<int32_t> trained(dims), evaluated(dims);
      trainer.Decide(role, obs, mask, 1, /*deterministic=*/true, trained.data());
      // Evaluation: the same guardrails applied to the environment's own mask of this state.
      EnvOptions eo;
      TwinEnvConfig tc;
      tc.institution = "cu_small";
      TwinEnv plain(eo, tc);
      plain.Reset();
      for (int above = 0; above < role; ++above) plain.Act(above, nullptr);  // the appetite
      std::vector<uint8_t> raw(plain.action_masks(role), plain.action_masks(role) + w);
      std::vector<GuardrailLayout> layouts;
      for (int r = 0; r < plain.num_roles(); ++r)
        layouts.push_back(GuardrailLayout::Of(plain.role(r)));
      const auto compiled = CompileGuardrails(policy->guardrails, layouts);
      std::vector<uint8_t> guarded = raw;
      EXPECT_EQ(compiled[role].Apply(obs, guarded.data()), fired);
      EXPECT_EQ(guarded, std::vector<uint8_t>(mask, mask + w));
      EXPECT_NE(guarded, raw);  // the guardrail restricted something
      policy->Decide(role, obs, guarded.data(), 1, evaluated.data());
      EXPECT_EQ(evaluated, trained);
      EXPECT_TRUE(spec.action_space.Allows(mask, trained.data()));
      // Serving: the observation by feature name and the environment's own mask (products,
      // appetite); the server applies the guardrails on top.
      json o = json::object();
      for (int k = 0; k < d; ++k) o[spec.features.names()[k]] = obs[k];
      int status = 0;
      const json r = PostJson(server.port(), "/v1/roles/" + spec.name + "/decide",
                              {{"observation", o}, {"mask", raw}}, &status);
      ASSERT_EQ(status, 200) << r.dump();
      for (int c = 0; c < dims; ++c)
        EXPECT_EQ(r["action"][spec.action_dim_names[c]]["index"].get<int>(), trained[c])
            << spec.name << " " << spec.action_dim_names[c];
      EXPECT_EQ(r["guardrails"], json::array({"buffer"}));
      ++checked;
    }
  }
  EXPECT_EQ(checked, 6);
  server.Shutdown();

  // Stress evaluation applies them on every path and reports how often each fired.
  std::vector<std::unique_ptr<StressPolicy>> policies;
  policies.push_back(StressPolicy::Load("baseline"));
  policies.push_back(StressPolicy::Load("guarded=" + dir.path() + "/export"));
  StressOptions so2;
  so2.scenarios = {"steady_state"};
  so2.paths = 6, so2.months = 12, so2.institution = "cu_small", so2.threads = 1, so2.batch = 4;
  const StressReport report = RunStress(policies, so2);
  const auto& results = report.scenarios[0].results;
  EXPECT_TRUE(results[0].guardrail_fired_rate.empty());  // the baseline has none
  ASSERT_EQ(results[1].guardrail_fired_rate.size(), 2u);
  EXPECT_EQ(results[1].guardrail_fired_rate[0].first, "buffer");
  EXPECT_EQ(results[1].guardrail_fired_rate[0].second, 1.0);  // capital is always below 50%
  EXPECT_EQ(results[1].guardrail_fired_rate[1].second, 0.0);
  const json doc = json::parse(StressReportJson(report));
  const auto report_schema = json::parse(testing::ReadFile(
      std::string(LOANTWIN_SOURCE_DIR) + "/docs/schemas/stress-report.schema.json"));
  EXPECT_EQ(testing::ValidateJson(doc, report_schema, report_schema), "");
  EXPECT_EQ(doc["policies"][1]["guardrails"][0]["name"], "buffer");
  EXPECT_NE(GuardrailMarkdown(report).find("| steady_state | guarded | buffer | 100.0% |"),
            std::string::npos)
      << GuardrailMarkdown(report);
}

// pricing_reference: cost_plus travels from the experiment to the export's manifest, to stress
// evaluation and to the server, and the server's offered rate moves the standard spread exactly
// as the environment moves it, for the same observed state.
TEST(Guardrails, TheCostPlusPricingReferenceIsTheSameInTrainingEvaluationAndServing) {
  testing::TempDir dir;
  std::string yaml = testing::TinyTwinExperiment("cost-plus", 5, 160, "ppo");
  const std::string plain_config = "config: {institution: cu_small, horizon_months: 24}";
  yaml.replace(yaml.find(plain_config), plain_config.size(),
               "config: {institution: cu_small, horizon_months: 24, pricing_reference: cost_plus}");
  Trainer trainer(ExperimentConfig::Parse(YamlValue::LoadString(yaml, "cp.yaml")));
  trainer.Train(160);
  CheckpointManager ckpt(dir.path() + "/run/checkpoints", 2);
  ExportRun(trainer, dir.path() + "/run", ckpt.Save(trainer), dir.path() + "/export");
  const auto manifest = json::parse(testing::ReadFile(dir.path() + "/export/manifest.json"));
  EXPECT_EQ(manifest["pricing_reference"], "cost_plus");
  const auto schema = json::parse(
      testing::ReadFile(std::string(LOANTWIN_SOURCE_DIR) + "/docs/schemas/manifest.schema.json"));
  EXPECT_EQ(testing::ValidateJson(manifest, schema, schema), "");
  EXPECT_EQ(StressPolicy::Load(dir.path() + "/export")->pricing_reference, "cost_plus");
  const auto bundle = PolicyBundle::Load(dir.path() + "/export", "", 1);
  ASSERT_TRUE(bundle->cost_plus_pricing());
  const ServedRole& credit = *bundle->role("credit");

  // The environment under a severe recession: the fallback pricing is the zero offset, so the
  // spread applied in a month is the standard spread plus the rule's move from the state the
  // observations described - the move the server computes from the same observation.
  EnvOptions eo;
  eo.num_envs = 2;
  TwinEnvConfig tc;
  tc.institution = "cu_small";
  tc.scenario = "severe_recession";
  tc.pricing_reference = "cost_plus";
  TwinEnv env(eo, tc);
  env.Reset();
  const auto base =
      CostPlusCalibrationBase(std::make_shared<const InstitutionConfig>(env.institution()));
  for (int p = 0; p < kNumProducts; ++p) EXPECT_EQ(base[p], bundle->cost_plus_base(p)) << p;
  const RoleSpec& spec = env.role(kCreditRole);
  const double standard = env.institution().products[kCard].spec.default_spread;
  double largest = 0;
  for (int month = 0; month < 36; ++month) {
    std::vector<CreditApplication> apps(2);
    for (int i = 0; i < 2; ++i) {
      const float* obs = env.observations(kCreditRole) + static_cast<size_t>(i) * spec.obs_dim();
      apps[i].product = kCard;
      apps[i].state = json::object();
      for (int k = 0; k < spec.obs_dim(); ++k) apps[i].state[spec.features.names()[k]] = obs[k];
      ApplyPricingReference(*bundle, credit, &apps[i]);
      ASSERT_TRUE(apps[i].cost_plus);
      EXPECT_EQ(apps[i].cost_plus_move, env.reference_move(i, kCard)) << month << " " << i;
    }
    env.Step();
    for (int i = 0; i < 2; ++i) {
      EXPECT_NEAR(env.levers(i).rate_spread[kCard], standard + apps[i].cost_plus_move, 1e-12)
          << "month " << month << " instance " << i;
      largest = std::max(largest, apps[i].cost_plus_move);
    }
  }
  EXPECT_GE(largest, 0.005);  // the rule moved the spread: the comparison is not trivial

  // The server prices on it: the offered rate's parts name the reference and the move.
  ServerOptions so;
  so.bundle = dir.path() + "/export";
  so.port = 0;
  Server server(so);
  server.Start();
  json state = json::object();
  for (const char* role : {"credit", "pricing"})
    for (const auto& f : manifest["roles"][role]["observation"]["features"]) state[f] = 0.0;
  state["macro/credit_factor"] = -1.5;  // z = -3, a downturn: expected loss and cost-plus up
  json app = {{"product", "card"}, {"amount", 3000},  {"term_months", 0},
              {"band", "A"},       {"income", 80000}, {"state", state}};
  int status = 0;
  json r = PostJson(server.port(), "/v1/credit/applications", app, &status);
  ASSERT_EQ(status, 200) << r.dump();
  if (r.contains("rate_parts")) {
    EXPECT_EQ(r["rate_parts"]["pricing_reference"], "cost_plus") << r.dump();
    EXPECT_GT(r["rate_parts"]["cost_plus_move"].get<double>(), 0.0) << r.dump();
    EXPECT_NEAR(r["offered_rate"].get<double>(),
                r["rate_parts"]["reference"].get<double>() + r["rate_parts"]["standard_spread"].get<double>() +
                    r["rate_parts"]["cost_plus_move"].get<double>() +
                    r["rate_parts"]["pricing_offset"].get<double>(),
                1e-12);
  }
  // A state without the rule's inputs is a 400 naming the feature.
  state.erase("macro/credit_factor");
  app["state"] = state;
  r = PostJson(server.port(), "/v1/credit/applications", app, &status);
  EXPECT_EQ(status, 400) << r.dump();
  EXPECT_NE(r.dump().find("macro/credit_factor"), std::string::npos) << r.dump();
  server.Shutdown();
}

}  // namespace
}  // namespace loantwin
