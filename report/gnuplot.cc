#include "report/gnuplot.h"

#include <fmt/format.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace loantwin {
namespace {

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

/// A private directory under the system temporary directory, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "loantwin-plot-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("cannot create a temporary directory");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

}  // namespace

std::string GnuplotCommand() {
  const char* env = std::getenv("LOANTWIN_GNUPLOT");
  return env && *env ? env : "gnuplot";
}

bool GnuplotAvailable() {
  const std::string cmd = ShellQuote(GnuplotCommand()) + " -e 'exit' >/dev/null 2>&1";
  const int rc = std::system(cmd.c_str());
  return rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 0;
}

std::string RunGnuplot(const std::string& script,
                       const std::vector<std::pair<std::string, std::string>>& data_files,
                       const std::string& output) {
  TempDir dir;
  for (const auto& [name, contents] : data_files) {
    std::ofstream out(dir.path() / name, std::ios::binary);
    out << contents;
    if (!out) throw std::runtime_error("cannot write chart data " + name);
  }
  {
    std::ofstream out(dir.path() / "chart.gp");
    out << script;
  }
  const std::string cmd =
      fmt::format("cd {} && {} chart.gp >gnuplot.out 2>&1", ShellQuote(dir.path().string()),
                  ShellQuote(GnuplotCommand()));
  const int rc = std::system(cmd.c_str());
  if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
    if (rc != -1 && WIFEXITED(rc) && WEXITSTATUS(rc) == 127)
      throw std::runtime_error(fmt::format(
          "gnuplot ('{}') not found: install gnuplot-nox (scripts/install-deps.sh), set "
          "LOANTWIN_GNUPLOT, or pass --no-charts",
          GnuplotCommand()));
    throw std::runtime_error("gnuplot failed drawing " + output + ": " +
                             ReadAll(dir.path() / "gnuplot.out"));
  }
  const fs::path out = dir.path() / output;
  if (!fs::is_regular_file(out))
    throw std::runtime_error("gnuplot wrote no " + output + ": " +
                             ReadAll(dir.path() / "gnuplot.out"));
  return ReadAll(out);
}

std::string GnuplotQuote(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace loantwin
