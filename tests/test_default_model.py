"""Tests of the shipped, license-free default body model (vision3d.body.default_model and its .npz)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vision3d.body.default_model import (
    DEFAULT_PROPORTIONS,
    body_mesh,
    build_default_model,
    default_girths,
    default_model_path,
    joint_regressor,
    main,
    rest_joints,
)
from vision3d.body.model import BodyModel
from vision3d.body.skeleton import JOINT_INDEX, MIRROR_INDEX, N_JOINTS, PARENTS

SHIPPED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


@pytest.fixture(scope="module")
def shipped() -> dict[str, np.ndarray]:
    with np.load(default_model_path(), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def model() -> BodyModel:
    return BodyModel.load(default_model_path(), dtype=torch.float64, device="cpu")


def _pose(**joints: list[float]) -> torch.Tensor:
    body_pose = torch.zeros(1, 3 * (N_JOINTS - 1), dtype=torch.float64)
    for name, axis_angle in joints.items():
        k = JOINT_INDEX[name] - 1
        body_pose[0, 3 * k : 3 * k + 3] = torch.tensor(axis_angle, dtype=torch.float64)
    return body_pose


def _height(vertices: torch.Tensor | np.ndarray) -> float:
    return float(vertices[..., 1].max() - vertices[..., 1].min())


def test_shipped_file_loads_and_is_small(shipped, model):
    assert model.num_betas == 10 and model.num_vertices == shipped["v_template"].shape[0]
    assert 1000 <= model.num_vertices <= 3000
    assert tuple(model.parents.tolist()) == (-1, *PARENTS[1:])
    assert all(shipped[key].dtype in (np.float32, np.int32) for key in SHIPPED_KEYS)
    assert default_model_path().stat().st_size < 3_000_000
    assert not np.any(shipped["posedirs"])  # documented: no learned pose correctives


# Rebuilt bit for bit: the joints, the mesh (v_template is the mean of 1,000 meshed bodies) and the topology go
# through numpy's elementwise math only. The PCA (an eigensolver) and the BLAS products behind the skinning weights
# and J_template round differently across machines, so those are compared to a tolerance.
EXACT_KEYS = ("v_template", "J_regressor", "posedirs", "kintree_table", "f")


def test_regeneration_is_deterministic(shipped):
    rebuilt = build_default_model(seed=0)
    assert set(rebuilt) == set(shipped)
    for key, value in rebuilt.items():
        assert value.dtype == shipped[key].dtype and value.shape == shipped[key].shape, key
        np.testing.assert_allclose(value, shipped[key], atol=1e-5, err_msg=key)
    for key in EXACT_KEYS:
        np.testing.assert_array_equal(rebuilt[key], shipped[key], err_msg=key)


def test_joint_regressor_reproduces_the_joints(shipped):
    regressed = shipped["J_regressor"].astype(np.float64) @ shipped["v_template"].astype(np.float64)
    np.testing.assert_allclose(regressed, shipped["J_template"], atol=1e-5)
    # ... and exactly, for any body built by body_mesh (here the reference 1.75 m body and a tall one).
    for height in (1.75, 1.95):
        joints, girths = rest_joints(height), default_girths(height)
        vertices, _, _ = body_mesh(joints, girths)
        np.testing.assert_allclose(joint_regressor(joints, girths) @ vertices, joints, atol=1e-12)
    assert np.allclose(shipped["J_regressor"].sum(axis=1), 1.0) and shipped["J_regressor"].min() >= 0


def test_rest_joints_follow_the_anthropometric_ratios():
    height = 1.80
    joints = rest_joints(height)
    assert joints.shape == (N_JOINTS, 3)
    np.testing.assert_allclose(joints[JOINT_INDEX["pelvis"]], 0.0, atol=1e-12)

    def length(a: str, b: str) -> float:
        return float(np.linalg.norm(joints[JOINT_INDEX[a]] - joints[JOINT_INDEX[b]]))

    for (a, b), ratio in {
        ("left_hip", "left_knee"): DEFAULT_PROPORTIONS["thigh"],
        ("right_knee", "right_ankle"): DEFAULT_PROPORTIONS["shank"],
        ("left_shoulder", "left_elbow"): DEFAULT_PROPORTIONS["upper_arm"],
        ("right_elbow", "right_wrist"): DEFAULT_PROPORTIONS["forearm"],
    }.items():
        assert length(a, b) == pytest.approx(ratio * height)
    # Stature: the mesh reaches from the soles to the top of the head.
    vertices, _, _ = body_mesh(joints, default_girths(height))
    assert _height(vertices) == pytest.approx(height, rel=0.01)
    # Batched: arrays of heights broadcast.
    assert rest_joints(np.array([1.6, 1.8])).shape == (2, N_JOINTS, 3)


def test_skinning_weights_are_a_sparse_partition_of_unity(shipped):
    weights = shipped["weights"]
    assert weights.min() >= 0.0
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    assert (weights > 0).sum(axis=1).max() <= 4
    assert np.all(weights.sum(axis=0) > 0)  # every joint moves some vertices


def test_faces_form_closed_consistently_oriented_surfaces(shipped):
    faces, vertices = shipped["f"].astype(np.int64), shipped["v_template"].astype(np.float64)
    assert faces.min() >= 0 and faces.max() < len(vertices)
    assert np.all((faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2]))
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    # Closed and consistently oriented: every directed edge occurs once and its reverse occurs once too.
    keys = set(map(tuple, directed.tolist()))
    assert len(keys) == len(directed)
    assert all((b, a) in keys for a, b in keys)
    # Outward winding: the signed volume (divergence theorem) is positive and of a body's order (tens of litres).
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0
    assert 0.04 < volume < 0.15


def test_zero_betas_and_zero_pose_give_the_template(model):
    out = model()
    torch.testing.assert_close(out.vertices[0], model.v_template)
    torch.testing.assert_close(out.v_shaped[0], model.v_template)  # T + S 0 = mu
    # No pose correctives: the full model and plain LBS coincide in any pose.
    pose = _pose(left_elbow=[0.0, 1.0, 0.0], right_knee=[1.0, 0.0, 0.0])
    torch.testing.assert_close(model(body_pose=pose).vertices, model(body_pose=pose, pose_correctives=False).vertices)


def test_first_shape_component_is_stature(model):
    heights = []
    for beta0 in (-2.0, -1.0, 0.0, 1.0, 2.0):
        betas = torch.zeros(1, 10, dtype=torch.float64)
        betas[0, 0] = beta0
        heights.append(_height(model(betas=betas).vertices[0]))
    assert np.all(np.diff(heights) > 0.05)  # about 9 cm of stature per standard deviation
    assert heights[-1] - heights[0] == pytest.approx(0.35, abs=0.08)


def test_explained_variance_is_reported_and_ordered(shipped):
    ratio = shipped["explained_variance_ratio"]
    assert ratio.shape == (10,) and np.all(np.diff(ratio) <= 0)
    assert 0.9 < ratio.sum() <= 1.0 + 1e-6


def test_bending_the_elbow_moves_the_hand_not_the_feet(model):
    weights = model.weights.numpy()
    hand = weights[:, [JOINT_INDEX["left_wrist"], JOINT_INDEX["left_hand"]]].sum(axis=1) > 0.5
    feet = weights[:, [JOINT_INDEX[n] for n in ("left_ankle", "right_ankle", "left_foot", "right_foot")]].sum(1) > 0.5
    assert hand.sum() > 20 and feet.sum() > 20
    rest = model().vertices[0].numpy()
    posed = model(body_pose=_pose(left_elbow=[0.0, np.pi / 2, 0.0])).vertices[0].numpy()
    moved = np.linalg.norm(posed - rest, axis=1)
    assert moved[hand].min() > 0.1
    assert moved[feet].max() < 1e-9
    upper_arm = weights[:, JOINT_INDEX["left_shoulder"]] > 0.95
    assert upper_arm.sum() > 20 and moved[upper_arm].max() < 0.02
    # In between, the ring at the elbow blends the two bones: it moves, but less than the hand.
    elbow_ring = np.minimum(weights[:, JOINT_INDEX["left_shoulder"]], weights[:, JOINT_INDEX["left_elbow"]]) > 0.2
    assert elbow_ring.any() and 0.0 < moved[elbow_ring].max() < moved[hand].min()


def test_model_is_left_right_symmetric(shipped):
    vertices = shipped["v_template"].astype(np.float64)
    mirrored = vertices * np.array([-1.0, 1.0, 1.0])
    distance = np.linalg.norm(vertices[:, None, :] - mirrored[None, :, :], axis=-1)
    mirror_of = distance.argmin(axis=1)  # vertex i's mirror image is vertex mirror_of[i]
    assert distance[np.arange(len(vertices)), mirror_of].max() < 1e-5
    assert len(set(mirror_of.tolist())) == len(vertices)  # a permutation
    joints = shipped["J_template"].astype(np.float64)
    np.testing.assert_allclose(joints[list(MIRROR_INDEX)] * np.array([-1.0, 1.0, 1.0]), joints, atol=1e-5)
    np.testing.assert_allclose(shipped["weights"][mirror_of][:, list(MIRROR_INDEX)], shipped["weights"], atol=1e-5)
    shapedirs = shipped["shapedirs"].astype(np.float64)
    np.testing.assert_allclose(shapedirs[mirror_of] * np.array([-1.0, 1.0, 1.0])[:, None], shapedirs, atol=1e-5)


def test_main_writes_a_loadable_file(tmp_path, capsys):
    out = tmp_path / "body.npz"
    main(["--out", str(out), "--seed", "1"], build=lambda seed: build_default_model(seed, n_bodies=60))
    assert "explained variance" in capsys.readouterr().out
    other = BodyModel.load(out, device="cpu")
    assert other.num_vertices == BodyModel.load(default_model_path(), device="cpu").num_vertices


def test_body_model_default_is_the_shipped_stand_in():
    model = BodyModel.default(dtype=torch.float64, device="cpu")
    assert model.num_vertices == np.load(default_model_path())["v_template"].shape[0]
    out = model(betas=torch.zeros(1, 10, dtype=torch.float64))
    np.testing.assert_allclose(out.vertices[0].numpy(), model.v_template.numpy())
