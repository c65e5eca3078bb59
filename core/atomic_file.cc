#include "core/atomic_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace loantwin {
namespace {

/// fsync of a path opened read-only (a file's data, or a directory's entries).
bool SyncPath(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

void WriteFileAtomically(const std::string& path, const std::function<void(std::ostream&)>& write) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw std::runtime_error(
        fmt::format("{}: is a directory; give the path of a file to write", path));
  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(fmt::format("{}: cannot open for writing", tmp));
    try {
      write(out);
    } catch (...) {
      out.close();
      std::remove(tmp.c_str());
      throw;
    }
    out.flush();
    out.close();
    if (!out) {
      std::remove(tmp.c_str());
      throw std::runtime_error(fmt::format("{}: write failed (disk full?)", path));
    }
  }
  // The data reaches the disk before the rename publishes it, and the rename before we return.
  if (!SyncPath(tmp, false)) {
    std::remove(tmp.c_str());
    throw std::runtime_error(fmt::format("{}: fsync failed (disk full?)", path));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error(fmt::format("{}: cannot rename temp file into place", path));
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  SyncPath(dir.empty() ? "." : dir, true);  // best effort: some file systems refuse it
}

std::vector<std::string> RemoveStaleTemporaries(const std::string& dir) {
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const size_t at = name.rfind(".tmp.");
    if (at == std::string::npos || at + 5 == name.size()) continue;
    long pid = 0;
    bool digits = true;
    for (size_t i = at + 5; i < name.size() && digits; ++i) {
      digits = name[i] >= '0' && name[i] <= '9' && pid < (1L << 30);
      pid = pid * 10 + (name[i] - '0');
    }
    if (!digits || pid <= 0 || pid == ::getpid()) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // still running
    std::error_code rm;
    if (std::filesystem::remove(e.path(), rm)) removed.push_back(e.path().string());
  }
  return removed;
}

}  // namespace loantwin
