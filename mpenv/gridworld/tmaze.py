"""The :class:`TMaze` gymnasium environment: a memory task that a memoryless policy cannot solve."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from mpenv.gridworld.env import check_choice, check_reward
from mpenv.gridworld.model import DOWN, LEFT, N_ACTIONS, RIGHT, UP
from mpenv.gridworld.render import ACTION_NAMES, AGENT_CHAR

CUES = ("up", "down")
# The entries of an observation, in order.
OBSERVATION_NAMES = ("cue_up", "cue_down", "at_junction", "in_corridor")
CUE_UP, CUE_DOWN, AT_JUNCTION, IN_CORRIDOR = range(len(OBSERVATION_NAMES))
# The arm entered by each action at the junction, as an index into CUES.
ARM_OF_ACTION = {UP: 0, DOWN: 1}


class TMaze(gym.Env):
    """
    A T-maze (Bakker, 2002): walk down a corridor and, at the junction at its end, turn into the arm
    that a cue, shown only at the very first step, pointed to. Solving it takes memory.

    ## Description
    The maze is a corridor of `length` cells (the agent starts in the leftmost) whose right end opens
    on a junction with two arms, one up and one down:

    ```
              ?        <- up arm
    A.........+        <- corridor (length 10) and junction
              ?        <- down arm
    ```

    At reset the goal is put in one of the two arms, uniformly at random, and the first observation
    shows a cue saying which. Every later observation only says whether the agent is in the corridor
    or at the junction, the same for both cues. So the agent must carry the cue for `length` steps:
    a memoryless (reactive) policy, one that acts on the current observation alone, sees the same
    junction observation whatever the cue and succeeds in at most half the episodes.

    ## Action Space
    `Discrete(4)`, GridWorld's (and FrozenLake's) order:

    - 0: Move left (back along the corridor; at the start cell the agent stays)
    - 1: Move down (at the junction: enter the down arm; in the corridor: bump, stay)
    - 2: Move right (along the corridor to the junction; at the junction: bump, stay)
    - 3: Move up (at the junction: enter the up arm; in the corridor: bump, stay)

    Any other action raises `ValueError`.

    ## Observation Space
    `Box(0, 1, (4,), float32)`, four flags named in `OBSERVATION_NAMES`:

    | index | name          | 1 when                                                  |
    |-------|---------------|---------------------------------------------------------|
    | 0     | `cue_up`      | the cue is shown and says the goal is in the up arm     |
    | 1     | `cue_down`    | the cue is shown and says the goal is in the down arm   |
    | 2     | `at_junction` | the agent is at the junction                            |
    | 3     | `in_corridor` | the agent is in the corridor (the start cell included)  |

    The cue is shown in the observation returned by `reset()` only, e.g. `[1, 0, 0, 1]` for "up";
    every observation returned by `step()` has `obs[0] = obs[1] = 0`, e.g. `[0, 0, 0, 1]` in the
    corridor and `[0, 0, 1, 0]` at the junction. With `cue_visible_always=True` the cue stays in
    every observation: a fully observable control task that a feed-forward policy can solve, to
    compare with. The last observation, in an arm, has flags 2 and 3 at 0.

    ## Starting State
    The leftmost corridor cell, with the cue drawn uniformly from "up" and "down" by the env's
    `np_random` (so `reset(seed=...)` fixes it). `reset(options={"cue": "up"})` (or `"down"`)
    sets the cue instead, e.g. to evaluate a policy on both cues exactly.

    ## Rewards
    - Entering the cued arm: `goal_reward` (default 1).
    - Entering the other arm: `wrong_reward` (default 0), so that the return of an episode is its
      success (0 or 1) with the defaults.
    - Every other step, bumps included: `step_reward` (default 0). A small negative one (e.g. -0.01)
      rewards short episodes and punishes dithering in the corridor.

    Optimal return: `length` steps right and one into the cued arm give `goal_reward + length *
    step_reward` (1.0 with the defaults), the optimum whenever `step_reward <= 0` and
    `goal_reward >= wrong_reward`; it needs memory. No memoryless policy, deterministic or
    stochastic, succeeds in more than 50% of the episodes (its choice of arm at the junction cannot
    depend on the cue). Walking right and always taking the same arm succeeds in exactly 50%, for an
    expected return of `(goal_reward + wrong_reward) / 2 + length * step_reward` (0.5 with the
    defaults).

    ## Episode End
    - Termination: the agent enters an arm. As in GridWorld, stepping further keeps it there with
      reward 0 and `terminated=True`.
    - Truncation: the registered ids set gymnasium's `max_episode_steps = 4 * (length + 1)` (the
      `TimeLimit` wrapper): four times the shortest episode. `TMaze(...)` itself never truncates.

    ## Information
    `reset()` and `step()` return `{"cue": "up" | "down"}`, and the terminal step also
    `"success": bool` (whether the cued arm was entered), so an evaluation can count successes.
    The info is for evaluation only: a policy that reads the cue from it cheats.

    ## Arguments
    ```python
    import gymnasium as gym
    import mpenv

    gym.make(
        "mpenv/TMaze-v0",
        length=10,                 # corridor cells before the junction, an int >= 1
        goal_reward=1.0, wrong_reward=0.0, step_reward=0.0,  # finite numbers
        cue_visible_always=False,  # True: show the cue in every observation (fully observable)
        render_mode=None,          # None | "ansi"
    )
    ```
    Invalid arguments raise `ValueError`.

    ## Rendering
    `"ansi"`: three rows of text after a line naming the last action: the up arm, the corridor and
    junction (`+`), the down arm, with the agent as `A`. While the cue is visible to the agent the
    cued arm shows `G` and the other `.`; once it is hidden both show `?`. There is no `"rgb_array"`
    or `"human"` mode: the maze is a line of cells, the text shows all of it.

    ## Registered ids
    | id                    | length | limit |
    |-----------------------|--------|-------|
    | `mpenv/TMaze-v0`      | 10     | 44    |
    | `mpenv/TMazeLong-v0`  | 30     | 124   |

    ## References
    - B. Bakker, Reinforcement learning with long short-term memory, Advances in Neural Information
      Processing Systems 14 (NIPS 2001), 2002, pp. 1475-1482.

    ## Version History
    - v0: Initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        length: int = 10,
        *,
        goal_reward: float = 1.0,
        wrong_reward: float = 0.0,
        step_reward: float = 0.0,
        cue_visible_always: bool = False,
        render_mode: str | None = None,
    ) -> None:
        check_choice("render_mode", render_mode, (None, *self.metadata["render_modes"]))
        if isinstance(length, bool) or not isinstance(length, int | np.integer) or length < 1:
            raise ValueError(f"length must be an int >= 1, got {length!r}")
        if not isinstance(cue_visible_always, bool | np.bool_):
            raise ValueError(f"cue_visible_always must be a bool, got {cue_visible_always!r}")
        self.length = int(length)
        self.goal_reward = check_reward("goal_reward", goal_reward)
        self.wrong_reward = check_reward("wrong_reward", wrong_reward)
        self.step_reward = check_reward("step_reward", step_reward)
        self.cue_visible_always = bool(cue_visible_always)
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(N_ACTIONS)
        self.observation_space = spaces.Box(0.0, 1.0, (len(OBSERVATION_NAMES),), dtype=np.float32)

        # Corridor cells are positions 0 .. length - 1, the junction is position `length`.
        self.position = 0
        self.cue = 0  # index into CUES
        self.arm: int | None = None  # index into CUES of the arm entered, once the episode is over
        self.cue_visible = True
        self.lastaction: int | None = None

    @property
    def junction(self) -> int:
        """The position of the junction (the corridor is positions ``0 .. length - 1``)."""
        return self.length

    # -- gymnasium API -----------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        # Drawn even when options fix the cue, so the random stream does not depend on the options.
        cue = int(self.np_random.integers(len(CUES)))
        if options is not None and "cue" in options:
            if options["cue"] not in CUES:
                raise ValueError(f"options['cue'] must be one of {list(CUES)}, got {options['cue']!r}")
            cue = CUES.index(options["cue"])
        self.cue = cue
        self.position = 0
        self.arm = None
        self.cue_visible = True
        self.lastaction = None
        return self._observe(), self._info()

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        # The integer test first: Discrete.contains costs a quarter of a T-maze step, and the agents act every step.
        plain = isinstance(action, int | np.integer) and 0 <= action < N_ACTIONS
        if not plain and not self.action_space.contains(action):
            raise ValueError(
                f"invalid action {action!r} of type {type(action).__name__}: expected an integer in "
                f"[0, {N_ACTIONS - 1}] (0 left, 1 down, 2 right, 3 up)"
            )
        action = int(action)
        self.lastaction = action
        self.cue_visible = self.cue_visible_always
        if self.arm is not None:
            # Absorbing once an arm is entered, like GridWorld's goals and holes.
            return self._observe(), 0.0, True, False, self._info()
        if self.position == self.junction and action in ARM_OF_ACTION:
            self.arm = ARM_OF_ACTION[action]
            reward = self.goal_reward if self.arm == self.cue else self.wrong_reward
            return self._observe(), reward, True, False, self._info()
        # Up and down in the corridor, right at the junction and left at the start are bumps: the agent stays.
        if action == LEFT:
            self.position = max(self.position - 1, 0)
        elif action == RIGHT:
            self.position = min(self.position + 1, self.junction)
        return self._observe(), self.step_reward, False, False, self._info()

    def render(self) -> str | None:
        if self.render_mode is None:
            gym.logger.warn(
                "You are calling render method without specifying any render mode. "
                'Set render_mode="ansi" at initialization.'
            )
            return None
        arms = ["G", "."] if self.cue == 0 else [".", "G"]
        if not self.cue_visible:
            arms = ["?", "?"]
        if self.arm is not None:
            arms[self.arm] = AGENT_CHAR
        corridor = ["S"] + ["."] * (self.length - 1) + ["+"]
        if self.arm is None:
            corridor[self.position] = AGENT_CHAR
        pad = " " * self.length
        header = f"  ({ACTION_NAMES[self.lastaction]})\n" if self.lastaction is not None else ""
        return f"{header}{pad}{arms[0]}\n{''.join(corridor)}\n{pad}{arms[1]}\n"

    # -- helpers -----------------------------------------------------------------------------------

    def _observe(self) -> np.ndarray:
        obs = np.zeros(len(OBSERVATION_NAMES), dtype=np.float32)
        if self.cue_visible:
            obs[(CUE_UP, CUE_DOWN)[self.cue]] = 1.0
        if self.arm is None:
            obs[AT_JUNCTION if self.position == self.junction else IN_CORRIDOR] = 1.0
        return obs

    def _info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"cue": CUES[self.cue]}
        if self.arm is not None:
            info["success"] = self.arm == self.cue
        return info
