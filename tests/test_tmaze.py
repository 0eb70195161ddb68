"""TMaze: the cue is seen only at reset, rewards and bumps, time limits, seeding, and the memory gap checked by
brute force (no memoryless policy beats 50% success, a policy with memory gets 100%); API and registration."""

from __future__ import annotations

import itertools
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import mpenv
from mpenv.gridworld import TMaze
from mpenv.gridworld.tmaze import CUES, OBSERVATION_NAMES

LEFT, DOWN, RIGHT, UP = range(4)
ARM_ACTION = {"up": UP, "down": DOWN}
OTHER = {"up": "down", "down": "up"}


def time_limit(length: int) -> int:
    return 4 * (length + 1)


def run(env: TMaze, cue: str, actions) -> list[tuple]:
    """Reset with ``cue`` and play ``actions``: the list of step results, the reset as ``(obs, info)`` first."""
    out: list[tuple] = [env.reset(seed=0, options={"cue": cue})]
    out += [env.step(a) for a in actions]
    return out


# -- observations ------------------------------------------------------------------------------------


def test_observation_layout_is_as_documented():
    assert OBSERVATION_NAMES == ("cue_up", "cue_down", "at_junction", "in_corridor")
    env = TMaze()
    assert env.observation_space == gym.spaces.Box(0.0, 1.0, (4,), dtype=np.float32)
    assert env.action_space == gym.spaces.Discrete(4)


@pytest.mark.parametrize("cue", CUES)
def test_only_the_reset_observation_shows_the_cue(cue):
    env = TMaze(length=4)
    results = run(env, cue, [RIGHT] * 4 + [ARM_ACTION[cue]])
    first, info = results[0]
    expected = [1, 0, 0, 1] if cue == "up" else [0, 1, 0, 1]
    np.testing.assert_array_equal(first, np.array(expected, dtype=np.float32))
    assert first.dtype == np.float32 and info == {"cue": cue}
    observations = [step[0] for step in results[1:]]
    for obs in observations:
        assert obs[0] == obs[1] == 0  # the cue is gone after the first observation
    np.testing.assert_array_equal(observations[0], [0, 0, 0, 1])  # still in the corridor
    np.testing.assert_array_equal(observations[3], [0, 0, 1, 0])  # at the junction, the same for both cues
    np.testing.assert_array_equal(observations[4], [0, 0, 0, 0])  # in an arm: neither flag


@pytest.mark.parametrize("cue", CUES)
def test_cue_visible_always_keeps_the_cue(cue):
    env = TMaze(length=3, cue_visible_always=True)
    results = run(env, cue, [UP, LEFT, RIGHT, RIGHT, RIGHT, ARM_ACTION[cue]])
    flag = 0 if cue == "up" else 1
    for obs in [results[0][0]] + [step[0] for step in results[1:]]:
        assert obs[flag] == 1 and obs[1 - flag] == 0


def test_cue_only_in_the_reset_observation_even_after_bumps():
    env = TMaze(length=2)
    obs, _ = env.reset(seed=0, options={"cue": "down"})
    assert obs[1] == 1
    obs = env.step(UP)[0]  # a bump at the start: same place, but no cue any more
    np.testing.assert_array_equal(obs, [0, 0, 0, 1])


# -- rewards and moves -------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 10, 30])
@pytest.mark.parametrize("cue", CUES)
def test_optimal_actions_reach_the_goal(cue, length):
    env = TMaze(length=length, goal_reward=2.5, wrong_reward=-1.0, step_reward=-0.01)
    results = run(env, cue, [RIGHT] * length + [ARM_ACTION[cue]])
    steps = results[1:]
    assert [s[1] for s in steps[:-1]] == [-0.01] * length
    assert not any(s[2] or s[3] for s in steps[:-1])
    assert all("success" not in s[4] for s in steps[:-1])
    _, reward, terminated, truncated, info = steps[-1]
    assert (reward, terminated, truncated) == (2.5, True, False)
    assert info == {"cue": cue, "success": True}
    # The documented optimal return, goal_reward + length * step_reward, in length + 1 steps.
    assert sum(s[1] for s in steps) == pytest.approx(2.5 - 0.01 * length)


