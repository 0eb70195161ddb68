"""Surface-reconstruction metrics (vision3d.implicit.metrics) against brute-force NumPy and closed forms, mesh
surface sampling, and the lazy re-exports of vision3d.implicit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vision3d.implicit import (
    chamfer_distance,
    f_score,
    nearest_neighbors,
    normal_consistency,
    volumetric_iou,
)
from vision3d.scenes import sample_mesh_surface


def brute_force_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of every point of a to its nearest point of b, from the full distance matrix."""
    return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1).min(axis=1)


def unit_sphere_points(n: int, radius: float = 1.0, seed: int = 0) -> np.ndarray:
    directions = np.random.default_rng(seed).normal(size=(n, 3))
    return radius * directions / np.linalg.norm(directions, axis=1, keepdims=True)


@pytest.fixture
def point_sets():
    rng = np.random.default_rng(0)
    return rng.normal(size=(300, 3)), rng.uniform(-1, 1, size=(200, 3))


@pytest.mark.parametrize("method", ["kdtree", "brute"])
def test_nearest_neighbors_match_brute_force(point_sets, method):
    a, b = point_sets
    dist, index = nearest_neighbors(a, torch.as_tensor(b), method=method)
    full = np.linalg.norm(a[:, None] - b[None], axis=-1)
    np.testing.assert_allclose(dist.numpy(), full.min(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(index.numpy(), full.argmin(axis=1))


def test_brute_force_blocks_cover_every_pair(monkeypatch):
    # Tiny blocks force several blocks along both sets, including ragged last ones.
    import vision3d.implicit.metrics as metrics

    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", 7 * 5)
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(23, 3)), rng.normal(size=(41, 3))
    dist, _ = nearest_neighbors(a, b, method="brute")
    np.testing.assert_allclose(dist.numpy(), brute_force_distances(a, b), rtol=1e-12)


def test_chamfer_matches_brute_force(point_sets):
    pred, gt = point_sets
    to_gt, to_pred = brute_force_distances(pred, gt), brute_force_distances(gt, pred)
    result = chamfer_distance(pred, gt)
    assert result.accuracy == pytest.approx(to_gt.mean(), rel=1e-12)
    assert result.completeness == pytest.approx(to_pred.mean(), rel=1e-12)
    assert result.l1 == pytest.approx(0.5 * (to_gt.mean() + to_pred.mean()), rel=1e-12)
    assert result.l2 == pytest.approx(0.5 * ((to_gt**2).mean() + (to_pred**2).mean()), rel=1e-12)


def test_f_score_matches_brute_force(point_sets):
    pred, gt = point_sets
    threshold = 0.3
    precision = (brute_force_distances(pred, gt) <= threshold).mean()
    recall = (brute_force_distances(gt, pred) <= threshold).mean()
    p, r, f = f_score(pred, gt, threshold)
    assert (p, r) == pytest.approx((precision, recall))
    assert f == pytest.approx(2 * precision * recall / (precision + recall))


def test_identical_sets_give_zero_distance_and_full_f_score(point_sets):
    points = point_sets[0]
    result = chamfer_distance(points, torch.as_tensor(points))
    assert result.l1 == 0.0 and result.l2 == 0.0
    # float32 input is promoted to float64: only its own rounding (~1e-8) remains.
    assert chamfer_distance(points, torch.as_tensor(points, dtype=torch.float32)).l1 < 1e-7
    assert f_score(points, points, 1e-6) == (1.0, 1.0, 1.0)


def test_far_apart_sets_give_zero_f_score():
    assert f_score(np.zeros((4, 3)), np.full((5, 3), 10.0), 1.0) == (0.0, 0.0, 0.0)


def test_chamfer_l1_of_concentric_spheres_is_the_gap():
    # Every point of either sphere is exactly e from the other *surface*; dense samples approach that from above
    # by about the squared sample spacing over 2e, so 50k points on the unit sphere give e to ~1e-3.
    r, e = 1.0, 0.05
    inner, outer = unit_sphere_points(50_000, r, seed=0), unit_sphere_points(50_000, r + e, seed=1)
    result = chamfer_distance(inner, outer)
    assert result.l1 == pytest.approx(e, rel=0.05)
    assert result.l2 == pytest.approx(e**2, rel=0.1)


def test_normal_consistency_ignores_orientation_and_averages_one_half_for_random_normals():
    points = unit_sphere_points(4000, seed=0)
    normals = points.copy()
    assert normal_consistency(points, normals, points, normals) == pytest.approx(1.0)
    assert normal_consistency(points, -normals, points, 3.0 * normals) == pytest.approx(1.0)
    # For uniform directions in 3D, |cos| of the angle to a fixed axis is uniform on [0, 1]: E|cos| = 1/2.
    random_normals = unit_sphere_points(4000, seed=1)
    assert normal_consistency(points, random_normals, points, normals) == pytest.approx(0.5, abs=0.02)


def test_volumetric_iou_of_two_boxes_on_a_grid():
    axis = (np.arange(20) + 0.5) / 20  # cell centres of a 20^3 grid in [0, 1]^3
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    box_a = (x < 0.5) & (y < 0.5) & (z < 0.5)  # 10 x 10 x 10 cells
    box_b = (x > 0.25) & (x < 0.75) & (y < 0.5) & (z < 0.5)  # shifted by 5 cells along x
    intersection, union = 5 * 10 * 10, 2 * 1000 - 5 * 10 * 10
    assert volumetric_iou(box_a.ravel(), torch.as_tensor(box_b.ravel())) == pytest.approx(intersection / union)
    assert volumetric_iou(box_a, box_a) == 1.0
    assert volumetric_iou(box_a, ~box_a) == 0.0
    assert volumetric_iou(np.zeros(5, bool), np.zeros(5, bool)) == 1.0  # both empty: defined as 1


def unit_cube_mesh() -> tuple[np.ndarray, np.ndarray]:
    """The cube [0, 1]^3 with two counter-clockwise (seen from outside) triangles per side."""
    vertices = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], dtype=np.float64)
    faces = np.array([
        [0, 1, 3], [0, 3, 2],  # x = 0
        [4, 6, 7], [4, 7, 5],  # x = 1
        [0, 4, 5], [0, 5, 1],  # y = 0
        [2, 3, 7], [2, 7, 6],  # y = 1
        [0, 2, 6], [0, 6, 4],  # z = 0
        [1, 5, 7], [1, 7, 3],  # z = 1
    ])  # fmt: skip
    return vertices, faces


