"""Rendering a scene of 3D Gaussians from one camera: projection, view-dependent colour and compositing in one call.

The steps (Kerbl et al. 2023), each a module of its own:

    Sigma_i = R_i S_i S_i^T R_i^T                                    (gaussians)
    (mu'_i, Sigma'_i, z_i, r_i) = EWA projection of (mu_i, Sigma_i)   (projection)
    c_i = max(SH_i(d_i) + 1/2, 0),   d_i = (mu_i - o) / |mu_i - o|    (sh)
    o_i = sigmoid(opacity_logit_i)
    alpha_i(p) = min(0.99, o_i exp(-1/2 (p - mu'_i)^T Sigma'_i^{-1} (p - mu'_i)))
    T_i(p) = prod_{j<i} (1 - alpha_j(p)),  i sorted front to back     (rasterizer)

with ``o`` the camera centre: the colour of a Gaussian depends on the direction from which the camera sees its
mean, one direction per Gaussian (not per pixel). From the compositing weights ``w_i(p) = T_i(p) alpha_i(p)`` the
renderer returns::

    C(p) = sum_i w_i(p) c_i + T_N(p) bg        image
    A(p) = sum_i w_i(p) = 1 - T_N(p)           alpha (accumulated opacity)
    D(p) = sum_i w_i(p) z_i                    depth: the alpha-weighted sum of camera-space z

``D`` is not divided by ``A``: it is what the weights composite (as NeRF's expected depth), it is smooth where
``A`` is 0, and a depth loss can compare it with ``A`` times a target depth. :meth:`RenderOutput.normalized_depth`
gives the expected depth of the visible surface, ``D / max(A, eps)``, where a per-pixel depth is wanted.

Colour and depth go through the rasterizer as one ``C = 4`` channel image (depth with background 0), so the tile
sort and the alphas are computed once and the two are composited with exactly the same weights.

``means2d`` of the output is the very tensor the rasterizer read. It is not a leaf, so autograd frees its gradient
unless asked: density control (which clones or splits Gaussians whose screen-space gradient is large) calls
``output.means2d.retain_grad()`` before ``loss.backward()`` and then reads ``output.means2d.grad``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vision3d.scenes.cameras import Camera
from vision3d.splatting.gaussians import Gaussians
from vision3d.splatting.projection import project_gaussians
from vision3d.splatting.rasterizer import rasterize
from vision3d.splatting.sh import sh_to_rgb

__all__ = ["RenderOutput", "render_gaussians", "view_directions"]


@dataclass
class RenderOutput:
    """One rendered view of ``N`` Gaussians; images are ``[H, W, ...]``, per-Gaussian fields ``[N, ...]``."""

    image: Tensor  # [H, W, 3] colour over the background
    alpha: Tensor  # [H, W] accumulated opacity 1 - T_N
    depth: Tensor  # [H, W] alpha-weighted depth sum sum_i T_i alpha_i z_i (not divided by alpha)
    means2d: Tensor  # [N, 2] projected means as the rasterizer read them; call .retain_grad() before backward
    radii: Tensor  # [N] int64 footprint radius in pixels, 0 where culled
    visible: Tensor  # [N] bool, radii > 0

    def normalized_depth(self, eps: float = 1e-6) -> Tensor:
        """``D / max(A, eps)`` ``[H, W]``: the expected depth of what the pixel shows (about 0 where ``A`` is 0)."""
        return self.depth / self.alpha.clamp_min(eps)


def view_directions(means: Tensor, camera: Camera) -> Tensor:
    """``mu_i - o`` ``[N, 3]``: from the camera centre to each mean, the direction the SH colour is evaluated at
    (unnormalized; :func:`~vision3d.splatting.sh.sh_basis` normalizes)."""
    return means - camera.center.to(means)


def _background(background: Tensor | None, like: Tensor) -> Tensor:
    """The ``[3]`` background in ``like``'s dtype and device (black by default), with a clear error otherwise."""
    if background is None:
        return torch.zeros(3, dtype=like.dtype, device=like.device)
    background = torch.as_tensor(background)
    if background.shape != (3,):
        raise ValueError(f"background must be an RGB colour of shape [3], got {list(background.shape)}")
    return background.to(like)


def _check_settings(gaussians: Gaussians, camera: Camera, sh_degree: int | None, tile_size: int) -> None:
    if not isinstance(gaussians, Gaussians):
        raise ValueError(f"gaussians must be a Gaussians, got {type(gaussians).__name__}")
    if not isinstance(camera, Camera):
        raise ValueError(f"camera must be a Camera, got {type(camera).__name__}")
    gaussians.check()  # shapes, one dtype and device, finite values: fail here, not deep in the rasterizer
    if sh_degree is not None and not 0 <= sh_degree <= gaussians.sh_degree:
        raise ValueError(f"sh_degree must lie in [0, {gaussians.sh_degree}] (what sh holds), got {sh_degree}")
    if isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 1:
        raise ValueError(f"tile_size must be a positive int, got {tile_size!r}")


def render_gaussians(
    gaussians: Gaussians,
    camera: Camera,
    background: Tensor | None = None,
    sh_degree: int | None = None,
    near: float = 0.01,
    blur: float = 0.3,
    tile_size: int = 8,
) -> RenderOutput:
    """Render ``gaussians`` from ``camera`` (see the module docstring); differentiable in every Gaussian parameter
    and in ``background``.

    Args:
        gaussians: the scene; its dtype and device are the rendering's (the camera is cast to them).
        camera: a pinhole camera; the image is ``camera.height x camera.width``.
        background: ``[3]`` colour behind the Gaussians; black by default.
        sh_degree: the active SH degree (progressive training); all bands ``sh`` holds by default.
        near: Gaussians with camera-space ``z <= near`` are culled.
        blur: the screen-space dilation ``s`` in ``Sigma' + s I`` (pixels squared).
        tile_size: the rasterizer's tile side in pixels.
    """
    _check_settings(gaussians, camera, sh_degree, tile_size)
    means = gaussians.means
    background = _background(background, means)
    projected = project_gaussians(means, gaussians.covariances(), camera, near=near, blur=blur)
    colors = sh_to_rgb(gaussians.sh, view_directions(means, camera), sh_degree)

    # Depth rides along as a fourth colour channel over a background of 0: one sort, one set of alphas, and the
    # depth image is composited with exactly the weights of the colour image.
    channels = torch.cat([colors, projected.depths[:, None]], dim=1)
    channel_background = torch.cat([background, background.new_zeros(1)])
    composited, alpha = rasterize(
        projected.means2d,
        projected.conics,
        gaussians.opacities,
        channels,
        projected.depths,
        projected.radii,  # 0 for culled Gaussians: the rasterizer skips them
        camera.width,
        camera.height,
        background=channel_background,
        tile_size=tile_size,
    )
    return RenderOutput(
        image=composited[..., :3],
        alpha=alpha,
        depth=composited[..., 3],
        means2d=projected.means2d,
        radii=projected.radii,
        visible=projected.visible,
    )
