"""The animatable implicit body (vision3d.body.animatable): inside/outside labels against closed forms, root finding
against the model's own skinning and a 1D fold with known roots, the implicit-function gradient against finite
differences, a short fit that must pose better than not posing, and the shipped fields on unseen poses."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from vision3d.body.animatable import (
    AnimatableBody,
    AnimatableConfig,
    candidate_starts,
    default_animatable_path,
    deform,
    evaluate,
    find_roots,
    implicit_roots,
    inside_mesh,
    load_animatable,
    pose_transforms,
    posed_samples,
    save_animatable,
    selected_poses,
    train,
)
from vision3d.body.model import BodyModel
from vision3d.body.synthetic import TEST_CLIPS, TRAIN_CLIPS


@pytest.fixture(scope="module")
def model64() -> BodyModel:
    return BodyModel.default(dtype=torch.float64, device="cpu")


@pytest.fixture(scope="module")
def model32() -> BodyModel:
    return BodyModel.default(device="cpu")


# ---------------------------------------------------------------------------------------------------------------
# Inside/outside labels


def test_inside_mesh_matches_box_and_sphere_closed_forms():
    import trimesh

    generator = torch.Generator().manual_seed(0)
    points = 2.4 * torch.rand(4000, 3, generator=generator, dtype=torch.float64) - 1.2
    half = torch.tensor([0.9, 0.6, 0.4], dtype=torch.float64)
    box = trimesh.creation.box(extents=(2 * half).tolist())
    inside = inside_mesh(points, torch.as_tensor(box.vertices), torch.as_tensor(box.faces))
    exact = (points.abs() < half).all(dim=1)  # the box's faces are exact: every point is labelled exactly
    assert torch.equal(inside, exact)

    sphere = trimesh.creation.icosphere(subdivisions=3, radius=1.0)  # inscribed: faces lie within 1e-2 of r = 1
    points = points[:1500]
    inside = inside_mesh(points, torch.as_tensor(sphere.vertices), torch.as_tensor(sphere.faces))
    radius = points.norm(dim=1)
    clear = (radius - 1.0).abs() > 0.01
    assert clear.sum() > 1400
    assert torch.equal(inside[clear], (radius < 1.0)[clear])


def test_inside_mesh_of_two_overlapping_parts_is_their_union():
    import trimesh

    a = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    b = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    b.apply_translation((0.5, 0.0, 0.0))
    vertices = torch.as_tensor(np.concatenate([a.vertices, b.vertices]))
    faces = torch.as_tensor(np.concatenate([a.faces, b.faces + len(a.vertices)]))
    points = torch.tensor([[0.25, 0.0, 0.0], [-0.4, 0.1, 0.1], [0.9, -0.2, 0.3], [1.1, 0.0, 0.0], [0.2, 0.7, 0.0]])
    assert inside_mesh(points.double(), vertices, faces).tolist() == [True, True, True, False, False]


# ---------------------------------------------------------------------------------------------------------------
# Root finding


def test_roots_with_the_true_weights_invert_the_models_skinning(model64):
    """An oracle weight field (the model's weights at the nearest rest vertex) makes ``d`` the model's own LBS, so the
    roots of the posed vertices must include the rest vertices."""
    rest = model64().vertices[0]
    body_pose = selected_poses(("run",), 2, mirrors=False).double()[1:]
    posed = model64(body_pose=body_pose).vertices[0]
    transforms = pose_transforms(model64, body_pose)[0]

    def oracle(x: torch.Tensor) -> torch.Tensor:
        return model64.weights[torch.cdist(x, rest).argmin(dim=1)]

    body = AnimatableBody.for_model(model64).double()
    starts = body.skinning.segment_start, body.skinning.segment_end
    with torch.no_grad():
        roots, residual = find_roots(oracle, posed, transforms, candidate_starts(posed, transforms, *starts, 3), 20,
                                     1e-10)  # fmt: skip
    kept = residual < 1e-10
    error = torch.where(kept, (roots - rest[:, None]).norm(dim=-1), math.inf).amin(dim=1)
    assert (error < 1e-4).float().mean() > 0.99  # measured 0.997; the rest have other, equally valid roots
    # Every kept root is a true root: skinned by its own (oracle) weights it lands on its posed vertex.
    flat = roots[kept]
    target = posed[:, None].expand_as(roots)[kept]
    assert (deform(flat, oracle(flat), transforms) - target).norm(dim=-1).max() < 1e-9


def test_find_roots_returns_every_root_of_a_fold():
    """Two bones, the second shifted by -1 along x, blended by ``sigmoid(8 x)``: ``d(x) = x - sigmoid(8 x)`` folds,
    and ``x_p = -0.5`` has the roots ``r1 < 0 < r2``; starting from each bone's inverse finds the outer two."""
    transforms = torch.eye(4, dtype=torch.float64).repeat(24, 1, 1)
    transforms[1, 0, 3] = -1.0

    def fold(x: torch.Tensor) -> torch.Tensor:
        w = torch.zeros(len(x), 24, dtype=x.dtype)
        w[:, 1] = torch.sigmoid(8 * x[:, 0])
        w[:, 0] = 1 - w[:, 1]
        return w

    x_p = torch.tensor([[-0.5, 0.2, 0.1]], dtype=torch.float64)
    starts = torch.stack([x_p, x_p + torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)], dim=1)  # B_k^-1 x_p
    with torch.no_grad():
        roots, residual = find_roots(fold, x_p, transforms, starts, 30, 1e-12)
    assert (residual < 1e-12).all()

    def equation(x: float) -> float:
        return x - 1 / (1 + math.exp(-8 * x)) + 0.5

    expected = [brentq(equation, -1.0, -0.2, xtol=1e-14), brentq(equation, 0.2, 1.0, xtol=1e-14)]
    assert roots[0, :, 0].tolist() == pytest.approx(expected, abs=1e-10)
    assert torch.allclose(roots[0, :, 1:], x_p[:, 1:].expand(2, 2))


