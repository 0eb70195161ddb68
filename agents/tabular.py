"""Pieces shared by the tabular agents (:mod:`agents.dp`, :mod:`agents.mc`, :mod:`agents.td`).

* input checks that fail before any work: Discrete spaces, hyperparameter ranges, policy arrays;
* action selection: greedy with random tie-breaking, epsilon-greedy, and its action probabilities
  (needed by expected SARSA), sampling from a given deterministic or stochastic policy;
* a linear schedule for epsilon and the step size alpha;
* :class:`EpisodeLoop`, which owns the env side of a sample-based run: seeding, the step budget
  (``total_steps``), episode return/length bookkeeping and the ``log`` calls at each episode end.

Notation (Sutton & Barto): S_t, A_t, R_{t+1}; pi(a|s) a policy; Q(s, a) and V(s) tables indexed by the
integer state of a ``Discrete`` observation space.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import gymnasium as gym
import numpy as np

LogFn = Callable[[str, float, int], None]
"""``log(tag, value, step)``, e.g. ``log("charts/episodic_return", -13.0, 4210)``."""

Schedule = Callable[[float], float]
"""Maps the fraction of the run done so far (0 -> 1) to a hyperparameter value."""


# ----------------------------------------------------------------------------------------------------------
# Checks that run before any work
# ----------------------------------------------------------------------------------------------------------


def discrete_sizes(env: gym.Env, algorithm: str) -> tuple[int, int]:
    """Return ``(n_states, n_actions)``; ValueError unless both spaces are ``Discrete`` starting at 0.

    A tabular agent keeps one table row per state and one column per action, so it needs integer states
    and actions; a pixel or coordinate (Box) observation has to be made discrete first.
    """
    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(obs_space, gym.spaces.Discrete):
        raise ValueError(
            f"{algorithm} is tabular and needs a Discrete observation space (one table row per state), "
            f"got {obs_space}. Create the env with integer observations, e.g. "
            "gym.make('mpenv/GridWorld-v0', obs_mode='discrete'), or wrap it so that observations are "
            "state indices; for image/coordinate observations use a function-approximation agent."
        )
    if not isinstance(act_space, gym.spaces.Discrete):
        raise ValueError(
            f"{algorithm} is tabular and needs a Discrete action space (one table column per action), "
            f"got {act_space}. Discretize the actions (e.g. a wrapper mapping integers to fixed actions)."
        )
    for name, space in (("observation", obs_space), ("action", act_space)):
        if int(space.start) != 0:
            raise ValueError(
                f"{algorithm} indexes tables from 0, got a {name} space {space} starting at {space.start}; "
                "wrap the env to shift it to Discrete(n)."
            )
    return int(obs_space.n), int(act_space.n)


def check_gamma(gamma: float) -> None:
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma (discount) must be in [0, 1], got {gamma}")


def check_unit_interval(name: str, value: float | None) -> None:
    """For probabilities such as epsilon; ``None`` means "not used"."""
    if value is not None and not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def check_step_size(name: str, value: float | None) -> None:
    """Step sizes alpha in (0, 1]: larger than 1 overshoots the target and makes the table diverge."""
    if value is not None and not 0.0 < value <= 1.0:
        raise ValueError(f"{name} (step size) must be in (0, 1], got {value}")


def check_positive_int(name: str, value: int | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def check_budget(n_episodes: int, total_steps: int | None) -> None:
    check_positive_int("n_episodes", n_episodes)
    check_positive_int("total_steps", total_steps, allow_none=True)


def time_limit(env: gym.Env) -> int | None:
    """The episode step limit of ``env``: a ``TimeLimit`` wrapper's, or the env's own ``max_episode_steps``."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return int(env._max_episode_steps)
        env = env.env
    return getattr(env, "max_episode_steps", None)


