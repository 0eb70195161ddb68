"""Triangle meshes as scenes: ray casting, signed distances, inside/outside and surface samples, and mesh files.

- Rays: Möller–Trumbore. A ray ``o + t d`` meets triangle ``(a, b, c)`` at ``o + t d = a + u e1 + v e2`` with
  ``e1 = b - a``, ``e2 = c - a``; Cramer's rule gives ``(t, u, v)`` and the hit counts when ``u, v >= 0``,
  ``u + v <= 1`` and ``t > 0``. Vectorized over all ray–triangle pairs in chunks.
- Inside/outside: the generalized winding number ``w(p) = sum_f Omega_f(p) / 4 pi`` (Jacobson et al. 2013),
  with each triangle's solid angle by Van Oosterom and Strackee's formula
  ``tan(Omega / 2) = a . (b x c) / (|a||b||c| + (a . b)|c| + (b . c)|a| + (c . a)|b|)``; ``w`` is 1 inside a
  closed mesh and 0 outside, so ``w > 1/2`` is inside. It needs a watertight mesh, which is checked.
- Distance: the nearest point of each triangle is the projection onto its plane when that falls inside, else
  the nearest point of its three edges. With the sign from the winding number this is the exact signed
  distance outside; like a CSG union, a mesh of overlapping closed parts (the body's limbs) gives a lower bound
  of the depth inside.

Meshes are read and written through ``trimesh`` (PLY, OBJ, STL, ...): :func:`load_mesh`, :meth:`TriangleMesh.save`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
from torch import Tensor

from vision3d.scenes.shapes import Vec3, as_vec3, check_points, check_rays

RAY_CHUNK = 1024
POINT_CHUNK = 512


def _triangles(vertices: Tensor, faces: Tensor, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    corners = vertices.to(like)[faces]
    return corners[:, 0], corners[:, 1], corners[:, 2]


def ray_triangle_hits(
    origins: Tensor, directions: Tensor, vertices: Tensor, faces: Tensor, eps: float = 1e-12
) -> tuple[Tensor, Tensor]:
    """Nearest hit ``t`` [N] (``inf`` on a miss) and the index of the triangle hit [N] (-1 on a miss)."""
    a, b, c = _triangles(vertices, faces, origins)
    e1, e2 = b - a, c - a
    t_best = torch.full((len(origins),), math.inf, dtype=origins.dtype, device=origins.device)
    face_best = torch.full((len(origins),), -1, dtype=torch.long, device=origins.device)
    for start in range(0, len(origins), RAY_CHUNK):
        o, d = origins[start : start + RAY_CHUNK, None], directions[start : start + RAY_CHUNK, None]
        p = torch.linalg.cross(d.expand(-1, len(e2), -1), e2.expand(len(d), -1, -1))
        det = (e1 * p).sum(-1)
        inverse = 1.0 / torch.where(det.abs() > eps, det, torch.ones_like(det))
        offset = o - a
        u = (offset * p).sum(-1) * inverse
        q = torch.linalg.cross(offset, e1.expand_as(offset))
        v = (d * q).sum(-1) * inverse
        t = (e2 * q).sum(-1) * inverse
        valid = (det.abs() > eps) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > eps)
        t = torch.where(valid, t, torch.full_like(t, math.inf))
        t_min, face = t.min(dim=-1)
        t_best[start : start + RAY_CHUNK] = t_min
        face_best[start : start + RAY_CHUNK] = torch.where(torch.isfinite(t_min), face, -1)
    return t_best, face_best


def _ray_box_hits(origins: Tensor, directions: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Which rays pass through the axis-aligned box (the slab test)."""
    inverse = 1.0 / torch.where(directions == 0, torch.full_like(directions, 1e-300), directions)
    t0, t1 = (low - origins) * inverse, (high - origins) * inverse
    t_near = torch.minimum(t0, t1).max(dim=-1).values
    t_far = torch.maximum(t0, t1).min(dim=-1).values
    return (t_near <= t_far) & (t_far > 0)


