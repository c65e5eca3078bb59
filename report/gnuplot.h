#pragma once
// Charts drawn by gnuplot (Debian package gnuplot-nox), driven through a script and data files
// in a private temporary directory. The binary is $LOANTWIN_GNUPLOT or `gnuplot` on the PATH.

#include <string>
#include <utility>
#include <vector>

namespace loantwin {

/// The gnuplot command used, and whether it runs.
std::string GnuplotCommand();
bool GnuplotAvailable();

/// Runs `script` with the named data files (name -> contents) next to it; the script writes
/// its output to the file named by `output` (relative name, e.g. "chart.svg"), whose contents
/// are returned. Throws with gnuplot's error output when it fails.
std::string RunGnuplot(const std::string& script,
                       const std::vector<std::pair<std::string, std::string>>& data_files,
                       const std::string& output);

/// Escapes text for a gnuplot double-quoted string (titles, labels).
std::string GnuplotQuote(const std::string& text);

}  // namespace loantwin
