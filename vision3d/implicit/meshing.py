"""Triangle meshes from implicit functions: marching cubes (scikit-image, Lewiner et al.) on a grid of values.

An implicit surface is a level set ``S = {x : f(x) = level}`` of a function ``f : R^3 -> R``: a signed distance
function (SDF, ``level = 0``, negative inside) or an occupancy probability (``level = 0.5``, high inside). Marching
cubes samples ``f`` at the ``R^3`` vertices of a regular grid over the bounds ``[lo, hi]``,
``x_ijk = lo + (i, j, k) * h`` with spacing ``h = (hi - lo) / (R - 1)``, and in every cell whose corners lie on both
sides of the level places the surface vertices on the cell's edges by linear interpolation,
``v = x_a + (level - f_a) / (f_b - f_a) * (x_b - x_a)``.

Coarse-to-fine (ONet's multiresolution isosurface extraction): the surface touches few of the ``R^3`` vertices,
so ``f`` is first evaluated on a coarse sub-grid, the coarse cells that may contain surface are marked, and the
fine grid is evaluated only at vertices of marked cells. The coarse grid is the fine grid taken every
``stride = round((R - 1) / (coarse_resolution - 1))`` vertices plus the last one, so coarse values are fine values
(reused, not recomputed) and every fine cell lies in exactly one coarse cell; when ``R - 1`` is a multiple of
``coarse_resolution - 1`` the coarse grid has exactly ``coarse_resolution`` vertices per axis, otherwise its last
cell is shorter. A coarse cell is marked when

- ``sdf_margin is None``: its corners straddle the level (some ``f > level``, some ``f <= level``, skimage's
  convention), and then every cell next to a marked one too (a one-cell dilation), so a surface that dips into a
  neighbour cell without changing the sign of a coarse corner is still found; or
- ``sdf_margin = m``: it straddles or some corner has ``|f - level| < m``. For an exact SDF every surface point is
  within half a cell diagonal of a corner, so ``m`` = the coarse cell diagonal finds all of it.

Fine vertices of unmarked cells are not evaluated; they get the trilinear interpolation of the coarse values. All
corners of an unmarked cell are on one side of the level, so their interpolation is too and marching cubes finds
no spurious crossing there, while gradients (normals) next to evaluated regions stay sensible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from vision3d.scenes.mesh import TriangleMesh, save_mesh

__all__ = ["Mesh", "extract_mesh"]

Bounds = tuple[float, float] | tuple[Sequence[float], Sequence[float]]


@dataclass
class Mesh:
    """A triangle mesh: ``vertices`` float32 [V, 3], ``faces`` int64 [F, 3] (counter-clockwise seen from
    outside), unit vertex ``normals`` float32 [V, 3] pointing outward, and ``n_evaluations``, the number of
    points at which the implicit function was evaluated to build it (0 for a mesh loaded from a file)."""

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    n_evaluations: int = 0

    def __post_init__(self) -> None:
        self.vertices = np.asarray(self.vertices, dtype=np.float32)
        self.faces = np.asarray(self.faces, dtype=np.int64)
        self.normals = np.asarray(self.normals, dtype=np.float32)
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError(f"vertices must have shape [V, 3], got {self.vertices.shape}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"faces must have shape [F, 3], got {self.faces.shape}")
        if self.normals.shape != self.vertices.shape:
            raise ValueError(f"normals {self.normals.shape} must match vertices {self.vertices.shape}")

    def to_trimesh(self):  # -> trimesh.Trimesh, imported lazily
        """A ``trimesh.Trimesh`` with the same vertices, faces and normals (no merging or reordering)."""
        import trimesh

        return trimesh.Trimesh(self.vertices, self.faces, vertex_normals=self.normals, process=False)

    def save(self, path: str | Path) -> Path:
        """Write the mesh to ``path``; the suffix picks the format (``.ply`` or ``.obj``). Returns the path."""
        path = Path(path)
        if path.suffix.lower() not in (".ply", ".obj"):
            raise ValueError(f"unsupported mesh format {path.suffix!r} for {path}; use .ply or .obj")
        path.parent.mkdir(parents=True, exist_ok=True)
        save_mesh(path, self.vertices, self.faces, self.normals)
        return path

    def to_triangle_mesh(self, name: str = "<extracted mesh>") -> TriangleMesh:
        """The mesh as a :class:`~vision3d.scenes.mesh.TriangleMesh` (ray casting, signed distances)."""
        return TriangleMesh(self.vertices, self.faces, name=name)


def _grid_bounds(bounds: Bounds) -> tuple[np.ndarray, np.ndarray]:
    """``(lo [3], hi [3])`` from ``(lo, hi)`` scalars (a cube) or ``((xmin, ymin, zmin), (xmax, ymax, zmax))``."""
    if len(bounds) != 2:
        raise ValueError(f"bounds must be (lo, hi), got {bounds!r}")
    lo = np.broadcast_to(np.asarray(bounds[0], dtype=np.float64), (3,)).copy()
    hi = np.broadcast_to(np.asarray(bounds[1], dtype=np.float64), (3,)).copy()
    if not (np.isfinite(lo).all() and np.isfinite(hi).all() and (hi > lo).all()):
        raise ValueError(f"bounds need finite lo < hi on every axis, got lo={lo.tolist()}, hi={hi.tolist()}")
    return lo, hi


def _resolve_device(fn: Callable, device: str | torch.device | None) -> torch.device:
    """An explicit device, else the device of ``fn``'s parameters when it is a module, else the CPU."""
    from mpenv.device import get_device, module_device

    if device is not None:
        return get_device(device)
    return module_device(fn) if isinstance(fn, torch.nn.Module) else torch.device("cpu")


