"""Differentiable Volumetric Rendering (DVR, Niemeyer et al. 2020): an occupancy and a texture field learned from
posed images and masks alone, with no 3D supervision.

One network maps a point to an occupancy logit ``f_theta(p)`` (occupied where ``f > 0``, i.e. probability above
``tau = 1/2``) and a colour ``t_theta(p)``. A pixel's ray ``r(d) = o + d w`` is rendered at its first surface point:

1. ray marching: evaluate ``f`` at ``n`` evenly spaced depths and take the first interval where it goes from
   free (``f < 0``) to occupied (``f >= 0``);
2. secant refinement of the root in that interval: ``d <- d_a - f_a (d_b - d_a) / (f_b - f_a)``, keeping the
   sign change bracketed;
3. colour ``t_theta(p_hat)`` at the surface point ``p_hat = o + d_hat w``.

The root depends on ``theta``. Differentiating ``f_theta(p_hat(theta)) = tau`` (implicit differentiation, the
course's "see proofs") gives::

    df/dtheta + (grad_p f . dp_hat/dtheta) = 0,   dp_hat/dtheta = w dd_hat/dtheta
    =>  dp_hat/dtheta = -w (grad_p f . w)^{-1} df/dtheta

which needs neither the marching nor the secant steps to be differentiable. In code, the surface depth is
``d_hat - (f_theta(p_hat) - tau) / (grad_p f . w)`` with the denominator detached: its value is ``d_hat`` (the
numerator is zero at the root) and its gradient is exactly the formula above.

Losses on a batch of pixels, as the paper's:

- pixels inside the mask whose ray hits the surface: L1 between rendered and true colour (gradient through
  ``p_hat`` reaches the geometry, so shading moves the surface);
- pixels outside the mask: free space, binary cross-entropy of ``f`` against 0 at the surface point the ray
  wrongly meets, or at a random point of the ray's span within the scene when it meets none;
- pixels inside the mask whose ray misses: occupancy, cross-entropy of ``f`` against 1 at the marched point of
  highest occupancy (the paper takes a random point; in front of the object that point is free space, which
  fights the free-space term).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from mpenv.device import get_device, seed_everything
from mpenv.networks import mlp
from vision3d.nerf.encodings import PositionalEncoding
from vision3d.scenes.cameras import Camera, pixel_rays, sphere_bounds
from vision3d.scenes.rendering import ViewSet

History = dict[str, list[float]]


class OccupancyTextureField(nn.Module):
    """``p [N, 3] -> (occupancy logit [N], colour [N, 3])``: one MLP on positionally encoded points."""

    def __init__(self, hidden: int = 128, depth: int = 4, n_frequencies: int = 4) -> None:
        super().__init__()
        self.encoding = PositionalEncoding(3, n_frequencies)
        self.body = mlp(self.encoding.out_dim, [hidden] * depth, 4)

    def forward(self, p: Tensor) -> tuple[Tensor, Tensor]:
        out = self.body(self.encoding(p))
        return out[:, 0], torch.sigmoid(out[:, 1:])

    def occupancy_logit(self, p: Tensor) -> Tensor:
        return self.forward(p)[0]


@dataclass(frozen=True)
class DVRConfig:
    hidden: int = 128
    depth: int = 4
    n_frequencies: int = 4
    steps: int = 2000
    batch_rays: int = 1024
    n_march: int = 64
    n_secant: int = 8
    scene_radius: float = 1.3
    lr: float = 1e-3
    lr_final: float = 1e-4
    free_space_weight: float = 1.0
    occupancy_weight: float = 1.0


@dataclass(frozen=True)
class SurfaceHits:
    """First surface points of rays: ``hit`` [R], ``depth`` [R] (differentiable in theta), ``points`` [R, 3]."""

    hit: Tensor
    depth: Tensor
    points: Tensor


@torch.no_grad()
def march_to_surface(
    logit: Callable[[Tensor], Tensor], origins: Tensor, directions: Tensor, near: Tensor, far: Tensor,
    n_march: int, n_secant: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Ray marching and secant refinement: ``hit`` [R], root depth [R] (not differentiable), marched logits
    [R, n_march] and their depths."""
    fraction = torch.linspace(0.0, 1.0, n_march, device=origins.device)
    depths = near[:, None] + (far - near)[:, None] * fraction  # [R, S]
    values = logit((origins[:, None] + depths[..., None] * directions[:, None]).reshape(-1, 3)).reshape(depths.shape)
    enters = (values[:, :-1] < 0) & (values[:, 1:] >= 0)
    hit = enters.any(dim=1) & (values[:, 0] < 0)  # a ray that starts inside has no entry point
    first = enters.float().argmax(dim=1)
    rows = torch.arange(len(origins), device=origins.device)
    d_a, d_b = depths[rows, first], depths[rows, first + 1]
    f_a, f_b = values[rows, first], values[rows, first + 1]
    for _ in range(n_secant):
        d_mid = d_a - f_a * (d_b - d_a) / (f_b - f_a).clamp_min(1e-12)
        f_mid = logit(origins + d_mid[:, None] * directions)
        inside = f_mid >= 0
        d_b, f_b = torch.where(inside, d_mid, d_b), torch.where(inside, f_mid, f_b)
        d_a, f_a = torch.where(inside, d_a, d_mid), torch.where(inside, f_a, f_mid)
    root = d_a - f_a * (d_b - d_a) / (f_b - f_a).clamp_min(1e-12)
    return hit, root, values, depths


