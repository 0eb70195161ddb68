"""Cameras, exact shapes, meshes, renders and samplers of vision3d.scenes against closed forms and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vision3d.scenes import (
    Box,
    Camera,
    Capsule,
    Sphere,
    Torus,
    TriangleMesh,
    Union,
    ViewSet,
    hemisphere_cameras,
    load_mesh,
    make_scene,
    occupancy_samples,
    orbit_cameras,
    pixel_rays,
    project,
    random_cameras,
    render,
    render_views,
    scene_names,
    sdf_samples,
    surface_samples,
)
from vision3d.scenes.cameras import intrinsics, look_at, opencv_to_opengl, opengl_to_opencv

F64 = torch.float64


def random_rays(n: int, seed: int, radius: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rays from a sphere of ``radius`` aimed at random points near the origin (many hit, some miss)."""
    g = torch.Generator().manual_seed(seed)
    origins = torch.randn(n, 3, generator=g, dtype=F64)
    origins = radius * origins / origins.norm(dim=-1, keepdim=True)
    aims = 0.7 * (2 * torch.rand(n, 3, generator=g, dtype=F64) - 1)
    directions = aims - origins
    return origins, directions / directions.norm(dim=-1, keepdim=True)


def first_crossing_by_bisection(sdf, origins, directions, t_max=6.0, steps=5_000):
    """Brute force: the first sign change of the SDF on a dense grid along each ray, refined by bisection."""
    t = torch.linspace(0, t_max, steps, dtype=F64)
    points = origins[:, None] + t[None, :, None] * directions[:, None]
    inside = sdf(points.reshape(-1, 3)).reshape(len(origins), steps) < 0
    hit = inside.any(dim=1) & ~inside[:, 0]
    first = inside.double().argmax(dim=1).clamp_min(1)
    lo, hi = t[first - 1], t[first]
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        below = sdf(origins + mid[:, None] * directions) < 0
        lo, hi = torch.where(below, lo, mid), torch.where(below, mid, hi)
    return torch.where(hit, 0.5 * (lo + hi), torch.full_like(lo, math.inf))


# --- cameras -----------------------------------------------------------------------------------------------------


def test_pixel_rays_project_back_to_their_pixel_centres():
    camera = Camera.look_at((2.0, -3.0, 1.5), (0.1, 0.2, -0.1), width=7, height=5)
    origins, directions = pixel_rays(camera)
    uv, z = project(camera, origins + 2.7 * directions)
    v, u = torch.meshgrid(torch.arange(5, dtype=F64) + 0.5, torch.arange(7, dtype=F64) + 0.5, indexing="ij")
    torch.testing.assert_close(uv, torch.stack([u.reshape(-1), v.reshape(-1)], -1), atol=1e-10, rtol=0)
    assert (z > 0).all()
    torch.testing.assert_close(directions.norm(dim=-1), torch.ones(35, dtype=F64))


def test_look_at_puts_the_target_at_the_principal_point_and_up_at_the_top():
    camera = Camera.look_at((3.0, 1.0, 2.0), (0.0, 0.0, 0.5), width=64, height=48)
    uv, z = project(camera, torch.tensor([[0.0, 0.0, 0.5], [0.0, 0.0, 1.5]], dtype=F64))
    torch.testing.assert_close(uv[0], torch.tensor([32.0, 24.0], dtype=F64))
    assert uv[1, 1] < uv[0, 1]  # a point above the target appears higher in the image (smaller v)
    torch.testing.assert_close(z[0], torch.tensor(math.dist((3, 1, 2), (0, 0, 0.5)), dtype=F64))


def test_opengl_conversion_matches_nerf_convention():
    # NeRF's camera at (0, 0, 4) with the identity rotation looks down -z with y up in the image.
    c2w_gl = torch.eye(4, dtype=F64)
    c2w_gl[2, 3] = 4.0
    camera = Camera.from_opengl(c2w_gl, intrinsics(50, 50, 16, 16), 32, 32)
    torch.testing.assert_close(camera.R, torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=F64)))
    torch.testing.assert_close(camera.center, torch.tensor([0.0, 0.0, 4.0], dtype=F64))
    uv, _ = project(camera, torch.tensor([[0.0, 0.5, 0.0]], dtype=F64))
    assert uv[0, 1] < 16  # world +y is up in this view
    torch.testing.assert_close(camera.to_opengl(), c2w_gl)
    some = torch.linalg.qr(torch.randn(4, 4, dtype=F64))[0]
    torch.testing.assert_close(opengl_to_opencv(opencv_to_opengl(some)), some)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"K": intrinsics(-10, 10, 5, 5)}, "focal"),
        ({"K": torch.ones(3, 3)}, "upper triangular"),
        ({"R": torch.ones(3, 3)}, "rotation"),
        ({"R": torch.diag(torch.tensor([1.0, 1.0, -1.0]))}, "det"),
        ({"t": torch.tensor([0.0, math.nan, 0.0])}, "non-finite"),
        ({"t": torch.zeros(4)}, "shape"),
        ({"width": 0}, "size"),
    ],
)
def test_malformed_cameras_are_refused(kwargs, message):
    good = {"K": intrinsics(10, 10, 5, 5), "R": torch.eye(3), "t": torch.zeros(3), "width": 10, "height": 10}
    with pytest.raises(ValueError, match=message):
        Camera(**{**good, **kwargs})
    with pytest.raises(ValueError, match="parallel"):
        look_at((0, 0, 3), (0, 0, 0), up=(0, 0, 1))


