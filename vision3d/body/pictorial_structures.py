"""Pictorial structures: exact MAP part locations on a tree via generalized distance transforms.

Felzenszwalb & Huttenlocher, "Pictorial Structures for Object Recognition", IJCV 2005, and "Distance Transforms of
Sampled Functions", Theory of Computing 2012.

Model. ``P`` parts on an ``H x W`` grid, part ``i`` at location ``l_i = (x_i, y_i)`` (``x`` the column, ``y`` the
row, as in :mod:`vision3d.body.heatmaps`). The parts form a tree (``parents[i]``, ``-1`` for the root). The energy
of a configuration ``L = (l_0, ..., l_{P-1})`` is::

    E(L) = sum_i m_i(l_i) + sum_{i != root} d_i(l_i, l_parent(i))
    d_i(l_i, l_j) = w_x,i (dx - mu_x,i)^2 + w_y,i (dy - mu_y,i)^2,    dx = x_i - x_j,  dy = y_i - y_j

``m_i`` are unary COSTS (lower is better). Detector scores or log-probabilities ``s_i`` enter as ``m_i = -s_i``;
``+inf`` forbids a location. ``(mu_x, mu_y)`` is the rest offset of the child from its parent and ``w_x, w_y > 0``
the spring stiffnesses.

Inference (min-sum dynamic programming, leaves to root). Let ``B_i = m_i + sum_{c child of i} M_c`` be the cost of
the subtree at ``i`` given ``l_i``; the message of child ``c`` to its parent is a min-convolution::

    M_c(l_j) = min_{l_c} B_c(l_c) + d_c(l_c, l_j)

A brute-force minimum is ``O((HW)^2)``; for a quadratic ``d`` it is a generalized distance transform (GDT),
``O(HW)``, computed separably (first along x in every row, then along y in every column) with the 1D lower envelope
of parabolas. The root takes ``l_root = argmin B_root`` with ``E* = min B_root``, and the argmin maps stored with
each message give every child's best location given its parent's (backtracking). Total cost ``O(P H W)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "configuration_cost",
    "distance_transform_1d",
    "distance_transform_2d",
    "map_inference",
    "tree_order",
]


# ----------------------------------------------------------------------------------------------------------- 1D GDT


def _lower_envelope(f: np.ndarray, w: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower envelope of the parabolas ``f(q) + w (x - q)^2``, one envelope per row of ``f[R, n]``.

    Returns ``v[R, n]`` (the roots ``q`` of the envelope's parabolas, left to right), ``z[R, n + 1]`` (parabola
    ``v[k]`` is lowest on ``[z[k], z[k + 1])``, ``z[0] = -inf``, ``z[count] = +inf``; entries past ``count`` are
    stale) and ``count[R]`` (number of parabolas; 0 for a row that is ``+inf`` everywhere).

    Felzenszwalb & Huttenlocher's algorithm, adding parabolas ``q = 0, 1, ...`` left to right: the new parabola meets
    the top of the stack at ``s = ((f(q) + w q^2) - (f(v_k) + w v_k^2)) / (2 w (q - v_k))``; while ``s <= z[k]``
    the top is hidden and popped. The loop over ``q`` is sequential but runs on all rows at once; the pop loop runs
    only on the rows still popping, so the work stays ``O(R n)`` (each parabola is pushed and popped at most once).
    """
    rows, n = f.shape
    v = np.zeros((rows, n), dtype=np.int64)
    z = np.full((rows, n + 1), np.inf)
    top = np.full(rows, -1, dtype=np.int64)  # index of the top parabola; -1: empty envelope
    lift = f + w * np.arange(n, dtype=np.float64) ** 2  # f(q) + w q^2, the q-dependent part of the intersection
    for q in range(n):
        # +inf parabolas lie above everything: forbidden positions are never added.
        active = np.flatnonzero(np.isfinite(f[:, q]))
        if active.size == 0:
            continue
        empty = top[active] < 0
        first = active[empty]
        v[first, 0] = q
        z[first, 0] = -np.inf
        top[first] = 0
        rest = active[~empty]
        popping = rest
        while popping.size:
            k = top[popping]
            vk = v[popping, k]
            s = (lift[popping, q] - lift[popping, vk]) / (2.0 * w * (q - vk))
            # z[k] = -inf at k = 0, so the bottom parabola is never popped and the stack never empties here.
            hidden = s <= z[popping, k]
            top[popping[hidden]] -= 1
            done = popping[~hidden]
            k_done = top[done] + 1
            v[done, k_done] = q
            z[done, k_done] = s[~hidden]
            z[done, k_done + 1] = np.inf
            top[done] = k_done
            popping = popping[hidden]
    return v, z, top + 1


