// The `loantwin` binary: happy path and every bad-input case exits non-zero with a message.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/version.h"
#include "env/twin/institution.h"
#include "env/twin/scenario.h"
#include "env/twin/twin.h"
#include "tests/json_schema.h"
#include "tests/test_util.h"

namespace loantwin {
namespace {

using testing::ReadFile;
using testing::TempDir;

struct Result {
  int code;
  std::string output;
};

Result RunShell(const std::string& command) {
  const std::string cmd = command + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

Result RunCli(const std::string& args) {
  return RunShell(std::string(LOANTWIN_CLI) + " " + args);
}

TEST(Cli, SimulateResolvesFailuresOnRequest) {
  TempDir dir;
  const std::string base =
      "simulate --institution cu_small --scenario severe_recession --months 60 --paths 16 "
      "--policy random --seed 4 --threads 1 --out ";
  ASSERT_EQ(RunCli(base + dir.path() + "/open.csv").code, 0);
  const Result r = RunCli(base + dir.path() + "/resolved.csv --resolve-failures");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("institution failures"), std::string::npos) << r.output;
  EXPECT_NE(ReadFile(dir.path() + "/open.csv"), ReadFile(dir.path() + "/resolved.csv"))
      << "some of these paths fail, and their rows after failure differ";
  const Result bad =
      RunCli("simulate --months 6 --paths 2 --policy static --resolve-failures --out " +
             dir.path() + "/s.csv");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.output.find("--resolve-failures needs --policy baseline or random"),
            std::string::npos)
      << bad.output;
}

TEST(Cli, SimulateWritesCsvAndSummary) {
  TempDir dir;
  const std::string out = dir.path() + "/run.csv";
  const Result r = RunCli(
      "simulate --institution cu_small --scenario mild_recession --months 12 "
      "--paths 3 --seed 4 --threads 2 --check-invariants --out " +
      out);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("peak charge-off rate"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("minimum net worth ratio"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("capital (ncua regime): "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("cumulative net income"), std::string::npos);
  EXPECT_NE(r.output.find("invariant breaches: 0"), std::string::npos);
  const std::string csv = ReadFile(out);
  EXPECT_EQ(csv.rfind("path,month,unemployment,", 0), 0u);
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 3 * 12);
}

TEST(Cli, BandsLayoutAndScenarioByPath) {
  TempDir dir;
  const std::string out = dir.path() + "/bands.csv";
  const Result r =
      RunCli("simulate --institution " + std::string(LOANTWIN_SOURCE_DIR) +
             "/configs/institutions/cu_small.yaml --scenario " + std::string(LOANTWIN_SOURCE_DIR) +
             "/configs/scenarios/rate_shock.yaml --months 6 --paths 4 --output bands "
             "--out " +
             out);
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string csv = ReadFile(out);
  EXPECT_EQ(csv.rfind("month,metric,mean,p05,p50,p95\n", 0), 0u);
  EXPECT_NE(csv.find("\n6,cet1_ratio,"), std::string::npos);
}

TEST(Cli, SameSeedSameCsvAcrossThreadCounts) {
  TempDir dir;
  const std::string a = dir.path() + "/a.csv", b = dir.path() + "/b.csv";
  ASSERT_EQ(RunCli("simulate --months 8 --paths 3 --threads 1 --out " + a).code, 0);
  ASSERT_EQ(RunCli("simulate --months 8 --paths 3 --threads 2 --batch 2 --out " + b).code, 0);
  EXPECT_EQ(ReadFile(a), ReadFile(b));
}

TEST(Cli, VersionPrintsTheProjectVersion) {
  const Result r = RunCli("--version");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find(std::string("loantwin ") + LoantwinVersion()), std::string::npos)
      << r.output;
}

TEST(Cli, RunDirectoriesAreNeverMixedOrDamaged) {
  TempDir dir;
  const std::string run = dir.path() + "/run";
  const std::string exp =
      dir.File("exp.yaml",
               "name: r\nseed: 3\ntotal_steps: 256\nenv: {name: cartpole, num_envs: 2}\n"
               "roles:\n  agent: {agent: ppo, ppo: {num_steps: 32, hidden: [16]}}\n");
  ASSERT_EQ(RunCli("train " + exp + " --out " + run).code, 0);
  const std::string config = ReadFile(run + "/config.yaml");
  // A used directory is refused without --resume or --overwrite, and nothing is written.
  Result r = RunCli("train " + exp + " --out " + run);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("a used run directory"), std::string::npos) << r.output;
  // --resume with a different experiment: refused before anything is written, naming the key.
  const std::string other =
      dir.File("other.yaml",
               "name: r\nseed: 3\ntotal_steps: 512\nenv: {name: cartpole, num_envs: 2}\n"
               "roles:\n  agent: {agent: ppo, ppo: {num_steps: 32, hidden: [32]}}\n");
  r = RunCli("train " + other + " --resume " + run);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("roles.agent.ppo.hidden: [16] -> [32]"), std::string::npos) << r.output;
  EXPECT_EQ(ReadFile(run + "/config.yaml"), config);
  // A longer run of the same experiment resumes, and the log lists the accepted change.
  ASSERT_EQ(RunCli("train " + exp + " --resume " + run + " --total-steps 512").code, 0);
  EXPECT_NE(ReadFile(run + "/train.log").find("accepted change total_steps: 256 -> 512"),
            std::string::npos);
  // --overwrite starts over: the old checkpoints are gone.
  ASSERT_EQ(RunCli("train " + other + " --out " + run + " --overwrite").code, 0);
  EXPECT_NE(ReadFile(run + "/config.yaml").find("[32]"), std::string::npos);
  int checkpoints = 0;
  for (const auto& e : std::filesystem::directory_iterator(run + "/checkpoints"))
    checkpoints += e.path().extension() == ".pt";
  EXPECT_EQ(checkpoints, 1);
  // A failed command leaves no half-created run directory.
  const std::string bad =
      dir.File("bad.yaml", "name: b\nenv: {name: cartpole}\nroles: {nobody: ppo}\n");
  EXPECT_EQ(RunCli("train " + bad + " --out " + dir.path() + "/fresh").code, 2);
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/fresh"));
}

