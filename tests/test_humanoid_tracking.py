"""The humanoid's tracking metrics, global tracking, the root term, continuous-phase RSI and random headings.

Episodes here are "kinematic": the simulation step is replaced by setting the character onto the reference
(optionally displaced), so every metric has a value computed by hand."""

from collections.abc import Callable

import mujoco
import numpy as np
import pytest
import torch

from agents.evaluate import EpisodeStats, run_episodes
from mpenv.humanoid.env import PHC_FAIL_DISTANCE, HumanoidMimicEnv, yaw_placement
from vision3d.body.rotations import quaternion_slerp

Displacement = Callable[[int], np.ndarray]  # step number -> world displacement of the character (metres)


def kinematic(env: HumanoidMimicEnv, displacement: Displacement) -> HumanoidMimicEnv:
    """Make ``env.step`` put the character on the reference of the next time, moved by ``displacement``."""

    def teleport(ctrl: np.ndarray, n_frames: int) -> None:
        state = env.reference_state(env._start + env._frame + 1)
        qpos = state["qpos"].copy()
        qpos[:3] += displacement(env._frame + 1) - (env._placement.origin - env._global.origin)  # from the global
        env.set_state(qpos, state["qvel"])

    env.do_simulation = teleport
    return env


def play(env: HumanoidMimicEnv, steps: int, seed: int = 0) -> list[dict]:
    env.reset(seed=seed)
    return [env.step(np.zeros(69))[4] for _ in range(steps)]


def test_kinematic_replay_through_step_scores_one_and_tracks_perfectly():
    env = kinematic(HumanoidMimicEnv("walk", eval_metrics=True, root_weight=0.2), lambda t: np.zeros(3))
    infos = play(env, 60)  # through a cycle boundary (37 frames), from a start between frames
    assert env._start % 1 != 0
    for key in ("mpjpe", "mpjpe_global", "mpjpe_cycle", "pa_mpjpe", "accel_error"):
        assert max(info[key] for info in infos if key in info) < 1e-6, key
    for key in ("reward_pose", "reward_vel", "reward_end", "reward_com", "reward_root"):
        assert min(info[key] for info in infos) == pytest.approx(1.0, abs=1e-6), key
    assert not any(info["tracking_lost"] for info in infos)
    assert sum("accel_error" in info for info in infos) == 59  # from the second step on


def test_global_metrics_by_hand():
    """A constant displacement (0.3, 0.4, 0): global MPJPE 0.5 m exactly, root-relative and PA-MPJPE 0,
    acceleration error 0; a displacement 0.5 a t^2 (constant acceleration a): acceleration error |a|."""
    offset = np.array([0.3, 0.4, 0.0])
    env = kinematic(HumanoidMimicEnv("walk", eval_metrics=True, reference_sync="none"), lambda t: offset)
    infos = play(env, 10)
    for info in infos:
        assert info["mpjpe_global"] == pytest.approx(0.5, abs=1e-9) and info["mpjpe_cycle"] == info["mpjpe_global"]
        assert info["mpjpe"] < 1e-9 and info["pa_mpjpe"] < 1e-6
    assert max(info["accel_error"] for info in infos[2:]) < 1e-9  # from the third step: reset was not displaced
    a = np.array([0.0, 0.003, 0.004])  # metres per frame^2, |a| = 0.005
    env = kinematic(HumanoidMimicEnv("walk", eval_metrics=True), lambda t: 0.5 * a * t**2)
    errors = [info["accel_error"] for info in play(env, 10)[1:]]
    np.testing.assert_allclose(errors, 0.005, atol=1e-9)


def test_root_term_by_hand():
    """Only the pelvis position differs (d = 0.2 m): DeepMimic's root term is exp(-5 d^2)."""
    env = kinematic(HumanoidMimicEnv("walk", root_weight=0.2, reference_sync="none"), lambda t: np.array([0, 0.2, 0]))
    infos = play(env, 5)
    assert [info["reward_root"] for info in infos] == pytest.approx([np.exp(-5 * 0.04)] * 5, abs=1e-9)


