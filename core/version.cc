#include "core/version.h"

namespace loantwin {

const char* LoantwinVersion() {
  return LOANTWIN_VERSION;
}

}  // namespace loantwin
