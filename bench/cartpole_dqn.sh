#!/usr/bin/env bash
# DQN on CartPole: configs/cartpole_dqn.yaml (CleanRL dqn.py's defaults, 500k steps) and
# configs/cartpole_rainbow_lite.yaml (double + dueling + 3-step + prioritised replay, 100k
# steps). For each: steps/s, the steps and wall seconds until the 20-episode mean return first
# reaches 475, and the final mean return.
# Usage: bench/cartpole_dqn.sh [build-dir] [seed] [config ...]
set -euo pipefail
BUILD=${1:-build}
SEED=${2:-1}
shift $(($# < 2 ? $# : 2))
CONFIGS=("$@")
[ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=(configs/cartpole_dqn.yaml configs/cartpole_rainbow_lite.yaml)
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for CONFIG in "${CONFIGS[@]}"; do
  NAME=$(basename "$CONFIG" .yaml)
  # Same experiment, logged every 1,000 steps so the threshold crossing is seen precisely.
  sed -e "s/^seed: .*/seed: $SEED/" -e "s/  every_steps: .*/  every_steps: 1000/" \
    "$CONFIG" > "$WORK/$NAME.yaml"
  "$BUILD/bin/loantwin" train "$WORK/$NAME.yaml" --out "$WORK/$NAME" > "$WORK/$NAME.out" 2>&1
  echo "== $CONFIG (seed $SEED)"
  awk -F, '
    $3 == "charts/episodic_return/agent" { last = $4; if (!hit && $4 >= 475) { hit = 1; step = $1; secs = $2 } }
    END {
      if (hit) printf "20-episode mean >= 475 first at step %d after %.1f s\n", step, secs
      else print "20-episode mean never reached 475"
      printf "final 20-episode mean return: %.1f\n", last
    }' "$WORK/$NAME/metrics.csv"
  # Whole-run throughput (charts/SPS is the rate since the last log line).
  grep "^trained" "$WORK/$NAME.out" | sed "s/^trained [^:]*: //"
done