TEST(Cli, ResumeAfterACrashUsesTheLastGoodCheckpointAndLogsNoStepTwice) {
  TempDir dir;
  const std::string run = dir.path() + "/run";
  const std::string exp =
      dir.File("exp.yaml",
               "name: r\nseed: 3\ntotal_steps: 256\nenv: {name: cartpole, num_envs: 2}\n"
               "logging: {every_steps: 64}\ncheckpoint: {every_steps: 128, keep: 5}\n"
               "roles:\n  agent: {agent: ppo, ppo: {num_steps: 32, hidden: [16]}}\n");
  ASSERT_EQ(RunCli("train " + exp + " --out " + run).code, 0);
  const std::string newest = run + "/checkpoints/step_000000000256.pt";
  ASSERT_TRUE(std::filesystem::exists(run + "/checkpoints/step_000000000128.pt"));
  // What a crash (or a damaged disk) leaves: a torn newest checkpoint, a temporary file of a
  // writer that no longer runs (pids never exceed 2^22), a torn metrics row.
  std::filesystem::resize_file(newest, std::filesystem::file_size(newest) / 2);
  const std::string stale = run + "/checkpoints/step_000000000384.pt.tmp.9999999";
  std::ofstream(stale) << "partial";
  std::ofstream(run + "/metrics.csv", std::ios::app) << "320,1.0,charts/S";
  const Result r = RunCli("train " + exp + " --resume " + run);
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string log = ReadFile(run + "/train.log");
  EXPECT_NE(log.find("passed over an unreadable checkpoint: " + newest), std::string::npos) << log;
  EXPECT_NE(log.find("step_000000000128.pt at step 128 (the previous checkpoint)"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("removed " + stale), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(stale));
  // metrics.csv: every (step, key) once, the redone steps included, the torn row gone.
  std::set<std::pair<int64_t, std::string>> seen;
  std::istringstream csv(ReadFile(run + "/metrics.csv"));
  std::string row;
  std::getline(csv, row);
  EXPECT_EQ(row, "step,wall_seconds,key,value");
  while (std::getline(csv, row)) {
    const auto c1 = row.find(','), c2 = row.find(',', c1 + 1), c3 = row.find(',', c2 + 1);
    ASSERT_NE(c3, std::string::npos) << row;
    const int64_t step = std::stoll(row.substr(0, c1));
    EXPECT_LE(step, 256) << row;
    EXPECT_TRUE(seen.emplace(step, row.substr(c2 + 1, c3 - c2 - 1)).second) << "twice: " << row;
  }
  EXPECT_TRUE(seen.count({256, "charts/SPS"}));
  EXPECT_TRUE(seen.count({192, "charts/SPS"}));
}

TEST(Cli, ValuesAtTheirDocumentedBoundsRun) {
  // default_spread at its upper bound: the pricing role's positive offsets saturate there.
  TempDir dir;
  const std::string inst =
      dir.File("edge.yaml",
               "name: edge\nmembers: 2000\nproducts:\n  card:\n    initial_loans: 200\n"
               "    default_spread: 0.40\n  personal:\n    initial_loans: 100\n"
               "    default_spread: -0.05\n");
  const Result r = RunCli("simulate --institution " + inst +
                          " --policy random --months 6 --paths 3 --check-invariants");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("invariant breaches: 0"), std::string::npos) << r.output;
}

