"""PettingZoo-style multi-agent APIs over the twin's five roles (or any native environment).

Both wrappers drive a chosen subset of roles (``agents``); every other role follows its fallback:
the rule-based baseline (default), ``"random"``, or a policy - any callable ``policy(obs, mask)
-> actions`` on numpy arrays, e.g. :func:`loantwin.load_policy` of an exported bundle.

They keep PettingZoo's names (``possible_agents``, ``agents``, ``observation_space(agent)``,
``action_space(agent)``, per-agent reward/termination/truncation/info dicts) over ``num_envs``
instances stepped together: each value is an array with one row per instance, a read-only view
of the environment's buffers (overwritten by the next step), and episodes reset automatically
per instance (same-step, like the vector API): after a termination or truncation the
observations already belong to the next episode and ``infos[agent]["final_obs"]`` holds the
last one. With ``num_envs=1`` and ``squeeze=True`` (the default when num_envs is 1) they follow
PettingZoo exactly: no leading axis, rewards and flags as Python scalars, and at an episode's
end the final observations are returned and the agents leave (Parallel: ``agents`` empties;
AEC: each done agent is stepped with None) until ``reset()``.

Roles act top-down within a month (risk, portfolio, pricing, credit, collection): a role's
directive (the risk appetite) bounds the masks of the roles below. ``AECEnv`` shows each role
its observation and mask after the roles above decided - the exact semantics. ``ParallelEnv``
takes every driven role's action at once, on the observations and masks from the start of the
month (the directives in force are the last ones decided; in an episode's first month, before the
risk role has decided, those left from the previous episode - the most conservative appetite in
the first episode): an action that a directive decided this month made invalid is moved to the
nearest allowed value of its component (``infos[agent]["adjusted"]`` counts the instances).
Actions out of range raise ValueError and leave the month untouched. Roles whose cadence skips this month (the risk role acts
quarterly) are marked ``infos[agent]["acting"] == False``; their actions are ignored there.
"""

from __future__ import annotations

import warnings

import numpy as np

from . import spaces as _spaces

try:  # pragma: no cover - depends on the machine
    import pettingzoo as _pz

    _ParallelBase, _AECBase = _pz.ParallelEnv, _pz.AECEnv
except ImportError:  # pragma: no cover
    _ParallelBase = _AECBase = object
from .vector import check_fallbacks, check_policy_features, make_native, native_args


