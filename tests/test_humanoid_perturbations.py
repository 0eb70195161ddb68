"""Pushes and action noise on the humanoid, and mpenv-eval's survival and recovery report."""

import mujoco
import numpy as np
import pytest

from agents import evaluate
from agents.evaluate import EpisodeStats
from mpenv.humanoid import shipped_policy
from mpenv.humanoid.env import HumanoidMimicEnv


def momentum_change_of_a_push(direction: float | None, seed: int = 0) -> np.ndarray:
    """Whole-body linear momentum after 12 steps in the air with a 100 N, 0.2 s push, minus without it."""
    momenta = []
    for force in (100.0, 0.0):
        env = HumanoidMimicEnv("walk", push_force=force, push_at=0.1, push_direction=direction,
                               early_termination=False)
        env.reset(seed=seed)
        qpos, qvel = env.data.qpos.copy(), env.data.qvel.copy()
        qpos[2] += 20.0  # far above the floor: no contact, only gravity, the joints and the push act
        env.set_state(qpos, qvel)
        pushed = [env.step(np.zeros(69))[4]["pushed"] for _ in range(12)]
        mujoco.mj_subtreeVel(env.model, env.data)
        mass = env.model.body_subtreemass[env._body_ids[0]]
        momenta.append(mass * env.data.subtree_linvel[env._body_ids[0]].copy())
        if force:
            assert pushed == [False, False, False] + [True] * 6 + [False] * 3  # steps 3-8: 0.1 s on, 0.2 s long
    return momenta[0] - momenta[1]


def test_a_push_adds_force_times_duration_to_the_momentum():
    change = momentum_change_of_a_push(direction=0.0)
    # closed form 100 N x 0.2 s = 20 N s, up to about 1e-4: the joints' armature (rotor inertia outside the
    # bodies' masses, there for the stiff PD of light bodies) keeps the bodies' momentum from being exactly conserved
    assert np.linalg.norm(change) == pytest.approx(100.0 * 0.2, rel=1e-3)
    assert abs(change[2]) < 0.01  # horizontal


@pytest.mark.parametrize("degrees", [0.0, 90.0, 180.0, -90.0])
def test_push_direction_is_relative_to_the_characters_facing_at_the_push(degrees):
    env = HumanoidMimicEnv("walk", push_force=300.0, push_at=0.1, push_direction=degrees)
    env.reset(seed=3)
    for _ in range(3):
        env.step(np.zeros(69))
    pelvis = env.data.xmat[env._body_ids[0]]
    angle = np.arctan2(pelvis[3], pelvis[0]) + np.radians(degrees)
    env.step(np.zeros(69))
    np.testing.assert_allclose(env.data.xfrc_applied[env._body_ids[0]],
                               [300 * np.cos(angle), 300 * np.sin(angle), 0, 0, 0, 0], atol=1e-9)


def test_periodic_pushes_and_reset_clears_them():
    env = HumanoidMimicEnv("walk", push_force=50.0, push_at=0.0, push_every=0.5, push_duration=0.1,
                           early_termination=False)
    env.reset(seed=0)
    pushed = [env.step(np.zeros(69))[4]["pushed"] for _ in range(31)]
    assert [i for i, p in enumerate(pushed) if p] == [0, 1, 2, 15, 16, 17, 30]
    env.reset(seed=1)
    assert not env.data.xfrc_applied.any()


def test_action_noise_is_gaussian_with_the_given_sigma(monkeypatch):
    env = HumanoidMimicEnv("walk", action_noise=0.1, early_termination=False)
    seen = []
    real = env._pd_targets
    monkeypatch.setattr(env, "_pd_targets", lambda action: seen.append(action) or real(action))
    env.reset(seed=0)
    for _ in range(50):
        env.step(np.zeros(69))
    noise = np.concatenate(seen)
    assert abs(noise.std() - 0.1) < 0.005 and abs(noise.mean()) < 0.005  # 3450 draws, clipping to [-1, 1] is rare


def test_bad_perturbations_are_clear_errors():
    with pytest.raises(ValueError, match="push_force"):
        HumanoidMimicEnv("walk", push_force=-5.0)
    with pytest.raises(ValueError, match="push_every"):
        HumanoidMimicEnv("walk", push_force=5.0, push_every=0.1, push_duration=0.2)
    with pytest.raises(ValueError, match="push_direction"):
        HumanoidMimicEnv("walk", push_direction=float("nan"))


