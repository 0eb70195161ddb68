"""Pictures of runs. Tabular solutions: the state-value function V(s) as a heatmap over the grid, with an
arrow per cell for the greedy action (mpenv's gridworlds, gymnasium's FrozenLake and CliffWalking; ``None`` for
envs whose states are not cells of a grid, e.g. Taxi). Any run: learning curves of chosen TensorBoard scalars
(:func:`curves_figure`; ``python -m agents.plots RUN_DIR --tags ... --out curves.png``).

Uses matplotlib's object-oriented API (``Figure``), so no GUI backend is ever touched.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

# (d_row, d_col) per action index. mpenv's GridWorld and FrozenLake use left, down, right, up;
# gymnasium's CliffWalking uses up, right, down, left.
LEFT_DOWN_RIGHT_UP = np.array([[0, -1], [1, 0], [0, 1], [-1, 0]])
UP_RIGHT_DOWN_LEFT = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]])
CELL_COLOURS = {"#": "0.35"}


def grid_of(env: gym.Env) -> tuple[int, int, np.ndarray | None, np.ndarray] | None:
    """``(nrow, ncol, desc, action_deltas)`` when the env's states are the cells of a grid."""
    env = env.unwrapped
    if hasattr(env, "nrow") and hasattr(env, "ncol"):
        desc = getattr(env, "desc", None)
        if desc is not None:
            desc = np.char.decode(desc) if np.asarray(desc).dtype.kind == "S" else np.asarray(desc)
        return int(env.nrow), int(env.ncol), desc, LEFT_DOWN_RIGHT_UP
    if type(env).__name__ == "CliffWalkingEnv":
        nrow, ncol = env.shape
        desc = np.full((nrow, ncol), ".")
        desc[-1, 1:-1], desc[-1, 0], desc[-1, -1] = "C", "S", "G"
        return nrow, ncol, desc, UP_RIGHT_DOWN_LEFT
    return None


def figure_size(env: gym.Env, panels: int = 1) -> tuple[float, float]:
    grid = grid_of(env)
    nrow, ncol = (grid[0], grid[1]) if grid else (8, 8)
    cell = 0.5 if max(nrow, ncol) <= 24 else 12.0 / max(nrow, ncol)
    return panels * max(4.0, ncol * cell + 1.5), max(3.0, nrow * cell + 0.8)


def draw_value_policy(ax: Axes, env: gym.Env, V: np.ndarray, pi: np.ndarray | None, title: str = "") -> bool:
    """Draw V as a heatmap over the grid with greedy-action arrows from ``pi`` (int [S]) onto ``ax``;
    returns False (and draws nothing) when the env's states are not grid cells."""
    grid = grid_of(env)
    if grid is None or V.shape[0] != grid[0] * grid[1]:
        return False
    nrow, ncol, desc, deltas = grid
    values = V.reshape(nrow, ncol).astype(float)
    # Walls are never entered and cliff cells are left at once (back to the start): their "values" are
    # meaningless, so they are greyed out rather than coloured.
    never_occupied = np.isin(desc, ["#", "C"]) if desc is not None else np.zeros_like(values, dtype=bool)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad=CELL_COLOURS["#"])
    image = ax.imshow(np.ma.masked_array(values, mask=never_occupied), cmap=cmap)
    ax.figure.colorbar(image, ax=ax, label="V(s)", shrink=0.8)

    if desc is not None and max(nrow, ncol) <= 32:
        for (r, c), char in np.ndenumerate(desc):
            if char in "SGHC":
                ax.text(c, r, char, ha="center", va="center", fontsize=9, fontweight="bold", color="white")
    if pi is not None and pi.ndim == 1 and max(nrow, ncol) <= 64:
        no_action = np.isin(desc, ["#", "C", "G", "H"]) if desc is not None else never_occupied
        rows, cols = np.nonzero(~no_action)
        d = deltas[pi.reshape(nrow, ncol)[rows, cols]]
        # In data coordinates with the image's downward row axis, (d_col, d_row) points the right way.
        ax.quiver(cols, rows, d[:, 1], d[:, 0], angles="xy", scale_units="xy", scale=1.8, pivot="middle",
                  color="white", width=0.004 * max(1.0, 12 / max(nrow, ncol)))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "V(s) and greedy policy")
    return True


