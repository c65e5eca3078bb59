#include "serve/decide_request.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "serve/json_number.h"

using json = nlohmann::json;

namespace loantwin {

/// Parses a request body that must be a JSON object; "" or the error (with its position).
/// JSON has no NaN or infinity: such values, and numbers that overflow, fail here.
int JsonNestingDepth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // the escaped character cannot end the string
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

std::string ParseJsonObject(const std::string& body, json* out) {
  // A tree deeper than this is never a valid request; refusing it before parsing keeps the
  // recursive parts of a JSON library (copies, destruction) off deep input.
  if (const int depth = JsonNestingDepth(body); depth > kMaxJsonDepth)
    return fmt::format("JSON nested {} levels deep (at most {})", depth, kMaxJsonDepth);
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

namespace {

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

}  // namespace

/// The fast path of a decide body: well-formed {"observation": {...}} or {"observations":
/// [{...}, ...]} without masks, keys without escapes, every feature present and valid. Keys
/// are matched in manifest order first (clients usually send them so), numbers read by
/// ParseJsonNumber (strict JSON, exact). Anything else returns false and the body goes to
/// DecideBodyParser, which gives the precise error (or accepts the less common forms).
/// `objects` (optional) receives each observation object's text, for the audit log.
bool FastDecideParse(const std::string& body, const ServedRole& role, int max_rows, int* rows,
                     std::vector<float>* obs, bool* batch, std::vector<std::string_view>* objects) {
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
    const auto* q = static_cast<const char*>(std::memchr(p, '"', static_cast<size_t>(end - p)));
    if (!q || std::memchr(s, '\\', static_cast<size_t>(q - s))) return false;  // escapes: slow path
    *out = std::string_view(s, static_cast<size_t>(q - s));
    p = q + 1;
    return true;
  };
  std::vector<uint8_t> seen(d);
  auto object = [&](float* row) {
    if (!lit('{')) return false;
    const char* start = p - 1;
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
      if (!ParseJsonNumber(&p, end, &v)) return false;
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
      if (objects) objects->emplace_back(start, static_cast<size_t>(p - start));
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

bool ParseDecideRequest(const std::string& body, const ServedRole& role, int max_rows,
                        bool audit_rows, DecideRequest* out, BadRequest* error) {
  out->row_requests.clear();
  std::vector<std::string_view> objects;
  if (FastDecideParse(body, role, max_rows, &out->rows, &out->obs, &out->batch,
                      audit_rows ? &objects : nullptr)) {
    out->masks.assign(static_cast<size_t>(out->rows) * role.mask_width, 1);
    if (audit_rows && out->batch)
      for (const auto& v : objects)
        out->row_requests.push_back("{\"observation\":" + std::string(v) + "}");
    return true;
  }
  DecideBodyParser parser(role, max_rows);
  try {
    json::sax_parse(body, &parser);
  } catch (const json::exception& e) {  // e.g. numbers that overflow
    parser.Fail(std::string("malformed JSON body: ") + e.what(), "");
  }
  if (parser.ok()) parser.Finish();
  if (!parser.ok()) {
    *error = {parser.error(), parser.field()};
    return false;
  }
  out->rows = parser.rows();
  out->obs = std::move(parser.obs());
  out->masks = std::move(parser.masks());
  out->batch = parser.batch();
  out->row_requests.clear();
  if (audit_rows && out->batch) {  // re-serialised from the parsed JSON (masks included)
    const json j = json::parse(body);
    for (size_t i = 0; i < j["observations"].size(); ++i) {
      json one = {{"observation", j["observations"][i]}};
      if (j.contains("masks")) one["mask"] = j["masks"][i];
      out->row_requests.push_back(one.dump());
    }
  }
  return true;
}

}  // namespace loantwin