def test_rigs_place_cameras_where_they_say():
    orbit = orbit_cameras(8, radius=3.0, elevation_degrees=30.0)
    centers = torch.stack([c.center for c in orbit])
    torch.testing.assert_close(centers.norm(dim=-1), torch.full((8,), 3.0, dtype=F64))
    torch.testing.assert_close(centers[:, 2], torch.full((8,), 1.5, dtype=F64))
    hemi = torch.stack([c.center for c in hemisphere_cameras(4000, radius=2.0, min_elevation_degrees=0.0)])
    assert (hemi[:, 2] >= 0).all()
    assert abs(hemi[:, 2].mean().item() - 1.0) < 0.03  # area-uniform on a hemisphere: E[z] = r / 2
    anywhere = torch.stack([c.center for c in random_cameras(4000, radius=(3.0, 4.0))])
    assert abs(anywhere[:, 2].mean().item()) < 0.1 and 3.0 <= anywhere.norm(dim=-1).min()
    for camera in orbit + hemisphere_cameras(5, min_elevation_degrees=89.9):  # looks at the origin, also from above
        uv, _ = project(camera, torch.zeros(1, 3, dtype=F64))
        torch.testing.assert_close(uv[0], torch.tensor([32.0, 32.0], dtype=F64))


# --- shapes ------------------------------------------------------------------------------------------------------

SHAPES = {
    "sphere": Sphere((0.1, -0.2, 0.05), 0.7),
    "box": Box((0.05, 0.1, -0.1), (0.6, 0.4, 0.3)),
    "torus": Torus((0.0, 0.1, 0.0), 0.6, 0.25),
    "capsule": Capsule((-0.4, -0.1, -0.3), (0.4, 0.2, 0.3), 0.25),
    "union": Union(children=(Box((0.0, 0.0, -0.4), (0.7, 0.7, 0.1)), Sphere((0.3, 0.0, 0.0), 0.35),
                             Capsule((-0.3, 0.0, -0.4), (-0.3, 0.0, 0.4), 0.2))),
}


@pytest.mark.parametrize("name", SHAPES)
def test_intersections_equal_the_first_root_found_by_brute_force(name):
    shape = SHAPES[name]
    origins, directions = random_rays(64, seed=1)
    t = shape.intersect(origins, directions)
    reference = first_crossing_by_bisection(shape.sdf, origins, directions)
    # Rays that graze the surface are ill-conditioned for both; compare those that enter at an angle.
    hit = torch.isfinite(reference)
    assert hit.sum() >= 15 and (~hit).sum() > 3
    assert torch.equal(torch.isfinite(t), hit)
    torch.testing.assert_close(t[hit], reference[hit], atol=1e-7, rtol=0)


def test_torus_hits_equal_the_roots_of_its_quartic():
    torus = Torus(major=0.6, minor=0.25)
    origins, directions = random_rays(200, seed=2)
    t = torus.intersect(origins, directions)
    R, r = torus.major, torus.minor
    expected = []
    for o, d in zip(origins.numpy(), directions.numpy(), strict=True):
        # (|p|^2 + R^2 - r^2)^2 = 4 R^2 (p_x^2 + p_y^2) with p = o + t d, a quartic in t.
        k = o @ o + R**2 - r**2
        quadratic = np.array([1.0, 2 * (o @ d), k])  # |p|^2 + R^2 - r^2 as a polynomial in t (|d| = 1)
        planar = np.array([d[0] ** 2 + d[1] ** 2, 2 * (o[0] * d[0] + o[1] * d[1]), o[0] ** 2 + o[1] ** 2])
        roots = np.roots(np.polysub(np.polymul(quadratic, quadratic), 4 * R**2 * np.pad(planar, (2, 0))))
        real = roots[(abs(roots.imag) < 1e-7) & (roots.real > 0)].real
        expected.append(real.min() if len(real) else math.inf)
    expected = torch.tensor(expected, dtype=F64)
    assert torch.equal(torch.isfinite(t), torch.isfinite(expected))
    torch.testing.assert_close(t[torch.isfinite(t)], expected[torch.isfinite(t)], atol=1e-8, rtol=0)


