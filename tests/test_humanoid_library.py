"""mpenv/HumanoidMimicLibrary-v0: every clip and mirror replays exactly, mirrors are reflections, clip sampling
(uniform and failure-weighted) against binomial bounds, user files, bad input, checkers, vector envs and a
PPO smoke run through the CLI."""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import mpenv  # noqa: F401  (registers the ids)
from agents import evaluate, train
from mpenv.humanoid.library import HumanoidMimicLibraryEnv
from mpenv.humanoid.mjcf import BODY_ORDER
from vision3d.body.clips import clip_names, load_clip
from vision3d.body.motion import Motion


@pytest.fixture(scope="module")
def library() -> HumanoidMimicLibraryEnv:
    return HumanoidMimicLibraryEnv()  # the registered default: every shipped clip and its mirror


def kinematic(env: HumanoidMimicLibraryEnv) -> HumanoidMimicLibraryEnv:
    """Make ``env.step`` put the character exactly on the global reference of the next time (no physics)."""

    def teleport(ctrl: np.ndarray, n_frames: int) -> None:
        state = env.reference_state(env._start + env._frame + 1)
        qpos = state["qpos"].copy()
        qpos[:3] -= env._placement.origin - env._global.origin  # undo any re-sync: the global reference
        env.set_state(qpos, state["qvel"])

    env.do_simulation = teleport
    return env


def binomial_bound(n: int, p: float, sigmas: float = 4.0) -> float:
    return sigmas * np.sqrt(n * p * (1 - p))


def test_the_default_library_is_every_shipped_clip_and_its_mirror(library):
    assert library.clip_names == [name for clip in clip_names() for name in (clip, f"{clip}_mirror")]
    assert library.future_frames == 3 and library.observation_space.shape == (292 + 3 * 72,)
    assert gym.spec("mpenv/HumanoidMimicLibrary-v0").max_episode_steps == 300


def test_every_clip_and_mirror_replays_with_reward_one_and_zero_error():
    env = kinematic(HumanoidMimicLibraryEnv(eval_metrics=True))
    for seed, name in enumerate(env.clip_names):
        _, info = env.reset(seed=seed, options={"clip": name})
        assert info["clip"] == name == env.clip and env.motion.name == name
        infos = []
        for _ in range(45):  # past the seam of the walk (37 frames) and the run (23)
            _, reward, terminated, truncated, info = env.step(np.zeros(69))
            infos.append(info)
            assert reward == pytest.approx(1.0, abs=1e-6) and not terminated, (name, info)
            if truncated:  # a non-cyclic clip started near its end
                break
        assert all(info["clip"] == name for info in infos)
        for key in ("mpjpe", "mpjpe_global", "mpjpe_cycle", "pa_mpjpe"):
            assert max(info[key] for info in infos) < 1e-6, (name, key)
        assert not any(info["tracking_lost"] for info in infos), name


def test_a_mirrored_clip_is_the_original_reflected_across_the_sagittal_plane(library):
    """Independent of Motion.mirror: reflect the original reference's bodies in numpy (y -> -y: the clips face
    +x, so left is +y) and swap every left_* body with its right_* twin."""
    swap = [BODY_ORDER.index(b.replace("left_", "@").replace("right_", "left_").replace("@", "right_"))
            for b in BODY_ORDER]
    reflect = np.array([1.0, -1.0, 1.0])
    for clip in clip_names():
        original = library.references[library.clip_names.index(clip)]
        mirror = library.references[library.clip_names.index(f"{clip}_mirror")]
        np.testing.assert_allclose(mirror.body_pos, original.body_pos[:, swap] * reflect, atol=1e-9, err_msg=clip)
        np.testing.assert_allclose(mirror.com, original.com * reflect, atol=1e-9, err_msg=clip)
        np.testing.assert_allclose(mirror.cycle_shift, original.cycle_shift * reflect, atol=1e-9, err_msg=clip)
        assert mirror.cyclic == original.cyclic and mirror.n_frames == original.n_frames


