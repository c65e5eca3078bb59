#pragma once
// Loan tapes (docs/digital-twin.md): the loan-level CSV schema, the mapping YAML that reads
// other systems' layouts (renamed or numbered columns, recoded values, scales, a joined monthly
// file), the balance-sheet YAML, and the ingest `loantwin sync` runs. Streaming: one line in
// memory at a time (a joined file keeps only its as-of rows).

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "env/twin/initial_book.h"
#include "env/twin/product.h"

namespace loantwin {

struct InstitutionConfig;

/// The tape's fields (its CSV header names, in this order when loantwin writes a tape).
enum TapeField : int {
  kTapeLoanId,
  kTapeProduct,
  kTapeOriginationDate,
  kTapeAgeMonths,
  kTapeOriginalBalance,
  kTapeCurrentBalance,
  kTapeRate,
  kTapeRateType,
  kTapeTermMonths,
  kTapeRemainingMonths,
  kTapeScore,
  kTapeBand,
  kTapeDaysPastDue,
  kTapeStatus,
  kTapeCollateralValue,
  kTapeCreditLimit,
  kTapeRestructured,
  kNumTapeFields
};
const std::array<const char*, kNumTapeFields>& TapeFieldNames();

/// Score band of a credit score (300..850): A >= 760, B 720-759, C 690-719, D 660-689,
/// E 630-659, F 600-629, G < 600.
int BandOfScore(int score);

/// Where one tape field comes from.
struct FieldSource {
  enum Kind { kAbsent, kColumn, kConstant } kind = kAbsent;
  bool joined = false;   ///< read from the joined monthly file
  std::string column;    ///< header name, or "" when `index` names a numbered column
  int index = -1;        ///< 0-based column (resolved from the header, or numbered)
  std::string constant;  ///< kConstant: the value of every row
  std::unordered_map<std::string, std::string> recode;  ///< source text -> tape text
  bool has_recode_other = false;  ///< values not in `recode` read as `recode_other`
  std::string recode_other;
  bool has_default = false;  ///< an empty value reads as `default_value`
  std::string default_value;
  double scale = 1.0;       ///< numbers are multiplied by it (percent -> fraction: 0.01)
  std::string date_format;  ///< YYYY-MM (default), YYYYMM, YYYY-MM-DD, MM/YYYY
  int offset_months = 0;    ///< added to dates (first payment -> origination: -1)
  /// Numbers: divided by this column's number (value from original balance / LTV).
  std::shared_ptr<FieldSource> divide_by;
  std::string Describe() const;  ///< "column 'DPD'", "column 4 of the joined file", ...
};

struct TapeMapping {
  std::string file;  ///< "" = the loantwin schema (header names = field names)
  char delimiter = ',';
  bool header = true;
  std::array<FieldSource, kNumTapeFields> fields;
  /// A second file joined on the loan id whose rows of the as-of month supply the fields marked
  /// `joined` (e.g. Freddie Mac's monthly performance file).
  bool has_join = false;
  char join_delimiter = ',';
  bool join_header = true;
  FieldSource tape_key, join_key, join_period;
};

/// The mapping of the loantwin schema: every field from the column of its own name.
TapeMapping DefaultTapeMapping();
/// Loads a mapping YAML; ConfigError names file, line and key.
TapeMapping LoadTapeMapping(const std::string& path);

/// The balance sheet at the as-of date (amounts in the institution's currency).
struct BalanceSheet {
  std::string file, name, description, currency = "USD", base;
  int64_t members = 0;
  double cash = 0, securities = 0, loans = -1, allowance = 0, other_assets = 0;
  double shares = 0, certificates = 0, borrowings = 0, equity = 0;
  double tolerance = 0.001;  ///< identity tolerance, fraction of total assets
  double TotalAssets() const;
};
BalanceSheet LoadBalanceSheet(const std::string& path);

enum class OnError { kFail, kSkip };

struct IngestOptions {
  std::string tape, join;  ///< the tape and the joined monthly file ("" = none)
  std::string as_of;       ///< YYYY-MM
  OnError on_error = OnError::kFail;
  int max_listed_errors = 10;  ///< kFail: errors listed before stopping
};

/// One rejected (or excluded) row.
struct TapeRejection {
  int64_t row = 0;     ///< data row, 1-based (the header is not a row)
  int64_t line = 0;    ///< line of the file
  std::string column;  ///< the tape field and its source
  std::string reason;  ///< the category (counted)
  std::string message;
  std::string text;  ///< the row as read
};

struct IngestResult {
  std::shared_ptr<InitialBook> book;
  int64_t rows = 0, accepted = 0;
  /// Rows that are not open loans at the as-of date (closed, zero balance, no as-of row in the
  /// joined file): excluded and counted, not errors.
  int64_t excluded = 0;
  std::map<std::string, int64_t> rejected_by_reason, excluded_by_reason;
  std::vector<TapeRejection> rejections;     ///< every rejected and excluded row
  std::vector<std::string> ignored_columns;  ///< header columns no field reads
  double balance = 0;                        ///< sum of accepted current balances
};

/// Reads a tape for an institution whose product specs are `specs` (which products exist, their
/// rate type, revolving or secured, charge-off rule). kFail throws ConfigError listing the first
/// errors (row, column, reason); kSkip collects them.
IngestResult IngestTape(const IngestOptions& options, const TapeMapping& mapping,
                        const std::array<ProductSpec, kNumProducts>& specs);

/// Month index (year * 12 + month - 1) of "YYYY-MM"; -1 if malformed.
int ParseYearMonth(const std::string& text);
std::string FormatYearMonth(int index);

/// Writes loans in the loantwin schema (the header, then one row per loan).
void WriteTapeHeader(std::ostream& out);
void WriteTapeRow(std::ostream& out, int product, bool variable_rate, const TapeLoan& loan);

/// CSV helpers shared by the tape and performance readers. SplitLine splits a line on `delim`;
/// double-quoted fields may hold the delimiter ("" is a quote), their unquoted text goes to
/// `scratch` (kept alive by the caller); false for an unterminated quote. ParseDouble reads a
/// finite number, surrounding blanks and a trailing carriage return allowed.
bool SplitLine(std::string_view line, char delim, std::vector<std::string_view>* out,
               std::vector<std::string>* scratch);
bool ParseDouble(std::string_view s, double* v);

}  // namespace loantwin