@pytest.mark.parametrize("cue", CUES)
def test_the_wrong_arm_gets_wrong_reward(cue):
    env = TMaze(length=3, goal_reward=1.0, wrong_reward=-0.1)
    _, reward, terminated, _, info = run(env, cue, [RIGHT] * 3 + [ARM_ACTION[OTHER[cue]]])[-1]
    assert (reward, terminated, info) == (-0.1, True, {"cue": cue, "success": False})


def test_default_rewards_make_the_return_the_success():
    env = TMaze()
    assert (env.goal_reward, env.wrong_reward, env.step_reward) == (1.0, 0.0, 0.0)
    assert run(env, "up", [RIGHT] * 10 + [UP])[-1][1] == 1.0
    assert run(env, "up", [RIGHT] * 10 + [DOWN])[-1][1] == 0.0


def test_bumps_and_moves():
    env = TMaze(length=3, step_reward=-0.5)
    env.reset(seed=0, options={"cue": "up"})
    for action in (LEFT, UP, DOWN):  # the start cell: left is the end of the corridor, up and down are walls
        assert env.step(action)[1:4] == (-0.5, False, False)
        assert env.position == 0
    for expected in (1, 2, 3):
        env.step(RIGHT)
        assert env.position == expected
    assert env.position == env.junction == 3
    obs, reward, terminated, _, _ = env.step(RIGHT)  # right at the junction bumps
    assert (env.position, reward, terminated) == (3, -0.5, False)
    np.testing.assert_array_equal(obs, [0, 0, 1, 0])
    obs = env.step(LEFT)[0]  # back into the corridor
    assert env.position == 2
    np.testing.assert_array_equal(obs, [0, 0, 0, 1])
    env.step(RIGHT)
    assert env.step(UP)[1:3] == (1.0, True)


def test_steps_after_the_end_are_absorbing():
    env = TMaze(length=1)
    env.reset(seed=0, options={"cue": "down"})
    env.step(RIGHT)
    assert env.step(DOWN)[1:3] == (1.0, True)
    for action in range(4):
        obs, reward, terminated, truncated, info = env.step(action)
        assert (reward, terminated, truncated, info) == (0.0, True, False, {"cue": "down", "success": True})
        np.testing.assert_array_equal(obs, [0, 0, 0, 0])


def test_actions_accept_numpy_ints_and_reject_the_rest():
    env = TMaze(length=2)
    env.reset(seed=0)
    env.step(np.int64(RIGHT))
    assert env.position == 1
    for bad in (4, -1, 1.0, "up", None):
        with pytest.raises(ValueError, match="invalid action"):
            env.step(bad)


# -- time limits and seeding -------------------------------------------------------------------------


@pytest.mark.parametrize(("env_id", "length"), [("mpenv/TMaze-v0", 10), ("mpenv/TMazeLong-v0", 30)])
def test_registered_time_limit_truncates(env_id, length):
    env = gym.make(env_id)
    assert env.unwrapped.length == length
    assert env.spec.max_episode_steps == time_limit(length)
    env.reset(seed=0)
    truncations = [env.step(LEFT)[3] for _ in range(time_limit(length))]
    assert truncations == [False] * (time_limit(length) - 1) + [True]


def test_the_shortest_episode_takes_length_plus_one_steps():
    env = gym.make("mpenv/TMaze-v0", max_episode_steps=11)  # exactly the shortest episode
    obs, info = env.reset(seed=3)
    cue = "up" if obs[0] else "down"
    results = [env.step(a) for a in [RIGHT] * 10 + [ARM_ACTION[cue]]]
    assert results[-1][1:4] == (1.0, True, True)  # the goal is reached on the step the limit ends


