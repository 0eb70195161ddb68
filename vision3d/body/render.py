"""Draw joint positions as a 3D stick figure with matplotlib: a PNG strip of frames, or an mp4 video.

    from vision3d.body.render import motion_joints, skeleton_strip, skeleton_video
    joints = motion_joints(motion, rest_joints)                    # (T, 24, 3) via forward kinematics
    skeleton_strip(joints, PARENTS, frames=8, path="strip.png")    # evenly spaced frames side by side
    skeleton_video(joints, PARENTS, fps=motion.fps, path="clip.mp4")

Rendering uses matplotlib's Agg canvas directly (``Figure`` + ``FigureCanvasAgg``), never pyplot, so it works
headless and leaves no global figure state behind. Every panel has equal scaling on all three axes (a cube of
the same size throughout a clip), a ground grid at the lowest point of the clip, and a camera that follows the
root horizontally, so the grid slides under a walking body. ``up`` says which data axis points up (SMPL and
DeepMimic: ``"y"``; AMASS: ``"z"``). An optional ``reference`` skeleton (same shape, e.g. the source of a
retargeting) is drawn translucent grey behind the main one. For the 24-joint SMPL tree the subject's left side is
drawn blue and the right side red.

Videos are encoded by imageio with the ffmpeg binary of ``imageio-ffmpeg`` (H.264, ``yuv420p``), reusing one
figure and updating line data per frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.axes3d import Axes3D

from vision3d.body.motion import motion_joints
from vision3d.body.skeleton import JOINT_NAMES, PARENTS, check_parents

__all__ = ["motion_joints", "render_frames", "skeleton_strip", "skeleton_video"]

LEFT_COLOR, RIGHT_COLOR, CENTRE_COLOR = "#1f5fbf", "#c8322d", "#333333"
REFERENCE_COLOR, REFERENCE_ALPHA = "#888888", 0.35
GROUND_COLOR = "#b0b0b0"
GROUND_LINES = 7  # grid lines per direction; the grid spans the panel's horizontal extent
MARGIN = 1.15  # panel half-size / half the largest body extent
DPI = 100
ZOOM = 1.35

# Plot coordinates are matplotlib's (X, Y, Z) with Z up. For y-up data, (x, y, z) -> (x, -z, y) is a proper
# rotation (determinant +1), so left stays left and the body is not mirrored.
_TO_PLOT = {
    "y": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),
    "z": np.eye(3),
}


# ---------------------------------------------------------------------------------------------------------------
# Input checks and geometry


def _check_joints(joints: np.ndarray, parents: Sequence[int], name: str = "joints") -> np.ndarray:
    """``joints`` as float ``(T, J, 3)`` (a single ``(J, 3)`` frame is promoted), consistent with ``parents``."""
    array = np.asarray(joints, dtype=np.float64)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[-1] != 3 or array.shape[0] == 0:
        raise ValueError(f"{name} must have shape (T, J, 3) with T >= 1, got {np.shape(joints)}")
    if len(parents) != array.shape[1]:
        raise ValueError(f"parents has {len(parents)} entries but {name} has {array.shape[1]} joints")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _prepare(
    joints: np.ndarray, parents: Sequence[int], reference: np.ndarray | None, up: str
) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...]]:
    """Validated inputs, rotated into plot coordinates (Z up)."""
    if up not in _TO_PLOT:
        raise ValueError(f"up must be 'y' or 'z', got {up!r}")
    parents = check_parents(parents)
    main = _check_joints(joints, parents) @ _TO_PLOT[up].T
    if reference is None:
        return main, None, parents
    ref = _check_joints(reference, parents, "reference") @ _TO_PLOT[up].T
    if ref.shape != main.shape:
        raise ValueError(f"reference must have the shape of joints {main.shape}, got {ref.shape}")
    return main, ref, parents


class _Framing:
    """Panel limits for a clip: one cube size for all frames, centred horizontally on each frame's root."""

    def __init__(self, clips: list[np.ndarray]) -> None:
        points = np.concatenate(clips, axis=1)  # (T, all joints, 3)
        per_frame_extent = points.max(axis=1) - points.min(axis=1)
        self.half = max(float(per_frame_extent.max()) / 2.0 * MARGIN, 1e-3)
        self.ground = float(points[..., 2].min())
        # Vertical centre of the cube: mid-height of the tallest pose, so the body fills the panel.
        self.mid_height = (self.ground + float(points[..., 2].max())) / 2.0
        self.roots = clips[0][:, 0, :2]  # horizontal root position per frame

    def limits(self, t: int) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
        cx, cy = self.roots[t]
        z = self.mid_height
        return (cx - self.half, cx + self.half), (cy - self.half, cy + self.half), (z - self.half, z + self.half)

    def ground_lines(self, t: int) -> Iterator[np.ndarray]:
        """``2 * GROUND_LINES`` segments ``(2, 3)`` of a grid fixed in the world, clipped to the panel."""
        (x0, x1), (y0, y1), _ = self.limits(t)
        spacing = 2 * self.half / (GROUND_LINES - 1)
        # Lines at multiples of the spacing (world-fixed), so the grid moves when the camera follows the root.
        xs = np.floor(x0 / spacing) * spacing + spacing * np.arange(GROUND_LINES)
        ys = np.floor(y0 / spacing) * spacing + spacing * np.arange(GROUND_LINES)
        for x in xs:
            x = float(np.clip(x, x0, x1))
            yield np.array([[x, y0, self.ground], [x, y1, self.ground]])
        for y in ys:
            y = float(np.clip(y, y0, y1))
            yield np.array([[x0, y, self.ground], [x1, y, self.ground]])


