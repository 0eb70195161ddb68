"""A z-buffer triangle rasterizer: meshes in camera coordinates -> per-pixel depth, triangle and barycentrics, for a
batch of images at once. Where ray casting (:mod:`vision3d.scenes.mesh`) asks, for every pixel, which of all the
triangles its ray meets, rasterization asks, for every triangle, which pixel centres it covers -- only those in its
bounding box -- and keeps the nearest candidate per pixel. For small images of meshes with thousands of triangles
that is one to two orders of magnitude less work, and it returns the same first hits (tests/test_raster.py checks it
against the ray caster).

For a triangle with projected corners ``p_0, p_1, p_2`` (pixels, ``u = f_x X/Z + c_x``, ``v = f_y Y/Z + c_y``) and a
pixel centre ``q`` (pixel ``(i, j)`` has its centre at ``(j + 0.5, i + 0.5)``, as :func:`pixel_centers`), the
screen-space barycentrics are ratios of signed areas (edge functions)::

    lambda_0 = A(q, p_1, p_2) / A(p_0, p_1, p_2),  lambda_1 = A(p_0, q, p_2) / A,  lambda_2 = 1 - lambda_0 - lambda_1

and ``q`` is covered when all three are >= 0 (either winding). Depth is not linear in screen space but its inverse
is, so the depth at ``q`` and the perspective-correct barycentrics (which interpolate attributes such as normals)
are::

    1 / z = sum_k lambda_k / z_k,        lambda'_k = (lambda_k / z_k) * z

The z-buffer keeps, per pixel, the covering candidate of least ``z`` (ties to the lower triangle index). Triangles
are grouped by the size of their pixel bounding box (powers of two), so each group is one vectorized step with no
wasted candidates beyond a factor of four.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

NEAR = 1e-4  # triangles with a corner closer than this (or behind the camera) are not drawn


class Fragments(NamedTuple):
    """What :func:`rasterize` returns, per image pixel: ``depth`` [B, H, W] (camera z; ``inf`` where empty),
    ``face`` [B, H, W] (triangle index, -1 where empty) and ``bary`` [B, H, W, 3] (perspective-correct barycentrics
    of the pixel centre in that triangle, zeros where empty)."""

    depth: Tensor
    face: Tensor
    bary: Tensor

    @property
    def mask(self) -> Tensor:
        return self.face >= 0


def _edge(a: Tensor, b: Tensor, q: Tensor) -> Tensor:
    """Twice the signed area of the triangle ``(a, b, q)`` (2D points on the last axis)."""
    return (b[..., 0] - a[..., 0]) * (q[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (q[..., 0] - a[..., 0])


def rasterize(vertices: Tensor, faces: Tensor, K: Tensor, width: int, height: int) -> Fragments:
    """Rasterize meshes given in camera coordinates (OpenCV: x right, y down, z forward).

    ``vertices`` [B, V, 3] (or [V, 3]), ``faces`` [F, 3] shared by the batch, ``K`` [3, 3] (or [B, 3, 3]) the
    intrinsics. Triangles with a corner at ``z < NEAR`` are skipped (no clipping: meant for objects in front of the
    camera)."""
    if vertices.ndim == 2:
        vertices = vertices[None]
    if vertices.ndim != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must have shape [B, V, 3] or [V, 3], got {tuple(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3 or faces.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"faces must be an integer tensor [F, 3], got {faces.dtype} {tuple(faces.shape)}")
    if len(faces) and (faces.min() < 0 or faces.max() >= vertices.shape[1]):
        raise ValueError(f"face indices must lie in [0, {vertices.shape[1]}), got [{faces.min()}, {faces.max()}]")
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    batch, dtype, device = vertices.shape[0], vertices.dtype, vertices.device
    K = K.to(dtype).expand(batch, 3, 3)
    z = vertices[..., 2]
    uv = (vertices @ K.transpose(1, 2))[..., :2] / z.clamp_min(NEAR)[..., None]  # [B, V, 2]
    faces = faces.long()
    tri_uv, tri_z = uv[:, faces], z[:, faces]  # [B, F, 3, 2], [B, F, 3]

    # Pixel index ranges of each triangle's bounding box: centres j + 0.5 within [min u, max u].
    low = torch.ceil(tri_uv.amin(2) - 0.5).clamp_min(0)
    high = torch.floor(tri_uv.amax(2) - 0.5)
    high = torch.minimum(high, torch.tensor([width - 1.0, height - 1.0], dtype=dtype, device=device))
    extent = (high - low + 1).amax(-1)  # [B, F]: the larger side, in pixels
    drawn = (tri_z.amin(-1) > NEAR) & (extent >= 1) & torch.isfinite(tri_uv).all(-1).all(-1)

    area = _edge(tri_uv[..., 0, :], tri_uv[..., 1, :], tri_uv[..., 2, :])
    drawn &= area.abs() > 1e-12
    pixels = height * width
    best = torch.full((batch * pixels,), torch.inf, dtype=dtype, device=device)
    found: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []  # (pixel key, depth, face, barycentrics)
    max_extent = int(extent[drawn].max()) if drawn.any() else 0
    for size in (2**k for k in range(max(max_extent - 1, 0).bit_length() + 1)):
        b, f = torch.nonzero(drawn & (extent <= size) & (extent > size // 2), as_tuple=True)
        if len(b) == 0:
            continue
        steps = torch.arange(size, device=device, dtype=dtype)
        cols = low[b, f, 0][:, None, None] + steps[None, None, :]  # [C, 1, n]
        rows = low[b, f, 1][:, None, None] + steps[None, :, None]  # [C, n, 1]
        inside_box = (cols <= high[b, f, 0][:, None, None]) & (rows <= high[b, f, 1][:, None, None])
        qx, qy = cols + 0.5, rows + 0.5  # pixel centres, broadcast to [C, n, n] only where combined
        corner_x, corner_y = (tri_uv[b, f][..., axis, None, None] for axis in (0, 1))  # [C, 3, 1, 1] each
        (x0, x1, x2), (y0, y1, y2) = corner_x.unbind(1), corner_y.unbind(1)
        denominator = area[b, f][:, None, None]
        l0 = ((x1 - qx) * (y2 - qy) - (y1 - qy) * (x2 - qx)) / denominator  # _edge(q, p_1, p_2) / A
        l1 = ((qx - x0) * (y2 - y0) - (qy - y0) * (x2 - x0)) / denominator  # _edge(p_0, q, p_2) / A
        l2 = 1 - l0 - l1
        covered = inside_box & (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
        c, r, s = torch.nonzero(covered, as_tuple=True)
        bary = torch.stack([l0[c, r, s], l1[c, r, s], l2[c, r, s]], dim=-1)
        over_z = bary / tri_z[b[c], f[c]]
        depth = 1 / over_z.sum(-1)
        key = b[c] * pixels + rows[c, r, 0].long() * width + cols[c, 0, s].long()
        best.scatter_reduce_(0, key, depth, reduce="amin")
        found.append((key, depth, f[c], over_z * depth[:, None]))

    face = torch.full((batch * pixels,), -1, dtype=torch.long, device=device)
    bary_out = torch.zeros(batch * pixels, 3, dtype=dtype, device=device)
    if found:
        key, depth, face_index, bary = (torch.cat(parts) for parts in zip(*found, strict=True))
        nearest = depth <= best[key]
        key, face_index, bary = key[nearest], face_index[nearest], bary[nearest]
        # Ties (a shared edge or vertex at equal depth): the lowest triangle index wins, whatever the order above.
        lowest = torch.full_like(face, torch.iinfo(torch.long).max)
        lowest.scatter_reduce_(0, key, face_index, reduce="amin")
        winner = face_index == lowest[key]
        face[key[winner]] = face_index[winner]
        bary_out[key[winner]] = bary[winner]
    return Fragments(best.view(batch, height, width), face.view(batch, height, width),
                     bary_out.view(batch, height, width, 3))  # fmt: skip


def interpolate(fragments: Fragments, faces: Tensor, attributes: Tensor) -> Tensor:
    """Per-vertex ``attributes`` [B, V, D] (or [V, D]) interpolated at every covered pixel with the
    perspective-correct barycentrics -> [B, H, W, D] (zeros where empty)."""
    batch, height, width = fragments.face.shape
    attributes = attributes.expand(batch, *attributes.shape[-2:]) if attributes.ndim == 2 else attributes
    face = fragments.face.view(batch, -1)
    b, p = torch.nonzero(face >= 0, as_tuple=True)  # only covered pixels: most of a small image is background
    values = attributes[b[:, None], faces.long()[face[b, p]]]  # [P, 3, D]
    bary = fragments.bary.view(batch, -1, 3, 1)[b, p]  # [P, 3, 1]
    # Three products added in order: the value of summing over the corner axis, which is a slow strided reduction.
    covered = values[:, 0] * bary[:, 0] + values[:, 1] * bary[:, 1] + values[:, 2] * bary[:, 2]
    result = covered.new_zeros(batch, height * width, covered.shape[-1]).index_put((b, p), covered)
    return result.view(batch, height, width, -1)


def vertex_normals(vertices: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted unit vertex normals [B, V, 3] of meshes [B, V, 3] (counter-clockwise faces point outward)."""
    faces = faces.long()
    a, b, c = vertices[:, faces[:, 0]], vertices[:, faces[:, 1]], vertices[:, faces[:, 2]]
    face_normals = torch.linalg.cross(b - a, c - a)  # length = twice the area: the weighting comes free
    normals = torch.zeros_like(vertices)
    for corner in range(3):
        normals.index_add_(1, faces[:, corner], face_normals)
    return normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)
