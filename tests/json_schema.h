#pragma once
// A small JSON Schema validator for the keywords loantwin's documented schemas use: type
// (string or list), const, enum, properties, required, additionalProperties (bool or schema),
// items, minItems, minimum, maximum, pattern (ECMAScript, searched), $ref ("#/$defs/<name>").
// Returns the first violation as
// "<json pointer>: <reason>", or "" when the document is valid.

#include <nlohmann/json.hpp>
#include <regex>
#include <string>

namespace loantwin::testing {

inline bool JsonTypeMatches(const nlohmann::json& v, const std::string& type) {
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "string") return v.is_string();
  if (type == "boolean") return v.is_boolean();
  if (type == "null") return v.is_null();
  if (type == "integer") return v.is_number_integer();
  if (type == "number") return v.is_number();
  return false;
}

inline std::string ValidateJson(const nlohmann::json& v, const nlohmann::json& schema,
                                const nlohmann::json& root, const std::string& at = "") {
  const std::string where = at.empty() ? "/" : at;
  if (schema.contains("$ref")) {
    const std::string ref = schema["$ref"];
    const std::string prefix = "#/$defs/";
    if (ref.rfind(prefix, 0) != 0) return where + ": unsupported $ref " + ref;
    return ValidateJson(v, root["$defs"][ref.substr(prefix.size())], root, at);
  }
  if (schema.contains("type")) {
    bool ok = false;
    if (schema["type"].is_array()) {
      for (const auto& t : schema["type"]) ok |= JsonTypeMatches(v, t);
    } else {
      ok = JsonTypeMatches(v, schema["type"]);
    }
    if (!ok)
      return where + ": expected type " + schema["type"].dump() + ", got " + v.dump().substr(0, 60);
  }
  if (schema.contains("const") && v != schema["const"])
    return where + ": expected " + schema["const"].dump();
  if (schema.contains("enum")) {
    bool found = false;
    for (const auto& e : schema["enum"]) found |= e == v;
    if (!found) return where + ": " + v.dump() + " not in " + schema["enum"].dump();
  }
  if (v.is_string() && schema.contains("pattern") &&
      !std::regex_search(v.get<std::string>(), std::regex(schema["pattern"].get<std::string>())))
    return where + ": " + v.dump() + " does not match " + schema["pattern"].dump();
  if (v.is_number()) {
    if (schema.contains("minimum") && v.get<double>() < schema["minimum"].get<double>())
      return where + ": below minimum";
    if (schema.contains("maximum") && v.get<double>() > schema["maximum"].get<double>())
      return where + ": above maximum";
  }
  if (v.is_object()) {
    if (schema.contains("required"))
      for (const auto& key : schema["required"])
        if (!v.contains(key.get<std::string>()))
          return where + ": missing required key " + key.get<std::string>();
    for (const auto& [key, value] : v.items()) {
      const std::string child = at + "/" + key;
      if (schema.contains("properties") && schema["properties"].contains(key)) {
        if (auto e = ValidateJson(value, schema["properties"][key], root, child); !e.empty())
          return e;
      } else if (schema.contains("additionalProperties")) {
        const auto& ap = schema["additionalProperties"];
        if (ap.is_boolean()) {
          if (!ap.get<bool>()) return child + ": key not allowed by the schema";
        } else if (auto e = ValidateJson(value, ap, root, child); !e.empty()) {
          return e;
        }
      }
    }
  }
  if (v.is_array()) {
    if (schema.contains("minItems") && v.size() < schema["minItems"].get<size_t>())
      return where + ": fewer than minItems";
    if (schema.contains("items"))
      for (size_t i = 0; i < v.size(); ++i)
        if (auto e = ValidateJson(v[i], schema["items"], root, at + "/" + std::to_string(i));
            !e.empty())
          return e;
  }
  return "";
}

}  // namespace loantwin::testing
