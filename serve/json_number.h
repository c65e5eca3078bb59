#pragma once
// Strict JSON numbers for the decision server's fast request parser.

namespace loantwin {

/// The end of the JSON number at p (RFC 8259: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?),
/// or nullptr. std::from_chars alone would also take forms JSON does not have (".5", "05",
/// "inf"), and the audit log stores request bodies verbatim.
const char* JsonNumberEnd(const char* p, const char* end);

/// Reads the JSON number at *p into *v and advances *p; false if there is none or it is not
/// finite. Correctly rounded, bit for bit what std::from_chars gives.
bool ParseJsonNumber(const char** p, const char* end, double* v);

}  // namespace loantwin