TEST(Cli, BadArgumentsGiveMessagesNotCrashes) {
  struct Case {
    std::string args, expect;
  };
  TempDir dir;
  const std::string bad_yaml =
      dir.File("bad.yaml", "name: x\nmembers: 10\nproducts:\n  carrd:\n    initial_loans: 1\n");
  const std::vector<Case> cases = {
      {"simulate --institution cu_nope", "unknown institution 'cu_nope'"},
      {"simulate --scenario nowhere", "unknown scenario 'nowhere'"},
      {"simulate --scenario /no/such/file.yaml", "no such file"},
      {"simulate --institution " + bad_yaml, "bad.yaml:4:3: key 'products.carrd': unknown key"},
      {"simulate --months 0", "--months"},
      {"simulate --months abc", "--months"},
      {"simulate --paths -3", "--paths"},
      {"simulate --seed -1", "--seed"},
      {"simulate --output wide", "--output"},
      {"simulate --threads x", "--threads"},
      {"simulate --bogus", "bogus"},
      {"frobnicate", "frobnicate"},
      {"", "subcommand"},
      {"simulate --months 2 --paths 1 --out /no/such/dir/run.csv", "cannot open"},
      {"train /no/such/experiment.yaml", "cannot open file"},
      {"train " + bad_yaml, "missing required key 'env'"},
      {"train " + std::string(LOANTWIN_SOURCE_DIR) +
           "/configs/cartpole_ppo.yaml --resume /no/such/run",
       "no such run directory"},
      {"train " + std::string(LOANTWIN_SOURCE_DIR) + "/configs/cartpole_ppo.yaml --total-steps 0",
       "--total-steps"},
      {"evaluate " + dir.path(), "neither a run directory (config.yaml) nor an export"},
      {"evaluate /no/such/run", "no such file or directory"},
      {"evaluate baseline --scenarios nowhere --paths 2 --months 2", "unknown scenario 'nowhere'"},
      {"evaluate baseline --paths 0", "--paths"},
      {"evaluate weights:3,3,0,0,3,0 --metric-bands --paths 2", "--metric-bands writes the twin's"},
      {"frontier", "runs"},
      {"frontier " + dir.path(), "neither a run directory"},
      {"frontier baseline --return profit", "--return"},
      {"sweep /no/such/sweep.yaml", "cannot open file"},
      {"export " + dir.path(), "not a run directory"},
      {"evaluate", "policies"},
      {"simulate --seed 99999999999999999999", "not a whole number from 0 to"},
      {"evaluate baseline --seed 18446744073709551616", "not a whole number"},
      {"train " + dir.path(), "is a directory; a YAML file is expected"},
      {"simulate --institution " + dir.path(), "is a directory"},
      {"simulate --months 2 --paths 1 --out " + dir.path(), "is a directory; give the path"},
      {"audit verify " + dir.path(), "is actually a directory"},
      {"audit verify /no/such/audit.log", "does not exist"},
  };
  for (const auto& c : cases) {
    const Result r = RunCli(c.args);
    EXPECT_NE(r.code, 0) << c.args << "\n" << r.output;
    EXPECT_LT(r.code, 128) << "crashed: " << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.args << "\n" << r.output;
  }
}

TEST(Cli, ErrorsAndLogsGoToStderrWithOnePrefixAndCode) {
  const std::string cli = LOANTWIN_CLI;
  // A value out of range, an unknown option, a missing value: "error: ..." on stderr, exit 2,
  // nothing on stdout.
  for (const char* args : {"simulate --months 0", "simulate --bogus", "simulate --seed", "train",
                           "simulate --seed 99999999999999999999"}) {
    const Result out = RunShell("(" + cli + " " + args + " 2>/dev/null)");
    EXPECT_EQ(out.code, 2) << args;
    EXPECT_EQ(out.output, "") << args;
    const Result err = RunShell("(" + cli + " " + args + " 2>&1 >/dev/null)");
    EXPECT_EQ(err.output.rfind("error: ", 0), 0u) << args << ": " << err.output;
    EXPECT_EQ(err.output.find("error: ", 1), std::string::npos) << err.output;
  }
  // A command's results on stdout, its log lines on stderr.
  TempDir dir;
  const Result out = RunShell("(" + cli + " evaluate baseline --paths 2 --months 3 --no-charts " +
                              "--out " + dir.path() + "/r 2>/dev/null)");
  ASSERT_EQ(out.code, 0) << out.output;
  EXPECT_NE(out.output.find("scenario"), std::string::npos) << out.output;
  for (const char* level : {"[info]", "[warning]", "[error]"})
    EXPECT_EQ(out.output.find(level), std::string::npos) << out.output;
}

TEST(Cli, EvaluateWritesTheReportFiles) {
  TempDir dir;
  const std::string scenario =
      dir.File("shock.yaml",
               ReadFile(std::string(LOANTWIN_SOURCE_DIR) + "/configs/scenarios/rate_shock.yaml"));
  const Result r = RunCli("evaluate baseline --scenarios steady_state," + scenario +
                          " --paths 6 --months 12 --institution cu_small --threads 2 --out " +
                          dir.path() + "/report");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("scenario steady_state"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("loan-months/s"), std::string::npos) << r.output;
  for (const char* f : {"report.json", "report.md", "report.html", "charts/steady_state-fan.svg",
                        "charts/rate_shock-macro.svg"})
    EXPECT_TRUE(std::filesystem::exists(dir.path() + "/report/" + f)) << f;
  const Result nocharts = RunCli(
      "evaluate baseline --scenarios steady_state --paths 2 --months 3 "
      "--no-charts --out " +
      dir.path() + "/plain");
  ASSERT_EQ(nocharts.code, 0) << nocharts.output;
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/plain/charts"));
  EXPECT_NE(ReadFile(dir.path() + "/plain/report.html").find("--no-charts"), std::string::npos);
}

