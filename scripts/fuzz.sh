#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, AddressSanitizer + UBSan; fuzz/) and runs each for
# SECONDS over a corpus of the seeds the targets write (real requests, manifests, audit logs,
# the shipped YAML files) and the inputs that once crashed or corrupted loantwin (a 150,000-deep
# array in an application's state, a manifest with mask_offset 2e9, a torn audit record,
# duplicate YAML keys and second documents). The targets run side by side, as many at a time as
# there are cores. Prints executions per target; exit 1 with the crashing input's path on a
# crash, 77 when clang is missing (ctest: skipped).
#
#   [FUZZ_OPT=-O0] scripts/fuzz.sh [seconds per target, default 60] [build dir, default build-fuzz]
#
# FUZZ_OPT: the build's optimisation flag (default -O1; -O0 builds in about half the time and
# fuzzes more slowly, which suits short runs).
set -euo pipefail
seconds=${1:-60}
build=${2:-build-fuzz}
root=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v clang++ >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  echo "fuzz: clang++ with libFuzzer is not installed (scripts/install-deps.sh installs clang)"
  exit 77
fi
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DLOANTWIN_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug \
  -DLOANTWIN_FUZZ_OPT="${FUZZ_OPT:--O1}" >/dev/null
targets=(decide application manifest audit yaml)
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/#/fuzz_}" >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
deep() { printf '%*s' "$1" '' | tr ' ' '['; printf '%*s' "$1" '' | tr ' ' ']'; }
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "$work/seeds-$t"
  LOANTWIN_FUZZ_SEEDS="$work/seeds-$t" "$build/bin/fuzz_$t" -runs=0 "$work/$t" >/dev/null 2>&1
done
{ printf '{"product":"card","amount":5,"income":9,"band":"A","state":{"x":'; deep 150000; printf '}}'; } \
  >"$work/seeds-application/deep-state"
{ printf '\x00{"observation":{"x":'; deep 150000; printf '}}'; } >"$work/seeds-decide/deep-feature"
fuzz_one() {  # target -> its log; exit status 0 without a crash
  "$build/bin/fuzz_$1" -max_total_time="$seconds" -max_len=400000 -rss_limit_mb=4096 \
    -timeout=20 -print_final_stats=1 -artifact_prefix="$work/crash-$1-" \
    "$work/$1" "$work/seeds-$1" >"$work/$1.log" 2>&1
}
declare -A pid
running=0
for t in "${targets[@]}"; do
  if ((running >= $(nproc))); then wait -n || true; running=$((running - 1)); fi
  fuzz_one "$t" &
  pid[$t]=$!
  running=$((running + 1))
done
status=0
for t in "${targets[@]}"; do
  if wait "${pid[$t]}"; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$t.log" | grep -o '[0-9]*$')
    echo "fuzz_$t: ${runs:-?} executions in ${seconds} s, no crash"
  else
    mkdir -p "$build/crashes"
    cp "$work"/crash-"$t"-* "$build/crashes/" 2>/dev/null || true
    tail -40 "$work/$t.log"
    echo "fuzz_$t: CRASH (input kept in $build/crashes/)"
    status=1
  fi
done
exit $status