@pytest.mark.parametrize("name", SHAPES)
def test_signed_distances_are_exact_outside(name):
    shape = SHAPES[name]
    surface, normals = shape.sample_surface(20_000, torch.Generator().manual_seed(3))
    assert shape.sdf(surface).abs().max() < 1e-9
    torch.testing.assert_close(shape.normal(surface), normals, atol=1e-6, rtol=0)
    # Outside, the distance is the distance to the nearest surface point (dense samples bound it above).
    g = torch.Generator().manual_seed(4)
    x = 1.5 * (2 * torch.rand(300, 3, generator=g, dtype=F64) - 1)
    x = x[shape.sdf(x) > 0.05]
    brute = torch.cdist(x, surface).min(dim=1).values
    d = shape.sdf(x)
    assert (d <= brute + 1e-12).all() and (brute - d).max() < 0.02


def test_surface_samples_are_uniform_by_area():
    g = torch.Generator().manual_seed(5)
    R, r = 0.6, 0.25
    points, normals = Torus(major=R, minor=r).sample_surface(40_000, g)
    # Outer half (cos phi > 0) of a torus has area 2 pi r (pi R + 2 r) of the total 4 pi^2 R r.
    outer = (points[:, :2].norm(dim=-1) > R).double().mean().item()
    assert abs(outer - (math.pi * R + 2 * r) / (2 * math.pi * R)) < 0.01
    box = Box(half_size=(0.6, 0.4, 0.2))
    points, normals = box.sample_surface(40_000, g)
    share = normals.abs().argmax(dim=1).bincount(minlength=3).double() / 40_000
    torch.testing.assert_close(share, torch.tensor([0.08, 0.12, 0.24], dtype=F64) / 0.44, atol=0.01, rtol=0)
    capsule = Capsule((0, 0, -0.5), (0, 0, 0.5), 0.25)
    points, _ = capsule.sample_surface(40_000, g)
    on_caps = (points[:, 2].abs() > 0.5).double().mean().item()
    assert abs(on_caps - 4 * math.pi * 0.25**2 / capsule.area()) < 0.01
    union = SHAPES["union"]
    points, _ = union.sample_surface(5_000, g)
    assert union.sdf(points).abs().max() < 1e-9  # buried parts of the children are not sampled


# --- meshes ------------------------------------------------------------------------------------------------------


def box_mesh(half=(0.6, 0.4, 0.3)) -> TriangleMesh:
    import trimesh

    mesh = trimesh.creation.box(extents=2 * np.asarray(half))
    return TriangleMesh(mesh.vertices, mesh.faces, name="box mesh")


def test_a_box_mesh_agrees_with_the_analytic_box():
    mesh, box = box_mesh(), Box(half_size=(0.6, 0.4, 0.3))
    origins, directions = random_rays(300, seed=6)
    t_mesh, t_box = mesh.intersect(origins, directions), box.intersect(origins, directions)
    assert torch.equal(torch.isfinite(t_mesh), torch.isfinite(t_box))
    torch.testing.assert_close(t_mesh[torch.isfinite(t_box)], t_box[torch.isfinite(t_box)], atol=1e-12, rtol=0)
    x = 1.2 * (2 * torch.rand(2000, 3, generator=torch.Generator().manual_seed(7), dtype=F64) - 1)
    torch.testing.assert_close(mesh.sdf(x), box.sdf(x), atol=1e-12, rtol=0)  # convex: exact inside too
    wind = mesh.winding_number(x)
    torch.testing.assert_close(wind, (box.sdf(x) < 0).double(), atol=1e-9, rtol=0)


def test_the_body_mesh_scene_is_closed_and_its_occupancy_matches_its_volume():
    import trimesh

    body = make_scene("body").shape
    body.check_watertight()
    volume = trimesh.Trimesh(body.vertices.numpy(), body.faces.numpy(), process=False).volume
    # Overlapping closed limbs: trimesh's signed volume counts overlaps twice, so it bounds the union from above.
    samples = occupancy_samples(body, 4000, seed=0, near_fraction=0.0, padding=0.0)
    low, high = body.bounds()
    estimate = samples.values.mean().item() * torch.prod(high - low).item()
    assert 0.75 * volume < estimate <= volume * 1.05
    origins, directions = pixel_rays(orbit_cameras(1, width=24, height=24)[0])
    t = body.intersect(origins, directions)
    from vision3d.scenes.mesh import ray_triangle_hits

    torch.testing.assert_close(t, ray_triangle_hits(origins, directions, body.vertices, body.faces)[0])
    assert torch.isfinite(t).sum() > 20