TEST(Cli, SweepTrainsItsRunsAndDrawsTheFrontier) {
  TempDir dir;
  const std::string base = std::string(LOANTWIN_SOURCE_DIR) + "/configs/quickstart.yaml";
  const std::string sweep = dir.File(
      "sweep.yaml", "name: tiny_sweep\nbase: " + base + "\nout: " + dir.path() +
                        "/out\n"
                        "set:\n  env.num_envs: 8\n"
                        "  roles.pricing: baseline\n"
                        "runs:\n"
                        "  - name: a\n"
                        "    set: {roles.credit.rewards: {profit: 1.0}}\n"
                        "  - name: b\n"
                        "    set: {roles.credit.rewards: {profit: 1.0, expected_loss: 5.0}}\n"
                        "frontier: {scenario: mild_recession, paths: 6, months: 12}\n");
  const Result r = RunCli("sweep " + sweep + " --total-steps 480");
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string frontier = ReadFile(dir.path() + "/out/frontier/frontier.json");
  EXPECT_NE(frontier.find("\"policy\": \"a\""), std::string::npos) << frontier;
  EXPECT_NE(frontier.find("\"policy\": \"b\""), std::string::npos) << frontier;
  EXPECT_NE(frontier.find("\"kind\": \"baseline\""), std::string::npos) << frontier;
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/out/frontier/frontier.svg"));
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/out/a/checkpoints"));
  // The run's experiment records its override.
  EXPECT_NE(ReadFile(dir.path() + "/out/b/config.yaml").find("expected_loss"), std::string::npos);
  // Running it again resumes the finished runs instead of training from scratch.
  const Result again = RunCli("sweep " + sweep + " --total-steps 480 --no-frontier");
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_NE(again.output.find("(resuming)"), std::string::npos) << again.output;

  struct Case {
    std::string yaml, expect;
  };
  const std::vector<Case> bad = {
      {"name: s\nbase: " + base + "\nruns: [{name: a}]\nrunz: []\n",
       "sweep_bad.yaml:4:1: key 'runz': unknown key"},
      {"name: s\nbase: /no/such.yaml\nruns: [{name: a}]\n", "does not exist"},
      {"name: s\nbase: " + base + "\nruns: []\n", "non-empty list of runs"},
      {"name: s\nbase: " + base + "\nruns: [{name: a}, {name: a}]\n", "duplicate run name 'a'"},
      {"name: s\nbase: " + base +
           "\nruns:\n  - name: a\n    set: {roles.credit.rewards: {profitt: 1}}\n",
       "sweep_bad.yaml:4:5: key 'runs[0]': run 'a'"},
      {"name: s\nbase: " + base + "\nruns: [{name: a}]\nfrontier: {paths: 0}\n", "frontier.paths"},
  };
  for (const auto& c : bad) {
    const std::string file = dir.File("sweep_bad.yaml", c.yaml);
    const Result e = RunCli("sweep " + file + " --out " + dir.path() + "/bad");
    EXPECT_EQ(e.code, 2) << c.yaml << "\n" << e.output;
    EXPECT_NE(e.output.find(c.expect), std::string::npos) << c.yaml << "\n" << e.output;
  }
}