class _MultiAgentBase:
    metadata = {"name": "loantwin", "is_parallelizable": True, "render_modes": []}
    render_mode = None

    def __init__(self, env_id="twin", num_envs=1, seed=0, threads=1, config=None, agents=None,
                 fallback="baseline", max_episode_steps=0, guardrails=None, squeeze=None):
        self._args = native_args(env_id, num_envs, threads, config, max_episode_steps,
                                 guardrails)
        self._driven = agents
        self._fallback = fallback
        self.squeeze = (num_envs == 1) if squeeze is None else bool(squeeze)
        if self.squeeze and num_envs != 1:
            raise ValueError("squeeze=True needs num_envs=1")
        self._build(int(seed))

    def _build(self, seed):
        env = make_native(self._args, seed)
        self._env = env
        self.num_envs = env.num_envs
        self.possible_agents = [env.role(r)["name"] for r in range(env.num_roles)]
        driven = list(self.possible_agents) if self._driven is None else list(self._driven)
        for agent in driven:
            env.role_index(agent)  # KeyError naming the roles for an unknown one
        if len(set(driven)) != len(driven):
            raise ValueError(f"agents lists a role twice: {driven}")
        # Keep the environment's top-down order whatever order the caller gave.
        self._driven_order = [n for n in self.possible_agents if n in driven]
        check_fallbacks(self._fallback, self.possible_agents, self._driven_order)
        self._policies = {}
        for r, role in enumerate(self.possible_agents):
            if role in self._driven_order:
                continue
            fb = self._fallback.get(role, "baseline") if isinstance(self._fallback, dict) \
                else self._fallback
            if callable(fb):
                check_policy_features(fb, env, role)
                self._policies[role] = fb
            else:
                env.set_fallback(r, fb)
        self._specs = {n: env.role(n) for n in self.possible_agents}
        self._spaces = {n: _spaces.role_spaces(self._specs[n]) for n in self.possible_agents}
        # arr[0, ...] is a view (a 0-d array for a 1-d buffer), unlike arr[0].
        sq = (lambda arr: arr[0, ...]) if self.squeeze else (lambda arr: arr)
        self._sq = sq
        self._obs = {n: sq(env.observations(n)) for n in self.possible_agents}
        self._final_obs = {n: sq(env.final_observations(n)) for n in self.possible_agents}
        self._raw_obs = {n: env.observations(n) for n in self.possible_agents}
        self._raw_masks = {n: env.action_masks(n) for n in self.possible_agents}
        self._rew = {n: sq(env.rewards(n)) for n in self.possible_agents}
        term, trunc = env.terminated(), env.truncated()
        self._term = {n: sq(term) for n in self.possible_agents}
        self._trunc = {n: sq(trunc) for n in self.possible_agents}
        self._done = np.zeros(self.num_envs, dtype=bool)
        self._raw_term, self._raw_trunc = term, trunc
        self._infos = {
            n: {"action_mask": self._sample_mask(n, sq(env.action_masks(n))),
                "mask": sq(env.action_masks(n)), "acting": sq(env.acting(n)),
                "reward_vector": sq(env.reward_vectors(n)),
                "final_obs": sq(env.final_observations(n)), "_final_obs": sq(self._done),
                "adjusted": 0}
            for n in self.possible_agents}
        self.agents = []
        self._over = False

    def _sample_mask(self, role, flat):
        """info["action_mask"]: with one instance, the form Gymnasium's space.sample(mask) and
        PettingZoo's API test take (int8; a tuple of one array per component for
        MultiDiscrete), as views of the mask buffer; otherwise the flat bool [N, width] mask."""
        if not self.squeeze:
            return flat
        spec = self._specs[role]
        m = flat.view(np.int8)
        if not spec["multi_discrete"]:
            return m
        offsets = np.cumsum([0] + list(spec["nvec"]))
        return tuple(m[offsets[k]:offsets[k + 1]] for k in range(len(spec["nvec"])))

    # -- PettingZoo attributes ---------------------------------------------------------------
    def observation_space(self, agent):
        return self._spaces[self._check_agent(agent)][0]

    def action_space(self, agent):
        return self._spaces[self._check_agent(agent)][1]

    @property
    def observation_spaces(self):
        return {n: self._spaces[n][0] for n in self.possible_agents}

    @property
    def action_spaces(self):
        return {n: self._spaces[n][1] for n in self.possible_agents}

    @property
    def num_agents(self):
        return len(self.agents)

    @property
    def max_num_agents(self):
        return len(self.possible_agents)

    @property
    def native(self):
        """The extension's Env (every role's buffers, metrics, fallbacks)."""
        return self._env

    def observe(self, agent):
        return self._obs[self._check_agent(agent)]

    def state(self):
        """The concatenated observations of every role (a copy)."""
        return np.concatenate([self._raw_obs[n] for n in self.possible_agents], axis=-1)

    def close(self):
        pass

    def render(self):
        return None

    @property
    def unwrapped(self):
        return self

    def _check_agent(self, agent):
        if agent not in self._specs:
            raise KeyError(f"no agent {agent!r} (possible agents: {self.possible_agents})")
        return agent

    def _reset_native(self, seed):
        if seed is not None:
            if not isinstance(seed, (int, np.integer)) or seed < 0:
                raise ValueError(f"seed must be a non-negative int, got {seed!r}")
            self._build(int(seed))
        self._env.reset()
        self._done.fill(False)
        self.agents = list(self._driven_order)

    def _fallback_act(self, role):
        """A non-driven role decides: its policy (a callable) or the environment's fallback."""
        policy = self._policies.get(role)
        if policy is None:
            self._env.act(role, None)
        else:
            actions = policy(self._raw_obs[role], self._raw_masks[role])
            self._env.act(role, np.asarray(actions))

    def _after_month(self):
        np.logical_or(self._raw_term, self._raw_trunc, out=self._done)


