"""Reference quality: the Euler branch of the hinge angles, the shipped clips against the joint limits, the report.

The branch choice (:func:`continuous_euler`) is checked against a brute-force search over both branches and every
2 pi shift in {-2..2}^3; the shipped clips against the issue's bars (peak hinge rate below 30 rad/s, clamping to
the joint limits costing below 5 mm MPJPE); kinematic replay of the clips whose angles the branch choice changed.
"""

import itertools
import subprocess
import sys

import mujoco
import numpy as np
import pytest
import torch

from mpenv.humanoid.env import HumanoidMimicEnv
from mpenv.humanoid.mjcf import HINGE_NAMES, POLICY_HZ, build_humanoid_xml
from mpenv.humanoid.reference import (
    build_reference,
    continuous_euler,
    hinge_limits,
    main,
    motion_qpos,
    reference_quality,
)
from vision3d.body.clips import clip_names, load_clip
from vision3d.body.motion import Motion
from vision3d.body.retarget import smpl_rest_joints
from vision3d.body.rotations import axis_angle_to_matrix, euler_to_matrix, matrix_to_euler
from vision3d.body.skeleton import JOINT_INDEX

SHIFTS = 2 * np.pi * np.array(list(itertools.product(range(-2, 3), repeat=3)), dtype=float)  # (125, 3)


