#include "core/yaml_reader.h"

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace loantwin {
namespace {

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

/// Mappings with a key given twice (YAML forbids it; yaml-cpp would keep the first silently).
/// Iterative: a deep document cannot exhaust the stack here.
/// Counts the documents of a text as the event parser sees them; where the second begins.
struct DocumentCounter : YAML::EventHandler {
  int documents = 0;
  YAML::Mark second;
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents == 2) second = mark;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

void RejectDuplicateKeys(const YAML::Node& root, const std::string& file) {
  std::vector<std::pair<YAML::Node, std::string>> todo = {{root, ""}};
  while (!todo.empty()) {
    auto [node, path] = todo.back();
    todo.pop_back();
    if (node.IsSequence()) {
      for (size_t i = 0; i < node.size(); ++i)
        todo.emplace_back(node[i], fmt::format("{}[{}]", path, i));
    } else if (node.IsMap()) {
      std::map<std::string, int> seen;  // key -> line of its first occurrence
      for (auto it = node.begin(); it != node.end(); ++it) {
        const std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
        const std::string child = path.empty() ? key : path + "." + key;
        const int line = it->first.Mark().line + 1;
        const auto [first, inserted] = seen.emplace(key, line);
        if (!inserted)
          throw ConfigError(fmt::format("{}:{}:{}: key '{}' is given twice (first at line {})",
                                        file, line, it->first.Mark().column + 1, child,
                                        first->second));
        todo.emplace_back(it->second, child);
      }
    }
  }
}

}  // namespace

YamlValue::YamlValue(YAML::Node node, std::shared_ptr<const std::string> file, std::string path)
    : node_(std::move(node)), file_(std::move(file)), path_(std::move(path)) {}

YamlValue YamlValue::LoadFile(const std::string& file) {
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec))
    throw ConfigError(fmt::format("{}: is a directory; a YAML file is expected here", file));
  std::ifstream in(file);
  if (!in) throw ConfigError(fmt::format("{}: cannot open file (missing or unreadable)", file));
  std::stringstream ss;
  ss << in.rdbuf();
  return LoadString(ss.str(), file);
}

YamlValue YamlValue::LoadString(const std::string& text, const std::string& name) {
  auto file = std::make_shared<const std::string>(name);
  try {
    // One document only. Counted with the event parser, stopping at the second: yaml-cpp's
    // LoadAll never returns on some malformed texts (",a - b" makes it produce empty
    // documents without end; found by fuzz/fuzz_yaml.cc).
    {
      std::istringstream in(text);
      YAML::Parser parser(in);
      DocumentCounter counter;
      for (int handled = 0; handled < 2 && parser.HandleNextDocument(counter);) ++handled;
      if (counter.documents > 1)
        throw ConfigError(
            fmt::format("{}:{}: a second YAML document ('---'); a config file holds one document",
                        name, counter.second.line + 1));
    }
    YAML::Node root = YAML::Load(text);
    if (!root || root.IsNull()) throw ConfigError(fmt::format("{}: file is empty", name));
    RejectDuplicateKeys(root, name);
    return YamlValue(root, file, "");
  } catch (const YAML::Exception& e) {
    throw ConfigError(fmt::format("{}:{}:{}: YAML syntax error: {}", name, e.mark.line + 1,
                                  e.mark.column + 1, e.msg));
  }
}

std::string YamlValue::Where() const {
  const auto mark = node_.Mark();
  std::string loc = *file_;
  if (mark.line >= 0) loc += fmt::format(":{}:{}", mark.line + 1, mark.column + 1);
  if (!path_.empty()) loc += fmt::format(": key '{}'", path_);
  return loc;
}

void YamlValue::Fail(const std::string& message) const {
  throw ConfigError(fmt::format("{}: {}", Where(), message));
}

double YamlValue::AsDouble(double lo, double hi) const {
  if (!node_.IsScalar()) Fail("expected a number");
  double v = 0;
  try {
    v = node_.as<double>();
  } catch (const YAML::Exception&) {
    Fail(fmt::format("expected a number, got '{}'", node_.Scalar()));
  }
  if (!std::isfinite(v)) Fail(fmt::format("expected a finite number, got '{}'", node_.Scalar()));
  if (v < lo || v > hi) Fail(fmt::format("{} is out of range [{}, {}]", node_.Scalar(), lo, hi));
  return v;
}

