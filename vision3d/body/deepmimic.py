"""DeepMimic motion files (``humanoid3d_*.txt``, Peng et al. 2018): parser for the 15-joint humanoid3d model.

A file is JSON::

    {"Loop": "wrap" | "none",
     "Frames": [[dt, root_pos(3), root_quat(4), chest(4), neck(4), right_hip(4), right_knee(1), right_ankle(4),
                 right_shoulder(4), right_elbow(1), left_hip(4), left_knee(1), left_ankle(4), left_shoulder(4),
                 left_elbow(1)], ...]}

44 numbers per frame. Conventions of the data:

* ``dt`` is the time in seconds from this frame to the next; fps = 1 / dt. The last frame's dt is 0 in the
  DeepMimic files (nothing follows it), so frame times are ``0, dt_0, dt_0 + dt_1, ...`` and the clip spans
  ``sum(dts)`` seconds from the first to the last frame. In the shipped wrap clips the last frame is meant as the
  first pose one cycle on (a *closed* cycle), but only approximately: in humanoid3d_walk the joints differ by a few
  degrees and one shoulder by ~28 degrees, so a seamless loop needs blending across the seam.
* Y is up, lengths are metres. The root position is the pelvis in the world frame; the root quaternion its world
  orientation. All quaternions are ``(w, x, y, z)`` and give a joint's rotation relative to its parent; they are
  normalised on reading (the files round them to 6 decimals).
* Knees and elbows are revolute (1 DoF): an angle in radians about the joint's local z axis, which in the
  humanoid3d rest pose points to the body's right (the model faces +x with Y up; right limbs sit at +z).
* ``Loop: "wrap"`` marks a cyclic clip (DeepMimic repeats it, carrying the root forward).

The wrists of the humanoid3d character are fixed joints and do not appear in motion files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# (name, degrees of freedom) in file order after dt, root position and root orientation.
JOINT_LAYOUT: tuple[tuple[str, int], ...] = (
    ("chest", 4),
    ("neck", 4),
    ("right_hip", 4),
    ("right_knee", 1),
    ("right_ankle", 4),
    ("right_shoulder", 4),
    ("right_elbow", 1),
    ("left_hip", 4),
    ("left_knee", 1),
    ("left_ankle", 4),
    ("left_shoulder", 4),
    ("left_elbow", 1),
)
# Joints of the motion file with their parents in the humanoid3d tree (root first).
JOINT_NAMES: tuple[str, ...] = ("root",) + tuple(name for name, _ in JOINT_LAYOUT)
_PARENT_NAMES = {
    "chest": "root",
    "neck": "chest",
    "right_hip": "root",
    "right_knee": "right_hip",
    "right_ankle": "right_knee",
    "right_shoulder": "chest",
    "right_elbow": "right_shoulder",
    "left_hip": "root",
    "left_knee": "left_hip",
    "left_ankle": "left_knee",
    "left_shoulder": "chest",
    "left_elbow": "left_shoulder",
}
PARENTS: tuple[int, ...] = (-1,) + tuple(JOINT_NAMES.index(_PARENT_NAMES[name]) for name, _ in JOINT_LAYOUT)
FRAME_SIZE = 1 + 3 + 4 + sum(dof for _, dof in JOINT_LAYOUT)  # 44
LOOP_MODES = ("wrap", "none")


@dataclass
class DeepMimicClip:
    """A parsed DeepMimic motion (see the module docstring for units and conventions).

    Attributes:
        dts: ``(T,)`` time to the next frame in seconds (the last one is usually 0).
        root_pos: ``(T, 3)`` root position (Y-up, metres).
        root_rot: ``(T, 4)`` root orientation, unit quaternion ``(w, x, y, z)``.
        joint_rotations: spherical joints, name -> ``(T, 4)`` unit quaternions ``(w, x, y, z)`` (local).
        joint_angles: revolute joints (knees, elbows), name -> ``(T,)`` angle in radians about local z.
        loop: ``"wrap"`` (cyclic) or ``"none"``.
        path: the file read.
    """

    dts: np.ndarray
    root_pos: np.ndarray
    root_rot: np.ndarray
    joint_rotations: dict[str, np.ndarray]
    joint_angles: dict[str, np.ndarray]
    loop: str
    path: str = ""

    @property
    def n_frames(self) -> int:
        return len(self.dts)

    @property
    def fps(self) -> float:
        """Frames per second from the mean dt of all but the last frame (DeepMimic files use one constant dt)."""
        steps = self.dts[:-1] if self.n_frames > 1 else self.dts
        return 1.0 / float(np.mean(steps))

    @property
    def times(self) -> np.ndarray:
        """``(T,)`` time of each frame: 0, dt_0, dt_0 + dt_1, ..."""
        return np.concatenate([[0.0], np.cumsum(self.dts[:-1])])

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame, ``sum(dts)`` (DeepMimic's own clip length)."""
        return float(np.sum(self.dts))

    @property
    def is_cyclic(self) -> bool:
        return self.loop == "wrap"

    def local_quaternions(self) -> np.ndarray:
        """``(T, 13, 4)`` local rotations of :data:`JOINT_NAMES` (root = world orientation); 1-DoF angles become
        rotations about z: ``(cos(a / 2), 0, 0, sin(a / 2))``."""
        quats = [self.root_rot]
        for name, dof in JOINT_LAYOUT:
            if dof == 4:
                quats.append(self.joint_rotations[name])
            else:
                half = 0.5 * self.joint_angles[name]
                zeros = np.zeros_like(half)
                quats.append(np.stack([np.cos(half), zeros, zeros, np.sin(half)], axis=-1))
        return np.stack(quats, axis=1)


