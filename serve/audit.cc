#include "serve/audit.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "core/log_text.h"
#include "core/sha256.h"

namespace loantwin {
namespace {

constexpr std::string_view kPrevKey = ",\"prev\":\"";    // then 64 hex
constexpr std::string_view kHashKey = "\",\"hash\":\"";  // then 64 hex, then "}
constexpr size_t kTail = kPrevKey.size() + 64 + kHashKey.size() + 64 + 2;

void AppendOneLine(std::string* out, std::string_view json) {
  const size_t at = out->size();
  out->append(json.data(), json.size());
  // Raw line breaks can only be whitespace in valid JSON (inside strings they are escaped).
  for (const char c : {'\n', '\r'}) {
    char* p = out->data() + at;
    char* const end = out->data() + out->size();
    while ((p = static_cast<char*>(std::memchr(p, c, static_cast<size_t>(end - p)))) != nullptr)
      *p++ = ' ';
  }
}

bool IsHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace

AuditLog::AuditLog(const std::string& file, bool fsync) : file_(file), fsync_(fsync) {
  const AuditVerification v = VerifyAuditLog(file);
  if (!v.ok)
    throw std::runtime_error(
        fmt::format("audit log {}: line {}: {}; refusing to extend a broken "
                    "chain (move the file away)",
                    file, v.first_bad, v.reason));
  prev_ = v.last_hash;
  lines_ = v.lines;
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw std::runtime_error(fmt::format("audit log {}: {}", file, std::strerror(errno)));
  size_ = v.complete_bytes;
  if (v.torn_tail_bytes > 0) {
    // A write cut short (the process or machine died during it): never acknowledged.
    std::string tail(std::min<uint64_t>(v.torn_tail_bytes, 120), '\0');
    const ssize_t got =
        ::pread(fd_, tail.data(), tail.size(), static_cast<off_t>(v.complete_bytes));
    tail.resize(got > 0 ? static_cast<size_t>(got) : 0);
    if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0 || ::fsync(fd_) != 0) {
      const int err = errno;
      ::close(fd_);
      throw std::runtime_error(
          fmt::format("audit log {}: cannot remove the interrupted final "
                      "record: {}",
                      file, std::strerror(err)));
    }
    spdlog::warn(
        "audit log {}: removed an interrupted final record ({} bytes without a newline, never "
        "acknowledged; it began \"{}\"); the {} complete records verify and the chain continues",
        file, v.torn_tail_bytes, EscapeForLog(tail, 120), v.lines);
  }
}

AuditLog::~AuditLog() {
  if (fd_ >= 0) {
    ::fsync(fd_);
    ::close(fd_);
  }
}

void AuditLog::Append(std::string_view route, const std::vector<AuditEntry>& entries) {
  if (entries.empty()) return;
  const int64_t time = std::chrono::duration_cast<std::chrono::microseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
  std::string escaped_route;
  for (char c : route)  // routes are the server's own labels; escape anyway
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20)
      escaped_route += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
    else
      escaped_route += c;
  // Each line up to its "prev" value, and the hash state over it, outside the lock.
  std::vector<std::string> heads(entries.size());
  std::vector<Sha256> states(entries.size());
  size_t bytes = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    std::string& line = heads[i];
    line.reserve(entries[i].request.size() + entries[i].response.size() + route.size() + 80);
    line += "{\"time\":";
    line += std::to_string(time);
    line += ",\"route\":\"";
    line += escaped_route;
    line += "\",\"request\":";
    AppendOneLine(&line, entries[i].request);
    line += ",\"response\":";
    AppendOneLine(&line, entries[i].response);
    line += kPrevKey;
    states[i].Update(line);
    bytes += line.size() + 64 + kHashKey.size() + 64 + 3;
  }
  std::string out;
  out.reserve(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  std::string prev = prev_;
  for (size_t i = 0; i < entries.size(); ++i) {
    states[i].Update(prev);
    states[i].Update("\"}");
    std::string hash = states[i].FinalHex();
    out += heads[i];
    out += prev;
    out += kHashKey;
    out += hash;
    out += "\"}\n";
    prev = std::move(hash);
  }
  const bool recovering = !writable_.load(std::memory_order_relaxed);
  if (recovering && ::ftruncate(fd_, static_cast<off_t>(size_)) != 0)
    throw AuditWriteError(fmt::format("audit log {}: cannot remove a failed record ({})", file_,
                                      std::strerror(errno)));
  auto fail = [&](const char* what, int err) {
    // Remove whatever part of the records reached the file: the next record must follow a
    // complete one. If even that fails, RecoverLocked retries before the next write.
    writable_.store(false, std::memory_order_release);
    (void)!::ftruncate(fd_, static_cast<off_t>(size_));
    return AuditWriteError(fmt::format("audit log {}: {} failed ({}); the record was removed",
                                       file_, what, std::strerror(err)));
  };
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::write(fd_, out.data() + done, out.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw fail("write", errno);
    }
    if (n == 0) throw fail("write", EIO);
    done += static_cast<size_t>(n);
  }
  if (fsync_ && ::fdatasync(fd_) != 0) throw fail("fdatasync", errno);
  if (recovering) {
    writable_.store(true, std::memory_order_release);
    spdlog::info("audit log {}: writable again", file_);
  }
  size_ += out.size();
  prev_ = std::move(prev);
  lines_ += static_cast<int64_t>(entries.size());
}

