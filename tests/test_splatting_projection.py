"""EWA projection of 3D Gaussians (vision3d.splatting.projection) against independent references: the cameras'
own projection, autograd Jacobians, Monte Carlo samples pushed through the exact perspective map, eigenvalues,
gradcheck and (when installed) gsplat's pure-torch reference."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from vision3d.scenes.cameras import Camera, intrinsics, look_at, project
from vision3d.splatting.projection import (
    conic_and_radius,
    frustum_limits,
    project_gaussians,
    projection_jacobian,
    screen_covariance,
    world_to_camera,
)

DTYPE = torch.float64


def make_camera(width: int = 96, height: int = 64, fov_degrees: float = 40.0) -> Camera:
    """A non-square image, so that swapped u/v or width/height show up."""
    return Camera.look_at((3.0, -2.0, 1.5), (0.0, 0.0, 0.0), fov_degrees=fov_degrees, width=width, height=height)


def off_centre_camera() -> Camera:
    """Different focal lengths and a principal point away from the centre: the clamp's limits are asymmetric."""
    R, t = look_at((-1.0, 3.0, 2.0))
    return Camera(intrinsics(80.0, 90.0, 30.0, 40.0), R, t, 96, 64)


def random_rotations(n: int, generator: torch.Generator) -> Tensor:
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=generator, dtype=DTYPE))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    return q * torch.linalg.det(q)[:, None, None]  # det +1


def covariances_from_scales(scales: Tensor, generator: torch.Generator) -> Tensor:
    """Sigma = Q diag(s^2) Q^T with random rotations Q."""
    Q = random_rotations(len(scales), generator)
    return Q @ torch.diag_embed(scales**2) @ Q.transpose(-1, -2)


def camera_to_world(camera: Camera, camera_points: Tensor) -> Tensor:
    """Inverse of X_c = R X + t, row form: X = (X_c - t) R."""
    return (camera_points - camera.t) @ camera.R


def points_at_pixels(camera: Camera, uv: Tensor, depth: Tensor) -> Tensor:
    """Camera-space points that project to pixels ``uv`` [N, 2] at depths [N]."""
    homogeneous = torch.cat([uv, torch.ones_like(uv[:, :1])], dim=-1)
    return torch.linalg.solve(camera.K, homogeneous.T).T * depth[:, None]


def random_visible_points(camera: Camera, n: int, generator: torch.Generator, spill: float = 0.0) -> Tensor:
    """Camera-space points over the image (widened by ``spill`` of its size on each side), depths in [1, 8]."""
    size = torch.tensor([camera.width, camera.height], dtype=DTYPE)
    uv = (torch.rand(n, 2, generator=generator, dtype=DTYPE) * (1 + 2 * spill) - spill) * size
    depth = 1.0 + 7.0 * torch.rand(n, generator=generator, dtype=DTYPE)
    return points_at_pixels(camera, uv, depth)


def exact_pixel_jacobian(camera: Camera, camera_points: Tensor) -> Tensor:
    """Autograd Jacobian [N, 2, 3] of X_c -> (K X_c)[:2] / z, the reference for projection_jacobian."""

    def to_pixels(points: Tensor) -> Tensor:
        uvw = points @ camera.K.T
        return uvw[:, :2] / uvw[:, 2:]

    full = torch.autograd.functional.jacobian(to_pixels, camera_points)  # [N, 2, N, 3]
    index = torch.arange(len(camera_points))
    return full[index, :, index, :]


# --- the 2D mean and the Jacobian ---------------------------------------------------------------------------------


def test_means2d_match_camera_projection():
    generator = torch.Generator().manual_seed(0)
    for camera in (make_camera(), off_centre_camera()):
        means = camera_to_world(camera, random_visible_points(camera, 64, generator, spill=0.5))
        covariances = covariances_from_scales(torch.full((64, 3), 0.05, dtype=DTYPE), generator)
        projected = project_gaussians(means, covariances, camera)
        uv, z = project(camera, means)
        torch.testing.assert_close(projected.means2d, uv, rtol=0, atol=1e-10)
        torch.testing.assert_close(projected.depths, z, rtol=0, atol=1e-12)


def test_jacobian_matches_autograd_inside_frustum():
    generator = torch.Generator().manual_seed(1)
    for camera in (make_camera(), off_centre_camera()):
        # Up to 10% of the image beyond each edge: still inside the clamp's 15% margin, so J must be exact.
        points = random_visible_points(camera, 200, generator, spill=0.1)
        J = projection_jacobian(points, camera)
        reference = exact_pixel_jacobian(camera, points)
        assert torch.allclose(J, reference, rtol=1e-12, atol=1e-12), (J - reference).abs().max()
        torch.testing.assert_close(projection_jacobian(points, camera, clamp=False), reference, rtol=1e-12, atol=1e-12)


