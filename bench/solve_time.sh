#!/usr/bin/env bash
# Trains one CartPole experiment and reports how fast it learns: the environment steps and wall
# seconds until the 20-episode mean return first reaches 475, the final mean return, and the
# whole run's throughput. Used by bench/cartpole_{ppo,dqn,muzero}.sh.
# Usage: bench/solve_time.sh <build-dir> <seed> <experiment.yaml>
set -euo pipefail
BUILD=$1
SEED=$2
CONFIG=$3
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Same experiment, logged every 1,000 steps so the threshold crossing is seen precisely.
sed -e "s/^seed: .*/seed: $SEED/" -e "s/  every_steps: .*/  every_steps: 1000/" \
  "$CONFIG" > "$WORK/experiment.yaml"
"$BUILD/bin/loantwin" train "$WORK/experiment.yaml" --out "$WORK/run" > "$WORK/train.out" 2>&1
echo "== $CONFIG (seed $SEED)"
awk -F, '
  $3 ~ /^charts\/.*\/training_steps$/ { trained[$1] = $4 }
  $3 == "charts/episodic_return/agent" { last = $4; if (!hit && $4 >= 475) { hit = 1; step = $1; secs = $2 } }
  END {
    if (hit) {
      printf "20-episode mean >= 475 first at step %d after %.1f s\n", step, secs
      if (step in trained) printf "training steps by then: %d\n", trained[step]
    } else {
      print "20-episode mean never reached 475"
    }
    printf "final 20-episode mean return: %.1f\n", last
  }' "$WORK/run/metrics.csv"
grep "^trained" "$WORK/train.out" | sed "s/^trained [^:]*: //"
