"""Tests of vision3d.body.fitting: projection, the robust penalty and priors, (PA-)MPJPE against an independent
Procrustes, input validation, and SMPLify-style fitting recovering a known pose of a SYNTHETIC stick-figure body
model (the "mesh" is the 24 joints plus points along the bones, built here: no licensed SMPL data)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from vision3d.body.fitting import (
    FitConfig,
    PerspectiveCamera,
    WeakPerspectiveCamera,
    default_pose_prior_std,
    depth_hypotheses,
    fit_to_keypoints,
    joint_limit_prior,
    mpjpe,
    pa_mpjpe,
    procrustes_align,
    project,
    robust_penalty,
)
from vision3d.body.model import BodyModel
from vision3d.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from vision3d.body.skeleton import JOINT_INDEX, JOINT_NAMES, N_JOINTS, PARENTS

F64 = torch.float64

# A plausible adult T-pose in SMPL's frame (metres; y up, x to the body's left, z forward, pelvis at the origin).
REST_JOINTS = {
    "pelvis": (0.0, 0.0, 0.0),
    "left_hip": (0.09, -0.08, 0.0),
    "right_hip": (-0.09, -0.08, 0.0),
    "spine1": (0.0, 0.10, -0.02),
    "left_knee": (0.09, -0.53, 0.01),
    "right_knee": (-0.09, -0.53, 0.01),
    "spine2": (0.0, 0.22, -0.01),
    "left_ankle": (0.09, -0.95, -0.03),
    "right_ankle": (-0.09, -0.95, -0.03),
    "spine3": (0.0, 0.30, 0.0),
    "left_foot": (0.10, -1.0, 0.10),
    "right_foot": (-0.10, -1.0, 0.10),
    "neck": (0.0, 0.50, -0.01),
    "left_collar": (0.07, 0.42, -0.01),
    "right_collar": (-0.07, 0.42, -0.01),
    "head": (0.0, 0.62, 0.03),
    "left_shoulder": (0.17, 0.45, -0.02),
    "right_shoulder": (-0.17, 0.45, -0.02),
    "left_elbow": (0.44, 0.45, -0.03),
    "right_elbow": (-0.44, 0.45, -0.03),
    "left_wrist": (0.69, 0.45, -0.02),
    "right_wrist": (-0.69, 0.45, -0.02),
    "left_hand": (0.77, 0.45, -0.02),
    "right_hand": (-0.77, 0.45, -0.02),
}
FOCAL, CENTRE = 1000.0, (256.0, 256.0)  # a 512 x 512 image


def stick_figure(points_per_bone: int = 6) -> BodyModel:
    """Vertices: the 24 joints (J_regressor one-hot on them) and points along each bone, skinned rigidly to the
    bone's parent joint. No pose correctives; 10 smooth shape directions (heights, limb lengths, widths)."""
    joints = np.array([REST_JOINTS[name] for name in JOINT_NAMES])
    t = (np.arange(points_per_bone) + 1.0) / (points_per_bone + 1.0)
    bones = [joints[PARENTS[j]] + t[:, None] * (joints[j] - joints[PARENTS[j]]) for j in range(1, N_JOINTS)]
    vertices = np.concatenate([joints, *bones])
    owner = np.concatenate([np.arange(N_JOINTS), np.repeat(PARENTS[1:], points_per_bone)])
    n = len(vertices)
    weights = np.zeros((n, N_JOINTS))
    weights[np.arange(n), owner] = 1.0
    regressor = np.zeros((N_JOINTS, n))
    regressor[np.arange(N_JOINTS), np.arange(N_JOINTS)] = 1.0
    x, y, _ = vertices.T
    shapedirs = np.zeros((n, 3, 10))
    shapedirs[:, 1, 0] = 0.04 * y  # height
    shapedirs[:, 0, 1] = 0.04 * np.sign(x) * np.clip(np.abs(x) - 0.17, 0.0, None)  # arm length
    shapedirs[:, 1, 2] = 0.04 * np.clip(y + 0.08, None, 0.0)  # leg length
    shapedirs[:, 0, 3] = 0.03 * x * (y > 0.3)  # shoulder width
    shapedirs[:, 0, 4] = 0.03 * x * (y < -0.08)  # hip width
    shapedirs[:, 1, 5] = 0.03 * np.clip(y, 0.0, None)  # torso length
    shapedirs[:, 2, 6] = 0.02 * y  # lean
    shapedirs[:, 0, 7] = 0.02 * x  # width
    shapedirs[:, 2, 8] = 0.02 * np.abs(x)  # arms forward
    shapedirs[:, 1, 9] = 0.02 * x  # tilt
    return BodyModel.from_arrays(
        v_template=vertices,
        shapedirs=shapedirs,
        posedirs=np.zeros((207, n * 3)),
        J_regressor=regressor,
        weights=weights,
        parents=np.array(PARENTS),
        f=np.zeros((0, 3), dtype=np.int64),
        dtype=F64,
        device="cpu",
    )