TEST(Cli, ServeAnswersReloadsOnSighupAndDrainsOnSigterm) {
  TempDir dir;
  ASSERT_EQ(RunCli("train " + std::string(LOANTWIN_SOURCE_DIR) + "/configs/quickstart.yaml --out " +
                   dir.path() + "/run --total-steps 640")
                .code,
            0);
  ASSERT_EQ(RunCli("export " + dir.path() + "/run --out " + dir.path() + "/bundle").code, 0);
  // A decision request built from the manifest's feature names.
  const auto manifest = nlohmann::json::parse(ReadFile(dir.path() + "/bundle/manifest.json"));
  nlohmann::json obs = nlohmann::json::object();
  for (const auto& f : manifest["roles"]["credit"]["observation"]["features"])
    obs[f.get<std::string>()] = 0.0;
  const std::string body = nlohmann::json{{"observation", obs}}.dump();
  dir.File("body.json", body);
  const int port = 20000 + static_cast<int>(::getpid() % 20000);
  const std::string send = "send() { exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port) +
                           "; printf \"$1\" >&3; "
                           "[ -n \"$2\" ] && cat \"$2\" >&3; cat <&3; exec 3>&-; echo; }; ";
  const std::string script =
      send + std::string(LOANTWIN_CLI) + " serve --bundle " + dir.path() + "/bundle --port " +
      std::to_string(port) + " --audit-log " + dir.path() + "/audit.log > " + dir.path() +
      "/serve.log 2>&1 & pid=$!; "
      "for i in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/" +
      std::to_string(port) +
      ") 2>/dev/null && break; sleep 0.1; done; "
      "send 'GET /readyz HTTP/1.0\\r\\n\\r\\n'; "
      "send 'POST /v1/roles/credit/decide HTTP/1.0\\r\\nContent-Type: application/json\\r\\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\\r\\n\\r\\n' " + dir.path() +
      "/body.json; "
      "kill -HUP $pid; sleep 1; "
      "send 'GET /metrics HTTP/1.0\\r\\n\\r\\n'; "
      "kill -TERM $pid; wait $pid; echo \"exit=$?\"; cat " +
      dir.path() + "/serve.log";
  const Result r = RunShell("bash " + dir.File("serve.sh", script));
  EXPECT_NE(r.output.find("\"status\":\"ready\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"decision_id\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("loantwin_reloads_total{result=\"ok\"} 1"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("exit=0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("shut down"), std::string::npos) << r.output;
  const Result v = RunCli("audit verify " + dir.path() + "/audit.log");
  EXPECT_EQ(v.code, 0) << v.output;
  EXPECT_NE(v.output.find("1 lines, hash chain intact"), std::string::npos) << v.output;
  dir.File("bad.log", "{\"prev\": \"0\"}\n");
  const Result bad = RunCli("audit verify " + dir.path() + "/bad.log");
  EXPECT_EQ(bad.code, 1) << bad.output;
  EXPECT_NE(bad.output.find("BROKEN at line 1"), std::string::npos) << bad.output;
  const Result missing = RunCli("serve --bundle " + dir.path() + "/nope --port 0");
  EXPECT_NE(missing.code, 0);
  EXPECT_NE(missing.output.find("cannot be read"), std::string::npos) << missing.output;
}

TEST(Cli, PolicyRunsPrintPerRoleRewardVectors) {
  for (const char* policy : {"baseline", "random"}) {
    const Result r = RunCli(std::string("simulate --institution cu_small --months 6 --paths 3 "
                                        "--check-invariants --policy ") +
                            policy);
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find(std::string("policy ") + policy), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("per-role rewards"), std::string::npos) << r.output;
    for (const char* s : {"risk", "portfolio", "pricing", "credit", "collection", "profit",
                          "concentration", "stability", "institution failures"})
      EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
  }
  const Result st = RunCli("simulate --months 3 --paths 2 --policy static");
  ASSERT_EQ(st.code, 0) << st.output;
  EXPECT_EQ(st.output.find("per-role rewards"), std::string::npos);
  const Result bad = RunCli("simulate --policy clever");
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.output.find("--policy"), std::string::npos) << bad.output;
}

TEST(Cli, ListShowsPresetsScenariosAndMetrics) {
  const Result r = RunCli("list");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* s :
       {"cu_mid", "marketplace_lender", "dfast_2025_severely_adverse", "capital_ratio",
        "card_charge_off_rate", "environments", "twin", "cartpole", "rewards", "raroc"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s;
}

}  // namespace
}  // namespace loantwin

namespace loantwin {
namespace {

/// Fenced blocks of a given language in a Markdown file.
std::vector<std::string> FencedBlocks(const std::string& file, const std::string& lang) {
  std::vector<std::string> blocks;
  std::istringstream in(ReadFile(file));
  std::string line, current;
  bool inside = false;
  while (std::getline(in, line)) {
    if (!inside && line == "```" + lang) {
      inside = true;
      current.clear();
    } else if (inside && line == "```") {
      inside = false;
      blocks.push_back(current);
    } else if (inside) {
      current += line + "\n";
    }
  }
  return blocks;
}

// snapshot -> sync: the synced institution opens with the preset's book and balance sheet, so
// its first months' metrics are the preset's (same seed and instance: the same random draws).
TEST(Cli, SnapshotSyncRoundTrip) {
  TempDir dir;
  const std::string snap = dir.path() + "/snap", synced = dir.path() + "/my_cu";
  Result r = RunCli("snapshot --institution cu_small --months 3 --seed 7 --out " + snap);
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string perf = testing::ReadFile(snap + "/performance.csv");
  EXPECT_NE(perf.find(",originated,"), std::string::npos);
  EXPECT_NE(perf.find(",charged_off,"), std::string::npos);
  EXPECT_NE(perf.find(",prepaid,"), std::string::npos);
  r = RunCli("sync --tape " + snap + "/tape.csv --balance-sheet " + snap +
             "/balance_sheet.yaml --as-of 2024-12 --out " + synced);
  ASSERT_EQ(r.code, 0) << r.output;
  const auto preset = LoadInstitution("cu_small");
  const auto loaded = LoadInstitution(synced);
  ASSERT_TRUE(loaded->book);
  const auto scenario = LoadScenario("steady_state");
  Twin a(preset, scenario, 7, 0), b(loaded, scenario, 7, 0);
  ASSERT_EQ(a.num_loans(), b.num_loans());
  std::vector<double> ma(kNumMetrics), mb(kNumMetrics);
  a.Snapshot(ma.data());
  b.Snapshot(mb.data());
  for (int month = 0; month <= 2; ++month) {
    if (month > 0) {
      a.Step(DefaultLevers(*preset), ma.data());
      b.Step(DefaultLevers(*loaded), mb.data());
    }
    for (int k = 0; k < kNumMetrics; ++k)
      EXPECT_NEAR(ma[k], mb[k], 1e-9 * std::max(1.0, std::abs(ma[k])))
          << "month " << month << " " << MetricName(k);
  }
  // A tape row the twin cannot hold is named by row and column; skip loads the rest.
  {
    std::ofstream(snap + "/tape.csv", std::ios::app)
        << "bad-1,personal,,12,,1000,0.1,fixed,36,,,C,45,current,,,false\n";
  }
  r = RunCli("sync --tape " + snap + "/tape.csv --balance-sheet " + snap +
             "/balance_sheet.yaml --as-of 2024-12 --out " + synced);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("column days_past_due: 45 days past due but status 'current'"),
            std::string::npos)
      << r.output;
  r = RunCli("sync --on-error skip --tape " + snap + "/tape.csv --balance-sheet " + snap +
             "/balance_sheet.yaml --as-of 2024-12 --out " + synced);
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("rejected (dpd inconsistent with status): 1"), std::string::npos)
      << r.output;
  EXPECT_NE(testing::ReadFile(synced + "/rejected.csv").find("bad-1"), std::string::npos);
}

TEST(Cli, HomeEquityFundSimulateEvaluateAndErrors) {
  TempDir dir;
  // Monthly bands do not depend on the thread count.
  const std::string a = dir.path() + "/a.csv", b = dir.path() + "/b.csv";
  ASSERT_EQ(RunCli("simulate --env home_equity_fund --paths 30 --threads 1 --out " + a).code, 0);
  Result r = RunCli("simulate --env home_equity_fund --paths 30 --threads 2 --profile --out " + b);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(testing::ReadFile(a), testing::ReadFile(b));
  for (const char* text : {"LP IRR", "senior notes IRR", "ES 95%", "loss by zone", "profile",
                           "exits (hazards, payoffs)"})
    EXPECT_NE(r.output.find(text), std::string::npos) << text << "\n" << r.output;
  // Twin-only options, a bad correlation matrix, weights for the wrong number of zones.
  r = RunCli("simulate --env home_equity_fund --months 12");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("--months applies to --env twin"), std::string::npos) << r.output;
  r = RunCli("simulate --config x.yaml");
  EXPECT_EQ(r.code, 1);
  const std::string bad = dir.path() + "/bad_fund.yaml";
  std::ofstream(bad) << "zones:\n  zones: [{name: a}, {name: b}, {name: c}]\n"
                        "  correlation: [[1, 0.9, 0.9], [0.9, 1, -0.9], [0.9, -0.9, 1]]\n";
  r = RunCli("simulate --env home_equity_fund --config " + bad);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("not positive definite"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("bad_fund.yaml"), std::string::npos) << r.output;
  r = RunCli("evaluate weights:1,1 --scenarios steady_state --paths 5");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("2 weights for the fund's 6 zones"), std::string::npos) << r.output;
  r = RunCli("frontier weights:3,3,0,0,3,0 --risk es_975 --paths 5");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("does not apply to the fund"), std::string::npos) << r.output;
  // The fund's stress report: the verdict first, the same paths for every policy.
  const std::string out = dir.path() + "/report";
  r = RunCli(
      "evaluate weights:3,3,0,0,3,0 --scenarios steady_state,mild_recession --paths 40 "
      "--out " +
      out);
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string md = testing::ReadFile(out + "/report.md");
  EXPECT_LT(md.find("## Verdict"), md.find("## Scenario: steady_state"));
  EXPECT_NE(md.find("MORE borrowing-base breaches in"), std::string::npos);
  const auto json = nlohmann::json::parse(testing::ReadFile(out + "/report.json"));
  EXPECT_EQ(json.at("environment"), "home_equity_fund");
  EXPECT_EQ(json.at("scenarios").size(), 2u);
  EXPECT_EQ(json.at("scenarios")[0].at("policies")[0].at("policy"), "baseline");
}