def check_episodes_can_end(env: gym.Env, total_steps: int | None) -> None:
    """ValueError when a run counted in episodes could never finish its first one.

    An env whose start cannot reach a terminal state (``env.unwrapped.terminal_reachable`` is False: a
    gridworld layout with no goal or hole the agent can get to) ends episodes only by truncation. Without a
    time limit and without a step budget the first episode would run forever, silently.
    """
    if total_steps is not None or time_limit(env) is not None or getattr(env.unwrapped, "terminal_reachable", True):
        return
    name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    raise ValueError(
        f"episodes of {name} never end: no goal 'G' or hole 'H' can be reached from the start 'S' of its layout, "
        "and it has no time limit. Give it one (max_episode_steps=N in gym.make or in --env-kwargs) or give "
        "the run a step budget (total_steps, --total-steps)"
    )


def agent_rng(seed: int | None) -> np.random.Generator:
    """The agent's random generator for ``seed``, independent of the env's ``env.reset(seed=seed)``.

    Gymnasium seeds ``env.np_random`` as ``np.random.default_rng(seed)``. Giving the agent that same
    generator would make its draws identical to the env's: on slippery FrozenLake, a uniform random policy
    then never moves down, because the same number picks the action and the slip. The agent uses a child
    stream of the seed instead (``SeedSequence.spawn``), still fully determined by ``seed``.
    """
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])


# ----------------------------------------------------------------------------------------------------------
# Action selection
# ----------------------------------------------------------------------------------------------------------


def greedy_action(q: np.ndarray, rng: np.random.Generator) -> int:
    """argmax_a Q(s, a), ties broken uniformly at random.

    ``np.argmax`` would always pick the first of equal values, so with a zero-initialised table every
    state would start by trying action 0 forever-ish; random tie-breaking is what the book assumes.
    """
    best = np.flatnonzero(q == q.max())
    return int(best[0]) if len(best) == 1 else int(best[rng.integers(len(best))])


