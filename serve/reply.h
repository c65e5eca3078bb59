#pragma once
// What a request handler answers (the HTTP session turns it into a response), and the client
// error a request parser raises.

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace loantwin {

struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  int retry_after = 0;  ///< seconds, 503 only
};

/// Strings from a request may hold invalid UTF-8 (an unknown key echoed in an error): such
/// bytes are written as U+FFFD, never thrown on.
inline Reply JsonReply(int status, const nlohmann::json& j) {
  return {status, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
          "application/json", 0};
}

/// {"error": message, "field": field}.
inline Reply ErrorReply(int status, const std::string& message, const std::string& field = "") {
  nlohmann::json j = {{"error", message}};
  if (!field.empty()) j["field"] = field;
  return JsonReply(status, j);
}

/// A client error found while reading a request (400 naming the field).
struct BadRequest {
  std::string message, field;
};

/// Answers a request; called exactly once per request, from any thread.
using Respond = std::function<void(Reply)>;

}  // namespace loantwin
