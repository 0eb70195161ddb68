"""Grid layouts: the classic maps of the course, parsing/validation, and a seeded random generator.

A layout is a list of equal-length strings over the alphabet

=====  ==========================================================================
``S``  start (exactly one)
``G``  goal, terminal
``.``  free cell (``F``, FrozenLake's "frozen", is accepted as a synonym)
``#``  wall, never entered
``H``  hole, terminal
``C``  cliff: a large negative reward and back to the start, *not* terminal
=====  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CELL_CHARS = "SG.F#HC"

FROZEN_LAKE_4X4 = ("SFFF", "FHFH", "FFFH", "HFFG")

FROZEN_LAKE_8X8 = (
    "SFFFFFFF",
    "FFFFFFFF",
    "FFFHFFFF",
    "FFFFFHFF",
    "FFFHFFFF",
    "FHHFFFHF",
    "FHFFHFHF",
    "FFFHFFFG",
)

# Sutton & Barto (2018), Example 6.6: start and goal at the ends of the bottom row, cliff in between.
CLIFF_WALKING = (
    "............",
    "............",
    "............",
    "SCCCCCCCCCCG",
)

# Sutton & Barto (2018), Example 6.5. The layout alone is an empty 7x10 room; the wind is a separate
# argument of the env (WINDY_WIND) because it is dynamics, not a cell type.
WINDY = (
    "..........",
    "..........",
    "..........",
    "S......G..",
    "..........",
    "..........",
    "..........",
)
WINDY_WIND = (0, 0, 0, 1, 1, 1, 2, 2, 1, 0)

# Sutton, Precup & Singh (1999), Figure 2: four rooms joined by four one-cell hallways, 104 free cells.
# The paper starts episodes anywhere and uses a hallway goal; here one start and one goal sit in
# opposite corners so the map is a fixed, single-start layout like the others.
FOUR_ROOMS = (
    "#############",
    "#S....#.....#",
    "#.....#.....#",
    "#...........#",
    "#.....#.....#",
    "#.....#.....#",
    "##.####.....#",
    "#.....###.###",
    "#.....#.....#",
    "#.....#.....#",
    "#...........#",
    "#.....#....G#",
    "#############",
)

LAYOUTS: dict[str, tuple[str, ...]] = {
    "4x4": FROZEN_LAKE_4X4,
    "8x8": FROZEN_LAKE_8X8,
    "cliffwalking": CLIFF_WALKING,
    "windy": WINDY,
    "fourrooms": FOUR_ROOMS,
}

LayoutLike = str | Sequence[str] | np.ndarray


def layout_rows(layout: LayoutLike) -> list[str]:
    """The rows of ``layout``: a name from :data:`LAYOUTS`, a multi-line string, a sequence of strings
    or a 2-D array of one-character strings/bytes. Only the *shape* of the input is checked here."""
    if isinstance(layout, str):
        if layout in LAYOUTS:
            return list(LAYOUTS[layout])
        if "\n" not in layout:
            raise ValueError(
                f"unknown layout name {layout!r}; known names are {sorted(LAYOUTS)} "
                "(a one-row layout must be given as a list of strings)"
            )
        # Triple-quoted layouts are usually indented and framed by blank lines.
        return [line.strip() for line in layout.strip().splitlines()]
    if isinstance(layout, np.ndarray):
        if layout.ndim != 2:
            raise ValueError(f"a layout array must be 2-D, got shape {layout.shape}")
        if layout.dtype.kind == "S":
            layout = np.char.decode(layout, "ascii")
        return ["".join(row) for row in layout.tolist()]
    rows = list(layout)
    for i, row in enumerate(rows):
        if not isinstance(row, str):
            raise ValueError(f"layout row {i} is {type(row).__name__}, expected str")
    return rows


def parse_layout(layout: LayoutLike) -> np.ndarray:
    """Validate ``layout`` and return it as an ``(nrow, ncol)`` array of dtype ``"U1"``.

    Raises ``ValueError`` naming the problem (and its row/column) for an empty layout, ragged rows, an
    unknown character, or a number of starts other than one. A layout without a goal is allowed: it is
    a continuing task whose episodes end only in a hole or by truncation.
    """
    rows = layout_rows(layout)
    if not rows or not rows[0]:
        raise ValueError("empty layout: it needs at least one row and one column")
    ncol = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != ncol:
            raise ValueError(f"ragged layout: row {i} has {len(row)} columns, row 0 has {ncol}")
    # One fixed-width string per row viewed as characters: no Python loop over the cells.
    desc = np.array(rows, dtype=f"U{ncol}").view("U1").reshape(len(rows), ncol)
    _check_chars(desc)
    _check_single_start(desc)
    return desc


def _check_chars(desc: np.ndarray) -> None:
    bad = ~np.isin(desc, list(CELL_CHARS))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(
            f"unknown layout character {str(desc[r, c])!r} at row {r}, column {c}; "
            f"allowed characters are {' '.join(CELL_CHARS)}"
        )


def _check_single_start(desc: np.ndarray) -> None:
    starts = np.argwhere(desc == "S")
    if len(starts) == 0:
        raise ValueError("layout has no start: put exactly one 'S' in it")
    if len(starts) > 1:
        where = ", ".join(f"(row {r}, column {c})" for r, c in starts[:5])
        raise ValueError(f"layout has {len(starts)} starts, exactly one 'S' is allowed: {where}")


def reachable(desc: np.ndarray) -> np.ndarray:
    """Boolean ``(nrow, ncol)`` mask of the cells reachable from the start by deterministic moves
    through free cells (walls block; holes, cliffs and goals are entered but not crossed).

    A frontier BFS over flat indices: each level costs numpy work proportional to its size, so a
    1000 x 1000 grid takes a fraction of a second.
    """
    nrow, ncol = desc.shape
    flat = desc.ravel()
    passable = ~np.isin(flat, ["#"])
    crossable = np.isin(flat, ["S", ".", "F"])
    seen = np.zeros(flat.size, dtype=bool)
    owner = np.empty(flat.size, dtype=np.int64)
    frontier = np.flatnonzero(flat == "S")
    seen[frontier] = True
    while frontier.size:
        frontier = frontier[crossable[frontier]]
        rows, cols = np.divmod(frontier, ncol)
        candidates = np.concatenate(
            [
                frontier[cols > 0] - 1,
                frontier[cols < ncol - 1] + 1,
                frontier[rows > 0] - ncol,
                frontier[rows < nrow - 1] + ncol,
            ]
        )
        candidates = candidates[passable[candidates] & ~seen[candidates]]
        # Deduplicate without sorting: the last writer of each cell keeps it.
        owner[candidates] = np.arange(candidates.size)
        candidates = candidates[owner[candidates] == np.arange(candidates.size)]
        seen[candidates] = True
        frontier = candidates
    return seen.reshape(nrow, ncol)


def is_solvable(layout: LayoutLike) -> bool:
    """True when some goal is reachable from the start (see :func:`reachable`)."""
    desc = parse_layout(layout)
    return bool((reachable(desc) & (desc == "G")).any())


def random_layout(
    nrow: int,
    ncol: int,
    wall_density: float = 0.2,
    hole_density: float = 0.0,
    seed: int | None = None,
) -> list[str]:
    """A random, solvable layout with the start top-left and the goal bottom-right.

    Every other cell is a wall with probability ``wall_density``, a hole with probability
    ``hole_density``, otherwise free. Solvability is guaranteed by construction rather than by
    rejection sampling (which fails almost surely on large grids at high densities): a random
    monotone staircase path from S to G (a shuffled sequence of ``nrow - 1`` downs and ``ncol - 1``
    rights) is cleared of walls and holes. The same ``seed`` gives the same layout.
    1000 x 1000 takes well under a second.
    """
    _check_random_args(nrow, ncol, wall_density, hole_density)
    rng = np.random.default_rng(seed)
    u = rng.random((nrow, ncol))
    desc = np.full((nrow, ncol), ".", dtype="U1")
    desc[u < wall_density] = "#"
    desc[(u >= wall_density) & (u < wall_density + hole_density)] = "H"
    steps = np.zeros(nrow + ncol - 2, dtype=bool)
    steps[: nrow - 1] = True  # True = one row down, False = one column right
    rng.shuffle(steps)
    path_rows = np.concatenate([[0], np.cumsum(steps)])
    path_cols = np.concatenate([[0], np.cumsum(~steps)])
    desc[path_rows, path_cols] = "."
    desc[0, 0] = "S"
    desc[-1, -1] = "G"
    return desc.view(f"U{ncol}").ravel().tolist()


def _check_random_args(nrow: int, ncol: int, wall_density: float, hole_density: float) -> None:
    if nrow < 1 or ncol < 1 or nrow * ncol < 2:
        raise ValueError(f"random_layout needs at least two cells for S and G, got {nrow} x {ncol}")
    for name, value in (("wall_density", wall_density), ("hole_density", hole_density)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    if wall_density + hole_density > 1.0:
        raise ValueError(f"wall_density + hole_density must be at most 1, got {wall_density + hole_density}")
