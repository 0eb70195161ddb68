"""Task objectives with imitation: target heading and strike, their rewards by hand, goals, schedules, checks."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import mpenv  # noqa: F401  (registers the ids)
from mpenv.humanoid.env import HumanoidMimicEnv
from mpenv.humanoid.mjcf import BODY_ORDER
from mpenv.humanoid.tasks import StrikeEnv, TargetHeadingEnv


def replay_kinematically(env: HumanoidMimicEnv, displacement: np.ndarray | None = None) -> None:
    """``env.step`` puts the character on the reference as placed at reset (moved by ``displacement``)."""
    shift = np.zeros(3) if displacement is None else displacement

    def teleport(ctrl: np.ndarray, n_frames: int) -> None:
        base = env._reference_at(env._start + env._frame + 1, kinematics=False)
        qpos = base["qpos"].copy()
        qpos[:3] += shift
        env.set_state(qpos, base["qvel"])

    env.do_simulation = teleport


def test_target_heading_reward_by_hand():
    """Replaying the walk (0.98 m/s along +x) under a command of 1.2 m/s along +x: r_G = exp(-2.5 (1.2 - v)^2)
    with v the reference's centre-of-mass displacement per frame times 30; r = 0.7 + 0.3 r_G."""
    env = TargetHeadingEnv(rsi="frames", random_heading=False, change_window=(100.0, 100.0))
    replay_kinematically(env)
    env.reset(seed=0)
    env.direction, env.speed = 0.0, 1.2
    ref, start = env.reference, int(env._start)
    for t in range(1, 20):
        _, reward, _, _, info = env.step(np.zeros(69))
        a, b = (start + t - 1) % ref.cycle_frames, (start + t) % ref.cycle_frames
        cycles = (start + t) // ref.cycle_frames - (start + t - 1) // ref.cycle_frames
        speed = (ref.com[b, 0] + cycles * ref.cycle_shift[0] - ref.com[a, 0]) * 30.0
        assert info["task_speed"] == pytest.approx(speed, abs=1e-9)
        assert info["reward_task"] == pytest.approx(np.exp(-2.5 * max(0.0, 1.2 - speed) ** 2), abs=1e-12)
        assert info["reward_imitation"] == pytest.approx(1.0, abs=1e-6)
        assert reward == pytest.approx(0.7 * info["reward_imitation"] + 0.3 * info["reward_task"], abs=1e-12)
    assert 0.5 < info["task_speed_ratio"] < 1.2


def test_target_heading_goal_and_heading_error():
    env = TargetHeadingEnv(early_termination=False)
    env.reset(seed=1)
    facing = np.arctan2(env.data.xmat[env._body_ids[0]][3], env.data.xmat[env._body_ids[0]][0])
    env.direction, env.speed = facing + np.radians(30.0), 1.1
    np.testing.assert_allclose(env._goal(), [np.cos(np.radians(30)), np.sin(np.radians(30)), 1.1], atol=1e-12)
    obs, *_, info = env.step(np.zeros(69))
    facing = np.arctan2(env.data.xmat[env._body_ids[0]][3], env.data.xmat[env._body_ids[0]][0])
    expected = abs(np.degrees((env.direction - facing + np.pi) % (2 * np.pi) - np.pi))
    assert info["task_heading_error"] == pytest.approx(expected) and obs.shape == env.observation_space.shape


def test_the_command_changes_once_in_the_change_window():
    env = TargetHeadingEnv(early_termination=False, change_window=(1.0, 1.0), turn=60.0)
    replay_kinematically(env)
    env.reset(seed=2)
    first = env.direction, env.speed
    commands = [(info["command_direction"], info["command_speed"])
                for info in (env.step(np.zeros(69))[4] for _ in range(45))]
    changed = [i for i in range(1, 45) if commands[i] != commands[i - 1]]
    assert commands[0] == first and changed == [29]  # step 30 = 1 s
    turn = (commands[29][0] - first[0] + np.pi) % (2 * np.pi) - np.pi
    assert 0 < abs(turn) <= np.radians(60.0) and 0.8 <= commands[29][1] <= 1.2


def test_a_steered_reference_turns_towards_the_command_at_its_rate():
    """steer_rate=90 at 30 frames/s: the reference's placement turns 3 degrees a step until its travel direction is
    the command's, its pelvis always over the character's; replayed along a command on the clip's own path, the
    imitation reward stays 1."""
    env = TargetHeadingEnv(steer_rate=90.0, random_heading=False, early_termination=False, change_window=(100, 100))
    replay_kinematically(env)
    env.reset(seed=0)
    env.direction = env._travel
    for _ in range(5):
        info = env.step(np.zeros(69))[4]
        assert info["reward_imitation"] == pytest.approx(1.0, abs=1e-6)
    env.direction = env._travel + np.radians(20.0)
    yaws = []
    for _ in range(10):
        env.step(np.zeros(69))
        turn = env._placement[0]
        yaws.append(np.degrees(np.arctan2(turn[1, 0], turn[0, 0])))
        pelvis = env.reference_state(env._start + env._frame)["qpos"][:2]
        np.testing.assert_allclose(pelvis, env.data.xpos[env._body_ids[0]][:2], atol=1e-9)
    np.testing.assert_allclose(yaws, [3, 6, 9, 12, 15, 18, 20, 20, 20, 20], atol=1e-9)
    with pytest.raises(ValueError, match="steer_rate"):
        TargetHeadingEnv(steer_rate=-1.0)


