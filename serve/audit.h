#pragma once
// Append-only audit log of decisions: one JSON object per line with "hash", the SHA-256 of the
// line's JSON without "hash", and "prev", the previous line's hash (64 zeros for the first): an
// edited line no longer matches its hash, and a removed, reordered or inserted line breaks the
// chain. Lines are written with one write(2) each before the response is sent, so a
// crash of the process loses no acknowledged decision; with fsync on, neither does a crash of
// the machine.

#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

namespace loantwin {

class AuditLog {
 public:
  /// Opens (creating) `file` for appending and continues the chain of its last line.
  AuditLog(const std::string& file, bool fsync);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  /// Adds "prev" and writes the record as one line. Throws on a write error.
  void Append(nlohmann::json record);
  /// Flushes to stable storage (fsync).
  void Sync();
  int64_t lines() const;

 private:
  mutable std::mutex mu_;
  int fd_ = -1;
  bool fsync_ = false;
  std::string prev_;
  int64_t lines_ = 0;
};

struct AuditVerification;

struct AuditVerification {
  bool ok = true;
  int64_t lines = 0;      ///< lines read
  int64_t first_bad = 0;  ///< 1-based line of the first broken link (0 if ok)
  std::string reason;
  std::string last_hash;  ///< hash of the last good line (genesis when empty)
};
/// Checks every link of the chain.
AuditVerification VerifyAuditLog(const std::string& file);

inline const std::string kGenesisHash(64, '0');

}  // namespace loantwin