def test_jacobian_is_clamped_far_outside_frustum():
    camera = off_centre_camera()
    (x_low, x_high), (y_low, y_high) = frustum_limits(camera)
    fx, fy, cx, cy = (camera.K[0, 0].item(), camera.K[1, 1].item(), camera.K[0, 2].item(), camera.K[1, 2].item())
    # 3DGS's limits: the image in normalised coordinates widened by 0.3 tan(fov / 2) on each side.
    assert x_high == pytest.approx((camera.width - cx) / fx + 0.3 * camera.width / (2 * fx))
    assert y_low == pytest.approx(-cy / fy - 0.3 * camera.height / (2 * fy))
    depth = 3.0
    far_out = torch.tensor([[5 * x_high * depth, 0.1, depth], [0.2, 4 * y_low * depth, depth]], dtype=DTYPE)
    at_limit = torch.tensor([[x_high * depth, 0.1, depth], [0.2, y_low * depth, depth]], dtype=DTYPE)
    J = projection_jacobian(far_out, camera)
    # The clamped J is the exact Jacobian at the nearest point of the widened frustum, at the same depth ...
    torch.testing.assert_close(J, exact_pixel_jacobian(camera, at_limit), rtol=1e-12, atol=1e-12)
    # ... and not the exact Jacobian at the point itself, whose t_z column is 5x (4x) larger.
    exact = exact_pixel_jacobian(camera, far_out)
    assert exact[0, 0, 2].abs() > 4 * J[0, 0, 2].abs() and exact[1, 1, 2].abs() > 3 * J[1, 1, 2].abs()


# --- the screen covariance ----------------------------------------------------------------------------------------


def test_screen_covariance_matches_monte_carlo():
    """A small Gaussian (sigma <= 1% of its depth) off the optical axis: push 200k samples through the exact
    perspective map and compare the samples' mean and covariance with mu' and Sigma' - blur I."""
    generator = torch.Generator().manual_seed(2)
    camera = make_camera(width=720, height=480)
    mean = camera_to_world(
        camera, points_at_pixels(camera, torch.tensor([[500.0, 130.0]], dtype=DTYPE), torch.tensor([4.0], dtype=DTYPE))
    )
    covariance = covariances_from_scales(torch.tensor([[0.04, 0.012, 0.025]], dtype=DTYPE), generator)
    blur = 0.3
    projected = project_gaussians(mean, covariance, camera, blur=blur)

    cholesky = torch.linalg.cholesky(covariance[0])
    samples = mean + torch.randn(200_000, 3, generator=generator, dtype=DTYPE) @ cholesky.T
    uv, _ = project(camera, samples)
    sample_mean, sample_cov = uv.mean(0), torch.cov(uv.T)

    cov = projected.cov2d[0] - blur * torch.eye(2, dtype=DTYPE)
    sigma_max = torch.linalg.eigvalsh(cov).max().sqrt()
    assert sigma_max > 3.0  # several pixels, so the blur does not hide the comparison
    mean_error = (sample_mean - projected.means2d[0]).norm() / sigma_max
    cov_error = (sample_cov - cov).norm() / cov.norm()
    assert mean_error < 0.01, f"mean off by {mean_error:.4f} sigma"
    assert cov_error < 0.015, f"covariance off by {cov_error:.4f} (relative Frobenius)"


