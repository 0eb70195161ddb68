"""Input encodings for coordinate networks, interchangeable ``torch.nn.Module``s mapping ``x [N, d]`` (or
``[..., d]``) to features ``[N, out_dim]``, plus the occupancy grid that lets a renderer skip empty space.

- :class:`PositionalEncoding` -- NeRF (Mildenhall et al. 2020, eq. 4), the paper's form, with ``pi``::

      gamma(p) = (sin(2^0 pi p), cos(2^0 pi p), ..., sin(2^{L-1} pi p), cos(2^{L-1} pi p))

  applied to every coordinate. (NeRF's released code omits the ``pi``: ``sin(2^k p)``.)
- :class:`FourierFeatures` -- random Fourier features (Tancik et al. 2020)::

      gamma(v) = [cos(2 pi B v), sin(2 pi B v)],      B_{ij} ~ N(0, scale^2), fixed

- :class:`HashGrid` -- Instant-NGP's multiresolution hash encoding (Müller et al. 2022). Level ``l`` of ``L`` is a
  grid of resolution::

      N_l = floor(N_min b^l),        b = exp((ln N_max - ln N_min) / (L - 1))

  whose vertices index a trainable table of ``T`` feature vectors of size ``F``, through the spatial hash::

      h(x) = (XOR_{i=1}^{d} x_i pi_i) mod T,        pi = (1, 2654435761, 805459861)

  or one-to-one where the level's ``(N_l + 1)^d`` vertices fit in ``T``. A point's level feature is the
  d-linear interpolation of its cell's ``2^d`` vertex features; the encoding concatenates the ``L`` levels.
- :class:`OccupancyGrid` -- Instant-NGP's binary occupancy grid: an exponential moving max of the density at
  (jittered) cell centres, thresholded; rays skip the samples that fall in empty cells.
- :func:`make_encoding` -- an encoding by name: ``"positional"``, ``"fourier"``, ``"hash"``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from mpenv.device import uniform

__all__ = [
    "HASH_PRIMES",
    "FourierFeatures",
    "HashGrid",
    "OccupancyGrid",
    "PositionalEncoding",
    "level_resolutions",
    "make_encoding",
    "spatial_hash",
]

# Instant-NGP's primes, one per coordinate; pi_1 = 1 keeps consecutive x vertices in nearby table rows (cache).
HASH_PRIMES = (1, 2654435761, 805459861)


def _check_points(x: Tensor, in_dim: int) -> None:
    if x.dim() < 1 or x.shape[-1] != in_dim:
        raise ValueError(f"expected points of shape [..., {in_dim}], got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected floating-point points, got {x.dtype}")


class PositionalEncoding(nn.Module):
    """NeRF's frequency encoding with ``pi`` (module docstring), ``L = n_frequencies`` octaves from ``2^0 pi``.

    Feature layout, as in NeRF's code: ``[x (if include_input), sin(2^0 pi x), cos(2^0 pi x), sin(2^1 pi x), ...]``,
    each term a block of ``d`` coordinates; ``out_dim = d (include_input + 2 L)``.

    ``window`` (``alpha`` in ``[0, L]``, default ``L``) fades octaves in coarse to fine, as Nerfies and FreeNeRF do
    against overfitting: octave ``k`` is scaled by ``(1 - cos(pi clamp(alpha - k, 0, 1))) / 2``, so at ``alpha = 0``
    only ``x`` itself passes and at ``alpha = L`` the encoding is NeRF's.
    """

    def __init__(self, in_dim: int, n_frequencies: int = 10, include_input: bool = True) -> None:
        super().__init__()
        if in_dim < 1 or n_frequencies < 0:
            raise ValueError(f"need in_dim >= 1 and n_frequencies >= 0, got {in_dim} and {n_frequencies}")
        if n_frequencies == 0 and not include_input:
            raise ValueError("n_frequencies=0 without include_input gives no features")
        self.in_dim = in_dim
        self.n_frequencies = n_frequencies
        self.include_input = include_input
        self.out_dim = in_dim * (int(include_input) + 2 * n_frequencies)
        # A buffer, so a checkpoint taken mid-annealing renders as the field was trained.
        self.register_buffer("window", torch.tensor(float(n_frequencies)))

    def octave_weights(self, dtype: torch.dtype = torch.float32, device: torch.device | None = None) -> Tensor:
        """The ``L`` weights the window gives the octaves (all ones at ``window = L``)."""
        k = torch.arange(self.n_frequencies, dtype=dtype, device=device)
        return (1 - torch.cos(math.pi * (self.window.to(dtype) - k).clamp(0, 1))) / 2

    def forward(self, x: Tensor) -> Tensor:
        _check_points(x, self.in_dim)
        # Built in x's dtype so that float64 inputs get float64 frequencies (exact powers of 2 times pi).
        frequencies = 2.0 ** torch.arange(self.n_frequencies, dtype=x.dtype, device=x.device) * math.pi
        angles = x[..., None, :] * frequencies[:, None]  # [..., L, d]
        features = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)  # [..., L, 2d]
        if float(self.window) < self.n_frequencies:
            features = features * self.octave_weights(x.dtype, x.device)[:, None]
        features = features.flatten(-2)  # [..., L * 2d]
        return torch.cat([x, features], dim=-1) if self.include_input else features

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, n_frequencies={self.n_frequencies}, include_input={self.include_input}"


class FourierFeatures(nn.Module):
    """Random Fourier features ``[cos(2 pi B v), sin(2 pi B v)]``, ``B [n_features, in_dim] ~ N(0, scale^2)``.

    ``B`` is drawn once from ``seed`` and kept as a buffer: saved with the model, moved by ``.to()``, never trained.
    ``scale`` sets the bandwidth: too small blurs, too large overfits with noisy interpolation (Tancik et al.).
    """

    def __init__(self, in_dim: int, n_features: int = 256, scale: float = 10.0, seed: int = 0) -> None:
        super().__init__()
        if in_dim < 1 or n_features < 1:
            raise ValueError(f"need in_dim >= 1 and n_features >= 1, got {in_dim} and {n_features}")
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.in_dim = in_dim
        self.scale = scale
        self.out_dim = 2 * n_features
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("B", torch.randn(n_features, in_dim, generator=generator) * scale)

    def forward(self, x: Tensor) -> Tensor:
        _check_points(x, self.in_dim)
        angles = 2 * math.pi * x @ self.B.to(x.dtype).T
        return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, n_features={self.out_dim // 2}, scale={self.scale}"


def spatial_hash(vertices: Tensor, table_size: int) -> Tensor:
    """``h(x) = (XOR_i x_i pi_i) mod T`` for integer ``vertices [..., d]`` (``d <= 3``), ``T`` a power of 2.

    int64 holds every product (``x_i pi_i < 2^32 * 2^31`` for ``x_i < 2^31``) and the low bits of XOR and of
    products do not depend on the high bits, so ``& (T - 1)`` equals Instant-NGP's wrapping uint32 arithmetic for
    any ``T <= 2^32``.
    """
    if vertices.dtype != torch.int64:
        raise ValueError(f"vertices must be int64, got {vertices.dtype}")
    if not 1 <= vertices.shape[-1] <= len(HASH_PRIMES):
        raise ValueError(f"vertices must have 1 to {len(HASH_PRIMES)} coordinates, got shape {tuple(vertices.shape)}")
    if table_size < 1 or table_size & (table_size - 1):
        raise ValueError(f"table_size must be a power of 2, got {table_size}")
    hashed = torch.zeros_like(vertices[..., 0])
    for i in range(vertices.shape[-1]):  # d <= 3 coordinates, each a whole-tensor op
        hashed = hashed ^ (vertices[..., i] * HASH_PRIMES[i])
    return hashed & (table_size - 1)


def level_resolutions(
    n_levels: int, base_resolution: int, max_resolution: int | None, growth_factor: float | None
) -> tuple[int, ...]:
    """``N_l = floor(N_min b^l)``, ``b`` given or ``exp((ln N_max - ln N_min) / (L - 1))``."""
    if growth_factor is None:
        growth_factor = (
            1.0 if n_levels == 1 else math.exp((math.log(max_resolution) - math.log(base_resolution)) / (n_levels - 1))
        )
    # + 1e-9: b^l via exp/log can land ulps under an integer (N_min = 16, N_max = 4096: 16 b^15 = 4095.99999999999).
    return tuple(math.floor(base_resolution * growth_factor**level + 1e-9) for level in range(n_levels))


def _corner_combine(per_axis: tuple[Tensor, ...], op) -> Tensor:
    """Combine per-axis values [..., 2] (lower, upper vertex) into the 2^d cell corners [..., 2^d] with ``op``,
    corner ``k`` taking axis ``i``'s upper value when bit ``i`` of ``k`` is set."""
    combined = per_axis[0]
    for values in per_axis[1:]:
        combined = op(values[..., :, None], combined[..., None, :]).flatten(-2)
    return combined


