#pragma once
// Writes that never leave a half-written file: temp file in the same directory, flush, fsync,
// rename, fsync of the directory.

#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace loantwin {

/// Calls `write` on a stream to "<path>.tmp.<pid>", then renames it over `path`. On any failure
/// the temp file is removed and std::runtime_error names the path.
void WriteFileAtomically(const std::string& path, const std::function<void(std::ostream&)>& write);

/// Removes the "<name>.tmp.<pid>" files in `dir` left by writers that died (their process
/// no longer runs); a live writer's file is kept. Returns the paths removed.
std::vector<std::string> RemoveStaleTemporaries(const std::string& dir);

}  // namespace loantwin