def test_the_observation_has_the_same_phase_for_every_clip_and_the_future_frames_tell_them_apart(library):
    """From the same seed (same start time and heading), the walk and its mirror share the phase, while their
    future reference frames (and the current bodies) are each other's reflections in the heading frame."""
    swap = [BODY_ORDER.index(b.replace("left_", "@").replace("right_", "left_").replace("@", "right_"))
            for b in BODY_ORDER]
    reflect = np.array([1.0, -1.0, 1.0])
    walk, _ = library.reset(seed=5, options={"clip": "walk"})
    mirror, _ = library.reset(seed=5, options={"clip": "walk_mirror"})
    np.testing.assert_allclose(mirror[289:292], walk[289:292])  # phase (phi, sin, cos): clip-agnostic
    bodies = walk[1:70].reshape(23, 3)  # the non-root bodies relative to the pelvis
    np.testing.assert_allclose(mirror[1:70].reshape(23, 3), bodies[np.array(swap[1:]) - 1] * reflect, atol=1e-9)
    future = walk[292:].reshape(3, 24, 3)  # three future frames of the 24 bodies
    np.testing.assert_allclose(mirror[292:].reshape(3, 24, 3), future[:, swap] * reflect, atol=1e-9)
    assert np.abs(mirror[292:] - walk[292:]).max() > 0.1  # the clips differ where the phase does not


def test_uniform_sampling_hits_every_clip_within_a_binomial_bound(library):
    n = 1200
    picks = [library.reset(seed=seed)[1]["clip"] for seed in range(n)]
    counts = np.array([picks.count(name) for name in library.clip_names])
    p = 1 / len(library.clip_names)
    assert counts.sum() == n and np.all(counts > 0)
    assert np.all(np.abs(counts - n * p) < binomial_bound(n, p)), counts
    assert np.all(library.clip_episodes == 0)  # resets without a step record nothing


def test_failure_weighted_sampling_favours_failing_clips_by_the_formula():
    env = HumanoidMimicLibraryEnv(("walk", "run"), sampling="failure")
    assert env.clip_names == ["walk", "walk_mirror", "run", "run_mirror"]
    np.testing.assert_allclose(env.clip_probabilities(), 0.25)  # no episodes yet: uniform
    for _ in range(10):  # injected by hand: the run fails every episode, the others never
        env.record_episode("run", failed=True)
        env.record_episode("walk", failed=False)
    f_run = 1 - 0.9**10  # f <- f + 0.1 (1 - f), ten times from 0
    np.testing.assert_allclose(env.failure_rates, [0.0, 0.0, f_run, 0.0], atol=1e-12)
    expected = np.array([0.1, 0.1, f_run + 0.1, 0.1]) / (f_run + 0.4)
    np.testing.assert_allclose(env.clip_probabilities(), expected, atol=1e-12)
    assert expected[2] / expected[0] == pytest.approx((f_run + 0.1) / 0.1)  # about 7.5 times as often
    n = 2000
    picks = [env.reset(seed=seed)[1]["clip"] for seed in range(n)]
    for name, p in zip(env.clip_names, expected, strict=True):
        assert abs(picks.count(name) - n * p) < binomial_bound(n, p), (name, picks.count(name), n * p)


def test_real_episodes_update_the_failure_rates_once_per_episode():
    env = HumanoidMimicLibraryEnv(("run",), mirrors=False, sampling="failure", early_termination=False)
    env.reset(seed=0)
    lost = 0
    for _ in range(60):  # a zero action (PD targets mid-range) falls within a second or two
        lost += env.step(np.zeros(69))[4]["tracking_lost"]
    assert lost > 1 and env.clip_episodes[0] == 1 and env.failure_rates[0] == pytest.approx(0.1)
    env.reset(seed=1)  # the fall was recorded when it happened, not again at reset
    assert env.clip_episodes[0] == 1
    kinematic(env)
    for _ in range(5):
        env.step(np.zeros(69))
    env.reset(seed=2)  # an episode that never lost tracking: a success, recorded at the next reset
    assert env.clip_episodes[0] == 2 and env.failure_rates[0] == pytest.approx(0.1 * 0.9)


