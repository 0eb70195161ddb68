"""The dynamics of a gridworld, in three equivalent forms.

* :meth:`GridDynamics.outcome` - one deterministic move from one state, in plain Python; ``step``
  samples a direction and calls it (memoised), and the toy-text ``P`` dict is built from it.
* :meth:`GridDynamics.sparse_model` - every transition at once as dense ``[S, A, K]`` numpy arrays,
  built with array operations only (no Python loop over states), for value iteration on 1M states.
* :meth:`GridDynamics.transitions` - ``P[s][a]`` in gymnasium's toy-text format.

The scalar and the vectorized code are written independently on purpose: the tests check that they
agree exactly on every state, which is a much stronger check than either could get alone.

Rules of one transition from a non-terminal cell, for a move direction ``d``:

1. The agent tries to move one cell in direction ``d``; a wall or the grid edge keeps it in place.
2. Wind (if any) then pushes it up by ``wind[col]`` cells, ``col`` being the column the agent was in
   *before* the move (Sutton & Barto's windy gridworld); the push stops below a wall or at the top
   edge. Only the final cell counts: cells the wind pushes the agent through are not "entered".
3. The reward is that of the cell entered: ``goal_reward`` (terminal), ``hole_reward`` (terminal),
   ``cliff_reward`` (the agent is sent back to the start, not terminal), else ``step_reward``.

Goal and hole cells are absorbing, like gymnasium's toy-text: ``P[s][a] = [(1.0, s, 0.0, True)]``.
Wall cells are never entered, but they get the ordinary rules above (as gymnasium's CliffWalking
does for its cliff cells), so their rows of the model are well defined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

LEFT, DOWN, RIGHT, UP = 0, 1, 2, 3
N_ACTIONS = 4
# (d_row, d_col) per action, FrozenLake's order.
DELTAS = ((0, -1), (1, 0), (0, 1), (-1, 0))

# Cell kinds, stored as one byte per cell so the scalar path can index a ``bytes`` object.
FREE, WALL, GOAL, HOLE, CLIFF = 0, 1, 2, 3, 4
KIND_OF_CHAR = {"S": FREE, ".": FREE, "F": FREE, "#": WALL, "G": GOAL, "H": HOLE, "C": CLIFF}
TERMINAL_KINDS = (GOAL, HOLE)


class SparseModel(NamedTuple):
    """Every transition of a gridworld as dense ``[S, A, K]`` arrays.

    ``K`` is the number of possible outcomes of one (state, action): 1 without slip, 3 with slip
    (perpendicular-left, intended, perpendicular-right, in gymnasium's FrozenLake order). Outcomes
    landing on the same cell are *not* merged, they stay as prob-weighted duplicates; padding entries
    (of absorbing states, and the intended move when ``slip == 1``) have ``prob == 0``. For every
    ``(s, a)``, ``prob[s, a].sum() == 1``.

    ``next_state`` is int64 (numpy's index type, so ``V[next_state]`` needs no conversion),
    ``prob`` and ``reward`` are float64, ``done`` is bool (the ``terminated`` flag of the transition).
    Expected backup: ``(prob * (reward + gamma * V[next_state] * ~done)).sum(-1)``.
    """

    next_state: np.ndarray
    prob: np.ndarray
    reward: np.ndarray
    done: np.ndarray


@dataclass(frozen=True)
class CellRewards:
    """Reward of entering each kind of cell."""

    step: float = 0.0
    goal: float = 1.0
    hole: float = 0.0
    cliff: float = -100.0

    def by_kind(self) -> tuple[float, ...]:
        """Indexed by cell kind (FREE, WALL, GOAL, HOLE, CLIFF); walls are never entered."""
        return (float(self.step), float(self.step), float(self.goal), float(self.hole), float(self.cliff))


def slip_outcomes(slip: float) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Direction offsets relative to the action and their probabilities: the intended move with
    probability ``1 - slip``, each perpendicular move with ``slip / 2``."""
    if slip == 0.0:
        return (0,), (1.0,)
    return (-1, 0, 1), (slip / 2.0, 1.0 - slip, slip / 2.0)


class GridDynamics:
    """Dynamics of a parsed layout; see the module docstring for the rules."""

    def __init__(self, desc: np.ndarray, slip: float, wind: tuple[int, ...], rewards: CellRewards) -> None:
        self.nrow, self.ncol = desc.shape
        self.n_states = self.nrow * self.ncol
        self.kinds = _kinds(desc)
        self.start = int(np.flatnonzero(desc.ravel() == "S")[0])
        self.wind = wind
        self.rewards = rewards
        self.offsets, self.probs = slip_outcomes(slip)
        self._kind_bytes = self.kinds.tobytes()
        self._reward_by_kind = rewards.by_kind()

    # -- scalar path -------------------------------------------------------------------------------

    def is_terminal(self, s: int) -> bool:
        return self._kind_bytes[s] in TERMINAL_KINDS

    def outcome(self, s: int, direction: int) -> tuple[int, float, bool]:
        """``(next_state, reward, terminated)`` of moving in ``direction`` from ``s``."""
        kinds = self._kind_bytes
        if kinds[s] in TERMINAL_KINDS:
            return s, 0.0, True
        ncol = self.ncol
        row, col = divmod(s, ncol)
        d_row, d_col = DELTAS[direction]
        target = s
        if 0 <= row + d_row < self.nrow and 0 <= col + d_col < ncol:
            moved = s + d_row * ncol + d_col
            if kinds[moved] != WALL:
                target = moved
        for _ in range(self.wind[col] if self.wind else 0):
            if target < ncol or kinds[target - ncol] == WALL:
                break
            target -= ncol
        kind = kinds[target]
        if kind == CLIFF:
            return self.start, self._reward_by_kind[CLIFF], False
        return target, self._reward_by_kind[kind], kind in TERMINAL_KINDS

    def transitions(self, s: int, a: int) -> list[tuple[float, int, float, bool]]:
        """``P[s][a]``: the toy-text list of ``(prob, next_state, reward, terminated)``, zero-probability
        outcomes left out."""
        if self.is_terminal(s):
            return [(1.0, s, 0.0, True)]
        return [
            (p, *self.outcome(s, (a + offset) % N_ACTIONS))
            for offset, p in zip(self.offsets, self.probs, strict=True)
            if p > 0.0
        ]

    def toy_text_P(self) -> dict[int, dict[int, list[tuple[float, int, float, bool]]]]:
        return {s: {a: self.transitions(s, a) for a in range(N_ACTIONS)} for s in range(self.n_states)}

    def terminal_reachable(self) -> bool:
        """Whether a goal or a hole can be entered from the start with positive probability, i.e. whether an
        episode can end other than by truncation.

        A frontier search from the start over the cells reached by moving in each of the four directions
        (wind and cliffs included): the actions together, slipping or not, move in every direction with
        positive probability, so this is the set of states any policy can reach.
        """
        if not np.isin(self.kinds, TERMINAL_KINDS).any():
            return False
        seen = np.zeros(self.n_states, dtype=bool)
        seen[self.start] = True
        frontier = np.array([self.start], dtype=np.int64)
        while frontier.size:
            targets = np.concatenate([self._targets(frontier, d) for d in range(N_ACTIONS)])
            kinds = self.kinds[targets]
            if np.isin(kinds, TERMINAL_KINDS).any():
                return True
            targets = np.where(kinds == CLIFF, self.start, targets)
            frontier = np.unique(targets[~seen[targets]])
            seen[frontier] = True
        return False

    # -- vectorized path ---------------------------------------------------------------------------

    def sparse_model(self) -> SparseModel:
        """All transitions as ``[S, A, K]`` arrays, with numpy operations over all states at once."""
        states = np.arange(self.n_states, dtype=np.int64)
        # [S, 4]: the outcome of each of the four move directions, then gathered per (action, slot).
        targets = np.stack([self._targets(states, d) for d in range(N_ACTIONS)], axis=1)
        target_kind = self.kinds[targets]
        reward_dir = np.asarray(self._reward_by_kind)[target_kind]
        done_dir = np.isin(target_kind, TERMINAL_KINDS)
        next_dir = np.where(target_kind == CLIFF, self.start, targets)

        directions = (np.arange(N_ACTIONS)[:, None] + np.asarray(self.offsets)[None, :]) % N_ACTIONS
        shape = (self.n_states, N_ACTIONS, len(self.offsets))
        next_state = next_dir[:, directions]
        reward = reward_dir[:, directions]
        done = done_dir[:, directions]
        prob = np.broadcast_to(np.asarray(self.probs, dtype=np.float64), shape).copy()

        terminal = np.isin(self.kinds, TERMINAL_KINDS)
        next_state[terminal] = states[terminal, None, None]
        reward[terminal] = 0.0
        done[terminal] = True
        prob[terminal] = 0.0
        prob[terminal, :, 0] = 1.0
        return SparseModel(next_state, prob, reward, done)

    def _targets(self, states: np.ndarray, direction: int) -> np.ndarray:
        """Cell reached from every state by moving in ``direction`` and then being pushed by the wind."""
        ncol = self.ncol
        rows, cols = np.divmod(states, ncol)
        d_row, d_col = DELTAS[direction]
        new_rows, new_cols = rows + d_row, cols + d_col
        inside = (new_rows >= 0) & (new_rows < self.nrow) & (new_cols >= 0) & (new_cols < ncol)
        moved = np.where(inside, states + d_row * ncol + d_col, states)
        target = np.where(self.kinds[moved] == WALL, states, moved)
        if self.wind:
            push = np.asarray(self.wind, dtype=np.int64)[cols]
            for k in range(int(push.max())):
                up = target - ncol
                # np.maximum keeps the index valid where the move is masked out anyway.
                ok = (push > k) & (up >= 0) & (self.kinds[np.maximum(up, 0)] != WALL)
                target = np.where(ok, up, target)
        return target


def _kinds(desc: np.ndarray) -> np.ndarray:
    kinds = np.zeros(desc.size, dtype=np.uint8)
    flat = desc.ravel()
    for char, kind in KIND_OF_CHAR.items():
        kinds[flat == char] = kind
    return kinds