def test_recovery_report_by_hand():
    """Episode 0: pushed at steps 1-2, MPJPE under 5 cm again at step 6 (3 steps = 0.1 s after the push's
    last step); episode 1: pushed and fell; episode 2: pushed, never recovered."""
    stats = EpisodeStats(3)
    for mpjpe, pushed in [(0.01, False), (0.02, True), (0.09, True), (0.08, False), (0.07, False), (0.03, False)]:
        stats.add(0, {"mpjpe": mpjpe, "pushed": pushed, "fallen": False})
    for mpjpe, pushed, fallen in [(0.02, True, False), (0.04, False, False), (0.5, False, False),
                                  (0.6, False, True)]:
        stats.add(1, {"mpjpe": mpjpe, "pushed": pushed, "fallen": fallen})
    for _ in range(4):
        stats.add(2, {"mpjpe": 0.2, "pushed": _ == 0, "fallen": False})
    assert stats.recovery_summary() == ("pushes: survived 2/3 pushed episodes; tracking recovered "
                                        "(MPJPE < 5 cm, no fall) in 1/3, 0.10 s after the push (median; max 0.10 s)")
    np.testing.assert_array_equal(stats.recovery_seconds(), [0.1, np.nan, np.nan])


def test_robustness_benchmark_reports_every_direction_and_the_noise(capsys, benchmark_script):
    """benchmarks/humanoid_robustness.py on the shipped walk: a 1 N push (nothing, for a 60 kg body) is survived and
    tracking stays within 5 cm; rows come in the order asked."""
    bench = benchmark_script("humanoid_robustness")
    bench.main([str(shipped_policy("walk")), "--episodes", "1", "--push", "1", "--directions", "0,-90",
                "--action-noise", "0.05"])
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines[2:5]]
    assert [row[:3] for row in rows] == [["push", "+0", "deg"], ["push", "-90", "deg"], ["action", "noise", "0.05"]]
    assert rows[0][3] == rows[1][3] == "1/1" and rows[0][4] == rows[1][4] == "1/1", lines
    assert rows[2][3] == "1/1", lines
    with pytest.raises(SystemExit):
        bench.main([str(shipped_policy("walk")), "--directions", "left"])


def test_mpenv_eval_pushes_the_shipped_walk(capsys):
    assert evaluate.main([str(shipped_policy("walk")), "--episodes", "2", "--push", "100", "--push-direction",
                          "180", "--action-noise", "0.05"]) == 0
    report = capsys.readouterr().out
    assert "pushes: survived" in report and "pa_mpjpe" in report and "tracking success (PHC" in report
    assert evaluate.main([str(shipped_policy("walk")), "--episodes", "1", "--max-episode-steps", "40"]) == 0
    assert "episode length 40.0 (min 40, max 40), 1.000 of the limit 40" in capsys.readouterr().out
    assert evaluate.main([str(shipped_policy("walk")), "--max-episode-steps", "0"]) == 2
    # --env-kwargs changes the run's env for this evaluation: here the clip, to a non-cyclic one of 8 s
    assert evaluate.main([str(shipped_policy("walk")), "--episodes", "1", "--env-kwargs", '{"motion": "cmu_walk"}',
                          "--max-episode-steps", "5"]) == 0
    assert evaluate.main([str(shipped_policy("walk")), "--env-kwargs", "[1]"]) == 2
    assert "--env-kwargs must be a JSON object" in capsys.readouterr().err


def test_mpenv_eval_refuses_perturbations_an_env_cannot_take(tmp_path, capsys):
    from agents import train

    assert train.main(["q-learning", "--env", "mpenv/FrozenLake4x4-v0", "--logdir", str(tmp_path),
                       "--total-steps", "100", "--eval-episodes", "0"]) == 0
    run_dir = next(tmp_path.iterdir())
    assert evaluate.main([str(run_dir), "--push", "100"]) == 2
    assert "--push: mpenv/FrozenLake4x4-v0 takes no push_force" in capsys.readouterr().err
    assert evaluate.main([str(shipped_policy("walk")), "--push", "100", "--push-direction", "left"]) == 2
    assert "--push-direction must be degrees or 'random'" in capsys.readouterr().err