def test_user_files_and_motions_join_the_library(tmp_path):
    walk = load_clip("walk")
    path = tmp_path / "my_walk.npz"
    Motion(walk.fps, walk.poses[:20], walk.trans[:20], name="my_walk").save(path)  # non-cyclic, 20 frames
    unnamed = Motion(walk.fps, walk.poses, walk.trans, cyclic=True)
    env = kinematic(HumanoidMimicLibraryEnv(("jump", str(path), unnamed), mirrors=True))
    assert env.clip_names == ["jump", "jump_mirror", "my_walk", "my_walk_mirror", "motion2", "motion2_mirror"]
    assert not env.references[2].cyclic and env.references[2].n_frames == 19  # 30.0012 fps resampled to 30
    for name in ("my_walk", "my_walk_mirror", "motion2"):
        env.reset(seed=0, options={"clip": name})
        _, reward, _, _, info = env.step(np.zeros(69))
        assert reward == pytest.approx(1.0, abs=1e-6) and info["clip"] == name


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"motions": ("walk", "moonwalk")}, "unknown motion 'moonwalk'"),
    ({"motions": ()}, "motions is empty"),
    ({"motions": "walk"}, "list of clips"),
    ({"motions": ("walk", "walk")}, r"unique.*\['walk', 'walk_mirror'\]"),
    ({"motion": "walk"}, "motions="),
    ({"sampling": "hard"}, "sampling must be one of"),
    ({"failure_floor": 0.0}, "failure_floor"),
    ({"failure_smoothing": 1.5}, "failure_smoothing"),
])  # fmt: skip
def test_bad_input_is_a_clear_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HumanoidMimicLibraryEnv(**kwargs)


def test_an_unknown_clip_at_reset_is_a_clear_value_error(library):
    with pytest.raises(ValueError, match="unknown clip 'moonwalk'.*walk_mirror"):
        library.reset(seed=0, options={"clip": "moonwalk"})


def test_cartwheel_clips_allow_the_hands_on_the_floor(library):
    hand = library.model.body("left_hand").id
    for name in library.clip_names:
        library.reset(seed=0, options={"clip": name})
        assert library._allowed[hand] == name.startswith("cartwheel"), name


def test_gymnasium_and_sb3_checkers_pass():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("mpenv/HumanoidMimicLibrary-v0", motions=("walk", "cartwheel"))
    with pytest.warns(UserWarning, match="infinity"):  # unbounded observations are intended
        check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(HumanoidMimicLibraryEnv(("run",)), warn=False)


def test_rgb_array_rendering_draws_the_ghost_of_the_sampled_clip():
    env = HumanoidMimicLibraryEnv(("walk",), render_mode="rgb_array", width=64, height=64)
    env.reset(seed=0, options={"clip": "walk_mirror"})
    env.step(np.zeros(69))
    frame = env.render()
    assert frame.shape == (64, 64, 3) and frame.std() > 5
    np.testing.assert_allclose(env.data.qpos[76:], env.reference_state(env._start + 1)["qpos"])
    env.close()


def test_async_vector_env_steps_and_names_each_envs_clip():
    envs = gym.make_vec("mpenv/HumanoidMimicLibrary-v0", num_envs=2, vectorization_mode="async",
                        motions=("walk", "run"))
    try:
        obs, info = envs.reset(seed=0)
        assert obs.shape == (2, 508) and set(info["clip"]) <= {"walk", "walk_mirror", "run", "run_mirror"}
        for _ in range(5):
            obs, reward, _, _, info = envs.step(np.zeros((2, 69)))
            assert np.all(np.isfinite(obs)) and reward.shape == (2,) and len(info["clip"]) == 2
    finally:
        envs.close()


def test_a_ppo_smoke_run_writes_a_run_that_mpenv_eval_reads(tmp_path, capsys):
    assert train.main(["ppo", "--env", "mpenv/HumanoidMimicLibrary-v0", "--logdir", str(tmp_path),
                       "--total-steps", "512", "--n-envs", "1", "--n-steps", "256", "--batch-size", "64",
                       "--n-epochs", "1", "--hidden-sizes", "16,16", "--vec", "dummy", "--eval-every", "0",
                       "--eval-every-episodes", "1", "--eval-episodes", "1", "--seed", "3"]) == 0
    (run_dir,) = [p for p in Path(tmp_path).iterdir() if p.is_dir()]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["env_id"] == "mpenv/HumanoidMimicLibrary-v0"
    capsys.readouterr()
    assert evaluate.main([str(run_dir), "--episodes", "2", "--seed", "0"]) == 0
    out = capsys.readouterr().out
    assert "mpenv/HumanoidMimicLibrary-v0" in out and "tracking success" in out
