#!/usr/bin/env bash
# MuZero on CartPole with configs/cartpole_muzero.yaml (8 environments, 25 simulations, 50k
# steps): environment steps, training steps and wall seconds until the 20-episode mean return
# first reaches 475, the final mean return, steps/s. Usage: bench/cartpole_muzero.sh [build-dir] [seed]
set -euo pipefail
cd "$(dirname "$0")/.."
bash bench/solve_time.sh "${1:-build}" "${2:-1}" configs/cartpole_muzero.yaml
