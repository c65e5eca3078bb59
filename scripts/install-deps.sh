#!/usr/bin/env bash
# Installs the Debian packages loantwin needs (see DESIGN.md), only those that are missing.
# Idempotent: prints nothing and touches nothing when everything is installed.
set -euo pipefail

# The libraries listed in DESIGN.md ("Dependencies").
LIBRARIES=(
  libtorch-dev
  libeigen3-dev
  libyaml-cpp-dev
  libspdlog-dev libfmt-dev
  libgtest-dev
  libbenchmark-dev
  libboost-dev
  nlohmann-json3-dev
  libcli11-dev
  libopenblas0-pthread libblas-dev
  libgloo-dev
  protobuf-compiler libprotobuf-dev
)
# The Python module (python/, docs/python.md): pybind11 builds it against Debian's python3;
# its tests and examples use numpy and torch (Debian's python3-torch, the same 1.13 as libtorch).
PYTHON=(python3-dev pybind11-dev python3-numpy python3-torch)
# Programs the tool drives: gnuplot draws the stress-report and frontier charts; wrk is the
# load generator of bench/serve_load.sh.
PROGRAMS=(gnuplot-nox wrk)
# The toolchain, for machines that lack it; clang with its runtime builds the libFuzzer targets
# (scripts/fuzz.sh, run by the tests for a bounded time).
TOOLCHAIN=(g++ make cmake clang libclang-rt-14-dev)
PACKAGES=("${TOOLCHAIN[@]}" "${LIBRARIES[@]}" "${PYTHON[@]}" "${PROGRAMS[@]}")

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
((${#missing[@]} == 0)) && exit 0

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "install-deps: not root and sudo is not available; install: ${missing[*]}" >&2
    exit 1
  }
  SUDO=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