def face_clusters(vertices: Tensor, faces: Tensor, depth: int = 4) -> list[Tensor]:
    """Face indices split ``depth`` times at the median centroid along the longest side: 2^depth spatially
    compact groups, so a ray is tested only against the groups whose bounding box it crosses."""
    centroids = vertices[faces].mean(dim=1)
    groups = [torch.arange(len(faces))]
    for _ in range(depth):
        split = []
        for group in groups:
            if len(group) < 16:
                split.append(group)
                continue
            points = centroids[group]
            axis = (points.max(dim=0).values - points.min(dim=0).values).argmax()
            order = group[points[:, axis].argsort()]
            split += [order[: len(order) // 2], order[len(order) // 2 :]]
        groups = split
    return groups


def ray_mesh_hits(
    origins: Tensor, directions: Tensor, vertices: Tensor, faces: Tensor, clusters: list[Tensor]
) -> tuple[Tensor, Tensor]:
    """:func:`ray_triangle_hits` over face clusters, each tested only with the rays that cross its box."""
    t_best = torch.full((len(origins),), math.inf, dtype=origins.dtype, device=origins.device)
    face_best = torch.full((len(origins),), -1, dtype=torch.long, device=origins.device)
    for group in clusters:
        corners = vertices.to(origins)[faces[group]].reshape(-1, 3)
        rays = _ray_box_hits(origins, directions, corners.min(dim=0).values, corners.max(dim=0).values).nonzero()[:, 0]
        if len(rays) == 0:
            continue
        t, face = ray_triangle_hits(origins[rays], directions[rays], vertices, faces[group])
        closer = t < t_best[rays]
        t_best[rays[closer]] = t[closer]
        face_best[rays[closer]] = group[face[closer]]
    return t_best, face_best


def winding_number(points: Tensor, vertices: Tensor, faces: Tensor) -> Tensor:
    """The generalized winding number [N] of a triangle mesh at each point (1 inside a closed mesh, 0 out)."""
    a0, b0, c0 = _triangles(vertices, faces, points)
    total = torch.empty(len(points), dtype=points.dtype, device=points.device)
    for start in range(0, len(points), POINT_CHUNK):
        p = points[start : start + POINT_CHUNK, None]
        a, b, c = a0 - p, b0 - p, c0 - p
        la, lb, lc = a.norm(dim=-1), b.norm(dim=-1), c.norm(dim=-1)
        numerator = (a * torch.linalg.cross(b, c)).sum(-1)
        denominator = la * lb * lc + (a * b).sum(-1) * lc + (b * c).sum(-1) * la + (c * a).sum(-1) * lb
        total[start : start + POINT_CHUNK] = 2.0 * torch.atan2(numerator, denominator).sum(-1) / (4.0 * math.pi)
    return total


def _segment_distance(p: Tensor, a: Tensor, b: Tensor) -> Tensor:
    ab = b - a
    along = (((p - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-300)).clamp(0.0, 1.0)
    return (p - a - along[..., None] * ab).norm(dim=-1)


def point_triangle_distance(points: Tensor, vertices: Tensor, faces: Tensor) -> tuple[Tensor, Tensor]:
    """Unsigned distance [N] from each point to the mesh and the index of the nearest triangle [N]."""
    a0, b0, c0 = _triangles(vertices, faces, points)
    normal = torch.linalg.cross(b0 - a0, c0 - a0)
    normal = normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    distance = torch.empty(len(points), dtype=points.dtype, device=points.device)
    nearest = torch.empty(len(points), dtype=torch.long, device=points.device)
    for start in range(0, len(points), POINT_CHUNK):
        p = points[start : start + POINT_CHUNK, None]
        height = ((p - a0) * normal).sum(-1)
        foot = p - height[..., None] * normal
        # The foot is inside the triangle when it is on the inner side of all three edges.
        inside = torch.ones_like(height, dtype=torch.bool)
        for u, v in ((a0, b0), (b0, c0), (c0, a0)):
            inside &= (torch.linalg.cross((v - u).expand_as(foot), foot - u) * normal).sum(-1) >= 0
        edges = torch.stack([_segment_distance(p, a0, b0), _segment_distance(p, b0, c0),
                             _segment_distance(p, c0, a0)]).min(dim=0).values
        pair_distance = torch.where(inside, height.abs(), edges)
        distance[start : start + POINT_CHUNK], nearest[start : start + POINT_CHUNK] = pair_distance.min(dim=-1)
    return distance, nearest


def mesh_distance(points: Tensor, vertices: Tensor, faces: Tensor, clusters: list[Tensor]) -> tuple[Tensor, Tensor]:
    """:func:`point_triangle_distance` over face clusters. The nearest vertex bounds each point's distance from
    above and a cluster's box bounds it from below, so a cluster is searched only for the points it can serve."""
    vertices = vertices.to(points)
    upper = torch.cdist(points, vertices).min(dim=-1).values
    distance = torch.full_like(upper, math.inf)
    nearest = torch.full_like(upper, -1, dtype=torch.long)
    for group in clusters:
        corners = vertices[faces[group]].reshape(-1, 3)
        low, high = corners.min(dim=0).values, corners.max(dim=0).values
        to_box = (torch.maximum(low - points, points - high).clamp_min(0.0)).norm(dim=-1)
        candidates = (to_box <= upper * (1 + 1e-9) + 1e-12).nonzero()[:, 0]  # rounding when both are equal
        if len(candidates) == 0:
            continue
        d, face = point_triangle_distance(points[candidates], vertices, faces[group])
        closer = d < distance[candidates]
        distance[candidates[closer]] = d[closer]
        nearest[candidates[closer]] = group[face[closer]]
    return distance, nearest


def _face_normals_and_areas(triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals (right-hand rule on the vertex order) and areas of triangles [F, 3, 3]."""
    cross = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    doubled_areas = np.linalg.norm(cross, axis=1)
    # Zero-area faces are never sampled (probability 0), so their normal may stay 0 instead of NaN.
    normals = cross / np.maximum(doubled_areas, np.finfo(np.float64).tiny)[:, None]
    return normals, 0.5 * doubled_areas


def sample_mesh_surface(
    vertices: object, faces: object, n: int, seed: int | np.random.Generator | None = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform on the surface of a triangle mesh and the normals of the faces they lie on.

    ``vertices`` [V, 3], ``faces`` [F, 3] integer indices. Returns ``(points [n, 3], normals [n, 3])`` as float32
    NumPy arrays; normals follow the right-hand rule on each face's vertex order (outward for a consistently
    counter-clockwise mesh).
    """
    verts = check_points(torch.as_tensor(vertices, dtype=torch.float64), "vertices").numpy()
    tris = np.asarray(torch.as_tensor(faces).detach().cpu().numpy())
    if tris.ndim != 2 or tris.shape[1] != 3 or tris.shape[0] == 0:
        raise ValueError(f"faces must have shape [F, 3] with F >= 1, got {tris.shape}")
    if not np.issubdtype(tris.dtype, np.integer):
        raise ValueError(f"faces must hold integer vertex indices, got {tris.dtype}")
    if tris.min() < 0 or tris.max() >= len(verts):
        raise ValueError(f"faces index vertices in [{tris.min()}, {tris.max()}] but there are {len(verts)}")
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    triangles = verts[tris]
    face_normals, areas = _face_normals_and_areas(triangles)
    total_area = areas.sum()
    if not total_area > 0:
        raise ValueError("the mesh has zero surface area")

    rng = np.random.default_rng(seed)
    face_index = rng.choice(len(areas), size=n, p=areas / total_area)
    # sqrt(r1) undoes the density growth towards the edge opposite vertex 0; without it points crowd at vertex 0.
    sqrt_r1, r2 = np.sqrt(rng.random(n)), rng.random(n)
    barycentric = np.stack([1.0 - sqrt_r1, sqrt_r1 * (1.0 - r2), sqrt_r1 * r2], axis=1)
    points = np.einsum("nk,nkd->nd", barycentric, triangles[face_index])
    return points, face_normals[face_index]


def save_mesh(path: str | os.PathLike[str], vertices: object, faces: object, normals: object | None = None) -> None:
    """Write a triangle mesh in the format its suffix names (``.ply``, ``.obj``, ``.stl``, ...) via trimesh."""
    import trimesh

    mesh = trimesh.Trimesh(np.asarray(vertices), np.asarray(faces), vertex_normals=normals, process=False)
    mesh.export(os.fspath(path))


@dataclass(frozen=True)
class TriangleMesh:
    """A closed triangle mesh (vertices [V, 3], faces [F, 3] with outward, counter-clockwise winding) with the
    interface of the analytic shapes in :mod:`vision3d.scenes.shapes`."""

    vertices: Tensor
    faces: Tensor
    color: Vec3 = field(default=(0.8, 0.65, 0.55), kw_only=True)
    name: str = field(default="<mesh>", kw_only=True)

    def __post_init__(self) -> None:
        vertices = torch.as_tensor(self.vertices, dtype=torch.float64)
        faces = torch.as_tensor(self.faces, dtype=torch.long)
        if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) < 3:
            raise ValueError(f"{self.name}: vertices must have shape [V >= 3, 3], got {list(vertices.shape)}")
        if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
            raise ValueError(f"{self.name}: faces must have shape [F >= 1, 3], got {list(faces.shape)}")
        if faces.min() < 0 or faces.max() >= len(vertices):
            raise ValueError(f"{self.name}: face indices must lie in [0, {len(vertices)}), got "
                             f"[{faces.min().item()}, {faces.max().item()}]")
        if not torch.isfinite(vertices).all():
            raise ValueError(f"{self.name}: vertices contain NaN or inf")
        object.__setattr__(self, "vertices", vertices)
        object.__setattr__(self, "faces", faces)

    def check_watertight(self) -> None:
        """Raise unless every edge is shared by exactly two faces with opposite orientations, which inside/outside
        labels need."""
        directed = torch.cat([self.faces[:, [0, 1]], self.faces[:, [1, 2]], self.faces[:, [2, 0]]])
        reverse = directed.flip(1)
        key = directed[:, 0] * len(self.vertices) + directed[:, 1]
        reverse_key = reverse[:, 0] * len(self.vertices) + reverse[:, 1]
        unique_edges = len(torch.unique(key)) == len(key)
        matched = torch.isin(key, reverse_key).all().item()
        if not (unique_edges and matched):
            open_edges = int((~torch.isin(key, reverse_key)).sum())
            raise ValueError(
                f"{self.name} is not watertight ({open_edges} edges without an opposite twin"
                f"{'' if unique_edges else ', some edges used twice in the same direction'}); inside/outside "
                "labels and signed distances need a closed, consistently oriented mesh"
            )

    def face_normals(self) -> Tensor:
        a, b, c = _triangles(self.vertices, self.faces, self.vertices)
        normal = torch.linalg.cross(b - a, c - a)
        return normal / normal.norm(dim=-1, keepdim=True).clamp_min(1e-300)

    def face_areas(self) -> Tensor:
        a, b, c = _triangles(self.vertices, self.faces, self.vertices)
        return 0.5 * torch.linalg.cross(b - a, c - a).norm(dim=-1)

    @cached_property
    def clusters(self) -> list[Tensor]:
        return face_clusters(self.vertices, self.faces)

    def intersect(self, origins: Tensor, directions: Tensor) -> Tensor:
        origins, directions = check_rays(origins, directions)
        return ray_mesh_hits(origins, directions, self.vertices, self.faces, self.clusters)[0]

    def winding_number(self, x: Tensor) -> Tensor:
        return winding_number(check_points(x), self.vertices, self.faces)

    def occupancy(self, x: Tensor) -> Tensor:
        self.check_watertight()
        return self.winding_number(x) > 0.5

    def sdf(self, x: Tensor) -> Tensor:
        self.check_watertight()
        x = check_points(x)
        distance, _ = mesh_distance(x, self.vertices, self.faces, self.clusters)
        return torch.where(self.winding_number(x) > 0.5, -distance, distance)

    def normal(self, x: Tensor) -> Tensor:
        """The normal of the nearest triangle at each (surface) point."""
        _, nearest = mesh_distance(check_points(x), self.vertices, self.faces, self.clusters)
        return self.face_normals().to(x)[nearest]

    def albedo(self, x: Tensor) -> Tensor:
        return as_vec3(self.color, x).expand(x.shape[0], 3)

    def bounds(self) -> tuple[Tensor, Tensor]:
        return self.vertices.min(dim=0).values, self.vertices.max(dim=0).values

    def area(self) -> float:
        return float(self.face_areas().sum())

    def sample_surface(self, n: int, generator: torch.Generator, exposed_only: bool = True) -> tuple[Tensor, Tensor]:
        """Points uniform by area on the triangles (two uniforms folded into the triangle), with face normals.

        With ``exposed_only`` the parts of triangles buried inside another closed part of the mesh (winding
        number above one) are dropped, so the samples cover the visible surface uniformly."""
        kept_points, kept_normals, total = [], [], 0
        while total < n:
            seed = int(torch.randint(2**62, (1,), generator=generator))
            points, normals = (torch.from_numpy(a) for a in sample_mesh_surface(self.vertices, self.faces, 2 * n, seed))
            if exposed_only:
                exposed = self.winding_number(points) < 1.0
                points, normals = points[exposed], normals[exposed]
            kept_points.append(points)
            kept_normals.append(normals)
            total += len(points)
        return torch.cat(kept_points)[:n], torch.cat(kept_normals)[:n]

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the mesh in the format its suffix names (``.ply``, ``.obj``, ``.stl``, ...) via trimesh."""
        save_mesh(path, self.vertices.numpy(), self.faces.numpy())


def load_mesh(path: str | os.PathLike[str], color: Vec3 = (0.8, 0.65, 0.55)) -> TriangleMesh:
    """Read a triangle mesh file through trimesh; errors name the file and what is wrong with it."""
    import trimesh

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no mesh file at {path}")
    try:
        loaded = trimesh.load(path, force="mesh", process=False)
    except Exception as error:  # trimesh raises many types for malformed files
        raise ValueError(f"{path}: not a readable mesh file ({type(error).__name__}: {error})") from error
    faces = np.asarray(getattr(loaded, "faces", np.zeros((0, 3))))
    if len(faces) == 0:
        raise ValueError(f"{path}: no triangle faces in the file")
    return TriangleMesh(np.asarray(loaded.vertices), faces, color=color, name=path)