def differentiable_depth(logit: Callable[[Tensor], Tensor], origins: Tensor, directions: Tensor, root: Tensor
                         ) -> Tensor:
    """``d_hat - (f(p_hat) - tau) / (grad_p f . w)``: the value of the root, the gradient of implicit
    differentiation (module docstring), with ``tau`` the logit 0."""
    points = (origins + root[:, None] * directions).detach().requires_grad_(True)
    value = logit(points)
    (grad_p,) = torch.autograd.grad(value.sum(), points, retain_graph=True)
    slope = (grad_p * directions).sum(-1).detach()
    # A positive slope is guaranteed at a free-to-occupied crossing; clamp keeps a flat numerical root finite.
    return root - value / slope.clamp_min(1e-6)


def find_surface(field: OccupancyTextureField, origins: Tensor, directions: Tensor, config: DVRConfig
                 ) -> tuple[SurfaceHits, Tensor, Tensor]:
    """Surface hits of rays, and the marched logits and depths (for the free-space loss)."""
    near, far = sphere_bounds(origins, directions, config.scene_radius)
    hit, root, _, depths = march_to_surface(field.occupancy_logit, origins, directions, near, far,
                                            config.n_march, config.n_secant)
    depth = torch.full_like(root, math.inf)
    if hit.any():
        depth = depth.masked_scatter(hit, differentiable_depth(field.occupancy_logit, origins[hit], directions[hit],
                                                                root[hit]))
    points = origins + torch.where(hit, depth, torch.zeros_like(depth))[:, None] * directions
    return SurfaceHits(hit, depth, points), depths, near


def dvr_losses(field: OccupancyTextureField, origins: Tensor, directions: Tensor, rgb: Tensor, mask: Tensor,
               config: DVRConfig, generator: torch.Generator) -> dict[str, Tensor]:
    hits, depths, near = find_surface(field, origins, directions, config)
    zero = origins.new_zeros(())
    both = hits.hit & mask
    rgb_loss = (field(hits.points[both])[1] - rgb[both]).abs().sum(-1).mean() if both.any() else zero
    free = ~mask
    span = depths[:, -1] - depths[:, 0]
    if free.any():
        u = torch.rand(int(free.sum()), generator=generator, device=origins.device)
        random_points = origins[free] + (depths[free, 0] + u * span[free])[:, None] * directions[free]
        # A ray that should see background but meets a surface: that surface point is what must go.
        points = torch.where(hits.hit[free, None], hits.points[free].detach(), random_points)
        free_logits = field.occupancy_logit(points)
        free_loss = F.binary_cross_entropy_with_logits(free_logits, torch.zeros_like(free_logits))
    else:
        free_loss = zero
    missed = mask & ~hits.hit
    if missed.any():
        # The marched point most likely to be inside is where occupancy should grow first.
        points = origins[missed, None] + depths[missed, :, None] * directions[missed, None]
        with torch.no_grad():
            best = field.occupancy_logit(points.reshape(-1, 3)).reshape(points.shape[:2]).argmax(dim=1)
        inside_logits = field.occupancy_logit(points[torch.arange(len(best)), best])
        occupancy_loss = F.binary_cross_entropy_with_logits(inside_logits, torch.ones_like(inside_logits))
    else:
        occupancy_loss = zero
    total = rgb_loss + config.free_space_weight * free_loss + config.occupancy_weight * occupancy_loss
    return {"total": total, "rgb": rgb_loss, "free_space": free_loss, "occupancy": occupancy_loss,
            "hit_rate": hits.hit.float().mean(), "mask_rate": mask.float().mean()}


def fit_dvr(views: ViewSet, config: DVRConfig | None = None, seed: int = 0, device: str | torch.device = "cpu",
            progress: bool = False) -> tuple[OccupancyTextureField, History]:
    """Fit DVR's occupancy and texture field to posed images and their masks (no depth, no 3D points)."""
    config = config or DVRConfig()
    if len(views) == 0:
        raise ValueError("need at least one view")
    device = get_device(device)
    seed_everything(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    field = OccupancyTextureField(config.hidden, config.depth, config.n_frequencies).to(device)
    optimizer = torch.optim.Adam(field.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, config.steps, eta_min=config.lr_final)
    origins, directions = (x.to(device) for x in views.rays())
    colors, masks = views.rgb.reshape(-1, 3).to(device), views.mask.reshape(-1).to(device)
    history: History = {}
    for _ in tqdm(range(config.steps), desc="dvr", disable=not progress):
        batch = torch.randint(len(origins), (config.batch_rays,), generator=generator, device=device)
        terms = dvr_losses(field, origins[batch], directions[batch], colors[batch], masks[batch], config, generator)
        if not torch.isfinite(terms["total"]):
            raise FloatingPointError(f"DVR loss became {terms['total'].item()}")
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        optimizer.step()
        schedule.step()
        for key, value in terms.items():
            history.setdefault(key, []).append(float(value.detach()))
    return field.eval(), history


@torch.no_grad()
def render_dvr(field: OccupancyTextureField, camera: Camera, config: DVRConfig, background: float = 1.0,
               chunk: int = 4096) -> tuple[Tensor, Tensor]:
    """Image [H, W, 3] and silhouette [H, W] of the field through ``camera``."""
    device = next(field.parameters()).device
    origins, directions = (x.float().to(device) for x in pixel_rays(camera))
    images, masks = [], []
    for start in range(0, len(origins), chunk):
        o, d = origins[start : start + chunk], directions[start : start + chunk]
        near, far = sphere_bounds(o, d, config.scene_radius)
        hit, root, _, _ = march_to_surface(field.occupancy_logit, o, d, near, far, config.n_march, config.n_secant)
        color = torch.full_like(o, background)
        if hit.any():
            color[hit] = field(o[hit] + root[hit, None] * d[hit])[1]
        images.append(color)
        masks.append(hit)
    return (torch.cat(images).reshape(camera.height, camera.width, 3).cpu(),
            torch.cat(masks).reshape(camera.height, camera.width).cpu())
