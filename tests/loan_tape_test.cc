// Loan tapes: ingest validation (every rejected row names its row, column and reason), the skip
// mode's counts, the shipped Freddie Mac mapping, and a synced book opening the twin.

#include "env/twin/loan_tape.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/config_error.h"
#include "env/twin/institution.h"
#include "env/twin/scenario.h"
#include "env/twin/twin.h"
#include "tests/test_util.h"

namespace loantwin {
namespace {

using testing::TempDir;

const char* kHeader =
    "loan_id,product,origination_date,current_balance,rate,rate_type,term_months,score,"
    "days_past_due,status,collateral_value,credit_limit\n";

std::array<ProductSpec, kNumProducts> Specs() {
  const auto inst = LoadInstitution("cu_mid");
  std::array<ProductSpec, kNumProducts> specs;
  for (int p = 0; p < kNumProducts; ++p) specs[p] = inst->products[p].spec;
  return specs;
}

IngestResult Ingest(const std::string& tape, OnError on_error = OnError::kFail,
                    const TapeMapping& mapping = DefaultTapeMapping()) {
  IngestOptions o;
  o.tape = tape;
  o.as_of = "2024-12";
  o.on_error = on_error;
  return IngestTape(o, mapping, Specs());
}

std::string GoodRows() {
  return "H1,home,2020-06,180000,0.045,fixed,360,745,0,current,260000,\n"
         "C1,card,2019-01,2500,0.17,variable,,702,30,delinquent,,8000\n"
         "A1,auto,2023-03,14000,0.065,fixed,60,655,0,current,21000,\n";
}

TEST(LoanTape, AGoodTapeLoadsEveryLoan) {
  TempDir dir;
  const IngestResult r = Ingest(dir.File("t.csv", kHeader + GoodRows()));
  EXPECT_EQ(r.rows, 3);
  EXPECT_EQ(r.accepted, 3);
  ASSERT_EQ(r.book->loans[kHome].size(), 1u);
  const TapeLoan& h = r.book->loans[kHome][0];
  EXPECT_EQ(h.id, "H1");
  EXPECT_EQ(h.age, 54);  // 2020-06 -> 2024-12
  EXPECT_EQ(h.remaining, 360 - 54);
  EXPECT_EQ(h.band, 1);  // 745: B
  EXPECT_DOUBLE_EQ(h.collateral, 260000);
  const TapeLoan& c = r.book->loans[kCard][0];
  EXPECT_EQ(c.months_past_due, 1);
  EXPECT_DOUBLE_EQ(c.collateral, 8000);        // the limit
  EXPECT_EQ(r.book->loans[kAuto][0].band, 4);  // 655: E
  EXPECT_DOUBLE_EQ(r.balance, 180000 + 2500 + 14000);
}

// Each validation error names its row, its column and the reason.
TEST(LoanTape, EveryRejectedRowNamesRowColumnAndReason) {
  struct Case {
    std::string row, column, reason;
  };
  const std::vector<Case> cases = {
      {"X1,home,2020-13,180000,0.045,fixed,360,745,0,current,260000,", "origination_date",
       "bad date"},
      {"X1,home,2020-06,-5,0.045,fixed,360,745,0,current,260000,", "current_balance",
       "negative balance"},
      {"X1,heloc,2020-06,180000,0.045,fixed,360,745,0,current,260000,", "product",
       "unknown product"},
      {"X1,home,2020-06,180000,0.045,fixed,360,745,45,current,260000,", "days_past_due",
       "dpd inconsistent with status"},
      {"H1,home,2020-06,180000,0.045,fixed,360,745,0,current,260000,", "loan_id", "duplicate id"},
      {"X1,home,2020-06,180000,4.5,fixed,360,745,0,current,260000,", "rate", "out of range"},
      {"X1,home,2020-06,180000,0.045,variable,360,745,0,current,260000,", "rate_type",
       "rate type mismatch"},
      {"X1,home,2020-06,180000,0.045,fixed,360,745,200,delinquent,260000,", "days_past_due",
       "past charge-off"},
      {"X1,home,2020-06,180000,0.045,fixed,360,745,0,current,,", "collateral_value",
       "missing value"},
      {"X1,card,2020-06,1800,0.17,variable,,745,0,current,,", "credit_limit", "missing value"},
      {"X1,home,2025-06,180000,0.045,fixed,360,745,0,current,260000,", "origination_date",
       "after as-of"},
      {"X1,home,2020-06,18O000,0.045,fixed,360,745,0,current,260000,", "current_balance",
       "bad number"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.row);
    TempDir dir;
    const std::string tape = dir.File("t.csv", kHeader + GoodRows() + c.row + "\n");
    try {
      Ingest(tape);
      ADD_FAILURE() << "accepted";
    } catch (const ConfigError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("row 4 (line 5), column " + c.column), std::string::npos) << msg;
      EXPECT_NE(msg.find(c.reason + ": 1"), std::string::npos) << msg;
    }
    // skip: the good rows load, the bad one is counted under its reason.
    const IngestResult r = Ingest(tape, OnError::kSkip);
    EXPECT_EQ(r.accepted, 3);
    EXPECT_EQ(r.rejected_by_reason.at(c.reason), 1);
    ASSERT_EQ(r.rejections.size(), 1u);
    EXPECT_EQ(r.rejections[0].row, 4);
    EXPECT_EQ(r.rejections[0].column, c.column);
    EXPECT_EQ(r.rejections[0].text, c.row);
  }
}

TEST(LoanTape, AMissingRequiredColumnIsNamed) {
  TempDir dir;
  const std::string tape =
      dir.File("t.csv",
               "loan_id,product,origination_date,rate,rate_type,term_months,score,"
               "days_past_due\nH1,home,2020-06,0.045,fixed,360,745,0\n");
  try {
    Ingest(tape);
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("no column supplies 'current_balance'"), std::string::npos)
        << e.what();
  }
  // A mapping naming a column the header lacks.
  const std::string map = dir.File("m.yaml", "columns:\n  loan_id: LoanNumber\n");
  try {
    Ingest(tape, OnError::kFail, LoadTapeMapping(map));
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("the column 'LoanNumber'"), std::string::npos) << e.what();
  }
}

