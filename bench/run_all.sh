#!/usr/bin/env bash
# Runs every benchmark of docs/performance.md. Usage: bench/run_all.sh [build-dir]
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/.."
echo "== twin_bench: single-thread step throughput (items_per_second = loan-months/s)"
"$BUILD/bin/twin_bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
echo "== twin_batch_bench: 16 cu_small instances on 1 and 2 threads"
"$BUILD/bin/twin_batch_bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
echo "== marl_env_bench: five-role API vs bare twin, 64 cu_small on 2 threads"
"$BUILD/bin/marl_env_bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
echo "== cartpole_bench: vectorised CartPole steps/s"
"$BUILD/bin/cartpole_bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
echo "== simulate wall time: cu_large, 120 months, 100 paths"
bash bench/simulate_wall.sh "$BUILD"
echo "== mcts_bench: batched MCTS, 64 environments x 50 simulations (items_per_second = simulations/s)"
"$BUILD/bin/mcts_bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true
echo "== training throughput of the twin experiments (first 200k steps) vs the environment-only rate"
bash bench/train_throughput.sh "$BUILD"
echo "== DQN on CartPole: CleanRL defaults and rainbow-lite (steps/s, steps and seconds to solve)"
bash bench/cartpole_dqn.sh "$BUILD"
echo "== stress evaluation: baseline, all scenarios, 1000 paths x 120 months, cu_mid (target < 5 min)"
bash bench/stress_eval.sh "$BUILD"
echo "== decision server: wrk load test of loantwin serve (credit role; single and batched, audit log on/off) and the policy call by batch size"
bash bench/serve_load.sh "$BUILD"
echo "== Python module: make_vec CartPole and twin steps/s vs the C++ benchmarks"
PYTHONPATH="$BUILD/python" /usr/bin/python3 bench/python_env_bench.py --build "$BUILD"
