"""Biovision Hierarchy (BVH) motion files: parser and forward kinematics of the file's own skeleton.

Format::

    HIERARCHY
    ROOT Hips
    {
        OFFSET 0 0 0
        CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
        JOINT LeftHip
        {
            OFFSET 0.1 -0.05 0
            CHANNELS 3 Zrotation Yrotation Xrotation
            End Site
            {
                OFFSET 0 -0.4 0
            }
        }
    }
    MOTION
    Frames: 2
    Frame Time: 0.0333333
    <one line per frame: all channels, in hierarchy order, joint by joint>

Conventions used here:

* Joints are numbered in file order (depth first), so a parent always comes before its children; ``parents[k]``
  is -1 for a root (several ROOTs are allowed).
* ``OFFSET`` is the joint's rest position in its parent's frame (scaled by ``scale``).
* Rotation channels are in degrees and compose as *intrinsic* rotations in the order listed:
  ``Zrotation Yrotation Xrotation`` means ``R = Rz(a) Ry(b) Rx(c)`` (scipy ``Rotation.from_euler("ZYX", ...)``).
  Any subset and order is accepted.
* Position channels (root, or 6-channel non-root joints) give the joint's local translation and *replace* the
  ``OFFSET`` on the axes they cover (the Blender / MotionBuilder reading); axes without a channel keep the offset.
* End Sites are not joints: they carry no channels, so they are kept out of the joint list and stored separately
  as ``end_site_parents`` / ``end_site_offsets`` (:meth:`BVHClip.end_site_positions` places them).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from vision3d.body.kinematics import forward_kinematics_from_offsets
from vision3d.body.rotations import elementary_rotation

ROTATION_CHANNELS = ("Xrotation", "Yrotation", "Zrotation")
POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")
_AXIS = {"X": 0, "Y": 1, "Z": 2}


@dataclass
class BVHClip:
    """A parsed BVH file (see the module docstring for conventions).

    Attributes:
        names: joint names, file order.
        parents: ``(J,)`` parent index per joint, -1 for roots.
        offsets: ``(J, 3)`` rest offsets in the parent frame (already scaled).
        channels: per joint, the channel names in file order (``()`` for none).
        frame_time: seconds per frame.
        motion: ``(T, C)`` raw channel values; position channels already scaled, rotations in degrees.
        end_site_parents: ``(E,)`` joint index each End Site hangs from.
        end_site_offsets: ``(E, 3)`` End Site offsets in that joint's frame (scaled).
        path: the file read.
    """

    names: list[str]
    parents: np.ndarray
    offsets: np.ndarray
    channels: list[tuple[str, ...]]
    frame_time: float
    motion: np.ndarray
    end_site_parents: np.ndarray
    end_site_offsets: np.ndarray
    path: str = ""

    @property
    def n_joints(self) -> int:
        return len(self.names)

    @property
    def n_frames(self) -> int:
        return len(self.motion)

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    @cached_property
    def channel_starts(self) -> np.ndarray:
        """``(J,)`` column of each joint's first channel in :attr:`motion`."""
        counts = np.array([len(c) for c in self.channels], dtype=int)
        return np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int)

    def joint_channel(self, joint: int, channel: str) -> np.ndarray | None:
        """``(T,)`` values of one named channel of one joint, or None if the joint lacks it."""
        if channel not in self.channels[joint]:
            return None
        return self.motion[:, self.channel_starts[joint] + self.channels[joint].index(channel)]

    def local_rotations(self) -> np.ndarray:
        """``(T, J, 3, 3)`` local rotation matrices: the rotation channels composed intrinsically in listed order."""
        rotations = torch.eye(3, dtype=torch.float64).repeat(self.n_frames, self.n_joints, 1, 1)
        for j, names in enumerate(self.channels):
            for name in names:
                if name in ROTATION_CHANNELS:
                    # Intrinsic composition: each later channel multiplies on the right.
                    angle = torch.from_numpy(np.deg2rad(self.joint_channel(j, name)))
                    rotations[:, j] = rotations[:, j] @ elementary_rotation(_AXIS[name[0]], angle)
        return rotations.numpy()

    def local_translations(self) -> np.ndarray:
        """``(T, J, 3)`` local joint translations: OFFSET, overridden per axis by position channels."""
        translations = np.broadcast_to(self.offsets, (self.n_frames, self.n_joints, 3)).copy()
        for j, names in enumerate(self.channels):
            for name in names:
                if name in POSITION_CHANNELS:
                    translations[:, j, _AXIS[name[0]]] = self.joint_channel(j, name)
        return translations

    def root_positions(self) -> np.ndarray:
        """``(T, 3)`` position of joint 0 (the first root) in the world."""
        return self.local_translations()[:, 0]

    def forward_kinematics(self) -> tuple[np.ndarray, np.ndarray]:
        """World ``(positions (T, J, 3), rotations (T, J, 3, 3))`` of the BVH skeleton.

        :func:`vision3d.body.kinematics.forward_kinematics_from_offsets` with the per-frame local translations as
        bone offsets (joints with position channels have a different bone vector in every frame).
        """
        return self._chain(self.local_rotations(), self.local_translations())

    def _chain(self, rotations: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward kinematics of ``rotations (..., J, 3, 3)`` and ``offsets (..., J, 3)``. A BVH file may hold
        several ROOTs: a virtual root at the origin, with the identity rotation, joins them into one tree."""
        lead = rotations.shape[:-3]
        rotations = np.concatenate([np.broadcast_to(np.eye(3), (*lead, 1, 3, 3)), rotations], axis=-3)
        offsets = np.concatenate([np.zeros((*lead, 1, 3)), offsets], axis=-2)
        parents = (-1, *(int(p) + 1 for p in self.parents))  # the file's roots (-1) hang off the virtual root 0
        positions, world = forward_kinematics_from_offsets(*map(torch.from_numpy, (rotations, offsets)), parents)
        return positions[..., 1:, :].numpy(), world[..., 1:, :, :].numpy()

    def joint_positions(self) -> np.ndarray:
        """``(T, J, 3)`` world joint positions."""
        return self.forward_kinematics()[0]

    def end_site_positions(self) -> np.ndarray:
        """``(T, E, 3)`` world positions of the End Sites."""
        positions, rotations = self.forward_kinematics()
        p = self.end_site_parents
        return positions[:, p] + np.einsum("teij,ej->tei", rotations[:, p], self.end_site_offsets)

    def rest_positions(self) -> np.ndarray:
        """``(J, 3)`` world joint positions of the rest pose (offsets only, no channels)."""
        return self._chain(np.broadcast_to(np.eye(3), (self.n_joints, 3, 3)), self.offsets)[0]


class _Tokens:
    """Whitespace tokens of the HIERARCHY section with their 1-based line numbers, for error messages."""

    def __init__(self, path: str, lines: list[str], begin: int, end: int) -> None:
        self.path = path
        self.items = [(tok, n + 1) for n in range(begin, end) for tok in lines[n].split()]
        self.pos = 0
        self.last_line = end

    def error(self, message: str, line: int | None = None) -> ValueError:
        return ValueError(f"{self.path}:{line or self.last_line}: {message}")

    def peek(self) -> str | None:
        return self.items[self.pos][0] if self.pos < len(self.items) else None

    def next(self, what: str) -> tuple[str, int]:
        if self.pos >= len(self.items):
            raise self.error(f"unexpected end of HIERARCHY, expected {what}")
        self.pos += 1
        return self.items[self.pos - 1]

    def expect(self, word: str) -> int:
        tok, line = self.next(repr(word))
        if tok != word:
            raise self.error(f"expected {word!r}, got {tok!r}", line)
        return line

    def number(self, what: str) -> float:
        tok, line = self.next(what)
        try:
            value = float(tok)
        except ValueError:
            raise self.error(f"non-numeric {what}: {tok!r}", line) from None
        if not np.isfinite(value):
            raise self.error(f"non-finite {what}: {tok!r}", line)
        return value


@dataclass
class _Hierarchy:
    names: list[str]
    parents: list[int]
    offsets: list[list[float]]
    channels: list[tuple[str, ...]]
    end_parents: list[int]
    end_offsets: list[list[float]]


def _parse_joint(tokens: _Tokens, name: str, parent: int, h: _Hierarchy) -> None:
    """Parse ``{ OFFSET ... CHANNELS ... children }`` of one joint (its name already consumed)."""
    index = len(h.names)
    h.names.append(name)
    h.parents.append(parent)
    h.channels.append(())
    tokens.expect("{")
    tokens.expect("OFFSET")
    h.offsets.append([tokens.number(f"OFFSET of {name}") for _ in range(3)])
    if tokens.peek() == "CHANNELS":
        h.channels[index] = _parse_channels(tokens, name)
    while True:
        tok, line = tokens.next(f"'}}' closing {name}")
        if tok == "}":
            return
        if tok == "JOINT":
            child, _ = tokens.next("joint name")
            _parse_joint(tokens, child, index, h)
        elif tok == "End":
            tokens.expect("Site")
            tokens.expect("{")
            tokens.expect("OFFSET")
            h.end_parents.append(index)
            h.end_offsets.append([tokens.number(f"End Site OFFSET under {name}") for _ in range(3)])
            tokens.expect("}")
        else:
            raise tokens.error(f"unexpected {tok!r} in joint {name}", line)


def _parse_channels(tokens: _Tokens, name: str) -> tuple[str, ...]:
    line = tokens.expect("CHANNELS")
    count_tok, _ = tokens.next("channel count")
    if not count_tok.isdigit():
        raise tokens.error(f"channel count of {name} is not an integer: {count_tok!r}", line)
    names = []
    for _ in range(int(count_tok)):
        tok, tok_line = tokens.next(f"channel name of {name}")
        if tok not in ROTATION_CHANNELS + POSITION_CHANNELS:
            # Most likely the count is larger than the list: we ran into the next keyword.
            raise tokens.error(
                f"channel count mismatch for {name}: CHANNELS {count_tok} but got {tok!r} as channel {len(names) + 1}",
                tok_line,
            )
        names.append(tok)
    if tokens.peek() in ROTATION_CHANNELS + POSITION_CHANNELS:
        raise tokens.error(f"channel count mismatch for {name}: more names than CHANNELS {count_tok}", line)
    return tuple(names)


def _find_line(lines: list[str], word: str, path: str, start: int = 0) -> int:
    for n in range(start, len(lines)):
        if lines[n].strip().startswith(word):
            return n
    raise ValueError(f"{path}:{len(lines)}: missing {word} section")


def _header_value(lines: list[str], n: int, key: str, path: str) -> str:
    if n >= len(lines) or not lines[n].strip().startswith(key):
        raise ValueError(f"{path}:{n + 1}: expected '{key}' after MOTION")
    return lines[n].strip()[len(key) :].strip()


def _parse_motion(lines: list[str], motion_line: int, n_channels: int, path: str) -> tuple[float, np.ndarray]:
    """Parse ``Frames:``, ``Frame Time:`` and the frame lines after the MOTION keyword."""
    frames_tok = _header_value(lines, motion_line + 1, "Frames:", path)
    time_tok = _header_value(lines, motion_line + 2, "Frame Time:", path)
    try:
        n_frames, frame_time = int(frames_tok), float(time_tok)
    except ValueError:
        raise ValueError(f"{path}:{motion_line + 2}: bad Frames / Frame Time values") from None
    if n_frames < 1 or not frame_time > 0:
        raise ValueError(f"{path}:{motion_line + 2}: need Frames >= 1 and Frame Time > 0")
    rows = []
    for n in range(motion_line + 3, len(lines)):
        fields = lines[n].split()
        if not fields:
            continue  # trailing blank lines are common
        if len(fields) != n_channels:
            raise ValueError(f"{path}:{n + 1}: frame has {len(fields)} values, the hierarchy has {n_channels} channels")
        try:
            row = np.array(fields, dtype=np.float64)
        except ValueError:
            bad = next(f for f in fields if not _is_float(f))
            raise ValueError(f"{path}:{n + 1}: non-numeric value {bad!r}") from None
        if not np.all(np.isfinite(row)):
            raise ValueError(f"{path}:{n + 1}: non-finite value in frame")
        rows.append(row)
    if len(rows) != n_frames:
        raise ValueError(f"{path}:{len(lines)}: 'Frames: {n_frames}' but {len(rows)} frame lines")
    return frame_time, np.stack(rows)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_bvh(path: str | Path, scale: float = 1.0) -> BVHClip:
    """Read a BVH file; ``scale`` multiplies offsets and position channels (e.g. 0.056444 for CMU units to metres).

    Raises:
        ValueError: ``"<path>:<line>: <problem>"`` for a malformed file (missing HIERARCHY / MOTION, unbalanced
            braces, channel count mismatch, wrong number of values in a frame, non-numeric values).
    """
    path = str(path)
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    start = _find_line(lines, "HIERARCHY", path)
    motion_line = _find_line(lines, "MOTION", path, start + 1)
    tokens = _Tokens(path, lines, start + 1, motion_line)
    h = _Hierarchy([], [], [], [], [], [])
    while tokens.peek() is not None:
        tok, line = tokens.next("ROOT")
        if tok != "ROOT":
            raise tokens.error(f"expected ROOT, got {tok!r}", line)
        name, _ = tokens.next("root name")
        _parse_joint(tokens, name, -1, h)
    if not h.names:
        raise ValueError(f"{path}:{motion_line + 1}: no ROOT joint in HIERARCHY")
    n_channels = sum(len(c) for c in h.channels)
    frame_time, motion = _parse_motion(lines, motion_line, n_channels, path)

    is_position = np.array([name in POSITION_CHANNELS for names in h.channels for name in names], dtype=bool)
    motion[:, is_position] *= scale
    return BVHClip(
        names=h.names,
        parents=np.array(h.parents, dtype=int),
        offsets=np.array(h.offsets, dtype=np.float64) * scale,
        channels=h.channels,
        frame_time=frame_time,
        motion=motion,
        end_site_parents=np.array(h.end_parents, dtype=int),
        end_site_offsets=np.array(h.end_offsets, dtype=np.float64).reshape(-1, 3) * scale,
        path=path,
    )