def test_seeded_resets_are_reproducible():
    def cues(seed: int) -> list[str]:
        env = TMaze()
        first = env.reset(seed=seed)[1]["cue"]
        return [first] + [env.reset()[1]["cue"] for _ in range(50)]

    assert cues(7) == cues(7)
    assert cues(7) != cues(8)
    env = TMaze()
    for seed in range(20):
        obs_a, info_a = env.reset(seed=seed)
        obs_b, info_b = env.reset(seed=seed)
        np.testing.assert_array_equal(obs_a, obs_b)
        assert info_a == info_b


def test_both_cues_occur_half_the_time():
    env = TMaze()
    env.reset(seed=0)
    n = 2000
    ups = sum(env.reset()[1]["cue"] == "up" for _ in range(n))
    # Binomial(2000, 1/2): standard deviation sqrt(n / 4) ~ 22; 4 sigma fails once in ~16,000 seeds.
    assert abs(ups - n / 2) < 4 * np.sqrt(n / 4)
    # Over fresh seeds as well: the cue is drawn from the seeded np_random.
    ups = sum(env.reset(seed=seed)[1]["cue"] == "up" for seed in range(n))
    assert abs(ups - n / 2) < 4 * np.sqrt(n / 4)


def test_options_fix_the_cue_without_changing_the_random_stream():
    env = TMaze()
    env.reset(seed=5)
    free = [env.reset()[1]["cue"] for _ in range(20)]
    env.reset(seed=5, options={"cue": "down"})
    assert env.cue == 1
    assert [env.reset()[1]["cue"] for _ in range(20)] == free
    with pytest.raises(ValueError, match="options\\['cue'\\]"):
        env.reset(options={"cue": "left"})


# -- the memory gap, by brute force ------------------------------------------------------------------


def acting_observations(env: TMaze) -> list[tuple[float, ...]]:
    """Every observation on which a policy must act (reachable, not terminal), found by a search over the
    internal states (position, cue shown?) reachable from either cue by any sequence of actions."""
    found: set[tuple[float, ...]] = set()
    for cue in CUES:
        seen: set[tuple] = set()
        stack: list[tuple[int, ...]] = [()]
        while stack:
            prefix = stack.pop()
            obs, _ = env.reset(seed=0, options={"cue": cue})
            terminated = False
            for action in prefix:
                obs, _, terminated, _, _ = env.step(action)
            state = (env.position, env.cue_visible, terminated)
            if state in seen:
                continue
            seen.add(state)
            if not terminated:
                found.add(tuple(obs.tolist()))
                stack += [(*prefix, action) for action in range(4)]
    return sorted(found)


def success_rate(env: TMaze, act) -> float:
    """Exact expected success of the deterministic policy ``act(obs, first)`` over the two equally likely cues,
    within the registered time limit."""
    successes = 0
    for cue in CUES:
        obs, _ = env.reset(seed=0, options={"cue": cue})
        first = obs
        for _ in range(time_limit(env.length)):
            obs, _, terminated, _, info = env.step(act(obs, first))
            if terminated:
                successes += info["success"]
                break
    return successes / len(CUES)


def memoryless_success_rates(env: TMaze) -> list[float]:
    """The exact expected success of every deterministic memoryless policy, a table from the acting observations
    to actions (an observation missing from the table would raise KeyError: the search would have missed it)."""
    observations = acting_observations(env)
    rates = []
    for actions in itertools.product(range(4), repeat=len(observations)):
        policy = dict(zip(observations, actions, strict=True))
        rates.append(success_rate(env, lambda obs, first, policy=policy: policy[tuple(obs.tolist())]))
    return rates


