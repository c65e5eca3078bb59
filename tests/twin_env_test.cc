// The five-role twin environment: hierarchy, masks, directives, single-agent use, episode ends,
// rewards and its YAML configuration.

#include "env/twin_env.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "core/config_error.h"
#include "core/yaml_reader.h"
#include "env/cartpole.h"

namespace loantwin {
namespace {

std::unique_ptr<TwinEnv> MakeTwin(int n, TwinEnvConfig c = {}, int threads = 1) {
  EnvOptions o;
  o.num_envs = n;
  o.num_threads = threads;
  o.seed = 9;
  return std::make_unique<TwinEnv>(o, c);
}

float Feature(const MultiAgentEnv& env, int role, int i, const std::string& name,
              bool final = false) {
  const RoleSpec& s = env.role(role);
  const int k = s.features.Find(name);
  EXPECT_GE(k, 0) << name;
  const float* base = final ? env.final_observations(role) : env.observations(role);
  return base[i * s.obs_dim() + k];
}

TEST(TwinEnv, RolesSpacesAndCadence) {
  auto env = MakeTwin(2);
  ASSERT_EQ(env->num_roles(), 5);
  for (int r = 0; r < 5; ++r) EXPECT_EQ(env->role(r).name, kTwinRoleNames[r]);
  EXPECT_EQ(env->role(kRiskRole).action_space.ToString(), "Discrete(5)");
  EXPECT_EQ(env->role(kCreditRole).action_space.ToString(), "MultiDiscrete([8, 8, 8, 8, 8])");
  EXPECT_EQ(env->role(kCollectionRole).action_space.ToString(), "MultiDiscrete([4, 4, 4])");
  EXPECT_EQ(env->role(kCreditRole).action_meanings[3][5], "up to E");
  EXPECT_EQ(env->role(kRiskRole).objectives.size(), 8u);
  // Lower roles see more: the directives of the roles above them.
  for (int r = 1; r < 5; ++r) EXPECT_GT(env->role(r).obs_dim(), env->role(r - 1).obs_dim());
  env->Reset();
  for (int step = 0; step < 9; ++step) {
    EXPECT_EQ(env->acting(kRiskRole)[0], step % 3 == 0) << step;
    EXPECT_EQ(env->acting(kCreditRole)[0], 1);
    env->Step();
  }
}

TEST(TwinEnv, RiskAppetiteMasksTheRolesBelow) {
  auto env = MakeTwin(2);
  env->Reset();
  const int32_t very_conservative[2] = {0, 4};  // instance 0: level 0, instance 1: aggressive
  env->Act(kRiskRole, very_conservative);
  const RoleSpec& credit = env->role(kCreditRole);
  const int width = credit.action_space.mask_width();
  const uint8_t* m0 = env->action_masks(kCreditRole);
  // cu_small offers personal and card. Level 0 allows cutoffs up to C (index 3).
  for (int v = 0; v <= kNumBands; ++v) {
    EXPECT_EQ(m0[kCard * 8 + v], v <= 3) << v;
    EXPECT_EQ(m0[width + kCard * 8 + v], 1) << v;  // aggressive: everything
  }
  const uint8_t* budget = env->action_masks(kPortfolioRole);
  for (size_t v = 0; v < kBudgetLevels.size(); ++v)
    EXPECT_EQ(budget[kCard * 8 + v], kBudgetLevels[v] <= 0.5);
  env->Act(kPortfolioRole, nullptr);
  env->Act(kPricingRole, nullptr);
  std::vector<int32_t> cutoffs(2 * kNumProducts, 0);
  cutoffs[kCard] = 5;  // "up to E" for instance 0: outside its appetite
  try {
    env->Act(kCreditRole, cutoffs.data());
    FAIL();
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("role 'credit', instance 0"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cutoff/card"), std::string::npos) << msg;
    EXPECT_NE(msg.find("up to E"), std::string::npos) << msg;
    EXPECT_NE(msg.find("risk appetite 'very_conservative' allows cutoffs up to C"),
              std::string::npos)
        << msg;
  }
  cutoffs[kCard] = 3;
  cutoffs[kNumProducts + kCard] = 7;  // instance 1 is aggressive: G is fine
  EXPECT_NO_THROW(env->Act(kCreditRole, cutoffs.data()));
  env->Step();
  EXPECT_EQ(env->levers(0).approval_cutoff[kCard], 2);
  EXPECT_EQ(env->levers(1).approval_cutoff[kCard], 6);
}

TEST(TwinEnv, ProductsNotOfferedAreMaskedWithAReason) {
  auto env = MakeTwin(1);
  env->Reset();
  env->Act(kRiskRole, nullptr);
  const uint8_t* m = env->action_masks(kCreditRole);
  for (int v = 0; v <= kNumBands; ++v) EXPECT_EQ(m[kAuto * 8 + v], v == 0);
  env->Act(kPortfolioRole, nullptr);
  env->Act(kPricingRole, nullptr);
  std::vector<int32_t> cutoffs(kNumProducts, 0);
  cutoffs[kAuto] = 2;
  try {
    env->Act(kCreditRole, cutoffs.data());
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("cu_small does not offer auto loans"), std::string::npos)
        << e.what();
  }
}

TEST(TwinEnv, DirectivesReachTheRolesBelowInTheSameStep) {
  auto env = MakeTwin(1);
  env->Reset();
  const int32_t growth = 3;
  env->Act(kRiskRole, &growth);
  for (int r = kPortfolioRole; r <= kCollectionRole; ++r) {
    EXPECT_EQ(Feature(*env, r, 0, "directive/risk_appetite/growth"), 1.0f) << r;
    EXPECT_EQ(Feature(*env, r, 0, "directive/risk_appetite/balanced"), 0.0f) << r;
  }
  std::vector<int32_t> budgets(kNumProducts, 0);
  budgets[kCard] = 6;  // 2.0x, allowed under growth
  budgets[kPersonal] = 2;
  env->Act(kPortfolioRole, budgets.data());
  EXPECT_EQ(Feature(*env, kPricingRole, 0, "directive/budget/card"), 2.0f);
  EXPECT_EQ(Feature(*env, kCollectionRole, 0, "directive/budget/personal"), 0.75f);
  EXPECT_EQ(Feature(*env, kPortfolioRole, 0, "self/budget/card"), 6.0f / 7);
  env->Step();
  EXPECT_DOUBLE_EQ(env->levers(0).origination_budget[kCard], 2.0);
  EXPECT_EQ(env->levers(0).risk_appetite, 3);
}

TEST(TwinEnv, EpisodesStartWithTheBaselinesDecisionsInForce) {
  // A fresh environment and an episode that starts by auto-reset after random decisions show
  // the same decisions in force at month 0 (directive/ and self/ features): the baselines'.
  TwinEnvConfig c;
  c.horizon_months = 2;
  auto fresh = MakeTwin(2, c), used = MakeTwin(2, c);
  for (int r = 0; r < kNumTwinRoles; ++r) used->SetFallback(r, FallbackPolicy::kRandom);
  fresh->Reset();
  used->Reset();
  used->Step();
  used->Step();  // truncated: both instances start episode 1
  int compared = 0;
  for (int r = 0; r < kNumTwinRoles; ++r) {
    const auto& names = fresh->role(r).features.names();
    for (const std::string& name : names) {
      if (name.rfind("directive/", 0) != 0 && name.rfind("self/", 0) != 0) continue;
      for (int i = 0; i < 2; ++i) {
        EXPECT_EQ(Feature(*used, r, i, name), Feature(*fresh, r, i, name)) << r << " " << name;
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 100);
  // The baselines' decisions: budgets at 1.0x, offered products' preset cutoffs, the default
  // appetite.
  EXPECT_EQ(Feature(*fresh, kPricingRole, 0, "directive/budget/card"), 1.0f);
  EXPECT_EQ(Feature(*fresh, kPortfolioRole, 0, "self/budget/card"), 3.0f / 7);
  const std::string appetite = GetRiskAppetite(fresh->institution().default_risk_appetite).name;
  EXPECT_EQ(Feature(*fresh, kCreditRole, 0, "directive/risk_appetite/" + appetite), 1.0f);
}

TEST(TwinEnv, OneRoleDrivenFromOutsideOthersOnBaselines) {
  // The single-agent case is the same API: only credit is given actions.
  auto env = MakeTwin(3);
  env->Reset();
  const std::vector<int32_t> approve_none(3 * kNumProducts, 0);
  for (int step = 0; step < 4; ++step) {
    env->Act(kCreditRole, approve_none.data());  // risk, portfolio, pricing fall back first
    env->Step();
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(env->levers(i).approval_cutoff[kCard], -1);
    EXPECT_EQ(env->step_metrics(i)[kApprovals], 0.0);
    EXPECT_GT(env->step_metrics(i)[kApplications], 0.0);
    EXPECT_EQ(env->levers(i).risk_appetite, env->institution().default_risk_appetite);
    EXPECT_EQ(env->levers(i).collection_intensity[0], kSoft);  // baseline collection
  }
}

TEST(TwinEnv, BaselinePricingIsCostPlus) {
  // Under a severe recession, expected loss rises: cost-plus pricing widens card spreads.
  TwinEnvConfig c;
  c.scenario = "severe_recession";
  auto env = MakeTwin(2, c);
  env->Reset();
  double max_offset = 0;
  for (int step = 0; step < 30; ++step) {
    env->Step();
    max_offset = std::max(max_offset, env->levers(0).rate_spread[kCard] -
                                          env->institution().products[kCard].spec.default_spread);
  }
  EXPECT_GE(max_offset, 0.005);
}

// pricing_reference: cost_plus measures the pricing role's offsets from the cost-plus rule (the
// standard spread moved by the rule's change from the institution's calibration economy): the
// zero offset prices at the rule, +1 point prices 1 point above it, the fallback is offset 0.
TEST(TwinEnv, CostPlusPricingReference) {
  TwinEnvConfig c;
  c.scenario = "severe_recession";
  c.pricing_reference = "cost_plus";
  auto zero = MakeTwin(2, c);
  auto above = MakeTwin(2, c);
  zero->Reset(), above->Reset();
  const auto base =
      CostPlusCalibrationBase(std::make_shared<const InstitutionConfig>(zero->institution()));
  const int dims = kNumProducts;
  std::vector<int32_t> offset0(2 * dims, 4), plus_one(2 * dims, 4);
  for (int i = 0; i < 2; ++i)
    for (int p = 0; p < kNumProducts; ++p)
      if (above->institution().products[p].offered) plus_one[i * dims + p] = 6;
  double moved = 0;
  for (int step = 0; step < 30; ++step) {
    std::vector<double> move(2 * dims);
    for (int i = 0; i < 2; ++i)
      for (int p = 0; p < kNumProducts; ++p) {
        move[i * dims + p] = zero->reference_move(i, p);
        ASSERT_DOUBLE_EQ(above->reference_move(i, p), move[i * dims + p]);
        if (!zero->institution().products[p].offered) EXPECT_EQ(move[i * dims + p], 0.0);
        // The move is the rule's: the cost-plus spread of the state observed, from the base.
        const double* row = zero->current_metrics(i);
        if (zero->institution().products[p].offered)
          EXPECT_DOUBLE_EQ(move[i * dims + p],
                           CostPlusMove(CostPlusSpread(zero->institution(), p, row[kPolicyRate],
                                                       row[kMortgageRate], row[kCreditFactor]),
                                        base[p]));
      }
    zero->Act(kPricingRole, offset0.data());
    above->Act(kPricingRole, plus_one.data());
    zero->Step(), above->Step();
    for (int i = 0; i < 2; ++i)
      for (int p = 0; p < kNumProducts; ++p) {
        const double standard = zero->institution().products[p].spec.default_spread;
        ASSERT_NEAR(zero->levers(i).rate_spread[p], standard + move[i * dims + p], 1e-12)
            << step << " " << p;
        if (p == kCard)  // cu_small offers cards; +1 point stays within the levers' range
          EXPECT_NEAR(above->levers(i).rate_spread[p], standard + move[i * dims + p] + 0.01, 1e-12);
        moved = std::max(moved, move[i * dims + p]);
      }
  }
  EXPECT_GE(moved, 0.005);  // the recession moved the rule: the comparison is not trivial
  // The fallback pricing under the cost-plus reference is the zero offset.
  auto fallback = MakeTwin(2, c);
  fallback->Reset();
  for (int step = 0; step < 12; ++step) {
    fallback->Step();
    for (int p = 0; p < kNumProducts; ++p) EXPECT_EQ(fallback->actions(kPricingRole)[p], 4);
  }
  // The standard reference never moves.
  auto standard = MakeTwin(1);
  standard->Reset();
  for (int p = 0; p < kNumProducts; ++p) EXPECT_EQ(standard->reference_move(0, p), 0.0);
  // An unknown reference is a config error naming the key.
  const std::string yaml = "institution: cu_small\npricing_reference: market\n";
  try {
    TwinEnvConfig::Parse(YamlValue::LoadString(yaml, "env.yaml"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("pricing_reference"), std::string::npos) << e.what();
  }
}

TEST(TwinEnv, TerminationWhenTheInstitutionFails) {
  TwinEnvConfig c;
  c.capital_floor = 0.9;  // unreachable capital: fails at once
  auto env = MakeTwin(2, c);
  env->Reset();
  env->Step();
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(env->terminated()[i], 1);
    EXPECT_EQ(env->truncated()[i], 0);
    EXPECT_EQ(env->episodes()[i], 1);
  }
  c.terminate_on_failure = false;
  auto on = MakeTwin(1, c);
  on->Reset();
  on->Step();
  EXPECT_EQ(on->terminated()[0], 0);
}

// resolve_failures: the failure month is resolved as stress reports count it - net income falls
// by the remaining equity, capital to zero - and the rewards of that month see it.
TEST(TwinEnv, AResolvedFailureCarriesTheLossAtResolution) {
  TwinEnvConfig c;
  c.capital_floor = 0.9;  // fails at once
  auto plain = MakeTwin(1, c);
  c.resolve_failures = true;
  auto resolved = MakeTwin(1, c);
  plain->Reset(), resolved->Reset();
  plain->Step(), resolved->Step();
  ASSERT_EQ(resolved->terminated()[0], 1);
  const double* a = plain->step_metrics(0);
  const double* b = resolved->step_metrics(0);
  ASSERT_GT(a[kEquity], 0);
  EXPECT_DOUBLE_EQ(b[kNetIncome], a[kNetIncome] - a[kEquity]);
  EXPECT_EQ(b[kEquity], 0);
  EXPECT_EQ(b[kCapitalRatio], 0);
  EXPECT_EQ(b[kCapitalCategory], 4);
  // profit (the first objective) = 100 x net income / opening equity: the same opening equity,
  // the resolved income.
  const double profit_plain = plain->reward_vectors(kCreditRole)[0],
               profit_resolved = resolved->reward_vectors(kCreditRole)[0];
  EXPECT_LT(profit_resolved, -50);  // about -100: the whole equity lost
  EXPECT_NEAR(profit_resolved / profit_plain, b[kNetIncome] / a[kNetIncome], 1e-4);
  EXPECT_LT(resolved->rewards(kCreditRole)[0], plain->rewards(kCreditRole)[0] - 50);
  // Without termination nothing is resolved.
  c.terminate_on_failure = false;
  auto on = MakeTwin(1, c);
  on->Reset();
  on->Step();
  EXPECT_DOUBLE_EQ(on->step_metrics(0)[kEquity], a[kEquity]);
}

TEST(TwinEnv, TruncatedEpisodesCanBeBootstrapped) {
  TwinEnvConfig c;
  c.horizon_months = 6;
  auto env = MakeTwin(2, c);
  env->Reset();
  for (int step = 1; step <= 6; ++step) {
    env->Step();
    EXPECT_EQ(env->truncated()[0], step == 6);
  }
  EXPECT_EQ(env->terminated()[0], 0);
  // The final observation describes month 6 (the state to bootstrap V from) ...
  EXPECT_FLOAT_EQ(Feature(*env, kCreditRole, 0, "episode/progress", true), 1.0f);
  const double capital = env->step_metrics(0)[kCapitalRatio];
  EXPECT_NEAR(Feature(*env, kRiskRole, 0, "portfolio/capital_ratio", true),
              std::clamp((capital - 0.12) / 0.05, -10.0, 10.0), 1e-5);
  // ... while the observation is the new episode's month 0.
  EXPECT_FLOAT_EQ(Feature(*env, kCreditRole, 0, "episode/progress"), 0.0f);
  EXPECT_NE(Feature(*env, kRiskRole, 0, "portfolio/equity_growth_log", true),
            Feature(*env, kRiskRole, 0, "portfolio/equity_growth_log"));
}

TEST(CartPoleEnv, TruncatedFinalObservationFollowsTheDynamics) {
  EnvOptions o;
  o.num_envs = 3;
  o.seed = 4;
  o.max_episode_steps = 10;
  CartPoleEnv env(o);
  env.Reset();  // the baseline keeps the pole up for 10 steps
  std::vector<float> prev(env.observations(0), env.observations(0) + 12);
  for (int step = 1; step <= 10; ++step) {
    if (step == 10) prev.assign(env.observations(0), env.observations(0) + 12);
    env.Act(0, nullptr);
    const int32_t action = env.actions(0)[0];
    env.Step();
    if (step < 10) continue;
    ASSERT_EQ(env.truncated()[0], 1);
    ASSERT_EQ(env.terminated()[0], 0);
    // Recompute one Euler step from the previous observation.
    const CartPoleConfig c;
    const double x = prev[0], xd = prev[1], th = prev[2], thd = prev[3];
    const double f = action == 1 ? c.force : -c.force, m = c.cart_mass + c.pole_mass;
    const double pml = c.pole_mass * c.pole_half_length;
    const double temp = (f + pml * thd * thd * std::sin(th)) / m;
    const double tacc =
        (c.gravity * std::sin(th) - std::cos(th) * temp) /
        (c.pole_half_length * (4.0 / 3 - c.pole_mass * std::cos(th) * std::cos(th) / m));
    const double xacc = temp - pml * tacc * std::cos(th) / m;
    const float* fin = env.final_observations(0);
    EXPECT_NEAR(fin[0], x + c.tau * xd, 1e-5);
    EXPECT_NEAR(fin[1], xd + c.tau * xacc, 1e-5);
    EXPECT_NEAR(fin[2], th + c.tau * thd, 1e-5);
    EXPECT_NEAR(fin[3], thd + c.tau * tacc, 1e-5);
    for (int k = 0; k < 4; ++k) EXPECT_LE(std::abs(env.observations(0)[k]), 0.05f);  // new episode
  }
}

TEST(TwinEnv, ScalarRewardIsTheWeightedObjectiveVector) {
  auto env = MakeTwin(2);
  for (int r = 0; r < 5; ++r) env->SetFallback(r, FallbackPolicy::kRandom);
  env->Reset();
  bool churned = false;
  for (int step = 0; step < 5; ++step) {
    env->Step();
    for (int r = 0; r < 5; ++r) {
      const auto& w = env->reward_set(r).weights();
      for (int i = 0; i < 2; ++i) {
        double sum = 0;
        for (size_t k = 0; k < w.size(); ++k)
          sum += w[k] * env->reward_vectors(r)[i * w.size() + k];
        EXPECT_NEAR(env->rewards(r)[i], sum, 1e-4);
      }
      if (step > 0) churned |= env->reward_vectors(r)[7] < 0;  // stability
    }
  }
  EXPECT_TRUE(churned);  // random policies change their decisions
}

TEST(TwinEnv, EveryFeatureAndComponentIsDocumented) {
  std::ifstream in(std::string(LOANTWIN_SOURCE_DIR) + "/docs/environment.md");
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(doc.empty());
  // "product/card/yield" -> "product/<product>/yield", ".../balanced" -> ".../<level>".
  auto generic = [](const std::string& name) {
    std::string out, segment;
    std::istringstream in(name);
    while (std::getline(in, segment, '/')) {
      for (const char* p : kProductNames)
        if (segment == p) segment = "<product>";
      for (int l = 0; l < kNumRiskAppetites; ++l)
        if (segment == GetRiskAppetite(l).name) segment = "<level>";
      out += (out.empty() ? "" : "/") + segment;
    }
    return out;
  };
  auto env = MakeTwin(1);
  for (int r = 0; r < env->num_roles(); ++r) {
    for (const auto& f : env->role(r).features.names()) {
      if (f.rfind("self/", 0) == 0) continue;  // documented as self/<component>
      EXPECT_NE(doc.find("`" + generic(f) + "`"), std::string::npos) << f << " -> " << generic(f);
    }
    for (const auto& c : env->role(r).action_dim_names)
      EXPECT_NE(doc.find("`" + generic(c) + "`"), std::string::npos) << c;
  }
  EXPECT_NE(doc.find("risk 55, portfolio 64, pricing 69, credit 74, collection 77"),
            std::string::npos);
  for (const auto& o : RegisteredRewards())
    EXPECT_NE(doc.find("`" + o + "`"), std::string::npos) << o;
}

// The message of the ConfigError parsing `text` (as bad.yaml) gives.
std::string ParseError(const std::string& text) {
  try {
    TwinEnvConfig::Parse(YamlValue::LoadString(text, "bad.yaml"));
  } catch (const ConfigError& e) {
    return std::string(e.what());
  }
  return std::string("<no error>");
}

TEST(TwinEnvConfig, ParsesAndRejectsWithFileLineAndKey) {
  const auto ok = YamlValue::LoadString(R"(institution: cu_mid
scenario: rate_shock
horizon_months: 24
capital_floor: 0.03
roles:
  credit:
    fallback: random
    rewards: {profit: 1.0, customer: 2.0}
)",
                                        "env.yaml");
  const TwinEnvConfig c = TwinEnvConfig::Parse(ok);
  EXPECT_EQ(c.institution, "cu_mid");
  EXPECT_EQ(c.horizon_months, 24);
  EXPECT_EQ(c.roles[kCreditRole].fallback, FallbackPolicy::kRandom);
  EXPECT_EQ(c.roles[kCreditRole].reward_weights.size(), 2u);
  EXPECT_EQ(c.roles[kRiskRole].reward_weights.size(), 3u);  // defaults kept
  auto env = MakeTwin(1, c);
  EXPECT_DOUBLE_EQ(env->reward_set(kCreditRole).weights()[6], 2.0);  // customer

  std::string msg = ParseError("roles:\n  credit:\n    rewards: {profti: 1}\n");
  EXPECT_NE(msg.find("bad.yaml:3:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("roles.credit.rewards.profti"), std::string::npos) << msg;
  msg = ParseError("roles:\n  lending: {fallback: random}\n");
  EXPECT_NE(msg.find("roles.lending"), std::string::npos) << msg;
  msg = ParseError("roles:\n  risk: {fallback: smart}\n");
  EXPECT_NE(msg.find("'smart' is not one of: baseline, random"), std::string::npos) << msg;
  msg = ParseError("horizon_months: 0\n");
  EXPECT_NE(msg.find("0 is out of range [1, 1200]"), std::string::npos) << msg;
}

TEST(TwinEnvConfig, InstitutionsParseRoundTripAndReject) {
  const TwinEnvConfig c = TwinEnvConfig::Parse(YamlValue::LoadString(
      "institutions: [cu_mid, cu_small]\nscenarios: [steady_state, rate_shock]\n", "env.yaml"));
  EXPECT_EQ(c.institutions, (std::vector<std::string>{"cu_mid", "cu_small"}));
  EXPECT_EQ(c.institution, "cu_mid");  // the first
  EXPECT_EQ(c.InstitutionList(), c.institutions);
  const std::string yaml = c.ToYaml();
  EXPECT_EQ(yaml.find("institution:"), std::string::npos) << yaml;  // only the list
  const TwinEnvConfig back = TwinEnvConfig::Parse(YamlValue::LoadString(yaml, "back.yaml"));
  EXPECT_EQ(back.institutions, c.institutions);
  EXPECT_EQ(back.institution, "cu_mid");
  EXPECT_EQ(back.ToYaml(), yaml);
  EXPECT_EQ(TwinEnvConfig{}.InstitutionList(), std::vector<std::string>{"cu_small"});

  std::string msg = ParseError("institution: cu_mid\ninstitutions: [cu_small]\n");
  EXPECT_NE(msg.find("bad.yaml:2:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("either 'institution' or 'institutions'"), std::string::npos) << msg;
  msg = ParseError("institutions: [cu_mid, cu_small, cu_mid]\n");
  EXPECT_NE(msg.find("lists 'cu_mid' twice"), std::string::npos) << msg;
  msg = ParseError("institutions: []\n");
  EXPECT_NE(msg.find("needs at least one institution"), std::string::npos) << msg;
  TwinEnvConfig unknown;
  unknown.institutions = {"cu_mid", "cu_nowhere"};
  EXPECT_THROW(MakeTwin(1, unknown), std::exception);
}

// Instance i runs scenarios[i mod k] at institutions[(i / k) mod n], and each instance behaves
// exactly as the same instance of an environment with its institution alone: observations
// (offered flags, product features), masks, baseline decisions, levers and rewards.
TEST(TwinEnv, SeveralInstitutionsRunEachInstanceAsItsInstitutionAlone) {
  TwinEnvConfig mixed;
  mixed.institutions = {"cu_mid", "cu_small"};
  mixed.scenarios = {"steady_state", "mild_recession"};
  mixed.pricing_reference = "cost_plus";  // per-institution calibration base
  TwinEnvConfig mid = mixed, small = mixed;
  mid.institutions.clear();
  mid.institution = "cu_mid";
  small.institutions.clear();
  small.institution = "cu_small";
  const int n = 8;
  auto env = MakeTwin(n, mixed, 2), alone_mid = MakeTwin(n, mid), alone_small = MakeTwin(n, small);
  EXPECT_EQ(env->institution().name, "cu_mid");
  EXPECT_EQ(env->config().institution, "cu_mid");  // the first of the list
  const auto alone = [&](int i) -> TwinEnv& { return (i / 2) % 2 ? *alone_small : *alone_mid; };
  for (int i = 0; i < n; ++i) {
    EXPECT_EQ(env->institution(i).name, (i / 2) % 2 ? "cu_small" : "cu_mid") << i;
    EXPECT_EQ(env->instance_label(i),
              env->institution(i).name + (i % 2 ? "/mild_recession" : "/steady_state"));
  }
  EXPECT_EQ(alone_mid->instance_label(1), "mild_recession");
  for (TwinEnv* e : {env.get(), alone_mid.get(), alone_small.get()}) e->Reset();
  int differing_offers = 0;
  for (int step = 0; step < 14; ++step) {
    for (int r = 0; r < kNumTwinRoles; ++r) {
      const int obs = env->role(r).obs_dim();
      const int mask = env->role(r).action_space.mask_width();
      for (int i = 0; i < n; ++i) {
        for (int k = 0; k < obs; ++k)
          ASSERT_EQ(env->observations(r)[i * obs + k], alone(i).observations(r)[i * obs + k])
              << "step " << step << " role " << r << " instance " << i << " feature " << k;
        for (int k = 0; k < mask; ++k)
          ASSERT_EQ(env->action_masks(r)[i * mask + k], alone(i).action_masks(r)[i * mask + k])
              << "step " << step << " role " << r << " instance " << i << " mask " << k;
      }
    }
    const float auto_offered = Feature(*env, kCreditRole, 0, "product/auto/offered");
    differing_offers += auto_offered != Feature(*env, kCreditRole, 2, "product/auto/offered");
    for (TwinEnv* e : {env.get(), alone_mid.get(), alone_small.get()}) e->Step();
    for (int i = 0; i < n; ++i) {
      for (int r = 0; r < kNumTwinRoles; ++r)
        ASSERT_EQ(env->rewards(r)[i], alone(i).rewards(r)[i]) << step << " " << r << " " << i;
      for (int p = 0; p < kNumProducts; ++p)
        ASSERT_EQ(env->levers(i).rate_spread[p], alone(i).levers(i).rate_spread[p]);
      ASSERT_EQ(env->step_metrics(i)[kNetIncome], alone(i).step_metrics(i)[kNetIncome]);
    }
  }
  EXPECT_EQ(differing_offers, 14);  // cu_mid lends auto loans, cu_small does not
}

}  // namespace
}  // namespace loantwin
