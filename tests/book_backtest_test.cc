// The loop on synthetic data: a twin with known departures from the preset writes a snapshot,
// the preset's institution is synced to its tape, fitting recovers the departures, and the
// fitted institution backtests better than the preset.

#include "env/twin/book_backtest.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "core/config_error.h"
#include "env/twin/institution.h"
#include "env/twin/loan_tape.h"
#include "tests/test_util.h"

namespace loantwin {
namespace {

using testing::TempDir;

/// Writes an institution over `tape` with the preset cu_mid's economics, as sync would.
std::string SyncedDir(const TempDir& dir, const std::string& name, const std::string& tape) {
  const std::string out = dir.path() + "/" + name;
  std::filesystem::create_directories(out);
  std::filesystem::copy_file(tape, out + "/book.csv");
  IngestOptions io;
  io.tape = tape;
  io.as_of = "2024-12";
  std::array<ProductSpec, kNumProducts> specs;
  const auto preset = LoadInstitution("cu_mid");
  for (int p = 0; p < kNumProducts; ++p) specs[p] = preset->products[p].spec;
  const IngestResult r = IngestTape(io, DefaultTapeMapping(), specs);
  std::string yaml =
      fmt::format("name: {}\nbase: cu_mid\nas_of: \"2024-12\"\nbook: book.csv\nproducts:\n", name);
  for (int p = 0; p < kNumProducts; ++p)
    if (!r.book->loans[p].empty())
      yaml +=
          fmt::format("  {}: {{initial_loans: {}}}\n", kProductNames[p], r.book->loans[p].size());
  std::ofstream(out + "/institution.yaml") << yaml;
  return out;
}

TEST(BookBacktest, FittingRecoversKnownMultipliersAndLowersTheBacktestError) {
  TempDir dir;
  const auto preset = LoadInstitution("cu_mid");
  const ProductSpec& card = preset->products[kCard].spec;
  const ProductSpec& home = preset->products[kHome].spec;
  // The "actual" lender: card roll rates x1.3 and home prepayment x0.7 of the preset's.
  const std::string truth = dir.File(
      "truth.yaml",
      fmt::format("name: truth\nbase: cu_mid\nproducts:\n  personal: {{initial_loans: 3000}}\n"
                  "  auto: {{initial_loans: 5000}}\n  home:\n    initial_loans: 6000\n"
                  "    prepay_cpr: {}\n  card:\n    initial_loans: 6000\n"
                  "    roll_forward: [{}, {}]\n",
                  home.prepay_cpr * 0.7, card.roll_forward[0] * 1.3, card.roll_forward[1] * 1.3));
  SnapshotOptions so;
  so.institution = truth;
  so.scenario = "steady_state";
  so.months = 36;
  so.seed = 11;
  so.out = dir.path() + "/snap";
  WriteSnapshot(so);
  const std::string synced = SyncedDir(dir, "my_cu", so.out + "/tape.csv");
  const auto inst = LoadInstitution(synced);
  const Performance perf = LoadPerformance(so.out + "/performance.csv", *inst);
  EXPECT_EQ(perf.months, 36);
  const auto fits = FitMultipliers(inst, perf, "steady_state", so.seed);
  const ProductFit* card_fit = nullptr;
  const ProductFit* home_fit = nullptr;
  for (const auto& f : fits) {
    if (f.product == kCard) card_fit = &f;
    if (f.product == kHome) home_fit = &f;
  }
  ASSERT_TRUE(card_fit && home_fit);
  for (const auto& f : fits)
    std::printf("%s: entry %.3f roll %.3f (se %.3f) cure %.3f prepay %.3f (se %.3f)\n",
                kProductNames[f.product], f.entry.value, f.roll.value, f.roll.se, f.cure.value,
                f.prepay.value, f.prepay.se);
  EXPECT_NEAR(card_fit->roll.value, 1.3, 0.13) << card_fit->roll.se;
  EXPECT_NEAR(home_fit->prepay.value, 0.7, 0.07) << home_fit->prepay.se;
  // Transitions the truth left alone stay near 1.
  EXPECT_NEAR(home_fit->roll.value, 1.0, 0.15);
  EXPECT_NEAR(card_fit->prepay.value, 1.0, 0.10);

  const std::string fitted_dir = dir.path() + "/fitted";
  std::filesystem::create_directories(fitted_dir);
  std::filesystem::copy_file(synced + "/book.csv", fitted_dir + "/book.csv");
  std::ofstream(fitted_dir + "/institution.yaml") << FittedInstitutionYaml(*inst, synced, fits);
  const auto fitted = LoadInstitution(fitted_dir);
  EXPECT_NEAR(fitted->products[kCard].spec.roll_forward[0], card.roll_forward[0] * 1.3,
              card.roll_forward[0] * 0.13);

  BookBacktestOptions bo;
  bo.scenario = "steady_state";
  bo.paths = 8;
  bo.seed = so.seed;
  const auto before = RunBookBacktest(inst, perf, bo);
  const auto after =
      RunBookBacktest(fitted, LoadPerformance(so.out + "/performance.csv", *fitted), bo);
  std::printf("transition MAPE before %.4f after %.4f; quarters %.4f after %.4f\n",
              before.transition_mape, after.transition_mape, before.quarterly_transition_mape,
              after.quarterly_transition_mape);
  EXPECT_LT(after.quarterly_transition_mape, before.quarterly_transition_mape);
  EXPECT_LT(after.transition_mape, before.transition_mape);
  auto mape = [](const BookBacktestResult& r, int p, int metric) {
    for (const auto& c : r.metrics)
      if (c.product == p && c.metric == metric) return c.mape;
    return -1.0;
  };
  EXPECT_LT(mape(after, kCard, kBmRoll30to60), mape(before, kCard, kBmRoll30to60));
  EXPECT_LT(mape(after, kHome, kBmPrepayRate), mape(before, kHome, kBmPrepayRate));
  // Balances by product and score band: every band of the book, months in order.
  EXPECT_FALSE(after.segments.empty());
  for (const auto& c : after.segments) EXPECT_EQ(c.actual.size(), 36u);
  // PD calibration and PSI are reported for every offered product.
  EXPECT_FALSE(after.calibration.empty());
  for (const auto& b : after.calibration) EXPECT_LE(b.lo, b.hi);
}

TEST(BookBacktest, MalformedPerformanceRowsAreNamed) {
  TempDir dir;
  SnapshotOptions so;
  so.institution = "cu_small";
  so.months = 2;
  so.out = dir.path() + "/snap";
  WriteSnapshot(so);
  const std::string synced = SyncedDir(dir, "s", so.out + "/tape.csv");
  (void)synced;
  // SyncedDir uses cu_mid's economics; cu_small's products are a subset.
  const auto inst = LoadInstitution(dir.path() + "/s");
  const std::string bad =
      dir.File("bad.csv",
               "loan_id,product,month,balance,days_past_due,event,amount\n"
               "personal-0,personal,1,100,0,,\npersonal-1,personal,x,100,0,,\n");
  try {
    LoadPerformance(bad, *inst);
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("row 2 (line 3), column month"), std::string::npos)
        << e.what();
  }
  const std::string wrong = dir.File("wrong.csv", "id,month\n");
  EXPECT_THROW(LoadPerformance(wrong, *inst), ConfigError);
  const std::string event = dir.File("event.csv",
                                     "loan_id,product,month,balance,days_past_due,event,amount\n"
                                     "personal-0,personal,1,100,0,defaulted,\n");
  try {
    LoadPerformance(event, *inst);
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("column event: 'defaulted' is not an event"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace loantwin
