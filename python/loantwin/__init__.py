"""loantwin for Python: the native vectorised environments with a numpy front end.

    import loantwin
    env = loantwin.make_vec("cartpole", num_envs=4096, seed=0)
    obs, info = env.reset()
    obs, rew, terminated, truncated, info = env.step(env.action_space.sample())

    par = loantwin.parallel_env("twin", agents=["pricing", "credit"])   # PettingZoo Parallel
    aec = loantwin.aec_env("twin")                                       # PettingZoo AEC
    paths = loantwin.simulate(institution="cu_mid", scenario="severe_recession", paths=100)

See docs/python.md.
"""

from __future__ import annotations

import json
import os

import numpy as np

from . import _loantwin
from ._loantwin import ConfigError, Env, registered_envs
from ._loantwin import __version__
from .multiagent import AECEnv, ParallelEnv, aec_env, parallel_env
from .spaces import HAVE_GYMNASIUM
from .vector import VectorEnv, check_policy_features, make_vec

__all__ = [
    "AECEnv", "ConfigError", "Env", "ParallelEnv", "TorchScriptPolicy", "VectorEnv",
    "__version__", "aec_env", "evaluate", "load_policy", "make_vec", "parallel_env",
    "registered_envs", "simulate", "HAVE_GYMNASIUM",
]


class TorchScriptPolicy:
    """An exported role policy (``loantwin export``) as a callable on numpy arrays:
    ``policy(obs [N, obs_dim] float32, mask [N, mask_width] bool) -> int32 [N, components]``.
    Needs PyTorch (Debian's python3-torch); the module is the same file ``loantwin serve`` runs.
    """

    def __init__(self, bundle_dir, role):
        import torch  # only exported policies need it

        path = os.path.join(os.fspath(bundle_dir), "manifest.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{bundle_dir}: no manifest.json (a loantwin export bundle)")
        with open(path, encoding="utf-8") as f:
            self.manifest = json.load(f)
        roles = self.manifest.get("roles", {})
        if role not in roles:
            raise KeyError(f"{path}: no role {role!r} (it has {sorted(roles)})")
        entry = roles[role]
        self.role = role
        self.feature_names = list(entry["observation"]["features"])
        self.mask_width = int(entry["mask"]["shape"][1])
        self.guardrails = self.manifest.get("guardrails", [])
        self._torch = torch
        self._module = torch.jit.load(os.path.join(os.fspath(bundle_dir), entry["file"]),
                                      map_location="cpu")
        self._module.eval()

    def __call__(self, obs, mask):
        torch = self._torch
        with torch.no_grad():
            o = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))
            m = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.uint8))
            return self._module(o, m).numpy().astype(np.int32)


def load_policy(bundle_dir, role):
    """The exported policy of `role` in an export bundle (see TorchScriptPolicy)."""
    return TorchScriptPolicy(bundle_dir, role)


def _run_paths(config, paths, months, seed, threads, policies, guardrails):
    """Steps `paths` twin instances for `months` months; roles in `policies` follow them, the
    others their baselines. Months after a path's episode ended (failure) are NaN."""
    env = _loantwin.Env("twin", paths, seed, threads, 0, json.dumps(config), "",
                        "<simulate config>", json.dumps(guardrails) if guardrails else "")
    if months > env.max_episode_steps:
        raise ValueError(f"months must be <= the horizon ({env.max_episode_steps}), got {months}")
    for role, policy in policies.items():
        check_policy_features(policy, env, role)
    names = list(env.metric_names)
    out = np.full((len(names), paths, months), np.nan)
    alive = np.ones(paths, dtype=bool)
    ended_at = np.full(paths, months, dtype=np.int64)
    env.reset()
    term, trunc = env.terminated(), env.truncated()
    for t in range(months):
        for r in range(env.num_roles):
            role = env.role(r)["name"]
            if role in policies:
                env.act(r, np.asarray(policies[role](env.observations(r), env.action_masks(r))))
            else:
                env.act(r, None)
        env.step()
        out[:, alive, t] = env.metrics().T[:, alive]
        ended = alive & (term | trunc)
        ended_at[ended] = t + 1
        alive &= ~ended
    result = {name: out[k] for k, name in enumerate(names)}
    result["months_alive"] = ended_at
    result["failed"] = ended_at < months
    return result


def simulate(institution="cu_small", scenario="steady_state", paths=100, months=120, seed=0,
             threads=1, config=None):
    """Monthly metrics of the twin under its rule-based baselines: a dict metric name ->
    float array [paths, months] (NaN after a path's institution failed), plus "months_alive"
    and "failed" per path. `config` adds twin env keys (docs/environment.md)."""
    cfg = {"institution": institution, "scenario": scenario}
    cfg.update(config or {})
    return _run_paths(cfg, int(paths), int(months), int(seed), int(threads), {}, None)


def evaluate(bundle_dir, institution=None, scenario="steady_state", paths=100, months=120,
             seed=0, threads=1, config=None):
    """An export bundle's policies against the baselines on the same paths: {"policy": {...},
    "baseline": {...}}, each as simulate() returns. The bundle's guardrails apply to the policy
    run; its institution is the default."""
    manifest_path = os.path.join(os.fspath(bundle_dir), "manifest.json")
    if not os.path.exists(manifest_path):
        raise FileNotFoundError(f"{bundle_dir}: no manifest.json (a loantwin export bundle)")
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest.get("environment") != "twin":
        raise ValueError(f"{manifest_path}: evaluate runs twin bundles, this one is for "
                         f"{manifest.get('environment')!r}")
    cfg = {"institution": institution or manifest.get("institution", "cu_small"),
           "scenario": scenario}
    cfg.update(config or {})
    policies = {role: TorchScriptPolicy(bundle_dir, role) for role in manifest["roles"]}
    guardrails = manifest.get("guardrails") or None
    return {
        "policy": _run_paths(cfg, int(paths), int(months), int(seed), int(threads), policies,
                             guardrails),
        "baseline": _run_paths(cfg, int(paths), int(months), int(seed), int(threads), {}, None),
    }