@pytest.fixture(scope="module")
def model() -> BodyModel:
    return stick_figure()


def random_scene(model: BodyModel, seed: int, batch: int, noise: float = 1.5, dropped: int = 3):
    """Ground-truth joints [B, 24, 3] (camera frame) and noisy keypoints / confidences of a random pose ~3 m in
    front of the camera: ball joints ~ N(0, 0.2 rad), knees and elbows pure hinges bent naturally, body facing the
    camera (+- 0.3 rad of yaw), small random betas; `dropped` random joints per sample get confidence 0."""
    g = torch.Generator().manual_seed(seed)
    pose = 0.2 * torch.randn(batch, N_JOINTS - 1, 3, generator=g, dtype=F64)
    for name, axis, bend in (("left_knee", 0, 0.6), ("right_knee", 0, 0.6), ("left_elbow", 1, -0.8),
                             ("right_elbow", 1, 0.8)):  # fmt: skip
        flexion = pose[:, JOINT_INDEX[name] - 1, axis] + bend
        pose[:, JOINT_INDEX[name] - 1] = 0.0
        pose[:, JOINT_INDEX[name] - 1, axis] = flexion
    yaw = 0.3 * (2.0 * torch.rand(batch, generator=g, dtype=F64) - 1.0)
    turn = axis_angle_to_matrix(torch.stack([torch.zeros_like(yaw), yaw, torch.zeros_like(yaw)], -1))
    orient = matrix_to_axis_angle(axis_angle_to_matrix(torch.tensor([math.pi, 0.0, 0.0], dtype=F64)) @ turn)
    betas = 0.5 * torch.randn(batch, 10, generator=g, dtype=F64)
    transl = torch.cat(
        [
            0.2 * torch.randn(batch, 2, generator=g, dtype=F64),
            3.0 + 0.2 * torch.randn(batch, 1, generator=g, dtype=F64),
        ],
        dim=-1,
    )
    joints = model(betas=betas, global_orient=orient, body_pose=pose.reshape(batch, -1), transl=transl).joints
    camera = PerspectiveCamera(FOCAL, CENTRE)
    keypoints = project(joints, camera) + noise * torch.randn(batch, N_JOINTS, 2, generator=g, dtype=F64)
    confidences = torch.ones(batch, N_JOINTS, dtype=F64)
    for b in range(batch):
        confidences[b, torch.randperm(N_JOINTS, generator=g)[:dropped]] = 0.0
    return joints, keypoints, confidences, camera


# ---------------------------------------------------------------------------------------------------------------
# Projection


def test_project_perspective_by_hand() -> None:
    camera = PerspectiveCamera(focal=(800.0, 900.0), principal_point=(320.0, 240.0))
    points = torch.tensor([[[0.5, -0.2, 2.0], [0.0, 0.0, 4.0]]], dtype=F64)
    expected = torch.tensor([[[320.0 + 800.0 * 0.25, 240.0 - 900.0 * 0.1], [320.0, 240.0]]], dtype=F64)
    torch.testing.assert_close(project(points, camera), expected)


