"""Analytic shapes with exact signed distances, exact ray intersections and uniform surface samples.

Every shape answers, for points ``x`` [N, 3] and rays ``o + t d`` (``d`` unit):

- ``sdf(x)``: the signed distance, negative inside. Exact for each primitive (Inigo Quilez's formulas); a
  :class:`Union` takes the minimum, which is the exact distance outside and a lower bound on the depth inside;
- ``intersect(o, d)``: the distance ``t`` [N] to the first surface point in front of the origin, ``inf`` on a
  miss. Closed form for spheres (a quadratic) and boxes (slabs); sphere tracing polished by Newton steps to
  float64 precision for the rest; a union's first hit is the nearest of its children's;
- ``normal(x)``: the outward unit normal at surface points, the SDF's gradient ``grad f(x)``;
- ``sample_surface(n, generator)``: points distributed uniformly by area on the surface, with normals;
- ``bounds()`` and ``area()``; ``color(x)``: its diffuse colour at surface points.

The world is z-up. :class:`~vision3d.scenes.mesh.TriangleMesh` answers the same questions for triangle meshes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

Vec3 = tuple[float, float, float]


def as_vec3(values: Vec3 | Tensor, like: Tensor) -> Tensor:
    return torch.as_tensor(values, dtype=like.dtype, device=like.device)


def check_points(x: Tensor, name: str = "points") -> Tensor:
    if not isinstance(x, Tensor):
        x = torch.as_tensor(x, dtype=torch.float64)
    if x.ndim != 2 or x.shape[-1] != 3:
        raise ValueError(f"{name} must have shape [N, 3], got {list(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contain NaN or inf")
    return x


def check_rays(origins: Tensor, directions: Tensor) -> tuple[Tensor, Tensor]:
    origins, directions = check_points(origins, "ray origins"), check_points(directions, "ray directions")
    if origins.shape != directions.shape:
        raise ValueError(f"ray origins {list(origins.shape)} and directions {list(directions.shape)} differ")
    if ((directions.norm(dim=-1) - 1.0).abs() > 1e-6).any():
        raise ValueError("ray directions must be unit vectors")
    return origins, directions


def _unit(v: Tensor) -> Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-300)


def sdf_gradient(sdf: object, x: Tensor) -> Tensor:
    """``grad f(x)`` [N, 3] of a signed distance function by autograd (unit length wherever ``f`` is exact)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (gradient,) = torch.autograd.grad(sdf(x).sum(), x)
    return gradient


def sphere_trace(
    shape: Shape,
    origins: Tensor,
    directions: Tensor,
    t_max: float = 100.0,
    max_steps: int = 1000,
    tolerance: float = 1e-9,
    newton_steps: int = 3,
) -> Tensor:
    """First hits ``t`` [N] (``inf`` on a miss) by sphere tracing ``t <- t + f(o + t d)``, which never steps
    through the surface of an exact SDF, then Newton steps ``t <- t - f / (d . grad f)`` to float64 precision.

    A ray counts as a miss when it leaves ``t_max`` or when its distance is still above ``sqrt(tolerance)``
    after ``max_steps`` (a ray grazing the surface converges slowly)."""
    t = torch.zeros(origins.shape[0], dtype=origins.dtype, device=origins.device)
    active = torch.ones_like(t, dtype=torch.bool)
    distance = torch.full_like(t, math.inf)
    for _ in range(max_steps):
        if not active.any():
            break
        distance[active] = shape.sdf(origins[active] + t[active, None] * directions[active])
        t = torch.where(active, t + distance.clamp_min(0.0), t)
        active &= (distance > tolerance) & (t < t_max)
    hit = (distance.abs() <= math.sqrt(tolerance)) & (t < t_max)
    for _ in range(newton_steps):
        points = origins[hit] + t[hit, None] * directions[hit]
        slope = (sdf_gradient(shape.sdf, points) * directions[hit]).sum(-1)
        step = shape.sdf(points) / torch.where(slope.abs() > 1e-6, slope, -torch.ones_like(slope))
        t[hit] = t[hit] - step.clamp(-1e-3, 1e-3)  # a Newton step never moves far from a converged trace
    return torch.where(hit, t, torch.full_like(t, math.inf))


