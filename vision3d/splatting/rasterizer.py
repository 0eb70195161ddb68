"""Tile-based rasterization of projected 2D Gaussians: alpha compositing front to back, in vectorized torch.

Each Gaussian ``i`` arrives already projected to the image: a centre ``mu'_i = (u_i, v_i)`` in pixels, a conic
``(a_i, b_i, c_i)`` -- the inverse 2D covariance ``Sigma'_i^{-1} = [[a_i, b_i], [b_i, c_i]]`` --, an opacity
``o_i``, a colour ``c_i`` (``C`` channels), a depth (the sort key) and an integer radius ``r_i``. The centre of the
pixel in row ``y`` and column ``x`` is ``p = (x + 0.5, y + 0.5)``. For every pixel, over the Gaussians sorted front
to back::

    d       = p - mu'_i = (dx, dy)
    power_i = -1/2 d^T Sigma'_i^{-1} d = -1/2 (a_i dx^2 + 2 b_i dx dy + c_i dy^2)
    alpha_i = min(0.99, o_i exp(power_i))      and alpha_i := 0 where power_i > 0 (a conic that is not positive
                                                definite), where alpha_i < 1/255, or where p is outside the
                                                footprint of Gaussian i (below)
    T_i     = prod_{j<i} (1 - alpha_j)         transmittance in front of Gaussian i
    C(p)    = sum_i T_i alpha_i c_i + T_N bg    colour over the background ``bg``
    A(p)    = 1 - T_N                          accumulated opacity (the returned ``alpha``)

Footprint: pixel ``p`` receives Gaussian ``i`` only if its centre lies in the closed square
``|p_x - u_i| <= r_i`` and ``|p_y - v_i| <= r_i`` (both bounds inclusive); ``r_i = 0`` switches the Gaussian off.
Equivalently, columns ``ceil(u_i - r_i - 0.5) <= x <= floor(u_i + r_i - 0.5)``, and the same for rows; these
integer bounds are computed once and used both to find the tiles and to mask pixels, so the two always agree.

There is no early termination when ``T`` gets small (3DGS stops at ``T < 1e-4``): every pixel composites every
Gaussian that covers it, so the result is exactly the formula above -- also for gradients -- and the cost is small
because the work is done in whole tensors anyway.

The organisation is the one of 3DGS: the image is cut into ``tile_size x tile_size`` tiles;

1. :func:`tile_intersections` lists every (tile, Gaussian) pair whose tile holds a pixel of the footprint;
2. the pairs are sorted by (tile, depth), so each tile's Gaussians form one front-to-back run of the sorted list;
3. tiles are composited a chunk at a time: a chunk's Gaussians are gathered into a padded ``[tiles, K_max]`` batch
   (padding has ``alpha = 0``), ``alpha`` is evaluated for ``[tiles, pixels per tile, K_max]``, and an exclusive
   cumulative product along ``K`` gives ``T``. Chunks are sized by ``max_elements`` so memory stays bounded.

Two exact shortcuts keep the padded tensors small: a Gaussian with ``o < 1/255`` is switched off (its alpha is
below 1/255 everywhere), and a (tile, Gaussian) pair whose alpha stays below 1/255 on all its pixels (an upper bound
from the minimum of the quadratic form over the pixel box, positive definite conics only) is dropped. Neither
changes the image or the gradients: such contributions are exactly 0 with a zero derivative.

Gradients (means, conics, opacities, colours, background) come from autograd; the clamps are ``torch.where``/masks,
so each gradient is the exact derivative of the piecewise function (zero where a clamp binds).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

__all__ = ["ALPHA_MAX", "ALPHA_MIN", "footprint_bounds", "rasterize", "tile_intersections"]

ALPHA_MAX = 0.99  # alpha is capped below 1 so T never reaches 0 (and 1 - alpha is never 0 in the cumprod)
ALPHA_MIN = 1.0 / 255.0  # contributions fainter than one 8-bit step are skipped
LOG_ALPHA_MAX, LOG_ALPHA_MIN = math.log(ALPHA_MAX), math.log(ALPHA_MIN)
DEFAULT_MAX_ELEMENTS = 2**20  # elements of one chunk's [tiles, pixels, K] tensor: 4 MB in float32, cache-friendly
# Padded elements of all chunks together up to which autograd keeps every chunk's activations (about ten tensors of
# that size: 160 MB in float32) rather than recomputing each chunk in backward.
DEFAULT_MAX_SAVED_ELEMENTS = 2**22


def _check_inputs(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    colors: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    background: Tensor | None,
    tile_size: int,
) -> None:
    """Shapes, dtypes, devices and values, with an error that names the culprit (not a broadcast error deep inside)."""
    for name, value in (("width", width), ("height", height), ("tile_size", tile_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if means2d.dim() != 2 or means2d.shape[1] != 2:
        raise ValueError(f"means2d must have shape [N, 2], got {tuple(means2d.shape)}")
    if not means2d.is_floating_point():
        raise ValueError(f"means2d must be floating point, got {means2d.dtype}")
    n = means2d.shape[0]
    if colors.dim() != 2 or colors.shape[0] != n or colors.shape[1] < 1:
        raise ValueError(f"colors must have shape [N, C] with N = {n} and C >= 1, got {tuple(colors.shape)}")
    expected = {"conics": (n, 3), "opacities": (n,), "depths": (n,), "radii": (n,)}
    if background is not None:
        expected["background"] = (colors.shape[1],)
    tensors = {"conics": conics, "opacities": opacities, "depths": depths, "radii": radii, "background": background}
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise ValueError(f"{name} must have shape {list(shape)}, got {tuple(tensors[name].shape)}")
    floats = {"means2d": means2d, "conics": conics, "opacities": opacities, "colors": colors, "depths": depths}
    if background is not None:
        floats["background"] = background
    for name, x in floats.items():
        if x.dtype != means2d.dtype:
            raise ValueError(f"{name} has dtype {x.dtype}, expected {means2d.dtype} like means2d")
        if x.device != means2d.device:
            raise ValueError(f"{name} is on {x.device}, expected {means2d.device} like means2d")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contains NaN or inf")
    if radii.is_floating_point() or radii.is_complex() or radii.dtype == torch.bool:
        raise ValueError(f"radii must be an integer tensor, got {radii.dtype}")
    if radii.device != means2d.device:
        raise ValueError(f"radii is on {radii.device}, expected {means2d.device} like means2d")
    if (radii < 0).any():
        raise ValueError("radii must be >= 0")
    if ((opacities < 0) | (opacities > 1)).any():
        raise ValueError("opacities must lie in [0, 1]")


def footprint_bounds(means2d: Tensor, radii: Tensor, width: int, height: int) -> Tensor:
    """``[N, 4]`` int64 ``(col_lo, col_hi, row_lo, row_hi)``: the inclusive pixel ranges of each footprint square.

    Pixel column ``x`` has its centre at ``x + 0.5``, so ``|x + 0.5 - u| <= r`` is
    ``ceil(u - r - 0.5) <= x <= floor(u + r - 0.5)``. The ranges are clipped to the image; a footprint that misses
    the image (or has ``r = 0``) gets ``lo > hi``.
    """
    r = radii.to(means2d.dtype)
    # Clamp before the cast to int64: a centre far outside the image must not overflow the integer conversion.
    lo = torch.ceil(means2d - r[:, None] - 0.5).clamp(-1, max(width, height))
    hi = torch.floor(means2d + r[:, None] - 0.5).clamp(-1, max(width, height))
    limit = torch.tensor([width - 1, height - 1], device=means2d.device)
    lo = lo.long().clamp(min=0)
    hi = torch.minimum(hi.long(), limit)
    off = radii == 0
    lo[off] = 1  # an empty range: lo > hi
    hi[off] = 0
    return torch.stack([lo[:, 0], hi[:, 0], lo[:, 1], hi[:, 1]], dim=1)


def tile_intersections(
    means2d: Tensor, radii: Tensor, width: int, height: int, tile_size: int = 8
) -> tuple[Tensor, Tensor]:
    """Every (tile, Gaussian) pair where the tile holds at least one pixel of the Gaussian's footprint.

    Tiles are numbered row-major, ``tile_id = tile_row * tiles_x + tile_col`` with ``tiles_x = ceil(width /
    tile_size)``. Returns ``(tile_ids, gaussian_ids)``, two int64 ``[M]`` tensors grouped by Gaussian (in input
    order). Each footprint covers a rectangle of tiles; the pairs are listed by expanding the rectangles with
    ``repeat_interleave`` -- no loop over Gaussians.
    """
    bounds = footprint_bounds(means2d, radii, width, height)
    col_lo, col_hi, row_lo, row_hi = bounds.unbind(1)
    # The rectangle of tiles each footprint touches; zero tiles where the footprint misses the image.
    tile_col_lo, tile_row_lo = col_lo // tile_size, row_lo // tile_size
    n_cols = (col_hi // tile_size - tile_col_lo + 1) * (col_hi >= col_lo)
    n_rows = (row_hi // tile_size - tile_row_lo + 1) * (row_hi >= row_lo)
    n_tiles = n_cols * n_rows
    gaussian_ids = torch.repeat_interleave(torch.arange(len(n_tiles), device=means2d.device), n_tiles)
    # Position of each pair inside its Gaussian's rectangle, read row-major.
    first_pair = torch.cumsum(n_tiles, 0) - n_tiles
    k = torch.arange(len(gaussian_ids), device=means2d.device) - first_pair[gaussian_ids]
    tile_cols = tile_col_lo[gaussian_ids] + k % n_cols[gaussian_ids]
    tile_rows = tile_row_lo[gaussian_ids] + k // n_cols[gaussian_ids]
    tiles_x = math.ceil(width / tile_size)
    return tile_rows * tiles_x + tile_cols, gaussian_ids


def _peak_log_alpha(
    tile_ids: Tensor,
    gaussian_ids: Tensor,
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    bounds: Tensor,
    tiles_x: int,
    tile_size: int,
) -> Tensor:
    """``[M]`` an upper bound of ``log(o) + power`` over the footprint pixels of each (tile, Gaussian) pair.

    The pixel centres lie in a box ``[dx0, dx1] x [dy0, dy1]`` (relative to the centre). For a positive definite
    conic the quadratic form ``q = a dx^2 + 2 b dx dy + c dy^2`` is convex: its minimum over the box is 0 when the
    centre is inside, else it lies on an edge, where ``q`` is a 1D quadratic minimised by clamping its vertex to the
    edge. ``log(o) - q_min / 2`` then bounds ``log(alpha)`` on every pixel of the pair. Computed in float64.
    """
    col_lo, col_hi, row_lo, row_hi = bounds[gaussian_ids].double().unbind(1)
    tile_col, tile_row = (tile_ids % tiles_x).double() * tile_size, (tile_ids // tiles_x).double() * tile_size
    u, v = means2d[gaussian_ids].double().unbind(1)
    dx0 = torch.maximum(tile_col, col_lo) + 0.5 - u
    dx1 = torch.minimum(tile_col + tile_size - 1, col_hi) + 0.5 - u
    dy0 = torch.maximum(tile_row, row_lo) + 0.5 - v
    dy1 = torch.minimum(tile_row + tile_size - 1, row_hi) + 0.5 - v
    a, b, c = conics[gaussian_ids].double().unbind(1)

    def q(dx: Tensor, dy: Tensor) -> Tensor:
        return a * dx * dx + 2 * b * dx * dy + c * dy * dy

    # Only evaluated for positive definite conics (a, c > 0); elsewhere the bound is not used.
    a_safe, c_safe = a.clamp(min=1e-300), c.clamp(min=1e-300)
    edge_minima = torch.stack(
        [q(dx, torch.minimum(torch.maximum(-b * dx / c_safe, dy0), dy1)) for dx in (dx0, dx1)]
        + [q(torch.minimum(torch.maximum(-b * dy / a_safe, dx0), dx1), dy) for dy in (dy0, dy1)]
    ).amin(0)
    centre_inside = (dx0 <= 0) & (dx1 >= 0) & (dy0 <= 0) & (dy1 >= 0)
    q_min = torch.where(centre_inside, 0.0, edge_minima)
    return torch.log(opacities[gaussian_ids].double()) - 0.5 * q_min


def _sort_by_tile_then_depth(tile_ids: Tensor, gaussian_ids: Tensor, depths: Tensor) -> Tensor:
    """The Gaussian ids of the pairs, sorted by tile and, within a tile, front to back.

    One sort on the combined integer key ``tile_id * N + depth_rank``; the depth rank comes from a stable sort, so
    Gaussians of equal depth keep their input order.
    """
    n = len(depths)
    depth_rank = torch.empty(n, dtype=torch.long, device=depths.device)
    depth_rank[torch.sort(depths, stable=True).indices] = torch.arange(n, device=depths.device)
    key = tile_ids * n + depth_rank[gaussian_ids]
    return gaussian_ids[torch.argsort(key)]


def _plan_chunks(counts: Tensor, pixels_per_tile: int, max_elements: int) -> list[Tensor]:
    """Groups of non-empty tiles whose padded ``[tiles, pixels, K_max]`` tensor fits in ``max_elements``.

    Tiles are taken in order of their number of Gaussians, so the tiles of a chunk have similar counts and little
    padding is wasted. A tile that alone exceeds the budget still forms its own chunk.
    """
    order = torch.argsort(counts)
    order = order[counts[order] > 0]
    sorted_counts = counts[order].tolist()
    chunks, start = [], 0
    while start < len(order):
        end = start + 1  # counts ascend, so the last tile of a chunk sets K_max
        while end < len(order) and (end + 1 - start) * pixels_per_tile * sorted_counts[end] <= max_elements:
            end += 1
        chunks.append(order[start:end])
        start = end
    return chunks


def _composite_tiles(
    tiles: Tensor,
    tile_first: Tensor,
    tile_count: Tensor,
    sorted_ids: Tensor,
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    colors: Tensor,
    bounds: Tensor,
    positive_definite: Tensor,
    tiles_x: int,
    tile_size: int,
) -> tuple[Tensor, Tensor]:
    """Front-to-back compositing of a chunk of ``t`` tiles: ``sum_i T_i alpha_i c_i`` ``[t, P, C]`` and ``T_N``
    ``[t, P]``, with ``P = tile_size**2`` pixels per tile in row-major order.

    The quadratic form separates into a column term, a row term and a cross term, each computed on a small
    ``[t, tile_size, K]`` tensor; only their sum is formed at full size ``[t, tile_size, tile_size, K]``.
    """
    dtype, device = means2d.dtype, means2d.device
    n_tiles, k_max = len(tiles), int(tile_count[tiles].max())
    # Padded gather: slot k of tile t holds its k-th Gaussian front to back; slots past the tile's count are padding.
    slot = torch.arange(k_max, device=device)
    is_real = slot < tile_count[tiles][:, None]  # [t, K]
    pair = (tile_first[tiles][:, None] + slot).clamp(max=max(len(sorted_ids) - 1, 0))
    ids = sorted_ids[pair]  # [t, K]
    u, v = means2d[ids].unbind(-1)  # [t, K] each
    a, b, c = conics[ids].unbind(-1)
    col_lo, col_hi, row_lo, row_hi = bounds[ids].unbind(-1)

    # Pixel columns and rows of each tile (row-major tile ids), and their centres.
    offsets = torch.arange(tile_size, device=device)
    cols = ((tiles % tiles_x) * tile_size)[:, None] + offsets  # [t, s]
    rows = ((tiles // tiles_x) * tile_size)[:, None] + offsets
    dx = (cols + 0.5).to(dtype)[:, :, None] - u[:, None, :]  # [t, s, K]
    dy = (rows + 0.5).to(dtype)[:, :, None] - v[:, None, :]
    in_cols = (cols[:, :, None] >= col_lo[:, None, :]) & (cols[:, :, None] <= col_hi[:, None, :]) & is_real[:, None]
    in_rows = (rows[:, :, None] >= row_lo[:, None, :]) & (rows[:, :, None] <= row_hi[:, None, :])

    # z = log(o) + power with power = -1/2 (a dx^2 + c dy^2) - b dx dy, summed from a column, a row and a cross term
    # (log o rides on the row term). Outside the footprint the column/row term is -inf, so exp gives alpha = 0 there
    # with a zero gradient: the footprint mask costs nothing at full size.
    column_term = torch.where(in_cols, -0.5 * a[:, None, :] * dx * dx, -math.inf)  # [t, s_x, K]
    log_opacity = torch.log(opacities[ids])[:, None, :]
    row_term = torch.where(in_rows, log_opacity - 0.5 * c[:, None, :] * dy * dy, -math.inf)  # [t, s_y, K]
    cross_x = -b[:, None, :] * dx
    z = row_term[:, :, None, :] + column_term[:, None, :, :] + dy[:, :, None, :] * cross_x[:, None, :, :]

    # 3DGS's rules as masks and clamps, so autograd differentiates the piecewise function exactly (zero gradient
    # where a rule binds): alpha = min(0.99, o e^power), dropped below 1/255, and dropped where power > 0.
    keep = z >= LOG_ALPHA_MIN
    if not bool(positive_definite[ids].all()):  # a positive definite conic has power <= 0 everywhere: no check
        keep = keep & (z <= log_opacity[:, None])
    alpha = torch.where(keep, torch.exp(z.clamp(max=LOG_ALPHA_MAX)), 0.0)  # [t, s_y, s_x, K]

    # T_i = prod_{j<i} (1 - alpha_j): an inclusive cumprod shifted right by one slot (T_1 = 1).
    transmittance_after = torch.cumprod(1.0 - alpha, dim=-1)
    transmittance = torch.nn.functional.pad(transmittance_after[..., :-1], (1, 0), value=1.0)
    weights = (transmittance * alpha).reshape(n_tiles, tile_size * tile_size, k_max)
    color = torch.bmm(weights, colors[ids])  # [t, P, C]: sum_i T_i alpha_i c_i
    final_transmittance = transmittance_after[..., -1].reshape(n_tiles, tile_size * tile_size)
    return color, final_transmittance


def rasterize(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    colors: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    background: Tensor | None = None,
    tile_size: int = 8,
    *,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    max_saved_elements: int = DEFAULT_MAX_SAVED_ELEMENTS,
) -> tuple[Tensor, Tensor]:
    """Composite ``N`` projected Gaussians front to back into an image (see the module docstring for the rules).

    Args:
        means2d: ``[N, 2]`` centres ``(u, v)`` in pixels; pixel (row ``y``, column ``x``) has its centre at
            ``(x + 0.5, y + 0.5)``.
        conics: ``[N, 3]`` ``(a, b, c)``, the inverse 2D covariance ``[[a, b], [b, c]]``.
        opacities: ``[N]`` in ``[0, 1]``.
        colors: ``[N, C]``, any ``C >= 1``.
        depths: ``[N]`` sort key, smaller is in front; ties keep the input order.
        radii: ``[N]`` integer footprint radius in pixels; ``0`` skips the Gaussian.
        width, height: image size in pixels.
        background: ``[C]`` colour behind everything; zeros by default.
        tile_size: side of the square tiles. 3DGS's CUDA kernels use 16; here 8 is 1.5-1.8x faster, because
            each tile pads every Gaussian to its own pixel count and footprints are a few pixels wide.
        max_elements: budget for one chunk's ``[tiles, pixels per tile, K_max]`` tensor (at least one tile per
            chunk).
        max_saved_elements: with autograd on, several chunks and more padded elements than this in all chunks
            together, each chunk is recomputed during backward, so memory stays at about one chunk's activations;
            below it the activations are kept (a small image: one forward pass instead of two).

    Returns:
        ``(image, alpha)``: ``[H, W, C]`` colour over the background and ``[H, W]`` accumulated opacity ``1 - T_N``,
        in the dtype and on the device of ``means2d``.
    """
    _check_inputs(means2d, conics, opacities, colors, depths, radii, width, height, background, tile_size)
    dtype, device = means2d.dtype, means2d.device
    n_channels = colors.shape[1]
    if background is None:
        background = torch.zeros(n_channels, dtype=dtype, device=device)
    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    n_tiles, pixels_per_tile = tiles_x * tiles_y, tile_size * tile_size

    # (1) + (2): the pairs, sorted so each tile's Gaussians are one contiguous front-to-back run.
    # Gaussians with o < 1/255 have alpha < 1/255 everywhere: switched off like r = 0 (exactly: their alpha and its
    # gradient are 0).
    radii = torch.where(opacities.detach() >= ALPHA_MIN, radii, 0)
    a, b, c = conics.detach().unbind(1)
    positive_definite = (a > 0) & (c > 0) & (a * c - b * b > 0)
    with torch.no_grad():
        bounds = footprint_bounds(means2d, radii, width, height)
        tile_ids, gaussian_ids = tile_intersections(means2d, radii, width, height, tile_size)
        # Drop the pairs whose alpha stays below 1/255 on all their pixels: they would composite alpha = 0 with a
        # zero gradient, so the image and the gradients do not change, but the padded tensors shrink. The margin
        # (1% of alpha) absorbs rounding in the input dtype.
        peak = _peak_log_alpha(tile_ids, gaussian_ids, means2d, conics, opacities, bounds, tiles_x, tile_size)
        visible = ~positive_definite[gaussian_ids] | (peak >= LOG_ALPHA_MIN - 0.01)
        tile_ids, gaussian_ids = tile_ids[visible], gaussian_ids[visible]
    sorted_ids = _sort_by_tile_then_depth(tile_ids, gaussian_ids, depths)
    tile_count = torch.bincount(tile_ids, minlength=n_tiles)
    tile_first = torch.cumsum(tile_count, 0) - tile_count

    # (3): chunks of tiles; tiles without Gaussians keep colour 0 and T = 1, i.e. show the background.
    # Autograd would keep every chunk's activations until backward, i.e. memory growing with the whole scene; past
    # max_saved_elements each chunk is recomputed during backward instead (activation checkpointing: one more forward
    # pass, memory bounded by one chunk).
    chunks = _plan_chunks(tile_count, pixels_per_tile, max_elements)
    differentiable = torch.is_grad_enabled() and any(t.requires_grad for t in (means2d, conics, opacities, colors))
    # A chunk's tiles ascend in count, so its last tile sets its K_max.
    padded = sum(len(tiles) * pixels_per_tile * int(tile_count[tiles[-1]]) for tiles in chunks)
    recompute = differentiable and len(chunks) > 1 and padded > max_saved_elements
    chunk_colors, chunk_transmittances = [], []
    for tiles in chunks:
        inputs = (tiles, tile_first, tile_count, sorted_ids, means2d, conics, opacities, colors, bounds)
        settings = (positive_definite, tiles_x, tile_size)
        if recompute:
            color, transmittance = checkpoint(_composite_tiles, *inputs, *settings, use_reentrant=False)
        else:
            color, transmittance = _composite_tiles(*inputs, *settings)
        chunk_colors.append(color)
        chunk_transmittances.append(transmittance)
    tile_color = torch.zeros(n_tiles, pixels_per_tile, n_channels, dtype=dtype, device=device)
    tile_transmittance = torch.ones(n_tiles, pixels_per_tile, dtype=dtype, device=device)
    if chunks:
        index = torch.cat(chunks)
        tile_color = tile_color.index_copy(0, index, torch.cat(chunk_colors))
        tile_transmittance = tile_transmittance.index_copy(0, index, torch.cat(chunk_transmittances))

    # Tiles back into the image plane; edge tiles reach past the border and are cropped.
    color = _untile(tile_color, tiles_y, tiles_x, tile_size)[:height, :width]
    transmittance = _untile(tile_transmittance[..., None], tiles_y, tiles_x, tile_size)[:height, :width, 0]
    image = color + transmittance[..., None] * background
    return image, 1.0 - transmittance


def _untile(per_tile: Tensor, tiles_y: int, tiles_x: int, tile_size: int) -> Tensor:
    """``[tiles, P, C]`` (row-major tiles, row-major pixels) to ``[tiles_y * s, tiles_x * s, C]``."""
    n_channels = per_tile.shape[-1]
    grid = per_tile.reshape(tiles_y, tiles_x, tile_size, tile_size, n_channels)
    return grid.permute(0, 2, 1, 3, 4).reshape(tiles_y * tile_size, tiles_x * tile_size, n_channels)