def _evaluate(
    fn: Callable[[torch.Tensor], torch.Tensor],
    index: np.ndarray,
    lo: np.ndarray,
    spacing: np.ndarray,
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """``fn`` at the grid points of integer ``index`` [N, 3], in batches, as float32 [N]."""
    values = np.empty(len(index), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(index), batch_size):
            # Points are made per batch: a 256^3 grid as float64 points at once would take 400 MB.
            points = lo + index[start : start + batch_size] * spacing
            batch = torch.as_tensor(points, dtype=torch.float32).to(device)
            out = torch.as_tensor(fn(batch))
            if out.numel() != len(batch):
                raise ValueError(f"fn must map [N, 3] points to N values, got {tuple(out.shape)} for N={len(batch)}")
            values[start : start + len(batch)] = out.reshape(-1).float().cpu().numpy()
    if not np.isfinite(values).all():
        raise ValueError("fn returned NaN or infinite values")
    return values


def _coarse_indices(resolution: int, coarse_resolution: int) -> np.ndarray:
    """Fine-grid indices of the coarse vertices along one axis: every ``stride``-th, plus the last."""
    stride = max(1, round((resolution - 1) / (coarse_resolution - 1)))
    index = np.arange(0, resolution, stride)
    return index if index[-1] == resolution - 1 else np.append(index, resolution - 1)


def _cell_corner_extremes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum and maximum over the 8 corners of every cell of a vertex grid [a, b, c] -> [a-1, b-1, c-1]."""
    corners = [values[i : values.shape[0] - 1 + i, j : values.shape[1] - 1 + j, k : values.shape[2] - 1 + k]
               for i in (0, 1) for j in (0, 1) for k in (0, 1)]  # fmt: skip
    return np.minimum.reduce(corners), np.maximum.reduce(corners)


def _dilate(mask: np.ndarray) -> np.ndarray:
    """One-cell dilation with the 3x3x3 box, separably: one neighbour either side along each axis in turn."""
    out = mask.copy()
    for axis in range(3):
        shifted = out.copy()
        lower = [slice(None)] * 3
        upper = [slice(None)] * 3
        lower[axis], upper[axis] = slice(None, -1), slice(1, None)
        shifted[tuple(lower)] |= out[tuple(upper)]
        shifted[tuple(upper)] |= out[tuple(lower)]
        out = shifted
    return out


def _cells_to_vertices(cell_mask: np.ndarray) -> np.ndarray:
    """Vertices [a+1, b+1, c+1] that are a corner of at least one marked cell [a, b, c]."""
    out = cell_mask
    for axis in range(3):
        pad = [(0, 0)] * 3
        pad[axis] = (1, 0)
        before = np.pad(out, pad)
        pad[axis] = (0, 1)
        out = before | np.pad(out, pad)
    return out


def _upsample_trilinear(coarse: np.ndarray, coarse_index: np.ndarray, resolution: int) -> np.ndarray:
    """Trilinear interpolation of coarse vertex values (at fine indices ``coarse_index`` per axis) to every fine
    vertex, one axis at a time."""
    fine = np.arange(resolution)
    cell = np.clip(np.searchsorted(coarse_index, fine, side="right") - 1, 0, len(coarse_index) - 2)
    t = ((fine - coarse_index[cell]) / (coarse_index[cell + 1] - coarse_index[cell])).astype(np.float32)
    out = coarse
    for axis in range(3):
        shape = [1, 1, 1]
        shape[axis] = resolution
        weight = t.reshape(shape)
        out = (1 - weight) * np.take(out, cell, axis=axis) + weight * np.take(out, cell + 1, axis=axis)
    return out


def _sample_grid(
    evaluate: Callable[[np.ndarray], np.ndarray],
    resolution: int,
    coarse_resolution: int | None,
    level: float,
    sdf_margin: float | None,
) -> tuple[np.ndarray, int]:
    """The fine volume [R, R, R] that marching cubes needs and the number of evaluations made to fill it (or the
    coarse volume when no coarse cell is marked, so there is nothing to refine)."""
    fine_axis = np.arange(resolution, dtype=np.int32)
    if coarse_resolution is None or _coarse_indices(resolution, coarse_resolution).size >= resolution:
        index = np.stack(np.meshgrid(fine_axis, fine_axis, fine_axis, indexing="ij"), axis=-1).reshape(-1, 3)
        return evaluate(index).reshape((resolution,) * 3), len(index)

    coarse_axis = _coarse_indices(resolution, coarse_resolution)
    coarse_index = np.stack(np.meshgrid(coarse_axis, coarse_axis, coarse_axis, indexing="ij"), axis=-1)
    coarse = evaluate(coarse_index.reshape(-1, 3)).reshape((len(coarse_axis),) * 3)

    low, high = _cell_corner_extremes(coarse)
    marked = (low <= level) & (high > level)
    if sdf_margin is None:
        marked = _dilate(marked)
    else:
        # A cell that does not straddle has all corners on one side, so its closest corner is its min or max.
        marked |= np.minimum(np.abs(low - level), np.abs(high - level)) < sdf_margin
    if not marked.any():
        return coarse, coarse.size  # no crossing: the caller reports it with these values

    # Fine cell c lies in the coarse cell whose span [coarse_axis[k], coarse_axis[k + 1]) contains it.
    cell_of = np.searchsorted(coarse_axis, np.arange(resolution - 1), side="right") - 1
    fine_marked = _cells_to_vertices(marked[np.ix_(cell_of, cell_of, cell_of)])

    volume = _upsample_trilinear(coarse, coarse_axis, resolution)
    on_coarse = np.zeros((resolution,) * 3, dtype=bool)
    on_coarse[np.ix_(coarse_axis, coarse_axis, coarse_axis)] = True
    todo = fine_marked & ~on_coarse
    index = np.argwhere(todo)
    volume[todo] = evaluate(index)
    return volume, coarse.size + len(index)


def extract_mesh(
    fn: Callable[[torch.Tensor], torch.Tensor],
    bounds: Bounds = (-1.0, 1.0),
    resolution: int = 128,
    level: float = 0.0,
    batch_size: int = 65536,
    coarse_resolution: int | None = 32,
    device: str | torch.device | None = None,
    sdf_margin: float | None = None,
    inside: Literal["negative", "positive"] = "negative",
) -> Mesh:
    """Mesh the level set ``fn(x) = level`` inside ``bounds`` by marching cubes on a ``resolution^3`` grid.

    ``fn`` maps float32 points [N, 3] on ``device`` to values [N]; it is called under ``torch.no_grad`` with at most
    ``batch_size`` points at a time. ``inside="negative"`` is for an SDF (inside where ``fn < level``),
    ``inside="positive"`` for an occupancy probability (inside where ``fn > level``, use ``level=0.5``); it sets
    which way the normals and the face winding point (outward). ``coarse_resolution`` enables coarse-to-fine
    evaluation (module docstring), ``None`` evaluates the dense grid; ``sdf_margin`` replaces the one-cell dilation
    by a distance test for SDFs. ``device=None`` uses ``fn``'s parameters' device when ``fn`` is a module, else the
    CPU. Raises ValueError when the level set does not cross the grid.
    """
    from skimage.measure import marching_cubes

    if resolution < 2:
        raise ValueError(f"resolution must be at least 2, got {resolution}")
    if coarse_resolution is not None and coarse_resolution < 2:
        raise ValueError(f"coarse_resolution must be at least 2 or None, got {coarse_resolution}")
    if inside not in ("negative", "positive"):
        raise ValueError(f"inside must be 'negative' (SDF) or 'positive' (occupancy), got {inside!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if sdf_margin is not None and not sdf_margin > 0:
        raise ValueError(f"sdf_margin must be positive or None, got {sdf_margin}")
    lo, hi = _grid_bounds(bounds)
    spacing = (hi - lo) / (resolution - 1)
    torch_device = _resolve_device(fn, device)

    # Negating an occupancy turns "inside high" into "inside low", so from here on outward is increasing values
    # whatever fn is. Negating at the source, not just before marching cubes, keeps the coarse test and skimage
    # on the same split of the values, "> level" versus "<= level", even for values exactly at the level.
    sign = 1.0 if inside == "negative" else -1.0

    def evaluate(index: np.ndarray) -> np.ndarray:
        return sign * _evaluate(fn, index, lo, spacing, batch_size, torch_device)

    volume, n_evaluations = _sample_grid(evaluate, resolution, coarse_resolution, sign * level, sdf_margin)
    if not (volume.max() > sign * level and volume.min() <= sign * level):
        low, high = sorted((sign * volume.min(), sign * volume.max()))
        coarse = volume.shape[0] < resolution
        hint = "; a surface inside one coarse cell needs a larger coarse_resolution, or None" if coarse else ""
        raise ValueError(
            f"no surface at level {level} in bounds lo={lo.tolist()}, hi={hi.tolist()}; values range "
            f"[{low:.4g}, {high:.4g}] on the {volume.shape[0]}^3 {'coarse ' if coarse else ''}grid{hint}"
        )

    # skimage's vertex normals point towards decreasing values and its faces (default "descent") wind
    # counter-clockwise around increasing values, i.e. outward here: the faces are right, the normals flip.
    vertices, faces, normals, _ = marching_cubes(volume, sign * level, spacing=tuple(spacing))
    return Mesh(vertices + lo, faces, -normals, n_evaluations=n_evaluations)
