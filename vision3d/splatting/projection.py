"""Projection of 3D Gaussians onto the image: the EWA splatting step of 3D Gaussian splatting.

A 3D Gaussian with mean ``mu`` and covariance ``Sigma`` (world frame), seen by a pinhole camera ``K, [W | t_cam]``
in the OpenCV convention of :mod:`vision3d.scenes.cameras`, becomes to first order a 2D Gaussian on the image
(Zwicker et al. 2001, EWA splatting, as Kerbl et al. 2023 use it, their eq. 5)::

    t      = W mu + t_cam                                   world -> camera, W = camera.R
    mu'    = (u, v),   (u, v, 1)^T ~ K t                   the projected mean in pixels (exact, not linearised)
    J      = [[f_x / t_z,  0,          -f_x t_x / t_z^2],  d(u, v) / dt at t: the perspective division
              [0,          f_y / t_z,  -f_y t_y / t_z^2]]   linearised around the mean
    Sigma' = J W Sigma W^T J^T + s I                        screen covariance [2, 2], s = blur = 0.3 px^2

Why it is a Gaussian at all: an affine map ``x -> A x + b`` sends ``N(mu, Sigma)`` to ``N(A mu + b, A Sigma A^T)``;
perspective is not affine, so it is replaced by its tangent map ``J W`` at the mean, which is accurate while the
Gaussian is small next to its depth. The dilation ``s I`` is a low-pass filter: it convolves the splat with a
Gaussian about the size of a pixel, so a Gaussian smaller than a pixel still reaches a pixel centre instead of
aliasing in and out of the image as it moves.

The rasterizer evaluates the splat at pixel ``p`` as ``exp(-1/2 d^T Sigma'^{-1} d)``, ``d = p - mu'``, and needs::

    conic  = Sigma'^{-1} = [[a, b], [b, c]] = [[S_yy, -S_xy], [-S_xy, S_xx]] / (S_xx S_yy - S_xy^2)
    radius = ceil(3 sqrt(lambda_max)),   lambda_max = (S_xx + S_yy) / 2 + sqrt(((S_xx - S_yy) / 2)^2 + S_xy^2)

with ``Sigma' = [[S_xx, S_xy], [S_xy, S_yy]]``. The ellipse at three standard deviations (``d^T Sigma'^{-1} d = 9``)
reaches at most ``3 sqrt(lambda_max)`` from ``mu'`` in any direction, so it lies inside the square of half-width
``radius`` around ``mu'``: the rasterizer only visits pixels in that square.

**The clamp.** ``J`` is evaluated with ``t_x / t_z`` and ``t_y / t_z`` clamped to the image's extent in normalised
coordinates, widened on each side by 30% of the half field of view (``+-1.3 tan(fov / 2)`` for a centred principal
point, as 3DGS). A Gaussian far to the side of the view has ``t_x / t_z`` large and an exact ``J`` so stretched that
its footprint would sweep across the image; the clamped ``J`` is the Jacobian at the nearest point of the widened
frustum instead. Inside the image (and 15% of its size beyond each edge) the clamp is inactive and ``J`` is the exact
Jacobian; outside it ``J`` differs from the exact one on purpose. The mean ``mu'`` is never clamped.

**Culling.** A Gaussian is visible when ``t_z > near`` and the square ``[mu' - r, mu' + r]`` overlaps the image
``[0, width] x [0, height]``; the others get radius 0, which the rasterizer skips. A Gaussian at or behind the near
plane is projected from a placeholder point on the optical axis, so that every output stays finite and its gradients
are zero rather than ``inf`` or ``NaN`` (its ``means2d``, ``cov2d`` and ``conics`` mean nothing; ``depths`` is its
true ``t_z``). A screen covariance whose determinant is not positive is culled too: with ``blur > 0`` that only
happens to rounding, in float32, for needles thousands of pixels long and far thinner than a pixel, whose
``S_xx S_yy - S_xy^2`` cancels.

Everything but the integer radii and the visibility mask is differentiable with respect to the means and the
covariances. The computation runs in the dtype and on the device of the inputs; the camera's float64 matrices are
cast to them. A skew ``K[0, 1]`` is honoured by ``mu'`` and ``J`` (``J = [A | -A x] / t_z`` with ``A = K[:2, :2]``,
``x = (t_x, t_y) / t_z``, which is the matrix above without skew) but ignored by the clamp's limits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vision3d.scenes.cameras import Camera

__all__ = [
    "FRUSTUM_MARGIN",
    "Projected",
    "conic_and_radius",
    "frustum_limits",
    "pixel_means",
    "project_gaussians",
    "projection_jacobian",
    "screen_covariance",
    "world_to_camera",
]

# J is clamped to the image widened by this fraction of its half field of view on each side (3DGS's 1.3x).
FRUSTUM_MARGIN = 0.3


@dataclass
class Projected:
    """N Gaussians as one camera sees them; row ``i`` of every field is Gaussian ``i``."""

    means2d: Tensor  # [N, 2] pixel coordinates (u, v) of the projected means
    cov2d: Tensor  # [N, 2, 2] dilated screen covariance Sigma'
    conics: Tensor  # [N, 3] (a, b, c) of Sigma'^{-1} = [[a, b], [b, c]]
    depths: Tensor  # [N] camera-space z, the key the rasterizer sorts by
    radii: Tensor  # [N] int64 half-width in pixels of the square that holds the 3-sigma ellipse, 0 where culled
    visible: Tensor  # [N] bool, radii > 0


def _camera_matrices(camera: Camera, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The camera's ``K, R, t`` in the dtype and on the device of ``like``."""
    return camera.K.to(like), camera.R.to(like), camera.t.to(like)


