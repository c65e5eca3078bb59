#pragma once
// Parsing of POST /v1/roles/<role>/decide bodies (docs/serving.md): pure functions, no sockets.
//
//   {"observation": {feature: number, ...}, "mask": [0/1, ...]}            one decision
//   {"observations": [{...}, ...], "masks": [[...], ...]}                  a batch
//
// Every feature present, known, a finite number inside its bounds; masks of the role's width
// allowing at least one value per component. A fast path reads the common well-formed shape
// (no masks, keys without escapes) in one pass; anything else goes through a validating SAX
// parser that names the offending field.

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "serve/bundle.h"
#include "serve/reply.h"

namespace loantwin {

struct DecideRequest {
  int rows = 0;
  bool batch = false;          ///< "observations" (even with one row)
  std::vector<float> obs;      ///< [rows x features]
  std::vector<uint8_t> masks;  ///< [rows x mask_width], 1 = allowed (all 1 without masks)
  /// For the audit log of a batch, when asked: each row's request ({"observation": <object
  /// as sent>} or, for bodies with masks, re-serialised with its mask).
  std::vector<std::string> row_requests;
  /// Per row, the bundle's guardrails that restricted its mask (bit k: rule k of the manifest).
  std::vector<uint64_t> guardrails_fired;
};

/// Parses a decide body for `role`; false with `error` set on a client error. `audit_rows`
/// fills row_requests (batches) for per-decision audit lines.
bool ParseDecideRequest(const std::string& body, const ServedRole& role, int max_rows,
                        bool audit_rows, DecideRequest* out, BadRequest* error);

/// The fast path alone (exposed for tests and benches): true only for the well-formed common
/// shape; `objects` (optional) receives each observation object's text.
bool FastDecideParse(const std::string& body, const ServedRole& role, int max_rows, int* rows,
                     std::vector<float>* obs, bool* batch,
                     std::vector<std::string_view>* objects = nullptr);

/// Deepest nesting of arrays and objects in a JSON text (strings and escapes skipped); no
/// parsing, no recursion.
int JsonNestingDepth(std::string_view text);
/// Request bodies nest at most this deep (a decide batch with masks needs 3).
inline constexpr int kMaxJsonDepth = 64;

/// Parses a body that must be a JSON object; "" or the error (with its position). JSON has no
/// NaN or infinity: such values, numbers that overflow and nesting deeper than kMaxJsonDepth
/// fail here.
std::string ParseJsonObject(const std::string& body, nlohmann::json* out);

/// Reads one observation from a JSON object keyed by feature names into out[features];
/// BadRequest naming `where`.<feature> otherwise.
void ReadObservation(const nlohmann::json& obj, const ServedRole& role, const std::string& where,
                     float* out);

}  // namespace loantwin