bool AuditLog::RecoverLocked() {
  if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) return false;
  // Writes kProbeBytes to a file beside the log and removes it: the test a real record would
  // face (no space, quota, file size limit, read-only or failing device).
  const std::string probe = file_ + ".probe";
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  const std::string block(kProbeBytes, ' ');
  const bool ok = ::write(fd, block.data(), block.size()) == static_cast<ssize_t>(block.size()) &&
                  ::fdatasync(fd) == 0;
  ::close(fd);
  ::unlink(probe.c_str());
  if (!ok) return false;
  writable_.store(true, std::memory_order_release);
  spdlog::info("audit log {}: writable again", file_);
  return true;
}

bool AuditLog::Probe() {
  if (writable()) return true;
  std::lock_guard<std::mutex> lock(mu_);
  return writable() || RecoverLocked();
}

void AuditLog::Sync() {
  std::lock_guard<std::mutex> lock(mu_);
  ::fsync(fd_);
}

std::vector<std::string> AuditLog::Tail(int n, size_t max_bytes) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  if (n <= 0 || size_ == 0) return out;
  const uint64_t want = std::min<uint64_t>(size_, max_bytes);
  std::string buf(want, '\0');
  size_t got = 0;
  while (got < want) {
    const ssize_t r =
        ::pread(fd_, buf.data() + got, want - got, static_cast<off_t>(size_ - want + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) throw std::runtime_error("audit log " + file_ + ": cannot be read back");
    got += static_cast<size_t>(r);
  }
  // Complete records only: drop a leading partial line when the window starts mid-record.
  size_t start = 0;
  if (want < size_) start = buf.find('\n') == std::string::npos ? buf.size() : buf.find('\n') + 1;
  std::vector<std::string_view> lines;
  for (size_t pos = start; pos < buf.size();) {
    const size_t end = buf.find('\n', pos);
    if (end == std::string::npos) break;
    lines.emplace_back(buf.data() + pos, end - pos);
    pos = end + 1;
  }
  const size_t from = lines.size() > static_cast<size_t>(n) ? lines.size() - n : 0;
  for (size_t i = from; i < lines.size(); ++i) out.emplace_back(lines[i]);
  return out;
}

int64_t AuditLog::lines() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lines_;
}

AuditVerification VerifyAuditLog(const std::string& file) {
  AuditVerification v;
  std::ifstream in(file, std::ios::binary);
  v.last_hash = kGenesisHash;
  if (!in) return v;  // a missing log is an empty chain
  std::string prev = kGenesisHash;
  auto bad = [&](const char* reason) {
    v.ok = false, v.first_bad = v.lines, v.reason = reason;
    return v;
  };
  for (std::string line; std::getline(in, line);) {
    if (in.eof()) {  // no newline after it: an interrupted final write, not a record
      v.torn_tail_bytes = line.size();
      break;
    }
    ++v.lines;
    const std::string_view l(line);
    if (l.size() < kTail + 2 || l.front() != '{' || l.substr(l.size() - 2) != "\"}")
      return bad("not an audit record (truncated or edited)");
    const std::string_view tail = l.substr(l.size() - kTail);
    if (tail.substr(0, kPrevKey.size()) != kPrevKey || !IsHex64(tail.substr(kPrevKey.size(), 64)))
      return bad("no 'prev' hash where the record ends");
    if (tail.substr(kPrevKey.size() + 64, kHashKey.size()) != kHashKey ||
        !IsHex64(tail.substr(kPrevKey.size() + 64 + kHashKey.size(), 64)))
      return bad("no 'hash' where the record ends");
    const std::string_view hash = tail.substr(kPrevKey.size() + 64 + kHashKey.size(), 64);
    Sha256 sha;
    sha.Update(l.substr(0, l.size() - kTail + kPrevKey.size() + 64));
    sha.Update("\"}");
    if (sha.FinalHex() != hash)
      return bad("'hash' does not match the line's content (the line was edited)");
    if (tail.substr(kPrevKey.size(), 64) != prev)
      return bad(
          "'prev' is not the previous line's hash (a line was removed, reordered or "
          "inserted before this one)");
    prev = std::string(hash);
    v.complete_bytes += line.size() + 1;
  }
  v.last_hash = prev;
  return v;
}

int VerifyAuditCommand(const std::string& file) {
  const AuditVerification v = VerifyAuditLog(file);
  if (v.ok) {
    fmt::print("{}: {} lines, hash chain intact (last hash {})\n", file, v.lines, v.last_hash);
    if (v.torn_tail_bytes > 0)
      fmt::print(
          "note: {} bytes after the last line are an interrupted write (no newline; never "
          "acknowledged); `loantwin serve` removes them when it opens the log\n",
          v.torn_tail_bytes);
    return 0;
  }
  fmt::print("{}: BROKEN at line {} of {}: {}\n", file, v.first_bad, v.lines, v.reason);
  return 1;
}

}  // namespace loantwin