@pytest.mark.parametrize("length", [1, 4, 10])
def test_no_memoryless_policy_beats_half_success(length):
    env = TMaze(length=length)
    # Two reset observations (one per cue), the corridor and the junction: 4**4 = 256 policies.
    assert acting_observations(env) == sorted([(1, 0, 0, 1), (0, 1, 0, 1), (0, 0, 0, 1), (0, 0, 1, 0)])
    rates = memoryless_success_rates(env)
    assert len(rates) == 256
    assert max(rates) == 0.5
    assert set(rates) == {0.0, 0.5}
    # 50% takes a junction action that picks an arm (2 ways) and, for the cue of that arm, a way to the junction:
    # "right" in the corridor, any action on the two reset observations (4**2). With length 1 the start is next to
    # the junction, so "right" on the matching reset observation with any other corridor action works too (3 * 4).
    assert sum(rate == 0.5 for rate in rates) == 2 * (4**2 + (3 * 4 if length == 1 else 0))


@pytest.mark.parametrize("length", [1, 4, 10])
def test_a_policy_with_memory_always_succeeds(length):
    def remember_the_cue(obs: np.ndarray, first: np.ndarray) -> int:
        if obs[2] == 0:  # in the corridor
            return RIGHT
        return UP if first[0] == 1 else DOWN

    assert success_rate(TMaze(length=length), remember_the_cue) == 1.0


def test_with_the_cue_always_visible_a_memoryless_policy_succeeds():
    env = TMaze(length=3, cue_visible_always=True)
    # The corridor (the start included) and the junction, each with either cue.
    assert acting_observations(env) == sorted([(1, 0, 0, 1), (0, 1, 0, 1), (1, 0, 1, 0), (0, 1, 1, 0)])
    assert max(memoryless_success_rates(env)) == 1.0


# -- API, rendering, errors and registration ---------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"cue_visible_always": True}, {"render_mode": "ansi"}], ids=str)
def test_check_env(kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make("mpenv/TMaze-v0", **kwargs).unwrapped)


def test_render_ansi():
    env = TMaze(length=3, render_mode="ansi")
    env.reset(seed=0, options={"cue": "down"})
    assert env.render() == "   .\nA..+\n   G\n"
    env.step(RIGHT)
    assert env.render() == "  (Right)\n   ?\nSA.+\n   ?\n"
    env.step(RIGHT)
    env.step(RIGHT)
    assert env.render() == "  (Right)\n   ?\nS..A\n   ?\n"
    env.step(UP)
    assert env.render() == "  (Up)\n   A\nS..+\n   ?\n"


def test_render_ansi_with_the_cue_always_visible():
    env = TMaze(length=2, render_mode="ansi", cue_visible_always=True)
    env.reset(seed=0, options={"cue": "up"})
    env.step(RIGHT)
    assert env.render() == "  (Right)\n  G\nSA+\n  .\n"


def test_render_without_mode_warns():
    env = TMaze()
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(length=0), "length must be an int >= 1"),
        (dict(length=2.0), "length must be an int >= 1"),
        (dict(length=True), "length must be an int >= 1"),
        (dict(goal_reward=float("nan")), "goal_reward must be finite"),
        (dict(wrong_reward=float("inf")), "wrong_reward must be finite"),
        (dict(step_reward="small"), "step_reward must be a number"),
        (dict(cue_visible_always="yes"), "cue_visible_always must be a bool"),
        (dict(render_mode="rgb_array"), "unknown render_mode 'rgb_array'"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TMaze(**kwargs)


def test_registered_ids_and_idempotent_registration():
    for env_id in ("mpenv/TMaze-v0", "mpenv/TMazeLong-v0"):
        env = gym.make(env_id)
        assert isinstance(env.unwrapped, TMaze)
        assert env.observation_space.contains(env.reset(seed=0)[0])
    assert gym.spec("mpenv/TMaze-v0").entry_point == "mpenv.gridworld.tmaze:TMaze"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mpenv.gridworld.registration.register_gridworlds()
        mpenv.gridworld.registration.register_tmazes()


def test_import_mpenv_does_not_import_the_tmaze_and_make_works():
    code = (
        "import sys, gymnasium as gym, mpenv\n"
        "print('mpenv.gridworld.tmaze' in sys.modules)\n"
        "print(gym.make('mpenv/TMaze-v0').reset(seed=0)[0].shape)\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["False", "(4,)"]