int64_t YamlValue::AsInt(int64_t lo, int64_t hi) const {
  if (!node_.IsScalar()) Fail("expected an integer");
  int64_t v = 0;
  try {
    v = node_.as<int64_t>();
  } catch (const YAML::Exception&) {
    Fail(fmt::format("expected an integer, got '{}'", node_.Scalar()));
  }
  if (v < lo || v > hi) Fail(fmt::format("{} is out of range [{}, {}]", v, lo, hi));
  return v;
}

bool YamlValue::AsBool() const {
  if (!node_.IsScalar()) Fail("expected true or false");
  try {
    return node_.as<bool>();
  } catch (const YAML::Exception&) {
    Fail(fmt::format("expected true or false, got '{}'", node_.Scalar()));
  }
}

std::string YamlValue::AsString() const {
  if (!node_.IsScalar()) Fail("expected a string");
  return node_.Scalar();
}

std::string YamlValue::AsEnum(const std::vector<std::string>& allowed) const {
  std::string s = AsString();
  for (const auto& a : allowed)
    if (a == s) return s;
  Fail(fmt::format("'{}' is not one of: {}", s, Join(allowed)));
}

std::vector<double> YamlValue::AsDoubleList(size_t size, double lo, double hi) const {
  if (!node_.IsSequence()) Fail("expected a list of numbers");
  if (size != 0 && node_.size() != size)
    Fail(fmt::format("expected {} values, got {}", size, node_.size()));
  if (size == 0 && node_.size() == 0) Fail("expected a non-empty list");
  std::vector<double> out;
  for (const auto& item : Items()) out.push_back(item.AsDouble(lo, hi));
  return out;
}

std::vector<YamlValue> YamlValue::Items() const {
  if (!node_.IsSequence()) Fail("expected a list");
  std::vector<YamlValue> out;
  for (size_t i = 0; i < node_.size(); ++i)
    out.emplace_back(node_[i], file_, fmt::format("{}[{}]", path_, i));
  return out;
}

YamlMap::YamlMap(const YamlValue& value) : value_(value) {
  if (!value.IsMap()) value.Fail("expected a mapping of key: value");
}

bool YamlMap::Has(const std::string& key) const {
  return static_cast<bool>(value_.node()[key]);
}

std::optional<YamlValue> YamlMap::Get(const std::string& key) {
  asked_.insert(key);
  const YAML::Node child = value_.node()[key];
  if (!child) return std::nullopt;
  used_.insert(key);
  std::string path = value_.path().empty() ? key : value_.path() + "." + key;
  return YamlValue(child, value_.file_ptr(), path);
}

YamlValue YamlMap::Require(const std::string& key) {
  auto v = Get(key);
  if (!v) value_.Fail(fmt::format("missing required key '{}'", key));
  return *v;
}

void YamlMap::Read(const std::string& key, double* out, double lo, double hi) {
  if (auto v = Get(key)) *out = v->AsDouble(lo, hi);
}
void YamlMap::Read(const std::string& key, int* out, int lo, int hi) {
  if (auto v = Get(key)) *out = static_cast<int>(v->AsInt(lo, hi));
}
void YamlMap::Read(const std::string& key, bool* out) {
  if (auto v = Get(key)) *out = v->AsBool();
}
void YamlMap::Read(const std::string& key, std::string* out) {
  if (auto v = Get(key)) *out = v->AsString();
}

void YamlMap::Done() const {
  for (auto it = value_.node().begin(); it != value_.node().end(); ++it) {
    const std::string key = it->first.Scalar();
    if (used_.count(key)) continue;
    std::string path = value_.path().empty() ? key : value_.path() + "." + key;
    YamlValue bad(it->first, value_.file_ptr(), path);
    std::vector<std::string> known(asked_.begin(), asked_.end());
    bad.Fail(fmt::format("unknown key (known keys here: {})", Join(known)));
  }
}

}  // namespace loantwin