@pytest.mark.parametrize("sync", ["cycle", "none"])
def test_drift_is_measured_globally_whether_or_not_the_reference_is_resynced(sync):
    """A character that falls behind the clip by 9.9 mm per frame: after 60 steps (2 s) it is 0.59 m behind.
    The global MPJPE sees all of it and PHC's criterion fails it; the cycle-relative error forgets it at each
    re-sync (37-frame cycles), and without re-sync equals the global one."""
    env = kinematic(HumanoidMimicEnv("walk", rsi=False, random_heading=False, reference_sync=sync),
                    lambda t: np.array([-0.0099 * t, 0.0, 0.0]))
    infos = play(env, 60)
    drift = 0.0099 * np.arange(1, 61)
    np.testing.assert_allclose([info["mpjpe_global"] for info in infos], drift, atol=1e-9)
    lost = [info["tracking_lost"] for info in infos]
    assert lost == list(drift > PHC_FAIL_DISTANCE)
    cycle_errors = np.array([info["mpjpe_cycle"] for info in infos])
    if sync == "cycle":
        np.testing.assert_allclose(cycle_errors[36:], drift[36:] - drift[36], atol=1e-9)  # re-synced at step 37
    else:
        np.testing.assert_allclose(cycle_errors, drift, atol=1e-9)


def test_mpenv_eval_counts_phc_successes():
    """EpisodeStats (mpenv-eval's report): replay succeeds, a 0.6 m drift fails."""
    for drift, expected in ((0.0, "2/2"), (0.6, "0/2")):
        env = kinematic(HumanoidMimicEnv("walk"), lambda t, d=drift: np.array([d * min(t / 30, 1), 0, 0]))
        stats = EpisodeStats(2)
        run_episodes(env, lambda obs: np.zeros(69), 2, seed=0, max_steps=40, on_step=stats.add)
        assert f"tracking success (PHC, mean global joint error never above 0.5 m, no fall): {expected}" in (
            stats.summary(300))


def test_mpenv_eval_reports_each_episodes_mean_and_the_worst():
    """Per-episode means by hand: the report's worst episode is the one a mean over all steps hides."""
    stats = EpisodeStats(3)
    for episode, errors in enumerate(([0.01, 0.03], [0.02, 0.02, 0.02, 0.02], [0.2])):
        for error in errors:
            stats.add(episode, {"mpjpe": error, "mpjpe_global": 2 * error})
    np.testing.assert_allclose(stats.episode_means("mpjpe"), [0.02, 0.02, 0.2])
    np.testing.assert_allclose(stats.episode_means("mpjpe_global"), [0.04, 0.04, 0.4])
    assert np.isnan(stats.episode_means("pa_mpjpe")).all()
    assert stats.info_means.means()["mpjpe"] == pytest.approx(0.32 / 7)  # 0.046: below the worst episode by far
    assert "worst episode's mean: mpjpe 0.2, mpjpe_global 0.4" in stats.summary(300)


def test_continuous_start_states_are_interpolated_and_consistent():
    """Between frames i and i+1: hinge angles and root position linear, root quaternion the slerp of the two
    frames (torch's independent slerp), velocity that of frame i (the finite difference the motion follows)."""
    env = HumanoidMimicEnv("run", random_heading=False)
    ref = env.reference
    for seed in range(5):
        env.reset(seed=seed)
        t = env._start
        i, alpha = int(t), t % 1.0
        assert 0 < alpha < 1
        a, b = ref.qpos[i], ref.qpos[i + 1] if i + 1 < ref.cycle_frames else None
        if b is None:
            continue
        qpos = env.data.qpos[:76]
        np.testing.assert_allclose(qpos[7:], (1 - alpha) * a[7:] + alpha * b[7:], atol=1e-9)
        np.testing.assert_allclose(qpos[:3], (1 - alpha) * a[:3] + alpha * b[:3], atol=1e-9)
        slerp = quaternion_slerp(torch.from_numpy(a[3:7]), torch.from_numpy(b[3:7]), alpha).numpy()
        assert min(np.abs(qpos[3:7] - slerp).max(), np.abs(qpos[3:7] + slerp).max()) < 1e-9
        np.testing.assert_allclose(env.data.qvel[:75], ref.qvel[i], atol=1e-12)
        # the velocity is the derivative of the interpolated motion: a finite difference in time agrees
        later = env.reference_state(t + 1e-4)["qpos"]
        velocity = np.empty(75)
        mujoco.mj_differentiatePos(env._character, velocity, 1e-4 / ref.fps, qpos.copy(), later)
        np.testing.assert_allclose(velocity, ref.qvel[i], atol=1e-6)


