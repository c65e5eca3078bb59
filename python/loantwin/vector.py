"""Gymnasium-style vectorised environments over loantwin's native environments.

``make_vec("cartpole" | "twin", num_envs=...)`` returns a :class:`VectorEnv` with
``gymnasium.vector.VectorEnv`` semantics in the same-step autoreset mode: ``step`` returns the
first observation of a new episode where one ended, and ``info["final_obs"]`` holds the last
observation of the finished one (rows valid where ``info["_final_obs"]``).

Zero copy: ``obs``, ``rewards``, ``terminated``, ``truncated`` and the arrays in ``info`` are
numpy views of the environment's own buffers, the same array objects on every call (observations
and masks read-only; rewards and flags writeable for in-place transforms - the environment
rewrites them every step).
They are overwritten by the next ``reset`` or ``step``: copy what you keep (``obs.copy()``,
``torch.as_tensor(obs).clone()``). ``reset(seed=...)`` rebuilds the environment, so arrays
returned before it keep the old environment's final values and new ones are returned.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np

from . import _loantwin
from . import spaces as _spaces

try:  # pragma: no cover - depends on the machine
    import gymnasium as _gym

    _VectorBase = _gym.vector.VectorEnv
    try:
        _SAME_STEP = _gym.vector.AutoresetMode.SAME_STEP
    except AttributeError:  # Gymnasium 1.0 has no AutoresetMode
        _SAME_STEP = "same_step"
except ImportError:  # pragma: no cover
    _gym = None
    _VectorBase = object
    _SAME_STEP = "same_step"


def _config_args(config, name="config"):
    """(config_text, config_file, config_name) for the extension from a dict, a path or None."""
    if config is None:
        return "", "", "<config>"
    if isinstance(config, dict):
        # JSON is YAML: the C++ reader checks every key and value and names the bad one.
        return json.dumps(config), "", f"<{name} dict>"
    if isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{name}: no such file: {path}")
        return "", path, path
    raise TypeError(f"{name} must be a dict, a path or None, not {type(config).__name__}")


def _guardrails_text(guardrails):
    if guardrails is None:
        return ""
    if not isinstance(guardrails, (list, tuple)):
        raise TypeError("guardrails must be a list of rules (docs/training.md, 'Guardrails')")
    return json.dumps(list(guardrails))


def native_args(env_id, num_envs, threads, config, max_episode_steps, guardrails):
    """The checked arguments of a native environment, kept to rebuild it with a new seed."""
    if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    return dict(env_id=env_id, num_envs=int(num_envs), threads=int(threads), config=config,
                max_episode_steps=int(max_episode_steps), guardrails=guardrails)


def make_native(args, seed):
    """The extension's Env from native_args() and a seed."""
    text, path, name = _config_args(args["config"])
    return _loantwin.Env(args["env_id"], args["num_envs"], seed, args["threads"],
                         args["max_episode_steps"], text, path, name,
                         _guardrails_text(args["guardrails"]))


def check_fallbacks(fallback, role_names, driven):
    """A fallback dict names only roles of the environment that are not driven."""
    if not isinstance(fallback, dict):
        return
    for role in fallback:
        if role not in role_names:
            raise KeyError(f"fallback names no role of this environment: {role!r} "
                           f"(roles: {role_names})")
        if role in driven:
            raise ValueError(f"fallback for {role!r}, which is driven from Python")


def check_policy_features(policy, env, role):
    """A policy that names its observation features (an exported one) must have been exported
    for this environment's features of `role`."""
    names = getattr(policy, "feature_names", None)
    if names is not None and list(names) != list(env.role(role)["feature_names"]):
        raise ValueError(f"the policy for {role!r} was exported for other observation features "
                         f"than this environment's (feature names differ)")


def default_role(env_name, role_names):
    """The role make_vec drives when none is named: the only one, or the twin's credit role."""
    if len(role_names) == 1:
        return role_names[0]
    if "credit" in role_names:
        return "credit"
    raise ValueError(f"{env_name} has roles {role_names}: name the one to drive with role=")