def test_open_meshes_and_bad_files_are_refused(tmp_path):
    mesh = box_mesh()
    open_mesh = TriangleMesh(mesh.vertices, mesh.faces[:-1], name="open box")
    with pytest.raises(ValueError, match="open box is not watertight"):
        open_mesh.occupancy(torch.zeros(1, 3, dtype=F64))
    with pytest.raises(ValueError, match="face indices"):
        TriangleMesh(mesh.vertices, mesh.faces + 100)
    for suffix in (".ply", ".obj"):
        mesh.save(tmp_path / f"box{suffix}")
        loaded = load_mesh(tmp_path / f"box{suffix}")
        torch.testing.assert_close(mesh.sdf(torch.zeros(1, 3, dtype=F64)), loaded.sdf(torch.zeros(1, 3, dtype=F64)))
    (tmp_path / "junk.ply").write_text("this is not a mesh")
    with pytest.raises(ValueError, match="junk.ply"):
        load_mesh(tmp_path / "junk.ply")


# --- renders and samples -----------------------------------------------------------------------------------------


def test_rendered_depth_of_a_sphere_is_its_closed_form_intersection():
    scene = make_scene("sphere")
    camera = orbit_cameras(1, width=32, height=32)[0]
    view = render(scene, camera)
    origins, directions = pixel_rays(camera)
    b = (origins * directions).sum(-1)
    disc = b**2 - ((origins**2).sum(-1) - 0.8**2)
    expected = torch.where(disc >= 0, -b - disc.clamp_min(0).sqrt(), torch.full_like(b, math.inf)).reshape(32, 32)
    assert torch.equal(view.mask, torch.isfinite(expected))
    torch.testing.assert_close(view.depth[view.mask], expected[view.mask])
    torch.testing.assert_close(view.rgb[~view.mask], torch.ones_like(view.rgb[~view.mask]))
    points = origins.reshape(32, 32, 3) + view.depth[..., None] * directions.reshape(32, 32, 3)
    torch.testing.assert_close(view.normal[view.mask], points[view.mask] / 0.8)


def test_specular_highlights_depend_on_the_view_and_view_sets_round_trip(tmp_path):
    scene = make_scene("sphere", specular=0.5)
    cameras = orbit_cameras(3, width=16, height=16)
    views = render_views(scene, cameras)
    assert views.rgb.shape == (3, 16, 16, 3) and views.rgb.max() <= 1.0
    lambertian = render_views(make_scene("sphere"), cameras)
    assert (views.rgb - lambertian.rgb).max() > 0.2
    views.save(tmp_path / "views.npz")
    loaded = ViewSet.load(tmp_path / "views.npz")
    assert torch.equal(loaded.rgb, views.rgb) and torch.equal(loaded.mask, views.mask)
    torch.testing.assert_close(loaded.cameras[1].R, cameras[1].R)
    np.savez(tmp_path / "bad.npz", rgb=np.zeros((2, 4, 4, 3)))
    with pytest.raises(ValueError, match="bad.npz.*missing"):
        ViewSet.load(tmp_path / "bad.npz")


def test_every_library_scene_renders_its_shape():
    for name in scene_names():
        view = render(make_scene(name), Camera.look_at((3.0, -2.0, 1.5), width=24, height=24))
        assert 0.02 < view.mask.double().mean() < 0.9, name
        torch.testing.assert_close(view.normal[view.mask].norm(dim=-1), torch.ones(int(view.mask.sum()), dtype=F64))


def test_samplers_label_points_with_the_exact_distance():
    torus = SHAPES["torus"]
    samples = sdf_samples(torus, 5000, seed=0)
    torch.testing.assert_close(samples.values, torus.sdf(samples.points))
    assert (samples.values.abs() < 0.02).double().mean() > 0.4  # most points hug the surface, as in DeepSDF
    occupancy = occupancy_samples(torus, 5000, seed=0)
    assert torch.equal(occupancy.values.bool(), torus.sdf(occupancy.points) < 0)
    again = occupancy_samples(torus, 5000, seed=0)
    assert torch.equal(again.points, occupancy.points)
    surface = surface_samples(torus, 100, seed=1)
    assert surface.normals.shape == (100, 3)
    with pytest.raises(ValueError, match="at least one"):
        sdf_samples(torus, 0)
    with pytest.raises(ValueError, match="unknown scene"):
        make_scene("teapot")
