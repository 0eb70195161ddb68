"""NeRF volume rendering: the quadrature of the volume rendering integral, and where to put the samples.

A ray ``r(t) = o + t d`` crosses a field of density ``sigma`` and colour ``c``. Its expected colour is::

    C(r) = int_{t_n}^{t_f} T(t) sigma(r(t)) c(r(t)) dt,        T(t) = exp(-int_{t_n}^{t} sigma(r(s)) ds)

NeRF (Mildenhall et al. 2020, eq. 3) estimates it from ``S`` samples ``t_1 <= ... <= t_S`` along each ray::

    delta_i = t_{i+1} - t_i                  (delta_S = "infinity", here ``far_delta = 1e10``)
    alpha_i = 1 - exp(-sigma_i delta_i)      opacity of the i-th segment
    T_i     = prod_{j<i} (1 - alpha_j) = exp(-sum_{j<i} sigma_j delta_j)
    w_i     = T_i alpha_i
    C_hat   = sum_i w_i c_i                  (+ (1 - sum_i w_i) * background)
    D_hat   = sum_i w_i t_i                  expected depth, NOT divided by the opacity
    A_hat   = sum_i w_i                      opacity (accumulated alpha), in [0, 1]

Samples:

- :func:`stratified_samples` -- the coarse samples: ``[t_n, t_f]`` cut into ``S`` even bins, one uniform sample in
  each (the bin midpoints when not perturbed).
- :func:`sample_pdf` -- inverse transform sampling of the piecewise-constant density whose mass on bin ``k`` is
  proportional to ``w_k``: ``t = F^{-1}(u)``, ``u ~ U[0, 1)``.
- :func:`hierarchical_samples` -- NeRF's fine samples: :func:`sample_pdf` on the coarse weights, merged with the
  coarse samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mpenv.device import uniform

__all__ = [
    "RenderResult",
    "compositing_weights",
    "hierarchical_samples",
    "sample_pdf",
    "segment_lengths",
    "stratified_samples",
    "volume_render",
]


# Frozen so a result is not edited after the fact; eq=False because tensors have no single truth value.
@dataclass(frozen=True, eq=False)
class RenderResult:
    """What :func:`volume_render` returns for ``R`` rays of ``S`` samples each."""

    rgb: Tensor  # [R, 3] composited colour, background included when one was given
    depth: Tensor  # [R] expected depth sum_i w_i t_i (not normalised by opacity)
    opacity: Tensor  # [R] accumulated alpha sum_i w_i
    weights: Tensor  # [R, S] w_i = T_i alpha_i
    t: Tensor  # [R, S] the sample distances the weights belong to


def _check_finite(name: str, x: Tensor) -> None:
    if torch.isnan(x).any():
        raise ValueError(f"{name} contains NaN")
    if torch.isinf(x).any():
        raise ValueError(f"{name} contains inf")


def _check_non_decreasing(name: str, t: Tensor) -> None:
    if t.shape[-1] > 1 and (t[..., 1:] < t[..., :-1]).any():
        raise ValueError(f"{name} must be non-decreasing along each ray (sort the samples first)")


def _check_rays(name: str, x: Tensor, n_dims: int) -> None:
    """A batch of at least one ray with at least one sample."""
    if x.dim() != n_dims:
        raise ValueError(f"{name} must have {n_dims} dims, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch of rays (shape {tuple(x.shape)})")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has no samples per ray (shape {tuple(x.shape)})")


def segment_lengths(t: Tensor, far_delta: float = 1e10) -> Tensor:
    """``delta_i = t_{i+1} - t_i``; the last segment reaches ``far_delta`` past the last sample, as in NeRF."""
    return torch.cat([t[:, 1:] - t[:, :-1], torch.full_like(t[:, :1], far_delta)], dim=-1)


def compositing_weights(sigma: Tensor, delta: Tensor) -> Tensor:
    """``w_i = T_i alpha_i`` with ``T_i`` from the exclusive cumulative optical depth ``sum_{j<i} sigma_j delta_j``.

    exp of a sum instead of a cumulative product of ``1 - alpha_j``: no product of many numbers near 1 and no
    ``1e-10`` fudge term (NeRF's code adds one to keep ``cumprod`` away from 0).
    """
    optical_depth = sigma * delta
    alpha = -torch.expm1(-optical_depth)  # 1 - exp(-x) without cancellation for small x
    # Shifted, not cumsum - optical_depth: with delta_S = 1e10 that subtraction would cancel catastrophically.
    exclusive_depth = torch.cumsum(torch.cat([torch.zeros_like(optical_depth[:, :1]), optical_depth[:, :-1]], -1), -1)
    transmittance = torch.exp(-exclusive_depth)
    return transmittance * alpha


def _background_rgb(background: float | Tensor, n_rays: int, like: Tensor) -> Tensor:
    """The background as ``[R, 3]`` or a broadcastable ``[3]`` / scalar, on ``like``'s dtype and device."""
    background = torch.as_tensor(background, dtype=like.dtype, device=like.device)
    if background.shape not in ((), (3,), (n_rays, 3)):
        raise ValueError(f"background must be a scalar, [3] or [R, 3] = [{n_rays}, 3], got {tuple(background.shape)}")
    return background


def volume_render(
    sigma: Tensor,
    color: Tensor,
    t: Tensor,
    background: float | Tensor | None = None,
    far_delta: float = 1e10,
) -> RenderResult:
    """Composite ``S`` samples per ray into colour, depth and opacity (module docstring for the equations).

    Args:
        sigma: ``[R, S]`` densities, ``>= 0`` (apply relu / softplus to a network's raw output first).
        color: ``[R, S, 3]`` colours of the samples.
        t: ``[R, S]`` sample distances along each ray, non-decreasing.
        background: ``None`` (transparent: ``rgb`` is premultiplied by the opacity), a scalar (``1.0`` white,
            ``0.0`` black) or a ``[3]`` / ``[R, 3]`` colour seen through the ``1 - opacity`` left over.
        far_delta: length of the last segment; the default ``1e10`` makes it opaque wherever ``sigma_S > 0``,
            as in NeRF. Use a finite value to integrate over a bounded segment only.

    Returns:
        :class:`RenderResult`; differentiable w.r.t. ``sigma``, ``color``, ``t`` and ``background``.
    """
    _check_rays("sigma", sigma, 2)
    if color.shape != (*sigma.shape, 3):
        raise ValueError(f"color must have shape {(*sigma.shape, 3)} (sigma's [R, S] + [3]), got {tuple(color.shape)}")
    if t.shape != sigma.shape:
        raise ValueError(f"t must have sigma's shape {tuple(sigma.shape)}, got {tuple(t.shape)}")
    _check_finite("sigma", sigma)
    _check_finite("color", color)
    _check_finite("t", t)
    if (sigma < 0).any():
        raise ValueError("sigma must be >= 0 (apply relu or softplus to the raw density first)")
    _check_non_decreasing("t", t)
    if not far_delta > 0:
        raise ValueError(f"far_delta must be positive, got {far_delta}")

    weights = compositing_weights(sigma, segment_lengths(t, far_delta))
    rgb = torch.sum(weights[..., None] * color, dim=-2)
    depth = torch.sum(weights * t, dim=-1)
    opacity = torch.sum(weights, dim=-1)
    if background is not None:
        rgb = rgb + (1.0 - opacity[:, None]) * _background_rgb(background, sigma.shape[0], rgb)
    return RenderResult(rgb=rgb, depth=depth, opacity=opacity, weights=weights, t=t)


def _ray_bounds(near: float | Tensor, far: float | Tensor, n_rays: int | None, device) -> tuple[Tensor, Tensor]:
    """``near`` and ``far`` as ``[R, 1]`` tensors; ``R`` from the tensors, else from ``n_rays``."""
    lengths = {x.shape[0] for x in (near, far) if isinstance(x, Tensor) and x.dim() > 0}
    if any(isinstance(x, Tensor) and x.dim() > 1 for x in (near, far)):
        raise ValueError("near and far must be floats, 0-dim tensors or [R] tensors")
    if n_rays is not None:
        lengths.add(n_rays)
    if len(lengths) > 1:
        raise ValueError(f"near, far and n_rays disagree on the number of rays: {sorted(lengths)}")
    if not lengths:
        raise ValueError("n_rays is required when near and far are both scalars")
    (n,) = lengths
    if n < 1:
        raise ValueError(f"the number of rays must be >= 1, got {n}")
    floats = [x.dtype for x in (near, far) if isinstance(x, Tensor) and x.is_floating_point()]
    dtype = floats[0] if floats else torch.get_default_dtype()
    if device is None:
        device = next((x.device for x in (near, far) if isinstance(x, Tensor)), None)
    near_t = torch.as_tensor(near, dtype=dtype, device=device).expand(n)[:, None]
    far_t = torch.as_tensor(far, dtype=dtype, device=device).expand(n)[:, None]
    _check_finite("near", near_t)
    _check_finite("far", far_t)
    if (far_t <= near_t).any():
        raise ValueError("far must be greater than near on every ray")
    return near_t, far_t


def stratified_samples(
    near: float | Tensor,
    far: float | Tensor,
    n_samples: int,
    n_rays: int | None = None,
    perturb: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """NeRF's stratified sampling (eq. 2): ``t_i ~ U[t_n + (i-1)/S (t_f - t_n), t_n + i/S (t_f - t_n)]``.

    Args:
        near, far: ``t_n`` and ``t_f``: floats or ``[R]`` tensors, ``far > near``.
        n_samples: ``S >= 1``.
        n_rays: ``R``; needed only when ``near`` and ``far`` are both scalars (checked against them otherwise).
        perturb: one uniform draw per bin; ``False`` gives the bin midpoints. (NeRF's code, unperturbed, puts the
            samples on ``linspace(near, far, S)`` instead, endpoints included.)
        generator: for the uniform draws (on any device; they are moved to the bounds' device).
        device: defaults to that of the tensor bounds, else torch's default.

    Returns:
        ``[R, S]`` sorted samples, ``t_i`` in the ``i``-th bin.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    near_t, far_t = _ray_bounds(near, far, n_rays, device)
    shape = (near_t.shape[0], n_samples)
    if perturb:
        u = uniform(shape, generator, near_t.device, near_t.dtype)
    else:
        u = torch.full(shape, 0.5, dtype=near_t.dtype, device=near_t.device)
    # Position within [0, 1] of the sample in bin i: (i + u_i) / S; bins are disjoint, so the samples are sorted.
    fraction = (torch.arange(n_samples, dtype=near_t.dtype, device=near_t.device) + u) / n_samples
    return near_t + (far_t - near_t) * fraction


def sample_pdf(
    bins: Tensor,
    weights: Tensor,
    n_samples: int,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Inverse transform sampling of the piecewise-constant density ``p`` with mass ``∝ w_k + eps`` on bin ``k``.

    ``F`` is piecewise linear through ``(bins_k, cdf_k)`` with ``cdf_0 = 0``, ``cdf_k = sum_{j<k} p_j``; each
    ``u`` lands in the bin ``k`` with ``cdf_k <= u < cdf_{k+1}`` (``torch.searchsorted``) and is mapped linearly
    within it: ``t = bins_k + (u - cdf_k) / p_k * (bins_{k+1} - bins_k)``.

    Args:
        bins: ``[R, B + 1]`` bin edges, non-decreasing.
        weights: ``[R, B]`` unnormalised masses, ``>= 0`` (e.g. NeRF's coarse compositing weights).
        n_samples: ``n >= 1``.
        deterministic: ``u_k = (k + 1/2) / n``, the midpoint quantiles of ``n`` equal-mass slices, instead of
            ``u ~ U[0, 1)``. (NeRF's code uses ``linspace(0, 1, n)``, whose ends fall on the first and last edge.)
        generator: for the uniform draws.
        eps: added to every weight, as NeRF does, so that no bin has zero probability and a ray with all-zero
            weights puts the same mass on every bin. With ``eps=0`` an all-zero ray still does the latter.

    Returns:
        ``[R, n]`` samples, sorted along each ray. Differentiable w.r.t. ``bins`` and ``weights``; NeRF stops this
        gradient (see :func:`hierarchical_samples`).
    """
    _check_rays("bins", bins, 2)
    if weights.shape != (bins.shape[0], bins.shape[1] - 1):
        raise ValueError(
            f"weights must have shape [R, B] = {(bins.shape[0], bins.shape[1] - 1)} for bins {tuple(bins.shape)} "
            f"(B + 1 edges), got {tuple(weights.shape)}"
        )
    if bins.shape[1] < 2:
        raise ValueError(f"bins needs at least 2 edges per ray, got shape {tuple(bins.shape)}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    _check_finite("bins", bins)
    _check_finite("weights", weights)
    if (weights < 0).any():
        raise ValueError("weights must be >= 0")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    _check_non_decreasing("bins", bins)

    weights = weights + eps
    total = weights.sum(dim=-1, keepdim=True)
    n_bins = weights.shape[-1]
    pdf = torch.where(total > 0, weights / total.clamp_min(torch.finfo(weights.dtype).tiny), 1.0 / n_bins)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, dim=-1)], dim=-1)  # [R, B + 1]
    cdf = cdf / cdf[:, -1:]  # the cumsum may end a few ulps away from 1; u < 1 must stay inside the last bin

    shape = (bins.shape[0], n_samples)
    if deterministic:
        u = (torch.arange(n_samples, dtype=cdf.dtype, device=cdf.device) + 0.5) / n_samples
        u = u.expand(shape).contiguous()
    else:
        # Sorted u give sorted t, since F^{-1} is non-decreasing.
        u = uniform(shape, generator, cdf.device, cdf.dtype).sort(dim=-1).values

    # right=True: u equal to an edge's cdf goes to the bin that starts there (zero-mass bins are skipped).
    upper = torch.searchsorted(cdf.contiguous(), u, right=True).clamp(1, n_bins)
    lower = upper - 1
    cdf_lo, cdf_hi = cdf.gather(-1, lower), cdf.gather(-1, upper)
    bin_lo, bin_hi = bins.gather(-1, lower), bins.gather(-1, upper)
    mass = cdf_hi - cdf_lo
    # A zero-mass bin is only reached at its left edge (u == cdf_lo); any denominator gives bin_lo there.
    fraction = (u - cdf_lo) / torch.where(mass > 0, mass, torch.ones_like(mass))
    return bin_lo + fraction * (bin_hi - bin_lo)


