#pragma once
// Strict YAML reading with errors that name file, line and key path. All config parsing in
// loantwin goes through these two classes, so every config gets the same validation:
//   YamlValue  - one node with its location; typed, range-checked conversions.
//   YamlMap    - a mapping whose keys must all be consumed; Done() rejects unknown keys.

#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/config_error.h"

namespace loantwin {

class YamlValue {
 public:
  YamlValue(YAML::Node node, std::shared_ptr<const std::string> file, std::string path);

  /// Parses a whole file. Missing file or YAML syntax error -> ConfigError naming the file.
  static YamlValue LoadFile(const std::string& file);
  /// Parses text (tests, inline configs); `name` stands in for the file name in messages.
  static YamlValue LoadString(const std::string& text, const std::string& name);

  [[noreturn]] void Fail(const std::string& message) const;
  /// "file:line:col: key 'a.b'" - the prefix of every message about this node.
  std::string Where() const;

  bool IsMap() const { return node_.IsMap(); }
  bool IsSequence() const { return node_.IsSequence(); }
  bool IsScalar() const { return node_.IsScalar(); }

  double AsDouble(double lo, double hi) const;
  int64_t AsInt(int64_t lo, int64_t hi) const;
  bool AsBool() const;
  std::string AsString() const;
  /// One of `allowed`; the error lists them.
  std::string AsEnum(const std::vector<std::string>& allowed) const;
  /// A list of numbers; `size` 0 means any non-empty length.
  std::vector<double> AsDoubleList(size_t size, double lo, double hi) const;
  std::vector<YamlValue> Items() const;

  const std::string& path() const { return path_; }
  const std::string& file() const { return *file_; }
  const std::shared_ptr<const std::string>& file_ptr() const { return file_; }
  const YAML::Node& node() const { return node_; }

 private:
  YAML::Node node_;
  std::shared_ptr<const std::string> file_;
  std::string path_;
};

class YamlMap {
 public:
  explicit YamlMap(const YamlValue& value);  // fails unless the node is a mapping

  bool Has(const std::string& key) const;
  std::optional<YamlValue> Get(const std::string& key);
  YamlValue Require(const std::string& key);

  // Optional typed fields: leave *out unchanged when the key is absent.
  void Read(const std::string& key, double* out, double lo, double hi);
  void Read(const std::string& key, int* out, int lo, int hi);
  void Read(const std::string& key, bool* out);
  void Read(const std::string& key, std::string* out);
  template <size_t N>
  void Read(const std::string& key, std::array<double, N>* out, double lo, double hi) {
    if (auto v = Get(key)) {
      auto list = v->AsDoubleList(N, lo, hi);
      for (size_t i = 0; i < N; ++i) (*out)[i] = list[i];
    }
  }

  /// Rejects keys that were never asked for, listing the known ones.
  void Done() const;
  const YamlValue& value() const { return value_; }

 private:
  YamlValue value_;
  std::set<std::string> used_;
  std::set<std::string> asked_;
};

}  // namespace loantwin