class VectorEnv(_VectorBase):
    """One role of a native environment as a Gymnasium vector environment.

    The other roles follow their fallbacks (rule-based baselines by default; ``fallback=
    "random"`` for uniformly random mask-respecting actions). Roles above the driven one decide
    before its observation is returned, so its observation and ``info["action_mask"]`` are
    those it acts on.
    """

    metadata = {"autoreset_mode": _SAME_STEP, "render_modes": []}
    render_mode = None

    def __init__(self, env_id, num_envs=1, seed=0, threads=1, config=None, role=None,
                 max_episode_steps=0, fallback="baseline", guardrails=None):
        self._args = native_args(env_id, num_envs, threads, config, max_episode_steps,
                                 guardrails)
        self._fallback = fallback
        self._role_name = role
        self._build(int(seed))
        self.closed = False

    # -- construction ------------------------------------------------------------------------
    def _build(self, seed):
        env = make_native(self._args, seed)
        names = [env.role(r)["name"] for r in range(env.num_roles)]
        role = self._role_name if self._role_name is not None \
            else default_role(self._args["env_id"], names)
        r = env.role_index(role)
        check_fallbacks(self._fallback, names, [names[r]])
        for k in range(env.num_roles):
            if k != r:
                if isinstance(self._fallback, dict):
                    env.set_fallback(k, self._fallback.get(names[k], "baseline"))
                else:
                    env.set_fallback(k, self._fallback)
        self._env, self._r, self.role = env, r, names[r]
        self.role_names = names
        spec = env.role(r)
        self.spec_dict = spec
        self.feature_names = spec["feature_names"]
        self.action_dim_names = spec["action_dim_names"]
        self.action_meanings = spec["action_meanings"]
        self.objectives = spec["objectives"]
        self.num_envs = env.num_envs
        self.single_observation_space, self.single_action_space = _spaces.role_spaces(spec)
        self.observation_space = _spaces.batch(self.single_observation_space, self.num_envs)
        self.action_space = _spaces.batch(self.single_action_space, self.num_envs)
        self._multi = spec["multi_discrete"]
        # The views, created once: the same objects are returned on every step.
        self._obs = env.observations(r)
        self._rew = env.rewards(r)
        self._term = env.terminated()
        self._trunc = env.truncated()
        self._done = np.zeros(self.num_envs, dtype=bool)
        self._ep_return = np.zeros(self.num_envs, dtype=np.float64)
        self._ep_length = np.zeros(self.num_envs, dtype=np.int64)
        self._final_return = np.zeros(self.num_envs, dtype=np.float64)
        self._final_length = np.zeros(self.num_envs, dtype=np.int64)
        self._info = {
            "action_mask": env.action_masks(r),
            "acting": env.acting(r),
            "reward_vector": env.reward_vectors(r),
            "episode_steps": env.episode_steps(),
            "final_obs": env.final_observations(r),
            "_final_obs": self._done,
            "final_info": {"action_mask": env.final_action_masks(r),
                           "episode_return": self._final_return,
                           "episode_length": self._final_length},
            "_final_info": self._done,
        }
        self._has_reset = False

    # -- the Gymnasium API ----------------------------------------------------------------------
    def reset(self, *, seed=None, options=None):
        """Starts a new episode on every instance; ``seed`` (an int) rebuilds the environment
        with that seed, so the same seed gives the same episodes."""
        self._check_open()
        if options:
            warnings.warn(f"reset options are not used by loantwin environments: "
                          f"{sorted(options)}", stacklevel=2)
        if seed is not None:
            if isinstance(seed, (list, tuple, np.ndarray)):
                raise TypeError("seed must be one int: instance i draws from stream seed, i")
            if not isinstance(seed, (int, np.integer)) or seed < 0:
                raise ValueError(f"seed must be a non-negative int, got {seed!r}")
            self._build(int(seed))
        self._env.reset_role(self._r)
        self._done.fill(False)
        self._ep_return.fill(0.0)
        self._ep_length.fill(0)
        self._has_reset = True
        return self._obs, self._fresh_info()

    def step(self, actions):
        """Applies one action per instance ([num_envs] for Discrete, [num_envs, dims] for
        MultiDiscrete; any integer dtype, int32 C-contiguous is used without a copy).
        Returns (obs, rewards, terminated, truncated, info)."""
        self._check_open()
        if not self._has_reset:
            raise RuntimeError("call reset() before step()")
        if not isinstance(actions, np.ndarray):
            actions = np.asarray(actions)
        self._env.step_role(self._r, actions)
        np.logical_or(self._term, self._trunc, out=self._done)
        np.add(self._ep_return, self._rew, out=self._ep_return)
        np.add(self._ep_length, 1, out=self._ep_length)
        np.copyto(self._final_return, self._ep_return, where=self._done)
        np.copyto(self._final_length, self._ep_length, where=self._done)
        np.copyto(self._ep_return, 0.0, where=self._done)
        np.copyto(self._ep_length, 0, where=self._done)
        return self._obs, self._rew, self._term, self._trunc, self._fresh_info()

    def _fresh_info(self):
        """A new dict per call holding the same arrays: wrappers (Gymnasium's
        RecordEpisodeStatistics) add keys to the info they get, which must not carry over."""
        info = dict(self._info)
        info["final_info"] = dict(self._info["final_info"])
        return info

    def close(self, **kwargs):
        self.closed = True

    def render(self):
        return None

    @property
    def unwrapped(self):
        return self

    @property
    def native(self):
        """The extension's Env: every role's buffers, metrics and fallbacks."""
        return self._env

    def metrics(self):
        """Per-instance metrics of the last month (the twin's metric row), a dict of arrays."""
        values = self._env.metrics()
        return {name: values[:, k] for k, name in enumerate(self._env.metric_names)}

    def _check_open(self):
        if self.closed:
            raise RuntimeError("the environment is closed")

    def __repr__(self):
        return (f"loantwin.VectorEnv({self._args['env_id']!r}, num_envs={self.num_envs}, "
                f"role={self.role!r})")


def make_vec(env_id, num_envs=1, seed=0, threads=1, config=None, role=None,
             max_episode_steps=0, fallback="baseline", guardrails=None):
    """A vectorised environment (see :class:`VectorEnv`).

    env_id: "cartpole" or "twin" (loantwin.registered_envs()). config: the environment's config
    as a dict or a YAML file path (docs/environment.md). role: the role to drive (default: the
    only role, or "credit" for the twin). fallback: "baseline" or "random" for the other roles,
    or a dict role -> either. guardrails: a list of guardrail rules (docs/training.md), e.g. an
    exported manifest's "guardrails". threads: worker threads stepping the instances (results do
    not depend on it).
    """
    return VectorEnv(env_id, num_envs=num_envs, seed=seed, threads=threads, config=config,
                     role=role, max_episode_steps=max_episode_steps, fallback=fallback,
                     guardrails=guardrails)