def epsilon_greedy_action(q: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """With probability epsilon a uniformly random action, otherwise a greedy one (random tie-breaking)."""
    if rng.random() < epsilon:
        return int(rng.integers(len(q)))
    return greedy_action(q, rng)


def epsilon_greedy_probs(q: np.ndarray, epsilon: float) -> np.ndarray:
    """pi(a|s) of :func:`epsilon_greedy_action`: epsilon/|A| + (1 - epsilon) [a greedy] / #greedy actions."""
    greedy = q == q.max()
    return epsilon / len(q) + (1.0 - epsilon) * greedy / greedy.sum()


def greedy_policy(Q: np.ndarray) -> np.ndarray:
    """Deterministic greedy policy pi(s) = argmax_a Q(s, a), int64 [S] (ties: lowest action index)."""
    return np.argmax(Q, axis=1).astype(np.int64)


class PolicySampler:
    """Draws A ~ pi(.|s) from a deterministic policy (int [S]) or a stochastic one (float [S, A])."""

    def __init__(self, policy: np.ndarray, n_states: int, n_actions: int):
        policy = np.asarray(policy)
        if policy.shape == (n_states,) and np.issubdtype(policy.dtype, np.integer):
            if policy.min() < 0 or policy.max() >= n_actions:
                raise ValueError(f"deterministic policy has actions outside [0, {n_actions})")
            self._actions = policy.astype(np.int64)
            self._cumulative = None
        elif policy.shape == (n_states, n_actions) and np.issubdtype(policy.dtype, np.floating):
            if policy.min() < 0 or not np.allclose(policy.sum(axis=1), 1.0, atol=1e-6):
                raise ValueError("stochastic policy rows must be probabilities that sum to 1")
            self._actions = None
            self._cumulative = np.cumsum(policy, axis=1)
        else:
            raise ValueError(
                f"policy must be an int array [S]=[{n_states}] (deterministic) or a float array "
                f"[S, A]=[{n_states}, {n_actions}] (stochastic), got {policy.dtype} {policy.shape}"
            )
        self.n_actions = n_actions

    def __call__(self, state: int, rng: np.random.Generator) -> int:
        if self._actions is not None:
            return int(self._actions[state])
        # Inverse-CDF sampling; the min() guards against a cumulative sum that ends at 0.9999999.
        action = int(np.searchsorted(self._cumulative[state], rng.random(), side="right"))
        return min(action, self.n_actions - 1)


# ----------------------------------------------------------------------------------------------------------
# Schedules
# ----------------------------------------------------------------------------------------------------------


def linear_schedule(start: float, end: float | None, fraction: float = 1.0) -> Schedule:
    """Linear interpolation from ``start`` to ``end`` over the first ``fraction`` of the run, then ``end``.

    ``end=None`` gives a constant ``start``. The argument of the returned function is the fraction of the
    run done (see :attr:`EpisodeLoop.progress`).
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"the decay fraction (exploration_fraction) must be in (0, 1], got {fraction}")
    if end is None:
        return lambda progress: start

    def value(progress: float) -> float:
        t = min(progress / fraction, 1.0)
        return (1.0 - t) * start + t * end  # exactly `end` once t = 1 (start + (end - start) t is not)

    return value


# ----------------------------------------------------------------------------------------------------------
# The env side of a sample-based run
# ----------------------------------------------------------------------------------------------------------


class Transition(NamedTuple):
    next_state: int
    reward: float
    terminated: bool  # S_{t+1} is terminal: its value is 0, do not bootstrap from it
    episode_over: bool  # terminated, truncated by a time limit, or the step budget is used up


class EpisodeLoop:
    """Runs episodes on ``env`` until ``n_episodes`` are done or ``total_steps`` env steps are taken.

    Usage (one episode per iteration)::

        loop = EpisodeLoop(env, n_episodes, seed, total_steps, log)
        for state in loop.episodes():
            ...
            next_state, reward, terminated, episode_over = loop.step(action)
            ...
            loop.end_episode({"charts/epsilon": epsilon})

    The env is reset with ``seed`` on the first episode only (later resets continue its RNG stream).
    ``end_episode`` logs ``charts/episodic_return`` (undiscounted sum of rewards), ``charts/episodic_length``
    and the extra scalars, at the current ``global_step``. An episode cut by the step budget is not an
    episode end: it is not logged, and :attr:`cut_by_budget` tells Monte Carlo methods not to learn from
    its incomplete return.
    """

    def __init__(
        self,
        env: gym.Env,
        n_episodes: int,
        seed: int | None,
        total_steps: int | None = None,
        log: LogFn | None = None,
    ):
        check_budget(n_episodes, total_steps)
        check_episodes_can_end(env, total_steps)
        self.env = env
        self.n_episodes = n_episodes
        self.seed = seed
        self.total_steps = total_steps
        self.log = log
        self.global_step = 0
        self.episode = 0  # episodes started so far
        self.episode_return = 0.0
        self.episode_length = 0
        self._cut = False

    @property
    def out_of_steps(self) -> bool:
        return self.total_steps is not None and self.global_step >= self.total_steps

    @property
    def cut_by_budget(self) -> bool:
        """True when the current episode ended because the step budget ran out."""
        return self._cut

    @property
    def progress(self) -> float:
        """Fraction of the run done, for schedules: episodes or steps, whichever budget is closer to done."""
        done = self.episode / self.n_episodes
        if self.total_steps is not None:
            done = max(done, self.global_step / self.total_steps)
        return min(done, 1.0)

    def episodes(self) -> Iterator[int]:
        """Yield the initial state S_0 of each episode."""
        while self.episode < self.n_episodes and not self.out_of_steps:
            state, _ = self.env.reset(seed=self.seed if self.episode == 0 else None)
            self.episode_return, self.episode_length, self._cut = 0.0, 0, False
            yield int(state)
            self.episode += 1

    def step(self, action: int) -> Transition:
        next_state, reward, terminated, truncated, _ = self.env.step(action)
        self.global_step += 1
        self.episode_length += 1
        self.episode_return += float(reward)
        self._cut = self.out_of_steps and not (terminated or truncated)
        return Transition(int(next_state), float(reward), bool(terminated), bool(terminated or truncated or self._cut))

    def end_episode(self, scalars: dict[str, float] | None = None) -> None:
        if self.log is None or self._cut:
            return
        self.log("charts/episodic_return", self.episode_return, self.global_step)
        self.log("charts/episodic_length", float(self.episode_length), self.global_step)
        for tag, value in (scalars or {}).items():
            self.log(tag, float(value), self.global_step)