def _bone_colors(parents: tuple[int, ...]) -> list[str]:
    """Colour of the bone ending at each non-root joint: by side for the SMPL tree, neutral otherwise."""
    if parents != PARENTS:
        return [CENTRE_COLOR] * (len(parents) - 1)
    colors = []
    for name in JOINT_NAMES[1:]:
        side = name.split("_", 1)[0]
        colors.append({"left": LEFT_COLOR, "right": RIGHT_COLOR}.get(side, CENTRE_COLOR))
    return colors


# ---------------------------------------------------------------------------------------------------------------
# One panel, updated in place


class _Panel:
    """A 3D axes with line artists for the ground grid, a reference skeleton and the skeleton; :meth:`show`
    moves them to frame ``t`` without creating new artists (that is what keeps videos fast)."""

    def __init__(
        self, ax: Axes3D, parents: tuple[int, ...], framing: _Framing, has_reference: bool, elev: float, azim: float
    ) -> None:
        self.ax, self.parents, self.framing = ax, parents, framing
        ax.view_init(elev=elev, azim=azim)
        # Equal limits per axis and a cubic box: equal scaling. The zoom undoes most of mplot3d's default shrink
        # of the box inside the axes (it leaves room for tick labels, which are off here).
        ax.set_box_aspect((1, 1, 1), zoom=ZOOM)
        ax.set_axis_off()
        n_bones = len(parents) - 1
        self.grid = [ax.plot([], [], [], color=GROUND_COLOR, lw=0.6)[0] for _ in range(2 * GROUND_LINES)]
        self.reference = (
            [ax.plot([], [], [], color=REFERENCE_COLOR, alpha=REFERENCE_ALPHA, lw=3)[0] for _ in range(n_bones)]
            if has_reference
            else []
        )
        self.bones = [ax.plot([], [], [], color=c, lw=2.2, solid_capstyle="round")[0] for c in _bone_colors(parents)]
        self.dots = ax.plot([], [], [], "o", color=CENTRE_COLOR, ms=2.0)[0]

    def _set_bones(self, lines: list, positions: np.ndarray) -> None:
        for line, (child, parent) in zip(lines, enumerate(self.parents[1:], start=1), strict=True):
            segment = positions[[parent, child]]
            line.set_data_3d(segment[:, 0], segment[:, 1], segment[:, 2])

    def show(self, t: int, joints: np.ndarray, reference: np.ndarray | None, title: str | None) -> None:
        xlim, ylim, zlim = self.framing.limits(t)
        self.ax.set(xlim=xlim, ylim=ylim, zlim=zlim)
        for line, segment in zip(self.grid, self.framing.ground_lines(t), strict=True):
            line.set_data_3d(segment[:, 0], segment[:, 1], segment[:, 2])
        if reference is not None:
            self._set_bones(self.reference, reference[t])
        self._set_bones(self.bones, joints[t])
        self.dots.set_data_3d(joints[t, :, 0], joints[t, :, 1], joints[t, :, 2])
        if title is not None:
            self.ax.set_title(title, fontsize=9, pad=0)


def _rgb(canvas: FigureCanvasAgg) -> np.ndarray:
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _frame_title(t: int, fps: float | None) -> str:
    return f"frame {t}" if fps is None else f"t = {t / fps:.2f} s"


# ---------------------------------------------------------------------------------------------------------------
# Public API


