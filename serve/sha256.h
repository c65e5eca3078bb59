#pragma once
// SHA-256 (FIPS 180-4), for the audit log's hash chain. Hex digest of a byte string.

#include <string>

namespace loantwin {

std::string Sha256Hex(const std::string& data);

}  // namespace loantwin