def world_to_camera(points: Tensor, camera: Camera) -> Tensor:
    """World points [N, 3] -> camera coordinates ``t = R X + t_cam`` [N, 3]."""
    _, R, t = _camera_matrices(camera, points)
    return points @ R.T + t


def pixel_means(camera_points: Tensor, camera: Camera) -> Tensor:
    """Camera-space points [N, 3] -> pixel positions ``(u, v)`` [N, 2], ``(u, v, 1)^T ~ K t`` (no clamp)."""
    K, _, _ = _camera_matrices(camera, camera_points)
    uvw = camera_points @ K.T
    return uvw[:, :2] / uvw[:, 2:]  # the last row of K is (0, 0, 1), so w = t_z


def frustum_limits(camera: Camera) -> tuple[tuple[float, float], tuple[float, float]]:
    """``((x_low, x_high), (y_low, y_high))``: the range of ``t_x / t_z`` and ``t_y / t_z`` that the Jacobian's
    clamp allows, the image's extent in normalised coordinates widened by ``FRUSTUM_MARGIN`` of its half size."""
    fx, fy = camera.K[0, 0].item(), camera.K[1, 1].item()
    cx, cy = camera.K[0, 2].item(), camera.K[1, 2].item()
    margin_x = FRUSTUM_MARGIN * camera.width / (2.0 * fx)  # 0.3 tan(fov_x / 2)
    margin_y = FRUSTUM_MARGIN * camera.height / (2.0 * fy)
    x_limits = (-cx / fx - margin_x, (camera.width - cx) / fx + margin_x)
    y_limits = (-cy / fy - margin_y, (camera.height - cy) / fy + margin_y)
    return x_limits, y_limits


def projection_jacobian(camera_points: Tensor, camera: Camera, clamp: bool = True) -> Tensor:
    """The Jacobian ``J = d(u, v) / dt`` [N, 2, 3] of the pixel projection at camera-space points [N, 3].

    With ``clamp`` (the default, as 3DGS) it is taken at ``t_z (clamp(t_x / t_z), clamp(t_y / t_z), 1)`` so that
    Gaussians far outside the view keep a bounded footprint; inside the widened frustum it is exact."""
    K, _, _ = _camera_matrices(camera, camera_points)
    A = K[:2, :2]  # [[f_x, skew], [0, f_y]]
    depth = camera_points[:, 2:]  # [N, 1]
    normalised = camera_points[:, :2] / depth  # (t_x / t_z, t_y / t_z)
    if clamp:
        (x_low, x_high), (y_low, y_high) = frustum_limits(camera)
        normalised = torch.stack([normalised[:, 0].clamp(x_low, x_high), normalised[:, 1].clamp(y_low, y_high)], dim=-1)
    # u = A (t_x, t_y) / t_z + c, so du/d(t_x, t_y) = A / t_z and du/dt_z = -A (t_x, t_y) / t_z^2.
    depth_column = -(normalised @ A.T)[:, :, None]  # [N, 2, 1]
    J = torch.cat([A.expand(len(camera_points), 2, 2), depth_column], dim=-1)
    return J / depth[:, :, None]


def screen_covariance(covariances: Tensor, jacobian: Tensor, camera: Camera, blur: float = 0.3) -> Tensor:
    """World covariances [N, 3, 3] -> dilated screen covariances ``J W Sigma W^T J^T + blur I`` [N, 2, 2]."""
    _, R, _ = _camera_matrices(camera, covariances)
    T = jacobian @ R  # [N, 2, 3]: world -> camera -> tangent plane of the image, in one linear map
    cov = T @ covariances @ T.transpose(-1, -2)
    # Rounding leaves the product a hair off symmetric; make it exactly symmetric so the conic's b is unambiguous.
    cov = 0.5 * (cov + cov.transpose(-1, -2))
    return cov + blur * torch.eye(2, dtype=cov.dtype, device=cov.device)


