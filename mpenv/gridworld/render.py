"""Drawing a gridworld with numpy only: an ``"ansi"`` text grid and an ``"rgb_array"`` image.

No window and no pygame: a ``"human"`` mode would need a GUI toolkit, a heavy optional dependency
for a course whose notebooks and CI only need arrays (``plt.imshow(env.render())`` shows them).
"""

from __future__ import annotations

import numpy as np

ACTION_NAMES = ("Left", "Down", "Right", "Up")
AGENT_CHAR = "A"

COLOURS = {
    "S": (176, 208, 240),
    "G": (70, 190, 110),
    ".": (232, 240, 248),
    "F": (232, 240, 248),
    "#": (64, 64, 64),
    "H": (24, 40, 88),
    "C": (150, 78, 40),
}
GRID_LINE = (200, 206, 214)
AGENT = (220, 40, 40)
# Grid lines on cells smaller than this would hide the cells themselves.
MIN_CELL_FOR_LINES = 6


def auto_cell_size(nrow: int, ncol: int) -> int:
    """Pixels per cell so that the image is about 256 px on its long side (1 px for huge grids,
    where an image of 16 px cells would take gigabytes)."""
    return int(np.clip(256 // max(nrow, ncol), 1, 32))


def render_ansi(desc: np.ndarray, state: int, last_action: int | None) -> str:
    """The layout as text with the agent's cell shown as ``A``; a first line names the last action,
    as gymnasium's FrozenLake does."""
    nrow, ncol = desc.shape
    rows = desc.view(f"U{ncol}").ravel().tolist()
    row, col = divmod(state, ncol)
    rows[row] = rows[row][:col] + AGENT_CHAR + rows[row][col + 1 :]
    header = f"  ({ACTION_NAMES[last_action]})\n" if last_action is not None else ""
    return header + "\n".join(rows) + "\n"


class GridPainter:
    """RGB images of the grid with the agent as a red disk. The background is drawn once (lazily, so
    envs that never render pay nothing) and copied per frame."""

    def __init__(self, desc: np.ndarray, cell_size: int) -> None:
        self.desc = desc
        self.cell = cell_size
        self.shape = (desc.shape[0] * cell_size, desc.shape[1] * cell_size, 3)
        self._background: np.ndarray | None = None
        self._agent_mask = _disk(cell_size)

    def background(self) -> np.ndarray:
        if self._background is None:
            self._background = self._draw_background()
        return self._background

    def draw(self, state: int) -> np.ndarray:
        image = self.background().copy()
        row, col = divmod(state, self.desc.shape[1])
        c = self.cell
        image[row * c : (row + 1) * c, col * c : (col + 1) * c][self._agent_mask] = AGENT
        return image

    def _draw_background(self) -> np.ndarray:
        chars = sorted(COLOURS)
        palette = np.array([COLOURS[ch] for ch in chars], dtype=np.uint8)
        index = np.searchsorted(np.array(chars), self.desc)
        image = np.repeat(np.repeat(palette[index], self.cell, axis=0), self.cell, axis=1)
        if self.cell >= MIN_CELL_FOR_LINES:
            image[:: self.cell, :] = GRID_LINE
            image[:, :: self.cell] = GRID_LINE
        return image


def _disk(cell: int) -> np.ndarray:
    centre = (cell - 1) / 2.0
    yy, xx = np.mgrid[0:cell, 0:cell]
    # The floor on the radius keeps the agent visible (at least the centre pixels) on tiny cells.
    radius = max(0.35 * cell, 0.75)
    return (yy - centre) ** 2 + (xx - centre) ** 2 <= radius**2