def test_implicit_gradient_matches_finite_differences(model64):
    """``x_c = x_c* - J^-1.detach() (d(x_c*) - x_p)``: d(loss)/d(phi) of the weight network against central
    differences of the re-solved roots, float64."""
    torch.manual_seed(0)
    config = AnimatableConfig(occupancy_hidden=(16, 16), weight_hidden=(16, 16), frequencies=0, iterations=60,
                              tolerance=1e-12)  # fmt: skip
    body = AnimatableBody.for_model(model64, config).double()
    with torch.no_grad():  # a non-zero g_phi, so that the weights' own gradient enters J and dd/dphi
        for parameter in body.skinning.net.parameters():
            parameter.normal_(0.0, 0.5)
    body_pose = selected_poses(("walk",), 2, mirrors=False).double()[1:]
    transforms = pose_transforms(model64, body_pose)[0]
    x_p = model64(body_pose=body_pose).vertices[0][::60]
    roots, valid = body.correspondences(x_p, transforms)
    point, candidate = valid.nonzero(as_tuple=True)
    assert len(point) > 0.8 * len(x_p)
    start, target = roots[point, candidate], x_p[point]
    weights = torch.randn(len(point), 3, dtype=torch.float64)

    x_c = implicit_roots(body.weights, start, target, transforms)
    parameters = list(body.skinning.net.parameters())
    gradients = torch.autograd.grad((weights * x_c).sum(), parameters)
    direction = [torch.randn_like(p) for p in parameters]
    analytic = sum((g * v).sum() for g, v in zip(gradients, direction, strict=True))

    def loss_at(step: float) -> float:
        with torch.no_grad():
            for p, v in zip(parameters, direction, strict=True):
                p.add_(step * v)
            moved, residual = find_roots(body.weights, target, transforms, start[:, None], 60, 1e-13)
            for p, v in zip(parameters, direction, strict=True):
                p.sub_(step * v)
        assert (residual < 1e-12).all()
        return float((weights * moved[:, 0]).sum())

    epsilon = 1e-6
    numeric = (loss_at(epsilon) - loss_at(-epsilon)) / (2 * epsilon)
    assert abs(numeric) > 1e-3  # the check is not vacuous
    assert float(analytic) == pytest.approx(numeric, rel=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Learning


@pytest.mark.slow
def test_a_short_fit_poses_an_unseen_body_far_better_than_not_posing(model32):
    torch.manual_seed(0)
    poses = selected_poses(TRAIN_CLIPS, 2, mirrors=False)  # 8 poses, 2 per training clip
    data = posed_samples(model32, poses, 512, seed=0)
    body = AnimatableBody.for_model(model32, AnimatableConfig(occupancy_hidden=(96, 96, 96)))
    losses = train(body, data, 150, batch_poses=2, points_per_pose=192, lr=3e-3, seed=0)
    assert np.mean(losses[-15:]) < 0.5 * np.mean(losses[:15])
    unseen = selected_poses(("run",), 2, mirrors=False)[1:]
    scores = evaluate(body, model32, unseen, resolution=48, samples=1500, oracle=False)
    # Bars: a 150-step fit on a 48^3 grid (4 cm cells) is coarse, but posed it must land within 5 cm of the unseen
    # body on average, and at most a third of the unposed canonical mesh's error.
    assert scores["learned"]["chamfer_mm"] < 50.0
    assert scores["learned"]["chamfer_mm"] < scores["unposed"]["chamfer_mm"] / 3


@pytest.fixture(scope="module")
def shipped_scores(model32) -> dict[str, dict[str, float]]:
    """The shipped fields on the first frame of each unseen clip (run, cmu_walk), 10,000 samples per surface."""
    body = load_animatable(default_animatable_path(), model32)
    return evaluate(body, model32, selected_poses(TEST_CLIPS, 1, mirrors=False), resolution=128, samples=10_000,
                    oracle=False)  # fmt: skip


def test_shipped_fields_reconstruct_unseen_poses(shipped_scores):
    # The bar: within a centimetre of the unseen posed body on average (two sample sets of the true mesh already
    # differ by about 5 mm at 10,000 points), a fifth of the unposed error. Measured: 8.8 mm, unposed 97 mm.
    assert shipped_scores["learned"]["chamfer_mm"] < 10.0
    assert shipped_scores["learned"]["chamfer_mm"] < shipped_scores["unposed"]["chamfer_mm"] / 5


def test_shipped_weights_put_more_of_the_surface_within_1cm_than_rigid_weights(shipped_scores):
    # F-score at 1 cm: measured 0.750 vs 0.687 here, 0.861 vs 0.832 on the benchmark's four unseen poses. The mean
    # Chamfer distance is a tie within sampling noise (8.76 vs 9.06 mm here, 7.8 vs 7.5 mm in the benchmark), so the
    # learned weights are not claimed to be closer on average, and this test does not assert it.
    assert shipped_scores["learned"]["f_1cm"] > shipped_scores["rigid"]["f_1cm"]


# ---------------------------------------------------------------------------------------------------------------
# Bad input


def test_bad_inputs_raise_value_errors(model32, tmp_path):
    body = AnimatableBody.for_model(model32, AnimatableConfig(occupancy_hidden=(16,), weight_hidden=(16,)))
    transforms = torch.eye(4).repeat(24, 1, 1)
    with pytest.raises(ValueError, match="x_p"):
        body.posed_logits(torch.zeros(5, 2), transforms)
    with pytest.raises(ValueError, match="transforms"):
        body.posed_logits(torch.zeros(5, 3), torch.eye(4).repeat(23, 1, 1))
    with pytest.raises(ValueError, match="body_pose"):
        pose_transforms(model32, torch.zeros(2, 70))
    with pytest.raises(ValueError, match="candidates"):
        AnimatableConfig(candidates=0).check()

    save_animatable(body, tmp_path / "ok")
    assert load_animatable(tmp_path / "ok", model32).config == body.config
    torch.save({"occupancy.garbage": torch.zeros(1)}, tmp_path / "ok" / "checkpoint.pt")
    with pytest.raises(ValueError, match="checkpoint.pt"):
        load_animatable(tmp_path / "ok", model32)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps({"architecture": {"depth": 3}}))
    with pytest.raises(ValueError, match="unknown architecture keys"):
        load_animatable(tmp_path / "bad", model32)
