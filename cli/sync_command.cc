// `loantwin sync`: a lender's loan tape and balance sheet become an institution every command
// accepts (--institution DIR/), and `loantwin snapshot`: the twin's book as a tape plus its
// monthly loan-level performance (docs/digital-twin.md).

#include <fmt/format.h>

#include <filesystem>
#include <ostream>
#include <unordered_map>

#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/config_error.h"
#include "env/twin/book_backtest.h"
#include "env/twin/institution.h"
#include "env/twin/loan_tape.h"
#include "env/twin/scenario.h"
#include "env/twin/twin.h"

namespace loantwin::cli {
namespace {

namespace fs = std::filesystem;

std::string CsvQuote(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

/// A preset named by the balance sheet: a name, or a path relative to the balance-sheet file.
std::string ResolveBase(const BalanceSheet& bs) {
  if (bs.base.find('/') == std::string::npos && bs.base.find(".yaml") == std::string::npos &&
      bs.base.find(".yml") == std::string::npos)
    return bs.base;  // a preset name
  fs::path p(bs.base);
  if (p.is_relative()) p = fs::path(bs.file).parent_path() / p;
  return fs::absolute(p).lexically_normal().string();
}

struct SyncOptions {
  std::string tape, mapping, join, balance_sheet, as_of, out, on_error = "fail", rejected;
};

int RunSync(const SyncOptions& o) {
  const BalanceSheet bs = LoadBalanceSheet(o.balance_sheet);
  const std::string base_name = ResolveBase(bs);
  std::shared_ptr<const InstitutionConfig> base;
  try {
    base = LoadInstitution(base_name);
  } catch (const ConfigError& e) {
    throw ConfigError(fmt::format("{}: base '{}': {}", o.balance_sheet, bs.base, e.what()));
  }
  if (base->book)
    throw ConfigError(
        fmt::format("{}: base '{}' is itself a synced institution; name the preset "
                    "it was synced from",
                    o.balance_sheet, bs.base));
  std::array<ProductSpec, kNumProducts> specs;
  for (int p = 0; p < kNumProducts; ++p)
    specs[p] = base->products[p].offered ? base->products[p].spec : DefaultProductSpec(Product(p));
  const TapeMapping mapping = o.mapping.empty() ? DefaultTapeMapping() : LoadTapeMapping(o.mapping);
  IngestOptions io;
  io.tape = o.tape;
  io.join = o.join;
  io.as_of = o.as_of;
  io.on_error = o.on_error == "skip" ? OnError::kSkip : OnError::kFail;
  const IngestResult r = IngestTape(io, mapping, specs);

  // The balance-sheet identity with the tape's loans.
  const double tape_loans = r.balance;
  const double assets = bs.cash + bs.securities + tape_loans - bs.allowance + bs.other_assets;
  const double funding = bs.shares + bs.certificates + bs.borrowings + bs.equity;
  const double tol = bs.tolerance * std::max(assets, 1.0);
  if (bs.loans >= 0 && std::abs(bs.loans - tape_loans) > tol)
    throw ConfigError(fmt::format(
        "{}: assets.loans is {:.2f} but the tape's accepted loans sum to {:.2f} (difference "
        "{:.2f}, tolerance {:.2f} = {} of assets){}",
        o.balance_sheet, bs.loans, tape_loans, bs.loans - tape_loans, tol, bs.tolerance,
        r.rejected_by_reason.empty() ? "" : "; rows were rejected, see the counts"));
  if (!(assets > 0) || std::abs(assets - funding) > tol)
    throw ConfigError(fmt::format(
        "{}: the balance sheet does not balance: assets (cash {:.2f} + securities {:.2f} + loans "
        "{:.2f} - allowance {:.2f} + other {:.2f}) = {:.2f}, but shares {:.2f} + certificates "
        "{:.2f} + borrowings {:.2f} + equity {:.2f} = {:.2f} (difference {:.2f}, tolerance "
        "{:.2f})",
        o.balance_sheet, bs.cash, bs.securities, tape_loans, bs.allowance, bs.other_assets, assets,
        bs.shares, bs.certificates, bs.borrowings, bs.equity, funding, assets - funding, tol));

  fs::create_directories(o.out);
  WriteFileAtomically((fs::path(o.out) / "book.csv").string(), [&](std::ostream& out) {
    WriteTapeHeader(out);
    for (int p = 0; p < kNumProducts; ++p)
      for (const TapeLoan& l : r.book->loans[p]) WriteTapeRow(out, p, specs[p].variable_rate, l);
  });
  const double liquid = bs.cash + bs.securities;
  WriteFileAtomically((fs::path(o.out) / "institution.yaml").string(), [&](std::ostream& out) {
    out << fmt::format(
        "# Written by loantwin sync from {} ({} loans of {} rows) and {}, as of {}.\n"
        "# The twin keeps the balance sheet's ratios; its own allowance replaces the stated one\n"
        "# and other assets are carried with the loans (docs/digital-twin.md).\n",
        o.tape, r.accepted, r.rows, o.balance_sheet, o.as_of);
    out << fmt::format("name: \"{}\"\n", bs.name);
    if (!bs.description.empty()) out << fmt::format("description: \"{}\"\n", bs.description);
    out << fmt::format("base: \"{}\"\nas_of: \"{}\"\nbook: book.csv\nmembers: {}\ncurrency: {}\n",
                       base_name, o.as_of, bs.members, bs.currency);
    out << "products:\n";
    for (int p = 0; p < kNumProducts; ++p)
      if (!r.book->loans[p].empty())
        out << fmt::format("  {}:\n    initial_loans: {}\n", kProductNames[p],
                           r.book->loans[p].size());
    out << fmt::format(
        "balance_sheet:\n  equity_to_assets: {}\n  liquid_share: {}\n  borrowings_share: {}\n",
        bs.equity / assets, liquid / assets, bs.borrowings / assets);
    if (liquid > 0) out << fmt::format("  liquid_term_share: {}\n", bs.securities / liquid);
    if (bs.shares + bs.certificates > 0)
      out << fmt::format("alm:\n  certificate_share: {}\n",
                         bs.certificates / (bs.shares + bs.certificates));
  });
  const std::string rejected =
      o.rejected.empty() ? (fs::path(o.out) / "rejected.csv").string() : o.rejected;
  if (!r.rejections.empty())
    WriteFileAtomically(rejected, [&](std::ostream& out) {
      out << "row,line,column,reason,message,text\n";
      for (const auto& j : r.rejections)
        out << fmt::format("{},{},{},{},{},{}\n", j.row, j.line, CsvQuote(j.column),
                           CsvQuote(j.reason), CsvQuote(j.message), CsvQuote(j.text));
    });

  // Load what was written, as every command will, and open the twin on it.
  const auto inst = LoadInstitution(o.out);
  Twin twin(inst, LoadScenario("steady_state"), 1, 0);
  std::vector<double> m(kNumMetrics);
  twin.Snapshot(m.data());

  fmt::print("{}: {} rows, {} loans loaded ({:.2f} {}), {} excluded, {} rejected\n", o.tape, r.rows,
             r.accepted, tape_loans, bs.currency, r.excluded, r.rows - r.accepted - r.excluded);
  for (int p = 0; p < kNumProducts; ++p) {
    const auto& loans = r.book->loans[p];
    if (loans.empty()) {
      if (base->products[p].offered)
        fmt::print("  {}: offered by {} but not on the tape: not offered\n", kProductNames[p],
                   bs.base);
      continue;
    }
    double bal = 0, dq = 0;
    for (const auto& l : loans) bal += l.balance, dq += l.months_past_due > 0 ? l.balance : 0;
    fmt::print("  {}: {} loans, balance {:.2f}, 30+ dpd {:.2f}%{}\n", kProductNames[p],
               loans.size(), bal, bal > 0 ? 100 * dq / bal : 0.0,
               base->products[p].offered ? ""
                                         : " (economics: built-in defaults; the base does "
                                           "not offer it)");
  }
  for (const auto& [reason, n] : r.excluded_by_reason)
    fmt::print("  excluded ({}): {}\n", reason, n);
  for (const auto& [reason, n] : r.rejected_by_reason)
    fmt::print("  rejected ({}): {}\n", reason, n);
  if (!r.rejections.empty()) fmt::print("  rows not loaded, with reasons: {}\n", rejected);
  if (!r.ignored_columns.empty())
    fmt::print("  columns not read: {}\n", fmt::join(r.ignored_columns, ", "));
  fmt::print("\n| month 0 | balance sheet | twin |\n|---|---|---|\n");
  auto line = [](const char* what, double stated, double twin) {
    fmt::print("| {} | {:.2f} | {:.2f} |\n", what, stated, twin);
  };
  line("loans", tape_loans, m[kLoanBalance]);
  line("allowance", bs.allowance, m[kAllowance]);
  line("liquid assets", liquid, m[kLiquidAssets]);
  line("total assets", assets, m[kTotalAssets]);
  line("deposits", bs.shares + bs.certificates, m[kDeposits]);
  line("borrowings", bs.borrowings, m[kWholesale] + m[kEmergencyBorrowing]);
  line("equity", bs.equity, m[kEquity]);
  fmt::print("| equity / assets | {:.4f} | {:.4f} |\n", bs.equity / assets, m[kLeverageRatio]);
  fmt::print("\nwrote {} (use --institution {})\n", o.out, o.out);
  return 0;
}

int RunSnapshot(const SnapshotOptions& o) {
  const SnapshotSummary r = WriteSnapshot(o);
  fmt::print(
      "{} under {} (seed {}): {} loans at month 0, {} performance rows over {} months; "
      "wrote {}/tape.csv, balance_sheet.yaml, performance.csv\n",
      r.institution, o.scenario, o.seed, r.opening_loans, r.rows, o.months, o.out);
  return 0;
}

}  // namespace

Runner RegisterSync(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "sync",
      "Load a loan tape and balance sheet into an institution directory (--institution DIR)");
  auto o = std::make_shared<SyncOptions>();
  cmd->add_option("--tape", o->tape, "loan-level CSV (docs/digital-twin.md)")->required();
  cmd->add_option("--mapping", o->mapping, "mapping YAML for another system's layout");
  cmd->add_option("--join", o->join, "monthly file joined on the loan id (mapping's join:)");
  cmd->add_option("--balance-sheet", o->balance_sheet, "balance-sheet YAML")->required();
  cmd->add_option("--as-of", o->as_of, "the tape's month, YYYY-MM")->required();
  cmd->add_option("--out", o->out, "institution directory to write")->required();
  cmd->add_option("--on-error", o->on_error, "fail: stop on a bad row; skip: load the rest")
      ->check(CLI::IsMember({"fail", "skip"}))
      ->capture_default_str();
  cmd->add_option("--rejected", o->rejected,
                  "where skip writes the rows not loaded "
                  "(default OUT/rejected.csv)");
  return [o] { return RunSync(*o); };
}

Runner RegisterSnapshot(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "snapshot",
      "Write an institution's book as a loan tape and its monthly loan-level performance");
  auto o = std::make_shared<SnapshotOptions>();
  cmd->add_option("--institution", o->institution, "preset, YAML file or synced directory")
      ->capture_default_str();
  cmd->add_option("--scenario", o->scenario, "scenario name or YAML file")->capture_default_str();
  cmd->add_option("--months", o->months, "months of performance")
      ->check(CLI::Range(0, 600))
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "seed (>= 0)")->check(SeedValidator())->capture_default_str();
  cmd->add_option("--instance", o->instance, "twin instance (random stream)")
      ->check(CLI::Range(0, 1 << 30))
      ->capture_default_str();
  cmd->add_option("--out", o->out, "directory to write")->required();
  return [o] { return RunSnapshot(*o); };
}

}  // namespace loantwin::cli