TEST(Cli, FairnessReportExplainAndAFairnessConstrainedCreditPolicy) {
  TempDir dir;
  const std::string src = LOANTWIN_SOURCE_DIR;
  // The fair-lending report: a tighter cutoff approves Black applicants at a lower rate.
  const Result f = RunCli(
      "fairness baseline cutoff:C --institution cu_small --paths 8 "
      "--months 24 --threads 1 --out " +
      dir.path() + "/fair");
  ASSERT_EQ(f.code, 0) << f.output;
  const auto fj = nlohmann::json::parse(ReadFile(dir.path() + "/fair/fairness.json"));
  EXPECT_EQ(fj["schema"], "loantwin.fairness");
  const auto& results = fj["scenarios"][0]["results"];
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0]["policy"], "baseline");
  EXPECT_LT(results[1]["min_adverse_impact_ratio"].get<double>(),
            results[0]["min_adverse_impact_ratio"].get<double>());
  EXPECT_TRUE(results[1]["vs_first"].contains("min_air"));
  EXPECT_EQ(results[0]["groups"].size(), 4u);
  EXPECT_EQ(fj["scenarios"][0]["frontier"].size(), 2u);
  EXPECT_NE(ReadFile(dir.path() + "/fair/fairness.md").find("Income and fairness frontier"),
            std::string::npos);
  // ... and as a section of the stress report.
  const Result ev = RunCli(
      "evaluate baseline --applicant-groups fed2007 --scenarios "
      "severe_recession --paths 4 --months 12 --no-charts --out " +
      dir.path() + "/report");
  ASSERT_EQ(ev.code, 0) << ev.output;
  EXPECT_NE(ReadFile(dir.path() + "/report/report.md").find("## Fair lending"), std::string::npos);
  for (const auto& [args, expect] : std::vector<std::pair<std::string, std::string>>{
           {"fairness cutoff:Q --paths 2", "the cutoff must be a band A..G or 'none'"},
           {"fairness baseline --paths 2 --applicant-groups nope", "nope"}}) {
    const Result bad = RunCli(args);
    EXPECT_NE(bad.code, 0) << args;
    EXPECT_NE(bad.output.find(expect), std::string::npos) << args << "\n" << bad.output;
  }

  // A credit policy trained for profit under fairness/min_air >= 0.7 meets it on held-out paths
  // (another seed), where the baseline does not.
  const Result t = RunCli("train " + src + "/configs/credit_fair.yaml --total-steps 200000 --out " +
                          dir.path() + "/run");
  ASSERT_EQ(t.code, 0) << t.output;
  const Result h = RunCli("fairness fair=" + dir.path() +
                          "/run --scenarios "
                          "steady_state,severe_recession --paths 40 --months 36 --seed 77 "
                          "--threads 2 --out " +
                          dir.path() + "/heldout");
  ASSERT_EQ(h.code, 0) << h.output;
  const auto hj = nlohmann::json::parse(ReadFile(dir.path() + "/heldout/fairness.json"));
  for (const auto& sc : hj["scenarios"]) {
    ASSERT_EQ(sc["results"].size(), 2u);
    EXPECT_LT(sc["results"][0]["min_adverse_impact_ratio"].get<double>(), 0.7) << sc["name"];
    EXPECT_GE(sc["results"][1]["min_adverse_impact_ratio"].get<double>(), 0.7) << sc["name"];
  }

  // Adverse-action reasons for an application under the exported policy.
  ASSERT_EQ(RunCli("export " + dir.path() + "/run --out " + dir.path() + "/bundle").code, 0);
  const auto manifest = nlohmann::json::parse(ReadFile(dir.path() + "/bundle/manifest.json"));
  nlohmann::json state = nlohmann::json::object();
  for (const auto& feature : manifest["roles"]["credit"]["observation"]["features"])
    state[feature.get<std::string>()] = 0.0;
  nlohmann::json app = {{"product", "personal"}, {"amount", 1e6},   {"term_months", 36},
                        {"band", "A"},           {"income", 90000}, {"state", state}};
  const std::string file = dir.File("app.json", app.dump());
  const Result x = RunCli("explain " + dir.path() + "/bundle --obs " + file);
  ASSERT_EQ(x.code, 0) << x.output;
  EXPECT_NE(x.output.find("decision: decline (rule:amount_limit"), std::string::npos) << x.output;
  EXPECT_NE(x.output.find("1. AM01"), std::string::npos) << x.output;
  app["amount"] = 5000;
  app["term_months"] = 7;
  dir.File("app.json", app.dump());
  const Result xj = RunCli("explain " + dir.path() + "/bundle --obs " + file + " --json");
  ASSERT_EQ(xj.code, 0) << xj.output;
  const auto body = nlohmann::json::parse(xj.output.substr(xj.output.find('{')));
  EXPECT_EQ(body["decided_by"], "rule:term_not_offered");
  EXPECT_EQ(body["reasons"][0]["code"], "TM01");
  // Bad files and applications are named.
  dir.File("bad.json", "{\"product\": ");
  dir.File("odd.json", "{\"product\": \"personal\", \"colour\": 1}");
  for (const auto& [args, expect] : std::vector<std::pair<std::string, std::string>>{
           {"--obs " + dir.path() + "/missing.json", "missing.json: cannot be read"},
           {"--obs " + dir.path() + "/bad.json", "bad.json: not valid JSON"},
           {"--obs " + dir.path() + "/odd.json", "unknown key 'colour'"}}) {
    const Result bad = RunCli("explain " + dir.path() + "/bundle " + args);
    EXPECT_NE(bad.code, 0) << args;
    EXPECT_NE(bad.output.find(expect), std::string::npos) << args << "\n" << bad.output;
  }
}

