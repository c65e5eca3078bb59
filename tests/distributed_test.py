"""Distributed runs on loopback (docs/distributed.md): `loantwin launch`, torchrun, stress
evaluation split across ranks, data-parallel training, failures and launch errors. Run by ctest
(Distributed.*) with LOANTWIN_CLI set to the built binary; only the standard library is needed.
Every wait is bounded (a hung rank fails the test rather than the suite)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

CLI = os.environ.get("LOANTWIN_CLI", "build/bin/loantwin")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOUND = 300  # seconds any one command may take before the test fails


def run(args, env=None, timeout=BOUND):
    full = dict(os.environ)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT",
              "TORCHELASTIC_USE_AGENT_STORE"):
        full.pop(k, None)
    full.update(env or {})
    return subprocess.run(args, env=full, capture_output=True, text=True, timeout=timeout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_report(directory):
    """report.json without the fields allowed to differ: provenance and timing."""
    with open(os.path.join(directory, "report.json"), encoding="utf-8") as f:
        report = json.load(f)
    report.pop("provenance")
    report.pop("timing")
    return report


def launch_and_kill_rank_1(args, when):
    """Runs `loantwin launch` with args; SIGKILLs rank 1 at the first stderr line for which
    when(line) holds. Returns (launch's exit code, its whole stderr)."""
    p = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    pids, seen = {}, []
    try:
        for line in p.stderr:
            seen.append(line)
            if line.startswith("launch: rank ") and " is pid " in line:
                pids[int(line.split()[2])] = int(line.split()[-1])
            if when(line):
                os.kill(pids[1], signal.SIGKILL)
                break
        _, rest = p.communicate(timeout=BOUND)
    finally:
        if p.poll() is None:
            p.kill()
    return p.returncode, "".join(seen) + rest


EVAL = ["evaluate", "baseline", "--scenarios", "severe_recession,steady_state", "--paths", "150",
        "--batch", "32", "--months", "24", "--threads", "1", "--seed", "11", "--no-charts",
        "--metric-bands"]


class StressEvaluation(unittest.TestCase):
    """Paths split across ranks give the single-process report, bit for bit."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="loantwin-dist-")
        single = run([CLI] + EVAL + ["--out", os.path.join(cls.dir, "single")])
        assert single.returncode == 0, single.stderr
        cls.single = load_report(os.path.join(cls.dir, "single"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_two_ranks_under_launch_give_the_single_process_report(self):
        out = os.path.join(self.dir, "two")
        r = run([CLI, "launch", "--nproc", "2", "--", "loantwin"] + EVAL +
                ["--out", out, "--distributed"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("launch: all 2 ranks finished", r.stderr)
        self.assertEqual(load_report(out), self.single)
        with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
            self.assertEqual(json.load(f)["provenance"]["ranks"], 2)
        # Only rank 0 writes and prints the summary.
        self.assertEqual(r.stdout.count("wrote "), 1)

    def test_three_ranks_with_an_uneven_split_give_the_same_report(self):
        # 150 paths in batches of 32: five batches, two ranks get two, one gets one.
        out = os.path.join(self.dir, "three")
        r = run([CLI, "launch", "--nproc", "3", "--", "loantwin"] + EVAL +
                ["--out", out, "--distributed"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(load_report(out), self.single)
        # Every metric's bands too (--metric-bands), byte for byte.
        for scenario in ("severe_recession", "steady_state"):
            with open(os.path.join(out, "bands", scenario, "baseline.csv"), "rb") as a, \
                    open(os.path.join(self.dir, "single", "bands", scenario, "baseline.csv"),
                         "rb") as b:
                self.assertEqual(a.read(), b.read(), scenario)

    @unittest.skipUnless(shutil.which("torchrun"), "torchrun (python3-torch) is not installed")
    def test_torchrun_launches_the_same_run(self):
        out = os.path.join(self.dir, "torchrun")
        # torchrun hosts the store itself (TORCHELASTIC_USE_AGENT_STORE); --redirects 1 --tee 1
        # avoids torchrun 1.13's Std parsing bug on Python 3.11 (docs/distributed.md).
        r = run(["torchrun", "--nproc_per_node", "2", "--master_port", str(free_port()),
                 "--redirects", "1",
                 "--tee", "1", "--no_python", CLI] + EVAL + ["--out", out, "--distributed"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("torchrun's store", r.stdout + r.stderr)
        self.assertEqual(load_report(out), self.single)

PPO_YAML = """name: cartpole_dist
seed: 1
total_steps: {steps}
env: {{name: cartpole, num_envs: 4}}
roles:
  agent: {{agent: ppo}}
logging: {{every_steps: 10000}}
checkpoint: {{every_steps: {every}, keep: 100}}
"""


def last_metric(run_dir, key):
    """The value of `key` at the run's last logged step (metrics.csv)."""
    value = None
    with open(os.path.join(run_dir, "metrics.csv"), encoding="utf-8") as f:
        for line in f:
            step, _, k, v = line.rstrip("\n").split(",")
            if k == key:
                value = (int(step), float(v))
    return value


class Training(unittest.TestCase):
    """DD-PPO style training: each rank its own environment shard, gradients averaged."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="loantwin-dist-train-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def config(self, steps, every=0):
        path = os.path.join(self.dir, f"ppo_{steps}_{every}.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(PPO_YAML.format(steps=steps, every=every))
        return path

    def test_two_rank_ppo_learns_cartpole_with_identical_parameters_after_every_update(self):
        run_dir = os.path.join(self.dir, "ppo")
        r = run([CLI, "launch", "--nproc", "2", "--", "loantwin", "train", self.config(100000),
                 "--out", run_dir, "--distributed", "--check-parameters"])
        self.assertEqual(r.returncode, 0, r.stderr)
        # 50,000 steps per rank in rollouts of 4 envs x 128 steps: 97 updates, each compared.
        self.assertIn("parameters identical on all 2 ranks after every update (97 checks)",
                      r.stderr)
        self.assertIn("4 envs, 1 threads per rank, 2 ranks", r.stderr)
        step, ret = last_metric(run_dir, "charts/episodic_return/agent")
        self.assertEqual(step, 100000)
        self.assertGreaterEqual(ret, 195.0)  # the single-process conformance threshold
        # Rank 0 alone writes the run directory; one checkpoint holds both ranks.
        self.assertEqual(os.listdir(os.path.join(run_dir, "checkpoints")),
                         ["step_000000100000.pt"])
        self.assertEqual(r.stdout.count("trained cartpole_dist"), 1)
        # Export reads rank 0's state from the distributed checkpoint.
        e = run([CLI, "export", run_dir])
        self.assertEqual(e.returncode, 0, e.stderr)

    def test_two_rank_dqn_learns_with_identical_parameters_after_every_update(self):
        # Each rank its own replay; every gradient step all-reduced.
        run_dir = os.path.join(self.dir, "dqn")
        r = run([CLI, "launch", "--nproc", "2", "--", "loantwin", "train",
                 os.path.join(ROOT, "configs", "cartpole_rainbow_lite.yaml"), "--total-steps",
                 "20000", "--out", run_dir, "--distributed", "--check-parameters"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stderr, r"parameters identical on all 2 ranks after every update "
                                   r"\(([1-9][0-9]*) checks\)")
        _, ret = last_metric(run_dir, "charts/episodic_return/agent")
        self.assertGreaterEqual(ret, 100.0)  # a random policy balances ~22 steps

    def test_a_killed_training_rank_stops_the_other_and_the_run_resumes_exactly(self):
        config = self.config(300000, every=40000)
        whole = os.path.join(self.dir, "whole")
        r = run([CLI, "launch", "--nproc", "2", "--", "loantwin", "train", config, "--out", whole,
                 "--distributed"])
        self.assertEqual(r.returncode, 0, r.stderr)
        killed = os.path.join(self.dir, "killed")
        code, text = launch_and_kill_rank_1(
            [CLI, "launch", "--nproc", "2", "--grace", "120", "--", "loantwin", "train", config,
             "--out", killed, "--distributed", "--dist-timeout", "60"],
            lambda line: "checkpoint " in line and "(step 80000)" in line)
        self.assertEqual(code, 128 + signal.SIGKILL, text)
        self.assertRegex(text, r"error: rank 0: .*rank 1 (stopped answering|is gone)")
        self.assertIn("launch:   rank 0: exited with code 1", text)
        # Resumed with the same world size from the newest checkpoint, it ends where the
        # uninterrupted run ended, bit for bit.
        r = run([CLI, "launch", "--nproc", "2", "--", "loantwin", "train", config, "--resume",
                 killed, "--distributed"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("resumed", r.stderr)
        key = "charts/episodic_return/agent"
        self.assertEqual(last_metric(killed, key), last_metric(whole, key))

    def test_ppo_resumes_on_another_number_of_ranks(self):
        config = self.config(100000)
        first = os.path.join(self.dir, "first")
        r = run([CLI, "launch", "--nproc", "2", "--", "loantwin", "train", config, "--out", first,
                 "--total-steps", "40000", "--distributed"])
        self.assertEqual(r.returncode, 0, r.stderr)
        single = os.path.join(self.dir, "single")
        shutil.copytree(first, single)
        # Three ranks: ranks 0-1 continue their environments, rank 2 starts new ones from rank
        # 0's agent; the parameters stay identical on all three.
        r = run([CLI, "launch", "--nproc", "3", "--", "loantwin", "train", config, "--resume",
                 first, "--total-steps", "100000", "--distributed", "--check-parameters"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("written by a run of 2 ranks, resumed with 3: the rollouts in progress are "
                      "dropped; environments continued: ranks 0-1; new environments: rank 2",
                      r.stderr)
        self.assertIn("parameters identical on all 3 ranks after every update", r.stderr)
        step, ret = last_metric(first, "charts/episodic_return/agent")
        self.assertGreaterEqual(step, 100000)
        self.assertGreaterEqual(ret, 150.0)
        # One process continues rank 0's environments.
        r = run([CLI, "train", config, "--resume", single, "--total-steps", "100000"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("resumed with 1: the rollouts in progress are dropped; environments "
                      "continued: rank 0", r.stderr)
        step, ret = last_metric(single, "charts/episodic_return/agent")
        self.assertGreaterEqual(ret, 150.0)
        # DQN keeps each rank's replay: it resumes on the same number of ranks only.
        dqn = os.path.join(self.dir, "dqn")
        rainbow = os.path.join(ROOT, "configs", "cartpole_rainbow_lite.yaml")
        r = run([CLI, "launch", "--nproc", "2", "--", "loantwin", "train", rainbow, "--out", dqn,
                 "--total-steps", "2000", "--distributed"])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run([CLI, "train", rainbow, "--resume", dqn, "--total-steps", "4000"])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("role agent (dqn) resumes only on the number of ranks that wrote the "
                      "checkpoint (2), not 1", r.stderr)

    def test_ranks_with_different_experiments_are_refused(self):
        port = str(free_port())
        common = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "WORLD_SIZE": "2"}
        out = os.path.join(self.dir, "mismatch")
        rank0 = subprocess.Popen([CLI, "train", self.config(20000), "--out", out,
                                  "--distributed", "--dist-timeout", "60"],
                                 env=dict(os.environ, RANK="0", **common),
                                 stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        try:
            r1 = run([CLI, "train", self.config(30000), "--out", out, "--distributed",
                      "--dist-timeout", "60"], env=dict(RANK="1", **common))
            _, err0 = rank0.communicate(timeout=BOUND)
        finally:
            if rank0.poll() is None:
                rank0.kill()
        self.assertNotEqual(r1.returncode, 0, r1.stderr)
        self.assertIn("ranks differ in experiment (config.yaml)", r1.stderr + err0)

    def test_distributed_training_needs_a_run_directory(self):
        r = run([CLI, "train", self.config(1000), "--distributed"])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("--distributed needs --out", r.stderr)
        r = run([CLI, "train", self.config(1000), "--check-parameters"])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("--check-parameters compares ranks: it needs --distributed", r.stderr)


class Failures(unittest.TestCase):
    def test_a_killed_rank_stops_the_other_with_an_error_naming_it(self):
        with tempfile.TemporaryDirectory() as d:
            args = [CLI, "launch", "--nproc", "2", "--grace", "120", "--", "loantwin",
                    "evaluate", "baseline", "--scenarios", "severe_recession", "--paths",
                    "100000", "--months", "120", "--threads", "1", "--no-charts", "--out", d,
                    "--distributed", "--dist-timeout", "60"]
            code, text = launch_and_kill_rank_1(
                args, lambda line: "evaluating scenario 1/1" in line)
            self.assertEqual(code, 128 + signal.SIGKILL, text)
            self.assertIn("launch: rank 1 (pid", text)
            self.assertRegex(text, r"error: rank 0: .* failed: .*rank 1 stopped answering")
            self.assertIn("launch:   rank 0: exited with code 1", text)

    def test_a_failing_rank_makes_launch_fail_with_its_code(self):
        r = run([CLI, "launch", "--nproc", "2", "--", "sh", "-c",
                 'if [ "$RANK" = 1 ]; then exit 3; fi'])
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("launch: failed: rank 1 exited with code 3", r.stderr)
        self.assertIn("launch:   rank 0: exited with code 0", r.stderr)

    def test_a_rank_that_cannot_start_is_reported(self):
        r = run([CLI, "launch", "--nproc", "1", "--", "/nonexistent/program"])
        self.assertEqual(r.returncode, 127, r.stderr)
        self.assertIn("cannot run /nonexistent/program", r.stderr)


class LaunchErrors(unittest.TestCase):
    BASE = [CLI, "evaluate", "baseline", "--scenarios", "steady_state", "--paths", "10",
            "--months", "6", "--no-charts", "--out", os.devnull + "-never", "--distributed"]

    def check(self, env, code, *needles, extra=()):
        r = run(self.BASE + list(extra), env=env)
        self.assertEqual(r.returncode, code, r.stderr)
        for n in needles:
            self.assertIn(n, r.stderr)

    def test_missing_variables_are_named(self):
        self.check({}, 2, "WORLD_SIZE is not set", "torchrun")
        self.check({"WORLD_SIZE": "2"}, 2, "RANK is not set")
        self.check({"WORLD_SIZE": "2", "RANK": "0"}, 2, "MASTER_ADDR is not set")
        self.check({"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1"}, 2,
                   "MASTER_PORT is not set")

    def test_malformed_variables_are_named(self):
        env = {"WORLD_SIZE": "2", "RANK": "x", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}
        self.check(env, 2, "RANK='x' is not a whole number")
        env.update(RANK="2")
        self.check(env, 2, "RANK=2 is not below WORLD_SIZE=2")
        env.update(RANK="0", MASTER_PORT="70000")
        self.check(env, 2, "MASTER_PORT='70000' is not a whole number from 1 to 65535")

    def test_an_unreachable_master_fails_within_the_timeout(self):
        # Rank 1 with no rank 0: nobody hosts the store on this port.
        env = {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "9"}
        self.check(env, 1, "rank 1: cannot reach the rendezvous store at 127.0.0.1:9 within 2 s",
                   extra=["--dist-timeout", "2"])

    def test_ranks_started_with_different_world_sizes_are_refused(self):
        port = str(free_port())
        common = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        args = self.BASE + ["--dist-timeout", "60"]
        env0 = dict(os.environ, WORLD_SIZE="2", RANK="0", **common)
        rank0 = subprocess.Popen(args, env=env0, stderr=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, text=True)
        try:
            r1 = run(args, env=dict(WORLD_SIZE="3", RANK="1", **common))
            _, err0 = rank0.communicate(timeout=BOUND)
        finally:
            if rank0.poll() is None:
                rank0.kill()
        self.assertEqual(r1.returncode, 1, r1.stderr)
        self.assertIn("rank 1 was started with WORLD_SIZE=3 but rank 0 with WORLD_SIZE=2",
                      r1.stderr)
        self.assertEqual(rank0.returncode, 1, err0)
        self.assertIn("rank 1 failed while joining: rank 1 was started with WORLD_SIZE=3", err0)


if __name__ == "__main__":
    unittest.main()
