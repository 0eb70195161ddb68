"""Gymnasium registration of the gridworld and T-maze ids in the ``mpenv`` namespace.

Entry points are strings, so ``import mpenv`` imports no environment code; the class is loaded on the
first ``gym.make``. Time limits are gymnasium's (``max_episode_steps`` here, i.e. the ``TimeLimit``
wrapper), matching gymnasium's own registrations of FrozenLake (100/200 steps) and CliffWalking (none).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

ENTRY_POINT = "mpenv.gridworld.env:GridWorld"
TMAZE_ENTRY_POINT = "mpenv.gridworld.tmaze:TMaze"
FROZEN_LAKE_SLIP = 2.0 / 3.0  # gymnasium's is_slippery: 1/3 intended, 1/3 each perpendicular

# id -> (kwargs, max_episode_steps, reward_threshold)
GRIDWORLDS: dict[str, tuple[dict[str, Any], int | None, float | None]] = {
    "mpenv/GridWorld-v0": ({}, None, None),
    "mpenv/FrozenLake4x4-v0": ({"layout": "4x4", "slip": FROZEN_LAKE_SLIP}, 100, 0.70),
    "mpenv/FrozenLake8x8-v0": ({"layout": "8x8", "slip": FROZEN_LAKE_SLIP}, 200, 0.85),
    "mpenv/CliffWalking-v0": (
        {"layout": "cliffwalking", "step_reward": -1.0, "goal_reward": -1.0, "cliff_reward": -100.0},
        None,
        None,
    ),
    "mpenv/WindyGridWorld-v0": (
        {"layout": "windy", "wind": (0, 0, 0, 1, 1, 1, 2, 2, 1, 0), "step_reward": -1.0, "goal_reward": -1.0},
        None,
        None,
    ),
    "mpenv/FourRooms-v0": ({"layout": "fourrooms"}, 1000, None),
}

# id -> corridor length of the T-maze; the time limit is four times the shortest episode (length + 1 steps).
TMAZES: dict[str, int] = {
    "mpenv/TMaze-v0": 10,
    "mpenv/TMazeLong-v0": 30,
}


def register_gridworlds() -> None:
    """Register every id of :data:`GRIDWORLDS` that is not registered yet. Idempotent, so importing
    or reloading ``mpenv`` twice neither warns nor fails. Registers the T-mazes too."""
    for env_id, (kwargs, max_episode_steps, reward_threshold) in GRIDWORLDS.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point=ENTRY_POINT,
            kwargs=kwargs,
            max_episode_steps=max_episode_steps,
            reward_threshold=reward_threshold,
        )
    register_tmazes()


def register_tmazes() -> None:
    """Register every id of :data:`TMAZES` that is not registered yet (idempotent, like
    :func:`register_gridworlds`, which calls it)."""
    for env_id, length in TMAZES.items():
        if env_id in gym.registry:
            continue
        gym.register(
            id=env_id,
            entry_point=TMAZE_ENTRY_POINT,
            kwargs={"length": length},
            max_episode_steps=4 * (length + 1),
        )
