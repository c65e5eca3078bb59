#include "serve/audit.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <stdexcept>

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

AuditLog::AuditLog(const std::string& file, bool fsync) : fsync_(fsync) {
  const AuditVerification v = VerifyAuditLog(file);
  if (!v.ok)
    throw std::runtime_error(
        fmt::format("audit log {}: line {}: {}; refusing to extend a broken "
                    "chain (move the file away)",
                    file, v.first_bad, v.reason));
  prev_ = v.last_hash;
  lines_ = v.lines;
  fd_ = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw std::runtime_error(fmt::format("audit log {}: {}", file, std::strerror(errno)));
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
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::write(fd_, out.data() + done, out.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("audit log write failed: ") + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  if (fsync_) ::fdatasync(fd_);
  prev_ = std::move(prev);
  lines_ += static_cast<int64_t>(entries.size());
}

void AuditLog::Sync() {
  std::lock_guard<std::mutex> lock(mu_);
  ::fsync(fd_);
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
  }
  v.last_hash = prev;
  return v;
}

int VerifyAuditCommand(const std::string& file) {
  const AuditVerification v = VerifyAuditLog(file);
  if (v.ok) {
    fmt::print("{}: {} lines, hash chain intact (last hash {})\n", file, v.lines, v.last_hash);
    return 0;
  }
  fmt::print("{}: BROKEN at line {} of {}: {}\n", file, v.first_bad, v.lines, v.reason);
  return 1;
}

}  // namespace loantwin
