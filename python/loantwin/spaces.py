"""Observation and action spaces.

When Gymnasium is importable, :func:`box`, :func:`discrete` and :func:`multi_discrete` return
real ``gymnasium.spaces`` objects; otherwise the small classes below, which follow the same
attributes and methods (``shape``, ``dtype``, ``low``/``high``, ``n``, ``nvec``, ``contains``,
``sample``, ``seed``), so code written against Gymnasium's spaces runs unchanged.
"""

from __future__ import annotations

import numpy as np

try:  # pragma: no cover - depends on the machine
    import gymnasium as _gym

    HAVE_GYMNASIUM = True
except ImportError:  # pragma: no cover
    _gym = None
    HAVE_GYMNASIUM = False


class Space:
    """Base of the fallback spaces: a shape, a dtype and a seeded sampler."""

    def __init__(self, shape, dtype, seed=None):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self._np_random = np.random.default_rng(seed)

    def seed(self, seed=None):
        self._np_random = np.random.default_rng(seed)
        return [seed]

    @property
    def np_random(self):
        return self._np_random

    def __contains__(self, x):
        return self.contains(x)


class Box(Space):
    """Real vectors within [low, high] per element (+-inf allowed)."""

    def __init__(self, low, high, shape=None, dtype=np.float32, seed=None):
        low = np.asarray(low, dtype=dtype)
        high = np.asarray(high, dtype=dtype)
        if shape is None:
            shape = low.shape
        self.low = np.broadcast_to(low, shape).copy()
        self.high = np.broadcast_to(high, shape).copy()
        super().__init__(shape, dtype, seed)

    def contains(self, x):
        x = np.asarray(x)
        return bool(
            x.shape == self.shape
            and np.can_cast(x.dtype, self.dtype)
            and np.all(np.isfinite(x))
            and np.all(x >= self.low)
            and np.all(x <= self.high)
        )

    def sample(self):
        lo = np.where(np.isfinite(self.low), self.low, -1e3)
        hi = np.where(np.isfinite(self.high), self.high, 1e3)
        return self._np_random.uniform(lo, hi).astype(self.dtype)

    def __repr__(self):
        return f"Box({self.low.min()}, {self.high.max()}, {self.shape}, {self.dtype})"

    def __eq__(self, other):
        return (
            isinstance(other, Box)
            and self.shape == other.shape
            and np.array_equal(self.low, other.low)
            and np.array_equal(self.high, other.high)
        )


class Discrete(Space):
    """Integers 0 .. n-1."""

    def __init__(self, n, seed=None):
        self.n = int(n)
        super().__init__((), np.int64, seed)

    def contains(self, x):
        if isinstance(x, np.ndarray):
            if x.shape != () or x.dtype.kind not in "iu":
                return False
            x = int(x)
        elif not isinstance(x, (int, np.integer)):
            return False
        return 0 <= int(x) < self.n

    def sample(self, mask=None):
        if mask is None:
            return np.int64(self._np_random.integers(self.n))
        allowed = np.flatnonzero(np.asarray(mask, dtype=bool))
        return np.int64(self._np_random.choice(allowed))

    def __repr__(self):
        return f"Discrete({self.n})"

    def __eq__(self, other):
        return isinstance(other, Discrete) and self.n == other.n


class MultiDiscrete(Space):
    """Integer vectors with 0 <= x[k] < nvec[k]."""

    def __init__(self, nvec, seed=None):
        self.nvec = np.asarray(nvec, dtype=np.int64)
        super().__init__(self.nvec.shape, np.int64, seed)

    def contains(self, x):
        x = np.asarray(x)
        return bool(
            x.shape == self.shape
            and x.dtype.kind in "iu"
            and np.all(x >= 0)
            and np.all(x < self.nvec)
        )

    def sample(self, mask=None):
        if mask is None:
            return (self._np_random.random(self.shape) * self.nvec).astype(np.int64)
        out = np.empty(self.shape, np.int64)
        for k, m in enumerate(mask):
            out[k] = self._np_random.choice(np.flatnonzero(np.asarray(m, dtype=bool)))
        return out

    def __repr__(self):
        return f"MultiDiscrete({self.nvec.tolist()})"

    def __eq__(self, other):
        return isinstance(other, MultiDiscrete) and np.array_equal(self.nvec, other.nvec)


def box(low, high):
    """A float32 Box over the given per-element bounds."""
    low = np.asarray(low, dtype=np.float32)
    high = np.asarray(high, dtype=np.float32)
    if HAVE_GYMNASIUM:
        return _gym.spaces.Box(low=low, high=high, dtype=np.float32)
    return Box(low, high)


def discrete(n):
    return _gym.spaces.Discrete(n) if HAVE_GYMNASIUM else Discrete(n)


def multi_discrete(nvec):
    return _gym.spaces.MultiDiscrete(nvec) if HAVE_GYMNASIUM else MultiDiscrete(nvec)


def role_spaces(spec):
    """(observation space, action space) of one role from its spec (Env.role)."""
    obs = box(spec["low"], spec["high"])
    nvec = spec["nvec"]
    act = multi_discrete(nvec) if spec["multi_discrete"] else discrete(nvec[0])
    return obs, act


def batch(space, n):
    """The space of n stacked elements (Gymnasium's batch_space)."""
    if HAVE_GYMNASIUM:
        from gymnasium.vector.utils import batch_space

        return batch_space(space, n)
    if isinstance(space, Box):
        return Box(np.tile(space.low, (n,) + (1,) * len(space.shape)),
                   np.tile(space.high, (n,) + (1,) * len(space.shape)))
    if isinstance(space, Discrete):
        return MultiDiscrete(np.full(n, space.n))
    if isinstance(space, MultiDiscrete):
        return MultiDiscrete(np.tile(space.nvec, (n, 1)))
    raise TypeError(f"cannot batch {space!r}")
