"""Steps/s of the Python module against the C++ benchmarks (docs/python.md, "Performance").

    PYTHONPATH=build/python python3 bench/python_env_bench.py [--build build] [--repeats 3]

1. make_vec("cartpole", num_envs=N).step() driven from Python with random actions drawn each
   step (numpy), N = 256, 4096 (1 thread) and 4096 (2 threads), next to the C++ cartpole_bench
   at the same N (bin/cartpole_bench, run here if built). Python overhead per step = Python's
   time per step - C++'s.
2. The twin: 64 cu_small instances, 2 threads, every role on its baseline, 600 months, through
   the native Env.step() and through make_vec(...).step() (the credit role's baseline cutoffs
   passed from Python), next to the C++ marl_env_bench (BM_MarlEnvStep, the same setting).

Each figure is the best of --repeats runs (the machine's other load only slows runs down).
"""

import argparse
import json
import os
import subprocess
import time

import numpy as np

import loantwin


def best(fn, repeats):
    return min(fn() for _ in range(repeats))


def cartpole_python(n, threads, steps):
    env = loantwin.make_vec("cartpole", num_envs=n, seed=1, threads=threads)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(20):
        env.step(rng.integers(0, 2, n, dtype=np.int32))
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(rng.integers(0, 2, n, dtype=np.int32))
    return (time.perf_counter() - t0) / steps


def twin_python(steps, vector):
    config = {"institution": "cu_small", "horizon_months": 1200}
    if vector:
        env = loantwin.make_vec("twin", num_envs=64, seed=1, threads=2, config=config)
        env.reset()
        # One month on the credit baseline (None = the role's fallback), whose cutoffs are
        # fixed: those actions are then passed from Python every month.
        env.native.step_role("credit", None)
        actions = env.native.actions("credit").copy()
        t0 = time.perf_counter()
        for _ in range(steps):
            env.step(actions)
    else:
        native = loantwin.Env("twin", 64, 1, 2, 0, json.dumps(config))
        native.reset()
        t0 = time.perf_counter()
        for _ in range(steps):
            native.step()
    return (time.perf_counter() - t0) / steps


def cpp_bench(build, binary, bench_filter):
    path = os.path.join(build, "bin", binary)
    if not os.path.exists(path):
        return {}
    out = subprocess.run([path, f"--benchmark_filter={bench_filter}", "--benchmark_format=json",
                          "--benchmark_repetitions=3", "--benchmark_report_aggregates_only=true"],
                         capture_output=True, text=True, check=True).stdout
    res = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("aggregate_name") == "median":
            res[b["run_name"]] = b["real_time"] * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3}[b["time_unit"]]
    return res


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default="build")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    cpp = cpp_bench(args.build, "cartpole_bench", "BM_CartPoleStep")
    print("CartPole, random actions drawn each step (numpy):")
    print(f"  {'num_envs':>8} {'threads':>7} {'Python steps/s':>15} {'C++ steps/s':>13} "
          f"{'Python us/step':>15} {'overhead us/step':>17}")
    for n, threads in [(256, 1), (4096, 1), (4096, 2)]:
        steps = 20000 if n <= 256 else 3000
        t_py = best(lambda: cartpole_python(n, threads, steps), args.repeats)
        t_cpp = cpp.get(f"BM_CartPoleStep/envs:{n}/threads:{threads}/real_time")
        cpp_rate = f"{n / t_cpp:13,.0f}" if t_cpp else f"{'-':>13}"
        overhead = f"{(t_py - t_cpp) * 1e6:17.1f}" if t_cpp else f"{'-':>17}"
        print(f"  {n:>8} {threads:>7} {n / t_py:15,.0f} {cpp_rate} {t_py * 1e6:15.1f} {overhead}")

    cpp = cpp_bench(args.build, "marl_env_bench", "BM_MarlEnvStep")
    t_cpp = cpp.get("BM_MarlEnvStep/iterations:600/real_time")
    print("Twin, 64 cu_small instances, 2 threads, every role on its baseline:")
    rows = [("native Env.step()", best(lambda: twin_python(600, False), args.repeats)),
            ("make_vec(...).step(actions)", best(lambda: twin_python(600, True), args.repeats))]
    if t_cpp:
        rows.append(("C++ marl_env_bench", t_cpp))
    for name, t in rows:
        ratio = f"  {t_cpp / t:6.1%} of C++" if t_cpp else ""
        print(f"  {name:<28} {64 / t:12,.0f} instance-steps/s{ratio}")


if __name__ == "__main__":
    main()