TEST(Cli, ValidatePackHasEverySectionAndItsJsonValidates) {
  TempDir dir;
  const std::string src = LOANTWIN_SOURCE_DIR;
  ASSERT_EQ(RunCli("train " + src + "/configs/quickstart.yaml --out " + dir.path() +
                   "/run --total-steps 640")
                .code,
            0);
  const Result v = RunCli("validate " + dir.path() + "/run --out " + dir.path() +
                          "/pack --scenarios severe_recession --paths 6 --months 12 --seeds 1 "
                          "--sensitivity-steps 640 --calibration-paths 2 --backtest-paths 2 "
                          "--threads 2");
  ASSERT_EQ(v.code, 0) << v.output;
  EXPECT_NE(v.output.find("wrote " + dir.path() + "/pack/validation.json"), std::string::npos)
      << v.output;
  const auto pack = nlohmann::json::parse(ReadFile(dir.path() + "/pack/validation.json"));
  const auto schema =
      nlohmann::json::parse(ReadFile(src + "/docs/schemas/validation.schema.json"));
  EXPECT_EQ(testing::ValidateJson(pack, schema, schema), "");
  for (const char* section :
       {"purpose_and_scope", "data_and_environment", "training", "conceptual_soundness",
        "outcomes_analysis", "sensitivity", "fairness", "limitations", "reproduce"})
    EXPECT_TRUE(pack.contains(section)) << section;
  EXPECT_EQ(pack["training"]["config_sha256"].get<std::string>().size(), 64u);
  EXPECT_EQ(pack["outcomes_analysis"]["scenarios"][0]["policies"].size(), 2u);
  EXPECT_EQ(pack["sensitivity"]["seeds"].size(), 2u);  // the run's seed and one more
  EXPECT_FALSE(pack["conceptual_soundness"]["calibration"].empty());
  EXPECT_FALSE(pack["conceptual_soundness"]["historic_backtest"]["checks"].empty());
  EXPECT_EQ(pack["fairness"]["scenarios"][0]["policies"].size(), 2u);
  // A broken pack fails the schema (the check is not vacuous).
  auto broken = pack;
  broken.erase("sensitivity");
  EXPECT_NE(testing::ValidateJson(broken, schema, schema), "");
  const std::string html = ReadFile(dir.path() + "/pack/validation.html");
  for (const char* heading :
       {"1. Purpose and scope", "2. Data and environment", "3. Training configuration",
        "4. Conceptual soundness", "5. Outcomes analysis", "6. Sensitivity across training seeds",
        "7. Fairness summary", "8. Limitations", "9. Reproduce"})
    EXPECT_NE(html.find(heading), std::string::npos) << heading;
  EXPECT_EQ(html.find("<script"), std::string::npos);  // offline, self-contained
  // Errors name the problem.
  const Result none = RunCli("validate " + dir.path() + "/nothing");
  EXPECT_NE(none.code, 0);
  EXPECT_NE(none.output.find("not a run directory"), std::string::npos) << none.output;
  ASSERT_EQ(RunCli("train " + src + "/configs/cartpole_ppo.yaml --out " + dir.path() +
                   "/cp --total-steps 500")
                .code,
            0);
  const Result cp = RunCli("validate " + dir.path() + "/cp");
  EXPECT_EQ(cp.code, 2) << cp.output;
  EXPECT_NE(cp.output.find("validate needs a twin run"), std::string::npos) << cp.output;
}

