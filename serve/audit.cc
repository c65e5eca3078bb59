#include "serve/audit.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "serve/sha256.h"

namespace loantwin {

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

void AuditLog::Append(nlohmann::json record) {
  std::lock_guard<std::mutex> lock(mu_);
  record["prev"] = prev_;
  record.erase("hash");
  const std::string hash = Sha256Hex(record.dump());
  record["hash"] = hash;
  std::string line = record.dump();
  line += '\n';
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("audit log write failed: ") + std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  if (fsync_) ::fdatasync(fd_);
  prev_ = hash;
  ++lines_;
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
  std::ifstream in(file);
  v.last_hash = kGenesisHash;
  if (!in) return v;  // a missing log is an empty chain
  std::string prev = kGenesisHash;
  for (std::string line; std::getline(in, line);) {
    ++v.lines;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      v.ok = false, v.first_bad = v.lines, v.reason = "not a JSON object (truncated or edited)";
      return v;
    }
    if (!j.is_object() || !j.contains("prev") || !j["prev"].is_string()) {
      v.ok = false, v.first_bad = v.lines, v.reason = "no 'prev' hash";
      return v;
    }
    if (!j.contains("hash") || !j["hash"].is_string()) {
      v.ok = false, v.first_bad = v.lines, v.reason = "no 'hash'";
      return v;
    }
    const std::string hash = j["hash"];
    j.erase("hash");
    if (Sha256Hex(j.dump()) != hash) {
      v.ok = false, v.first_bad = v.lines;
      v.reason = "'hash' does not match the line's content (the line was edited)";
      return v;
    }
    if (j["prev"].get<std::string>() != prev) {
      v.ok = false, v.first_bad = v.lines;
      v.reason =
          "'prev' is not the previous line's hash (a line was removed, reordered or "
          "inserted before this one)";
      return v;
    }
    prev = hash;
  }
  v.last_hash = prev;
  return v;
}

}  // namespace loantwin
