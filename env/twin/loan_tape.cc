#include "env/twin/loan_tape.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <optional>
#include <unordered_set>

#include "core/config_error.h"
#include "core/yaml_reader.h"

namespace loantwin {
namespace {

constexpr int kMaxTermMonths = 480;
constexpr int kMaxAgeMonths = 1200;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

bool SplitLine(std::string_view line, char delim, std::vector<std::string_view>* out,
               std::vector<std::string>* scratch) {
  out->clear();
  if (line.find('"') == std::string_view::npos) {
    size_t start = 0;
    while (true) {
      const size_t pos = line.find(delim, start);
      if (pos == std::string_view::npos) {
        out->push_back(line.substr(start));
        return true;
      }
      out->push_back(line.substr(start, pos - start));
      start = pos + 1;
    }
  }
  scratch->clear();
  scratch->reserve(line.size());  // no reallocation: the views stay valid
  size_t i = 0;
  while (true) {
    if (i < line.size() && line[i] == '"') {
      std::string field;
      ++i;
      while (true) {
        if (i >= line.size()) return false;  // unterminated quote
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        field += line[i++];
      }
      scratch->push_back(std::move(field));
      out->push_back(scratch->back());
      if (i < line.size() && line[i] != delim) return false;
    } else {
      const size_t pos = line.find(delim, i);
      const size_t end = pos == std::string_view::npos ? line.size() : pos;
      out->push_back(line.substr(i, end - i));
      i = end;
    }
    if (i >= line.size()) return true;
    ++i;  // the delimiter
    if (i == line.size()) {
      out->push_back(std::string_view());
      return true;
    }
  }
}

bool ParseDouble(std::string_view s, double* v) {
  s = Trim(s);
  if (s.empty()) return false;
  if (s.front() == '+') s.remove_prefix(1);
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *v);
  return ec == std::errc() && end == s.data() + s.size() && std::isfinite(*v);
}

namespace {

/// Month index of a date in `format` (YYYY-MM, YYYYMM, YYYY-MM-DD, MM/YYYY); -1 if malformed.
int ParseDate(std::string_view s, const std::string& format) {
  s = Trim(s);
  auto digits = [&](size_t pos, size_t n, int* v) {
    if (pos + n > s.size()) return false;
    int x = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return true;
  };
  int y = 0, m = 0, d = 0;
  bool ok = false;
  if (format.empty() || format == "YYYY-MM") {
    ok = s.size() == 7 && digits(0, 4, &y) && s[4] == '-' && digits(5, 2, &m);
  } else if (format == "YYYYMM") {
    ok = s.size() == 6 && digits(0, 4, &y) && digits(4, 2, &m);
  } else if (format == "YYYY-MM-DD") {
    ok = s.size() == 10 && digits(0, 4, &y) && s[4] == '-' && digits(5, 2, &m) && s[7] == '-' &&
         digits(8, 2, &d) && d >= 1 && d <= 31;
  } else if (format == "MM/YYYY") {
    ok = s.size() == 7 && digits(0, 2, &m) && s[2] == '/' && digits(3, 4, &y);
  }
  if (!ok || m < 1 || m > 12 || y < 1900 || y > 2200) return -1;
  return y * 12 + m - 1;
}

const std::vector<std::string> kDateFormats = {"YYYY-MM", "YYYYMM", "YYYY-MM-DD", "MM/YYYY"};

bool IsDateField(int f) {
  return f == kTapeOriginationDate;
}

FieldSource ParseSource(const YamlValue& v, bool header, bool allow_join, int field,
                        bool join_header = true) {
  FieldSource src;
  src.kind = FieldSource::kColumn;
  auto set_column = [&](const YamlValue& c) {
    if (header) {
      src.column = c.AsString();
      if (src.column.empty()) c.Fail("a column name must not be empty");
    } else {
      src.index = static_cast<int>(c.AsInt(1, 10000)) - 1;
    }
  };
  if (v.IsScalar()) {
    set_column(v);
    return src;
  }
  YamlMap m(v);
  auto column = m.Get("column");
  auto joined = m.Get("join");
  auto value = m.Get("value");
  const int kinds = (column ? 1 : 0) + (joined ? 1 : 0) + (value ? 1 : 0);
  if (kinds != 1)
    v.Fail(
        "give exactly one of 'column' (a column of the tape), 'join' (a column of the joined "
        "file) or 'value' (the same value for every row)");
  if (column) set_column(*column);
  if (joined) {
    if (!allow_join) joined->Fail("'join' needs a 'join:' section in the mapping");
    src.joined = true;
    if (join_header) {
      src.column = joined->AsString();
      if (src.column.empty()) joined->Fail("a column name must not be empty");
    } else {
      src.index = static_cast<int>(joined->AsInt(1, 10000)) - 1;
    }
  }
  if (value) {
    src.kind = FieldSource::kConstant;
    src.constant = value->AsString();
  }
  if (auto r = m.Get("recode")) {
    if (!r->IsMap()) r->Fail("'recode' maps source values to tape values: {\"Y\": \"true\"}");
    for (const auto& kv : r->node())
      src.recode[kv.first.as<std::string>()] = kv.second.as<std::string>();
  }
  if (auto o = m.Get("recode_other")) {
    src.has_recode_other = true;
    src.recode_other = o->AsString();
  }
  if (auto dv = m.Get("divide_by")) {
    if (src.kind == FieldSource::kConstant) dv->Fail("'divide_by' needs a column, not a value");
    src.divide_by =
        std::make_shared<FieldSource>(ParseSource(*dv, header, allow_join, field, join_header));
    if (src.divide_by->kind != FieldSource::kColumn || src.divide_by->divide_by)
      dv->Fail("'divide_by' names one column ({column: ...} or {join: ...}, optionally scaled)");
  }
  if (auto d = m.Get("default")) {
    src.has_default = true;
    src.default_value = d->AsString();
  }
  if (auto s = m.Get("scale")) src.scale = s->AsDouble(-1e12, 1e12);
  if (auto f = m.Get("date_format")) {
    if (!IsDateField(field)) f->Fail("'date_format' applies to origination_date only");
    src.date_format = f->AsEnum(kDateFormats);
  }
  if (auto o = m.Get("offset_months")) {
    if (!IsDateField(field)) o->Fail("'offset_months' applies to origination_date only");
    src.offset_months = static_cast<int>(o->AsInt(-1200, 1200));
  }
  m.Done();
  return src;
}

char ParseDelimiter(const YamlValue& v) {
  const std::string d = v.AsString();
  if (d == "\\t" || d == "tab") return '\t';
  if (d.size() != 1 || d == "\"" || d == "\n")
    v.Fail("'delimiter' is one character (\",\", \"|\", \";\" or \"\\t\")");
  return d[0];
}

}  // namespace

const std::array<const char*, kNumTapeFields>& TapeFieldNames() {
  static const std::array<const char*, kNumTapeFields> kNames = {
      "loan_id",         "product",     "origination_date", "age_months",  "original_balance",
      "current_balance", "rate",        "rate_type",        "term_months", "remaining_months",
      "score",           "band",        "days_past_due",    "status",      "collateral_value",
      "credit_limit",    "restructured"};
  return kNames;
}

int BandOfScore(int score) {
  static const int kFloors[] = {760, 720, 690, 660, 630, 600};
  for (int b = 0; b < 6; ++b)
    if (score >= kFloors[b]) return b;
  return 6;
}

std::string FieldSource::Describe() const {
  if (kind == kConstant) return fmt::format("value '{}'", constant);
  const std::string where = joined ? " of the joined file" : "";
  if (!column.empty()) return fmt::format("column '{}'{}", column, where);
  return fmt::format("column {}{}", index + 1, where);
}

TapeMapping DefaultTapeMapping() {
  TapeMapping m;
  for (int f = 0; f < kNumTapeFields; ++f) m.fields[f].column = TapeFieldNames()[f];
  // kind stays kAbsent: resolved against the header (present columns become kColumn).
  return m;
}

TapeMapping LoadTapeMapping(const std::string& path) {
  const YamlValue root = YamlValue::LoadFile(path);
  YamlMap m(root);
  TapeMapping out;
  out.file = path;
  if (auto d = m.Get("delimiter")) out.delimiter = ParseDelimiter(*d);
  m.Read("header", &out.header);
  std::optional<YamlValue> join = m.Get("join");
  if (join) {
    YamlMap j(*join);
    out.has_join = true;
    out.join_delimiter = out.delimiter;
    if (auto d = j.Get("delimiter")) out.join_delimiter = ParseDelimiter(*d);
    out.join_header = out.header;
    j.Read("header", &out.join_header);
    {
      YamlMap key(j.Require("key"));
      out.tape_key = ParseSource(key.Require("tape"), out.header, false, kTapeLoanId);
      out.join_key = ParseSource(key.Require("join"), out.join_header, false, kTapeLoanId);
      out.join_key.joined = true;
      key.Done();
    }
    {
      YamlMap period(j.Require("period"));
      out.join_period =
          ParseSource(period.Require("column"), out.join_header, false, kTapeOriginationDate);
      out.join_period.joined = true;
      if (auto f = period.Get("date_format")) out.join_period.date_format = f->AsEnum(kDateFormats);
      period.Done();
    }
    j.Done();
  }
  YamlMap cols(m.Require("columns"));
  for (int f = 0; f < kNumTapeFields; ++f) {
    auto v = cols.Get(TapeFieldNames()[f]);
    if (!v) continue;
    out.fields[f] = ParseSource(*v, out.header, out.has_join, f, out.join_header);
  }
  cols.Done();
  m.Done();
  if (out.fields[kTapeLoanId].kind != FieldSource::kColumn)
    root.Fail("columns.loan_id must name a column (every loan needs its own id)");
  return out;
}

double BalanceSheet::TotalAssets() const {
  return cash + securities + std::max(0.0, loans) - allowance + other_assets;
}

BalanceSheet LoadBalanceSheet(const std::string& path) {
  const YamlValue root = YamlValue::LoadFile(path);
  YamlMap m(root);
  BalanceSheet bs;
  bs.file = path;
  bs.name = m.Require("name").AsString();
  m.Read("description", &bs.description);
  if (auto c = m.Get("currency")) bs.currency = c->AsString();
  bs.members = m.Require("members").AsInt(1, 100000000);
  bs.base = m.Require("base").AsString();
  const double kMax = 1e15;
  {
    YamlMap a(m.Require("assets"));
    bs.cash = a.Require("cash").AsDouble(0, kMax);
    bs.securities = a.Require("securities").AsDouble(0, kMax);
    if (auto l = a.Get("loans")) bs.loans = l->AsDouble(0, kMax);
    bs.allowance = a.Require("allowance").AsDouble(0, kMax);
    if (auto o = a.Get("other")) bs.other_assets = o->AsDouble(0, kMax);
    a.Done();
  }
  {
    YamlMap l(m.Require("liabilities"));
    bs.shares = l.Require("shares").AsDouble(0, kMax);
    bs.certificates = l.Require("certificates").AsDouble(0, kMax);
    if (auto b = l.Get("borrowings")) bs.borrowings = b->AsDouble(0, kMax);
    l.Done();
  }
  bs.equity = m.Require("equity").AsDouble(1e-9, kMax);
  m.Read("tolerance", &bs.tolerance, 0.0, 0.1);
  m.Done();
  return bs;
}

int ParseYearMonth(const std::string& text) {
  return ParseDate(text, "YYYY-MM");
}

std::string FormatYearMonth(int index) {
  return fmt::format("{:04d}-{:02d}", index / 12, index % 12 + 1);
}

namespace {

/// One data row being read: its fields and where to find them.
struct RowContext {
  const std::vector<std::string_view>* tape = nullptr;
  const std::vector<std::string>* joined = nullptr;  // nullptr: no joined row
};

class RowError {
 public:
  RowError(std::string column, std::string reason, std::string message)
      : column(std::move(column)), reason(std::move(reason)), message(std::move(message)) {}
  std::string column, reason, message;
};

class TapeReader {
 public:
  TapeReader(const IngestOptions& o, const TapeMapping& m,
             const std::array<ProductSpec, kNumProducts>& specs)
      : opt_(o), map_(m), specs_(specs) {}