def conic_and_radius(cov2d: Tensor) -> tuple[Tensor, Tensor]:
    """Screen covariances [N, 2, 2] -> conics ``(a, b, c)`` [N, 3] of their inverses and radii [N] (int64 pixels,
    ``ceil(3 sqrt(lambda_max))``; 0 where the matrix is not positive definite, whose conic is then a placeholder)."""
    a, c = cov2d[:, 0, 0], cov2d[:, 1, 1]
    b = 0.5 * (cov2d[:, 0, 1] + cov2d[:, 1, 0])
    det = a * c - b * b
    invertible = det > 0
    # Divide by 1 where the matrix is singular so the placeholder conic and its gradient stay finite.
    safe_det = torch.where(invertible, det, torch.ones_like(det))
    conics = torch.stack([c, -b, a], dim=-1) / safe_det[:, None]
    with torch.no_grad():  # radii are integers: the rasterizer's loop bounds, not something to learn through
        lambda_max = 0.5 * (a + c) + torch.sqrt((0.5 * (a - c)) ** 2 + b * b)  # this form cannot go negative
        radius = torch.ceil(3.0 * torch.sqrt(lambda_max.clamp_min(0.0)))
        usable = invertible & torch.isfinite(radius)
        radii = torch.where(usable, radius, torch.zeros_like(radius)).to(torch.int64)
    return conics, radii


def _overlaps_image(means2d: Tensor, radii: Tensor, camera: Camera) -> Tensor:
    """[N] bool: the square ``[mu' - r, mu' + r]`` meets the image ``[0, width] x [0, height]``."""
    r = radii.to(means2d.dtype)
    u, v = means2d[:, 0], means2d[:, 1]
    return (u + r > 0) & (u - r < camera.width) & (v + r > 0) & (v - r < camera.height)


def _check_inputs(means: Tensor, covariances: Tensor, near: float, blur: float) -> None:
    if not isinstance(means, Tensor) or not isinstance(covariances, Tensor):
        raise ValueError(f"means and covariances must be tensors, got {type(means)} and {type(covariances)}")
    if means.ndim != 2 or means.shape[1] != 3:
        raise ValueError(f"means must have shape [N, 3], got {list(means.shape)}")
    n = means.shape[0]
    if tuple(covariances.shape) != (n, 3, 3):
        raise ValueError(f"covariances must have shape [N, 3, 3] = [{n}, 3, 3], got {list(covariances.shape)}")
    if not means.is_floating_point() or covariances.dtype != means.dtype:
        raise ValueError(
            f"means and covariances must share one floating dtype, got {means.dtype} and {covariances.dtype}"
        )
    for name, tensor in (("means", means), ("covariances", covariances)):
        bad = ~torch.isfinite(tensor.detach()).flatten(1).all(dim=1)
        if bad.any():
            first = bad.nonzero().flatten()[:5].tolist()
            raise ValueError(f"{name} has non-finite entries in {int(bad.sum())} Gaussians (first: {first})")
    if not near > 0:
        raise ValueError(f"near must be positive, got {near}")
    if not blur >= 0:
        raise ValueError(f"blur must be non-negative, got {blur}")


def project_gaussians(
    means: Tensor, covariances: Tensor, camera: Camera, near: float = 0.01, blur: float = 0.3
) -> Projected:
    """Project N world-space Gaussians (means [N, 3], covariances [N, 3, 3], symmetric PSD) into ``camera``:
    2D means, dilated screen covariances, conics, depths, radii and visibility (see the module docstring)."""
    _check_inputs(means, covariances, near, blur)
    camera_points = world_to_camera(means, camera)
    depths = camera_points[:, 2]
    in_front = depths > near
    # Behind the near plane 1 / t_z explodes; a point on the optical axis keeps values and gradients finite there.
    placeholder = torch.tensor([0.0, 0.0, 1.0], dtype=means.dtype, device=means.device)
    safe_points = torch.where(in_front[:, None], camera_points, placeholder)

    means2d = pixel_means(safe_points, camera)
    jacobian = projection_jacobian(safe_points, camera)
    cov2d = screen_covariance(covariances, jacobian, camera, blur)
    conics, radii = conic_and_radius(cov2d)

    visible = in_front & (radii > 0) & _overlaps_image(means2d.detach(), radii, camera)
    radii = torch.where(visible, radii, torch.zeros_like(radii))
    return Projected(means2d=means2d, cov2d=cov2d, conics=conics, depths=depths, radii=radii, visible=visible)