class HashGrid(nn.Module):
    """Instant-NGP's multiresolution hash encoding (module docstring), ``out_dim = n_levels * n_features``.

    Coordinates: ``bounds = (lo, hi)`` is mapped to ``[0, N_l]`` at level ``l``, whose vertices are the integers
    ``0 .. N_l`` per axis. Points outside the box are clamped onto it: they take the boundary's features, and no
    gradient flows to the clamped coordinates; mask them out (e.g. with :class:`OccupancyGrid`).

    Storage: one flat table ``[sum_l T_l, F]`` (``T_l = min(T, (N_l + 1)^d)``, as Instant-NGP sizes its levels),
    level ``l`` starting at row ``offsets[l]``. Dense levels index vertex ``v`` by ``sum_i v_i (N_l + 1)^i``
    (x fastest), hashed levels by :func:`spatial_hash`. Entries start ``U(-1e-4, 1e-4)``, from torch's global RNG.

    Args:
        in_dim: ``d``, 1 to 3.
        n_levels: ``L``.
        log2_table_size: ``log2 T``.
        n_features: ``F`` per level.
        base_resolution: ``N_min``.
        max_resolution: ``N_max`` (2048 when neither it nor ``growth_factor`` is given).
        growth_factor: ``b`` directly, instead of ``max_resolution``.
        bounds: ``(lo, hi)``, the same on every axis.
    """

    def __init__(
        self,
        in_dim: int = 3,
        n_levels: int = 16,
        log2_table_size: int = 19,
        n_features: int = 2,
        base_resolution: int = 16,
        max_resolution: int | None = None,
        growth_factor: float | None = None,
        bounds: tuple[float, float] = (-1.0, 1.0),
    ) -> None:
        super().__init__()
        if not 1 <= in_dim <= len(HASH_PRIMES):
            raise ValueError(f"in_dim must be 1 to {len(HASH_PRIMES)} (one hash prime per axis), got {in_dim}")
        if n_levels < 1 or n_features < 1 or base_resolution < 1:
            raise ValueError(
                f"n_levels, n_features and base_resolution must be >= 1, got {n_levels}, {n_features}, "
                f"{base_resolution}"
            )
        if not 0 <= log2_table_size <= 32:
            raise ValueError(f"log2_table_size must be 0 to 32, got {log2_table_size}")
        if max_resolution is not None and growth_factor is not None:
            raise ValueError("give max_resolution or growth_factor, not both")
        if max_resolution is None and growth_factor is None:
            max_resolution = 2048
        if max_resolution is not None and max_resolution < base_resolution:
            raise ValueError(f"max_resolution {max_resolution} is below base_resolution {base_resolution}")
        if growth_factor is not None and not growth_factor >= 1:
            raise ValueError(f"growth_factor must be >= 1, got {growth_factor}")
        lo, hi = (float(b) for b in bounds)
        if not lo < hi:
            raise ValueError(f"bounds must be (lo, hi) with lo < hi, got {bounds}")

        self.in_dim, self.n_levels, self.n_features = in_dim, n_levels, n_features
        self.table_size = 2**log2_table_size
        self.bounds = (lo, hi)
        self.out_dim = n_levels * n_features
        self.resolutions = level_resolutions(n_levels, base_resolution, max_resolution, growth_factor)
        n_vertices = [(n + 1) ** in_dim for n in self.resolutions]
        self.dense_levels = tuple(count <= self.table_size for count in n_vertices)
        self.n_dense_levels = sum(self.dense_levels)
        self.level_sizes = tuple(min(count, self.table_size) for count in n_vertices)
        offsets = [0, *itertools.accumulate(self.level_sizes)][:-1]

        self.table = nn.Parameter(torch.empty(sum(self.level_sizes), n_features).uniform_(-1e-4, 1e-4))
        # Buffers (not persistent: they follow from the constructor arguments) so that .to(device) moves them.
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.int64), persistent=False)
        self.register_buffer("_resolution", torch.tensor(self.resolutions, dtype=torch.int64), persistent=False)
        # Dense row strides (N_l + 1)^i: [L, d].
        strides = [[(n + 1) ** i for i in range(in_dim)] for n in self.resolutions]
        self.register_buffer("_strides", torch.tensor(strides, dtype=torch.int64), persistent=False)
        # The 2^d cell corners as bits, corner k = (k & 1, k >> 1 & 1, ...): [2^d, d].
        corners = [[(k >> i) & 1 for i in range(in_dim)] for k in range(2**in_dim)]
        self.register_buffer("_corner_bits", torch.tensor(corners, dtype=torch.int64), persistent=False)

    def table_rows(self, vertices: Tensor) -> Tensor:
        """Rows in :attr:`table` of integer ``vertices [..., L, K, d]`` (``K`` per level): ``[..., L, K]``."""
        # Levels grow finer, so the dense ones are a prefix: index each group only the way it needs.
        n_dense = self.n_dense_levels
        dense = (vertices[..., :n_dense, :, :] * self._strides[:n_dense, None, :]).sum(dim=-1)
        hashed = spatial_hash(vertices[..., n_dense:, :, :], self.table_size)
        return torch.cat([dense, hashed], dim=-2) + self.offsets[:, None]

    def forward(self, x: Tensor) -> Tensor:
        _check_points(x, self.in_dim)
        lo, hi = self.bounds
        points = ((x.reshape(-1, self.in_dim).clamp(lo, hi) - lo) / (hi - lo))[:, None, :]  # [N, 1, d] in [0, 1]
        resolution = self._resolution[:, None]  # [L, 1]
        scaled = points * resolution.to(x.dtype)  # [N, L, d] in [0, N_l]
        # The last cell is closed: a point on the upper face lies in cell N_l - 1 at fraction 1.
        cell = torch.minimum(scaled.detach().floor().long(), resolution - 1)
        fraction = scaled - cell.to(x.dtype)  # differentiable in x: the gradient of d-linear interpolation

        # Rows and weights of the 2^d corners are built axis by axis on [N, L, 2] pieces and combined by
        # broadcasting (x the lowest bit of the corner index, as table_rows numbers them): the same result as
        # indexing explicit corner vertices [N, L, 2^d, d], at a fraction of the memory traffic.
        n_dense = self.n_dense_levels
        offset = torch.arange(2, device=x.device)
        corner = cell[..., None] + offset  # [N, L, d, 2]: the lower and upper vertex along each axis
        dense_terms = corner[:, :n_dense] * self._strides[:n_dense, :, None]
        hash_terms = corner[:, n_dense:] * torch.tensor(HASH_PRIMES[: self.in_dim], device=x.device)[:, None]
        rows = torch.cat([
            _corner_combine(dense_terms.unbind(dim=-2), torch.add),
            _corner_combine(hash_terms.unbind(dim=-2), torch.bitwise_xor) & (self.table_size - 1),
        ], dim=1) + self.offsets[:, None]  # [N, L, 2^d]  # fmt: skip
        axis_weights = torch.stack([1 - fraction, fraction], dim=-1)  # [N, L, d, 2]
        weights = _corner_combine(axis_weights.unbind(dim=-2), torch.mul)  # [N, L, 2^d]
        features = (weights[..., None, :] @ self.table[rows]).squeeze(-2)  # [N, L, F], a batched matmul
        return features.reshape(*x.shape[:-1], self.out_dim)

    def extra_repr(self) -> str:
        return (
            f"in_dim={self.in_dim}, resolutions={self.resolutions}, table_size={self.table_size}, "
            f"n_features={self.n_features}, bounds={self.bounds}"
        )


