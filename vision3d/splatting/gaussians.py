"""A scene of anisotropic 3D Gaussians: their parameters, covariances, initialization and the PLY files viewers read.

Gaussian ``i`` is the density (Kerbl et al. 2023)::

    G_i(x) = o_i exp(-1/2 (x - mu_i)^T Sigma_i^{-1} (x - mu_i)),       Sigma_i = R_i S_i S_i^T R_i^T

with mean ``mu`` and opacity ``o``, and its colour seen from direction ``d`` from spherical harmonics (see
:mod:`vision3d.splatting.sh`). An optimizer cannot keep an arbitrary ``Sigma`` positive semidefinite, so it
moves unconstrained parameters instead, each of which maps to a valid Gaussian::

    S = diag(exp(log_scales))                          scales s > 0
    R = R(q / |q|),  q = (w, x, y, z)                  rotation from a (not necessarily unit) quaternion
    o = sigmoid(opacity_logit)                         opacity in (0, 1)

    R(w, x, y, z) = [[1 - 2(y^2 + z^2),  2(xy - wz),        2(xz + wy)      ],
                     [2(xy + wz),        1 - 2(x^2 + z^2),  2(yz - wx)      ],
                     [2(xz - wy),        2(yz + wx),        1 - 2(x^2 + y^2)]]

``Sigma = M M^T`` with ``M = R S`` is positive semidefinite for every parameter value; its eigenvalues are ``s^2``
and its eigenvectors the columns of ``R``.

Initialization from a point cloud (the paper's, from structure-from-motion points): one isotropic Gaussian per
point, with scale the mean distance to its 3 nearest neighbours, identity rotation, opacity 0.1, and the DC
coefficient from the point's colour (higher SH bands zero)::

    s_i = 1/3 sum_{j in kNN_3(i)} |p_i - p_j|,      c_0 = (rgb - 1/2) / C0

PLY layout (the one 3DGS writes and splat viewers read): ``binary_little_endian 1.0``, one ``element vertex N``
with float32 properties::

    x y z  nx ny nz  f_dc_0 f_dc_1 f_dc_2  f_rest_0 ... f_rest_{3(K-1)-1}  opacity  scale_0..2  rot_0..3

normals zero, opacity as its logit, scales as logs, rot as ``(w, x, y, z)``, and ``f_rest`` channel-major: the
``K - 1`` red coefficients of bands ``>= 1``, then the green, then the blue.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from vision3d.splatting.sh import MAX_SH_DEGREE, num_sh_coefficients, rgb_to_sh0, sh_degree_from_coefficients

__all__ = [
    "Gaussians",
    "covariance_3d",
    "gaussians_from_points",
    "load_ply",
    "mean_neighbour_distance",
    "ply_property_names",
    "quaternion_to_rotation",
    "random_gaussians_in_box",
    "save_ply",
]


def _check_rows(name: str, tensor: Tensor, width: int, n: int | None = None) -> None:
    """``tensor`` must be a finite floating point ``[n, width]`` tensor."""
    rows = "N" if n is None else n
    if not isinstance(tensor, Tensor) or tensor.ndim != 2 or tensor.shape[1] != width:
        shape = list(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
        raise ValueError(f"{name} must have shape [{rows}, {width}], got {shape}")
    if n is not None and tensor.shape[0] != n:
        raise ValueError(f"{name} must have shape [{n}, {width}], got {list(tensor.shape)}")
    if not tensor.is_floating_point():
        raise ValueError(f"{name} must be a floating point tensor, got {tensor.dtype}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} has non-finite entries")


# ----------------------------------------------------------------------------------------------------------------
# Rotation and covariance


def quaternion_to_rotation(quaternions: Tensor) -> Tensor:
    """Rotation matrices ``[N, 3, 3]`` of quaternions ``q = (w, x, y, z)`` ``[N, 4]``, normalized here.

    ``q`` and ``-q`` give the same rotation. A zero quaternion has no rotation and is a ``ValueError``.
    """
    _check_rows("quaternions", quaternions, 4)
    norms = torch.linalg.vector_norm(quaternions, dim=1, keepdim=True)
    if (norms == 0).any():
        raise ValueError(f"quaternions has {int((norms == 0).sum())} zero quaternion(s), which are no rotation")
    w, x, y, z = (quaternions / norms).unbind(dim=1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=1).reshape(-1, 3, 3)


def covariance_3d(log_scales: Tensor, quaternions: Tensor) -> Tensor:
    """``Sigma = R S S^T R^T`` ``[N, 3, 3]`` with ``S = diag(exp(log_scales))``; symmetric PSD by construction."""
    _check_rows("log_scales", log_scales, 3)
    _check_rows("quaternions", quaternions, 4, n=log_scales.shape[0])
    m = quaternion_to_rotation(quaternions) * torch.exp(log_scales)[:, None, :]  # M = R S: column j of R times s_j
    sigma = m @ m.transpose(1, 2)
    # M M^T is symmetric in exact arithmetic; averaging makes it symmetric bit for bit, which eigh and
    # the 2D projection downstream assume.
    return 0.5 * (sigma + sigma.transpose(1, 2))


# ----------------------------------------------------------------------------------------------------------------
# The container


@dataclass(eq=False)  # tensors have no single truth value: compare fields explicitly
class Gaussians:
    """``N`` Gaussians as the optimizer sees them: unconstrained tensors, one row per Gaussian.

    ``means [N, 3]``, ``log_scales [N, 3]``, ``quaternions [N, 4]`` as ``(w, x, y, z)``, ``opacity_logits [N]``,
    ``sh [N, K, 3]`` with ``K = (max_degree + 1)^2`` and ``sh[:, 0]`` the DC term. Construction does not validate;
    call :meth:`check` where the tensors come from outside.
    """

    means: Tensor
    log_scales: Tensor
    quaternions: Tensor
    opacity_logits: Tensor
    sh: Tensor

    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def opacities(self) -> Tensor:
        """``o = sigmoid(opacity_logits)`` ``[N]``."""
        return torch.sigmoid(self.opacity_logits)

    @property
    def scales(self) -> Tensor:
        """``s = exp(log_scales)`` ``[N, 3]``."""
        return torch.exp(self.log_scales)

    @property
    def sh_degree(self) -> int:
        """The largest SH degree ``sh`` holds, from ``K = (degree + 1)^2``."""
        return sh_degree_from_coefficients(self.sh.shape[1])

    def covariances(self) -> Tensor:
        """``Sigma = R S S^T R^T`` ``[N, 3, 3]``."""
        return covariance_3d(self.log_scales, self.quaternions)

    def parameters(self) -> dict[str, Tensor]:
        """Name -> tensor, in field order (the names an optimizer's parameter groups can use)."""
        return {field.name: getattr(self, field.name) for field in fields(self)}

    def check(self) -> Gaussians:
        """Raises a ``ValueError`` naming the field unless shapes, dtypes, devices agree and every value is finite
        (and no quaternion is zero); returns ``self``."""
        n = len(self) if isinstance(self.means, Tensor) and self.means.ndim == 2 else None
        _check_rows("Gaussians.means", self.means, 3)
        _check_rows("Gaussians.log_scales", self.log_scales, 3, n=n)
        _check_rows("Gaussians.quaternions", self.quaternions, 4, n=n)
        logits = self.opacity_logits
        if not isinstance(logits, Tensor) or logits.shape != (n,):
            shape = list(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
            raise ValueError(f"Gaussians.opacity_logits must have shape [{n}], got {shape}")
        _check_rows("Gaussians.opacity_logits", logits[:, None], 1)
        sh = self.sh
        if not isinstance(sh, Tensor) or sh.ndim != 3 or sh.shape[0] != n or sh.shape[2] != 3:
            shape = list(sh.shape) if isinstance(sh, Tensor) else type(sh).__name__
            raise ValueError(f"Gaussians.sh must have shape [{n}, K, 3], got {shape}")
        try:
            sh_degree_from_coefficients(sh.shape[1])
        except ValueError as error:
            raise ValueError(f"Gaussians.sh: {error}") from None
        _check_rows("Gaussians.sh", sh.reshape(n, 3 * sh.shape[1]), 3 * sh.shape[1])
        kinds = {(name, tensor.dtype, tensor.device) for name, tensor in self.parameters().items()}
        if len({(dtype, device) for _, dtype, device in kinds}) > 1:
            listing = ", ".join(f"{name}: {dtype} on {device}" for name, dtype, device in sorted(kinds, key=str))
            raise ValueError(f"Gaussians' tensors must share one dtype and device, got {listing}")
        zero = torch.linalg.vector_norm(self.quaternions, dim=1) == 0
        if zero.any():
            raise ValueError(f"Gaussians.quaternions has {int(zero.sum())} zero quaternion(s), which are no rotation")
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Gaussians:
        """Marks every tensor (they must be leaves) as trainable, in place; returns ``self``."""
        for tensor in self.parameters().values():
            tensor.requires_grad_(requires_grad)
        return self

    def detach(self) -> Gaussians:
        """The same values, cut from the autograd graph (no copy)."""
        return Gaussians(**{name: tensor.detach() for name, tensor in self.parameters().items()})

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Gaussians:
        """On ``device`` (and in ``dtype`` if given); tensors already there are shared, not copied."""
        return Gaussians(**{name: tensor.to(device, dtype) for name, tensor in self.parameters().items()})

    def index(self, selection: Tensor) -> Gaussians:
        """The Gaussians a boolean mask ``[N]`` or an integer index tensor picks (rows may repeat, as cloning does).

        The result stays in the autograd graph: gradients reach the selected rows of ``self``.
        """
        if not isinstance(selection, Tensor):
            kind = type(selection).__name__
            raise ValueError(f"selection must be a bool mask or an integer index tensor, got {kind}")
        if selection.dtype == torch.bool:
            if selection.shape != (len(self),):
                raise ValueError(f"a boolean mask must have shape [{len(self)}], got {list(selection.shape)}")
        elif selection.is_floating_point() or selection.is_complex() or selection.ndim != 1:
            shape = list(selection.shape)
            raise ValueError(f"selection must be a [N] bool mask or a 1-D integer tensor, got {selection.dtype}{shape}")
        return Gaussians(**{name: tensor[selection] for name, tensor in self.parameters().items()})

    def cat(self, other: Gaussians) -> Gaussians:
        """``self`` followed by ``other`` (which must hold as many SH coefficients)."""
        if self.sh.shape[1] != other.sh.shape[1]:
            counts = f"{self.sh.shape[1]} and {other.sh.shape[1]}"
            raise ValueError(f"cannot concatenate Gaussians with {counts} SH coefficients")
        mine, theirs = self.parameters(), other.parameters()
        return Gaussians(**{name: torch.cat([mine[name], theirs[name]]) for name in mine})


# ----------------------------------------------------------------------------------------------------------------
# Initialization


def mean_neighbour_distance(points: Tensor, k: int = 3, max_chunk_elements: int = 2**22) -> Tensor:
    """For each of ``points [N, 3]`` the mean Euclidean distance to its ``k`` nearest other points: ``[N]``.

    Brute force, ``O(N^2)`` time: distances from a chunk of rows to all points at a time, so that memory stays
    at ``max_chunk_elements`` distances. Fine for the ``1e5`` points of a course scene; use a k-d tree beyond.
    """
    _check_rows("points", points, 3)
    n = points.shape[0]
    if n < 2:
        raise ValueError(f"nearest neighbours need at least 2 points, got {n}")
    k = min(k, n - 1)
    points = points.detach()
    rows_per_chunk = max(1, max_chunk_elements // n)
    distances = []
    for start in range(0, n, rows_per_chunk):
        chunk = points[start : start + rows_per_chunk]
        # The matrix-product shortcut |a|^2 - 2ab + |b|^2 cancels catastrophically for close points: compute directly.
        to_all = torch.cdist(chunk, points, compute_mode="donot_use_mm_for_euclid_dist")
        rows = torch.arange(chunk.shape[0], device=points.device)
        to_all[rows, start + rows] = math.inf  # a point is not its own neighbour
        distances.append(to_all.topk(k, dim=1, largest=False).values.mean(dim=1))
    return torch.cat(distances)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def gaussians_from_points(
    points: Tensor,
    colors: Tensor | None = None,
    sh_degree: int = 3,
    initial_opacity: float = 0.1,
) -> Gaussians:
    """One isotropic Gaussian per point of ``points [N, 3]`` (N >= 2), as the 3DGS paper initializes from SfM.

    Scale: mean distance to the 3 nearest neighbours (the paper's wording; its code takes the root of the mean
    *squared* distance), at least ``1e-7`` so that duplicate points get a finite log. Rotation: identity. Opacity:
    ``initial_opacity``. Colour: ``colors [N, 3]`` in [0, 1] (default mid-grey 0.5) as the DC coefficient, all
    higher of the ``(sh_degree + 1)^2`` coefficients zero. Tensors follow ``points``' dtype and device.
    """
    _check_rows("points", points, 3)
    n = points.shape[0]
    if colors is None:
        colors = torch.full_like(points, 0.5)
    _check_rows("colors", colors, 3, n=n)
    if not 0 < initial_opacity < 1:
        raise ValueError(f"initial_opacity must be in (0, 1), got {initial_opacity}")
    points = points.detach()
    scale = mean_neighbour_distance(points).clamp_min(1e-7)
    sh = torch.zeros(n, num_sh_coefficients(sh_degree), 3, dtype=points.dtype, device=points.device)
    sh[:, 0] = rgb_to_sh0(colors.detach().to(points.dtype))
    identity = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=points.dtype, device=points.device)
    return Gaussians(
        means=points.clone(),
        log_scales=torch.log(scale)[:, None].repeat(1, 3),
        quaternions=identity.repeat(n, 1),
        opacity_logits=torch.full((n,), _logit(initial_opacity), dtype=points.dtype, device=points.device),
        sh=sh,
    )


def random_gaussians_in_box(
    n: int,
    low: float | Sequence[float] | Tensor,
    high: float | Sequence[float] | Tensor,
    sh_degree: int = 3,
    initial_opacity: float = 0.1,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Gaussians:
    """``n`` Gaussians at points uniform in the box ``[low, high]`` (per axis) with uniform random colours, as 3DGS
    starts synthetic scenes without SfM points; then :func:`gaussians_from_points`. Seeded through ``generator``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2 (scales come from nearest neighbours), got {n!r}")
    low_corner = torch.as_tensor(low, dtype=dtype).expand(3)
    high_corner = torch.as_tensor(high, dtype=dtype).expand(3)
    finite = torch.isfinite(low_corner).all() and torch.isfinite(high_corner).all()
    if not (finite and (low_corner < high_corner).all()):
        corners = f"low={low_corner.tolist()}, high={high_corner.tolist()}"
        raise ValueError(f"the box needs finite low < high on every axis, got {corners}")
    unit = torch.rand(n, 3, generator=generator, dtype=dtype)
    colors = torch.rand(n, 3, generator=generator, dtype=dtype)
    points = low_corner + (high_corner - low_corner) * unit
    return gaussians_from_points(points, colors, sh_degree=sh_degree, initial_opacity=initial_opacity)


# ----------------------------------------------------------------------------------------------------------------
# PLY files

PLY_FORMAT = "binary_little_endian"
PLY_VERSION = "1.0"
PLY_FLOAT_TYPES = ("float", "float32")
MAX_PLY_HEADER_BYTES = 1 << 20  # a 3DGS header is ~1 KiB; an untrusted file without end_header must not be scanned


def ply_property_names(num_coefficients: int) -> list[str]:
    """The vertex properties, in the order 3DGS writes them, for ``K = num_coefficients`` SH coefficients."""
    sh_degree_from_coefficients(num_coefficients)
    return [
        "x", "y", "z", "nx", "ny", "nz",
        "f_dc_0", "f_dc_1", "f_dc_2",
        *[f"f_rest_{i}" for i in range(3 * (num_coefficients - 1))],
        "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
    ]  # fmt: skip


def _ply_columns(gaussians: Gaussians) -> Tensor:
    """``[N, P]`` values in :func:`ply_property_names` order."""
    n = len(gaussians)
    normals = torch.zeros_like(gaussians.means)
    # [N, K-1, 3] -> [N, 3, K-1]: the file lists a channel's coefficients together.
    rest_channel_major = gaussians.sh[:, 1:, :].transpose(1, 2).reshape(n, 3 * (gaussians.sh.shape[1] - 1))
    return torch.cat(
        [
            gaussians.means,
            normals,
            gaussians.sh[:, 0, :],
            rest_channel_major,
            gaussians.opacity_logits[:, None],
            gaussians.log_scales,
            gaussians.quaternions,
        ],
        dim=1,
    )


def save_ply(path: str | Path, gaussians: Gaussians) -> None:
    """Writes ``gaussians`` (validated first) as a 3DGS PLY file; values are rounded to float32."""
    gaussians.check()
    names = ply_property_names(gaussians.sh.shape[1])
    columns = _ply_columns(gaussians.detach().to("cpu", torch.float32)).numpy()
    records = np.empty(len(gaussians), dtype=[(name, "<f4") for name in names])
    for i, name in enumerate(names):
        records[name] = columns[:, i]
    header = [
        "ply",
        f"format {PLY_FORMAT} {PLY_VERSION}",
        f"element vertex {len(gaussians)}",
        *[f"property float {name}" for name in names],
        "end_header",
    ]
    with open(path, "wb") as file:
        file.write(("\n".join(header) + "\n").encode("ascii"))
        file.write(records.tobytes())


def _read_header_lines(path: Path, data: bytes) -> tuple[list[str], int]:
    """The header's lines (without ``end_header``) and the offset where the binary data starts."""
    lines: list[str] = []
    start = 0
    while start < min(len(data), MAX_PLY_HEADER_BYTES):
        end = data.find(b"\n", start, MAX_PLY_HEADER_BYTES)
        if end < 0:
            break
        try:
            line = data[start:end].rstrip(b"\r").decode("ascii").strip()
        except UnicodeDecodeError:
            raise ValueError(f"{path}: PLY header line {len(lines) + 1} is not ASCII") from None
        start = end + 1
        if not lines and line != "ply":
            raise ValueError(f"{path}: not a PLY file (the first line must be 'ply', got {line[:40]!r})")
        if line == "end_header":
            return lines, start
        lines.append(line)
    if not lines:
        raise ValueError(f"{path}: not a PLY file (the first line must be 'ply')")
    raise ValueError(f"{path}: PLY header has no end_header line in its first {MAX_PLY_HEADER_BYTES} bytes")


def _parse_vertex_header(path: Path, lines: list[str]) -> tuple[int, list[str]]:
    """Vertex count and property names from the header lines, which must describe float vertices only."""
    if len(lines) < 2 or lines[1].split()[:1] != ["format"]:
        raise ValueError(f"{path}: PLY header must give its format on the second line")
    format_words = lines[1].split()
    if format_words[1:] != [PLY_FORMAT, PLY_VERSION]:
        raise ValueError(f"{path}: PLY format must be '{PLY_FORMAT} {PLY_VERSION}', got {' '.join(format_words[1:])!r}")
    count: int | None = None
    names: list[str] = []
    for number, line in enumerate(lines[2:], start=3):
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "element":
            if count is not None:
                raise ValueError(f"{path}: only one PLY element (vertex) is supported, line {number}: {line!r}")
            if len(words) != 3 or words[1] != "vertex" or not words[2].isdigit():
                raise ValueError(f"{path}: expected 'element vertex <count>' on line {number}, got {line!r}")
            count = int(words[2])
        elif words[0] == "property":
            if count is None:
                raise ValueError(f"{path}: property before 'element vertex' on line {number}: {line!r}")
            if len(words) != 3 or words[1] not in PLY_FLOAT_TYPES:
                raise ValueError(f"{path}: only float32 properties are supported, line {number}: {line!r}")
            if words[2] in names:
                raise ValueError(f"{path}: property {words[2]!r} appears twice")
            names.append(words[2])
        else:
            raise ValueError(f"{path}: unexpected PLY header line {number}: {line!r}")
    if count is None:
        raise ValueError(f"{path}: PLY header has no 'element vertex <count>' line")
    return count, names


def _num_rest_coefficients(path: Path, names: list[str]) -> int:
    """``K - 1``, from the ``f_rest_*`` properties, which must be ``f_rest_0 .. f_rest_{3(K-1)-1}``."""
    rest = {name for name in names if name.startswith("f_rest_")}
    allowed = [3 * (num_sh_coefficients(d) - 1) for d in range(MAX_SH_DEGREE + 1)]
    if len(rest) not in allowed:
        raise ValueError(f"{path}: {len(rest)} f_rest properties, expected one of {allowed} (SH degree 0 to 3)")
    expected = {f"f_rest_{i}" for i in range(len(rest))}
    if rest != expected:
        unexpected = sorted(rest - expected)
        raise ValueError(f"{path}: f_rest properties must be numbered 0..{len(rest) - 1}, got {unexpected}")
    return len(rest) // 3


def load_ply(path: str | Path, max_sh_degree: int | None = None) -> Gaussians:
    """Reads a 3DGS PLY file (float32 tensors on the CPU), validating it as untrusted input.

    Properties may come in any order and extra float properties are ignored. ``max_sh_degree`` sets the
    container's degree: the file's degree when ``None``; otherwise missing bands are zero and bands above it are
    dropped. Every problem with the file is a ``ValueError`` naming it.
    """
    path = Path(path)
    data = path.read_bytes()  # FileNotFoundError names the path
    lines, offset = _read_header_lines(path, data)
    n, names = _parse_vertex_header(path, lines)
    required = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", *[f"scale_{i}" for i in range(3)]]
    missing = [name for name in [*required, *[f"rot_{i}" for i in range(4)]] if name not in names]
    if missing:
        raise ValueError(f"{path}: missing vertex properties {missing}")
    num_rest = _num_rest_coefficients(path, names)

    record = np.dtype([(name, "<f4") for name in names])
    expected_bytes, found_bytes = n * record.itemsize, len(data) - offset
    if found_bytes != expected_bytes:
        problem = "truncated" if found_bytes < expected_bytes else "has trailing bytes"
        layout = f"{n} vertices of {len(names)} float32 properties take {expected_bytes} bytes"
        raise ValueError(f"{path}: {problem}: {layout}, found {found_bytes}")
    records = np.frombuffer(data, dtype=record, count=n, offset=offset)
    for name in names:
        bad = ~np.isfinite(records[name])
        if bad.any():
            raise ValueError(f"{path}: property {name!r} has {int(bad.sum())} non-finite value(s)")

    def columns(*column_names: str) -> Tensor:
        values = [records[name].astype(np.float32) for name in column_names]
        return torch.from_numpy(np.stack(values, axis=1) if values else np.zeros((n, 0), np.float32))

    rest = columns(*[f"f_rest_{i}" for i in range(3 * num_rest)]).reshape(n, 3, num_rest).transpose(1, 2)
    sh = torch.cat([columns("f_dc_0", "f_dc_1", "f_dc_2")[:, None, :], rest], dim=1)
    if max_sh_degree is not None:
        wanted = num_sh_coefficients(max_sh_degree)
        padding = torch.zeros(n, max(0, wanted - sh.shape[1]), 3)
        sh = torch.cat([sh, padding], dim=1)[:, :wanted].contiguous()
    gaussians = Gaussians(
        means=columns("x", "y", "z"),
        log_scales=columns("scale_0", "scale_1", "scale_2"),
        quaternions=columns("rot_0", "rot_1", "rot_2", "rot_3"),
        opacity_logits=columns("opacity")[:, 0],
        sh=sh,
    )
    try:
        return gaussians.check()
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