def brute_force_branches(angles: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """One joint's ``(T, 3)`` angles by exhaustive search: 2 branches x 125 shifts per frame, the rule spelled out.

    Unwrapped angles can wander many turns from zero (a random rotation sequence has no limits), so the shifts
    ``2 pi k``, ``k`` in {-2..2}^3, are centred on the previous frame's turn count (zero for frame 0).
    """
    a, b, c = angles.T
    flipped = np.stack([a + np.pi, np.pi - b, c + np.pi], axis=-1)
    out = []
    for t in range(len(angles)):
        centre = 2 * np.pi * np.round(out[-1] / (2 * np.pi)) if out else 0.0
        candidates = np.concatenate([angles[t] + centre + SHIFTS, flipped[t] + centre + SHIFTS])  # (250, 3)
        if t == 0:
            violation = (np.maximum(lower - candidates, 0) + np.maximum(candidates - upper, 0)).sum(-1)
            size = (candidates**2).sum(-1)
            best = min(range(len(candidates)), key=lambda i: (round(violation[i], 9), size[i]))
        else:
            best = int(np.argmin(((candidates - out[-1]) ** 2).sum(-1)))
        out.append(candidates[best])
    return np.array(out)


def random_rotation_walk(rng: np.random.Generator, frames: int, joints: int, step: float) -> np.ndarray:
    """``(T, J, 3, 3)``: a random start, then random axis-angle increments of scale ``step`` (a large step gives
    nearly independent rotations)."""
    start = axis_angle_to_matrix(torch.from_numpy(rng.normal(0, 2.0, (joints, 3))))
    steps = axis_angle_to_matrix(torch.from_numpy(rng.normal(0, step, (frames - 1, joints, 3))))
    out = [start]
    for increment in steps:
        out.append(out[-1] @ increment)
    return torch.stack(out).numpy()


@pytest.mark.parametrize("seed, step", [(0, 0.05), (1, 0.2), (2, 0.6), (3, 3.0)])
def test_branch_choice_equals_brute_force_nearest_branch(seed, step):
    rng = np.random.default_rng(seed)
    matrices = random_rotation_walk(rng, frames=120, joints=4, step=step)
    principal = matrix_to_euler(torch.from_numpy(matrices), "XYZ").numpy()
    lower, upper = -rng.uniform(0.1, np.pi, (4, 3)), rng.uniform(0.1, np.pi, (4, 3))
    chosen = continuous_euler(principal, lower, upper)
    for j in range(4):
        np.testing.assert_allclose(chosen[:, j], brute_force_branches(principal[:, j], lower[j], upper[j]), atol=1e-9)
    np.testing.assert_allclose(euler_to_matrix(torch.from_numpy(chosen), "XYZ").numpy(), matrices, atol=1e-9)


def test_branch_choice_with_the_humanoid_limits_equals_brute_force():
    rng = np.random.default_rng(4)
    matrices = random_rotation_walk(rng, frames=60, joints=23, step=0.3)
    principal = matrix_to_euler(torch.from_numpy(matrices), "XYZ").numpy()
    lower, upper = hinge_limits()
    chosen = continuous_euler(principal, lower, upper)
    for j in range(23):
        np.testing.assert_allclose(chosen[:, j], brute_force_branches(principal[:, j], lower[j], upper[j]), atol=1e-9)


def knee_motion(flexion_deg: np.ndarray) -> Motion:
    """Both knees flexed by ``flexion_deg`` per frame; canonical x (the body's left) is world y, the knee's axis."""
    poses = np.zeros((len(flexion_deg), 24, 3))
    for side in ("left", "right"):
        poses[:, JOINT_INDEX[f"{side}_knee"], 0] = np.radians(flexion_deg)
    return Motion(30.0, poses, np.zeros((len(flexion_deg), 3)))


@pytest.mark.parametrize("flexion", [np.linspace(0.0, 135.0, 40), np.array([120.0, 125.0, 110.0])])
def test_knee_flexed_past_90_is_one_positive_y_angle(flexion):
    """Principal Euler angles give (180, 180 - flexion, 180) past 90 deg; the reference keeps x = z = 0 and
    y = flexion, whether it reaches 90 deg continuously or starts beyond it (the limit-aware first frame)."""
    qpos = motion_qpos(knee_motion(flexion), smpl_rest_joints())
    for side in ("left", "right"):
        knee = np.degrees(qpos[:, [7 + HINGE_NAMES.index(f"{side}_knee_{axis}") for axis in "xyz"]])
        np.testing.assert_allclose(knee[:, 1], flexion, atol=1e-6)
        np.testing.assert_allclose(knee[:, [0, 2]], 0.0, atol=1e-6)


@pytest.fixture(scope="module")
def qualities() -> dict:
    model = mujoco.MjModel.from_xml_string(build_humanoid_xml())
    rest = smpl_rest_joints()
    return {name: reference_quality(build_reference(load_clip(name), model, rest, POLICY_HZ), model)
            for name in clip_names()}  # fmt: skip


@pytest.mark.parametrize("clip", clip_names())
def test_peak_hinge_rate_is_below_30_rad_per_s(qualities, clip):
    """cmu_walk passes because the env low-passes its 60 Hz frames before sampling them at 30 Hz (measured 28.6 rad/s,
    34.3 sampled without it: a wrist flick and a toe slap of about 60 deg per frame in the source data, and the
    shoulder and hip chains near their gimbal locks, where the XYZ split turns fast on either branch)."""
    assert qualities[clip].peak_rate < 30.0, qualities[clip]


@pytest.mark.parametrize("clip", clip_names())
def test_clamping_to_the_joint_limits_costs_below_5_mm(qualities, clip):
    quality = qualities[clip]
    assert quality.clamp_mpjpe_mean < 0.005, quality
    assert 0.0 <= quality.outside_fraction <= 1.0 and quality.frames > 0


def test_quality_of_a_clip_inside_the_limits_is_exactly_zero_cost(qualities):
    walk = qualities["walk"]
    assert walk.outside_fraction == 0.0 and walk.clamp_mpjpe_max == 0.0
    assert set(walk.outside_by_joint.values()) == {0.0}


def test_shipped_walk_reference_is_unchanged_by_the_branch_choice():
    """The walk never bends a knee past 90 deg: its hinge angles equal the principal split (policies trained on it
    keep their reference)."""
    motion = load_clip("walk").resample(POLICY_HZ)
    qpos = motion_qpos(motion, smpl_rest_joints())
    rotations = axis_angle_to_matrix(torch.from_numpy(motion.poses))
    from mpenv.humanoid.mjcf import ACTUATED_SMPL_INDEX, SMPL_TO_WORLD

    w = torch.tensor(SMPL_TO_WORLD)
    principal = matrix_to_euler(w @ rotations[:, list(ACTUATED_SMPL_INDEX)] @ w.T, "XYZ").numpy()
    np.testing.assert_allclose(qpos[:, 7:], principal.reshape(len(qpos), -1), atol=1e-12)


@pytest.mark.parametrize("clip", ["run", "jump", "cmu_walk"])
def test_kinematic_replay_of_the_rebranched_clips_scores_one_and_zero_error(clip):
    env = HumanoidMimicEnv(clip)
    cycle = env.reference.cycle_frames
    for frame in range(0, cycle, max(cycle // 12, 1)):
        state = env.reference_state(frame)
        env.set_state(state["qpos"], state["qvel"])
        env._start, env._frame = frame, 0
        reward, info = env._reward(state)
        assert reward == pytest.approx(1.0, abs=1e-6)
        errors = {key: value for key, value in info.items() if "mpjpe" in key}
        assert errors and all(value < 1e-6 for value in errors.values()), errors


def test_report_cli_prints_every_clip(capsys):
    assert main(["--report"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 + len(clip_names())
    for name, line in zip(clip_names(), lines[1:], strict=True):
        assert line.split()[0] == name and "rad/s" in line


def test_report_cli_help_and_bad_input():
    run = [sys.executable, "-m", "mpenv.humanoid.reference"]
    helped = subprocess.run([*run, "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "--report" in helped.stdout and "MPJPE" in helped.stdout
    bad = subprocess.run([*run, "--report", "moonwalk"], capture_output=True, text=True)
    assert bad.returncode == 2 and not bad.stdout and len(bad.stderr.strip().splitlines()) == 1
    assert "moonwalk" in bad.stderr and "CLIP" in bad.stderr
    idle = subprocess.run(run, capture_output=True, text=True)
    assert idle.returncode == 2 and "--report" in idle.stderr and len(idle.stderr.strip().splitlines()) == 1