def _gdt_rows(f: np.ndarray, w: float, mu: float) -> tuple[np.ndarray, np.ndarray]:
    """``D[r, p] = min_q f[r, q] + w (p - q - mu)^2`` and its argmin, for every row of ``f[R, n]``."""
    rows, n = f.shape
    v, z, count = _lower_envelope(f, w)
    z[np.arange(n + 1)[None, :] >= count[:, None]] = np.inf  # pops leave stale breakpoints above the top
    # Query the envelope at x = p - mu: the parabola k with z[k] <= x < z[k + 1]. The x are sorted, so a per-row
    # searchsorted finds k; one global searchsorted serves all rows after clipping z into [lo, hi] and shifting
    # row r by r * span (rows stay sorted and disjoint).
    x = np.arange(n, dtype=np.float64) - mu
    lo, hi = x[0] - 1.0, x[-1] + 1.0
    span = hi - lo + 1.0
    offsets = np.arange(rows, dtype=np.float64)[:, None] * span
    keys = (np.clip(z, lo, hi) + offsets).ravel()
    queries = (x[None, :] + offsets).ravel()
    k = np.searchsorted(keys, queries, side="right").reshape(rows, n) - (n + 1) * np.arange(rows)[:, None] - 1
    k = np.clip(k, 0, n - 1)
    argmin = np.take_along_axis(v, k, axis=1)
    values = np.take_along_axis(f, argmin, axis=1) + w * (x[None, :] - argmin) ** 2
    # Rows without a finite entry: every placement is forbidden.
    dead = count == 0
    values[dead] = np.inf
    argmin[dead] = 0
    return values, argmin


def _check_weight(w: float, name: str = "w") -> float:
    w = float(w)
    if not (np.isfinite(w) and w > 0):
        raise ValueError(f"{name} must be a positive finite spring weight, got {w}")
    return w


def _check_costs(f: np.ndarray, name: str) -> None:
    if np.isnan(f).any():
        raise ValueError(f"{name} contains NaN")
    if np.isneginf(f).any():
        raise ValueError(f"{name} contains -inf; use finite costs (+inf marks a forbidden location)")


