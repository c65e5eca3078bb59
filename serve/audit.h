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
//
// Faults (docs/operations.md): a final record without its newline is a write cut short (kill
// -9, power loss) and was never acknowledged: opening the log verifies every complete line,
// removes that tail and logs what it removed. A failed write (disk full, I/O error) or a failed
// fdatasync removes the record's bytes again, throws AuditWriteError (the server answers 503:
// no decision without its record) and leaves the log not writable until Probe() finds it
// writable again; later records never follow a partial one.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace loantwin {

/// One decision to record: the request and response JSON.
struct AuditEntry {
  std::string_view request, response;
};

/// A record could not be written (and was removed): the decision must not be answered.
class AuditWriteError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class AuditLog {
 public:
  /// Opens (creating) `file` for appending and continues the chain of its last line; throws
  /// if the existing chain is broken. An interrupted final record (no newline) is removed
  /// and logged.
  AuditLog(const std::string& file, bool fsync);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  /// Writes one decision as a line. `request_json` and `response_json` must be JSON values
  /// (the server only passes bodies it has parsed). Throws AuditWriteError when the record
  /// could not be written in full (nothing of it stays in the file). Thread-safe; the bulk of
  /// the hashing happens outside the lock.
  void Append(std::string_view route, std::string_view request_json,
              std::string_view response_json) {
    Append(route, {{request_json, response_json}});
  }
  /// Writes several decisions of one route as consecutive lines with one write(2).
  void Append(std::string_view route, const std::vector<AuditEntry>& entries);
  /// Flushes to stable storage (fsync).
  void Sync();
  int64_t lines() const;
  /// The last `n` complete records (oldest first), from at most `max_bytes` at the end of the
  /// log; fewer when they do not fit. Thread-safe (no half-written record is ever seen).
  std::vector<std::string> Tail(int n, size_t max_bytes = size_t{1} << 20) const;
  /// False after a failed write until Probe() succeeds.
  bool writable() const { return writable_.load(std::memory_order_acquire); }
  /// When not writable: removes any partial bytes and writes kProbeBytes to `<file>.probe`
  /// (removed again); true when both work and the log takes records again. Cheap when
  /// writable (/readyz calls it).
  bool Probe();
  static constexpr size_t kProbeBytes = size_t{64} << 10;

 private:
  /// With mu_ held: truncates to the last complete record and probes.
  bool RecoverLocked();

  mutable std::mutex mu_;
  std::string file_;
  int fd_ = -1;
  bool fsync_ = false;
  std::string prev_;
  int64_t lines_ = 0;
  uint64_t size_ = 0;  ///< bytes of complete records
  std::atomic<bool> writable_{true};
};

struct AuditVerification {
  bool ok = true;
  int64_t lines = 0;      ///< lines read
  int64_t first_bad = 0;  ///< 1-based line of the first broken link (0 if ok)
  std::string reason;
  std::string last_hash;        ///< hash of the last good line (genesis when empty)
  uint64_t complete_bytes = 0;  ///< bytes of the complete lines read
  /// Bytes after the last newline: an interrupted final write (not a record, not counted in
  /// `lines`; the chain is judged without it).
  uint64_t torn_tail_bytes = 0;
};
/// Checks every link of the chain.
AuditVerification VerifyAuditLog(const std::string& file);

inline const std::string kGenesisHash(64, '0');

/// `loantwin audit verify <file>`: prints the verdict; 0 when the chain is intact, else 1.
int VerifyAuditCommand(const std::string& file);

}  // namespace loantwin
