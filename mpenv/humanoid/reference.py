"""The reference motion in the simulator's coordinates: everything the imitation reward compares against.

A :class:`~vision3d.body.motion.Motion` (SMPL axis-angle, Z-up world) is converted once, at the policy rate:

* root: ``qpos[0:3]`` = pelvis position ``trans + J_0``; ``qpos[3:7]`` = the pelvis body's world orientation
  ``Q_0 = R_0 W^T`` (``R_0`` maps SMPL canonical to world, and the pelvis body frame is ``W`` at rest);
* hinges: joint ``k``'s local rotation in MuJoCo body axes is ``W L_k W^T``, decomposed into the intrinsic "XYZ"
  angles of its three hinges (:mod:`mpenv.humanoid.mjcf`), on the Euler branch that is continuous in time and
  starts inside the joint limits (:func:`continuous_euler`: the principal branch alone flips a knee bent past
  90 deg to ``(180, 180 - flexion, 180)`` deg, far outside its limits, with a jump of pi per frame);
* velocities ``qvel`` by finite differences of consecutive ``qpos`` (``mj_differentiatePos``: exact on the free
  joint's quaternion), the last frame repeating the one before;
* the root height lifted (or lowered) so that the lowest geom over the clip just touches the floor: the SMPL
  retargeting grounds the foot *joints*, but a heel or toe box can reach lower, and a reference that penetrates
  the floor kicks the character up when it starts there;
* body positions and orientations, end effectors and the centre of mass by MuJoCo's own kinematics of those
  ``qpos`` on the character model, so the simulator measures the reference exactly as it measures itself.

A cyclic clip is stored as one cycle plus ``cycle_shift``, the horizontal root displacement per cycle: frame
``c T + i`` is frame ``i`` moved by ``c * cycle_shift`` (as :meth:`Motion.loop` does), so an episode can run for
any number of cycles. The velocities of a cycle's last frame are differences to the next cycle's first frame.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from dataclasses import dataclass

import mujoco
import numpy as np
import torch

from mpenv.humanoid.mjcf import (
    ACTUATED_JOINTS,
    ACTUATED_SMPL_INDEX,
    BODY_ORDER,
    HINGE_NAMES,
    JOINT_LIMITS_DEG,
    POLICY_HZ,
    SMPL_TO_WORLD,
    build_humanoid_xml,
)
from vision3d.body.motion import Motion
from vision3d.body.rotations import axis_angle_to_matrix, matrix_to_euler, matrix_to_quaternion

__all__ = [
    "Reference",
    "ReferenceQuality",
    "body_parent_ids",
    "build_reference",
    "continuous_euler",
    "hinge_limits",
    "local_rotations",
    "main",
    "motion_qpos",
    "quality_report",
    "reference_quality",
    "rotation_angles",
]


@dataclass
class Reference:
    """Reference arrays at the policy rate; frame ``i`` is shown at time ``i / fps``.

    Attributes (MuJoCo body order, :data:`~mpenv.humanoid.mjcf.BODY_ORDER`):
        qpos: ``(T, 76)``; qvel: ``(T, 75)``.
        body_pos: ``(T, 24, 3)`` world positions; body_rot: ``(T, 24, 3, 3)`` world rotation matrices.
        local_rot: ``(T, 24, 3, 3)`` joint rotations relative to the parent body (the root's is its world one).
        com: ``(T, 3)`` whole-body centre of mass.
        cycle_frames: frames per cycle of a cyclic clip (start phases are drawn from ``[0, cycle_frames)``);
            for a non-cyclic clip, the number of frames of the clip.
        cycle_shift: ``(3,)`` root displacement per cycle (zero vertical component; zeros if not cyclic).
        cyclic: whether the clip repeats.
    """

    fps: float
    qpos: np.ndarray
    qvel: np.ndarray
    body_pos: np.ndarray
    body_rot: np.ndarray
    local_rot: np.ndarray
    com: np.ndarray
    cycle_frames: int
    cycle_shift: np.ndarray
    cyclic: bool

    @property
    def n_frames(self) -> int:
        return len(self.qpos)


def hinge_limits() -> tuple[np.ndarray, np.ndarray]:
    """``(lower, upper)``, each ``(23, 3)`` radians: the hinge ranges of :data:`JOINT_LIMITS_DEG` in qpos order."""
    limits = np.radians([JOINT_LIMITS_DEG[joint] for joint in ACTUATED_JOINTS])  # (23, 3, 2)
    return limits[..., 0], limits[..., 1]


def _limit_violation(angles: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """How far each angle lies outside ``[lower, upper]`` (0 inside), elementwise."""
    return np.maximum(lower - angles, 0.0) + np.maximum(angles - upper, 0.0)


def _least_then_smallest(violation: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Index along axis 0 of the candidate with the least ``violation``, ties broken by the least ``size``."""
    return np.argmin(np.where(violation <= violation.min(0) + 1e-12, size, np.inf), axis=0)


def continuous_euler(angles: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Time-continuous, limit-aware choice among the equivalent intrinsic Tait-Bryan angles of each frame.

    A rotation ``R = R_1(a) R_2(b) R_3(c)`` about three distinct axes has two decompositions modulo ``2 pi``:
    ``(a, b, c)`` and ``(a + pi, pi - b, c + pi)`` (``R_1(pi) R_2(pi) = R_3(pi)`` and conjugating by a half turn
    negates the middle angle), and each angle may move by any multiple of ``2 pi``. ``matrix_to_euler`` returns
    the principal one, ``b`` in ``[-pi/2, pi/2]``; a knee flexed past 90 deg (its middle hinge) then comes out as
    ``(+-pi, pi - flexion, +-pi)`` and flips by ``pi`` on every hinge the frame it crosses 90 deg. The rule here:

    * frame 0 takes, of both branches with each angle shifted by ``2 pi k`` (``k`` in {-1, 0, 1}), the
      decomposition with the least limit violation ``sum_i max(lower_i - x_i, 0) + max(x_i - upper_i, 0)``, ties
      broken by the smallest ``|x|`` (the limits lie inside ``[-pi, pi]``, so wider shifts never violate less);
    * every later frame takes, of both branches with every ``2 pi`` shift, the decomposition nearest (Euclidean
      over the three angles) to the one chosen for the frame before. For a fixed branch the nearest shift is the
      per-angle rounding ``x + 2 pi round((x_prev - x) / 2 pi)``, so only the two branches are compared.

    Args:
        angles: ``(T, ..., 3)`` Euler angles of ``T`` frames (any branch), radians.
        lower, upper: limits broadcastable to ``angles[0]``, radians.
    Returns:
        ``(T, ..., 3)`` angles of the same rotations.
    """
    angles = np.asarray(angles, dtype=np.float64)
    a, b, c = np.moveaxis(angles, -1, 0)
    flipped = np.stack([a + np.pi, np.pi - b, c + np.pi], axis=-1)
    branches = np.remainder(np.stack([angles, flipped]) + np.pi, 2 * np.pi) - np.pi  # (2, T, ..., 3) in [-pi, pi)
    first = branches[:, 0]  # (2, ..., 3)
    shifted = first[None] + 2 * np.pi * np.array([-1.0, 0.0, 1.0]).reshape(3, *(1,) * first.ndim)
    # Per angle: the shift with the least violation, then the smaller angle (separable, so optimal per branch).
    axis_best = _least_then_smallest(_limit_violation(shifted, lower, upper), np.abs(shifted))  # (2, ..., 3)
    first = np.take_along_axis(shifted, axis_best[None], axis=0)[0]
    branch = _least_then_smallest(_limit_violation(first, lower, upper).sum(-1), np.sum(first**2, -1))  # (...)
    out = np.empty_like(angles)
    out[0] = np.take_along_axis(first, branch[None, ..., None], axis=0)[0]
    for t in range(1, len(angles)):
        previous = out[t - 1]
        candidates = branches[:, t] + 2 * np.pi * np.round((previous - branches[:, t]) / (2 * np.pi))
        distance = np.sum((candidates - previous) ** 2, axis=-1)  # (2, ...)
        out[t] = np.where((distance[1] < distance[0])[..., None], candidates[1], candidates[0])
    return out


def motion_qpos(motion: Motion, rest_joints: np.ndarray) -> np.ndarray:
    """``(T, 76)`` qpos of the character following ``motion`` (root position, root quaternion, 69 hinge angles).

    ``rest_joints`` are the SMPL rest joints ``J(beta)`` in canonical coordinates (the pelvis is at ``trans + J_0``).
    The hinge angles are the time-continuous, limit-aware Euler branch (:func:`continuous_euler`).
    """
    rotations = axis_angle_to_matrix(torch.from_numpy(motion.poses))  # (T, 24, 3, 3), canonical frames
    w = torch.tensor(SMPL_TO_WORLD)
    root_quat = matrix_to_quaternion(rotations[:, 0] @ w.T)
    hinged = rotations[:, list(ACTUATED_SMPL_INDEX)]
    principal = matrix_to_euler(w @ hinged @ w.T, "XYZ").numpy()  # (T, 23, 3), qpos order
    angles = continuous_euler(principal, *hinge_limits())
    pelvis = motion.trans + rest_joints[0]
    return np.concatenate([pelvis, root_quat.numpy(), angles.reshape(len(angles), -1)], axis=1)


def local_rotations(body_rot: np.ndarray, parent_ids: np.ndarray) -> np.ndarray:
    """Rotation of each body relative to its parent, ``R_parent^T R_body`` (the root keeps its world rotation).

    ``body_rot (..., 24, 3, 3)`` world rotation matrices in body order; ``parent_ids (24,)`` the parent's index
    in that order (-1 for the root). Matrices rather than quaternions: one batched matmul, and the pose error
    follows from a trace (:func:`rotation_angles`).
    """
    local = np.swapaxes(body_rot[..., np.maximum(parent_ids, 0), :, :], -1, -2) @ body_rot
    for root in _roots(tuple(parent_ids.tolist())):  # one, the pelvis; cached, as this runs on every env step
        local[..., root, :, :] = body_rot[..., root, :, :]
    return local


@functools.lru_cache(maxsize=8)
def _roots(parent_ids: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(i for i, parent in enumerate(parent_ids) if parent < 0)


def rotation_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle of ``a^T b`` for stacks of rotation matrices: ``arccos((tr(a^T b) - 1) / 2)``, the angle of the
    quaternion difference ``q_a^-1 q_b``."""
    trace = (a * b).sum(axis=(-1, -2))
    return np.arccos(np.minimum(np.maximum(0.5 * (trace - 1.0), -1.0), 1.0))  # (np.clip is slower)


def body_parent_ids(model: mujoco.MjModel) -> np.ndarray:
    """``(24,)`` parent of each character body in :data:`BODY_ORDER` indexing (-1 for the pelvis)."""
    ids = [model.body(name).id for name in BODY_ORDER]
    position = {body_id: i for i, body_id in enumerate(ids)}
    return np.array([position.get(int(model.body_parentid[b]), -1) for b in ids])


def _lowest_point(model: mujoco.MjModel, qpos: np.ndarray) -> float:
    """Lowest height any box or capsule of the character reaches over the frames ``qpos``."""
    data = mujoco.MjData(model)
    lowest = np.inf
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=float)
    for t in range(len(qpos)):
        data.qpos[:] = qpos[t]
        mujoco.mj_kinematics(model, data)
        for g in range(model.ngeom):
            kind, size = model.geom_type[g], model.geom_size[g]
            centre, axes = data.geom_xpos[g], data.geom_xmat[g].reshape(3, 3)
            if kind == mujoco.mjtGeom.mjGEOM_BOX:
                low = np.min(centre[2] + (corners * size) @ axes[2])
            elif kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
                low = centre[2] - abs(axes[2, 2]) * size[1] - size[0]
            elif kind == mujoco.mjtGeom.mjGEOM_SPHERE:
                low = centre[2] - size[0]
            else:  # the floor plane
                continue
            lowest = min(lowest, low)
    return float(lowest)


@dataclass
class ReferenceQuality:
    """How well a reference fits the character (:func:`reference_quality`); rates in rad/s, errors in metres.

    Attributes:
        frames: frames of the reference (one cycle of a cyclic clip).
        peak_rate: the largest ``|qvel|`` of any hinge; peak_hinge: that hinge's name, peak_frame: its frame.
        outside_fraction: fraction of frames with any hinge outside its limits.
        outside_by_joint: joint -> fraction of frames with one of its three hinges outside the limits.
        clamp_mpjpe_mean, clamp_mpjpe_max: mean joint (body) position error between the reference and the
            reference with every hinge angle clamped to its limits, mean and max over frames.
    """

    frames: int
    peak_rate: float
    peak_hinge: str
    peak_frame: int
    outside_fraction: float
    outside_by_joint: dict[str, float]
    clamp_mpjpe_mean: float
    clamp_mpjpe_max: float


def reference_quality(reference: Reference, model: mujoco.MjModel) -> ReferenceQuality:
    """Measure ``reference`` against the limits of ``model`` (the character it was built for).

    The clamping cost is what a PD target clamped to the joint ranges (as the env does) loses: the body positions
    of MuJoCo's kinematics for ``clip(qpos_hinges, lower, upper)`` against the reference's own.
    """
    hinges = reference.qpos[:, 7:]
    lower, upper = (limit.reshape(-1) for limit in hinge_limits())
    rates = np.abs(reference.qvel[:, 6:])
    frame, hinge = np.unravel_index(np.argmax(rates), rates.shape)
    outside = ((hinges < lower) | (hinges > upper)).reshape(len(hinges), len(ACTUATED_JOINTS), 3).any(-1)
    clamped = reference.qpos.copy()
    clamped[:, 7:] = np.clip(hinges, lower, upper)
    data = mujoco.MjData(model)
    ids = np.array([model.body(name).id for name in BODY_ORDER])
    error = np.empty(len(clamped))
    for t in range(len(clamped)):
        data.qpos[:] = clamped[t]
        mujoco.mj_kinematics(model, data)
        error[t] = np.linalg.norm(data.xpos[ids] - reference.body_pos[t], axis=-1).mean()
    return ReferenceQuality(
        frames=reference.n_frames,
        peak_rate=float(rates[frame, hinge]),
        peak_hinge=HINGE_NAMES[hinge],
        peak_frame=int(frame),
        outside_fraction=float(outside.any(-1).mean()),
        outside_by_joint={joint: float(f) for joint, f in zip(ACTUATED_JOINTS, outside.mean(0), strict=True)},
        clamp_mpjpe_mean=float(error.mean()),
        clamp_mpjpe_max=float(error.max()),
    )


def quality_report(clips: list[str] | None = None, worst: int = 3) -> str:
    """The reference-quality table of the shipped clips (default all), one line per clip, at the env's 30 fps."""
    from vision3d.body.clips import clip_names, load_clip
    from vision3d.body.retarget import smpl_rest_joints

    model = mujoco.MjModel.from_xml_string(build_humanoid_xml())
    rest = smpl_rest_joints()
    lines = [
        f"{'clip':10s} {'frames':>6s}  {'peak hinge rate':28s} {'outside':>7s}  {'clamping MPJPE mm':>17s}  "
        "worst joints (fraction of frames outside)"
    ]
    for name in clips or clip_names():
        q = reference_quality(build_reference(load_clip(name), model, rest, POLICY_HZ), model)
        joints = sorted(q.outside_by_joint.items(), key=lambda item: -item[1])[:worst]
        named = ", ".join(f"{joint} {f:.2f}" for joint, f in joints if f > 0) or "-"
        rate = f"{q.peak_rate:5.1f} rad/s {q.peak_hinge}"
        lines.append(
            f"{name:10s} {q.frames:6d}  {rate:28s} {q.outside_fraction:7.2f}  "
            f"{1e3 * q.clamp_mpjpe_mean:7.2f} (max {1e3 * q.clamp_mpjpe_max:5.1f})  {named}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m mpenv.humanoid.reference --report [CLIP ...]``; returns the exit status (2 on bad input)."""
    from vision3d.body.clips import clip_names

    parser = argparse.ArgumentParser(
        prog="python -m mpenv.humanoid.reference",
        description="Reference quality of the shipped motion clips, converted as the HumanoidMimic env does (30 fps):"
        " per clip the number of frames, the peak hinge angular rate (rad/s) and its hinge, the fraction of frames"
        " with any hinge angle outside its joint limits and the joints most often outside, and what clamping the"
        " hinge angles to the limits costs in mean body position error (MPJPE, mm; mean and max over frames).",
    )
    parser.add_argument("--report", action="store_true", help="print the reference-quality table")
    parser.add_argument("clips", nargs="*", metavar="CLIP", help=f"clips to report (default all: {clip_names()})")
    args = parser.parse_args(argv)
    unknown = [name for name in args.clips if name not in clip_names()]
    if unknown or not args.report:
        error = f"CLIP: unknown clip {unknown[0]!r}; shipped clips: {clip_names()}" if unknown else "pass --report"
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    print(quality_report(args.clips))
    return 0


def build_reference(motion: Motion, model: mujoco.MjModel, rest_joints: np.ndarray, fps: float) -> Reference:
    """Convert ``motion`` for the character ``model`` (no ghost) at ``fps`` frames per second.

    ``rest_joints``: the SMPL rest joints ``J(beta)`` in canonical coordinates
    (:func:`vision3d.body.retarget.smpl_rest_joints`).
    """
    clip = motion.resample(fps, antialias=True) if not math.isclose(motion.fps, fps) else motion
    cycle = clip.n_frames
    cyclic = motion.cyclic and cycle > 1
    qpos = motion_qpos(clip.loop(2) if cyclic else clip, rest_joints)  # two cycles: the seam's velocities
    if qpos.shape[1] != model.nq:
        raise ValueError(f"the reference has {qpos.shape[1]} qpos per frame but the model has nq={model.nq}")

    qpos[:, 2] -= _lowest_point(model, qpos)  # feet on, not in, the floor: penetration would kick the character
    data = mujoco.MjData(model)
    ids = np.array([model.body(name).id for name in BODY_ORDER])
    n = len(qpos)
    body_pos, body_rot, com = np.empty((n, len(ids), 3)), np.empty((n, len(ids), 3, 3)), np.empty((n, 3))
    for t in range(n):
        data.qpos[:] = qpos[t]
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        body_pos[t], com[t] = data.xpos[ids], data.subtree_com[ids[0]]
        body_rot[t] = data.xmat[ids].reshape(-1, 3, 3)

    qvel = np.empty((n, model.nv))
    for t in range(n - 1):
        mujoco.mj_differentiatePos(model, qvel[t], 1.0 / fps, qpos[t], qpos[t + 1])
    qvel[-1] = qvel[-2] if n > 1 else 0.0
    shift = np.zeros(3)
    if cyclic:
        shift[:2] = qpos[cycle, :2] - qpos[0, :2]
    keep = slice(0, cycle)
    return Reference(
        fps=fps,
        qpos=qpos[keep],
        qvel=qvel[keep],
        body_pos=body_pos[keep],
        body_rot=body_rot[keep],
        local_rot=local_rotations(body_rot[keep], body_parent_ids(model)),
        com=com[keep],
        cycle_frames=cycle,
        cycle_shift=shift,
        cyclic=cyclic,
    )


if __name__ == "__main__":
    raise SystemExit(main())
