"""The reference motion in the simulator's coordinates: everything the imitation reward compares against.

A :class:`~vision3d.body.motion.Motion` (SMPL axis-angle, Z-up world) is converted once, at the policy rate:

* root: ``qpos[0:3]`` = pelvis position ``trans + J_0``; ``qpos[3:7]`` = the pelvis body's world orientation
  ``Q_0 = R_0 W^T`` (``R_0`` maps SMPL canonical to world, and the pelvis body frame is ``W`` at rest);
* hinges: joint ``k``'s local rotation in MuJoCo body axes is ``W L_k W^T``, decomposed into the intrinsic "XYZ"
  angles of its three hinges (:mod:`mpenv.humanoid.mjcf`);
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

import math
from dataclasses import dataclass

import mujoco
import numpy as np
import torch

from mpenv.humanoid.mjcf import ACTUATED_SMPL_INDEX, BODY_ORDER, SMPL_TO_WORLD
from vision3d.body.motion import Motion
from vision3d.body.rotations import axis_angle_to_matrix, matrix_to_euler, matrix_to_quaternion

__all__ = [
    "Reference",
    "body_parent_ids",
    "build_reference",
    "local_rotations",
    "motion_qpos",
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


def motion_qpos(motion: Motion, rest_joints: np.ndarray) -> np.ndarray:
    """``(T, 76)`` qpos of the character following ``motion`` (root position, root quaternion, 69 hinge angles).

    ``rest_joints`` are the SMPL rest joints ``J(beta)`` in canonical coordinates (the pelvis is at ``trans + J_0``).
    """
    rotations = axis_angle_to_matrix(torch.from_numpy(motion.poses))  # (T, 24, 3, 3), canonical frames
    w = torch.tensor(SMPL_TO_WORLD)
    root_quat = matrix_to_quaternion(rotations[:, 0] @ w.T)
    hinged = rotations[:, list(ACTUATED_SMPL_INDEX)]
    angles = matrix_to_euler(w @ hinged @ w.T, "XYZ")  # (T, 23, 3), qpos order
    pelvis = motion.trans + rest_joints[0]
    return np.concatenate([pelvis, root_quat.numpy(), angles.reshape(len(angles), -1).numpy()], axis=1)


def local_rotations(body_rot: np.ndarray, parent_ids: np.ndarray) -> np.ndarray:
    """Rotation of each body relative to its parent, ``R_parent^T R_body`` (the root keeps its world rotation).

    ``body_rot (..., 24, 3, 3)`` world rotation matrices in body order; ``parent_ids (24,)`` the parent's index
    in that order (-1 for the root). Matrices rather than quaternions: one batched matmul, and the pose error
    follows from a trace (:func:`rotation_angles`).
    """
    parent = np.where(
        (parent_ids < 0)[:, None, None], np.eye(3), body_rot[..., np.maximum(parent_ids, 0), :, :]
    )
    return np.swapaxes(parent, -1, -2) @ body_rot


def rotation_angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle of ``a^T b`` for stacks of rotation matrices: ``arccos((tr(a^T b) - 1) / 2)``, the angle of the
    quaternion difference ``q_a^-1 q_b``."""
    trace = np.sum(a * b, axis=(-2, -1))
    return np.arccos(np.clip(0.5 * (trace - 1.0), -1.0, 1.0))


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


def build_reference(motion: Motion, model: mujoco.MjModel, rest_joints: np.ndarray, fps: float) -> Reference:
    """Convert ``motion`` for the character ``model`` (no ghost) at ``fps`` frames per second.

    ``rest_joints``: the SMPL rest joints ``J(beta)`` in canonical coordinates
    (:func:`vision3d.body.retarget.smpl_rest_joints`).
    """
    clip = motion.resample(fps) if not math.isclose(motion.fps, fps) else motion
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