def hierarchical_samples(
    t_coarse: Tensor,
    weights: Tensor,
    n_fine: int,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """NeRF's fine samples: ``n_fine`` draws from the coarse weights, merged with the coarse samples.

    As in NeRF's code, the bins are the midpoints of ``t_coarse`` (``S - 1`` edges) and their masses the interior
    weights ``w_2 .. w_{S-1}`` (the end samples have no bin around them). The fine samples are detached: the
    coarse network learns from its own rendering loss, not through the sample positions.

    Args:
        t_coarse: ``[R, S]`` sorted coarse samples, ``S >= 3``.
        weights: ``[R, S]`` their compositing weights (``RenderResult.weights``).
        n_fine: number of fine samples per ray.
        deterministic, generator: as in :func:`sample_pdf`.

    Returns:
        ``[R, S + n_fine]``: the coarse and fine samples, sorted.
    """
    _check_rays("t_coarse", t_coarse, 2)
    if weights.shape != t_coarse.shape:
        raise ValueError(f"weights must have t_coarse's shape {tuple(t_coarse.shape)}, got {tuple(weights.shape)}")
    if t_coarse.shape[1] < 3:
        raise ValueError(f"t_coarse needs at least 3 samples per ray (2 midpoints), got {t_coarse.shape[1]}")
    midpoints = 0.5 * (t_coarse[:, 1:] + t_coarse[:, :-1])
    t_fine = sample_pdf(
        midpoints.detach(), weights[:, 1:-1].detach(), n_fine, deterministic=deterministic, generator=generator
    )
    return torch.sort(torch.cat([t_coarse, t_fine], dim=-1), dim=-1).values
