"""The :class:`GridWorld` gymnasium environment."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mpenv.gridworld.layouts import LayoutLike, parse_layout
from mpenv.gridworld.model import N_ACTIONS, CellRewards, GridDynamics, SparseModel
from mpenv.gridworld.render import GridPainter, auto_cell_size, render_ansi

OBS_MODES = ("discrete", "onehot", "coords", "rgb", "local")
RENDER_MODES = ("ansi", "rgb_array")
# Channels of the "local" observation, in order. "outside" is the area beyond the grid's edge: it blocks like a
# wall, but has its own channel so an agent can tell the edge of the world from an inner wall.
LOCAL_CHANNELS = ("wall", "free", "goal", "hole", "cliff", "outside")
CHANNEL_OF_CHAR = {"#": 0, "S": 1, ".": 1, "F": 1, "G": 2, "H": 3, "C": 4}  # the start looks like any free cell
OUTSIDE_CHANNEL = LOCAL_CHANNELS.index("outside")
# Step outcomes are memoised only up to this many states: beyond it the cache could grow to gigabytes
# (~200 bytes per entry) while a direct computation costs about a microsecond.
MEMO_MAX_STATES = 1 << 18

Transition = tuple[float, int, float, bool]


class GridWorld(gym.Env):
    """
    A tabular gridworld built from a text layout: FrozenLake, CliffWalking, Windy Gridworld, Four
    Rooms and random mazes are all instances of it, with an explicit model for dynamic programming.

    ## Description
    The agent walks on a grid of cells described by a layout, a list of equal-length strings:

    - `S`: start (exactly one), `.` or `F`: free cell, `#`: wall (moving into it keeps the agent in
      place), `G`: goal (terminal), `H`: hole (terminal),
    - `C`: cliff (Sutton & Barto, Example 6.6): entering it gives `cliff_reward` and sends the agent
      back to the start; the episode goes on.

    The floor can be slippery (`slip`, as FrozenLake's `is_slippery`) and a wind can push the agent
    up (`wind`, Sutton & Barto's Example 6.5 Windy Gridworld). A layout without a goal is allowed: it
    is a continuing task that ends only in a hole or by truncation. When no goal or hole can be
    reached from the start (`env.unwrapped.terminal_reachable` is False), episodes end only by
    truncation: the tabular agents then refuse to train by episodes unless the env has a time limit
    (`gym.make(..., max_episode_steps=n)`) or the run a step budget (`total_steps`).

    ## Action Space
    `Discrete(4)`, FrozenLake's order:

    - 0: Move left
    - 1: Move down
    - 2: Move right
    - 3: Move up

    Any other action raises `ValueError`.

    ## Observation Space
    Chosen by `obs_mode`. The state is `s = row * ncol + col` for every cell, walls included (they
    are never reached), so there are `S = nrow * ncol` states as in gymnasium's FrozenLake.

    - `"discrete"` (default): `Discrete(S)`, the int `s`.
    - `"onehot"`: `Box(0, 1, (S,), float32)`, the one-hot encoding of `s`.
    - `"coords"`: `Box([0, 0], [nrow - 1, ncol - 1], (2,), float32)`, the position `(row, col)`
      (float32 so networks take it as is; exact for grids up to 2**24 cells a side).
    - `"rgb"`: `Box(0, 255, (nrow * cell_size, ncol * cell_size, 3), uint8)`, the same picture as
      `render()` in `"rgb_array"` mode.
    - `"local"`: `Box(0, 1, (6, view_size, view_size), float32)`, only the `view_size x view_size`
      patch of cells centred on the agent (`view_size` odd, default 3), one-hot over the cell kinds in
      the channel order of `LOCAL_CHANNELS`: 0 wall, 1 free (start included), 2 goal, 3 hole, 4 cliff,
      5 outside the grid. Entry `[k, i, j]` is 1 when the cell at `(row + i - r, col + j - r)`,
      `r = view_size // 2`, is of kind `k`; the centre `[:, r, r]` is the agent's own cell. Beyond the
      edge blocks like a wall but has its own channel. This makes the gridworld partially observable
      (aliased): in FourRooms, for instance, most cells in the middle of a room look the same.

    ## Starting State
    The `S` cell, `start_state`.

    ## Rewards
    The reward of a transition is the reward of the cell entered (gymnasium's convention):
    `goal_reward` (default 1) into `G`, `hole_reward` (default 0) into `H`, `cliff_reward`
    (default -100) into `C`, `step_reward` (default 0) otherwise, including bumping into a wall or the
    edge (the agent stays in place). Defaults give FrozenLake's rewards.

    ## Episode End
    - Termination: the agent enters a goal or a hole. As in gymnasium's toy-text envs, stepping
      further from a terminal cell keeps the agent there with reward 0 and `terminated=True`.
    - Truncation: after `max_episode_steps` steps when given to the constructor (default: never).
      The registered ids instead set gymnasium's `max_episode_steps` (the `TimeLimit` wrapper), so
      `gym.make(id, max_episode_steps=n)` overrides it as for any gymnasium env.

    ## Information
    `step()` and `reset()` return `{"prob": p}`, the probability of the outcome drawn (gymnasium's
    toy-text convention; outcomes landing on the same cell are not merged).

    ## Dynamics and model
    From a non-terminal cell, the intended move happens with probability `1 - slip` and each of the
    two perpendicular moves with probability `slip / 2` (FrozenLake's `is_slippery=True` is
    `slip=2/3`). A wall or the edge blocks a move. Then the wind pushes the agent up by `wind[col]`
    cells, `col` being the column it was in before the move, stopping below a wall or at the top
    edge; only the final cell is entered. (Sutton & Barto's book adds the move and the wind before
    clipping to the grid; the two readings differ only when moving down against the wind from the
    bottom row, and neither changes the 15-step optimal path.)

    The model is explicit and built on first use, so a million-cell grid pays for neither unless
    asked:

    - `env.unwrapped.P[s][a] = [(prob, next_state, reward, terminated), ...]`, gymnasium's toy-text
      format (a dict built in Python, fine up to ~10^5 states);
    - `env.unwrapped.sparse_model()`: a `SparseModel(next_state, prob, reward, done)` of numpy
      arrays shaped `[S, 4, K]`, built vectorized (about a second for 10^6 states) and cached.

    ## Arguments
    ```python
    import gymnasium as gym
    import mpenv

    gym.make(
        "mpenv/GridWorld-v0",
        layout="4x4",          # a name in mpenv.gridworld.LAYOUTS, a list of strings or a multi-line string
        slip=0.0,              # in [0, 1]
        wind=None,             # one non-negative int per column
        step_reward=0.0, goal_reward=1.0, hole_reward=0.0, cliff_reward=-100.0,
        max_episode_steps=None,  # taken by gym.make (TimeLimit); GridWorld(...) truncates itself
        obs_mode="discrete",   # "discrete" | "onehot" | "coords" | "rgb" | "local"
        view_size=3,           # odd int >= 1: the side of the "local" patch (other modes ignore it)
        render_mode=None,      # None | "ansi" | "rgb_array"
        cell_size=None,        # pixels per cell of images; default about 256 px on the long side
    )
    ```
    Invalid arguments raise `ValueError` before anything is built, naming the problem (and the row
    and column for layout errors). `random_layout(nrow, ncol, wall_density, hole_density, seed)`
    makes seeded, solvable random mazes.

    ## Rendering
    `"ansi"`: the layout as text with the agent shown as `A`, after a line naming the last action.
    `"rgb_array"`: an `(H, W, 3)` uint8 image drawn with numpy. There is no `"human"` mode: a window
    needs pygame or another GUI toolkit, a heavy dependency; show the array with `plt.imshow`.

    ## Registered ids
    | id                        | layout         | slip | wind                | step, goal, cliff | limit |
    |---------------------------|----------------|------|---------------------|-------------------|-------|
    | `mpenv/GridWorld-v0`      | `layout=`      | 0    | -                   | 0, 1, -100        | none  |
    | `mpenv/FrozenLake4x4-v0`  | FrozenLake 4x4 | 2/3  | -                   | 0, 1, -           | 100   |
    | `mpenv/FrozenLake8x8-v0`  | FrozenLake 8x8 | 2/3  | -                   | 0, 1, -           | 200   |
    | `mpenv/CliffWalking-v0`   | S&B 4x12       | 0    | -                   | -1, -1, -100      | none  |
    | `mpenv/WindyGridWorld-v0` | S&B 7x10       | 0    | 0 0 0 1 1 1 2 2 1 0 | -1, -1, -         | none  |
    | `mpenv/FourRooms-v0`      | SPS99 13x13    | 0    | -                   | 0, 1, -           | 1000  |

    FrozenLake and CliffWalking have exactly the transitions of gymnasium's `FrozenLake-v1` and
    `CliffWalking-v1`, up to action order for CliffWalking (gymnasium's is up, right, down, left).

    ## References
    - R. Sutton and A. Barto, Reinforcement Learning: An Introduction, 2nd ed., 2018, Examples 6.5, 6.6.
    - R. Sutton, D. Precup and S. Singh, Between MDPs and semi-MDPs, Artificial Intelligence 112, 1999.

    ## Version History
    - v0: Initial version; `obs_mode="local"` and `view_size` were added later without a version bump, as
      no existing behaviour changed.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}

    def __init__(
        self,
        layout: LayoutLike = "4x4",
        *,
        slip: float = 0.0,
        wind: Sequence[int] | None = None,
        step_reward: float = 0.0,
        goal_reward: float = 1.0,
        hole_reward: float = 0.0,
        cliff_reward: float = -100.0,
        max_episode_steps: int | None = None,
        obs_mode: str = "discrete",
        render_mode: str | None = None,
        cell_size: int | None = None,
        view_size: int = 3,
    ) -> None:
        check_choice("obs_mode", obs_mode, OBS_MODES)
        self.view_size = _check_view_size(view_size)
        check_choice("render_mode", render_mode, (None, *RENDER_MODES))
        self.slip = _check_slip(slip)
        rewards = CellRewards(
            step=check_reward("step_reward", step_reward),
            goal=check_reward("goal_reward", goal_reward),
            hole=check_reward("hole_reward", hole_reward),
            cliff=check_reward("cliff_reward", cliff_reward),
        )
        self.max_episode_steps = _check_positive_int("max_episode_steps", max_episode_steps)
        cell_size = _check_positive_int("cell_size", cell_size)
        self.desc = parse_layout(layout)
        self.nrow, self.ncol = self.desc.shape
        self.wind = _check_wind(wind, self.ncol)

        self._dynamics = GridDynamics(self.desc, self.slip, self.wind, rewards)
        self.start_state = self._dynamics.start
        self.obs_mode = obs_mode
        self.render_mode = render_mode
        self._painter = GridPainter(self.desc, cell_size or auto_cell_size(self.nrow, self.ncol))
        # Built only for the "local" mode: it costs 6 floats per cell of the (padded) grid.
        self._padded_onehot = local_view_table(self.desc, self.view_size) if obs_mode == "local" else None
        self.action_space = spaces.Discrete(N_ACTIONS)
        self.observation_space = self._observation_space()

        self._outcomes: dict[int, tuple[int, float, bool]] = {}
        self._memoize = self.nrow * self.ncol <= MEMO_MAX_STATES
        self._offsets = self._dynamics.offsets
        self._probs = self._dynamics.probs
        self._P: dict[int, dict[int, list[Transition]]] | None = None
        self._sparse: SparseModel | None = None
        self._terminal_reachable: bool | None = None
        self.s = self.start_state
        self.lastaction: int | None = None
        self._elapsed = 0

    # -- gymnasium API -----------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.s = self.start_state
        self.lastaction = None
        self._elapsed = 0
        return self._observe(self.s), {"prob": 1.0}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict]:
        # The common case (a Python int in range) skips the slower Discrete.contains check.
        if action.__class__ is not int or not 0 <= action < N_ACTIONS:
            action = self._validated(action)
        slot = self._sample_slot()
        direction = (action + self._offsets[slot]) % N_ACTIONS
        key = self.s * N_ACTIONS + direction
        outcome = self._outcomes.get(key)
        if outcome is None:
            # Memoised per visited (state, direction): fast steps without building the whole model.
            outcome = self._dynamics.outcome(self.s, direction)
            if self._memoize:
                self._outcomes[key] = outcome
        next_state, reward, terminated = outcome
        self.s = next_state
        self.lastaction = action
        self._elapsed += 1
        truncated = self.max_episode_steps is not None and self._elapsed >= self.max_episode_steps
        obs = next_state if self.obs_mode == "discrete" else self._observe(next_state)
        return obs, reward, terminated, truncated, {"prob": self._probs[slot]}

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn(
                "You are calling render method without specifying any render mode. "
                'Set render_mode="ansi" or "rgb_array" at initialization.'
            )
            return None
        if self.render_mode == "ansi":
            return render_ansi(self.desc, self.s, self.lastaction)
        return self._painter.draw(self.s)

    # -- model -------------------------------------------------------------------------------------

    @property
    def P(self) -> dict[int, dict[int, list[Transition]]]:
        """Gymnasium toy-text model, built on first access: ``P[s][a] = [(prob, next_state, reward,
        terminated), ...]`` with zero-probability outcomes left out."""
        if self._P is None:
            self._P = self._dynamics.toy_text_P()
        return self._P

    @property
    def terminal_reachable(self) -> bool:
        """Whether a goal or hole can be reached from the start: False makes a continuing task, whose episodes
        end only by truncation (training by episodes then needs a time limit). Computed on first access."""
        if self._terminal_reachable is None:
            self._terminal_reachable = self._dynamics.terminal_reachable()
        return self._terminal_reachable

    def sparse_model(self) -> SparseModel:
        """All transitions as ``[S, 4, K]`` numpy arrays (see :class:`SparseModel`), built vectorized
        on first call and cached; treat the arrays as read-only."""
        if self._sparse is None:
            self._sparse = self._dynamics.sparse_model()
        return self._sparse

    # -- helpers -----------------------------------------------------------------------------------

    def _sample_slot(self) -> int:
        """Index of the outcome drawn among ``slip_outcomes``: 0 and 2 perpendicular, 1 intended."""
        if len(self._offsets) == 1:
            return 0
        # Reading the generator directly saves the np_random property call on every step.
        rng = self._np_random if self._np_random is not None else self.np_random
        u = rng.random()
        half = self.slip / 2.0
        if u < half:
            return 0
        return 2 if u < self.slip else 1

    def _validated(self, action: Any) -> int:
        if not self.action_space.contains(action):
            raise ValueError(
                f"invalid action {action!r} of type {type(action).__name__}: expected an integer in "
                f"[0, {N_ACTIONS - 1}] (0 left, 1 down, 2 right, 3 up)"
            )
        return int(action)

    def _observe(self, s: int) -> Any:
        if self.obs_mode == "discrete":
            return s
        if self.obs_mode == "onehot":
            obs = np.zeros(self.nrow * self.ncol, dtype=np.float32)
            obs[s] = 1.0
            return obs
        if self.obs_mode == "coords":
            return np.array(divmod(s, self.ncol), dtype=np.float32)
        if self.obs_mode == "local":
            # Cell (row, col) of the grid is (row + r, col + r) of the padded table, so the patch centred on
            # it starts at (row, col) there. Copied: the caller may keep or modify the observation.
            row, col = divmod(s, self.ncol)
            return self._padded_onehot[:, row : row + self.view_size, col : col + self.view_size].copy()
        return self._painter.draw(s)

    def _observation_space(self) -> spaces.Space:
        n_states = self.nrow * self.ncol
        if self.obs_mode == "discrete":
            return spaces.Discrete(n_states)
        if self.obs_mode == "onehot":
            return spaces.Box(0.0, 1.0, (n_states,), dtype=np.float32)
        if self.obs_mode == "coords":
            high = np.array([self.nrow - 1, self.ncol - 1], dtype=np.float32)
            return spaces.Box(np.zeros(2, dtype=np.float32), high, dtype=np.float32)
        if self.obs_mode == "local":
            return spaces.Box(0.0, 1.0, (len(LOCAL_CHANNELS), self.view_size, self.view_size), dtype=np.float32)
        return spaces.Box(0, 255, self._painter.shape, dtype=np.uint8)


def local_view_table(desc: np.ndarray, view_size: int) -> np.ndarray:
    """The layout one-hot over :data:`LOCAL_CHANNELS`, shaped ``(6, nrow + 2r, ncol + 2r)`` with
    ``r = view_size // 2``: a border of ``r`` "outside" cells all round, so that the patch around any
    cell, even in a corner, is one slice ``table[:, row : row + view_size, col : col + view_size]``."""
    r = view_size // 2
    channel = np.empty(desc.shape, dtype=np.int64)
    for char, k in CHANNEL_OF_CHAR.items():  # a few whole-grid passes, not a loop over cells
        channel[desc == char] = k
    channel = np.pad(channel, r, constant_values=OUTSIDE_CHANNEL)
    return np.eye(len(LOCAL_CHANNELS), dtype=np.float32)[channel].transpose(2, 0, 1).copy()


# -- argument checks: all run before the layout or the model is built -------------------------------


def check_choice(name: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {list(choices)}")


def _check_slip(slip: float) -> float:
    try:
        value = float(slip)
    except (TypeError, ValueError):
        raise ValueError(f"slip must be a number in [0, 1], got {slip!r}") from None
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"slip must be in [0, 1], got {slip!r}")
    return value


def check_reward(name: str, value: float) -> float:
    try:
        reward = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(reward):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return reward


def _check_positive_int(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")
    return int(value)


def _check_view_size(view_size: int) -> int:
    # An even patch has no centre cell to put the agent on.
    is_int = isinstance(view_size, int | np.integer) and not isinstance(view_size, bool)
    if not is_int or view_size < 1 or view_size % 2 == 0:
        raise ValueError(f"view_size must be an odd positive int (3, 5, ...), got {view_size!r}")
    return int(view_size)


def _check_wind(wind: Sequence[int] | None, ncol: int) -> tuple[int, ...]:
    """The wind as a tuple of ints, empty when there is none (so the step code can skip it)."""
    if wind is None:
        return ()
    values = list(np.asarray(wind).ravel()) if isinstance(wind, np.ndarray) else list(wind)
    if len(values) != ncol:
        raise ValueError(
            f"wind has {len(values)} entries but the layout has {ncol} columns; give one per column"
        )
    for col, w in enumerate(values):
        if isinstance(w, bool) or not isinstance(w, int | np.integer) or w < 0:
            raise ValueError(f"wind[{col}] = {w!r}: wind strengths must be non-negative ints")
    return tuple(int(w) for w in values) if any(values) else ()