def test_project_weak_perspective_by_hand() -> None:
    points = torch.tensor([[[0.5, -0.2, 2.0]], [[1.0, 1.0, 9.0]]], dtype=F64)
    camera = WeakPerspectiveCamera(torch.tensor([100.0, 10.0]), torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    torch.testing.assert_close(project(points, camera), torch.tensor([[[51.0, -18.0]], [[13.0, 14.0]]], dtype=F64))


# ---------------------------------------------------------------------------------------------------------------
# Energy terms


@pytest.mark.parametrize("kind", ["gmof", "huber", "l2"])
def test_robust_penalty_is_quadratic_near_zero(kind: str) -> None:
    r = torch.tensor([1e-3, -1e-2, 0.1], dtype=F64)
    torch.testing.assert_close(robust_penalty(r, scale=10.0, kind=kind), r**2, rtol=1e-4, atol=0.0)


def test_robust_penalty_far_away() -> None:
    far = torch.tensor([1e3, 1e4, 1e5], dtype=F64)
    gmof = robust_penalty(far, scale=10.0, kind="gmof")
    assert bool((gmof < 100.0).all()) and gmof[-1] > 99.99  # bounded by scale^2, approaching it
    huber = robust_penalty(far, scale=10.0, kind="huber")
    torch.testing.assert_close(huber, 2.0 * 10.0 * far - 100.0)  # linear, slope 2 * scale
    with pytest.raises(ValueError):
        robust_penalty(far, scale=10.0, kind="cauchy")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        robust_penalty(far, scale=0.0)


def test_joint_limit_penalises_only_the_wrong_bend() -> None:
    pose = torch.zeros(2, 23, 3, dtype=F64)
    pose[0, JOINT_INDEX["left_knee"] - 1, 0] = 0.8  # natural: knee flexes about +x
    pose[0, JOINT_INDEX["left_elbow"] - 1, 1] = -0.8  # natural: left elbow flexes about -y
    pose[1, JOINT_INDEX["right_knee"] - 1, 0] = -0.5  # hyperextended
    pose[1, JOINT_INDEX["right_elbow"] - 1, 1] = -0.3  # the right elbow bent backwards
    torch.testing.assert_close(joint_limit_prior(pose.reshape(2, -1)), torch.tensor([0.0, 0.25 + 0.09], dtype=F64))
    std = default_pose_prior_std(F64)
    assert std.shape == (69,) and float(std[3 * (JOINT_INDEX["left_knee"] - 1)]) > float(std.min())
    assert depth_hypotheses().shape == (16, 69)


# ---------------------------------------------------------------------------------------------------------------
# Errors


def test_mpjpe_by_hand() -> None:
    pred = torch.zeros(1, 2, 3, dtype=F64)
    target = torch.tensor([[[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]], dtype=F64)
    torch.testing.assert_close(mpjpe(pred, target), torch.tensor([3.0], dtype=F64))


def test_pa_mpjpe_of_a_similar_copy_is_zero() -> None:
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.normal(size=(4, 24, 3)))
    rotations = torch.from_numpy(Rotation.random(4, random_state=1).as_matrix())
    scale = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=F64)[:, None, None]
    pred = scale * target @ rotations.transpose(-1, -2) + torch.from_numpy(rng.normal(size=(4, 1, 3)))
    assert float(mpjpe(pred, target).min()) > 0.1
    torch.testing.assert_close(pa_mpjpe(pred, target), torch.zeros(4, dtype=F64), atol=1e-10, rtol=0.0)


def test_pa_mpjpe_matches_scipy_procrustes() -> None:
    rng = np.random.default_rng(2)
    target = rng.normal(size=(3, 17, 3))
    rotations = Rotation.random(3, random_state=3).as_matrix()
    pred = 1.7 * target @ rotations.transpose(0, 2, 1) + 0.3 + rng.normal(scale=0.2, size=target.shape)
    expected = []
    for p, q in zip(pred, target, strict=True):
        p0, q0 = p - p.mean(0), q - q.mean(0)
        rotation, singular_sum = orthogonal_procrustes(p0, q0)  # min ||p0 R - q0||, R may not be a reflection here
        assert np.linalg.det(rotation) > 0
        aligned = singular_sum / (p0**2).sum() * p0 @ rotation + q.mean(0)
        expected.append(np.linalg.norm(aligned - q, axis=-1).mean())
    result = pa_mpjpe(torch.from_numpy(pred), torch.from_numpy(target))
    torch.testing.assert_close(result, torch.tensor(expected, dtype=F64))
    aligned = procrustes_align(torch.from_numpy(pred), torch.from_numpy(target))
    torch.testing.assert_close(mpjpe(aligned, torch.from_numpy(target)), result)


# ---------------------------------------------------------------------------------------------------------------
# Validation


