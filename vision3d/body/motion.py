"""A motion clip in SMPL parameters: per-frame joint rotations, root translation and a fixed body shape.

Conventions
-----------
* ``poses[t, k]`` is the axis-angle rotation (radians, rotation vector) of SMPL joint ``k`` (order of
  :data:`vision3d.body.skeleton.JOINT_NAMES`) relative to its parent at frame ``t``; ``poses[t, 0]`` is the
  global root orientation.
* ``trans[t]`` is the root translation in metres, in the same world frame as the root orientation. AMASS clips
  are Z-up; this class does not rotate anything, so the up axis is whatever the data uses
  (see :meth:`Motion.loop`, which needs to know it).
* Frame ``t`` is shown at time ``t / fps``; a clip of ``T`` frames lasts ``T / fps`` seconds (each frame covers
  one frame period), the AMASS convention.

Files
-----
:meth:`Motion.save` / :meth:`Motion.load` use ``.npz`` with AMASS keys: ``poses`` flattened to ``(T, 72)``,
``trans (T, 3)``, ``betas (B,)``, ``mocap_framerate`` (scalar), plus ``name`` / ``source`` strings and a
``cyclic`` flag. AMASS SMPL+H
files store ``poses (T, 156)`` = 22 body joints (66 numbers) + 2 x 15 finger joints; SMPL's two hand joints
(22, 23) have no counterpart there (entries 66:72 are the left index finger), so they are loaded as zero
rotations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vision3d.body.kinematics import forward_kinematics_axis_angle
from vision3d.body.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    matrix_to_axis_angle,
    quaternion_slerp,
    quaternion_to_axis_angle,
)
from vision3d.body.skeleton import MIRROR_INDEX, N_JOINTS, PARENTS

SMPL_POSE_DIM = 3 * N_JOINTS  # 72
SMPLH_POSE_DIM = 156
_SMPLH_BODY_DIM = 66  # root + 21 body joints shared by SMPL and SMPL+H

# Reflection across the x = 0 plane, M = diag(-1, 1, 1). A rotation R becomes M R M; its rotation vector is a
# pseudovector, so it maps to det(M) M a = (x, -y, -z).
_AXIS_ANGLE_MIRROR = np.array([1.0, -1.0, -1.0])
_TRANS_MIRROR = np.array([-1.0, 1.0, 1.0])


def _aa_to_quat(aa: np.ndarray) -> np.ndarray:
    return axis_angle_to_quaternion(torch.from_numpy(aa)).numpy()


def _quat_to_aa(q: np.ndarray) -> np.ndarray:
    return quaternion_to_axis_angle(torch.from_numpy(q)).numpy()


def _check_finite(name: str, value: np.ndarray) -> None:
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name} contains non-finite values")


_REPR_SOURCE_CHARS = 40  # a clip's source can be a whole licence line; the repr shows its start


@dataclass(repr=False)
class Motion:
    """An SMPL motion clip (see the module docstring for units, frames and file format).

    Attributes:
        fps: frames per second, > 0.
        poses: ``(T, 24, 3)`` axis-angle joint rotations, SMPL joint order (``(T, 72)`` is accepted and reshaped).
        trans: ``(T, 3)`` root translation in metres.
        betas: ``(B,)`` shape coefficients, zeros(10) by default.
        name: free-form clip name.
        source: provenance / licence of the data.
        cyclic: the clip is one cycle of a periodic motion (an *open* cycle: frame ``T`` would be frame 0 again),
            so players such as the humanoid environment may repeat it with :meth:`loop`.
    """

    fps: float
    poses: np.ndarray
    trans: np.ndarray
    betas: np.ndarray = field(default_factory=lambda: np.zeros(10))
    name: str = ""
    source: str = ""
    cyclic: bool = False

    def __post_init__(self) -> None:
        self.fps = float(self.fps)
        if not np.isfinite(self.fps) or self.fps <= 0:
            raise ValueError(f"fps must be a finite number > 0, got {self.fps}")
        self.poses = np.asarray(self.poses, dtype=np.float64)
        if self.poses.ndim == 2 and self.poses.shape[1] == SMPL_POSE_DIM:
            self.poses = self.poses.reshape(-1, N_JOINTS, 3)
        if self.poses.ndim != 3 or self.poses.shape[1:] != (N_JOINTS, 3) or len(self.poses) == 0:
            raise ValueError(f"poses must have shape (T, {N_JOINTS}, 3) with T >= 1, got {self.poses.shape}")
        self.trans = np.asarray(self.trans, dtype=np.float64)
        if self.trans.shape != (len(self.poses), 3):
            raise ValueError(f"trans must have shape ({len(self.poses)}, 3) to match poses, got {self.trans.shape}")
        self.betas = np.asarray(self.betas, dtype=np.float64)
        if self.betas.ndim != 1:
            raise ValueError(f"betas must be 1-D, got shape {self.betas.shape}")
        for name in ("poses", "trans", "betas"):
            _check_finite(name, getattr(self, name))

    # ------------------------------------------------------------------------------------------------ basics

    @property
    def n_frames(self) -> int:
        return len(self.poses)

    @property
    def duration(self) -> float:
        """Length in seconds, ``n_frames / fps``."""
        return self.n_frames / self.fps

    def __repr__(self) -> str:
        """One line: name, frames, fps, duration, joints, cyclic, array shapes, the start of the source (the
        dataclass default would print every array)."""
        source = self.source
        if len(source) > _REPR_SOURCE_CHARS:
            source = source[: _REPR_SOURCE_CHARS - 3] + "..."
        return (
            f"Motion(name={self.name!r}, frames={self.n_frames}, fps={self.fps:g}, duration={self.duration:.2f} s, "
            f"joints={self.poses.shape[1]}, cyclic={self.cyclic}, poses={self.poses.shape}, trans={self.trans.shape}, "
            f"betas={self.betas.shape}, source={source!r})"
        )

    def _with(self, **changes) -> Motion:
        """A copy with some fields replaced (arrays are copied so clips never share memory)."""
        base = {"poses": self.poses.copy(), "trans": self.trans.copy(), "betas": self.betas.copy()}
        return dataclasses.replace(self, **{**base, **changes})

    # ------------------------------------------------------------------------------------------------ files

    def save(self, path: str | Path) -> None:
        """Write an AMASS-style compressed ``.npz`` (``poses`` as ``(T, 72)``); strings as numpy unicode arrays."""
        np.savez_compressed(
            path,
            poses=self.poses.reshape(self.n_frames, SMPL_POSE_DIM),
            trans=self.trans,
            betas=self.betas,
            mocap_framerate=np.float64(self.fps),
            name=np.str_(self.name),
            source=np.str_(self.source),
            cyclic=np.bool_(self.cyclic),
        )

    @classmethod
    def load(cls, path: str | Path) -> Motion:
        """Read an ``.npz`` written by :meth:`save` or an AMASS SMPL / SMPL+H file (see the module docstring).

        Raises:
            ValueError: naming the file and the key if a key is missing or has the wrong shape.
        """
        with np.load(path, allow_pickle=False) as data:
            poses = _pose_key(data, path)
            trans = _required(data, path, "trans")
            fps_key = "mocap_frame_rate" if "mocap_frame_rate" in data else "mocap_framerate"  # SMPL-X AMASS spelling
            fps = _required(data, path, fps_key)
            betas = data["betas"] if "betas" in data else np.zeros(10)
            name = str(data["name"]) if "name" in data else Path(path).stem
            source = str(data["source"]) if "source" in data else ""
            cyclic = bool(data["cyclic"]) if "cyclic" in data else False
        if fps.size != 1:
            raise ValueError(f"{path}: key '{fps_key}' must be a scalar, got shape {fps.shape}")
        if trans.shape != (len(poses), 3):
            raise ValueError(f"{path}: key 'trans' must have shape ({len(poses)}, 3), got {trans.shape}")
        try:
            return cls(fps=float(fps), poses=poses, trans=trans, betas=betas, name=name, source=source, cyclic=cyclic)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err

    # ------------------------------------------------------------------------------------------------ editing

    def resample(self, fps: float, antialias: bool = False) -> Motion:
        """Resample to ``fps``: slerp between neighbouring frames' joint quaternions, lerp on translation.

        New frame ``i`` sits at time ``i / fps`` and frames are produced while that time stays within the original
        span ``[0, (T - 1) / fps_old]`` (no extrapolation), so 30 -> 60 Hz turns ``T`` frames into ``2T - 1`` and
        60 -> 30 Hz brings them back exactly. The same rate returns an unchanged copy.

        ``antialias``: when lowering the rate, first :meth:`smoothed`, so that the joint rotations reach the new rate
        blurred by a Gaussian of 0.75 new frames. Sampling alone folds motion faster than the new rate can show (a
        mocap marker's one-frame flick) into the result. Such a Gaussian keeps 0.06 of the new Nyquist frequency
        (``exp(-2 pi^2 0.75^2 / 4)``) and, for a 30 Hz result, 0.64 at 6 Hz (gait labs low-pass marker data near 6
        Hz). Counting the original's own sampling as 0.75 of its frames, the added blur is ``0.75 sqrt(r^2 - 1)``
        original frames for a rate ratio ``r``: 1.3 for 60 -> 30 Hz, and none for a clip stored at 30.0012 Hz.
        """
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if fps == self.fps or self.n_frames == 1:
            return self._with(fps=float(fps))
        if antialias and fps < self.fps:
            return self.smoothed(0.75 * np.sqrt((self.fps / fps) ** 2 - 1.0)).resample(fps)
        # Original-frame coordinate of each new frame; the epsilon keeps an exact end frame despite rounding.
        n_new = int(np.floor((self.n_frames - 1) * fps / self.fps + 1e-9)) + 1
        u = np.arange(n_new) * (self.fps / fps)
        i0 = np.minimum(np.floor(u + 1e-9).astype(int), self.n_frames - 2)
        alpha = np.clip(u - i0, 0.0, 1.0)

        quats = _aa_to_quat(self.poses)  # (T, J, 4)
        t = torch.from_numpy(np.broadcast_to(alpha[:, None], (n_new, N_JOINTS)).copy())
        q = quaternion_slerp(torch.from_numpy(quats[i0]), torch.from_numpy(quats[i0 + 1]), t).numpy()
        trans = (1.0 - alpha)[:, None] * self.trans[i0] + alpha[:, None] * self.trans[i0 + 1]
        return self._with(fps=float(fps), poses=_quat_to_aa(q), trans=trans)

    def smoothed(self, sigma: float) -> Motion:
        """The joint rotations low-passed by a Gaussian of ``sigma`` frames: each joint's quaternions, signs made
        continuous and renormalised after filtering (close to filtering on the rotation manifold when neighbouring
        frames differ by a few degrees). The root's path stays as it is, so a cyclic clip keeps the displacement
        per cycle that :meth:`loop` reads from its end frames. A cyclic clip's rotations are filtered as its loop
        (frames before the first are the previous cycle's last), so the seam stays continuous; other clips repeat
        their end frames."""
        from scipy.ndimage import gaussian_filter1d

        if not sigma >= 0:
            raise ValueError(f"sigma must be >= 0 frames, got {sigma}")
        n = self.n_frames
        if 4.0 * sigma < 0.5 or n == 1:  # the kernel's 4-sigma support is under half a frame: the identity
            return self._with()
        quats = _aa_to_quat(np.concatenate([self.poses] * 3) if self.cyclic else self.poses)
        flips = np.cumsum(np.sum(quats[1:] * quats[:-1], axis=-1) < 0, axis=0) % 2  # q and -q: the same rotation
        quats[1:] *= np.where(flips, -1.0, 1.0)[..., None]
        quats = gaussian_filter1d(quats, sigma, axis=0, mode="nearest")
        quats /= np.linalg.norm(quats, axis=-1, keepdims=True)
        return self._with(poses=_quat_to_aa(quats[n : 2 * n] if self.cyclic else quats))

    def clip(
        self,
        start_s: float | None = None,
        end_s: float | None = None,
        *,
        start_frame: int | None = None,
        end_frame: int | None = None,
    ) -> Motion:
        """Frames in ``[start, end)``, given in seconds (rounded to the nearest frame) or in frames, not both.

        ``clip(0.0, 1.0)`` of a 30 fps clip keeps frames 0..29 (duration 1 s). Missing bounds mean the clip ends.
        """
        if (start_s is not None or end_s is not None) and (start_frame is not None or end_frame is not None):
            raise ValueError("give the clip bounds in seconds or in frames, not both")
        start = start_frame if start_s is None else int(round(start_s * self.fps))
        end = end_frame if end_s is None else int(round(end_s * self.fps))
        start = 0 if start is None else start
        end = self.n_frames if end is None else end
        if not 0 <= start < end <= self.n_frames:
            raise ValueError(f"clip bounds [{start}, {end}) frames are empty or outside [0, {self.n_frames})")
        whole = start == 0 and end == self.n_frames
        return self._with(
            poses=self.poses[start:end].copy(), trans=self.trans[start:end].copy(), cyclic=self.cyclic and whole
        )

    def mirror(self, world_axis: int = 0) -> Motion:
        """Left/right mirror image: a reflection of the whole scene across the world plane ``x[world_axis] = 0``.

        The body is mirrored about SMPL's own left/right axis (canonical x; the SMPL template is symmetric about
        x = 0): joint ``k`` takes the rotation of its mirror joint (``MIRROR_INDEX``) conjugated by
        ``M_c = diag(-1, 1, 1)``, i.e. rotation vector ``(x, y, z) -> (x, -y, -z)``. The root orientation, which maps
        canonical to world coordinates, becomes ``M_w R M_c`` with ``M_w`` the world reflection, and ``trans`` is
        reflected by ``M_w``. Pick the world axis along which the character's left points to keep its heading:
        ``0`` for AMASS-style clips of a body facing +-y or +-z, ``1`` for the Z-up clips of
        :mod:`vision3d.body.retarget`, which face +x. Caveat: the SMPL pelvis rest joint is a few millimetres off
        x = 0, so mesh vertices mirror up to that offset.
        """
        if world_axis not in (0, 1, 2):
            raise ValueError(f"world_axis must be 0, 1 or 2, got {world_axis}")
        poses = self.poses[:, list(MIRROR_INDEX)] * _AXIS_ANGLE_MIRROR
        world = np.ones(3)
        world[world_axis] = -1.0
        root = axis_angle_to_matrix(torch.from_numpy(self.poses[:, 0])).numpy()
        root = world[:, None] * root * _TRANS_MIRROR[None, :]  # M_w R M_c with diagonal M_w, M_c
        poses[:, 0] = matrix_to_axis_angle(torch.from_numpy(root)).numpy()
        return self._with(poses=poses, trans=self.trans * world)

    def loop(self, n_cycles: int, up_axis: int = 2, closed: bool = False) -> Motion:
        """Repeat a cyclic clip ``n_cycles`` times, carrying the root forward in the horizontal plane.

        Two clip conventions:

        * ``closed=False`` (default), an *open* cycle: frame ``T`` would be frame 0 of the next cycle. The result
          has ``n_cycles * T`` frames; one cycle's displacement is the mean per-frame velocity times ``T``,
          ``d = (trans[-1] - trans[0]) * T / (T - 1)``.
        * ``closed=True``: the last frame is frame 0 of the next cycle (as DeepMimic's wrap clips intend). Each
          cycle after the first drops that duplicate, giving ``(n_cycles - 1) * (T - 1) + T`` frames, and
          ``d = trans[-1] - trans[0]``.

        Cycle ``c`` is shifted by ``c * d`` with ``d``'s vertical component (``up_axis``: 2 = Z-up as in AMASS,
        1 = Y-up) zeroed so height does not drift; a constant-velocity clip continues linearly. Heading is not
        handled: rotations repeat unchanged, so a clip that turns will not keep turning, and ``d`` is not rotated.
        """
        if n_cycles < 1:
            raise ValueError(f"n_cycles must be >= 1, got {n_cycles}")
        if up_axis not in (0, 1, 2):
            raise ValueError(f"up_axis must be 0, 1 or 2, got {up_axis}")
        n = self.n_frames
        if closed and n < 2:
            raise ValueError("a closed cycle needs at least 2 frames")
        if n == 1:
            step = np.zeros(3)
        else:
            step = (self.trans[-1] - self.trans[0]) * (1.0 if closed else n / (n - 1))
        step[up_axis] = 0.0
        period = n - 1 if closed else n
        # Frame i of the result is frame i mod period of cycle i // period (the final frame of a closed loop is
        # frame T - 1 of the last cycle, i.e. frame 0 of a cycle n_cycles that is not otherwise played).
        index = np.arange(n_cycles * period + (1 if closed else 0))
        cycle, frame = np.divmod(index, period)
        return self._with(poses=self.poses[frame], trans=self.trans[frame] + cycle[:, None] * step)


def _required(data, path: str | Path, key: str) -> np.ndarray:
    if key not in data:
        raise ValueError(f"{path}: missing key '{key}' (found {sorted(data.files)})")
    return data[key]


def _pose_key(data, path: str | Path) -> np.ndarray:
    """``poses`` as ``(T, 72)`` SMPL; SMPL+H ``(T, 156)`` keeps the 22 body joints and zeroes SMPL's hand joints."""
    poses = _required(data, path, "poses")
    if poses.ndim == 3 and poses.shape[1:] == (N_JOINTS, 3):
        poses = poses.reshape(len(poses), SMPL_POSE_DIM)
    if poses.ndim != 2 or poses.shape[1] not in (SMPL_POSE_DIM, SMPLH_POSE_DIM) or len(poses) == 0:
        raise ValueError(f"{path}: key 'poses' must have shape (T, 72) or (T, 156), got {poses.shape}")
    if poses.shape[1] == SMPLH_POSE_DIM:
        body = poses[:, :_SMPLH_BODY_DIM]
        poses = np.concatenate([body, np.zeros((len(poses), SMPL_POSE_DIM - _SMPLH_BODY_DIM))], axis=1)
    return poses


def motion_joints(
    motion: Motion, rest_joints: np.ndarray | torch.Tensor, parents: Sequence[int] = PARENTS
) -> np.ndarray:
    """World joint positions ``(T, J, 3)`` of a :class:`Motion`, by forward kinematics.

    ``rest_joints (J, 3)`` are the rest-pose joint locations (SMPL: ``J(beta)``, e.g. ``model(betas).joints[0]``);
    the root lands at ``rest_joints[0] + motion.trans[t]``, as in SMPL. No mesh is built.
    """
    rest = torch.as_tensor(rest_joints, dtype=torch.float64)
    poses = torch.from_numpy(np.asarray(motion.poses, dtype=np.float64))
    if rest.shape != (poses.shape[1], 3):
        raise ValueError(f"rest_joints must have shape ({poses.shape[1]}, 3), got {tuple(rest.shape)}")
    trans = torch.from_numpy(np.asarray(motion.trans, dtype=np.float64))
    positions, _ = forward_kinematics_axis_angle(poses, rest, parents, trans)
    return positions.numpy()
