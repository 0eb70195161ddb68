"""Labelled point sets from exact shapes: surface points with normals, points with their signed distance
(DeepSDF's near-surface sampling), and points with inside/outside labels (Occupancy Networks).

Every sampler draws from a seeded generator, so a seed fixes the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PointSamples:
    """Points [N, 3] with a value per point: a signed distance, an occupancy (0/1) or nothing (surface)."""

    points: Tensor
    values: Tensor | None = None
    normals: Tensor | None = None


def _padded_box(shape: object, padding: float) -> tuple[Tensor, Tensor]:
    low, high = shape.bounds()
    margin = padding * (high - low).max()
    return low - margin, high + margin


def surface_samples(shape: object, n: int, seed: int = 0) -> PointSamples:
    """``n`` points uniform by area on the surface, with outward normals."""
    if n < 1:
        raise ValueError(f"need at least one sample, got n={n}")
    points, normals = shape.sample_surface(n, torch.Generator().manual_seed(seed))
    return PointSamples(points, None, normals)


def uniform_box_points(shape: object, n: int, generator: torch.Generator, padding: float = 0.1) -> Tensor:
    """Points uniform in the shape's bounding box grown by ``padding`` times its largest side."""
    low, high = _padded_box(shape, padding)
    return low + (high - low) * torch.rand(n, 3, generator=generator, dtype=torch.float64)


def sdf_samples(
    shape: object, n: int, seed: int = 0, near_sigmas: tuple[float, ...] = (0.01, 0.05), uniform_fraction: float = 0.2,
    padding: float = 0.1,
) -> PointSamples:
    """DeepSDF's training points: surface samples displaced by Gaussian noise of each ``near_sigmas`` (equal
    shares), plus ``uniform_fraction`` of points uniform in the padded box, each with its exact signed distance."""
    if n < 1:
        raise ValueError(f"need at least one sample, got n={n}")
    generator = torch.Generator().manual_seed(seed)
    n_uniform = int(round(uniform_fraction * n))
    n_near = n - n_uniform
    surface, _ = shape.sample_surface(n_near, generator)
    sigma = torch.tensor(near_sigmas, dtype=torch.float64)[torch.arange(n_near) % len(near_sigmas)]
    near = surface + sigma[:, None] * torch.randn(n_near, 3, generator=generator, dtype=torch.float64)
    points = torch.cat([near, uniform_box_points(shape, n_uniform, generator, padding)])
    return PointSamples(points, shape.sdf(points))


def occupancy_samples(
    shape: object, n: int, seed: int = 0, near_fraction: float = 0.5, near_sigma: float = 0.05, padding: float = 0.1,
) -> PointSamples:
    """Occupancy Networks' training points: uniform in the padded box, plus ``near_fraction`` of points near
    the surface (where the decision boundary is), each labelled 1 inside and 0 outside. A mesh must be
    watertight, otherwise inside is undefined and this raises."""
    if n < 1:
        raise ValueError(f"need at least one sample, got n={n}")
    generator = torch.Generator().manual_seed(seed)
    n_near = int(round(near_fraction * n))
    surface, _ = shape.sample_surface(max(n_near, 1), generator)
    near = surface[:n_near] + near_sigma * torch.randn(n_near, 3, generator=generator, dtype=torch.float64)
    points = torch.cat([near, uniform_box_points(shape, n - n_near, generator, padding)])
    return PointSamples(points, shape.occupancy(points).to(torch.float64))
