r"""Dynamic programming on a known finite MDP: policy evaluation, value iteration, policy iteration.

The model p(s', r | s, a) is given as K outcomes per state-action pair (Sutton & Barto, chapter 4),
k = 1..K, each with probability p_k, next state s'_k, reward r_k and a flag done_k ("s'_k is terminal"):

    q(s, a)     = sum_k p_k [ r_k + gamma (1 - done_k) v(s'_k) ]                            (4.6)
                = r(s, a) + gamma sum_k p_k (1 - done_k) v(s'_k)

    policy evaluation   v_{k+1}(s) = sum_a pi(a|s) q_k(s, a)                               (4.5)
    value iteration     v_{k+1}(s) = max_a q_k(s, a)                                       (4.10)
    policy improvement  pi'(s)     = argmax_a q_pi(s, a)                                   (4.9)

where q_k is (4.6) evaluated with v_k. The expected reward r(s, a) = sum_k p_k r_k and the continuation
weights p_k (1 - done_k) do not change between sweeps, so they are computed once (:class:`MDP`).

Convergence criterion: the loops watch the sup-norm change of a sweep,
``delta = max_s |v_{k+1}(s) - v_k(s)|``. For gamma < 1 the backup is a gamma-contraction, so

    max_s |v_{k+1}(s) - v_*(s)| <= gamma / (1 - gamma) * delta                              (error bound)

(v_* the fixed point: v_pi for evaluation, the optimal v for value iteration). :func:`value_iteration`
stops by default when this bound is below ``tol`` (``stop="error_bound"``), so ``tol`` is the accuracy of
the values it returns; ``stop="delta"`` stops as soon as ``delta < tol``, which leaves an error of up to
``gamma / (1 - gamma) * tol`` (about 1e-4 for tol=1e-6 at gamma=0.99). :func:`policy_evaluation` and
:func:`policy_iteration` stop on ``delta < tol``. With gamma = 1 there is no such bound and every loop
stops on ``delta < tol``.

gamma = 1 (undiscounted episodic tasks such as CliffWalking) is allowed, but v_pi is finite only for a
*proper* policy, one that reaches a terminal state with probability 1 from every state. Evaluating an
improper policy would run forever (v -> -inf on CliffWalking), so every loop is capped by
``max_iterations`` and raises :class:`ConvergenceError` when the cap is hit. :func:`policy_iteration`
with gamma = 1 therefore starts from :func:`proper_policy` unless you pass ``initial_policy``.

Implementation: vectorised numpy with no loop over states and no S x S matrix. One sweep is
a gather ``v[s'_k]`` over the [K, A, S] next-state table, a multiply by the folded weights, a sum over K
and a max over A, all into preallocated buffers: on 1M states x 4 actions a sweep takes about 10 ms
(K = 1) or 25 ms (K = 3) on one CPU core (``benchmarks/bench_value_iteration.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import gymnasium as gym
import numpy as np

from agents.tabular import LogFn, check_gamma, check_positive_int, discrete_sizes

# ----------------------------------------------------------------------------------------------------------
# Configs (fields = the keyword parameters of the function of the same name)
# ----------------------------------------------------------------------------------------------------------


@dataclass
class PolicyEvaluationConfig:
    gamma: float = field(default=0.99, metadata={"help": "discount factor in [0, 1]"})
    tol: float = field(default=1e-6, metadata={"help": "stop when max_s |v_{k+1}(s) - v_k(s)| < tol"})
    max_iterations: int = field(
        default=100_000, metadata={"help": "sweep cap; hitting it raises ConvergenceError (improper policy?)"}
    )


STOP_RULES = ("error_bound", "delta")
"""Stopping rules of :func:`value_iteration`: the guaranteed error bound, or the sweep change alone."""


@dataclass
class ValueIterationConfig:
    gamma: float = field(default=0.99, metadata={"help": "discount factor in [0, 1]"})
    tol: float = field(
        default=1e-6, metadata={"help": "accuracy: with --stop error_bound, max_s |V(s) - v*(s)| < tol on return"}
    )
    max_iterations: int = field(default=100_000, metadata={"help": "sweep cap; hitting it raises ConvergenceError"})
    stop: str = field(
        default="error_bound",
        metadata={
            "help": "stopping rule, on the sweep change delta = max_s |v_{k+1}(s) - v_k(s)|: 'error_bound' stops "
            "when gamma / (1 - gamma) * delta < tol, which guarantees max_s |V(s) - v*(s)| < tol (gamma = 1 "
            "has no such bound: delta < tol); 'delta' stops when delta < tol, an error of up to "
            "gamma / (1 - gamma) * tol"
        },
    )


@dataclass
class PolicyIterationConfig:
    gamma: float = field(default=0.99, metadata={"help": "discount factor in [0, 1]"})
    tol: float = field(
        default=1e-6, metadata={"help": "policy-evaluation tolerance; also the margin an action must win by"}
    )
    max_iterations: int = field(
        default=1_000, metadata={"help": "cap on evaluation-improvement rounds (raises ConvergenceError)"}
    )
    eval_max_iterations: int = field(
        default=100_000, metadata={"help": "sweep cap of each policy evaluation (raises ConvergenceError)"}
    )


class ConvergenceError(RuntimeError):
    """A DP loop hit its iteration cap (or its values stopped being finite)."""


# ----------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class MDP:
    """A finite MDP as sparse outcome tables, each shaped [S, A, K] (K outcomes per state-action pair).

    ``prob[s, a, k]`` is p_k, ``next_state`` s'_k, ``reward`` r_k, ``done`` whether s'_k is terminal.
    Unused slots (fewer than K outcomes) have probability 0. This is the layout of
    ``env.unwrapped.sparse_model()`` of the mpenv gridworlds; :meth:`from_env` also converts gymnasium's
    toy-text ``P[s][a] = [(prob, next_state, reward, terminated), ...]``.
    """

    next_state: np.ndarray
    prob: np.ndarray
    reward: np.ndarray
    done: np.ndarray
    n_states: int = field(init=False)
    n_actions: int = field(init=False)
    n_outcomes: int = field(init=False)

    def __post_init__(self) -> None:
        # asarray: no copy when the env already hands out arrays of these dtypes (1M-state models are big).
        self.next_state = np.asarray(self.next_state, dtype=np.intp)
        self.prob = np.asarray(self.prob, dtype=np.float64)
        self.reward = np.asarray(self.reward, dtype=np.float64)
        self.done = np.asarray(self.done, dtype=bool)
        shape = self.prob.shape
        if len(shape) != 3 or any(a.shape != shape for a in (self.next_state, self.reward, self.done)):
            raise ValueError(
                "next_state, prob, reward and done must all have one shape [S, A, K], got "
                f"{[a.shape for a in (self.next_state, self.prob, self.reward, self.done)]}"
            )
        self.n_states, self.n_actions, self.n_outcomes = shape
        if self.next_state.min() < 0 or self.next_state.max() >= self.n_states:
            raise ValueError(f"next_state has indices outside [0, {self.n_states})")
        if self.prob.min() < 0 or np.abs(self.prob.sum(axis=2) - 1.0).max() > 1e-6:
            raise ValueError("prob must be >= 0 and sum to 1 over the K outcomes of every (s, a)")
        if not np.isfinite(self.reward).all():
            raise ValueError("reward has non-finite entries")

    @classmethod
    def from_env(cls, env: gym.Env) -> MDP:
        """The model of ``env``: ``env.unwrapped.sparse_model()`` if it has one, else its toy-text ``P``."""
        n_states, n_actions = discrete_sizes(env, "MDP.from_env")
        model = env.unwrapped
        if callable(getattr(model, "sparse_model", None)):
            sparse = model.sparse_model()
            return cls(sparse.next_state, sparse.prob, sparse.reward, sparse.done)
        if getattr(model, "P", None) is not None:
            return cls.from_transitions(model.P, n_states, n_actions)
        raise ValueError(
            f"{type(model).__name__} exposes neither sparse_model() nor a toy-text transition table P, so "
            "its model is unknown to dynamic programming. Use a sample-based agent (agents.mc, agents.td) "
            "or an env that publishes its model (the mpenv gridworlds, FrozenLake, CliffWalking, Taxi)."
        )

    @classmethod
    def from_transitions(
        cls, P: Mapping[int, Mapping[int, Sequence[tuple[float, int, float, bool]]]], n_states: int, n_actions: int
    ) -> MDP:
        """Convert ``P[s][a] = [(prob, next_state, reward, terminated), ...]`` into [S, A, K] tables.

        Reading the nested Python containers needs one pass over them; the rest is array scatter.
        """
        try:
            outcome_lists = [P[s][a] for s in range(n_states) for a in range(n_actions)]
        except (KeyError, IndexError) as err:
            raise ValueError(f"P must have an entry P[s][a] for every state and action; missing {err}") from err
        counts = np.fromiter(map(len, outcome_lists), dtype=np.intp, count=len(outcome_lists))
        if counts.min() == 0:
            s, a = divmod(int(np.argmin(counts)), n_actions)
            raise ValueError(f"P[{s}][{a}] has no outcomes")
        columns = zip(*(outcome for outcomes in outcome_lists for outcome in outcomes), strict=True)
        prob, next_state, reward, done = (np.array(column) for column in columns)
        # Outcome j of pair (s, a) goes to slot k = j - (index of the pair's first outcome).
        pair = np.repeat(np.arange(len(counts)), counts)
        slot = np.arange(len(pair)) - np.repeat(np.cumsum(counts) - counts, counts)
        K = int(counts.max())
        tables = {
            # Padding slots: probability 0, pointing at the state itself so every index stays valid.
            "next_state": np.repeat(np.arange(n_states), n_actions)[:, None].repeat(K, axis=1),
            "prob": np.zeros((len(counts), K)),
            "reward": np.zeros((len(counts), K)),
            "done": np.zeros((len(counts), K), dtype=bool),
        }
        for name, values in zip(tables, (next_state, prob, reward, done), strict=True):
            tables[name][pair, slot] = values
        return cls(**{name: t.reshape(n_states, n_actions, K) for name, t in tables.items()})

    @cached_property
    def expected_reward(self) -> np.ndarray:
        """r(s, a) = sum_k p_k r_k, float64 [S, A]."""
        return np.einsum("sak,sak->sa", self.prob, self.reward)

    @cached_property
    def _backup(self) -> _BellmanBackup:
        return _BellmanBackup(self)


class _BellmanBackup:
    """The constant arrays of (4.6) and the buffers of one sweep, laid out [K, A, S].

    With S last, every numpy call streams over contiguous rows of length S; reducing over a short last
    axis (max over A = 4, sum over K = 3) is several times slower. Outcome slots that never continue
    (probability 0 or terminal everywhere) are dropped, since their term in (4.6) is always 0.
    """

    def __init__(self, mdp: MDP):
        continues = mdp.prob * ~mdp.done  # p_k (1 - done_k)  [S, A, K]
        used = continues.any(axis=(0, 1))
        used[0] = used[0] or not used.any()  # keep one slot so the arrays are never empty
        self.next_state = np.ascontiguousarray(mdp.next_state[:, :, used].transpose(2, 1, 0))
        self.weight = np.ascontiguousarray(continues[:, :, used].transpose(2, 1, 0))
        self.reward = np.ascontiguousarray(mdp.expected_reward.T)
        self._gamma_v = np.empty(mdp.n_states)
        self._outcomes = np.empty(self.weight.shape)
        self._q = np.empty(self.reward.shape)

    def q_values(self, v: np.ndarray, gamma: float) -> np.ndarray:
        """q[a, s] of (4.6) for all pairs; the returned buffer is overwritten by the next call."""
        # gamma is applied to v (S products) rather than to every outcome (K A S products).
        np.multiply(v, gamma, out=self._gamma_v)
        # mode="clip" lets take() write straight into out= (mode="raise" buffers); indices are valid anyway.
        np.take(self._gamma_v, self.next_state, out=self._outcomes, mode="clip")
        self._outcomes *= self.weight
        np.add(self.reward, self._outcomes[0], out=self._q)
        for k in range(1, len(self._outcomes)):  # K <= 3 or so: explicit adds beat sum(axis=0)
            self._q += self._outcomes[k]
        return self._q


# ----------------------------------------------------------------------------------------------------------
# Shared loop
# ----------------------------------------------------------------------------------------------------------


def _sweep_until_converged(
    sweep: Callable[[np.ndarray, np.ndarray], None],
    v: np.ndarray,
    tol: float,
    max_iterations: int,
    log: LogFn | None,
    what: str,
    gamma: float,
) -> tuple[np.ndarray, int]:
    """Apply ``sweep(v_k, out=v_{k+1})`` until the sup-norm change is below ``tol``; return (v, sweeps)."""
    v_next = np.empty_like(v)
    change = np.empty_like(v)
    delta = np.inf
    for iteration in range(1, max_iterations + 1):
        sweep(v, v_next)
        np.subtract(v_next, v, out=change)
        delta = float(np.abs(change, out=change).max())
        v, v_next = v_next, v
        if log is not None:
            log("charts/delta", delta, iteration)
        if not np.isfinite(delta):
            break
        if delta < tol:
            return v, iteration
    hint = (
        " With gamma=1 this usually means an improper policy: from some states it never reaches a terminal "
        "state, so its values diverge. Use gamma < 1, or a policy that terminates (see proper_policy)."
        if gamma == 1.0
        else " Raise max_iterations or tol (sweeps needed grow like log(tol) / log(gamma))."
    )
    raise ConvergenceError(
        f"{what} did not converge: sup-norm change {delta:.3g} >= {tol:g} after {max_iterations} sweeps.{hint}"
    )


def _delta_threshold(tol: float, gamma: float, stop: str) -> float:
    """The sweep change below which :func:`value_iteration` stops: ``tol`` for ``stop="delta"``; for
    ``"error_bound"`` ``tol (1 - gamma) / gamma``, where the error bound ``gamma / (1 - gamma) delta`` falls
    below ``tol`` (gamma = 0: after one sweep, which is exact; gamma = 1, no bound: ``tol``)."""
    if stop not in STOP_RULES:
        raise ValueError(f"stop must be one of {list(STOP_RULES)}, got {stop!r}")
    if stop == "delta" or gamma == 1.0:
        return tol
    return tol * (1.0 - gamma) / gamma if gamma > 0.0 else np.inf


def _check_dp_args(gamma: float, tol: float, max_iterations: int) -> None:
    check_gamma(gamma)
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    check_positive_int("max_iterations", max_iterations)


def _initial_values(mdp: MDP) -> np.ndarray:
    return np.zeros(mdp.n_states)


# ----------------------------------------------------------------------------------------------------------
# Algorithms
# ----------------------------------------------------------------------------------------------------------


def q_from_v(mdp: MDP, V: np.ndarray, gamma: float) -> np.ndarray:
    """q(s, a) = r(s, a) + gamma sum_k p_k (1 - done_k) V(s'_k)   (4.6), float64 [S, A]."""
    check_gamma(gamma)
    return np.ascontiguousarray(mdp._backup.q_values(np.asarray(V, dtype=np.float64), gamma).T)


def greedy_from_v(mdp: MDP, V: np.ndarray, gamma: float) -> np.ndarray:
    """pi(s) = argmax_a q(s, a) (4.9), int64 [S]; ties go to the lowest action index."""
    return np.argmax(mdp._backup.q_values(V, gamma), axis=0).astype(np.int64)


def policy_evaluation(
    mdp: MDP,
    pi: np.ndarray,
    gamma: float = 0.99,
    tol: float = 1e-6,
    max_iterations: int = 100_000,
    *,
    log: LogFn | None = None,
) -> np.ndarray:
    """Iterative policy evaluation, v_{k+1}(s) = sum_a pi(a|s) q_k(s, a)   (4.5).

    ``pi`` is deterministic (int [S], the action in each state) or stochastic (float [S, A]).
    Returns v_pi, float64 [S]. Logs ``charts/delta`` per sweep.
    """
    _check_dp_args(gamma, tol, max_iterations)
    return _evaluate(mdp, pi, gamma, tol, max_iterations, _initial_values(mdp), log)[0]


def _evaluate(
    mdp: MDP, pi: np.ndarray, gamma: float, tol: float, max_iterations: int, v0: np.ndarray, log: LogFn | None
) -> tuple[np.ndarray, int]:
    next_state, weight, reward = _policy_chain(mdp, pi)
    gamma_v = np.empty(mdp.n_states)
    term = np.empty(mdp.n_states)

    def sweep(v: np.ndarray, out: np.ndarray) -> None:
        # Under a fixed policy the MDP is a Markov reward process with M outcomes per state:
        # v(s) = r_pi(s) + gamma sum_m w_m(s) v(s'_m(s)).
        np.multiply(v, gamma, out=gamma_v)
        out[:] = reward
        for m in range(len(weight)):
            np.take(gamma_v, next_state[m], out=term, mode="clip")
            np.multiply(term, weight[m], out=term)
            np.add(out, term, out=out)

    return _sweep_until_converged(sweep, v0, tol, max_iterations, log, "policy evaluation", gamma)


def _policy_chain(mdp: MDP, pi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Markov reward process of policy pi: next states and weights [M, S], expected reward [S]."""
    backup = mdp._backup
    pi = np.asarray(pi)
    states = np.arange(mdp.n_states)
    if pi.shape == (mdp.n_states,) and np.issubdtype(pi.dtype, np.integer):
        if pi.min() < 0 or pi.max() >= mdp.n_actions:
            raise ValueError(f"deterministic policy has actions outside [0, {mdp.n_actions})")
        return backup.next_state[:, pi, states], backup.weight[:, pi, states], backup.reward[pi, states]
    if pi.shape == (mdp.n_states, mdp.n_actions) and np.issubdtype(pi.dtype, np.floating):
        if pi.min() < 0 or not np.allclose(pi.sum(axis=1), 1.0, atol=1e-6):
            raise ValueError("stochastic policy rows must be probabilities that sum to 1")
        # Fold pi(a|s) into the outcome weights: the K outcomes of each of the A actions become K*A outcomes.
        weight = backup.weight * pi.T
        reward = np.einsum("as,sa->s", backup.reward, pi)
        n = mdp.n_states
        return backup.next_state.reshape(-1, n), weight.reshape(-1, n), reward
    raise ValueError(
        f"pi must be an int array [S]=[{mdp.n_states}] or a float array [S, A]=[{mdp.n_states}, "
        f"{mdp.n_actions}], got {pi.dtype} {pi.shape}"
    )


def value_iteration(
    mdp: MDP,
    gamma: float = 0.99,
    tol: float = 1e-6,
    max_iterations: int = 100_000,
    *,
    stop: str = "error_bound",
    log: LogFn | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Value iteration, v_{k+1}(s) = max_a q_k(s, a)   (4.10), from v_0 = 0.

    Stops after the sweep whose change ``delta = max_s |v_{k+1}(s) - v_k(s)|`` satisfies the ``stop`` rule:

    * ``"error_bound"`` (default): ``gamma / (1 - gamma) * delta < tol``. The backup is a gamma-contraction,
      so ``max_s |V(s) - v_*(s)| <= gamma / (1 - gamma) * delta``: the returned V is within ``tol`` of the
      optimal values. With gamma = 1 there is no such bound and the rule is ``delta < tol``.
    * ``"delta"``: ``delta < tol``, the error then up to ``gamma / (1 - gamma) * tol`` (100 tol at gamma 0.99).

    Returns (V float64 [S], pi int64 [S]) with pi greedy with respect to V (4.9). Logs ``charts/delta``.
    """
    _check_dp_args(gamma, tol, max_iterations)
    threshold = _delta_threshold(tol, gamma, stop)
    backup = mdp._backup

    def sweep(v: np.ndarray, out: np.ndarray) -> None:
        q = backup.q_values(v, gamma)
        np.copyto(out, q[0])
        for a in range(1, len(q)):  # a chain of maximum() is faster than q.max(axis=0)
            np.maximum(out, q[a], out=out)

    V, _ = _sweep_until_converged(
        sweep, _initial_values(mdp), threshold, max_iterations, log, "value iteration", gamma
    )
    return V, greedy_from_v(mdp, V, gamma)


def proper_policy(mdp: MDP) -> np.ndarray:
    """A deterministic policy that reaches a terminal state w.p. 1 whenever every state can reach one.

    Backward breadth-first search from the terminating transitions: layer 0 holds the states with an
    action that terminates with positive probability; a state joins layer d + 1 with an action that
    moves into layers <= d with positive probability. Following these actions, every state has a
    positive-probability path to termination of at most S steps, so termination happens w.p. 1.
    States that cannot reach termination at all get action 0. One loop pass per layer, vectorised over
    states; used as the start of undiscounted policy iteration.
    """
    possible = mdp.prob > 0
    terminates = (possible & mdp.done).any(axis=2)  # [S, A]
    reached = terminates.any(axis=1)
    pi = np.where(reached, terminates.argmax(axis=1), 0)
    while True:
        moves_closer = (possible & reached[mdp.next_state]).any(axis=2)
        frontier = ~reached & moves_closer.any(axis=1)
        if not frontier.any():
            return pi.astype(np.int64)
        pi[frontier] = moves_closer[frontier].argmax(axis=1)
        reached |= frontier


def policy_iteration(
    mdp: MDP,
    gamma: float = 0.99,
    tol: float = 1e-6,
    max_iterations: int = 1_000,
    eval_max_iterations: int = 100_000,
    *,
    initial_policy: np.ndarray | None = None,
    log: LogFn | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Policy iteration: evaluate pi (4.5), improve it greedily (4.9), until the policy is stable.

    Starts from ``initial_policy`` or, by default, from the one-step greedy policy argmax_a r(s, a) when
    gamma < 1 and from :func:`proper_policy` when gamma = 1 (an improper start would have infinite
    values). Each evaluation is warm-started from the previous v. An action replaces the current one only
    if its q is larger by more than ``tol``, so near-ties from the inexact evaluation cannot make the
    policy flip back and forth. Returns (V float64 [S], pi int64 [S]); logs ``charts/policy_changes``,
    ``charts/delta`` (sup-norm change of v between rounds) and ``charts/evaluation_sweeps`` per round.
    """
    _check_dp_args(gamma, tol, max_iterations)
    check_positive_int("eval_max_iterations", eval_max_iterations)
    if initial_policy is not None:
        pi = np.asarray(initial_policy, dtype=np.int64).copy()
    elif gamma < 1.0:
        pi = np.argmax(mdp.expected_reward, axis=1).astype(np.int64)
    else:
        pi = proper_policy(mdp)
    states = np.arange(mdp.n_states)
    V = _initial_values(mdp)
    for iteration in range(1, max_iterations + 1):
        V_new, sweeps = _evaluate(mdp, pi, gamma, tol, eval_max_iterations, V.copy(), None)
        q = mdp._backup.q_values(V_new, gamma)
        best = np.argmax(q, axis=0)
        improves = q[best, states] > q[pi, states] + tol
        n_changes = int(improves.sum())
        if log is not None:
            log("charts/delta", float(np.abs(V_new - V).max()), iteration)
            log("charts/policy_changes", float(n_changes), iteration)
            log("charts/evaluation_sweeps", float(sweeps), iteration)
        V = V_new
        if n_changes == 0:
            return V, pi
        pi[improves] = best[improves]
    raise ConvergenceError(f"policy iteration: the policy still changed after {max_iterations} rounds")
