"""Marching cubes of analytic implicit functions (vision3d.implicit.meshing): the meshes sit on the surface to grid
precision, normals point outward, coarse-to-fine gives the dense mesh for a fraction of the evaluations, and
meshes survive a PLY/OBJ round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vision3d.implicit import chamfer_distance, extract_mesh
from vision3d.scenes import TriangleMesh, load_mesh, sample_mesh_surface

RADIUS = 0.5
TORUS_R, TORUS_r = 0.5, 0.25


def sphere_sdf(points: torch.Tensor) -> torch.Tensor:
    return points.norm(dim=1) - RADIUS


def torus_sdf(points: torch.Tensor) -> torch.Tensor:
    """Torus around the z axis: distance to the circle of radius R in the xy plane, minus the tube radius r."""
    ring = points[:, :2].norm(dim=1) - TORUS_R
    return torch.sqrt(ring**2 + points[:, 2] ** 2) - TORUS_r


def sphere_samples(n: int, seed: int = 0) -> np.ndarray:
    directions = np.random.default_rng(seed).normal(size=(n, 3))
    return RADIUS * directions / np.linalg.norm(directions, axis=1, keepdims=True)


def torus_samples(n: int, seed: int = 0) -> np.ndarray:
    """Uniform on the torus: the tube angle is drawn by rejection, with density proportional to R + r cos(phi)."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0, 2 * np.pi, 4 * n)
    phi = rng.uniform(0, 2 * np.pi, 4 * n)
    keep = rng.uniform(0, TORUS_R + TORUS_r, 4 * n) < TORUS_R + TORUS_r * np.cos(phi)
    theta, phi = theta[keep][:n], phi[keep][:n]
    ring = TORUS_R + TORUS_r * np.cos(phi)
    return np.stack([ring * np.cos(theta), ring * np.sin(theta), TORUS_r * np.sin(phi)], axis=1)


@pytest.mark.parametrize(
    ("sdf", "samples", "smallest_radius"),
    [(sphere_sdf, sphere_samples, RADIUS), (torus_sdf, torus_samples, TORUS_r)],
    ids=["sphere", "torus"],
)
def test_marching_cubes_recovers_analytic_surfaces_to_grid_precision(sdf, samples, smallest_radius):
    resolution = 64
    h = 2.0 / (resolution - 1)  # voxel edge in [-1, 1]^3
    mesh = extract_mesh(sdf, bounds=(-1.0, 1.0), resolution=resolution, coarse_resolution=None)
    assert mesh.n_evaluations == resolution**3
    assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int64

    # Vertices are linear interpolations of the SDF along grid edges of length h; an SDF's second derivative
    # along a line is at most 1/(distance to its medial axis) ~ 1/smallest_radius, so |sdf(v)| <= h^2/(8 r).
    # Allow a factor 2 for float32; it is ~3 orders of magnitude below the 0.01 a voxel-precision bound would give.
    residual = sdf(torch.as_tensor(mesh.vertices, dtype=torch.float64)).abs().max().item()
    assert residual < h**2 / (4 * smallest_radius) < 0.01

    # Chamfer-L1 to dense samples of the true surface: the spacing of 20k samples (~0.006-0.008) dominates it, so
    # compare with two samplings of the true surface; the mesh adds less than 2% of a voxel to that floor.
    points, _ = sample_mesh_surface(mesh.vertices, mesh.faces, 20_000, seed=1)
    mesh_to_surface = chamfer_distance(points, samples(20_000)).l1
    surface_to_surface = chamfer_distance(samples(20_000, seed=1), samples(20_000)).l1
    assert mesh_to_surface < surface_to_surface + 0.02 * h < 0.5 * h

    # Outward normals: along the SDF gradient, both the vertex normals and the faces' right-hand normals.
    gradient = torch.as_tensor(mesh.vertices, dtype=torch.float64).requires_grad_(True)
    sdf(gradient).sum().backward()
    gradient = gradient.grad.numpy()
    assert np.all(np.sum(mesh.normals * gradient, axis=1) > 0.9)
    np.testing.assert_allclose(np.linalg.norm(mesh.normals, axis=1), 1.0, atol=1e-5)
    triangles = mesh.vertices[mesh.faces].astype(np.float64)
    face_normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    centroid_gradient = gradient[mesh.faces].mean(axis=1)
    non_degenerate = np.linalg.norm(face_normals, axis=1) > 1e-10
    assert np.all(np.sum(face_normals * centroid_gradient, axis=1)[non_degenerate] > 0)


def test_sphere_normals_point_away_from_the_centre():
    mesh = extract_mesh(sphere_sdf, resolution=32, coarse_resolution=None)
    assert np.all(np.sum(mesh.normals * mesh.vertices, axis=1) > 0)