def distance_transform_1d(f: ArrayLike, w: float = 1.0, mu: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Generalized distance transform of a sampled function under a shifted quadratic::

        D(p) = min_q f(q) + w (p - q - mu)^2,    p, q = 0, ..., n - 1

    in ``O(n)`` per line. ``f`` may be ``[n]`` or ``[..., n]`` (every line along the last axis transformed at once);
    ``+inf`` entries mark forbidden positions.

    Returns:
        ``(D, argmin)`` of ``f``'s shape, ``argmin`` the minimizing ``q`` (``int64``). A line that is ``+inf``
        everywhere gives ``D = +inf`` and ``argmin = 0`` (meaningless there).

    Raises:
        ValueError: ``w <= 0`` (the min-convolution would not be a lower envelope of upward parabolas), NaN or
            ``-inf`` in ``f``, or an empty ``f``.
    """
    w = _check_weight(w)
    f = np.asarray(f, dtype=np.float64)
    if f.ndim == 0 or f.shape[-1] == 0:
        raise ValueError(f"f must have at least one entry along its last axis, got shape {f.shape}")
    _check_costs(f, "f")
    lines = f.reshape(-1, f.shape[-1])
    values, argmin = _gdt_rows(lines, w, float(mu))
    return values.reshape(f.shape), argmin.reshape(f.shape)


# ----------------------------------------------------------------------------------------------------------- 2D GDT


def distance_transform_2d(
    cost_map: ArrayLike, w_x: float, w_y: float, mu_x: float = 0.0, mu_y: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2D generalized distance transform of ``cost_map[H, W]`` (rows ``y``, columns ``x``)::

        D(x, y) = min_{x', y'} f(x', y') + w_x (x - x' - mu_x)^2 + w_y (y - y' - mu_y)^2

    The quadratic splits into an x part and a y part, so ``D`` is the 1D transform along x of every row followed
    by the 1D transform along y of every column: ``O(H W)``.

    Returns:
        ``(D, argmin_x, argmin_y)``, each ``[H, W]``: ``(argmin_x[y, x], argmin_y[y, x])`` is the minimizing
        ``(x', y')``.
    """
    w_x, w_y = _check_weight(w_x, "w_x"), _check_weight(w_y, "w_y")
    f = np.asarray(cost_map, dtype=np.float64)
    if f.ndim != 2 or f.size == 0:
        raise ValueError(f"cost_map must be a non-empty [H, W] array, got shape {f.shape}")
    _check_costs(f, "cost_map")
    along_x, arg_x = _gdt_rows(f, w_x, float(mu_x))  # [H (= y'), W (= x)]
    values_t, arg_y_t = _gdt_rows(np.ascontiguousarray(along_x.T), w_y, float(mu_y))  # [W (= x), H (= y)]
    values, arg_y = values_t.T, arg_y_t.T
    # The best x' for (x, y) is the one chosen in row y' = arg_y[y, x] of the first pass.
    columns = np.broadcast_to(np.arange(f.shape[1]), f.shape)
    arg_x = arg_x[arg_y, columns]
    return np.ascontiguousarray(values), arg_x, np.ascontiguousarray(arg_y)


# ------------------------------------------------------------------------------------------------------ tree model


def tree_order(parents: Sequence[int]) -> list[int]:
    """Validate a tree of parts and return its parts root first, every part after its parent (BFS order).

    Exactly one part has parent ``-1`` (the root); the parents may be listed in any order, e.g. ``[1, -1, 1]``.

    Raises:
        ValueError: empty, no root or several roots, a parent index out of range, a self-parent or a cycle.
    """
    parents = [int(p) for p in parents]
    count = len(parents)
    if count == 0:
        raise ValueError("parents is empty: a tree needs at least one part")
    roots = [i for i, p in enumerate(parents) if p == -1]
    if len(roots) != 1:
        raise ValueError(f"parents must have exactly one root (parent -1), found {len(roots)}: {roots}")
    for i, p in enumerate(parents):
        if p != -1 and not 0 <= p < count:
            raise ValueError(f"part {i} has parent {p}, outside [0, {count}) (and not -1 for the root)")
        if p == i:
            raise ValueError(f"part {i} is its own parent")
    children: list[list[int]] = [[] for _ in range(count)]
    for i, p in enumerate(parents):
        if p >= 0:
            children[p].append(i)
    order = [roots[0]]
    for i in order:  # grows while iterating: breadth-first from the root
        order.extend(children[i])
    if len(order) != count:
        unreached = sorted(set(range(count)) - set(order))
        raise ValueError(f"parents is not a tree: parts {unreached} are on a cycle, not connected to the root")
    return order


def _check_model(
    unary_costs: ArrayLike, parents: Sequence[int], spring_weights: ArrayLike, spring_means: ArrayLike
) -> tuple[np.ndarray, list[int], list[int], np.ndarray, np.ndarray]:
    order = tree_order(parents)
    parents = [int(p) for p in parents]
    count = len(parents)
    unary = np.asarray(unary_costs, dtype=np.float64)
    if unary.ndim != 3 or unary.shape[0] != count or unary.shape[1] == 0 or unary.shape[2] == 0:
        raise ValueError(f"unary_costs must have shape [P, H, W] with P = len(parents) = {count}, got {unary.shape}")
    _check_costs(unary, "unary_costs")
    weights = np.asarray(spring_weights, dtype=np.float64)
    means = np.asarray(spring_means, dtype=np.float64)
    for name, array in (("spring_weights", weights), ("spring_means", means)):
        if array.shape != (count, 2):
            raise ValueError(f"{name} must have shape [P, 2] = [{count}, 2] (x, y per part), got {array.shape}")
    non_root = [i for i in range(count) if parents[i] >= 0]
    # The root's row has no spring and is ignored (it may hold anything, e.g. NaN).
    bad = [i for i in non_root if not (np.all(np.isfinite(weights[i])) and np.all(weights[i] > 0))]
    if bad:
        raise ValueError(f"spring_weights must be positive and finite for every non-root part; bad parts: {bad}")
    bad = [i for i in non_root if not np.all(np.isfinite(means[i]))]
    if bad:
        raise ValueError(f"spring_means must be finite for every non-root part; bad parts: {bad}")
    return unary, parents, order, weights, means


def configuration_cost(
    unary_costs: ArrayLike,
    parents: Sequence[int],
    spring_weights: ArrayLike,
    spring_means: ArrayLike,
    locations: ArrayLike,
) -> float:
    """Energy ``E(L)`` (module docstring) of ``locations[P, 2]`` (integer ``(x, y)`` per part)."""
    unary, parents, _, weights, means = _check_model(unary_costs, parents, spring_weights, spring_means)
    locations = np.asarray(locations, dtype=np.int64)
    if locations.shape != (len(parents), 2):
        raise ValueError(f"locations must have shape [P, 2] = [{len(parents)}, 2], got {locations.shape}")
    total = float(unary[np.arange(len(parents)), locations[:, 1], locations[:, 0]].sum())
    for i, p in enumerate(parents):
        if p >= 0:
            offset = locations[i] - locations[p] - means[i]
            total += float(weights[i] @ offset**2)
    return total


def map_inference(
    unary_costs: ArrayLike,
    parents: Sequence[int],
    spring_weights: ArrayLike,
    spring_means: ArrayLike,
) -> tuple[np.ndarray, float]:
    """Exact minimizer of ``E(L)`` over all ``(H W)^P`` configurations, in ``O(P H W)`` (module docstring).

    Args:
        unary_costs: ``[P, H, W]`` costs ``m_i(x, y)`` at ``[i, y, x]``; lower is better (pass ``-scores``);
            ``+inf`` forbids a location.
        parents: ``[P]`` parent of each part, ``-1`` for the single root; any order (see :func:`tree_order`).
        spring_weights: ``[P, 2]`` ``(w_x, w_y) > 0`` of the spring to each part's parent (the root's row is ignored).
        spring_means: ``[P, 2]`` ``(mu_x, mu_y)`` rest offset ``l_child - l_parent`` (the root's row is ignored).

    Returns:
        ``(locations, total_cost)``: ``locations[P, 2]`` integer ``(x, y)`` of every part, ``total_cost = E(L*)``.
        On ties one of the minimizers is returned.

    Raises:
        ValueError: a non-tree ``parents``, mismatched shapes, non-positive or non-finite spring weights, NaN or
            ``-inf`` costs, or no feasible configuration (every configuration has infinite cost).
    """
    unary, parents, order, weights, means = _check_model(unary_costs, parents, spring_weights, spring_means)
    count, height, width = unary.shape
    subtree = unary.copy()  # B_i: unary plus the messages of i's children, filled in leaves-first order
    best_child_x = np.zeros((count, height, width), dtype=np.int64)
    best_child_y = np.zeros((count, height, width), dtype=np.int64)
    for i in reversed(order[1:]):  # reversed BFS: every child is finished before its parent
        # d_i = w (x_i - x_j - mu)^2 = w (x_j - x_i + mu)^2, the GDT kernel with p = x_j (parent), q = x_i, shift -mu.
        message, best_child_x[i], best_child_y[i] = distance_transform_2d(
            subtree[i], weights[i, 0], weights[i, 1], -means[i, 0], -means[i, 1]
        )
        subtree[parents[i]] += message
    root = order[0]
    flat = int(np.argmin(subtree[root]))
    total = float(subtree[root].flat[flat])
    if not np.isfinite(total):
        raise ValueError("no feasible configuration: every placement of the parts has infinite cost")
    locations = np.zeros((count, 2), dtype=np.int64)
    locations[root] = (flat % width, flat // width)
    for i in order[1:]:  # parents before children: read each child's best location given its parent's
        x, y = locations[parents[i]]
        locations[i] = (best_child_x[i, y, x], best_child_y[i, y, x])
    return locations, total