def _normalize(q: np.ndarray, path: str, name: str) -> np.ndarray:
    norms = np.linalg.norm(q, axis=-1, keepdims=True)
    bad = np.flatnonzero(norms[:, 0] < 1e-8)
    if len(bad):
        raise ValueError(f"{path}: frame {bad[0]}: zero quaternion for {name}")
    return q / norms


def _frames_array(frames: object, path: str) -> np.ndarray:
    """Check every frame is a list of FRAME_SIZE finite numbers and stack them into ``(T, 44)``."""
    if not isinstance(frames, list) or not frames:
        raise ValueError(f"{path}: 'Frames' must be a non-empty list of frames")
    for i, frame in enumerate(frames):
        if not isinstance(frame, list) or len(frame) != FRAME_SIZE:
            size = len(frame) if isinstance(frame, list) else type(frame).__name__
            raise ValueError(f"{path}: frame {i} has {size} values, expected {FRAME_SIZE}")
        bad = [v for v in frame if isinstance(v, bool) or not isinstance(v, int | float)]
        if bad:
            raise ValueError(f"{path}: frame {i} has a non-numeric value {bad[0]!r}")
    data = np.array(frames, dtype=np.float64)
    rows = np.flatnonzero(~np.isfinite(data).all(axis=1))
    if len(rows):
        raise ValueError(f"{path}: frame {rows[0]} has non-finite values")
    return data


def read_deepmimic(path: str | Path) -> DeepMimicClip:
    """Read a DeepMimic motion file.

    Raises:
        ValueError: naming the file (and frame, where one is at fault) for invalid JSON, a missing ``Frames``
            key, a bad ``Loop`` value, a frame with the wrong number of values or a non-numeric value,
            a non-positive dt (negative for the last frame) or a zero quaternion.
    """
    path = str(path)
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from None
    if not isinstance(doc, dict) or "Frames" not in doc:
        raise ValueError(f"{path}: missing 'Frames' key")
    loop = doc.get("Loop", "none")
    if loop not in LOOP_MODES:
        raise ValueError(f"{path}: 'Loop' must be one of {LOOP_MODES}, got {loop!r}")
    data = _frames_array(doc["Frames"], path)

    dts = data[:, 0]
    # Every frame but the last must move time forward; the last frame's dt is conventionally 0.
    bad_dt = np.flatnonzero(dts[:-1] <= 0) if len(dts) > 1 else np.flatnonzero(dts < 0)
    if len(bad_dt) or dts[-1] < 0:
        frame = bad_dt[0] if len(bad_dt) else len(dts) - 1
        raise ValueError(f"{path}: frame {frame} has dt {dts[frame]}, expected > 0 (>= 0 for the last frame)")
    rotations, angles = {}, {}
    col = 8
    for name, dof in JOINT_LAYOUT:
        if dof == 4:
            rotations[name] = _normalize(data[:, col : col + 4], path, name)
        else:
            angles[name] = data[:, col].copy()
        col += dof
    return DeepMimicClip(
        dts=dts.copy(),
        root_pos=data[:, 1:4].copy(),
        root_rot=_normalize(data[:, 4:8], path, "root"),
        joint_rotations=rotations,
        joint_angles=angles,
        loop=loop,
        path=path,
    )
