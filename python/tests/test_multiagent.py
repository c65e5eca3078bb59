"""The PettingZoo-style Parallel and AEC wrappers over the twin's five roles, and simulate()."""

import unittest

import numpy as np

import loantwin

CONFIG = {"institution": "cu_mid", "scenario": "severe_recession", "horizon_months": 24}
ROLES = ["risk", "portfolio", "pricing", "credit", "collection"]


def random_actions(rng, space, mask):
    """Uniform over the allowed values of each component of one instance."""
    nvec = np.atleast_1d(getattr(space, "nvec", getattr(space, "n", None)))
    out, off = [], 0
    for size in nvec:
        out.append(rng.choice(np.flatnonzero(mask[off:off + size])))
        off += size
    return np.array(out if hasattr(space, "nvec") else out[0], dtype=np.int64)


class Parallel(unittest.TestCase):
    def test_every_role_with_spaces_masks_and_rewards(self):
        env = loantwin.parallel_env("twin", seed=2, config=CONFIG)
        self.assertEqual(env.possible_agents, ROLES)
        obs, infos = env.reset()
        self.assertEqual(sorted(obs), sorted(ROLES))
        rng = np.random.default_rng(0)
        acting_risk = []
        for _ in range(9):
            for a in env.agents:
                self.assertTrue(env.observation_space(a).contains(obs[a]), a)
            acting_risk.append(bool(infos["risk"]["acting"]))
            actions = {a: random_actions(rng, env.action_space(a), infos[a]["mask"])
                       for a in env.agents}
            obs, rew, term, trunc, infos = env.step(actions)
            self.assertEqual(set(rew), set(ROLES))
            for a in env.agents:
                self.assertEqual(np.shape(rew[a]), ())
        self.assertEqual(acting_risk, [True, False, False] * 3)

    def test_a_subset_of_roles_with_the_rest_on_baselines_matches_the_native_env(self):
        par = loantwin.parallel_env("twin", seed=4, config=CONFIG, agents=["credit", "pricing"],
                                    num_envs=3)
        self.assertEqual(par.agents, [])
        obs, infos = par.reset()
        self.assertEqual(list(obs), ["pricing", "credit"])
        self.assertEqual(obs["credit"].shape, (3, par.observation_space("credit").shape[0]))
        native = loantwin.Env("twin", 3, 4, 1, 0, str(CONFIG).replace("'", '"'))
        native.reset()
        for t in range(12):
            acts = {}
            for a in ["pricing", "credit"]:
                m = infos[a]["mask"]
                acts[a] = np.stack([np.argmax(m[i].reshape(5, -1), axis=1) for i in range(3)])
                acts[a] = acts[a].astype(np.int32)
            native.act("pricing", acts["pricing"])
            native.act("credit", acts["credit"])
            native.step()
            obs, rew, term, trunc, infos = par.step(acts)
            np.testing.assert_array_equal(obs["credit"], native.observations("credit"))
            np.testing.assert_array_equal(rew["pricing"], native.rewards("pricing"))

    def test_directive_adjustment_is_reported(self):
        # Risk drops to very_conservative every quarter: budgets chosen at the top of the month
        # above its cap are moved down to the cap, and infos say how many instances moved.
        env = loantwin.parallel_env("twin", seed=1, config=CONFIG, agents=["risk", "portfolio"],
                                    num_envs=4)
        obs, infos = env.reset()

        def top_budgets():  # the highest budget the mask shown allows, per product
            mask = infos["portfolio"]["mask"].reshape(4, 5, 8)
            return (7 - np.argmax(mask[:, :, ::-1], axis=2)).astype(np.int32)

        for month in range(3):  # aggressive appetite for a quarter
            obs, rew, term, trunc, infos = env.step(
                {"risk": np.full(4, 4, np.int32), "portfolio": top_budgets()})
            self.assertEqual(infos["portfolio"]["adjusted"], 0)
        top = top_budgets()
        self.assertTrue(np.all(top.max(axis=1) == 7))
        obs, rew, term, trunc, infos = env.step({"risk": np.zeros(4, np.int32), "portfolio": top})
        self.assertGreater(infos["portfolio"]["adjusted"], 0)
        in_force = env.native.actions("portfolio")
        # Very conservative caps budgets at 0.5x (index 1).
        self.assertTrue(np.all(in_force <= 1), in_force)

    def test_errors(self):
        env = loantwin.parallel_env("twin", seed=0, config=CONFIG, agents=["credit"])
        with self.assertRaisesRegex(RuntimeError, "reset"):
            env.step({"credit": np.zeros(5, np.int32)})
        env.reset()
        with self.assertRaisesRegex(ValueError, "not driven"):
            env.step({"credit": np.zeros(5, np.int32), "risk": 1})
        with self.assertRaisesRegex(ValueError, "no actions"):
            env.step({})
        with self.assertRaisesRegex(ValueError, "shape"):
            env.step({"credit": np.zeros(4, np.int32)})
        with self.assertRaisesRegex(ValueError, "out of range"):
            env.step({"credit": np.full(5, 9, np.int32)})
        # The errors left the month untouched: a valid step goes through.
        obs, rew, term, trunc, infos = env.step({"credit": np.zeros(5, np.int32)})
        self.assertEqual(np.shape(rew["credit"]), ())
        with self.assertRaisesRegex(KeyError, "no role 'lending'"):
            loantwin.parallel_env("twin", config=CONFIG, agents=["lending"])
        with self.assertRaisesRegex(ValueError, "fallback"):
            loantwin.parallel_env("twin", config=CONFIG, agents=["credit"], fallback="greedy")
        with self.assertRaisesRegex(KeyError, "fallback names no role.*'lending'"):
            loantwin.parallel_env("twin", config=CONFIG, agents=["credit"],
                                  fallback={"lending": "random"})
        with self.assertRaisesRegex(ValueError, "fallback for 'credit', which is driven"):
            loantwin.parallel_env("twin", config=CONFIG, agents=["credit"],
                                  fallback={"credit": "random"})
        with self.assertRaisesRegex(KeyError, "fallback names no role"):
            loantwin.make_vec("twin", config=CONFIG, fallback={"riks": "random"})
        with self.assertRaisesRegex(ValueError, "twice"):
            loantwin.parallel_env("twin", config=CONFIG, agents=["credit", "credit"])