def skeleton_strip(
    joints: np.ndarray,
    parents: Sequence[int] = PARENTS,
    frames: int = 8,
    path: str | Path | None = None,
    *,
    up: str = "y",
    reference: np.ndarray | None = None,
    fps: float | None = None,
    panel_px: int = 240,
    elev: float = 12.0,
    azim: float = -60.0,
) -> np.ndarray:
    """Draw ``frames`` evenly spaced frames (first and last included) of ``joints (T, J, 3)`` side by side.

    Args:
        joints: joint positions in metres (a single ``(J, 3)`` frame is accepted).
        parents: the kinematic tree (root ``-1`` first, topologically ordered), one entry per joint.
        frames: number of panels; capped at ``T``.
        path: where to write the PNG (parent folders must exist); ``None`` only returns the image.
        up: the data's up axis, ``"y"`` or ``"z"``.
        reference: optional second skeleton, same shape as ``joints``, drawn translucent.
        fps: if given, panels are titled with the time in seconds instead of the frame index.
        panel_px: width and height of one panel in pixels.
        elev, azim: camera elevation and azimuth in degrees (matplotlib's ``view_init``).

    Returns:
        The image, ``uint8 (panel_px, n_panels * panel_px, 3)``.
    """
    main, ref, parents = _prepare(joints, parents, reference, up)
    if frames < 1 or panel_px < 16:
        raise ValueError(f"need frames >= 1 and panel_px >= 16, got frames={frames}, panel_px={panel_px}")
    picks = np.unique(np.linspace(0, len(main) - 1, min(frames, len(main))).round().astype(int))
    framing = _Framing([main] if ref is None else [main, ref])
    figure = Figure(figsize=(len(picks) * panel_px / DPI, panel_px / DPI), dpi=DPI)
    canvas = FigureCanvasAgg(figure)
    figure.subplots_adjust(left=0, right=1, bottom=0, top=0.93, wspace=0)
    for i, t in enumerate(picks):
        ax = figure.add_subplot(1, len(picks), i + 1, projection="3d")
        _Panel(ax, parents, framing, ref is not None, elev, azim).show(int(t), main, ref, _frame_title(int(t), fps))
    image = _rgb(canvas)
    if path is not None:
        imageio.imwrite(Path(path), image)
    return image


def render_frames(
    joints: np.ndarray,
    parents: Sequence[int] = PARENTS,
    *,
    up: str = "y",
    reference: np.ndarray | None = None,
    fps: float | None = None,
    size: tuple[int, int] = (480, 480),
    elev: float = 12.0,
    azim: float = -60.0,
) -> Iterator[np.ndarray]:
    """Yield one ``uint8 (height, width, 3)`` image per frame of ``joints (T, J, 3)`` (one figure, reused).

    Arguments as in :func:`skeleton_strip`; ``size`` is ``(width, height)`` in pixels.
    """
    main, ref, parents = _prepare(joints, parents, reference, up)
    width, height = size
    if width < 16 or height < 16:
        raise ValueError(f"size must be at least 16 x 16 pixels, got {size}")
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    canvas = FigureCanvasAgg(figure)
    figure.subplots_adjust(left=0, right=1, bottom=0, top=0.95)
    panel = _Panel(
        figure.add_subplot(projection="3d"),
        parents,
        _Framing([main] if ref is None else [main, ref]),
        ref is not None,
        elev,
        azim,
    )
    for t in range(len(main)):
        panel.show(t, main, ref, _frame_title(t, fps))
        yield _rgb(canvas)


def skeleton_video(
    joints: np.ndarray,
    parents: Sequence[int] = PARENTS,
    fps: float = 30.0,
    path: str | Path = "skeleton.mp4",
    *,
    up: str = "y",
    reference: np.ndarray | None = None,
    size: tuple[int, int] = (480, 480),
    elev: float = 12.0,
    azim: float = -60.0,
) -> Path:
    """Write ``joints (T, J, 3)`` as an H.264 mp4 of ``T`` frames at ``fps``; returns the path.

    ``size`` is ``(width, height)`` in pixels; both must be even (``yuv420p`` halves the chroma resolution).
    Other arguments as in :func:`skeleton_strip`.
    """
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if size[0] % 2 or size[1] % 2:
        raise ValueError(f"video size must be even in both directions, got {size}")
    frames = render_frames(joints, parents, up=up, reference=reference, fps=fps, size=size, elev=elev, azim=azim)
    first = next(frames)  # validates the inputs before a file is created
    path = Path(path)
    # macro_block_size=2: keep the requested size (imageio would otherwise rescale to multiples of 16).
    with imageio.get_writer(
        path, format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=2
    ) as writer:
        writer.append_data(first)
        for image in frames:
            writer.append_data(image)
    return path
