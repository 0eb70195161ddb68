"""GridWorld's "local" observation mode: the patch around the agent against a cell-by-cell lookup written
independently, at every reachable cell and across the grid's edges; spaces, check_env and argument errors."""

from __future__ import annotations

import time
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import mpenv  # noqa: F401  (registers the ids)
from mpenv.gridworld import GridWorld
from mpenv.gridworld.env import LOCAL_CHANNELS
from mpenv.gridworld.layouts import parse_layout, reachable

KIND_OF_CHAR = {"#": "wall", "S": "free", ".": "free", "F": "free", "G": "goal", "H": "hole", "C": "cliff"}
MIXED = [
    "S..#....",
    ".#.#.CC.",
    ".#...#H.",
    "...#...G",
]
CASES = {
    "4x4": dict(layout="4x4"),
    "8x8 slippery": dict(layout="8x8", slip=2 / 3),
    "cliffwalking": dict(layout="cliffwalking"),
    "fourrooms": dict(layout="fourrooms"),
    "mixed wind slip": dict(layout=MIXED, wind=(0, 1, 0, 2, 1, 0, 3, 0), slip=0.5),
    "one row": dict(layout=["S.H.G"]),
}


def patch_by_lookup(desc: np.ndarray, state: int, view_size: int) -> np.ndarray:
    """The documented observation, one cell at a time."""
    nrow, ncol = desc.shape
    row, col = divmod(state, ncol)
    r = view_size // 2
    patch = np.zeros((len(LOCAL_CHANNELS), view_size, view_size), dtype=np.float32)
    for i in range(view_size):
        for j in range(view_size):
            y, x = row + i - r, col + j - r
            kind = KIND_OF_CHAR[str(desc[y, x])] if 0 <= y < nrow and 0 <= x < ncol else "outside"
            patch[LOCAL_CHANNELS.index(kind), i, j] = 1.0
    return patch


def test_channel_order_is_as_documented():
    assert LOCAL_CHANNELS == ("wall", "free", "goal", "hole", "cliff", "outside")


@pytest.mark.parametrize("view_size", [3, 5])
@pytest.mark.parametrize("kwargs", CASES.values(), ids=CASES.keys())
def test_patch_matches_a_cell_by_cell_lookup_everywhere(kwargs, view_size):
    env = GridWorld(**kwargs, obs_mode="local", view_size=view_size)
    space = env.observation_space
    assert space == gym.spaces.Box(0.0, 1.0, (6, view_size, view_size), dtype=np.float32)
    obs, _ = env.reset(seed=0)
    np.testing.assert_array_equal(obs, patch_by_lookup(env.desc, env.start_state, view_size))
    mask = reachable(parse_layout(kwargs["layout"]))
    cells = np.flatnonzero(mask.ravel())
    rows, cols = np.nonzero(mask)
    r = view_size // 2
    near_edge = bool(((rows < r) | (rows >= env.nrow - r) | (cols < r) | (cols >= env.ncol - r)).any())
    seen_edge = False
    for s in cells:
        for action in range(4):
            env.s = int(s)
            obs = env.step(action)[0]
            assert obs.dtype == np.float32 and space.contains(obs)
            np.testing.assert_array_equal(obs, patch_by_lookup(env.desc, env.s, view_size), err_msg=f"{s}, {action}")
            seen_edge |= bool(obs[LOCAL_CHANNELS.index("outside")].any())
    # The patch crosses the edge of the grid wherever the agent comes near it (all but FourRooms' 3x3, walled in).
    assert seen_edge == near_edge


@pytest.mark.parametrize("view_size", [1, 9])
def test_a_single_cell_and_a_view_larger_than_the_grid(view_size):
    env = GridWorld("4x4", obs_mode="local", view_size=view_size)
    env.reset(seed=0)
    for s in range(16):
        env.s = s
        obs = env.step(0)[0]
        np.testing.assert_array_equal(obs, patch_by_lookup(env.desc, env.s, view_size))
    if view_size == 1:  # only the agent's own cell: no sight at all
        env.s = 0
        np.testing.assert_array_equal(env.step(0)[0].ravel(), np.eye(6, dtype=np.float32)[LOCAL_CHANNELS.index("free")])


def test_observations_are_copies():
    env = GridWorld("4x4", obs_mode="local")
    obs, _ = env.reset(seed=0)
    obs[:] = 7.0
    np.testing.assert_array_equal(env.reset(seed=0)[0], patch_by_lookup(env.desc, env.start_state, 3))


def test_fourrooms_becomes_partially_observable():
    env = GridWorld("fourrooms", obs_mode="local", view_size=3)
    env.reset(seed=0)
    view_of: dict[int, bytes] = {}
    for s in np.flatnonzero(env.desc.ravel() != "#"):
        for action in range(4):
            env.s = int(s)
            obs = env.step(action)[0]
            view_of[env.s] = obs.tobytes()
    assert len(view_of) == 104  # every open cell was entered
    # Many cells look alike (the middle of a room is all free cells): far fewer views than cells.
    assert len(set(view_of.values())) < len(view_of) / 2


@pytest.mark.parametrize("view_size", [1, 3, 5])
@pytest.mark.parametrize("env_id", ["mpenv/FrozenLake4x4-v0", "mpenv/FourRooms-v0"])
def test_check_env(env_id, view_size):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(env_id, obs_mode="local", view_size=view_size, render_mode="ansi").unwrapped)


def test_the_view_from_the_fourrooms_start():
    env = gym.make("mpenv/FourRooms-v0", obs_mode="local", view_size=5)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (6, 5, 5) and env.observation_space.contains(obs)
    # At the start, top-left corner of the top-left room: the outer wall is at distance 1, beyond it outside.
    assert obs[LOCAL_CHANNELS.index("outside"), 0].all() and obs[LOCAL_CHANNELS.index("outside"), :, 0].all()
    assert obs[LOCAL_CHANNELS.index("wall"), 1, 1:].all() and obs[LOCAL_CHANNELS.index("wall"), 1:, 1].all()


@pytest.mark.parametrize("view_size", [0, -1, 2, 4, 3.0, True, "3", None])
def test_bad_view_size_raises_value_error(view_size):
    with pytest.raises(ValueError, match="view_size must be an odd positive int"):
        GridWorld("4x4", obs_mode="local", view_size=view_size)


def test_bad_view_size_is_reported_before_building():
    start = time.perf_counter()
    with pytest.raises(ValueError, match="view_size"):
        GridWorld(["S" + "." * 999] + ["." * 1000] * 999, obs_mode="local", view_size=2)
    assert time.perf_counter() - start < 0.5


def test_other_modes_are_unchanged_and_build_no_table():
    env = GridWorld("fourrooms")
    assert env.observation_space == gym.spaces.Discrete(169)
    assert env._padded_onehot is None
    assert env.reset(seed=0)[0] == env.start_state