  IngestResult Run();

 private:
  void ResolveHeader(const std::vector<std::string_view>& header);
  void LoadJoin();
  /// The field's text after recode and default; `present` false when absent or empty.
  std::string_view Text(int f, const RowContext& row, bool* present, std::string* buf) const {
    return SourceText(map_.fields[f], TapeFieldNames()[f], row, present, buf);
  }
  std::string_view SourceText(const FieldSource& src, const char* field, const RowContext& row,
                              bool* present, std::string* buf) const;
  double Number(int f, const RowContext& row, bool required, bool* present) const;
  void ReadRow(const RowContext& row, TapeLoan* loan, int* product) const;
  void Reject(int64_t row, int64_t line, const RowError& e, std::string_view text, bool excluded);

  const IngestOptions& opt_;
  TapeMapping map_;
  const std::array<ProductSpec, kNumProducts>& specs_;
  int as_of_ = -1;
  std::unordered_map<std::string, std::vector<std::string>> join_rows_;
  IngestResult res_;
  std::vector<std::string> fail_messages_;
};

void TapeReader::ResolveHeader(const std::vector<std::string_view>& header) {
  std::unordered_map<std::string, int> index;
  for (size_t i = 0; i < header.size(); ++i)
    index[std::string(Trim(header[i]))] = static_cast<int>(i);
  std::vector<bool> used(header.size(), false);
  auto resolve = [&](FieldSource& src, const char* field) {
    if (src.joined || src.column.empty()) {
      if (!src.joined && src.index >= 0 && src.index < static_cast<int>(used.size()))
        used[src.index] = true;
      return;
    }
    auto it = index.find(src.column);
    if (it == index.end()) {
      if (src.kind == FieldSource::kAbsent) return;  // default mapping: an optional column
      throw ConfigError(fmt::format(
          "{}: the column '{}' (mapping{}: {}) is not in the header; the header has: {}", opt_.tape,
          src.column, map_.file.empty() ? "" : " " + map_.file, field, fmt::join(header, ", ")));
    }
    src.index = it->second;
    src.kind = FieldSource::kColumn;
    used[src.index] = true;
  };
  for (int f = 0; f < kNumTapeFields; ++f) {
    resolve(map_.fields[f], TapeFieldNames()[f]);
    if (map_.fields[f].divide_by) resolve(*map_.fields[f].divide_by, TapeFieldNames()[f]);
  }
  if (map_.has_join) resolve(map_.tape_key, "join.key.tape");
  for (size_t i = 0; i < header.size(); ++i)
    if (!used[i]) res_.ignored_columns.emplace_back(Trim(header[i]));
}

void TapeReader::LoadJoin() {
  std::ifstream in(opt_.join);
  if (!in) throw ConfigError(fmt::format("cannot open the joined file '{}'", opt_.join));
  std::string line;
  std::vector<std::string_view> fields;
  std::vector<std::string> scratch;
  int64_t lineno = 0;
  if (map_.join_header) {
    if (!std::getline(in, line))
      throw ConfigError(fmt::format("{}: empty file (a header line was expected)", opt_.join));
    ++lineno;
    if (!SplitLine(line, map_.join_delimiter, &fields, &scratch))
      throw ConfigError(fmt::format("{} line 1: unterminated quote in the header", opt_.join));
    std::unordered_map<std::string, int> index;
    for (size_t i = 0; i < fields.size(); ++i)
      index[std::string(Trim(fields[i]))] = static_cast<int>(i);
    auto resolve = [&](FieldSource& src, const std::string& what) {
      if (!src.joined || src.column.empty()) return;
      auto it = index.find(src.column);
      if (it == index.end())
        throw ConfigError(fmt::format("{}: the column '{}' ({}) is not in the header", opt_.join,
                                      src.column, what));
      src.index = it->second;
    };
    resolve(map_.join_key, "join.key.join");
    resolve(map_.join_period, "join.period.column");
    for (int f = 0; f < kNumTapeFields; ++f) {
      const std::string key = std::string("columns.") + TapeFieldNames()[f];
      resolve(map_.fields[f], key);
      if (map_.fields[f].divide_by) resolve(*map_.fields[f].divide_by, key + ".divide_by");
    }
  }
  while (std::getline(in, line)) {
    ++lineno;
    if (Trim(line).empty()) continue;
    if (!SplitLine(line, map_.join_delimiter, &fields, &scratch))
      throw ConfigError(fmt::format("{} line {}: unterminated quote", opt_.join, lineno));
    const int period_col = map_.join_period.index;
    if (period_col >= static_cast<int>(fields.size()) ||
        map_.join_key.index >= static_cast<int>(fields.size()))
      throw ConfigError(
          fmt::format("{} line {}: {} fields, fewer than the key and period columns "
                      "need",
                      opt_.join, lineno, fields.size()));
    const int period = ParseDate(fields[period_col], map_.join_period.date_format);
    if (period < 0)
      throw ConfigError(fmt::format(
          "{} line {}, {}: '{}' is not a date ({})", opt_.join, lineno, map_.join_period.Describe(),
          fields[period_col],
          map_.join_period.date_format.empty() ? "YYYY-MM" : map_.join_period.date_format));
    if (period != as_of_) continue;
    std::string key(Trim(fields[map_.join_key.index]));
    std::vector<std::string> row(fields.begin(), fields.end());
    if (!join_rows_.emplace(key, std::move(row)).second)
      throw ConfigError(fmt::format("{} line {}: loan '{}' has two rows for {}", opt_.join, lineno,
                                    key, opt_.as_of));
  }
}

std::string_view TapeReader::SourceText(const FieldSource& src, const char* field,
                                        const RowContext& row, bool* present,
                                        std::string* buf) const {
  std::string_view text;
  *present = false;
  if (src.kind == FieldSource::kAbsent) return text;
  if (src.kind == FieldSource::kConstant) {
    text = src.constant;
  } else if (src.joined) {
    if (row.joined && src.index < static_cast<int>(row.joined->size()))
      text = (*row.joined)[src.index];
    else if (row.joined)
      throw RowError(field, "missing column",
                     fmt::format("{} has no {}", opt_.join, src.Describe()));
  } else {
    if (src.index >= static_cast<int>(row.tape->size()))
      throw RowError(
          field, "missing column",
          fmt::format("the row has {} fields; {} is missing", row.tape->size(), src.Describe()));
    text = (*row.tape)[src.index];
  }
  text = Trim(text);
  if (!src.recode.empty()) {
    auto it = src.recode.find(std::string(text));
    if (it != src.recode.end()) {
      *buf = it->second;
      text = *buf;
    } else if (src.has_recode_other && !text.empty()) {
      text = src.recode_other;
    }
  }
  if (text.empty() && src.has_default) text = src.default_value;
  *present = !text.empty();
  return text;
}

double TapeReader::Number(int f, const RowContext& row, bool required, bool* present) const {
  std::string buf;
  const std::string_view t = Text(f, row, present, &buf);
  const char* name = TapeFieldNames()[f];
  if (!*present) {
    if (required)
      throw RowError(name, "missing value",
                     fmt::format("empty ({})", map_.fields[f].kind == FieldSource::kAbsent
                                                   ? "no column supplies it"
                                                   : map_.fields[f].Describe()));
    return 0;
  }
  double v = 0;
  if (!ParseDouble(t, &v))
    throw RowError(name, "bad number", fmt::format("'{}' is not a number", t));
  v *= map_.fields[f].scale;
  if (const auto& div = map_.fields[f].divide_by) {
    bool has = false;
    const std::string_view dt = SourceText(*div, name, row, &has, &buf);
    double d = 0;
    if (!has)
      throw RowError(name, "missing value", fmt::format("empty divisor ({})", div->Describe()));
    if (!ParseDouble(dt, &d))
      throw RowError(name, "bad number",
                     fmt::format("divisor '{}' ({}) is not a number", dt, div->Describe()));
    d *= div->scale;
    if (!(d > 0))
      throw RowError(name, "out of range",
                     fmt::format("divisor {} ({}) is not positive", d, div->Describe()));
    v /= d;
  }
  return v;
}

void TapeReader::ReadRow(const RowContext& row, TapeLoan* loan, int* product) const {
  std::string buf;
  bool present = false;
  const auto& names = TapeFieldNames();
  auto need = [&](int f) {
    const std::string_view t = Text(f, row, &present, &buf);
    if (!present)
      throw RowError(names[f], "missing value",
                     fmt::format("empty ({})", map_.fields[f].kind == FieldSource::kAbsent
                                                   ? "no column supplies it"
                                                   : map_.fields[f].Describe()));
    return std::string(t);
  };
  loan->id = need(kTapeLoanId);
  // Status first: closed loans are not on the book, whatever else the row says.
  std::string status;
  {
    const std::string_view t = Text(kTapeStatus, row, &present, &buf);
    if (present) {
      status = std::string(t);
      if (status == "paid_off" || status == "charged_off" || status == "closed")
        throw RowError(names[kTapeStatus], "closed", fmt::format("status '{}'", status));
      if (status != "current" && status != "delinquent")
        throw RowError(names[kTapeStatus], "bad value",
                       fmt::format("status '{}' is not current | delinquent (or paid_off | "
                                   "charged_off | closed, which are not on the book)",
                                   status));
    }
  }
  const std::string code = need(kTapeProduct);
  *product = -1;
  for (int p = 0; p < kNumProducts; ++p)
    if (code == kProductNames[p]) *product = p;
  if (*product < 0)
    throw RowError(names[kTapeProduct], "unknown product",
                   fmt::format("unknown product code '{}' (personal | auto | home | card | "
                               "business; recode other codes in the mapping)",
                               code));
  const ProductSpec& s = specs_[*product];

  loan->balance = Number(kTapeCurrentBalance, row, true, &present);
  if (loan->balance < 0)
    throw RowError(names[kTapeCurrentBalance], "negative balance",
                   fmt::format("current balance {} is negative", loan->balance));
  if (loan->balance == 0 && !s.revolving())
    throw RowError(names[kTapeCurrentBalance], "zero balance",
                   "current balance 0: the loan is closed (not on the book)");
  if (loan->balance > 1e10)
    throw RowError(names[kTapeCurrentBalance], "out of range",
                   fmt::format("current balance {} is above 1e10", loan->balance));
  loan->original_balance = Number(kTapeOriginalBalance, row, false, &present);
  if (present && !(loan->original_balance > 0))
    throw RowError(names[kTapeOriginalBalance], "out of range",
                   fmt::format("original balance {} is not positive", loan->original_balance));

  // Age: from the origination date or given.
  {
    const std::string_view t = Text(kTapeOriginationDate, row, &present, &buf);
    if (present) {
      const FieldSource& src = map_.fields[kTapeOriginationDate];
      const int d = ParseDate(t, src.date_format);
      if (d < 0)
        throw RowError(names[kTapeOriginationDate], "bad date",
                       fmt::format("'{}' is not a date ({})", t,
                                   src.date_format.empty() ? "YYYY-MM" : src.date_format));
      loan->age = as_of_ - (d + src.offset_months);
      if (loan->age < 0)
        throw RowError(names[kTapeOriginationDate], "after as-of",
                       fmt::format("originated {} after the as-of date {}",
                                   FormatYearMonth(d + src.offset_months), opt_.as_of));
    } else {
      const double a = Number(kTapeAgeMonths, row, false, &present);
      if (!present)
        throw RowError("origination_date", "missing value",
                       "neither origination_date nor age_months is given");
      if (a < 0 || a != static_cast<int>(a))
        throw RowError(names[kTapeAgeMonths], "out of range",
                       fmt::format("age {} is not a whole number of months >= 0", a));
      loan->age = static_cast<int>(a);
    }
    if (loan->age > kMaxAgeMonths)
      throw RowError(names[kTapeAgeMonths], "out of range",
                     fmt::format("age {} months is above {}", loan->age, kMaxAgeMonths));
  }

  loan->rate = Number(kTapeRate, row, true, &present);
  if (!(loan->rate >= 0 && loan->rate < 1))
    throw RowError(names[kTapeRate], "out of range",
                   fmt::format("rate {} is not an annual fraction in [0, 1) (percent needs "
                               "scale: 0.01 in the mapping)",
                               loan->rate));
  {
    const std::string type = need(kTapeRateType);
    if (type != "fixed" && type != "variable")
      throw RowError(names[kTapeRateType], "bad value",
                     fmt::format("rate type '{}' is not fixed | variable", type));
    if ((type == "variable") != s.variable_rate)
      throw RowError(names[kTapeRateType], "rate type mismatch",
                     fmt::format("a {} loan, but the institution's {} product is {}-rate "
                                 "(products.{}.variable_rate in the base preset)",
                                 type, kProductNames[*product],
                                 s.variable_rate ? "variable" : "fixed", kProductNames[*product]));
  }

  const double term = Number(kTapeTermMonths, row, !s.revolving(), &present);
  if (s.revolving()) {
    if (present && term != 0)
      throw RowError(names[kTapeTermMonths], "out of range",
                     fmt::format("term {} on a revolving {} line (0 or empty)", term,
                                 kProductNames[*product]));
    loan->term = 0, loan->remaining = 0;
  } else {
    if (!(term >= 1 && term <= kMaxTermMonths) || term != static_cast<int>(term))
      throw RowError(
          names[kTapeTermMonths], "out of range",
          fmt::format("term {} is not a whole number of months in 1..{}", term, kMaxTermMonths));
    loan->term = static_cast<int>(term);
    const double rem = Number(kTapeRemainingMonths, row, false, &present);
    if (present) {
      if (!(rem >= 1 && rem <= kMaxTermMonths) || rem != static_cast<int>(rem))
        throw RowError(names[kTapeRemainingMonths], "out of range",
                       fmt::format("remaining term {} is not a whole number of months in 1..{}",
                                   rem, kMaxTermMonths));
      loan->remaining = static_cast<int>(rem);
    } else {
      loan->remaining = loan->term - loan->age;
      if (loan->remaining < 1)
        throw RowError(names[kTapeTermMonths], "past maturity",
                       fmt::format("age {} months is not below the term {} (give "
                                   "remaining_months for extended or restructured loans)",
                                   loan->age, loan->term));
    }
  }

  {
    const std::string_view t = Text(kTapeBand, row, &present, &buf);
    if (present) {
      if (t.size() != 1 || t[0] < 'A' || t[0] > 'G')
        throw RowError(names[kTapeBand], "bad value", fmt::format("band '{}' is not A..G", t));
      loan->band = t[0] - 'A';
    } else {
      const double score = Number(kTapeScore, row, false, &present);
      if (!present) throw RowError("score", "missing value", "neither score nor band is given");
      if (!(score >= 300 && score <= 850))
        throw RowError(names[kTapeScore], "out of range",
                       fmt::format("score {} is not in 300..850", score));
      loan->band = BandOfScore(static_cast<int>(score));
    }
  }

  const double dpd = Number(kTapeDaysPastDue, row, true, &present);
  if (!(dpd >= 0) || dpd != static_cast<int>(dpd))
    throw RowError(names[kTapeDaysPastDue], "out of range",
                   fmt::format("days past due {} is not a whole number >= 0", dpd));
  if (!status.empty() && (status == "current") != (dpd < 30))
    throw RowError(names[kTapeDaysPastDue], "dpd inconsistent with status",
                   fmt::format("{} days past due but status '{}'", dpd, status));
  loan->months_past_due = static_cast<int>(dpd) / 30;
  if (loan->months_past_due >= s.charge_off_months())
    throw RowError(names[kTapeDaysPastDue], "past charge-off",
                   fmt::format("{} days past due: the {} product charges off at {} days, so this "
                               "loan should have been charged off",
                               dpd, kProductNames[*product], s.charge_off_dpd));

  const bool secured = s.ltv_mean > 0;
  const double coll = Number(kTapeCollateralValue, row, secured, &present);
  if (present && !(coll > 0))
    throw RowError(names[kTapeCollateralValue], "out of range",
                   fmt::format("collateral value {} is not positive", coll));
  const double limit = Number(kTapeCreditLimit, row, s.revolving(), &present);
  if (present && !(limit > 0))
    throw RowError(names[kTapeCreditLimit], "out of range",
                   fmt::format("credit limit {} is not positive", limit));
  loan->collateral = s.revolving() ? limit : secured ? coll : 0.0;

  {
    const std::string_view t = Text(kTapeRestructured, row, &present, &buf);
    if (present) {
      if (t == "1" || t == "true" || t == "Y" || t == "yes")
        loan->restructured = true;
      else if (t == "0" || t == "false" || t == "N" || t == "no")
        loan->restructured = false;
      else
        throw RowError(names[kTapeRestructured], "bad value",
                       fmt::format("restructured '{}' is not true | false (1 | 0, Y | N)", t));
    }
  }
}

void TapeReader::Reject(int64_t row, int64_t line, const RowError& e, std::string_view text,
                        bool excluded) {
  (excluded ? res_.excluded_by_reason : res_.rejected_by_reason)[e.reason] += 1;
  if (excluded) res_.excluded += 1;
  const std::string msg =
      fmt::format("{}: row {} (line {}), column {}: {}", opt_.tape, row, line, e.column, e.message);
  if (!excluded && opt_.on_error == OnError::kFail) {
    if (static_cast<int>(fail_messages_.size()) < opt_.max_listed_errors)
      fail_messages_.push_back(msg);
    return;
  }
  res_.rejections.push_back(
      TapeRejection{row, line, e.column, e.reason, e.message, std::string(text)});
}

IngestResult TapeReader::Run() {
  as_of_ = ParseYearMonth(opt_.as_of);
  if (as_of_ < 0)
    throw ConfigError(fmt::format("--as-of '{}' is not a month (YYYY-MM)", opt_.as_of));
  if (map_.has_join && opt_.join.empty())
    throw ConfigError(
        fmt::format("the mapping {} joins a monthly file: give it with --join", map_.file));
  if (!map_.has_join && !opt_.join.empty())
    throw ConfigError("--join needs a mapping with a 'join:' section (which columns to read)");
  if (map_.has_join) LoadJoin();
  std::ifstream in(opt_.tape);
  if (!in) throw ConfigError(fmt::format("cannot open the tape '{}'", opt_.tape));
  static thread_local std::vector<char> buffer(1 << 20);
  in.rdbuf()->pubsetbuf(buffer.data(), static_cast<std::streamsize>(buffer.size()));
  std::string line;
  std::vector<std::string_view> fields;
  std::vector<std::string> scratch;
  int64_t lineno = 0;
  if (map_.header) {
    if (!std::getline(in, line))
      throw ConfigError(fmt::format("{}: empty file (a header line was expected)", opt_.tape));
    ++lineno;
    if (line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // BOM
    if (!SplitLine(line, map_.delimiter, &fields, &scratch))
      throw ConfigError(fmt::format("{} line 1: unterminated quote in the header", opt_.tape));
    std::vector<std::string> header(fields.begin(), fields.end());
    std::vector<std::string_view> views(header.begin(), header.end());
    ResolveHeader(views);
  } else {
    for (auto& f : map_.fields)
      if (f.kind == FieldSource::kAbsent) f.column.clear();
  }
  // Required fields the mapping or header cannot supply at all: one clear error, not one per row.
  {
    const auto& names = TapeFieldNames();
    for (int f : {kTapeLoanId, kTapeProduct, kTapeCurrentBalance, kTapeRate, kTapeRateType,
                  kTapeDaysPastDue})
      if (map_.fields[f].kind == FieldSource::kAbsent)
        throw ConfigError(fmt::format("{}: no column supplies '{}' (a required field{})", opt_.tape,
                                      names[f], map_.file.empty() ? "" : "; mapping " + map_.file));
    if (map_.fields[kTapeOriginationDate].kind == FieldSource::kAbsent &&
        map_.fields[kTapeAgeMonths].kind == FieldSource::kAbsent)
      throw ConfigError(
          fmt::format("{}: no column supplies 'origination_date' or 'age_months' (one is required)",
                      opt_.tape));
    if (map_.fields[kTapeScore].kind == FieldSource::kAbsent &&
        map_.fields[kTapeBand].kind == FieldSource::kAbsent)
      throw ConfigError(
          fmt::format("{}: no column supplies 'score' or 'band' (one is required)", opt_.tape));
  }
  auto book = std::make_shared<InitialBook>();
  book->file = opt_.tape;
  book->as_of = opt_.as_of;
  std::unordered_set<std::string> ids;
  int64_t row = 0;
  std::vector<std::string> joined_scratch;
  while (std::getline(in, line)) {
    ++lineno;
    if (Trim(line).empty()) continue;
    ++row;
    try {
      if (!SplitLine(line, map_.delimiter, &fields, &scratch))
        throw RowError("-", "malformed row", "unterminated quote");
      RowContext ctx;
      ctx.tape = &fields;
      if (map_.has_join) {
        if (map_.tape_key.index >= static_cast<int>(fields.size()))
          throw RowError("loan_id", "missing column", "no join key column");
        auto it = join_rows_.find(std::string(Trim(fields[map_.tape_key.index])));
        if (it == join_rows_.end())
          throw RowError("loan_id", "no as-of row",
                         fmt::format("no row in {} for {}: closed before, or not reported",
                                     opt_.join, opt_.as_of));
        ctx.joined = &it->second;
      }
      TapeLoan loan;
      int product = -1;
      ReadRow(ctx, &loan, &product);
      if (!ids.insert(loan.id).second)
        throw RowError("loan_id", "duplicate id",
                       fmt::format("loan id '{}' appears twice", loan.id));
      res_.balance += loan.balance;
      book->loans[product].push_back(std::move(loan));
      ++res_.accepted;
    } catch (const RowError& e) {
      const bool excluded =
          e.reason == "closed" || e.reason == "zero balance" || e.reason == "no as-of row";
      Reject(row, lineno, e, line, excluded);
    }
  }
  res_.rows = row;
  int64_t failed = 0;
  for (const auto& [reason, n] : res_.rejected_by_reason) failed += n;
  if (opt_.on_error == OnError::kFail && failed > 0) {
    std::string counts;
    for (const auto& [reason, n] : res_.rejected_by_reason)
      counts += fmt::format("{}{}: {}", counts.empty() ? "" : ", ", reason, n);
    throw ConfigError(fmt::format(
        "{} rejected row{} of {} ({}); first {}:\n  {}\n(--on-error skip loads the rest and "
        "writes the rejected rows to a file)",
        failed, failed == 1 ? "" : "s", row, counts, fail_messages_.size(),
        fmt::join(fail_messages_, "\n  ")));
  }
  if (res_.accepted == 0)
    throw ConfigError(fmt::format("{}: no loan was accepted ({} rows)", opt_.tape, row));
  res_.book = std::move(book);
  return std::move(res_);
}

}  // namespace

IngestResult IngestTape(const IngestOptions& options, const TapeMapping& mapping,
                        const std::array<ProductSpec, kNumProducts>& specs) {
  TapeReader reader(options, mapping, specs);
  return reader.Run();
}

void WriteTapeHeader(std::ostream& out) {
  out << fmt::format("{}\n", fmt::join(TapeFieldNames(), ","));
}

void WriteTapeRow(std::ostream& out, int product, bool variable_rate, const TapeLoan& l) {
  // Fields in TapeFieldNames() order; origination_date empty (age_months given), score empty
  // (band given), status from the days past due. Doubles print in their shortest exact form.
  const bool revolving = l.term == 0;
  const bool card_limit = revolving;
  out << fmt::format(
      "{},{},,{},{},{},{},{},{},{},,{},{},{},{},{},{}\n", l.id, kProductNames[product], l.age,
      l.original_balance > 0 ? fmt::format("{}", l.original_balance) : "", l.balance, l.rate,
      variable_rate ? "variable" : "fixed", revolving ? "" : fmt::format("{}", l.term),
      revolving ? "" : fmt::format("{}", l.remaining), kBandNames[l.band], l.months_past_due * 30,
      l.months_past_due > 0 ? "delinquent" : "current",
      !card_limit && l.collateral > 0 ? fmt::format("{}", l.collateral) : "",
      card_limit ? fmt::format("{}", l.collateral) : "", l.restructured ? "true" : "false");
}

}  // namespace loantwin
