"""Experience replay: a fixed-size memory of transitions ``(s, a, r, s', d)`` sampled uniformly.

Off-policy agents (DQN, and any later one that learns from old experience) store every transition
and learn from random minibatches of them; sampling at random breaks the correlation between
consecutive steps that would otherwise make stochastic gradient descent unstable (Mnih et al., 2015).

    buffer = ReplayBuffer(capacity=100_000, obs_shape=(4,), obs_dtype=np.float32, seed=1)
    buffer.add(obs, next_obs, actions, rewards, dones)      # one row per vector-env copy
    batch = buffer.sample(64)                               # numpy arrays, ready for torch.from_numpy

The arrays are allocated once, at full size, and filled as a ring: when the buffer is full the
oldest transition is overwritten. ``next_obs`` is stored beside ``obs`` rather than derived from the
following row, so a transition that ends an episode keeps its true final observation (with
autoreset the env has already moved on to the next episode) at the price of twice the observation
memory: 100k CartPole transitions take 3 MB, 100k 84x84x4 uint8 frames 5.6 GB.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Batch(NamedTuple):
    """A minibatch of transitions; row ``i`` of every array belongs to the same transition."""

    obs: np.ndarray  # (B, *obs_shape), the stored dtype (uint8 images stay uint8)
    actions: np.ndarray  # (B, *action_shape)
    rewards: np.ndarray  # (B,) float32
    next_obs: np.ndarray  # (B, *obs_shape)
    dones: np.ndarray  # (B,) float32, 1.0 where s' is terminal (the TD target does not bootstrap)
    # (B,) the TD targets y, when a learner computed them ahead for many minibatches at once (DQN does, per
    # round); None as sampled.
    targets: np.ndarray | None = None


class ReplayBuffer:
    """A preallocated ring buffer of transitions with uniform sampling (with replacement).

    ``dones`` should be the env's ``terminated`` flags only: a time-limit truncation is not the end of
    the task, so its target must still bootstrap from ``s'``. They are stored as 0/1 float32 so the
    TD target can use them as the ``(1 - d)`` factor directly.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype | type = np.float32,
                 action_shape: tuple[int, ...] = (), action_dtype: np.dtype | type = np.int64,
                 seed: int | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"replay buffer capacity must be at least 1, got {capacity}")
        self.capacity = int(capacity)
        self.obs = np.zeros((self.capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros_like(self.obs)
        self.actions = np.zeros((self.capacity, *action_shape), dtype=action_dtype)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.dones = np.zeros(self.capacity, dtype=np.float32)
        self.pos = 0  # where the next transition goes
        self.size = 0  # how many rows hold data (== capacity once the ring has wrapped)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, next_obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
            dones: np.ndarray) -> None:
        """Store ``n`` transitions, one per row (a vector env's step); the oldest are overwritten."""
        n = len(obs)
        if obs.shape[1:] != self.obs.shape[1:] or next_obs.shape != obs.shape:
            raise ValueError(f"observations of shape {obs.shape} / {next_obs.shape} do not fit a buffer of "
                             f"(n, {', '.join(map(str, self.obs.shape[1:]))}) observations")
        if n > self.capacity:
            raise ValueError(f"cannot add {n} transitions at once to a buffer of capacity {self.capacity}")
        if self.pos + n <= self.capacity:  # the common case: one contiguous slice, no index array
            rows: slice | np.ndarray = slice(self.pos, self.pos + n)
        else:
            rows = (self.pos + np.arange(n)) % self.capacity
        self.obs[rows] = obs
        self.next_obs[rows] = next_obs
        self.actions[rows] = actions
        self.rewards[rows] = rewards
        self.dones[rows] = dones
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, n_batches: int | None = None) -> Batch:
        """``batch_size`` transitions drawn uniformly (with replacement) from those stored.

        With ``n_batches``, that many independent minibatches in one draw, stacked along a new first
        axis: a round of gradient steps indexes the buffer once instead of once per step, which is a
        tenth of a small network's gradient step.
        """
        if batch_size < 1 or (n_batches is not None and n_batches < 1):
            raise ValueError(f"batch_size and n_batches must be at least 1, got {batch_size} and {n_batches}")
        if batch_size > self.size:
            raise ValueError(f"cannot sample {batch_size} transitions from a replay buffer holding {self.size}; "
                             "collect more steps first (learning_starts >= batch_size)")
        rows = self.rng.integers(0, self.size, size=batch_size if n_batches is None else (n_batches, batch_size))
        return Batch(self.obs[rows], self.actions[rows], self.rewards[rows], self.next_obs[rows], self.dones[rows])

    @property
    def transition_bytes(self) -> int:
        """Memory of one sampled transition (both observations, action, reward, done)."""
        return 2 * self.obs[0].nbytes + self.actions[0].nbytes + 8
