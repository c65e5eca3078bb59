#include "core/version.h"

namespace loantwin {

const char* LoantwinVersion() {
  return LOANTWIN_VERSION;
}

const char* LoantwinSourceDir() {
  return LOANTWIN_SOURCE_DIR;
}

}  // namespace loantwin
