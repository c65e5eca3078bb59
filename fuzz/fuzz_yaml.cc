// Institution and scenario files: any text is loaded or refused with a ConfigError naming the
// place, never a crash.

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "core/config_error.h"
#include "env/twin/config_paths.h"
#include "env/twin/institution.h"
#include "env/twin/scenario.h"
#include "fuzz/fuzz_common.h"

using namespace loantwin;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::vector<std::string> seeds;
  for (const char* kind : {"institutions", "scenarios"})
    for (const auto& name : ListConfigs(kind)) {
      std::ifstream in(ResolveConfig(kind, name), std::ios::binary);
      seeds.emplace_back((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      seeds.back().insert(0, 1, kind[0] == 'i' ? 'I' : 'S');  // the first byte picks the kind
    }
  seeds.push_back("Iname: a\nname: b\n");       // a duplicate key
  seeds.push_back("Sname: x\n---\nname: y\n");  // a second document
  fuzz::WriteSeeds("yaml", seeds);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    if (data[0] == 'S')
      ParseScenario(text, "fuzz.yaml");
    else
      ParseInstitution(text, "fuzz.yaml");
  } catch (const ConfigError&) {
  } catch (const std::invalid_argument&) {  // a value a validator refuses (named)
  }
  return 0;
}
