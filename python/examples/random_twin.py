"""Steps the twin's five roles from Python with random mask-respecting actions.

    PYTHONPATH=build/python python3 python/examples/random_twin.py [--months 36] [--num-envs 8]

Uses the PettingZoo-style AEC API (each role sees the risk appetite decided above it), prints
each role's mean reward, then compares the random policy's capital with the rule-based baselines'
from loantwin.simulate on the same seed.
"""

import argparse

import numpy as np

import loantwin


def random_actions(rng, space, mask):
    """One uniformly random allowed value per component and instance (mask [N, width])."""
    nvec = np.atleast_1d(space.nvec if hasattr(space, "nvec") else space.n)
    out = np.empty((mask.shape[0], len(nvec)), np.int32)
    off = 0
    for c, size in enumerate(nvec):
        for i in range(mask.shape[0]):
            out[i, c] = rng.choice(np.flatnonzero(mask[i, off:off + size]))
        off += size
    return out if hasattr(space, "nvec") else out[:, 0]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--months", type=int, default=36)
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--institution", default="cu_mid")
    p.add_argument("--scenario", default="mild_recession")
    args = p.parse_args()
    config = {"institution": args.institution, "scenario": args.scenario}
    env = loantwin.aec_env("twin", num_envs=args.num_envs, seed=args.seed, config=config,
                           squeeze=False)
    env.reset()
    rng = np.random.default_rng(args.seed)
    totals = {a: 0.0 for a in env.possible_agents}
    for agent in env.agent_iter(max_iter=args.months * len(env.possible_agents)):
        obs, reward, term, trunc, info = env.last()
        totals[agent] += float(np.mean(reward))
        env.step(random_actions(rng, env.action_space(agent), info["action_mask"]))
    print(f"{args.num_envs} x {args.institution} under {args.scenario}, {args.months} months, "
          "random roles:")
    for agent, total in totals.items():
        print(f"  {agent:<11} reward summed over the months (mean over instances) {total:10.4f}")
    capital = env.native.metrics()[:, list(env.native.metric_names).index("capital_ratio")]
    base = loantwin.simulate(institution=args.institution, scenario=args.scenario,
                             paths=args.num_envs, months=args.months, seed=args.seed)
    print(f"capital ratio after {args.months} months: random {np.mean(capital):.4f}, "
          f"baselines {np.nanmean(base['capital_ratio'][:, -1]):.4f}")


if __name__ == "__main__":
    main()
