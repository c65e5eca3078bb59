#pragma once
// The project version, from CMake's project(VERSION ...): written into export manifests and
// printed by the CLI.

namespace loantwin {

/// "MAJOR.MINOR.PATCH" of this build.
const char* LoantwinVersion();
/// The source tree this binary was built from (provenance: its git revision, if still there).
const char* LoantwinSourceDir();

}  // namespace loantwin
