#!/usr/bin/env bash
# PPO on CartPole with configs/cartpole_ppo.yaml (CleanRL ppo.py's defaults, 500k steps):
# prints steps/s, the steps and wall seconds until the 20-episode mean return first reaches 475,
# and the final mean return. Usage: bench/cartpole_ppo.sh [build-dir] [seed]
set -euo pipefail
BUILD=${1:-build}
SEED=${2:-1}
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Same experiment, logged every 1,024 steps so the threshold crossing is seen precisely.
sed -e "s/^seed: .*/seed: $SEED/" -e "s/  every_steps: .*/  every_steps: 1024/" \
  configs/cartpole_ppo.yaml > "$WORK/cartpole_ppo.yaml"
"$BUILD/bin/loantwin" train "$WORK/cartpole_ppo.yaml" --out "$WORK/run" > "$WORK/train.out" 2>&1
awk -F, '
  $3 == "charts/episodic_return/agent" { last = $4; if (!hit && $4 >= 475) { hit = 1; step = $1; secs = $2 } }
  $3 == "charts/SPS" { sps = $4 }
  END {
    printf "steps/s: %.0f\n", sps
    if (hit) printf "20-episode mean >= 475 first at step %d after %.1f s\n", step, secs
    else print "20-episode mean never reached 475"
    printf "final 20-episode mean return: %.1f\n", last
  }' "$WORK/run/metrics.csv"
grep "trained" "$WORK/train.out"
