"""The Python examples run: random_twin.py steps the five roles; ppo_cartpole.py solves
CartPole (20-episode mean >= 475 within 500k steps; the example exits 1 otherwise)."""

import os
import re
import subprocess
import sys
import unittest

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")


def run(script, *args):
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *args],
                          capture_output=True, text=True, env=dict(os.environ))


class Examples(unittest.TestCase):
    def test_random_twin(self):
        p = run("random_twin.py", "--months", "12", "--num-envs", "4")
        self.assertEqual(p.returncode, 0, p.stderr)
        for role in ["risk", "portfolio", "pricing", "credit", "collection"]:
            self.assertRegex(p.stdout, rf"{role}\s+reward summed over the months \(mean over instances\)\s+-?\d")
        self.assertIn("capital ratio after 12 months", p.stdout)

    def test_ppo_cartpole_solves(self):
        p = run("ppo_cartpole.py", "--total-timesteps", "500000", "--seed", "1")
        print(p.stdout[-2000:])
        self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-3000:])
        m = re.search(r"solved: 20-episode mean ([\d.]+) >= 475.0 after (\d+) steps", p.stdout)
        self.assertIsNotNone(m, p.stdout[-2000:])
        self.assertGreaterEqual(float(m.group(1)), 475.0)
        self.assertLessEqual(int(m.group(2)), 500_000)


if __name__ == "__main__":
    unittest.main()
