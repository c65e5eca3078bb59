#!/usr/bin/env bash
# DQN on CartPole: configs/cartpole_dqn.yaml (CleanRL dqn.py's defaults, 500k steps) and
# configs/cartpole_rainbow_lite.yaml (double + dueling + 3-step + prioritised replay, 100k
# steps). For each: the steps and wall seconds until the 20-episode mean return first reaches
# 475, the final mean return, steps/s.
# Usage: bench/cartpole_dqn.sh [build-dir] [seed] [config ...]
set -euo pipefail
BUILD=${1:-build}
SEED=${2:-1}
shift $(($# < 2 ? $# : 2))
CONFIGS=("$@")
[ ${#CONFIGS[@]} -gt 0 ] || CONFIGS=(configs/cartpole_dqn.yaml configs/cartpole_rainbow_lite.yaml)
cd "$(dirname "$0")/.."
for CONFIG in "${CONFIGS[@]}"; do bash bench/solve_time.sh "$BUILD" "$SEED" "$CONFIG"; done