def test_coarse_to_fine_gives_the_dense_mesh_with_a_fraction_of_the_evaluations():
    resolution, coarse = 97, 25  # (97 - 1) = 4 * (25 - 1): coarse cells of 4^3 fine cells
    dense = extract_mesh(torus_sdf, resolution=resolution, coarse_resolution=None)
    fast = extract_mesh(torus_sdf, resolution=resolution, coarse_resolution=coarse)
    assert fast.n_evaluations < 0.25 * resolution**3
    assert fast.faces.shape == dense.faces.shape
    np.testing.assert_allclose(fast.vertices, dense.vertices, atol=1e-6)
    np.testing.assert_array_equal(fast.faces, dense.faces)


# (90 - 1) / (20 - 1) is not an integer: the coarse grid takes every 5th fine vertex plus the last, so a coarse
# cell spans 5 fine cells and the margin is its diagonal.
@pytest.mark.parametrize("sdf_margin", [None, np.sqrt(3) * 5 * 2.0 / 89])
def test_coarse_to_fine_with_a_ratio_that_does_not_divide_and_an_sdf_margin(sdf_margin):
    dense = extract_mesh(sphere_sdf, resolution=90, coarse_resolution=None)
    fast = extract_mesh(sphere_sdf, resolution=90, coarse_resolution=20, sdf_margin=sdf_margin)
    assert fast.n_evaluations < 0.3 * 90**3
    np.testing.assert_allclose(fast.vertices, dense.vertices, atol=1e-6)
    np.testing.assert_array_equal(fast.faces, dense.faces)


def test_occupancy_with_inside_positive_orients_normals_outward():
    def occupancy(points: torch.Tensor) -> torch.Tensor:  # a soft occupancy probability, 1 inside the sphere
        return torch.sigmoid(-20.0 * sphere_sdf(points))

    mesh = extract_mesh(occupancy, resolution=40, level=0.5, inside="positive", coarse_resolution=14)
    assert np.all(np.sum(mesh.normals * mesh.vertices, axis=1) > 0)
    triangles = mesh.vertices[mesh.faces].astype(np.float64)
    face_normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    assert np.all(np.sum(face_normals * triangles.mean(axis=1), axis=1) >= -1e-12)
    assert np.abs(np.linalg.norm(mesh.vertices, axis=1) - RADIUS).max() < 0.01


def test_bounds_per_axis_and_world_coordinates():
    mesh = extract_mesh(sphere_sdf, bounds=((-0.6, -0.7, -0.8), (0.6, 0.7, 0.8)), resolution=33)
    assert np.abs(np.linalg.norm(mesh.vertices, axis=1) - RADIUS).max() < 0.005


@pytest.mark.parametrize("coarse_resolution", [None, 9])
def test_no_crossing_raises_with_the_value_range(coarse_resolution):
    with pytest.raises(ValueError, match=r"no surface at level 0.*values range \[0\.5"):
        extract_mesh(lambda p: p.norm(dim=1) + 0.5, resolution=17, coarse_resolution=coarse_resolution)


def test_bad_function_outputs_raise():
    with pytest.raises(ValueError, match="NaN"):
        extract_mesh(lambda p: torch.full((len(p),), float("nan")), resolution=8, coarse_resolution=None)
    with pytest.raises(ValueError, match="N values"):
        extract_mesh(lambda p: p, resolution=8, coarse_resolution=None)
    with pytest.raises(ValueError, match="bounds"):
        extract_mesh(sphere_sdf, bounds=(1.0, -1.0), resolution=8)


@pytest.mark.parametrize("suffix", [".ply", ".obj"])
def test_save_and_load_roundtrip(tmp_path, suffix):
    mesh = extract_mesh(torus_sdf, resolution=24, coarse_resolution=None)
    loaded = load_mesh(mesh.save(tmp_path / f"torus{suffix}"))
    assert isinstance(loaded, TriangleMesh)
    np.testing.assert_allclose(loaded.vertices.numpy(), mesh.vertices, atol=1e-6)
    np.testing.assert_array_equal(loaded.faces.numpy(), mesh.faces)


def test_loading_a_garbage_file_names_the_file(tmp_path):
    path = tmp_path / "garbage.ply"
    path.write_bytes(b"this is not a mesh\x00\xff" * 10)
    with pytest.raises(ValueError, match="garbage.ply"):
        load_mesh(path)
    points_only = tmp_path / "points.ply"
    points_only.write_text("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
                           "property float z\nend_header\n0 0 0\n")  # fmt: skip
    with pytest.raises(ValueError, match="points.ply"):
        load_mesh(points_only)