def test_surface_samples_lie_on_the_cube_uniformly_with_face_normals():
    vertices, faces = unit_cube_mesh()
    # Stretch the cube along x so the sides have different areas: 2 (x-sides) and 3 x 1 (the others).
    vertices = vertices * np.array([3.0, 1.0, 1.0])
    n = 60_000
    points, normals = sample_mesh_surface(vertices, faces, n, seed=0)
    assert points.shape == normals.shape == (n, 3)

    # Every point lies on the side its normal names: the coordinate along the normal is at the side's plane.
    side_axis = np.abs(normals).argmax(axis=1)
    side_max = normals[np.arange(n), side_axis] > 0
    np.testing.assert_allclose(np.abs(normals).max(axis=1), 1.0)
    plane = np.where(side_max, vertices.max(axis=0)[side_axis], 0.0)
    np.testing.assert_allclose(points[np.arange(n), side_axis], plane, atol=1e-6)
    assert np.all((points >= -1e-6) & (points <= vertices.max(axis=0) + 1e-6))
    assert np.all(np.sum(normals * (points - vertices.mean(axis=0)), axis=1) > 0)  # outward

    # Counts per side proportional to area (6 sides, 5 degrees of freedom: chi-square 99.9% quantile is 20.5).
    side = 2 * side_axis + side_max
    counts = np.bincount(side, minlength=6)
    areas = np.array([1.0, 1.0, 3.0, 3.0, 3.0, 3.0])
    expected = n * areas / areas.sum()
    assert np.sum((counts - expected) ** 2 / expected) < 20.5

    # Uniform within a side: on the z = 1 side (3 x 1), each quarter of x gets a quarter of the points.
    top = points[side == 5]
    quarters = np.bincount(np.minimum((top[:, 0] / 0.75).astype(int), 3), minlength=4)
    assert np.sum((quarters - len(top) / 4) ** 2 / (len(top) / 4)) < 16.3  # 3 dof, 99.9%


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        chamfer_distance(np.zeros((0, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"shape \[N, 3\]"):
        chamfer_distance(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        f_score(np.full((3, 3), np.nan), np.zeros((3, 3)), 0.1)
    with pytest.raises(ValueError, match="threshold"):
        f_score(np.zeros((3, 3)), np.zeros((3, 3)), 0.0)
    with pytest.raises(ValueError, match="zero-length"):
        normal_consistency(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="boolean"):
        volumetric_iou(np.array([0.2, 0.9]), np.array([True, False]))
    with pytest.raises(ValueError, match="same shape"):
        volumetric_iou(np.zeros(3, bool), np.zeros(4, bool))
    vertices, faces = unit_cube_mesh()
    with pytest.raises(ValueError, match="index vertices"):
        sample_mesh_surface(vertices[:4], faces, 10)
    with pytest.raises(ValueError, match="zero surface area"):
        sample_mesh_surface(np.zeros((3, 3)), np.array([[0, 1, 2]]), 10)