def _check_options(options):
    if options:
        warnings.warn(f"reset options are not used by loantwin environments: {sorted(options)}",
                      stacklevel=3)


class ParallelEnv(_MultiAgentBase, _ParallelBase):
    """PettingZoo Parallel API: every driven role acts at once (see the module docstring)."""

    def reset(self, seed=None, options=None):
        _check_options(options)
        self._reset_native(seed)
        return ({n: self._obs[n] for n in self.agents},
                {n: self._infos[n] for n in self.agents})

    def step(self, actions):
        if not self.agents:
            raise RuntimeError("no live agents: call reset() (first, or after an episode ended)")
        if not isinstance(actions, dict):
            raise TypeError("actions must be a dict agent -> actions")
        unknown = sorted(set(actions) - set(self.agents))
        if unknown:
            raise ValueError(f"actions for agents that are not driven: {unknown} "
                             f"(driven: {self.agents})")
        missing = [n for n in self.agents if n not in actions]
        if missing:
            raise ValueError(f"no actions for {missing}")
        # Every driven role's actions are checked before the first acts: an error leaves the
        # month untouched, so the caller can fix the actions and step again.
        batched = {}
        for role in self.agents:
            a = np.asarray(actions[role])
            if self.squeeze:
                a = a.reshape((1,) + a.shape)
            self._env.check_actions(role, a)
            batched[role] = a
        for role in self.possible_agents:
            if role in batched:
                self._infos[role]["adjusted"] = self._env.act(role, batched[role], True)
            else:
                self._fallback_act(role)
        self._env.step()
        self._after_month()
        live = self.agents
        if not self.squeeze:
            return ({n: self._obs[n] for n in live}, {n: self._rew[n] for n in live},
                    {n: self._term[n] for n in live}, {n: self._trunc[n] for n in live},
                    {n: self._infos[n] for n in live})
        # One instance: PettingZoo's episode semantics. Where the episode ended, the final
        # observations are returned and the agents leave until reset().
        done = bool(self._done[0])
        obs = {n: (self._final_obs[n] if done else self._obs[n]) for n in live}
        rew = {n: float(self._rew[n]) for n in live}
        term = {n: bool(self._term[n]) for n in live}
        trunc = {n: bool(self._trunc[n]) for n in live}
        infos = {n: self._infos[n] for n in live}
        if done:
            self.agents = []
        return obs, rew, term, trunc, infos