TEST(LoanTape, ClosedLoansAreExcludedAndCountedNotRejected) {
  TempDir dir;
  const IngestResult r =
      Ingest(dir.File("t.csv", kHeader + GoodRows() +
                                   "P1,home,2020-06,0,0.045,fixed,360,745,0,current,260000,\n"
                                   "P2,card,2020-06,10,0.17,variable,,745,0,charged_off,,500\n"));
  EXPECT_EQ(r.accepted, 3);
  EXPECT_EQ(r.excluded, 2);
  EXPECT_EQ(r.excluded_by_reason.at("zero balance"), 1);
  EXPECT_EQ(r.excluded_by_reason.at("closed"), 1);
  EXPECT_TRUE(r.rejected_by_reason.empty());
}

// A few rows in Freddie Mac's layout (origination file + monthly performance file) load through
// the shipped mapping.
TEST(LoanTape, FreddieMacLayoutLoadsThroughTheShippedMapping) {
  TempDir dir;
  auto orig = [](const std::string& score, const std::string& first_pay, const std::string& upb,
                 const std::string& ltv, const std::string& rate, const std::string& amort,
                 const std::string& id, const std::string& term) {
    // 32 fields: 1 score, 2 first payment, ..., 11 UPB, 12 LTV, 13 rate, 16 amortization type,
    // 20 loan sequence number, 22 term.
    std::vector<std::string> f(32, "");
    f[0] = score, f[1] = first_pay, f[2] = "N", f[3] = "205007", f[10] = upb, f[11] = ltv;
    f[12] = rate, f[15] = amort, f[16] = "CA", f[19] = id, f[21] = term;
    std::string line;
    for (size_t i = 0; i < f.size(); ++i) line += (i ? "|" : "") + f[i];
    return line + "\n";
  };
  auto perf = [](const std::string& id, const std::string& period, const std::string& upb,
                 const std::string& dq, const std::string& age, const std::string& rem,
                 const std::string& mod, const std::string& rate) {
    std::vector<std::string> f(32, "");
    f[0] = id, f[1] = period, f[2] = upb, f[3] = dq, f[4] = age, f[5] = rem, f[7] = mod;
    f[10] = rate;
    std::string line;
    for (size_t i = 0; i < f.size(); ++i) line += (i ? "|" : "") + f[i];
    return line + "\n";
  };
  const std::string origination =
      orig("745", "202007", "300000", "80", "3.125", "FRM", "F20Q20000001", "360") +
      orig("9999", "202008", "200000", "75", "3.250", "FRM", "F20Q20000002", "360") +
      orig("690", "202009", "250000", "90", "3.000", "FRM", "F20Q30000003", "360") +
      orig("720", "202009", "150000", "95", "3.375", "FRM", "F20Q30000004", "360") +
      orig("701", "202010", "120000", "60", "2.875", "FRM", "F20Q40000005", "360");
  const std::string performance =
      perf("F20Q20000001", "202411", "280000.00", "0", "52", "308", "", "3.125") +
      perf("F20Q20000001", "202412", "279500.00", "0", "53", "307", "", "3.125") +
      perf("F20Q20000002", "202412", "190000.00", "0", "52", "308", "", "3.250") +
      perf("F20Q30000003", "202412", "240000.00", "2", "51", "309", "Y", "2.750") +
      perf("F20Q30000004", "202412", "0.00", "0", "51", "309", "", "3.375");  // paid off
  // F20Q40000005 has no row for 2024-12 (terminated earlier).
  IngestOptions o;
  o.tape = dir.File("orig.txt", origination);
  o.join = dir.File("perf.txt", performance);
  o.as_of = "2024-12";
  o.on_error = OnError::kSkip;
  const TapeMapping mapping =
      LoadTapeMapping(std::string(LOANTWIN_SOURCE_DIR) + "/configs/mappings/freddie_mac.yaml");
  const IngestResult r = IngestTape(o, mapping, Specs());
  EXPECT_EQ(r.rows, 5);
  EXPECT_EQ(r.accepted, 2);
  EXPECT_EQ(r.excluded, 2);                                // zero UPB, no 2024-12 row
  EXPECT_EQ(r.rejected_by_reason.at("missing value"), 1);  // score 9999
  const auto& home = r.book->loans[kHome];
  ASSERT_EQ(home.size(), 2u);
  EXPECT_EQ(home[0].id, "F20Q20000001");
  EXPECT_DOUBLE_EQ(home[0].balance, 279500);  // the 2024-12 row, not 2024-11
  EXPECT_NEAR(home[0].rate, 0.03125, 1e-12);
  EXPECT_EQ(home[0].age, 54);  // originated 2020-06 (first payment 2020-07)
  EXPECT_EQ(home[0].remaining, 307);
  EXPECT_NEAR(home[0].collateral, 375000, 1e-6);  // 300,000 / 80%
  EXPECT_EQ(home[0].band, 1);
  EXPECT_FALSE(home[0].restructured);
  EXPECT_EQ(home[1].id, "F20Q30000003");
  EXPECT_EQ(home[1].months_past_due, 2);
  EXPECT_TRUE(home[1].restructured);
}

