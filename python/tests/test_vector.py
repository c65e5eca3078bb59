"""Conformance of loantwin.make_vec (Gymnasium vector semantics) on CartPole and the twin."""

import gc
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import unittest

import numpy as np

import loantwin

BUILD = os.environ.get("LOANTWIN_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
TWIN_CONFIG = {"institution": "cu_small", "scenario": "severe_recession", "horizon_months": 24}


def allowed_rule(mask, nvec, t):
    """Instance i takes the ((t + i) mod k)-th allowed value of each component (env_dump's)."""
    n = mask.shape[0]
    out = np.empty((n, len(nvec)), np.int32)
    for i in range(n):
        off = 0
        for c, size in enumerate(nvec):
            allowed = np.flatnonzero(mask[i, off:off + size])
            out[i, c] = allowed[(t + i) % len(allowed)]
            off += size
    return out


def random_masked(rng, mask, nvec):
    """Uniform over each component's allowed values."""
    n = mask.shape[0]
    out = np.empty((n, len(nvec)), np.int32)
    off = 0
    for c, size in enumerate(nvec):
        block = mask[:, off:off + size]
        u = rng.random((n, size)) * block
        out[:, c] = np.argmax(u + block * 1e-9, axis=1)
        off += size
    return out


def rollout(env, steps, seed):
    """Observations, rewards and flags of `steps` random masked steps (copies)."""
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    nvec = env.spec_dict["nvec"]
    trace = [obs.copy()]
    for _ in range(steps):
        a = random_masked(rng, info["action_mask"], nvec)
        if not env.spec_dict["multi_discrete"]:
            a = a[:, 0]
        obs, rew, term, trunc, info = env.step(a)
        trace += [obs.copy(), rew.copy(), term.copy(), trunc.copy()]
    return trace


class CartPoleVector(unittest.TestCase):
    def test_spaces_contain_every_observation_and_sample_actions(self):
        env = loantwin.make_vec("cartpole", num_envs=8, seed=3)
        self.assertEqual(env.single_observation_space.shape, (4,))
        self.assertEqual(env.single_action_space.n, 2)
        self.assertEqual(env.observation_space.shape, (8, 4))
        obs, info = env.reset()
        self.assertEqual(obs.dtype, np.float32)
        for _ in range(300):
            for row in obs:
                self.assertTrue(env.single_observation_space.contains(row), row)
            obs, rew, term, trunc, info = env.step(env.action_space.sample())
            self.assertEqual(rew.dtype, np.float32)
            self.assertEqual(term.dtype, np.bool_)
            self.assertTrue(np.all(rew == 1.0))

    def test_same_seed_same_trajectory_any_thread_count(self):
        a = rollout(loantwin.make_vec("cartpole", num_envs=16, threads=1), 200, seed=7)
        b = rollout(loantwin.make_vec("cartpole", num_envs=16, threads=2), 200, seed=7)
        c = rollout(loantwin.make_vec("cartpole", num_envs=16, threads=1), 200, seed=8)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
        self.assertFalse(np.array_equal(a[0], c[0]))

    def test_reset_with_a_seed_repeats_the_episodes(self):
        env = loantwin.make_vec("cartpole", num_envs=4)
        first = rollout(env, 50, seed=11)
        second = rollout(env, 50, seed=11)
        for x, y in zip(first, second):
            np.testing.assert_array_equal(x, y)
        # Without a seed, reset starts new episodes (different initial states).
        obs0 = env.reset(seed=11)[0].copy()
        obs1 = env.reset()[0].copy()
        self.assertFalse(np.array_equal(obs0, obs1))

    def test_same_step_autoreset_and_final_observation(self):
        env = loantwin.make_vec("cartpole", num_envs=4, seed=0)
        obs, info = env.reset()
        prev = obs.copy()
        ended = 0
        for _ in range(200):
            obs, rew, term, trunc, info = env.step(np.zeros(4, np.int32))  # always push left
            done = term | trunc
            np.testing.assert_array_equal(info["_final_obs"], done)
            for i in np.flatnonzero(done):
                ended += 1
                final = info["final_obs"][i]
                # The last observation left the bounds; the new one is a fresh start.
                self.assertTrue(abs(final[0]) > 2.4 or abs(final[2]) > 0.2094, final)
                self.assertTrue(np.all(np.abs(obs[i]) <= 0.05), obs[i])
                self.assertEqual(info["episode_steps"][i], 0)
                self.assertEqual(info["final_info"]["episode_length"][i],
                                 info["final_info"]["episode_return"][i])
            prev = obs.copy()
        self.assertGreater(ended, 4)
        del prev

    def test_truncation_at_max_episode_steps(self):
        env = loantwin.make_vec("cartpole", num_envs=2, seed=0, max_episode_steps=5)
        env.reset()
        for t in range(5):
            obs, rew, term, trunc, info = env.step(np.ones(2, np.int32) * (t % 2))
        self.assertTrue(np.all(trunc))
        self.assertFalse(np.any(term))
        np.testing.assert_array_equal(info["final_info"]["episode_length"], [5, 5])

    def test_observations_are_stable_views_and_a_step_allocates_nothing(self):
        env = loantwin.make_vec("cartpole", num_envs=256, seed=0)
        obs, info = env.reset()
        ptr = obs.__array_interface__["data"][0]
        self.assertFalse(obs.flags.writeable)
        self.assertFalse(obs.flags.owndata)
        actions = np.zeros(256, np.int32)
        outs = env.step(actions)
        for _ in range(10):
            outs2 = env.step(actions)
            for x, y in zip(outs[:4], outs2[:4]):
                self.assertIs(x, y)  # the same arrays every step
            for key, value in outs[4].items():
                if isinstance(value, np.ndarray):
                    self.assertIs(value, outs2[4][key], key)
            self.assertIsNot(outs[4], outs2[4])  # a new dict: wrappers may add keys
        self.assertEqual(outs2[0].__array_interface__["data"][0], ptr)
        # Rewards and flags may be transformed in place (Gymnasium's reward wrappers do): the
        # environment rewrites them in full every step and never reads them.
        rew, term = outs2[1], outs2[2]
        self.assertTrue(rew.flags.writeable and term.flags.writeable)
        self.assertFalse(info["action_mask"].flags.writeable)
        rew[:] = -5.0
        term[:] = True
        obs_before = obs.copy()
        _, rew2, term2, _, _ = env.step(actions)
        self.assertTrue(np.all(rew2 == 1.0))
        self.assertFalse(np.array_equal(obs, obs_before))
        self.assertLess(int(term2.sum()), 256)
        tracemalloc.start()
        try:
            # Warm numpy's and the interpreter's caches, and collect garbage before each
            # snapshot, so only memory that a step keeps is counted.
            for _ in range(100):
                env.step(actions)
            gc.collect()
            before = tracemalloc.take_snapshot()
            tracemalloc.reset_peak()
            for _ in range(1000):
                env.step(actions)
            gc.collect()
            after = tracemalloc.take_snapshot()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
        # No per-step buffers: an observation buffer alone would be 256 * 4 * 4 = 4 KiB.
        self.assertLess(grown, 2048, after.compare_to(before, "lineno")[:5])
        self.assertLess(peak, 64 * 1024)

    def test_step_releases_the_gil(self):
        # With a huge switch interval a thread only gets the GIL when another gives it up, so
        # the counter advances during the steps only if the step releases the GIL.
        env = loantwin.make_vec("cartpole", num_envs=4096, seed=0, threads=1)
        env.reset()
        actions = np.zeros(4096, np.int32)
        ticks = []
        stop = threading.Event()

        def count():
            while not stop.is_set():
                ticks.append(1)
                time.sleep(0.0001)

        old = sys.getswitchinterval()
        sys.setswitchinterval(1000.0)
        try:
            t = threading.Thread(target=count)
            t.start()
            time.sleep(0.01)
            before = len(ticks)
            for _ in range(1000):
                env.step(actions)
            during = len(ticks) - before
            stop.set()
            t.join()
        finally:
            sys.setswitchinterval(old)
        self.assertGreater(during, 20)

    def test_bad_actions_raise_with_the_message(self):
        env = loantwin.make_vec("cartpole", num_envs=3, seed=0)
        env.reset()
        with self.assertRaisesRegex(ValueError, r"shape \(3,\) or \(3, 1\), not \(2,\)"):
            env.step(np.zeros(2, np.int32))
        with self.assertRaisesRegex(TypeError, "integers, not dtype float64"):
            env.step(np.zeros(3))
        with self.assertRaisesRegex(ValueError, r"instance 1: action component .* = 2 is out of range"):
            env.step(np.array([0, 2, 0]))
        with self.assertRaisesRegex(ValueError, "out of range"):
            env.step(np.array([0, 2**40, 0]))
        with self.assertRaisesRegex(TypeError, "numpy array"):
            env._env.step_role(0, [0, 1, 0])
        # The environment is still usable after an error.
        obs, rew, term, trunc, info = env.step(np.array([0, 1, 0], np.int64))
        self.assertEqual(obs.shape, (3, 4))

    def test_bad_arguments_and_configs_raise(self):
        with self.assertRaisesRegex(ValueError, "unknown.*'nope'|nope"):
            loantwin.make_vec("nope")
        with self.assertRaisesRegex(loantwin.ConfigError, "gravity_typo"):
            loantwin.make_vec("cartpole", config={"gravity_typo": 1.0})
        with self.assertRaisesRegex(loantwin.ConfigError, "gravity"):
            loantwin.make_vec("cartpole", config={"gravity": "strong"})
        with self.assertRaisesRegex(loantwin.ConfigError, "gravity"):
            loantwin.make_vec("cartpole", config={"gravity": 1e9})
        with self.assertRaises(FileNotFoundError):
            loantwin.make_vec("cartpole", config="/nonexistent/cartpole.yaml")
        with self.assertRaisesRegex(ValueError, "num_envs"):
            loantwin.make_vec("cartpole", num_envs=0)
        with self.assertRaisesRegex(ValueError, r"threads must be in \[1, 1024\]"):
            loantwin.make_vec("cartpole", threads=0)
        with self.assertRaisesRegex(ValueError, r"threads must be in \[1, 1024\]"):
            loantwin.make_vec("cartpole", threads=100000)
        with self.assertRaisesRegex(ValueError, r"num_envs must be in \[1, 1000000\]"):
            loantwin.Env("cartpole", 2**30)
        with self.assertRaisesRegex(KeyError, "no role 'credit'"):
            loantwin.make_vec("cartpole", role="credit")
        env = loantwin.make_vec("cartpole")
        with self.assertRaisesRegex(RuntimeError, "reset"):
            env.step(np.zeros(1, np.int32))
        with self.assertRaises(TypeError):
            env.reset(seed=[1, 2])
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write("pole_mass: 0.2\nmax_episode_steps: 50\n")
            f.flush()
            env = loantwin.make_vec("cartpole", config=f.name)
            self.assertIn("pole_mass: 0.2", env.native.config_yaml)
            self.assertEqual(env.native.max_episode_steps, 50)
            f.seek(0)
            f.write("pole_mass: [1, 2]\n")
            f.truncate()
            f.flush()
            with self.assertRaisesRegex(loantwin.ConfigError, f.name):
                loantwin.make_vec("cartpole", config=f.name)


class TwinVector(unittest.TestCase):
    def test_spaces_masks_and_metrics(self):
        env = loantwin.make_vec("twin", num_envs=6, seed=1, config=TWIN_CONFIG)
        self.assertEqual(env.role, "credit")
        self.assertEqual(list(env.single_action_space.nvec), [8] * 5)
        obs, info = env.reset()
        rng = np.random.default_rng(0)
        nvec = env.spec_dict["nvec"]
        for _ in range(30):
            for row in obs:
                self.assertTrue(env.single_observation_space.contains(row))
            a = random_masked(rng, info["action_mask"], nvec)
            obs, rew, term, trunc, info = env.step(a)
            self.assertEqual(info["reward_vector"].shape, (6, len(env.objectives)))
        m = env.metrics()
        self.assertIn("capital_ratio", m)
        self.assertEqual(m["capital_ratio"].shape, (6,))

    def test_a_masked_action_is_refused_with_the_reason(self):
        env = loantwin.make_vec("twin", num_envs=2, seed=1, config=TWIN_CONFIG)
        obs, info = env.reset()
        mask = info["action_mask"]
        # The first component without every value allowed: pick a forbidden one.
        a = random_masked(np.random.default_rng(0), mask, [8] * 5)
        for c in range(5):
            blocked = np.flatnonzero(~mask[0, 8 * c:8 * c + 8])
            if len(blocked):
                a[0, c] = blocked[0]
                break
        else:
            self.skipTest("no masked value in this state")
        with self.assertRaisesRegex(ValueError, "role 'credit', instance 0: action component"):
            env.step(a)

    def test_matches_the_cpp_environment_step_for_step(self):
        for env_id, role, config, n in [("cartpole", "agent", None, 5),
                                        ("twin", "credit", TWIN_CONFIG, 4),
                                        ("twin", "portfolio", TWIN_CONFIG, 3)]:
            steps = 40
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "dump.bin")
                text = "" if config is None else str(config).replace("'", '"')
                subprocess.run([os.path.join(BUILD, "bin", "env_dump"), env_id, role, str(n),
                                "5", str(steps), text, out], check=True)
                raw = open(out, "rb").read()
            env = loantwin.make_vec(env_id, num_envs=n, seed=5, config=config, role=role)
            d = env.single_observation_space.shape[0]
            nvec = env.spec_dict["nvec"]
            w = sum(nvec)
            pos = 0

            def take(dtype, count):
                nonlocal pos
                size = np.dtype(dtype).itemsize * count
                arr = np.frombuffer(raw[pos:pos + size], dtype=dtype)
                pos += size
                return arr

            obs, info = env.reset()
            for t in range(steps):
                np.testing.assert_array_equal(obs.ravel(), take(np.float32, n * d),
                                              err_msg=f"{env_id}/{role} step {t}")
                np.testing.assert_array_equal(info["action_mask"].ravel().astype(np.uint8),
                                              take(np.uint8, n * w))
                a = allowed_rule(info["action_mask"], nvec, t)
                obs, rew, term, trunc, info = env.step(a if len(nvec) > 1 else a[:, 0])
                np.testing.assert_array_equal(rew, take(np.float32, n))
                np.testing.assert_array_equal(term.astype(np.uint8), take(np.uint8, n))
                np.testing.assert_array_equal(trunc.astype(np.uint8), take(np.uint8, n))
                np.testing.assert_array_equal(info["final_obs"].ravel(), take(np.float32, n * d))
            self.assertEqual(pos, len(raw))

    def test_roles_that_do_not_act_this_month_are_marked(self):
        env = loantwin.make_vec("twin", num_envs=2, seed=0, config=TWIN_CONFIG, role="risk")
        obs, info = env.reset()
        acting = []
        for _ in range(6):
            acting.append(bool(info["acting"][0]))
            obs, rew, term, trunc, info = env.step(np.full(2, 2, np.int32))
        self.assertEqual(acting, [True, False, False, True, False, False])

    def test_bad_twin_config_names_the_key(self):
        with self.assertRaisesRegex(loantwin.ConfigError, "institutoin"):
            loantwin.make_vec("twin", config={"institutoin": "cu_mid"})
        with self.assertRaisesRegex(loantwin.ConfigError, "horizon_months"):
            loantwin.make_vec("twin", config={"horizon_months": -3})
        with self.assertRaisesRegex(loantwin.ConfigError, "no_such_bank"):
            loantwin.make_vec("twin", config={"institution": "no_such_bank"})


if __name__ == "__main__":
    unittest.main()