def value_policy_figure(env: gym.Env, V: np.ndarray, pi: np.ndarray | None, title: str = "") -> Figure | None:
    """A one-panel figure of :func:`draw_value_policy`, or None for a non-grid env."""
    fig = Figure(figsize=figure_size(env), layout="constrained")
    return fig if draw_value_policy(fig.add_subplot(), env, V, pi, title) else None


def save_figure(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` points (fewer at the start), so a curve is smoothed without shifting."""
    sums = np.cumsum(np.insert(np.asarray(values, dtype=float), 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (sums[1:] - sums[np.arange(1, len(values) + 1) - counts]) / counts


def curves_figure(run_dir: str | Path, tags: list[str], smooth: int = 50, title: str = "") -> Figure:
    """One panel per scalar tag of a run: raw points faint, their moving average bold (over ``smooth`` points, or
    a tenth of the points for sparse tags such as periodic evaluations)."""
    from mpenv.logger import read_scalars

    fig = Figure(figsize=(4.0 * len(tags), 3.0), layout="constrained")
    for ax, tag in zip(fig.subplots(1, len(tags), squeeze=False)[0], tags, strict=True):
        steps, values = read_scalars(run_dir, tag)
        ax.plot(steps, values, color="C0", alpha=0.2, linewidth=0.8)
        window = max(1, min(smooth, len(values) // 10))
        ax.plot(steps, moving_average(values, window), color="C0", linewidth=1.8)
        ax.set_title(tag, fontsize=10)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


DEFAULT_TAGS = ["charts/episodic_return", "charts/episodic_length"]


def scalar_tags(run_dir: str | Path) -> list[str]:
    """The scalar tags a run's event files hold (none for a directory without event files)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 1})  # the names, not the points
    events.Reload()
    return sorted(events.Tags()["scalars"])


def tags_to_plot(run_dir: Path, asked: list[str] | None) -> list[str]:
    """``--tags`` if the run has them all; without ``--tags``, the RL curves, or any run's own scalars (a
    generative run logs losses and likelihoods instead). A ValueError says what is missing."""
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir}: no such run directory")
    found = scalar_tags(run_dir)
    if not found:
        raise ValueError(f"{run_dir}: no TensorBoard scalars (is it a run directory?)")
    if asked is None:
        return DEFAULT_TAGS if set(DEFAULT_TAGS) <= set(found) else found
    missing = [tag for tag in asked if tag not in found]
    if missing:
        raise ValueError(f"--tags: {run_dir} has no scalar {', '.join(missing)} (found: {', '.join(found)})")
    return asked


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m agents.plots", description="Learning curves of a run as a PNG.")
    parser.add_argument("run_dir", help="run directory (with TensorBoard event files)")
    parser.add_argument("--tags", nargs="+", default=None,
                        help=f"scalar tags, one panel each (default: {' '.join(DEFAULT_TAGS)} if the run has them, "
                             "else every scalar of the run)")
    parser.add_argument("--smooth", type=int, default=50, help="moving-average window in points (default 50)")
    parser.add_argument("--title", default="", help="figure title")
    parser.add_argument("--out", default="curves.png", help="output PNG (default curves.png)")
    args = parser.parse_args(argv)
    try:
        tags = tags_to_plot(Path(args.run_dir), args.tags)
        if args.smooth < 1:
            raise ValueError(f"--smooth must be at least 1, got {args.smooth}")
        if not Path(args.out).parent.is_dir():
            raise ValueError(f"--out {args.out}: no such directory {Path(args.out).parent}")
    except ValueError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {save_figure(curves_figure(args.run_dir, tags, args.smooth, args.title), args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