TEST(Docs, EveryCommandInTheDocsRuns) {
  TempDir dir;
  // Relative config paths in the examples resolve against the repository root.
  std::filesystem::create_directory_symlink(std::string(LOANTWIN_SOURCE_DIR) + "/configs",
                                            dir.path() + "/configs");
  int commands = 0;
  for (const char* doc :
       {"docs/cli.md", "README.md", "docs/stress-testing.md", "docs/distributed.md",
        "docs/digital-twin.md", "docs/fund-model.md", "docs/governance.md"}) {
    for (const auto& block : FencedBlocks(std::string(LOANTWIN_SOURCE_DIR) + "/" + doc, "sh")) {
      std::istringstream lines(block);
      std::string line, cmd;
      while (std::getline(lines, line)) {
        const bool continued = !line.empty() && line.back() == '\\';
        cmd += continued ? line.substr(0, line.size() - 1) : line;
        if (continued) continue;
        const size_t pos = cmd.find("loantwin ");
        if (pos != std::string::npos && cmd.find("make ") == std::string::npos) {
          std::string args = cmd.substr(pos + 9);
          args = args.substr(0, args.find('#'));
          const Result r = RunShell("cd " + dir.path() + " && " + LOANTWIN_CLI + " " + args);
          EXPECT_EQ(r.code, 0) << doc << ": " << cmd << "\n" << r.output;
          ++commands;
        }
        cmd.clear();
      }
    }
  }
  EXPECT_GE(commands, 7);
}

TEST(Docs, EveryYamlExampleLoadsAndRuns) {
  TempDir dir;
  int examples = 0;
  for (const char* doc : {"docs/institutions.md", "docs/scenarios.md"}) {
    for (const auto& block : FencedBlocks(std::string(LOANTWIN_SOURCE_DIR) + "/" + doc, "yaml")) {
      const std::string file = dir.File("example" + std::to_string(examples++) + ".yaml", block);
      const bool scenario = block.find("\npaths:") != std::string::npos;
      const Result r = RunCli(std::string("simulate --months 6 --paths 2 --check-invariants ") +
                              (scenario ? "--scenario " : "--institution ") + file);
      EXPECT_EQ(r.code, 0) << doc << "\n" << block << "\n" << r.output;
    }
  }
  EXPECT_GE(examples, 2);
}

TEST(Docs, EveryExperimentExampleTrains) {
  TempDir dir;
  int examples = 0;
  for (const char* doc : {"docs/agents/dqn.md", "docs/agents/muzero.md"}) {
    for (const auto& block : FencedBlocks(std::string(LOANTWIN_SOURCE_DIR) + "/" + doc, "yaml")) {
      const std::string n = std::to_string(examples++);
      const std::string file = dir.File("experiment" + n + ".yaml", block);
      const Result r =
          RunCli("train " + file + " --total-steps 2000 --out " + dir.path() + "/run" + n);
      EXPECT_EQ(r.code, 0) << doc << "\n" << block << "\n" << r.output;
    }
  }
  EXPECT_GE(examples, 2);
}

}  // namespace
}  // namespace loantwin