def extreme_gaussians(camera: Camera, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Scales from 1e-6 to 1e3 (also very anisotropic), centres over and around the image, on and near the border,
    close to the near plane and far away."""
    n = 300
    points = random_visible_points(camera, n, generator, spill=0.3)
    border = points_at_pixels(
        camera,
        torch.tensor(
            [[0.0, 0.0], [camera.width, camera.height], [0.0, camera.height / 2], [camera.width, 0.5]], dtype=DTYPE
        ),
        torch.tensor([2.0, 0.05, 5.0, 100.0], dtype=DTYPE),
    )
    points = torch.cat([points, border, torch.tensor([[0.0, 0.0, 0.02], [1e3, -2e3, 1e4]], dtype=DTYPE)])
    log_scales = torch.empty(len(points), 3, dtype=DTYPE).uniform_(math.log(1e-6), math.log(1e3), generator=generator)
    return camera_to_world(camera, points), covariances_from_scales(log_scales.exp(), generator)


def test_screen_covariance_is_symmetric_positive_definite_and_conic_inverts_it():
    generator = torch.Generator().manual_seed(3)
    camera = make_camera()
    means, covariances = extreme_gaussians(camera, generator)
    blur = 0.3
    projected = project_gaussians(means, covariances, camera, blur=blur)
    cov2d = projected.cov2d
    assert torch.isfinite(cov2d).all() and torch.isfinite(projected.conics).all()
    assert torch.equal(cov2d, cov2d.transpose(-1, -2))
    eigenvalues = torch.linalg.eigvalsh(cov2d)
    # Sigma' = (PSD) + blur I has every eigenvalue >= blur, up to rounding relative to the largest.
    assert (eigenvalues[:, 0] >= blur - 1e-9 * eigenvalues[:, 1]).all()
    a, b, c = projected.conics.unbind(-1)
    conic = torch.stack([torch.stack([a, b], -1), torch.stack([b, c], -1)], -2)
    identity_error = (conic @ cov2d - torch.eye(2, dtype=DTYPE)).abs().amax(dim=(1, 2))
    assert identity_error.max() < 1e-6, identity_error.max()
    assert projected.visible.sum() > 100 and (~projected.visible).sum() > 10  # both kinds were exercised
    # In float32 (training) the same extremes must stay finite; rounding may cull a few needles (det <= 0).
    single = project_gaussians(means.float(), covariances.float(), camera, blur=blur)
    for field in (single.means2d, single.cov2d, single.conics, single.depths):
        assert torch.isfinite(field).all()


def test_screen_covariance_alone_is_the_sandwich_product():
    """screen_covariance on its own: J W Sigma W^T J^T + blur I, written out with einsum."""
    generator = torch.Generator().manual_seed(4)
    camera = make_camera()
    points = random_visible_points(camera, 20, generator)
    covariances = covariances_from_scales(torch.rand(20, 3, generator=generator, dtype=DTYPE), generator)
    J = projection_jacobian(points, camera)
    reference = torch.einsum("nij,jk,nkl,ml,npm->nip", J, camera.R, covariances, camera.R, J) + 0.7 * torch.eye(2)
    torch.testing.assert_close(screen_covariance(covariances, J, camera, blur=0.7), reference)


# --- the radius and culling ---------------------------------------------------------------------------------------


def test_radius_bounds_three_sigma_ellipse():
    generator = torch.Generator().manual_seed(5)
    cov2d = covariances_from_scales(torch.rand(500, 3, generator=generator, dtype=DTYPE) * 20, generator)[:, :2, :2]
    cov2d = cov2d + 0.3 * torch.eye(2, dtype=DTYPE)
    _, radii = conic_and_radius(cov2d)
    assert radii.dtype == torch.int64
    sigma_max = torch.linalg.eigvalsh(cov2d)[:, 1].sqrt()
    assert (radii >= 3 * sigma_max).all() and (radii < 3 * sigma_max + 1).all()
    # Points on the ellipse d^T Sigma'^{-1} d = 9 are d = 3 L (cos, sin) with Sigma' = L L^T.
    angles = torch.linspace(0, 2 * math.pi, 721, dtype=DTYPE)
    circle = torch.stack([angles.cos(), angles.sin()])  # [2, 721]
    ellipse = 3 * torch.linalg.cholesky(cov2d) @ circle  # [N, 2, 721]
    assert (ellipse.abs().amax(dim=(1, 2)) <= radii).all()


def test_culling_behind_near_plane_and_outside_image():
    camera = make_camera()
    (_, x_high), _ = frustum_limits(camera)
    camera_points = torch.tensor(
        [
            [0.0, 0.0, 4.0],  # in front, centred: the control, visible
            [0.0, 0.0, -2.0],  # behind the camera
            [0.3, 0.1, 0.0],  # in the camera's plane (t_z = 0 exactly)
            [0.0, 0.0, 0.005],  # in front of the camera but before the near plane
            [3 * x_high * 4.0, 0.0, 4.0],  # far to the right of the image
            [0.0, -3.0 * 4.0, 4.0],  # far above the image
        ],
        dtype=DTYPE,
    )
    covariances = torch.eye(3, dtype=DTYPE).expand(6, 3, 3) * 0.02**2
    projected = project_gaussians(camera_to_world(camera, camera_points), covariances, camera)
    assert projected.visible.tolist() == [True, False, False, False, False, False]
    assert projected.radii[0] > 0 and (projected.radii[1:] == 0).all()
    for field in (projected.means2d, projected.cov2d, projected.conics, projected.depths):
        assert torch.isfinite(field).all()
    torch.testing.assert_close(projected.depths, camera_points[:, 2])
    # Just beyond the near plane is visible; the near plane is an argument.
    just_in_front = camera_to_world(camera, torch.tensor([[0.0, 0.0, 0.011]], dtype=DTYPE))
    assert project_gaussians(just_in_front, covariances[:1], camera).visible.item()
    assert not project_gaussians(just_in_front, covariances[:1], camera, near=0.02).visible.item()


def test_footprint_overlapping_image_stays_visible():
    """The centre 4 px left of the image: a wide Gaussian reaches in and stays, a narrow one is culled."""
    camera = make_camera()
    centre = points_at_pixels(
        camera, torch.tensor([[-4.0, camera.height / 2]], dtype=DTYPE), torch.tensor([4.0], dtype=DTYPE)
    )
    means = camera_to_world(camera, centre.expand(2, 3))
    covariances = torch.eye(3, dtype=DTYPE) * torch.tensor([0.1, 1e-5], dtype=DTYPE)[:, None, None] ** 2
    projected = project_gaussians(means, covariances, camera)
    assert projected.means2d[:, 0].tolist() == pytest.approx([-4.0, -4.0])
    assert projected.visible.tolist() == [True, False]
    assert projected.radii[0] > 4 and projected.radii[1] == 0
    # The rule is the box's overlap: a footprint with radius r is visible iff u + r > 0 (here u = -4).
    _, unculled = conic_and_radius(projected.cov2d)
    assert unculled[1] == 2 and unculled[1] - 4 <= 0


# --- gradients ----------------------------------------------------------------------------------------------------


def test_gradcheck_means2d_and_conics():
    generator = torch.Generator().manual_seed(6)
    camera = make_camera()
    means = camera_to_world(camera, random_visible_points(camera, 3, generator)).requires_grad_()
    covariances = covariances_from_scales(0.05 + 0.1 * torch.rand(3, 3, generator=generator, dtype=DTYPE), generator)
    covariances.requires_grad_()

    def outputs(means: Tensor, covariances: Tensor) -> tuple[Tensor, Tensor]:
        projected = project_gaussians(means, covariances, camera)
        return projected.means2d, projected.conics

    assert torch.autograd.gradcheck(outputs, (means, covariances), eps=1e-6, atol=1e-6, rtol=1e-5)
    projected = project_gaussians(means, covariances, camera)
    assert not projected.radii.requires_grad and projected.radii.dtype == torch.int64


def test_culled_gaussians_give_finite_gradients():
    """Gaussians on the camera plane or behind it must not poison training with inf / NaN gradients."""
    camera = make_camera()
    camera_points = torch.tensor([[0.1, 0.0, 3.0], [0.3, 0.1, 0.0], [0.0, 0.2, -1.0], [0.0, 0.0, 1e-9]], dtype=DTYPE)
    means = camera_to_world(camera, camera_points).requires_grad_()
    covariances = (torch.eye(3, dtype=DTYPE).expand(4, 3, 3) * 0.01).clone().requires_grad_()
    projected = project_gaussians(means, covariances, camera)
    assert projected.visible.tolist() == [True, False, False, False]
    loss = projected.means2d.sum() + projected.conics.sum() + projected.cov2d.sum() + projected.depths.sum()
    loss.backward()
    assert torch.isfinite(means.grad).all() and torch.isfinite(covariances.grad).all()
    # Through means2d and conics alone the culled Gaussians get exactly zero gradient.
    means.grad = None
    project_gaussians(means, covariances, camera).means2d.sum().backward()
    assert (means.grad[1:] == 0).all() and (means.grad[0] != 0).any()


def test_float32_inputs_stay_float32_and_agree():
    generator = torch.Generator().manual_seed(7)
    camera = make_camera()
    means = camera_to_world(camera, random_visible_points(camera, 50, generator))
    covariances = covariances_from_scales(0.02 + 0.1 * torch.rand(50, 3, generator=generator, dtype=DTYPE), generator)
    single = project_gaussians(means.float(), covariances.float(), camera)
    double = project_gaussians(means, covariances, camera)
    for name in ("means2d", "cov2d", "conics", "depths"):
        value = getattr(single, name)
        assert value.dtype == torch.float32, name
        torch.testing.assert_close(value.double(), getattr(double, name), rtol=1e-4, atol=1e-4)
    assert (single.radii - double.radii).abs().max() <= 1
    assert world_to_camera(means.float(), camera).dtype == torch.float32  # the camera's float64 matrices were cast


# --- gsplat, when installed ---------------------------------------------------------------------------------------


def test_matches_gsplat_reference():
    """gsplat's pure-torch projection (the reference its CUDA kernels are tested against) on the same inputs."""
    pytest.importorskip("gsplat")
    torch_impl = pytest.importorskip("gsplat.cuda._torch_impl")
    reference = getattr(torch_impl, "_fully_fused_projection", None)
    if reference is None:
        pytest.skip("this gsplat version has no gsplat.cuda._torch_impl._fully_fused_projection")
    generator = torch.Generator().manual_seed(8)
    camera = off_centre_camera()
    means, covariances = extreme_gaussians(camera, generator)
    viewmat = torch.eye(4, dtype=DTYPE)
    viewmat[:3, :3], viewmat[:3, 3] = camera.R, camera.t
    # Signature (means [N, 3], covars [N, 3, 3], viewmats [C, 4, 4], Ks [C, 3, 3], width, height, eps2d, near_plane,
    # ...) -> (radii, means2d, depths, conics, compensations), each with a leading camera axis C.
    radii, means2d, depths, conics, _ = reference(
        means, covariances, viewmat[None], camera.K[None], camera.width, camera.height, eps2d=0.3, near_plane=0.01
    )
    radii, means2d, depths, conics = radii[0], means2d[0], depths[0], conics[0]
    ours = project_gaussians(means, covariances, camera, near=0.01, blur=0.3)

    # gsplat >= 1.5 returns per-axis radii [N, 2] with its own rule; older versions one radius [N] like ours.
    theirs_visible = (radii > 0).all(-1) if radii.ndim == 2 else radii > 0
    both = ours.visible & theirs_visible
    assert both.sum() > 100
    inside = ours.visible & (ours.means2d[:, 0] > 0) & (ours.means2d[:, 0] < camera.width)
    inside &= (ours.means2d[:, 1] > 0) & (ours.means2d[:, 1] < camera.height)
    assert theirs_visible[inside].all()  # a centre in the image is visible under either radius rule
    torch.testing.assert_close(ours.depths, depths.to(DTYPE))
    torch.testing.assert_close(ours.means2d[both], means2d[both].to(DTYPE), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(ours.conics[both], conics[both].to(DTYPE), rtol=1e-6, atol=1e-12)
    if radii.ndim == 1:
        # gsplat floors the eigenvalue gap at 0.1 px, so its radius is ours or one more.
        difference = radii[both].long() - ours.radii[both]
        assert ((difference == 0) | (difference == 1)).all()


# --- bad input ----------------------------------------------------------------------------------------------------


def _good_inputs(n: int = 4) -> tuple[Tensor, Tensor]:
    return torch.zeros(n, 3, dtype=DTYPE), torch.eye(3, dtype=DTYPE).repeat(n, 1, 1) * 0.01


def _nan_means() -> tuple[Tensor, Tensor]:
    means, covariances = _good_inputs()
    means[2, 1] = float("nan")
    return means, covariances


def _inf_covariances() -> tuple[Tensor, Tensor]:
    means, covariances = _good_inputs()
    covariances[1, 0, 0] = float("inf")
    return means, covariances


@pytest.mark.parametrize(
    ("make_inputs", "message"),
    [
        (lambda: (torch.zeros(4, 2, dtype=DTYPE), _good_inputs()[1]), r"means must have shape \[N, 3\], got \[4, 2\]"),
        (lambda: (torch.zeros(3, dtype=DTYPE), _good_inputs()[1]), r"means must have shape \[N, 3\], got \[3\]"),
        (lambda: (_good_inputs()[0], torch.zeros(4, 3, dtype=DTYPE)), r"covariances must have shape \[N, 3, 3\]"),
        (lambda: (_good_inputs()[0], _good_inputs(5)[1]), r"covariances must have shape .* = \[4, 3, 3\]"),
        (_nan_means, r"means has non-finite entries .*first: \[2\]"),
        (_inf_covariances, r"covariances has non-finite entries .*first: \[1\]"),
        (lambda: (torch.zeros(4, 3, dtype=torch.int64), _good_inputs()[1]), "floating dtype"),
        (lambda: (_good_inputs()[0].float(), _good_inputs()[1]), "floating dtype"),
    ],
)
def test_bad_inputs_raise(make_inputs, message):
    means, covariances = make_inputs()
    with pytest.raises(ValueError, match=message):
        project_gaussians(means, covariances, make_camera())


@pytest.mark.parametrize(("near", "blur", "message"), [(0.0, 0.3, "near must be positive"), (0.01, -1.0, "blur")])
def test_bad_arguments_raise(near, blur, message):
    means, covariances = _good_inputs()
    with pytest.raises(ValueError, match=message):
        project_gaussians(means, covariances, make_camera(), near=near, blur=blur)