def test_random_heading_changes_the_world_but_not_what_the_policy_sees():
    """The same seed with and without random heading: same start time, the character turned by the reset's
    heading; and for any state of the character, turned likewise, the same observation and reward. (Stepping
    the two does not stay identical: MuJoCo's pyramidal friction cones have world-aligned axes.)"""
    turned, plain = HumanoidMimicEnv("walk"), HumanoidMimicEnv("walk", random_heading=False)
    obs_t, info_t = turned.reset(seed=1)
    obs_p, info_p = plain.reset(seed=1)
    assert info_t["frame"] == info_p["frame"] and abs(info_t["heading"]) > 1.0 and info_p["heading"] == 0.0
    yaw = lambda env: np.arctan2(env.data.xmat[env._body_ids[0]][3], env.data.xmat[env._body_ids[0]][0])  # noqa: E731
    assert np.angle(np.exp(1j * (yaw(turned) - yaw(plain) - info_t["heading"]))) == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(obs_t, obs_p, atol=1e-9)
    rng = np.random.default_rng(0)
    for _ in range(5):  # off-reference states: the plain one, and the same state turned with the reference
        qpos, qvel = plain.data.qpos.copy(), plain.data.qvel.copy()
        qpos[7:] += rng.normal(0.0, 0.2, 69)
        qpos[:3] += rng.normal(0.0, 0.1, 3)
        qvel += rng.normal(0.0, 0.5, 75)
        plain.set_state(qpos, qvel)
        turned_qpos, turned_qvel = qpos.copy(), qvel.copy()
        turned_qpos[:3] = turned._global.turn @ qpos[:3] + turned._global.origin
        mujoco.mju_mulQuat(turned_qpos[3:7], turned._global.quat, qpos[3:7].copy())
        turned_qvel[:3] = turned._global.turn @ qvel[:3]
        turned.set_state(turned_qpos, turned_qvel)
        time = plain._start + 3.0
        reward_p, info_p = plain._reward(plain.reference_state(time))
        reward_t, info_t = turned._reward(turned.reference_state(time))
        assert reward_t == pytest.approx(reward_p, abs=1e-9) and reward_p < 0.9
        assert info_t["mpjpe_global"] == pytest.approx(info_p["mpjpe_global"], abs=1e-9)
        np.testing.assert_allclose(turned._observation(turned.reference_state(time)),
                                   plain._observation(plain.reference_state(time)), atol=1e-9)


def test_bad_tracking_options_are_clear_errors():
    with pytest.raises(ValueError, match="root_weight and root_scale"):
        HumanoidMimicEnv("walk", root_weight=-1.0)


def test_step_sync_follows_the_characters_pelvis_and_heading():
    """reference_sync="step": a character that plays the clip's poses while turning 3 degrees per step and
    sliding sideways 2 cm per step scores imitation 1 (pose and style only), while the global MPJPE sees it
    leave the clip's path."""
    env = HumanoidMimicEnv("walk", reference_sync="step", random_heading=False)

    def teleport(ctrl: np.ndarray, n_frames: int) -> None:
        t = env._frame + 1
        base = env._reference_at(env._start + t, kinematics=False)
        pelvis = base["qpos"][:3]
        placed = yaw_placement(np.radians(3.0) * t, pelvis, pelvis + [0.0, 0.02 * t, 0.0])
        qpos, qvel = base["qpos"].copy(), base["qvel"].copy()
        qpos[:3] = placed.turn @ pelvis + placed.origin
        mujoco.mju_mulQuat(qpos[3:7], placed.quat, base["qpos"][3:7].copy())
        qvel[:3] = placed.turn @ qvel[:3]
        env.set_state(qpos, qvel)

    env.do_simulation = teleport
    infos = play(env, 30)
    for info in infos:
        assert info["mpjpe"] < 1e-9 and info["mpjpe_cycle"] < 1e-9
        for key in ("reward_pose", "reward_vel", "reward_end", "reward_com"):
            assert info[key] == pytest.approx(1.0, abs=1e-9), key
    assert infos[-1]["mpjpe_global"] > 0.5