@dataclass(frozen=True)
class Shape:
    """What every analytic shape shares: its colour, normals by the SDF's gradient, and sphere tracing for
    shapes without a closed-form intersection. Subclasses define ``sdf``, ``bounds``, ``area`` and
    ``sample_surface``."""

    color: Vec3 = field(default=(0.8, 0.8, 0.8), kw_only=True)

    def sdf(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def intersect(self, origins: Tensor, directions: Tensor) -> Tensor:
        origins, directions = check_rays(origins, directions)
        return sphere_trace(self, origins, directions)

    def normal(self, x: Tensor) -> Tensor:
        return _unit(sdf_gradient(self.sdf, check_points(x)))

    def albedo(self, x: Tensor) -> Tensor:
        """Diffuse colour [N, 3] at surface points ``x``."""
        return as_vec3(self.color, x).expand(x.shape[0], 3)

    def occupancy(self, x: Tensor) -> Tensor:
        """Inside (``True``) or outside, from the sign of the distance."""
        return self.sdf(check_points(x)) < 0


@dataclass(frozen=True)
class Sphere(Shape):
    center: Vec3 = (0.0, 0.0, 0.0)
    radius: float = 1.0

    def sdf(self, x: Tensor) -> Tensor:
        return (x - as_vec3(self.center, x)).norm(dim=-1) - self.radius

    def intersect(self, origins: Tensor, directions: Tensor) -> Tensor:
        """Roots of ``|o + t d - c|^2 = r^2``: ``t = -b -/+ sqrt(b^2 - c)`` with ``b = d . (o - c)``."""
        origins, directions = check_rays(origins, directions)
        offset = origins - as_vec3(self.center, origins)
        b = (directions * offset).sum(-1)
        c = (offset * offset).sum(-1) - self.radius**2
        discriminant = b * b - c
        root = discriminant.clamp_min(0.0).sqrt()
        near, far = -b - root, -b + root
        t = torch.where(near > 0, near, far)  # an origin inside the sphere sees the far wall
        return torch.where((discriminant >= 0) & (t > 0), t, torch.full_like(t, math.inf))

    def bounds(self) -> tuple[Tensor, Tensor]:
        c = torch.tensor(self.center, dtype=torch.float64)
        return c - self.radius, c + self.radius

    def area(self) -> float:
        return 4.0 * math.pi * self.radius**2

    def sample_surface(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        normals = _unit(torch.randn(n, 3, generator=generator, dtype=torch.float64))
        return torch.tensor(self.center, dtype=torch.float64) + self.radius * normals, normals


@dataclass(frozen=True)
class Box(Shape):
    """An axis-aligned box with half side lengths ``half_size``."""

    center: Vec3 = (0.0, 0.0, 0.0)
    half_size: Vec3 = (0.5, 0.5, 0.5)

    def sdf(self, x: Tensor) -> Tensor:
        q = (x - as_vec3(self.center, x)).abs() - as_vec3(self.half_size, x)
        return q.clamp_min(0.0).norm(dim=-1) + q.max(dim=-1).values.clamp_max(0.0)

    def intersect(self, origins: Tensor, directions: Tensor) -> Tensor:
        """The slab method: the ray is inside all three slabs for ``max_i t_near,i <= t <= min_i t_far,i``."""
        origins, directions = check_rays(origins, directions)
        low = as_vec3(self.center, origins) - as_vec3(self.half_size, origins)
        high = as_vec3(self.center, origins) + as_vec3(self.half_size, origins)
        # Rays parallel to a slab get +-inf, which the max/min below treat correctly; 0 * inf must not appear.
        inverse = 1.0 / torch.where(directions == 0, torch.full_like(directions, 1e-300), directions)
        t0, t1 = (low - origins) * inverse, (high - origins) * inverse
        t_near = torch.minimum(t0, t1).max(dim=-1).values
        t_far = torch.maximum(t0, t1).min(dim=-1).values
        t = torch.where(t_near > 0, t_near, t_far)
        return torch.where((t_near <= t_far) & (t > 0), t, torch.full_like(t, math.inf))

    def bounds(self) -> tuple[Tensor, Tensor]:
        c, h = torch.tensor(self.center, dtype=torch.float64), torch.tensor(self.half_size, dtype=torch.float64)
        return c - h, c + h

    def area(self) -> float:
        hx, hy, hz = self.half_size
        return 8.0 * (hx * hy + hy * hz + hz * hx)

    def sample_surface(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        h = torch.tensor(self.half_size, dtype=torch.float64)
        face_areas = torch.stack([h[1] * h[2], h[0] * h[2], h[0] * h[1]]).repeat(2)  # +x, +y, +z, -x, -y, -z
        face = torch.multinomial(face_areas, n, replacement=True, generator=generator)
        axis, sign = face % 3, torch.where(face < 3, 1.0, -1.0).to(torch.float64)
        local = (2.0 * torch.rand(n, 3, generator=generator, dtype=torch.float64) - 1.0) * h
        rows = torch.arange(n)
        local[rows, axis] = sign * h[axis]
        normals = torch.zeros(n, 3, dtype=torch.float64)
        normals[rows, axis] = sign
        return torch.tensor(self.center, dtype=torch.float64) + local, normals


@dataclass(frozen=True)
class Torus(Shape):
    """A torus around the z axis through ``center``: the tube of radius ``minor`` around the circle of radius
    ``major``."""

    center: Vec3 = (0.0, 0.0, 0.0)
    major: float = 0.7
    minor: float = 0.25

    def __post_init__(self) -> None:
        if not 0 < self.minor < self.major:
            raise ValueError(f"need 0 < minor < major, got minor={self.minor}, major={self.major}")

    def sdf(self, x: Tensor) -> Tensor:
        p = x - as_vec3(self.center, x)
        ring = torch.stack([p[:, :2].norm(dim=-1) - self.major, p[:, 2]], dim=-1)
        return ring.norm(dim=-1) - self.minor

    def bounds(self) -> tuple[Tensor, Tensor]:
        c = torch.tensor(self.center, dtype=torch.float64)
        extent = torch.tensor([self.major + self.minor] * 2 + [self.minor], dtype=torch.float64)
        return c - extent, c + extent

    def area(self) -> float:
        return 4.0 * math.pi**2 * self.major * self.minor

    def sample_surface(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        # Area element (R + r cos phi) dphi dtheta: draw phi by rejection against its maximum R + r.
        accepted: list[Tensor] = []
        while sum(len(a) for a in accepted) < n:
            phi = 2.0 * math.pi * torch.rand(2 * n, generator=generator, dtype=torch.float64)
            keep = torch.rand(2 * n, generator=generator, dtype=torch.float64) * (self.major + self.minor)
            accepted.append(phi[keep < self.major + self.minor * torch.cos(phi)])
        phi = torch.cat(accepted)[:n]
        theta = 2.0 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
        cos_phi = torch.cos(phi)
        normals = torch.stack([cos_phi * torch.cos(theta), cos_phi * torch.sin(theta), torch.sin(phi)], -1)
        ring = self.major * torch.stack([torch.cos(theta), torch.sin(theta), torch.zeros_like(theta)], -1)
        return torch.tensor(self.center, dtype=torch.float64) + ring + self.minor * normals, normals


@dataclass(frozen=True)
class Capsule(Shape):
    """All points within ``radius`` of the segment from ``a`` to ``b``."""

    a: Vec3 = (0.0, 0.0, -0.5)
    b: Vec3 = (0.0, 0.0, 0.5)
    radius: float = 0.3

    def _segment_offset(self, x: Tensor) -> tuple[Tensor, Tensor]:
        a, b = as_vec3(self.a, x), as_vec3(self.b, x)
        along = ((x - a) @ (b - a) / ((b - a) @ (b - a))).clamp(0.0, 1.0)
        return x - (a + along[:, None] * (b - a)), along

    def sdf(self, x: Tensor) -> Tensor:
        return self._segment_offset(x)[0].norm(dim=-1) - self.radius

    def bounds(self) -> tuple[Tensor, Tensor]:
        a, b = torch.tensor(self.a, dtype=torch.float64), torch.tensor(self.b, dtype=torch.float64)
        return torch.minimum(a, b) - self.radius, torch.maximum(a, b) + self.radius

    def _length(self) -> float:
        return math.dist(self.a, self.b)

    def area(self) -> float:
        return 2.0 * math.pi * self.radius * self._length() + 4.0 * math.pi * self.radius**2

    def sample_surface(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        a, b = torch.tensor(self.a, dtype=torch.float64), torch.tensor(self.b, dtype=torch.float64)
        axis = (b - a) / self._length()
        # Both end caps together are one sphere: a sphere sample on the b side of the mid-plane goes to b's cap.
        on_caps = torch.rand(n, generator=generator, dtype=torch.float64) < 4.0 * math.pi * self.radius**2 / self.area()
        normals = _unit(torch.randn(n, 3, generator=generator, dtype=torch.float64))
        radial = _unit(normals - (normals @ axis)[:, None] * axis)  # the cylinder's normals are radial
        normals = torch.where(on_caps[:, None], normals, radial)
        along = torch.rand(n, generator=generator, dtype=torch.float64)
        base = torch.where(on_caps, ((normals @ axis) > 0).to(torch.float64), along)
        return a + base[:, None] * (b - a) + self.radius * normals, normals


@dataclass(frozen=True)
class Union(Shape):
    """The union of shapes (constructive solid geometry): ``f = min_k f_k``; each point keeps its child's
    colour."""

    children: tuple[Shape, ...] = ()

    def __post_init__(self) -> None:
        if len(self.children) == 0:
            raise ValueError("a union needs at least one shape")

    def _distances(self, x: Tensor) -> Tensor:
        return torch.stack([child.sdf(x) for child in self.children], dim=-1)

    def sdf(self, x: Tensor) -> Tensor:
        return self._distances(x).min(dim=-1).values

    def intersect(self, origins: Tensor, directions: Tensor) -> Tensor:
        return torch.stack([c.intersect(origins, directions) for c in self.children], dim=-1).min(dim=-1).values

    def _nearest_child(self, x: Tensor) -> Tensor:
        return self._distances(x).abs().argmin(dim=-1)

    def normal(self, x: Tensor) -> Tensor:
        x = check_points(x)
        nearest = self._nearest_child(x)
        normals = torch.zeros_like(x)
        for k, child in enumerate(self.children):
            chosen = nearest == k
            if chosen.any():
                normals[chosen] = child.normal(x[chosen])
        return normals

    def albedo(self, x: Tensor) -> Tensor:
        colors = torch.stack([as_vec3(c.color, x) for c in self.children])
        return colors[self._nearest_child(x)]

    def bounds(self) -> tuple[Tensor, Tensor]:
        lows, highs = zip(*(child.bounds() for child in self.children), strict=True)
        return torch.stack(lows).min(dim=0).values, torch.stack(highs).max(dim=0).values

    def area(self) -> float:
        """The area of the union's surface, estimated from the share of each child's surface left exposed."""
        points = [c.sample_surface(20_000, torch.Generator().manual_seed(0))[0] for c in self.children]
        return sum(c.area() * self._exposed(p, k).double().mean().item() for k, (c, p) in
                   enumerate(zip(self.children, points, strict=True)))

    def _exposed(self, points: Tensor, k: int) -> Tensor:
        others = [c.sdf(points) for j, c in enumerate(self.children) if j != k]
        return torch.stack(others).min(dim=0).values > 0 if others else torch.ones(len(points), dtype=torch.bool)

    def sample_surface(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Uniform on the union's surface: sample each child by its area and drop the points buried inside
        another child."""
        areas = torch.tensor([c.area() for c in self.children], dtype=torch.float64)
        kept_points, kept_normals, total = [], [], 0
        while total < n:
            counts = torch.multinomial(areas, 2 * n, replacement=True, generator=generator).bincount(
                minlength=len(self.children))
            for k, (child, count) in enumerate(zip(self.children, counts.tolist(), strict=True)):
                if count:
                    points, normals = child.sample_surface(count, generator)
                    exposed = self._exposed(points, k)
                    kept_points.append(points[exposed])
                    kept_normals.append(normals[exposed])
                    total += int(exposed.sum())
        order = torch.randperm(total, generator=generator)[:n]
        return torch.cat(kept_points)[order], torch.cat(kept_normals)[order]