class EpisodeEnds(unittest.TestCase):
    """One instance: PettingZoo's episode semantics (agents leave, final observations)."""

    SHORT = {"institution": "cu_small", "horizon_months": 3}

    def test_parallel_agents_leave_at_the_end(self):
        env = loantwin.parallel_env("twin", seed=0, config=self.SHORT, agents=["credit"])
        obs, infos = env.reset(seed=0)
        a = {"credit": np.argmax(infos["credit"]["mask"].reshape(5, 8), axis=1)}
        for month in range(3):
            self.assertEqual(env.agents, ["credit"])
            obs, rew, term, trunc, infos = env.step(a)
            self.assertIsInstance(rew["credit"], float)
            self.assertIsInstance(trunc["credit"], bool)
        self.assertEqual((term["credit"], trunc["credit"]), (False, True))
        self.assertEqual(env.agents, [])
        np.testing.assert_array_equal(obs["credit"], infos["credit"]["final_obs"])
        with self.assertRaisesRegex(RuntimeError, "reset"):
            env.step(a)
        with self.assertWarnsRegex(UserWarning, "not used"):
            obs, infos = env.reset(options={"options": 1})
        self.assertEqual(env.agents, ["credit"])

    def test_aec_done_agents_are_stepped_with_none(self):
        env = loantwin.aec_env("twin", seed=0, config=self.SHORT)
        env.reset(seed=0)
        self.assertFalse(any(env.terminations.values()) or any(env.truncations.values()))
        steps, nones = 0, 0
        rng = np.random.default_rng(0)
        for agent in env.agent_iter(max_iter=100):
            obs, reward, term, trunc, info = env.last()
            self.assertIsInstance(term, bool)
            self.assertIsInstance(reward, float)
            self.assertIsNone(env.last(observe=False)[0])
            if term or trunc:
                with self.assertRaisesRegex(ValueError, "only valid action is None"):
                    env.step(np.int64(0))
                env.step(None)
                nones += 1
            else:
                env.step(random_actions(rng, env.action_space(agent), info["mask"]))
            steps += 1
        self.assertEqual((steps, nones), (5 * 3 + 5, 5))
        self.assertEqual(env.agents, [])


class AEC(unittest.TestCase):
    def test_each_role_sees_the_directives_of_the_roles_above(self):
        env = loantwin.aec_env("twin", seed=3, config=CONFIG)
        env.reset()
        rng = np.random.default_rng(1)
        order, steps = [], 0
        for agent in env.agent_iter(max_iter=5 * 6):
            obs, reward, term, trunc, info = env.last()
            self.assertTrue(env.observation_space(agent).contains(obs))
            order.append(agent)
            if agent == "risk":
                action = np.int64(steps % 5)
            else:
                action = random_actions(rng, env.action_space(agent), info["mask"])
            if agent == "portfolio":
                # The risk appetite decided this month bounds the budgets shown now.
                cap = [1, 2, 4, 6, 7][int(env.native.actions("risk")[0, 0])]
                mask = info["mask"].reshape(5, 8)
                self.assertFalse(np.any(mask[:, cap + 1:]), (cap, mask))
            env.step(action)
            steps += 1
        self.assertEqual(order, ROLES * 6)

    def test_driving_one_role_with_an_exported_style_policy_for_another(self):
        calls = []

        def pricing_policy(obs, mask):
            calls.append(obs.shape)
            return np.full((obs.shape[0], 5), 4, np.int32)  # offset 0 everywhere

        env = loantwin.aec_env("twin", seed=0, config=CONFIG, agents=["credit"],
                               fallback={"pricing": pricing_policy, "risk": "random"})
        env.reset()
        for agent in env.agent_iter(max_iter=4):
            obs, reward, term, trunc, info = env.last()
            self.assertEqual(agent, "credit")
            env.step(np.argmax(info["mask"].reshape(5, 8), axis=1))
        self.assertEqual(len(calls), 5)  # the fifth month's pricing has decided
        self.assertTrue(np.all(env.native.actions("pricing") == 4))


class Simulate(unittest.TestCase):
    def test_monthly_metrics_as_arrays(self):
        a = loantwin.simulate(institution="cu_small", scenario="severe_recession", paths=20,
                              months=36, seed=5)
        b = loantwin.simulate(institution="cu_small", scenario="severe_recession", paths=20,
                              months=36, seed=5, threads=2)
        self.assertEqual(a["capital_ratio"].shape, (20, 36))
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        alive = ~np.isnan(a["capital_ratio"])
        np.testing.assert_array_equal(alive.sum(axis=1), a["months_alive"])
        self.assertTrue(np.all(a["capital_ratio"][alive] > 0))
        with self.assertRaisesRegex(ValueError, "horizon"):
            loantwin.simulate(months=500)
        with self.assertRaisesRegex(loantwin.ConfigError, "no_such_scenario"):
            loantwin.simulate(scenario="no_such_scenario", paths=2, months=2)


if __name__ == "__main__":
    unittest.main()