class AECEnv(_MultiAgentBase, _AECBase):
    """PettingZoo AEC API: driven roles act one after another, top-down, each on the observation
    and mask after the roles above decided; the month advances after the last driven role.

    With one instance (squeeze) it follows PettingZoo's episode semantics: rewards,
    terminations and truncations are Python scalars; when the episode ends every agent is
    terminated or truncated, ``last()`` shows its final observation, and each must be stepped
    with None, which removes it. With num_envs > 1 they are arrays and episodes reset per
    instance (``infos[agent]["final_obs"]``)."""

    def reset(self, seed=None, options=None):
        _check_options(options)
        self._reset_native(seed)
        self._over = False
        if self.squeeze:
            self.rewards = {n: 0.0 for n in self.agents}
            self.terminations = {n: False for n in self.agents}
            self.truncations = {n: False for n in self.agents}
            self._cumulative_rewards = {n: 0.0 for n in self.agents}
        else:
            self.rewards = {n: self._rew[n] for n in self.agents}
            self.terminations = {n: self._term[n] for n in self.agents}
            self.truncations = {n: self._trunc[n] for n in self.agents}
            self._cumulative_rewards = {n: np.zeros(self.num_envs, np.float64)
                                        for n in self.agents}
        self.infos = {n: self._infos[n] for n in self.agents}
        self._cursor = 0
        self._decide_until(self.agents[0])
        self.agent_selection = self.agents[0]

    def _decide_until(self, agent):
        """Non-driven roles above `agent` that have not decided yet decide now."""
        r_stop = self.possible_agents.index(agent)
        while self._cursor < r_stop:
            role = self.possible_agents[self._cursor]
            if role not in self._driven_order:
                self._fallback_act(role)
            self._cursor += 1

    def _decide_until_end(self):
        while self._cursor < len(self.possible_agents):
            role = self.possible_agents[self._cursor]
            if role not in self._driven_order:
                self._fallback_act(role)
            self._cursor += 1

    def observe(self, agent):
        self._check_agent(agent)
        return self._final_obs[agent] if self._over else self._obs[agent]

    def last(self, observe=True):
        agent = self.agent_selection
        return (self.observe(agent) if observe else None, self._cumulative_rewards[agent],
                self.terminations[agent], self.truncations[agent], self.infos[agent])

    def agent_iter(self, max_iter=2**63):
        for _ in range(max_iter):
            if not self.agents:
                return
            yield self.agent_selection

    def step(self, action):
        if not self.agents:
            raise RuntimeError("no live agents: call reset() (first, or after an episode ended)")
        agent = self.agent_selection
        if self._over:
            # The episode ended: each agent is stepped with None and leaves.
            if action is not None:
                raise ValueError(f"{agent!r} is done: the only valid action is None")
            i = self.agents.index(agent)
            self.agents.remove(agent)
            for n in self.agents:
                self.rewards[n] = 0.0
            for d in (self.rewards, self.terminations, self.truncations, self.infos,
                      self._cumulative_rewards):
                d.pop(agent, None)
            if self.agents:
                self.agent_selection = self.agents[i % len(self.agents)]
            return
        if action is None:
            raise ValueError(f"{agent!r} is live: None is only for agents that are done")
        a = np.asarray(action)
        if self.squeeze:
            a = a.reshape((1,) + a.shape)
        self._env.act(agent, a)
        if self.squeeze:
            self._cumulative_rewards[agent] = 0.0
        else:
            self._cumulative_rewards[agent].fill(0.0)
        self._cursor = self.possible_agents.index(agent) + 1
        nxt = self.agents.index(agent) + 1  # the next driven agent, in top-down order
        if self.squeeze:  # PettingZoo: rewards holds what this step() generated
            for n in self.agents:
                self.rewards[n] = 0.0
        if nxt == len(self.agents):
            # The month: the remaining roles fall back, then every role's reward accrues.
            self._decide_until_end()
            self._env.step()
            self._after_month()
            for n in self.agents:
                if self.squeeze:
                    self.rewards[n] = float(self._rew[n])
                    self._cumulative_rewards[n] += self.rewards[n]
                    self.terminations[n] = bool(self._term[n])
                    self.truncations[n] = bool(self._trunc[n])
                else:
                    np.add(self._cumulative_rewards[n], self._rew[n],
                           out=self._cumulative_rewards[n])
            nxt = 0
            self._cursor = 0
            if self.squeeze and bool(self._done[0]):
                self._over = True
                self.agent_selection = self.agents[0]
                return
        self.agent_selection = self.agents[nxt]
        self._decide_until(self.agent_selection)


def parallel_env(env_id="twin", **kwargs):
    """A :class:`ParallelEnv` (PettingZoo Parallel API) over a native environment."""
    return ParallelEnv(env_id, **kwargs)


def aec_env(env_id="twin", **kwargs):
    """An :class:`AECEnv` (PettingZoo AEC API) over a native environment."""
    return AECEnv(env_id, **kwargs)
