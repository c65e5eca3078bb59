// POST /v1/roles/<role>/decide bodies: the fast path and the validating parser must answer
// every input with a decision or a 400, never crash. The first byte picks the role.

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_common.h"
#include "serve/decide_request.h"

using namespace loantwin;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::vector<std::string> seeds;
  for (const auto& [name, role] : fuzz::TwinRoles()) {
    const std::string obs = fuzz::Observation(role, 0.25);
    const char pick = static_cast<char>(seeds.size() / 3);
    std::string mask = "[";
    for (int i = 0; i < role.mask_width; ++i) mask += i ? ",1" : "1";
    mask += "]";
    seeds.push_back(pick + std::string("{\"observation\":") + obs + "}");
    seeds.push_back(pick + std::string("{\"observations\":[") + obs + "," + obs + "]}");
    seeds.push_back(pick + std::string("{\"observations\":[") + obs + "],\"masks\":[" + mask +
                    "]}");
  }
  fuzz::WriteSeeds("decide", seeds);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto& roles = fuzz::TwinRoles();
  auto it = roles.begin();
  std::advance(it, data[0] % roles.size());
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  DecideRequest request;
  BadRequest error;
  if (ParseDecideRequest(body, it->second, 1024, /*audit_rows=*/true, &request, &error)) {
    // A parsed request is a well-formed decision: rows of the role's width and mask.
    if (request.obs.size() != static_cast<size_t>(request.rows) * it->second.features.size() ||
        request.masks.size() != static_cast<size_t>(request.rows) * it->second.mask_width)
      __builtin_trap();
  }
  return 0;
}