class OccupancyGrid(nn.Module):
    """Instant-NGP's occupancy grid over the box ``bounds^3``: ``resolution^3`` cells, each occupied or empty.

    :meth:`update` evaluates the density once per cell at a uniformly jittered point of the cell and keeps the
    exponential moving max ``density <- max(decay * density, new)``, so that a cell seen dense once stays occupied
    for a while and a cell whose density vanished empties out. A cell is occupied while ``density > threshold``.
    Before the first update every cell counts as occupied (nothing has been ruled out yet). Points outside the box
    are never occupied.
    """

    def __init__(
        self,
        resolution: int = 128,
        bounds: tuple[float, float] = (-1.0, 1.0),
        threshold: float = 0.01,
        decay: float = 0.95,
    ) -> None:
        super().__init__()
        lo, hi = (float(b) for b in bounds)
        if resolution < 1:
            raise ValueError(f"resolution must be >= 1, got {resolution}")
        if not lo < hi:
            raise ValueError(f"bounds must be (lo, hi) with lo < hi, got {bounds}")
        if not 0 <= decay <= 1:
            raise ValueError(f"decay must be in [0, 1], got {decay}")
        self.resolution, self.bounds, self.threshold, self.decay = resolution, (lo, hi), threshold, decay
        self.register_buffer("density", torch.zeros(resolution, resolution, resolution))
        self.register_buffer("occupied", torch.ones(resolution, resolution, resolution, dtype=torch.bool))

    @property
    def cell_size(self) -> float:
        lo, hi = self.bounds
        return (hi - lo) / self.resolution

    @property
    def occupied_fraction(self) -> float:
        return self.occupied.float().mean().item()

    @torch.no_grad()
    def update(
        self,
        density_fn: Callable[[Tensor], Tensor],
        generator: torch.Generator | None = None,
        jitter: bool = True,
        chunk_size: int | None = None,
    ) -> None:
        """One update from ``density_fn(points [M, 3]) -> [M]`` (or ``[M, 1]``) at a point of every cell.

        ``jitter=False`` samples the cell centres. ``chunk_size`` bounds how many points one ``density_fn`` call
        sees (all cells at once by default).
        """
        n = self.resolution
        index = torch.arange(n, device=self.density.device, dtype=self.density.dtype)
        cells = torch.stack(torch.meshgrid(index, index, index, indexing="ij"), dim=-1).reshape(-1, 3)
        if jitter:
            offset = uniform(cells.shape, generator, cells.device, cells.dtype)
        else:
            offset = torch.full_like(cells, 0.5)
        points = self.bounds[0] + (cells + offset) * self.cell_size
        chunks = points.split(chunk_size) if chunk_size else (points,)
        new = torch.cat([self._evaluate(density_fn, chunk) for chunk in chunks]).reshape(n, n, n)
        self.density.copy_(torch.maximum(self.decay * self.density, new))
        self.occupied.copy_(self.density > self.threshold)

    @staticmethod
    def _evaluate(density_fn: Callable[[Tensor], Tensor], points: Tensor) -> Tensor:
        sigma = density_fn(points)
        if sigma.shape not in ((points.shape[0],), (points.shape[0], 1)):
            raise ValueError(f"density_fn must return [M] or [M, 1] for {points.shape[0]} points, got {sigma.shape}")
        if torch.isnan(sigma).any():
            raise ValueError("density_fn returned NaN")
        return sigma.reshape(-1).to(points.dtype)

    def mask(self, points: Tensor) -> Tensor:
        """``[..., 3]`` points -> ``[...]`` bool: inside the box and in an occupied cell."""
        _check_points(points, 3)
        lo, hi = self.bounds
        inside = ((points >= lo) & (points <= hi)).all(dim=-1)
        # Clamped so points on the upper face (and outside ones, masked off anyway) index a valid cell.
        cell = ((points - lo) / self.cell_size).floor().long().clamp(0, self.resolution - 1)
        return inside & self.occupied[cell[..., 0], cell[..., 1], cell[..., 2]]

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, bounds={self.bounds}, threshold={self.threshold}, decay={self.decay}"


_ENCODINGS: dict[str, type[nn.Module]] = {
    "positional": PositionalEncoding,
    "fourier": FourierFeatures,
    "hash": HashGrid,
}


def make_encoding(name: str, in_dim: int, **kwargs) -> nn.Module:
    """``make_encoding("hash", 3, n_levels=8)``: the encoding class of ``name`` built with ``in_dim`` and kwargs."""
    if name not in _ENCODINGS:
        raise ValueError(f"unknown encoding {name!r}; valid names: {', '.join(sorted(_ENCODINGS))}")
    return _ENCODINGS[name](in_dim=in_dim, **kwargs)
