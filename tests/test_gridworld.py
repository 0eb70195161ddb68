"""GridWorld: dynamics against independent references (gymnasium's FrozenLake and CliffWalking, Sutton &
Barto's numbers, sampling), model consistency, API conformance, errors, rendering and registration."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
import warnings
from collections import Counter, defaultdict, deque

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import mpenv
from mpenv.gridworld import LAYOUTS, GridWorld, SparseModel, random_layout
from mpenv.gridworld.layouts import is_solvable, parse_layout, reachable

MIXED = [
    "S..#....",
    ".#.#.CC.",
    ".#...#H.",
    "...#...G",
]
MIXED_WIND = (0, 1, 0, 2, 1, 0, 3, 0)

MODEL_CASES = {
    "4x4 slippery": dict(layout="4x4", slip=2 / 3),
    "8x8 slippery": dict(layout="8x8", slip=2 / 3),
    "cliff slip+wind": dict(layout="cliffwalking", slip=0.2, wind=[0, 1] * 6, step_reward=-1, goal_reward=-1),
    "windy": dict(layout="windy", wind=(0, 0, 0, 1, 1, 1, 2, 2, 1, 0), step_reward=-1),
    "windy slip": dict(layout="windy", wind=(0, 0, 0, 1, 1, 1, 2, 2, 1, 0), slip=0.3),
    "fourrooms slip": dict(layout="fourrooms", slip=0.1),
    "mixed wind slip": dict(layout=MIXED, wind=MIXED_WIND, slip=0.5, step_reward=-0.5, hole_reward=-3),
    "mixed slip 1": dict(layout=MIXED, wind=MIXED_WIND, slip=1.0),
    "random maze": dict(layout=random_layout(17, 23, wall_density=0.25, hole_density=0.05, seed=3), slip=0.4),
}


def merged(transitions) -> dict[tuple[int, float, bool], float]:
    """Outcome -> total probability, so lists that differ only in order or duplicates compare equal."""
    out: dict[tuple[int, float, bool], float] = defaultdict(float)
    for p, s, r, d in transitions:
        if p > 0:
            out[(int(s), float(r), bool(d))] += float(p)
    return dict(out)


def assert_same_outcomes(ours, theirs) -> None:
    a, b = merged(ours), merged(theirs)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], abs=1e-12)


def value_iteration(model: SparseModel, gamma: float, iters: int = 2000) -> np.ndarray:
    v = np.zeros(model.next_state.shape[0])
    for _ in range(iters):
        q = (model.prob * (model.reward + gamma * v[model.next_state] * ~model.done)).sum(-1)
        v_new = q.max(1)
        if np.max(np.abs(v_new - v)) < 1e-12:
            break
        v = v_new
    return v


# -- the model ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", MODEL_CASES.values(), ids=MODEL_CASES.keys())
def test_P_and_sparse_model_agree_exactly(kwargs):
    env = GridWorld(**kwargs)
    model = env.sparse_model()
    n_states = env.nrow * env.ncol
    k = model.next_state.shape[2]
    assert model.next_state.shape == model.prob.shape == model.reward.shape == model.done.shape
    assert model.next_state.shape[:2] == (n_states, 4)
    assert (model.next_state.dtype, model.prob.dtype) == (np.int64, np.float64)
    assert (model.reward.dtype, model.done.dtype) == (np.float64, np.bool_)
    assert k == (1 if kwargs.get("slip", 0) == 0 else 3)
    np.testing.assert_allclose(model.prob.sum(-1), 1.0, atol=1e-15)
    P = env.P
    assert len(P) == n_states
    for s in range(n_states):
        for a in range(4):
            from_sparse = [
                (
                    float(model.prob[s, a, i]),
                    int(model.next_state[s, a, i]),
                    float(model.reward[s, a, i]),
                    bool(model.done[s, a, i]),
                )
                for i in range(k)
                if model.prob[s, a, i] > 0
            ]
            assert from_sparse == P[s][a], (s, a)


def test_model_is_lazy_and_cached():
    env = GridWorld(random_layout(300, 300, seed=0), slip=0.1)
    assert env._P is None and env._sparse is None  # nothing built by the constructor
    env.reset(seed=0)
    for _ in range(10):
        env.step(2)
    assert env._P is None and env._sparse is None  # nor by stepping
    assert env.sparse_model() is env.sparse_model()


def test_huge_grids_step_without_memo():
    env = GridWorld(random_layout(600, 600, wall_density=0.0, seed=0))
    env.reset(seed=0)
    assert [env.step(2)[0] for _ in range(3)] == [1, 2, 3]
    assert env.step(1)[0] == 603
    assert env._outcomes == {}


def test_terminal_states_are_absorbing_like_toy_text():
    env = GridWorld("4x4", slip=2 / 3)
    for s in np.flatnonzero(np.isin(env.desc.ravel(), ["G", "H"])):
        for a in range(4):
            assert env.P[s][a] == [(1.0, s, 0.0, True)]
    env.reset(seed=0)
    env.s = 15
    assert env.step(0)[:3] == (15, 0.0, True)


@pytest.mark.parametrize(
    ("gym_id", "our_id"),
    [("FrozenLake-v1", "mpenv/FrozenLake4x4-v0"), ("FrozenLake8x8-v1", "mpenv/FrozenLake8x8-v0")],
)
def test_frozen_lake_matches_gymnasium(gym_id, our_id):
    theirs, ours = gym.make(gym_id), gym.make(our_id)
    assert ours.spec.max_episode_steps == theirs.spec.max_episode_steps
    theirs, ours = theirs.unwrapped, ours.unwrapped
    np.testing.assert_array_equal(ours.desc, np.char.decode(theirs.desc))
    assert set(ours.P) == set(theirs.P)
    for s in theirs.P:
        for a in range(4):
            assert_same_outcomes(ours.P[s][a], theirs.P[s][a])


@pytest.mark.parametrize(("gym_id", "slip"), [("CliffWalking-v1", 0.0), ("CliffWalkingSlippery-v1", 2 / 3)])
def test_cliff_walking_matches_gymnasium(gym_id, slip):
    theirs = gym.make(gym_id).unwrapped
    ours = gym.make("mpenv/CliffWalking-v0", slip=slip).unwrapped
    goal = 47  # gymnasium computes moves out of the goal, we make it absorbing: never reached anyway
    for s in range(48):
        if s == goal:
            continue
        for gym_action in range(4):
            # gymnasium's actions are up, right, down, left; ours left, down, right, up.
            assert_same_outcomes(ours.P[s][3 - gym_action], theirs.P[s][gym_action])


def test_cliff_walking_rollout_matches_gymnasium_step_by_step():
    theirs, ours = gym.make("CliffWalking-v1"), gym.make("mpenv/CliffWalking-v0")
    rng = np.random.default_rng(0)
    theirs.reset(seed=0)
    ours.reset(seed=0)
    for gym_action in rng.integers(0, 4, 500):
        t = theirs.step(int(gym_action))
        o = ours.step(3 - int(gym_action))
        assert o[:4] == (t[0], float(t[1]), t[2], t[3])
        if t[2]:
            theirs.reset()
            ours.reset()


def test_cliff_walking_optimal_return_is_minus_13():
    env = gym.make("mpenv/CliffWalking-v0").unwrapped
    v = value_iteration(env.sparse_model(), gamma=1.0)
    assert v[env.start_state] == pytest.approx(-13.0)  # 13 steps along the edge, -1 each


def test_windy_gridworld_shortest_path_is_15_steps():
    env = gym.make("mpenv/WindyGridWorld-v0").unwrapped
    assert env.wind == (0, 0, 0, 1, 1, 1, 2, 2, 1, 0)
    model = env.sparse_model()
    assert model.next_state.shape[2] == 1
    dist = {env.start_state: 0}
    queue = deque([env.start_state])
    while queue:
        s = queue.popleft()
        for a in range(4):
            nxt = int(model.next_state[s, a, 0])
            if nxt not in dist:
                dist[nxt] = dist[s] + 1
                queue.append(nxt)
    goal = int(np.flatnonzero(env.desc.ravel() == "G")[0])
    assert goal == 3 * 10 + 7
    assert dist[goal] == 15  # Sutton & Barto, Example 6.5
    assert value_iteration(model, gamma=1.0)[env.start_state] == pytest.approx(-15.0)


def test_windy_known_optimal_sequence():
    # Right x9 (blown up to the top row on the way), down x4, left x2: 15 steps, ending on G.
    env = gym.make("mpenv/WindyGridWorld-v0")
    env.reset(seed=0)
    actions = [2] * 9 + [1] * 4 + [0] * 2
    for i, a in enumerate(actions):
        obs, reward, terminated, _, _ = env.step(a)
        assert reward == -1.0
        assert terminated == (i == len(actions) - 1)
    assert obs == 37


def test_wind_uses_the_column_the_agent_was_in_and_stops_at_walls():
    env = GridWorld(["...", "...", "#..", "S.G"], wind=(0, 2, 0))
    start = env.start_state  # (3, 0)
    # Moving right from column 0 (no wind) lands on (3, 1) even though column 1 is windy.
    assert env.P[start][2] == [(1.0, 10, 0.0, False)]
    # From (3, 1) moving up: to (2, 1), then the wind of column 1 pushes 2 up to (0, 1).
    assert env.P[10][3] == [(1.0, 1, 0.0, False)]
    # From (3, 1) moving left: to (3, 0), pushed up by 2 but the wall at (2, 0) stops it.
    assert env.P[10][0] == [(1.0, 9, 0.0, False)]


def test_walls_edges_and_cliffs():
    env = GridWorld(["S#.", ".C.", "..G"], step_reward=-1, cliff_reward=-50)
    assert env.P[0][2] == [(1.0, 0, -1.0, False)]  # wall: stay, step reward
    assert env.P[0][3] == [(1.0, 0, -1.0, False)]  # edge
    assert env.P[3][2] == [(1.0, 0, -50.0, False)]  # cliff: back to start, not terminal
    assert env.P[5][1] == [(1.0, 8, 1.0, True)]  # goal


@pytest.mark.parametrize(
    ("kwargs", "pairs"),
    [
        (dict(layout="8x8", slip=2 / 3), [(0, 1), (19, 2), (42, 3)]),
        (dict(layout=MIXED, wind=MIXED_WIND, slip=0.5), [(0, 2), (12, 3), (20, 1)]),
    ],
)
def test_step_frequencies_match_P(kwargs, pairs):
    env = GridWorld(**kwargs)
    env.reset(seed=123)
    n = 20_000
    for s, a in pairs:
        counts: Counter = Counter()
        for _ in range(n):
            env.s = s
            obs, reward, terminated, _, info = env.step(a)
            counts[(obs, reward, terminated)] += 1
        expected = merged(env.P[s][a])
        assert set(counts) == set(expected)
        for outcome, p in expected.items():
            sigma = np.sqrt(p * (1 - p) / n)
            assert abs(counts[outcome] / n - p) < 5 * sigma + 1e-9, (s, a, outcome)


# -- gymnasium API -----------------------------------------------------------------------------------


@pytest.mark.parametrize("obs_mode", ["discrete", "onehot", "coords", "rgb"])
@pytest.mark.parametrize("render_mode", [None, "ansi", "rgb_array"])
def test_check_env_every_mode(obs_mode, render_mode):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make("mpenv/FrozenLake4x4-v0", obs_mode=obs_mode, render_mode=render_mode).unwrapped)
        warnings.filterwarnings("ignore", message=".*not having a spec")  # direct construction only
        check_env(GridWorld(MIXED, wind=MIXED_WIND, slip=0.3, obs_mode=obs_mode, render_mode=render_mode))


def test_observations_in_each_mode():
    layout = ["S..", ".#G"]
    modes = ("discrete", "onehot", "coords", "rgb")
    disc, onehot, coords, rgb = (GridWorld(layout, obs_mode=m) for m in modes)
    for env in (disc, onehot, coords, rgb):
        env.reset(seed=0)
    assert disc.step(2)[0] == 1
    obs = onehot.step(2)[0]
    assert obs.dtype == np.float32 and obs.shape == (6,) and obs.argmax() == 1 and obs.sum() == 1
    obs = coords.step(2)[0]
    np.testing.assert_array_equal(obs, np.array([0, 1], dtype=np.float32))
    obs = rgb.step(2)[0]
    assert obs.dtype == np.uint8 and obs.shape == rgb.observation_space.shape
    assert rgb.observation_space.contains(obs)


def test_reset_seed_reproducible():
    def trajectory(seed):
        env = gym.make("mpenv/FrozenLake8x8-v0")
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in np.random.default_rng(7).integers(0, 4, 300).tolist():
            obs, r, terminated, truncated, _ = env.step(a)
            out.append((obs, r))
            if terminated or truncated:
                out.append(env.reset()[0])
        return out

    assert trajectory(1) == trajectory(1)
    assert trajectory(1) != trajectory(2)


def test_internal_truncation():
    env = GridWorld(["S..", "..G"], max_episode_steps=3)
    env.reset(seed=0)
    assert [env.step(3)[3] for _ in range(3)] == [False, False, True]
    env.reset()
    assert env.step(3)[3] is False


def test_registered_time_limits():
    assert gym.spec("mpenv/FrozenLake4x4-v0").max_episode_steps == 100
    assert gym.spec("mpenv/FrozenLake8x8-v0").max_episode_steps == 200
    env = gym.make("mpenv/GridWorld-v0", layout="fourrooms", max_episode_steps=5)
    env.reset(seed=0)
    assert [env.step(3)[3] for _ in range(5)][-1] is True


def test_actions_accept_numpy_ints_and_reject_the_rest():
    env = GridWorld("4x4")
    env.reset(seed=0)
    assert env.step(np.int64(2))[0] == 1
    for bad in (4, -1, 1.0, "up", None):
        with pytest.raises(ValueError, match="invalid action"):
            env.step(bad)


def test_layout_forms_are_equivalent():
    rows = list(LAYOUTS["4x4"])
    expected = GridWorld(rows).desc
    assert expected.dtype == np.dtype("U1") and expected.shape == (4, 4)
    for form in (
        "4x4",
        "\n    SFFF\n    FHFH\n    FFFH\n    HFFG\n",
        np.array([list(r) for r in rows]),
        np.array([list(r) for r in rows], dtype="S1"),
        tuple(rows),
    ):
        np.testing.assert_array_equal(GridWorld(form).desc, expected)


def test_classic_layouts():
    four = parse_layout("fourrooms")
    assert four.shape == (13, 13)
    assert np.isin(four, ["S", ".", "G"]).sum() == 104  # Sutton, Precup & Singh (1999)
    assert reachable(four)[four != "#"].all()
    cliff = GridWorld("cliffwalking")
    assert (cliff.nrow, cliff.ncol, cliff.start_state) == (4, 12, 36)
    assert (cliff.desc[3, 1:-1] == "C").all()
    assert GridWorld("windy").desc.shape == (7, 10)


def test_no_goal_is_a_continuing_task():
    env = GridWorld(["S.", ".H"])
    assert not is_solvable(["S.", ".H"])
    assert env.P[3][0] == [(1.0, 3, 0.0, True)]


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(layout=["..G", "..."]), "no start"),
        (dict(layout=["S.G", "..S"]), r"2 starts.*row 1, column 2"),
        (dict(layout=["S.G", ".x."]), r"unknown layout character 'x' at row 1, column 1"),
        (dict(layout=["S.G", ".."]), r"ragged layout: row 1 has 2 columns"),
        (dict(layout=[]), "empty layout"),
        (dict(layout=[""]), "empty layout"),
        (dict(layout="nope"), "unknown layout name 'nope'"),
        (dict(layout="4x4", wind=[0, 1]), r"wind has 2 entries but the layout has 4 columns"),
        (dict(layout="4x4", wind=[0, 1, -1, 0]), r"wind\[2\]"),
        (dict(layout="4x4", slip=1.5), r"slip must be in \[0, 1\]"),
        (dict(layout="4x4", slip=-0.1), r"slip must be in \[0, 1\]"),
        (dict(layout="4x4", slip=float("nan")), r"slip must be in \[0, 1\]"),
        (dict(layout="4x4", obs_mode="pixels"), "unknown obs_mode 'pixels'"),
        (dict(layout="4x4", render_mode="human"), "unknown render_mode 'human'"),
        (dict(layout="4x4", max_episode_steps=0), "max_episode_steps must be a positive int"),
        (dict(layout="4x4", goal_reward="big"), "goal_reward must be a number"),
        (dict(layout="4x4", cell_size=0), "cell_size must be a positive int"),
    ],
)
def test_bad_inputs_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GridWorld(**kwargs)


def test_argument_errors_come_before_building():
    # A bad obs_mode is reported even though the layout is huge: nothing was parsed or built first.
    start = time.perf_counter()
    with pytest.raises(ValueError, match="obs_mode"):
        GridWorld(["S" + "." * 999] + ["." * 1000] * 999, obs_mode="bad")
    assert time.perf_counter() - start < 0.5


def test_bad_make_kwargs_raise_value_error():
    with pytest.raises(ValueError, match="slip"):
        gym.make("mpenv/FrozenLake4x4-v0", slip=2.0)


# -- random layouts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nrow", "ncol", "walls", "holes"),
    [(1, 2, 0.5, 0.5), (8, 8, 0.4, 0.2), (30, 50, 0.6, 0.3), (50, 30, 0.0, 0.9)],
)
def test_random_layout_is_seeded_and_solvable(nrow, ncol, walls, holes):
    for seed in range(5):
        layout = random_layout(nrow, ncol, wall_density=walls, hole_density=holes, seed=seed)
        assert layout == random_layout(nrow, ncol, wall_density=walls, hole_density=holes, seed=seed)
        assert len(layout) == nrow and all(len(row) == ncol for row in layout)
        assert is_solvable(layout)
    if nrow * ncol > 2:
        layouts = {tuple(random_layout(nrow, ncol, walls, holes, seed=seed)) for seed in range(5)}
        assert len(layouts) > 1


def test_random_layout_densities():
    desc = parse_layout(random_layout(200, 200, wall_density=0.3, hole_density=0.1, seed=0))
    assert (desc == "#").mean() == pytest.approx(0.3, abs=0.02)
    assert (desc == "H").mean() == pytest.approx(0.1, abs=0.02)


def test_random_layout_million_cells_is_fast():
    start = time.perf_counter()
    layout = random_layout(1000, 1000, wall_density=0.3, hole_density=0.05, seed=0)
    env = GridWorld(layout, slip=0.1)
    elapsed = time.perf_counter() - start
    assert env.observation_space.n == 1_000_000
    assert elapsed < 2.0
    assert is_solvable(layout)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(nrow=1, ncol=1), "at least two cells"),
        (dict(nrow=5, ncol=5, wall_density=1.2), "wall_density"),
        (dict(nrow=5, ncol=5, wall_density=0.6, hole_density=0.6), "at most 1"),
    ],
)
def test_random_layout_bad_args(kwargs, match):
    with pytest.raises(ValueError, match=match):
        random_layout(**kwargs)


# -- rendering ---------------------------------------------------------------------------------------


def test_render_ansi():
    env = gym.make("mpenv/FrozenLake4x4-v0", render_mode="ansi")
    env.reset(seed=0)
    assert env.render() == "AFFF\nFHFH\nFFFH\nHFFG\n"
    env.unwrapped.s = 5
    env.unwrapped.lastaction = 1
    assert env.render() == "  (Down)\nSFFF\nFAFH\nFFFH\nHFFG\n"


def test_render_rgb_array():
    env = GridWorld(["S.#", "C.G"], render_mode="rgb_array", cell_size=10)
    env.reset(seed=0)
    image = env.render()
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8
    assert tuple(image[5, 5]) == (220, 40, 40)  # agent at the centre of its cell
    env.step(2)
    image2 = env.render()
    assert tuple(image2[5, 15]) == (220, 40, 40)
    assert tuple(image2[5, 5]) != (220, 40, 40)
    assert tuple(image2[5, 25]) == (64, 64, 64)  # wall
    assert image is not image2


def test_render_without_mode_warns():
    env = GridWorld("4x4")
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None


def test_large_grid_images_stay_small():
    env = GridWorld(random_layout(1000, 1000, seed=0), obs_mode="rgb")
    assert env.observation_space.shape == (1000, 1000, 3)


# -- registration and imports ------------------------------------------------------------------------


def test_registered_ids():
    for env_id in (
        "mpenv/GridWorld-v0",
        "mpenv/FrozenLake4x4-v0",
        "mpenv/FrozenLake8x8-v0",
        "mpenv/CliffWalking-v0",
        "mpenv/WindyGridWorld-v0",
        "mpenv/FourRooms-v0",
    ):
        env = gym.make(env_id)
        assert isinstance(env.unwrapped, GridWorld)
        assert env.observation_space.contains(env.reset(seed=0)[0])
    assert gym.make("mpenv/GridWorld-v0", layout="fourrooms").unwrapped.desc.shape == (13, 13)


def test_registration_is_idempotent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(mpenv)
        mpenv.gridworld.registration.register_gridworlds()
    assert gym.make("mpenv/CliffWalking-v0").unwrapped.nrow == 4


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_mpenv_is_light():
    out = run_python("import sys, mpenv; print('torch' in sys.modules, 'mpenv.gridworld.env' in sys.modules)")
    assert out.split() == ["False", "False"]


def test_make_with_module_prefix_in_fresh_interpreter():
    out = run_python("import gymnasium as gym; print(gym.make('mpenv:mpenv/CliffWalking-v0').unwrapped.ncol)")
    assert out.strip() == "12"


def terminal_reachable_by_brute_force(env: GridWorld) -> bool:
    """Breadth-first search over the toy-text ``P`` (positive-probability outcomes of every action)."""
    P, seen, queue = env.P, {env.start_state}, deque([env.start_state])
    while queue:
        s = queue.popleft()
        for a in range(4):
            for prob, s_next, _, terminated in P[s][a]:
                if prob > 0 and terminated:
                    return True
                if prob > 0 and s_next not in seen:
                    seen.add(s_next)
                    queue.append(s_next)
    return False


@pytest.mark.parametrize(
    ("layout", "kwargs", "expected"),
    [
        (["S..", "...", "..."], {}, False),  # no goal, no hole: a continuing task
        (["S.#G", "..#.", "..#."], {}, False),  # the goal is walled off
        (["SCG"], {}, False),  # only through the cliff, which sends the agent back to the start
        (["S..", ".H.", "..."], {}, True),  # a hole ends episodes too
        (["S..", "...", "..G"], {"slip": 1.0}, True),  # slipping still moves every way
        (["G#", "C#", "S#"], {}, False),  # the cliff bars the way up...
        (["G#", "C#", "S#"], {"wind": (1, 0)}, True),  # ...but the wind carries the agent over it
        ("cliffwalking", {}, True),
    ],
    ids=str,
)
def test_terminal_reachable_matches_a_search_over_p(layout, kwargs, expected):
    env = GridWorld(layout, **kwargs)
    assert env.terminal_reachable is expected
    assert terminal_reachable_by_brute_force(env) is expected


@pytest.mark.parametrize("name", list(MODEL_CASES))
def test_terminal_reachable_on_the_model_cases(name):
    env = GridWorld(**MODEL_CASES[name])
    assert env.terminal_reachable is terminal_reachable_by_brute_force(env)
