#!/usr/bin/env bash
# Training throughput of the twin experiments over their first 200k steps, next to the
# environment-only rate of the same instances, with the training loop's time budget per
# component (docs/performance.md, "Training throughput"). Usage:
#   bench/train_throughput.sh [build-dir] [experiment.yaml ...]
# Default experiments: configs/quickstart_unconstrained.yaml and configs/full_hierarchy_scratch.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
shift || true
EXPERIMENTS=("$@")
if [ ${#EXPERIMENTS[@]} -eq 0 ]; then
  EXPERIMENTS=(configs/quickstart_unconstrained.yaml configs/full_hierarchy_scratch.yaml)
fi
for e in "${EXPERIMENTS[@]}"; do
  echo "== $e"
  "$BUILD/bin/train_bench" "$e" 200000 30000
done