def test_match_speed_costs_going_faster_than_the_command():
    """Replaying the walk (about 0.98 m/s) under a 0.7 m/s command: one-sided, r_G = 1; with match_speed,
    r_G = exp(-2.5 (0.7 - v)^2)."""
    for match in (False, True):
        env = TargetHeadingEnv(rsi="frames", random_heading=False, change_window=(100.0, 100.0), match_speed=match)
        replay_kinematically(env)
        env.reset(seed=0)
        env.direction, env.speed = 0.0, 0.7
        for _ in range(5):
            info = env.step(np.zeros(69))[4]
            speed = info["task_speed"]
            assert speed > 0.8
            expected = np.exp(-2.5 * (0.7 - speed) ** 2) if match else 1.0
            assert info["reward_task"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("env_class", [TargetHeadingEnv, StrikeEnv])
def test_the_goal_sits_before_the_future_reference_frames(env_class):
    """With future frames the goal comes right after the character's 292 numbers, so a policy widened to more
    future frames by --init-from (new inputs appended at the end) keeps its goal weights."""
    env = env_class(future_frames=2, early_termination=False)
    obs, _ = env.reset(seed=3)
    plain, _ = HumanoidMimicEnv("walk", future_frames=2).reset(seed=3)  # both tasks default to the walk
    goal = env._goal()
    np.testing.assert_array_equal(obs, np.concatenate([plain[:292], goal, plain[292:]]))
    assert obs.shape == (292 + len(goal) + 2 * 72,) == env.observation_space.shape


def test_strike_replay_hits_every_target_on_the_reference_path():
    """target_spread 0: each target lies on the hand's reference path, so replaying the clip hits it (the hand
    moves under 0.1 m per step): r_G = 1 from the hit on, and every window closes with task_hit = 1."""
    env = StrikeEnv(target_spread=0.0, rsi="frames", random_heading=False)
    replay_kinematically(env)
    env.reset(seed=0)
    infos = [env.step(np.zeros(69))[4] for _ in range(120)]  # three walk cycles
    hits = [info["task_hit"] for info in infos if "task_hit" in info]
    assert len(hits) >= 3 and all(hit == 1.0 for hit in hits)
    assert sum(info["reward_task"] == 1.0 for info in infos) > 10  # from each hit to its window's end


def test_strike_miss_reward_by_hand():
    """The character 1 m to the side of its reference never hits: r_G = exp(-4 d^2), d the hand-target
    distance computed here from the bodies."""
    env = StrikeEnv(rsi="frames", random_heading=False)
    replay_kinematically(env, displacement=np.array([0.0, 1.0, 0.0]))
    env.reset(seed=3)
    hand = BODY_ORDER.index("right_wrist")
    for _ in range(80):
        target = env.target.copy()
        *_, info = env.step(np.zeros(69))
        distance = np.linalg.norm(env.data.xpos[env._body_ids[hand]] - target)
        assert info["task_distance"] == pytest.approx(distance, abs=1e-12)
        assert info["reward_task"] == pytest.approx(np.exp(-4 * distance**2), abs=1e-12)
        assert info.get("task_hit", 0.0) == 0.0


def test_strike_default_window_is_centred_on_the_most_forward_hand():
    env = StrikeEnv()
    start, end = env.window
    assert end - start == pytest.approx(1 / 3) and -1.0 <= start < end <= 1.0
    ref = env.reference
    facing = ref.body_rot[:, 0, :2, 0] / np.linalg.norm(ref.body_rot[:, 0, :2, 0], axis=1, keepdims=True)
    hand = ref.body_pos[:, BODY_ORDER.index("right_wrist"), :2] - ref.body_pos[:, 0, :2]
    reach = np.sum(hand * facing, axis=1)  # how far ahead of the pelvis, along its facing direction
    centre = np.argmax(reach) / ref.cycle_frames
    assert (centre - (start + end) / 2 + 0.5) % 1.0 - 0.5 == pytest.approx(0.0, abs=0.05)


def test_task_ids_pass_the_checkers_and_bad_input_is_clear():
    for env_id, extra in (("mpenv/HumanoidMimicHeading-v0", 3), ("mpenv/HumanoidMimicStrike-v0", 6)):
        env = gym.make(env_id)
        assert env.observation_space.shape == (292 + extra,)
        check_env(env.unwrapped, skip_render_check=True)
    with pytest.raises(ValueError, match="effector"):
        StrikeEnv(effector="tail")
    with pytest.raises(ValueError, match="window"):
        StrikeEnv(window=(0.5, 1.5))
    with pytest.raises(ValueError, match="task_weight"):
        TargetHeadingEnv(task_weight=1.5)
    with pytest.raises(ValueError, match="speed_range"):
        TargetHeadingEnv(speed_range=(1.2, 0.8))
