"""Exported policies in Python (load_policy, evaluate, a fallback of the multi-agent APIs) on a
briefly trained quickstart, and every python example of docs/python.md run as written."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

import numpy as np

import loantwin

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("LOANTWIN_BUILD_DIR", os.path.join(ROOT, "build"))


class ExportedPolicies(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="loantwin-py-")
        cli = os.path.join(BUILD, "bin", "loantwin")
        run = os.path.join(cls.tmp, "runs", "quickstart")
        # Two PPO updates of the quickstart (32 instances x 60 months each): enough for a bundle.
        subprocess.run([cli, "train", os.path.join(ROOT, "configs", "quickstart.yaml"), "--out",
                        run, "--total-steps", "3840"], check=True, capture_output=True)
        subprocess.run([cli, "export", run, "--out", os.path.join(run, "export")], check=True,
                       capture_output=True)
        cls.bundle = os.path.join(run, "export")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_load_policy_decides_within_the_mask(self):
        policy = loantwin.load_policy(self.bundle, "credit")
        self.assertTrue(policy.guardrails)  # the quickstart's capital_buffer guardrail
        env = loantwin.make_vec("twin", num_envs=16, seed=2, guardrails=policy.guardrails,
                                config={"institution": "cu_small", "scenario": "severe_recession"})
        self.assertEqual(env.feature_names, policy.feature_names)
        obs, info = env.reset()
        for _ in range(24):
            actions = policy(obs, info["action_mask"])
            self.assertEqual(actions.shape, (16, 5))
            mask = info["action_mask"].reshape(16, 5, 8)
            chosen = np.take_along_axis(mask, actions[:, :, None].astype(np.int64), axis=2)
            self.assertTrue(np.all(chosen))
            obs, rew, term, trunc, info = env.step(actions)
        with self.assertRaisesRegex(KeyError, "no role 'risk'"):
            loantwin.load_policy(self.bundle, "risk")
        with self.assertRaises(FileNotFoundError):
            loantwin.load_policy(self.tmp, "credit")

    def test_evaluate_runs_policy_and_baselines_on_the_same_paths(self):
        res = loantwin.evaluate(self.bundle, scenario="severe_recession", paths=8, months=24,
                                seed=3)
        pol, base = res["policy"], res["baseline"]
        self.assertEqual(pol["net_income"].shape, (8, 24))
        # Common random numbers: the same macro path under both.
        np.testing.assert_array_equal(pol["unemployment"], base["unemployment"])
        self.assertFalse(np.allclose(np.nan_to_num(pol["net_income"]),
                                     np.nan_to_num(base["net_income"])))
        again = loantwin.evaluate(self.bundle, scenario="severe_recession", paths=8, months=24,
                                  seed=3, threads=2)
        np.testing.assert_array_equal(np.nan_to_num(again["policy"]["net_income"]),
                                      np.nan_to_num(pol["net_income"]))

    def test_every_python_example_in_the_docs_runs(self):
        text = open(os.path.join(ROOT, "docs", "python.md"), encoding="utf-8").read()
        blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
        self.assertGreaterEqual(len(blocks), 3)
        cwd = os.getcwd()
        os.chdir(self.tmp)  # runs/quickstart/export is there
        try:
            for block in blocks:
                with self.subTest(block=block.splitlines()[0]):
                    exec(compile(block, "docs/python.md", "exec"), {})
        finally:
            os.chdir(cwd)


if __name__ == "__main__":
    unittest.main()
