"""vision3d.splatting.render: the whole pipeline against closed forms, occlusion, view-dependent colour, gradients,
a short fit to a library scene, and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from vision3d.image_metrics import psnr
from vision3d.scenes.cameras import Camera, intrinsics
from vision3d.splatting.gaussians import Gaussians
from vision3d.splatting.projection import project_gaussians
from vision3d.splatting.render import render_gaussians
from vision3d.splatting.sh import eval_sh

F64 = torch.float64
SH_C0 = 0.5 / math.sqrt(math.pi)  # Y_0 = 1 / (2 sqrt(pi)), written out here rather than imported
SH_C1 = math.sqrt(3.0 / (4.0 * math.pi))
ALPHA_FLOOR = 1.0 / 255.0


def axis_camera(width: int, height: int, focal: float, cx: float, cy: float) -> Camera:
    """A camera at the world origin looking down +z (world = camera frame)."""
    return Camera(intrinsics(focal, focal, cx, cy), torch.eye(3, dtype=F64), torch.zeros(3, dtype=F64), width, height)


def make_gaussians(means, scales, opacities, sh, quaternions=None) -> Gaussians:
    means = torch.as_tensor(means, dtype=F64)
    n = means.shape[0]
    if quaternions is None:
        quaternions = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=F64).repeat(n, 1)
    opacities = torch.as_tensor(opacities, dtype=F64)
    return Gaussians(
        means=means,
        log_scales=torch.log(torch.as_tensor(scales, dtype=F64)),
        quaternions=torch.as_tensor(quaternions, dtype=F64),
        opacity_logits=torch.log(opacities / (1 - opacities)),
        sh=torch.as_tensor(sh, dtype=F64),
    )


def pixel_centres(width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys, xs = torch.meshgrid(torch.arange(height, dtype=F64), torch.arange(width, dtype=F64), indexing="ij")
    return xs + 0.5, ys + 0.5


# ----------------------------------------------------------------------------------------------------------------
# 1. One Gaussian against the closed form


def test_single_isotropic_gaussian_matches_closed_form():
    width, height, focal, cx, cy = 24, 20, 30.0, 11.3, 9.6
    z, sigma, opacity, blur = 4.0, 0.25, 0.7, 0.3
    dc = torch.tensor([0.4, -0.2, 0.9], dtype=F64)
    gaussians = make_gaussians([[0.0, 0.0, z]], [[sigma] * 3], [opacity], dc.reshape(1, 1, 3))
    background = torch.tensor([0.1, 0.5, 0.3], dtype=F64)
    out = render_gaussians(gaussians, axis_camera(width, height, focal, cx, cy), background, blur=blur)

    # On the optical axis J = [f/z I | 0], so Sigma' = (f sigma / z)^2 I + blur I, centred on the principal point.
    variance = (focal * sigma / z) ** 2 + blur
    radius = math.ceil(3.0 * math.sqrt(variance))
    px, py = pixel_centres(width, height)
    dx, dy = px - cx, py - cy
    expected_alpha = opacity * torch.exp(-0.5 * (dx**2 + dy**2) / variance)
    in_footprint = (dx.abs() <= radius) & (dy.abs() <= radius) & (expected_alpha >= ALPHA_FLOOR)
    assert in_footprint.sum() > 50  # the comparison covers a real footprint, not a handful of pixels

    torch.testing.assert_close(out.alpha[in_footprint], expected_alpha[in_footprint], atol=1e-6, rtol=0)
    assert (out.alpha[~in_footprint] == 0).all()
    colour = (SH_C0 * dc + 0.5).clamp_min(0)
    alpha = expected_alpha * in_footprint
    expected_image = alpha[..., None] * colour + (1 - alpha[..., None]) * background
    torch.testing.assert_close(out.image, expected_image, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.depth, z * alpha, atol=1e-6, rtol=0)  # the alpha-weighted depth sum
    torch.testing.assert_close(out.normalized_depth()[in_footprint], torch.full_like(alpha[in_footprint], z))
    torch.testing.assert_close(out.means2d, torch.tensor([[cx, cy]], dtype=F64))
    assert out.radii.tolist() == [radius] and out.visible.tolist() == [True]


# ----------------------------------------------------------------------------------------------------------------
# 2. Occlusion


def test_nearer_gaussian_occludes_and_list_order_does_not_matter():
    camera = axis_camera(16, 16, 20.0, 8.0, 8.0)
    red, green = torch.tensor([1.0, 0.0, 0.0], dtype=F64), torch.tensor([0.0, 1.0, 0.0], dtype=F64)
    sh = ((torch.stack([red, green]) - 0.5) / SH_C0)[:, None, :]
    # Near: red, nearly opaque (alpha capped at 0.99); far: green, larger on screen so it shows around the red one.
    near_first = make_gaussians([[0.0, 0.0, 2.0], [0.0, 0.0, 4.0]], [[0.2] * 3, [1.5] * 3], [0.999, 0.999], sh)
    far_first = near_first.index(torch.tensor([1, 0]))
    white = torch.ones(3, dtype=F64)
    a, b = render_gaussians(near_first, camera, white), render_gaussians(far_first, camera, white)

    centre = a.image[7:9, 7:9]  # the four pixels around the common centre
    # Red's alpha there is 0.999 exp(-1/2 0.5 / 4.3) = 0.94 (Sigma' = 2^2 + 0.3 px^2); green gets the remaining 6%.
    assert (centre[..., 0] > 0.9).all() and (centre[..., 1] < 0.1).all() and (centre[..., 2] < 0.01).all(), centre
    # Beyond red's footprint (radius 7 px) the far green one shows over the white background.
    assert a.image[8, 15, 1] > 0.99 and a.image[8, 15, 0] < 0.5, a.image[8, 15]
    torch.testing.assert_close(a.image, b.image, atol=1e-12, rtol=0)
    torch.testing.assert_close(a.alpha, b.alpha, atol=1e-12, rtol=0)
    torch.testing.assert_close(a.depth, b.depth, atol=1e-12, rtol=0)
    # The depth channel composites z with the same weights: 2 a_red + 4 (1 - a_red) a_green, |d|^2 = 0.5 px^2 and
    # green's alpha capped at 0.99.
    alpha_red, alpha_green = 0.999 * math.exp(-0.25 / 4.3), min(0.99, 0.999 * math.exp(-0.25 / 56.55))
    expected_depth = 2.0 * alpha_red + 4.0 * (1 - alpha_red) * alpha_green
    torch.testing.assert_close(a.depth[7:9, 7:9], torch.full((2, 2), expected_depth, dtype=F64), atol=1e-9, rtol=0)


# ----------------------------------------------------------------------------------------------------------------
# 3. View-dependent colour


def test_degree_one_colour_follows_the_basis_from_opposite_sides():
    # Only the x-band coefficient (k = 3, basis -C1 d_x) is set: the colour is 1/2 - C1 d_x c_3 per channel.
    c3 = torch.tensor([0.3, 0.0, -0.3], dtype=F64)
    sh = torch.zeros(1, 4, 3, dtype=F64)
    sh[0, 3] = c3
    gaussians = make_gaussians([[0.0, 0.0, 0.0]], [[0.2] * 3], [0.6], sh)
    colours = []
    for side in (+1.0, -1.0):
        camera = Camera.look_at((3.0 * side, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0.0, 1.0), 40.0, 16, 16)
        out = render_gaussians(gaussians, camera)  # black background: image / alpha is the Gaussian's colour
        i, j = divmod(int(out.alpha.argmax()), 16)
        seen = out.image[i, j] / out.alpha[i, j]
        direction_x = -side  # the camera at x = 3 side looks along -side x
        torch.testing.assert_close(seen, 0.5 - SH_C1 * direction_x * c3, atol=1e-9, rtol=0)
        colours.append(seen)
        assert render_gaussians(gaussians, camera, sh_degree=0).image[i, j, 1] == pytest.approx(0.5 * out.alpha[i, j])
    assert (colours[0] - colours[1]).abs().max() > 0.25  # red and blue swap between the two sides


# ----------------------------------------------------------------------------------------------------------------
# 4. Gradients


def tiny_scene() -> tuple[Gaussians, Camera]:
    """3 anisotropic Gaussians of SH degree 1 in a 12 x 10 view, opacities 0.2 - 0.34."""
    generator = torch.Generator().manual_seed(1)  # chosen so the kink margins below are comfortable
    means = torch.tensor([[-0.5, -0.2, 3.0], [0.4, 0.3, 3.4], [0.1, -0.3, 2.6]], dtype=F64)
    quaternions = torch.randn(3, 4, generator=generator, dtype=F64)
    sh = 0.3 * torch.randn(3, 4, 3, generator=generator, dtype=F64)
    scales = [[0.2, 0.12, 0.3], [0.25, 0.2, 0.15], [0.15, 0.3, 0.2]]
    gaussians = make_gaussians(means, scales, [0.3, 0.25, 0.34], sh, quaternions)
    return gaussians, axis_camera(12, 10, 14.0, 6.0, 5.0)


def assert_away_from_kinks(gaussians: Gaussians, camera: Camera) -> None:
    """The rendering is smooth near these parameters: no clamp or cutoff can switch under a 1e-6 perturbation.

    * ``o < e^{4.5} / 255 = 0.353``: outside its footprint square (>= 3 standard deviations) a Gaussian's alpha is
      below 1/255 anyway, so neither the integer radius nor the square's edge can change a pixel.
    * ``o exp(power)`` is not within 1% of the 1/255 cutoff at any pixel; ``o < 0.99`` keeps the cap inactive.
    * colours stay away from ``max(., 0)``; Gaussians lie inside the view, where the Jacobian's clamp is inactive.
    """
    with torch.no_grad():
        opacities = gaussians.opacities
        assert (opacities < math.exp(4.5) / 255).all()
        projected = project_gaussians(gaussians.means, gaussians.covariances(), camera)
        assert projected.visible.all()
        px, py = pixel_centres(camera.width, camera.height)
        dx = px[..., None] - projected.means2d[:, 0]
        dy = py[..., None] - projected.means2d[:, 1]
        a, b, c = projected.conics.unbind(1)
        log_alpha = torch.log(opacities) - 0.5 * (a * dx**2 + 2 * b * dx * dy + c * dy**2)
        assert (log_alpha - math.log(ALPHA_FLOOR)).abs().min() > 0.01
        assert ((log_alpha > math.log(ALPHA_FLOOR)).sum(dim=(0, 1)) > 10).all()  # each Gaussian covers pixels
        inside = (projected.means2d > 0).all() and (projected.means2d[:, 0] < camera.width).all()
        assert inside and (projected.means2d[:, 1] < camera.height).all()
        raw = eval_sh(gaussians.sh, gaussians.means - camera.center.to(gaussians.means)) + 0.5
        assert raw.min() > 0.05


def test_gradients_match_finite_differences_end_to_end():
    gaussians, camera = tiny_scene()
    assert_away_from_kinks(gaussians, camera)
    background = torch.tensor([0.2, 0.4, 0.6], dtype=F64)

    def render(means, log_scales, quaternions, opacity_logits, sh):
        out = render_gaussians(Gaussians(means, log_scales, quaternions, opacity_logits, sh), camera, background)
        return out.image, out.alpha, out.depth

    inputs = tuple(t.clone().requires_grad_() for t in gaussians.parameters().values())
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_means2d_gradient_can_be_retained():
    gaussians, camera = tiny_scene()
    gaussians.requires_grad_()
    out = render_gaussians(gaussians, camera)
    out.means2d.retain_grad()
    out.image.sum().backward()
    assert out.means2d.grad is not None and out.means2d.grad.shape == (3, 2)
    assert (out.means2d.grad.norm(dim=1) > 0).all()
    assert gaussians.means.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------------------------------------
# 5. Fitting a library view

# Measured (seed 0, 150 steps): 9.2 dB -> 20.9 dB (seeds 1, 2: 21.7, 21.9 dB). Bars well below.
MIN_FIT_GAIN_DB, MIN_FIT_PSNR_DB = 8.0, 17.0


def test_fitting_one_view_raises_psnr(fitted_blocks_view):
    """400 random Gaussians fitted for 150 steps to one view (tests/conftest.py)."""
    fit = fitted_blocks_view
    initial = psnr(fit["initial_image"].clamp(0, 1), fit["target"])
    final = psnr(fit["image"].clamp(0, 1), fit["target"])
    assert final >= initial + MIN_FIT_GAIN_DB and final >= MIN_FIT_PSNR_DB, (initial, final)


# ----------------------------------------------------------------------------------------------------------------
# 6. Bad input


def test_float32_gaussians_with_float64_camera_and_background_are_cast():
    gaussians, camera = tiny_scene()
    background = torch.tensor([0.2, 0.4, 0.6], dtype=F64)
    exact = render_gaussians(gaussians, camera, background)
    single = render_gaussians(gaussians.to("cpu", torch.float32), camera, background)
    for name in ("image", "alpha", "depth"):
        assert getattr(single, name).dtype == torch.float32
        torch.testing.assert_close(getattr(single, name).double(), getattr(exact, name), atol=1e-5, rtol=0)


def test_mixed_dtypes_and_bad_settings_raise_clearly():
    gaussians, camera = tiny_scene()
    mixed = Gaussians(**{**gaussians.parameters(), "sh": gaussians.sh.float()})
    with pytest.raises(ValueError, match="share one dtype"):
        render_gaussians(mixed, camera)
    with pytest.raises(ValueError, match="sh_degree"):
        render_gaussians(gaussians, camera, sh_degree=2)
    with pytest.raises(ValueError, match="background"):
        render_gaussians(gaussians, camera, background=torch.ones(4, dtype=F64))
    with pytest.raises(ValueError, match="tile_size"):
        render_gaussians(gaussians, camera, tile_size=0)


def test_empty_gaussians_render_the_background():
    gaussians, camera = tiny_scene()
    empty = gaussians.index(torch.zeros(3, dtype=torch.bool))
    background = torch.tensor([0.2, 0.4, 0.6], dtype=F64, requires_grad=True)
    out = render_gaussians(empty, camera, background)
    assert out.image.shape == (10, 12, 3) and out.alpha.shape == out.depth.shape == (10, 12)
    torch.testing.assert_close(out.image, background.detach().expand(10, 12, 3))
    assert (out.alpha == 0).all() and (out.depth == 0).all()
    assert out.means2d.shape == (0, 2) and out.radii.shape == out.visible.shape == (0,)
    out.image.sum().backward()
    torch.testing.assert_close(background.grad, torch.full((3,), 120.0, dtype=F64))