// A synced book opens the twin with exactly its loans, and the balance sheet's ratios.
TEST(LoanTape, ASyncedBookOpensTheTwin) {
  TempDir dir;
  dir.File("book.csv", std::string(kHeader) + GoodRows());
  const std::string yaml = dir.File("institution.yaml",
                                    "name: tape_cu\nbase: cu_mid\nas_of: 2024-12\nbook: book.csv\n"
                                    "products:\n  home: {initial_loans: 1}\n  card: "
                                    "{initial_loans: 1}\n  auto: {initial_loans: 1}\n"
                                    "balance_sheet: {equity_to_assets: 0.1, liquid_share: 0.2, "
                                    "borrowings_share: 0.05}\n");
  const auto inst = LoadInstitution(dir.path());
  ASSERT_TRUE(inst->book);
  EXPECT_FALSE(inst->products[kPersonal].offered);
  TwinOptions opt;
  opt.check_invariants = true;
  Twin twin(inst, LoadScenario("steady_state"), 1, 0, opt);
  EXPECT_EQ(twin.num_loans(), 3);
  EXPECT_DOUBLE_EQ(twin.book(kHome).balance[0], 180000);
  EXPECT_NEAR(twin.CollateralValue(kHome, 0), 260000, 1e-6);
  EXPECT_NEAR(twin.CollateralValue(kAuto, 0), 21000, 1e-6);
  EXPECT_EQ(twin.book(kCard).bucket[0], 1);
  std::vector<double> m(kNumMetrics);
  twin.Snapshot(m.data());
  EXPECT_NEAR(m[kLeverageRatio], 0.1, 1e-9);
  EXPECT_NEAR(m[kWholesale] / m[kTotalAssets], 0.05, 1e-9);
  for (int t = 0; t < 12; ++t) twin.Step(DefaultLevers(*inst), m.data());  // invariants hold

  // initial_loans must agree with the book.
  dir.File("institution.yaml",
           "name: tape_cu\nbase: cu_mid\nas_of: 2024-12\nbook: book.csv\nproducts:\n  home: "
           "{initial_loans: 2}\n  card: {initial_loans: 1}\n  auto: {initial_loans: 1}\n");
  try {
    LoadInstitution(dir.path());
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("products.home.initial_loans is 2 but the book has 1"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace loantwin
