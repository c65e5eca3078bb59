#pragma once
// Append-only audit log of decisions, one JSON object per line, in this exact layout:
//   {"time":<µs since the epoch>,"route":"..","request":{..},"response":{..},"prev":"<64
//   hex>","hash":"<64 hex>"}
// "hash" is the SHA-256 of the line's bytes without the hash member, i.e. of
// `{"time":..,"prev":"<64 hex>"}` exactly as written, and "prev" is the previous line's hash
// (64 zeros for the first): an edited line no longer matches its hash, and a removed,
// reordered or inserted line breaks the chain. The request is the client's JSON body as
// received (line breaks written as spaces). Lines are written with one write(2) each before
// the response is sent, so a crash of the process loses no acknowledged decision; with fsync
// on, neither does a crash of the machine.

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace loantwin {

/// One decision to record: the request and response JSON.
struct AuditEntry {
  std::string_view request, response;
};

class AuditLog {
 public:
  /// Opens (creating) `file` for appending and continues the chain of its last line; throws
  /// if the existing chain is broken.
  AuditLog(const std::string& file, bool fsync);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  /// Writes one decision as a line. `request_json` and `response_json` must be JSON values
  /// (the server only passes bodies it has parsed). Throws on a write error. Thread-safe; the
  /// bulk of the hashing happens outside the lock.
  void Append(std::string_view route, std::string_view request_json,
              std::string_view response_json) {
    Append(route, {{request_json, response_json}});
  }
  /// Writes several decisions of one route as consecutive lines with one write(2).
  void Append(std::string_view route, const std::vector<AuditEntry>& entries);
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

/// `loantwin audit verify <file>`: prints the verdict; 0 when the chain is intact, else 1.
int VerifyAuditCommand(const std::string& file);

}  // namespace loantwin
