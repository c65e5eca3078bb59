#pragma once
// Writes that never leave a half-written file: temp file in the same directory, flush, fsync,
// rename, fsync of the directory.

#include <functional>
#include <ostream>
#include <string>

namespace loantwin {

/// Calls `write` on a stream to "<path>.tmp.<pid>", then renames it over `path`. On any failure
/// the temp file is removed and std::runtime_error names the path.
void WriteFileAtomically(const std::string& path, const std::function<void(std::ostream&)>& write);

}  // namespace loantwin
