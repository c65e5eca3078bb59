#include "env/twin/metrics.h"

#include <vector>

namespace loantwin {
namespace {

struct Catalogue {
  std::vector<std::string> names, descriptions;
  Catalogue() {
#define LOANTWIN_ADD_GLOBAL(id, name, desc) \
  names.emplace_back(name);                 \
  descriptions.emplace_back(desc);
    LOANTWIN_GLOBAL_METRICS(LOANTWIN_ADD_GLOBAL)
#undef LOANTWIN_ADD_GLOBAL
    for (int p = 0; p < kNumProducts; ++p) {
      const std::string prefix = std::string(kProductNames[p]) + "_";
#define LOANTWIN_ADD_PRODUCT(id, name, desc) \
  names.push_back(prefix + name);            \
  descriptions.push_back(std::string(kProductNames[p]) + ": " + desc);
      LOANTWIN_PRODUCT_METRICS(LOANTWIN_ADD_PRODUCT)
#undef LOANTWIN_ADD_PRODUCT
    }
  }
};

const Catalogue& Get() {
  static const Catalogue catalogue;
  return catalogue;
}

}  // namespace

const std::string& MetricName(int index) {
  return Get().names.at(index);
}
const std::string& MetricDescription(int index) {
  return Get().descriptions.at(index);
}
int FindMetric(const std::string& name) {
  const auto& names = Get().names;
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<int>(i);
  return -1;
}

}  // namespace loantwin