def test_bad_inputs_raise(model: BodyModel) -> None:
    camera = PerspectiveCamera(FOCAL, CENTRE)
    keypoints, confidences = torch.zeros(2, 24, 2, dtype=F64), torch.ones(2, 24, dtype=F64)
    with pytest.raises(ValueError, match="focal"):
        PerspectiveCamera(-1.0, CENTRE)
    with pytest.raises(ValueError, match="principal_point"):
        PerspectiveCamera(FOCAL, (1.0, 2.0, 3.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scale"):
        WeakPerspectiveCamera(scale=-2.0)
    with pytest.raises(ValueError, match="keypoints"):
        fit_to_keypoints(model, torch.zeros(2, 17, 2), confidences, camera)
    with pytest.raises(ValueError, match="keypoints"):
        fit_to_keypoints(model, torch.zeros(2, 24, 3), confidences, camera)
    with pytest.raises(ValueError, match="confidences"):
        fit_to_keypoints(model, keypoints, torch.ones(2, 23), camera)
    with pytest.raises(ValueError, match="confidences"):
        fit_to_keypoints(model, keypoints, -confidences, camera)
    with pytest.raises(ValueError, match="camera"):
        fit_to_keypoints(model, keypoints, confidences, "pinhole")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="iterations"):
        fit_to_keypoints(model, keypoints, confidences, camera, FitConfig(iterations=(10, -1)))
    with pytest.raises(ValueError, match="anneal"):
        fit_to_keypoints(model, keypoints, confidences, camera, FitConfig(anneal=()))
    for bad in ({"pose_weight": -1.0}, {"sigma": 0.0}, {"lr": float("nan")}, {"penalty": "cauchy"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            fit_to_keypoints(model, keypoints, confidences, camera, FitConfig(**bad))
    with pytest.raises(ValueError, match="config"):
        fit_to_keypoints(model, keypoints, confidences, camera, {"iterations": (1, 1)})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="points"):
        project(torch.zeros(24, 3), camera)
    with pytest.raises(ValueError, match="shape"):
        pa_mpjpe(torch.zeros(1, 24, 3), torch.zeros(1, 23, 3))


# ---------------------------------------------------------------------------------------------------------------
# Fitting


def test_fit_is_deterministic_and_per_sample(model: BodyModel) -> None:
    """Short fits: the same input gives the same output, and a sample's fit does not depend on its batch."""
    _, keypoints, confidences, camera = random_scene(model, seed=5, batch=2)
    config = FitConfig(iterations=(10, 30), multi_start=False)
    both = fit_to_keypoints(model, keypoints, confidences, camera, config)
    again = fit_to_keypoints(model, keypoints, confidences, camera, config=config)
    alone = fit_to_keypoints(model, keypoints[1:], confidences[1:], camera, config)
    torch.testing.assert_close(both.joints3d, again.joints3d, rtol=0.0, atol=0.0)
    torch.testing.assert_close(both.joints3d[1:], alone.joints3d, rtol=0.0, atol=1e-9)
    assert both.loss_history.shape == (40, 2) and both.body_pose.shape == (2, 69) and both.betas.shape == (2, 10)


def test_fit_recovers_a_known_pose(model: BodyModel) -> None:
    noise = 1.5
    errors, reprojection = [], []
    for seed in (0, 1, 2):
        joints, keypoints, confidences, camera = random_scene(model, seed=seed, batch=6, noise=noise)
        fit = fit_to_keypoints(model, keypoints, confidences, camera)
        errors.append(pa_mpjpe(fit.joints3d, joints))
        visible = confidences > 0
        reprojection.append((fit.reprojection_error * visible).sum(-1) / visible.sum(-1))
        # The camera stage (100 iterations) shrinks the torso energy, the body stage the full energy.
        history = fit.loss_history
        assert history.shape == (500, 6)
        assert bool((history[99] < history[0]).all()) and bool((history[-1] < 0.1 * history[100]).all())
    errors, reprojection = torch.cat(errors), torch.cat(reprojection)
    print(f"PA-MPJPE (m): {errors.numpy().round(3)}, mean visible reprojection error (px): {reprojection.numpy()}")
    # Expected norm of 2D Gaussian noise: sigma * sqrt(pi / 2) ~ 1.9 px; a fit with many parameters goes below.
    assert float(reprojection.median()) < 2.0 * noise
    # Monocular fitting keeps some depth ambiguity and local minima (an arm stuck on the wrong side, ~15 cm):
    # most samples, not all, land within a few centimetres.
    assert float(errors.median()) < 0.05
    assert float((errors < 0.05).double().mean()) >= 0.6
    assert float(errors.max()) < 0.20


def test_fit_weak_perspective(model: BodyModel) -> None:
    joints, keypoints, confidences, _ = random_scene(model, seed=7, batch=3, noise=1.0)
    fit = fit_to_keypoints(model, keypoints, confidences, WeakPerspectiveCamera())
    assert isinstance(fit.camera, WeakPerspectiveCamera)
    scale = torch.as_tensor(fit.camera.scale)
    assert scale.shape == (3,) and bool(((scale > 250.0) & (scale < 420.0)).all())  # ~ focal / depth = 1000 / 3
    visible = confidences > 0
    assert float(((fit.reprojection_error * visible).sum(-1) / visible.sum(-1)).max()) < 4.0
    assert float(pa_mpjpe(fit.joints3d, joints).mean()) < 0.10
