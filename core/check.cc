#include "core/check.h"

namespace loantwin::check_internal {

void Fail(const char* file, int line, const char* expression, const std::string& values) {
  std::string message = fmt::format("{}:{}: check failed: {}", file, line, expression);
  if (!values.empty()) message += " " + values;
  throw CheckError(message);
}

}  // namespace loantwin::check_internal
