#!/usr/bin/env bash
# PPO on CartPole with configs/cartpole_ppo.yaml (CleanRL ppo.py's defaults, 500k steps):
# steps and wall seconds until the 20-episode mean return first reaches 475, the final mean
# return, steps/s. Usage: bench/cartpole_ppo.sh [build-dir] [seed]
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/solve_time.sh "${1:-build}" "${2:-1}" configs/cartpole_ppo.yaml
