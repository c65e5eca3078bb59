// Audit logs: the verifier reads any file (edited, torn, binary) and says where the chain
// breaks, never crashes; opening a log for appending accepts only what the verifier accepts
// (an interrupted final write aside).

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "fuzz/fuzz_common.h"
#include "serve/audit.h"

using namespace loantwin;

namespace {

std::string TempFile() {
  static const std::string path = [] {
    char dir[] = "/tmp/loantwin_fuzz_audit_XXXXXX";
    return std::string(mkdtemp(dir)) + "/audit.log";
  }();
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const std::string file = TempFile();
  {
    AuditLog log(file, false);
    log.Append("/v1/roles/credit/decide", "{\"observation\":{\"a\":1}}",
               "{\"decision_id\":\"x-1\",\"action\":{}}");
    log.Append("/v1/credit/applications", "{\"product\":\"card\"}", "{\"decision\":\"approve\"}");
  }
  std::ifstream in(file, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fuzz::WriteSeeds("audit", {text, text.substr(0, text.size() - 40)});
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string file = TempFile();
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  const AuditVerification v = VerifyAuditLog(file);
  if (v.ok && v.complete_bytes + v.torn_tail_bytes != size) __builtin_trap();
  try {
    AuditLog log(file, false);  // continues a chain the verifier accepted, removes a torn tail
    if (!v.ok) __builtin_trap();
  } catch (const std::exception&) {
    if (v.ok) __builtin_trap();
  }
  return 0;
}
