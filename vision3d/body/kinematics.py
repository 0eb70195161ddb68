"""Forward kinematics of a joint tree without building a mesh, finite-difference velocities and centre of mass.

Forward kinematics (the same recursion SMPL's linear blend skinning uses for its joint transforms, minus the mesh)::

    G_0 = R_0                      p_0 = J_0 + transl
    G_j = G_parent(j) R_j          p_j = p_parent(j) + G_parent(j) (J_j - J_parent(j))

with ``R_j`` the LOCAL rotation of joint ``j`` (relative to its parent's frame), ``J`` the rest-pose joint locations
(SMPL's ``J(beta)``), ``G_j`` the world rotation and ``p_j`` the world position. A rotation of joint ``j`` moves
the joints BELOW it, not ``p_j`` itself. The recursion runs one depth level of the tree at a time (SMPL: 9 levels
for 24 joints), each level batched over all its joints and every leading batch dimension.

Tensors follow the conventions of :mod:`vision3d.body.rotations` (column vectors, ``v' = R v``); all inputs of one
call must share dtype and device.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

import torch
from torch import Tensor

from vision3d.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from vision3d.body.skeleton import check_parents, tree_levels

__all__ = [
    "angular_velocities",
    "bone_lengths",
    "center_of_mass",
    "forward_kinematics",
    "forward_kinematics_axis_angle",
    "forward_kinematics_from_offsets",
    "joint_velocities",
    "local_offsets",
]

Parents = Sequence[int]


class _Plan(NamedTuple):
    """Index tensors of one tree on one device, built once (:func:`_plan`)."""

    parent_index: Tensor  # [J] parent of each joint, the root its own
    order: Tensor  # [J] joints in depth order: level by level, so that each level is a contiguous block
    levels: tuple[tuple[int, int, Tensor], ...]  # per level below the root: its block and its parents' slots
    back: Tensor  # [J] inverse of ``order``


@lru_cache(maxsize=64)
def _plan(parents: tuple[int, ...], device: torch.device) -> _Plan:
    levels = tree_levels(parents)
    blocks, start = [], 1
    for previous, level in zip(levels[:-1], levels[1:], strict=True):
        # Parents of a level all sit in the previous level: index them by their position there.
        slot = {j: s for s, j in enumerate(previous)}
        slots = torch.tensor([slot[parents[j]] for j in level], device=device)
        blocks.append((start, start + len(level), slots))
        start += len(level)
    order = torch.tensor([j for level in levels for j in level], device=device)
    return _Plan(
        parent_index=torch.tensor((0, *parents[1:]), device=device),
        order=order,
        levels=tuple(blocks),
        back=torch.argsort(order),
    )


def local_offsets(rest_joints: Tensor, parents: Parents) -> Tensor:
    """Bone vectors ``J_j - J_parent(j)`` of ``rest_joints[..., J, 3]``; row 0 (the root) is ``J_0`` itself."""
    parent_index = _plan(check_parents(parents), rest_joints.device).parent_index
    offsets = rest_joints - rest_joints.index_select(-2, parent_index)
    return torch.cat([rest_joints[..., :1, :], offsets[..., 1:, :]], dim=-2)


def bone_lengths(joints: Tensor, parents: Parents) -> Tensor:
    """Lengths ``|p_j - p_parent(j)|`` of the ``J - 1`` bones of ``joints[..., J, 3]``, shape ``[..., J - 1]``."""
    return torch.linalg.vector_norm(local_offsets(joints, parents)[..., 1:, :], dim=-1)


def forward_kinematics(
    rotations: Tensor, rest_joints: Tensor, parents: Parents, transl: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """World joint positions and rotations from local joint rotations (see the module docstring for the math).

    Args:
        rotations: ``[..., J, 3, 3]`` local rotation matrices; ``rotations[..., 0, :, :]`` is the global orientation.
        rest_joints: ``[..., J, 3]`` rest-pose joint locations; may have fewer leading dims (e.g. ``[J, 3]`` shared
            by a batch), they broadcast.
        parents: parent index per joint, root first and topologically ordered (checked by
            :func:`~vision3d.body.skeleton.check_parents`).
        transl: optional ``[..., 3]`` root translation; the root lands at ``rest_joints[..., 0, :] + transl``.

    Returns:
        ``(joint_positions[..., J, 3], world_rotations[..., J, 3, 3])``.
    """
    n = len(check_parents(parents))
    if rest_joints.shape[-2:] != (n, 3):
        raise ValueError(f"rest_joints must have shape [..., {n}, 3] for {n} joints, got {tuple(rest_joints.shape)}")
    if transl is not None and transl.shape[-1:] != (3,):
        raise ValueError(f"transl must have shape [..., 3], got {tuple(transl.shape)}")
    positions, world = forward_kinematics_from_offsets(rotations, local_offsets(rest_joints, parents), parents)
    if transl is not None:  # a root translation moves every joint alike
        positions = positions + transl[..., None, :]
    return positions, world


def forward_kinematics_from_offsets(rotations: Tensor, offsets: Tensor, parents: Parents) -> tuple[Tensor, Tensor]:
    """:func:`forward_kinematics` from bone offsets ``offsets[..., J, 3]`` instead of rest joints: row ``j`` is
    joint ``j``'s position in its parent's frame (``J_j - J_parent(j)``), row 0 the root's position in the world.
    BVH files store these, possibly different in every frame (:mod:`vision3d.body.bvh`).

    Each joint is the 3x4 matrix ``[G_j | p_j]``; a level of the tree is one batched product
    ``G_parent [R_j | offset_j]`` plus the parents' positions, so the whole tree takes one matrix product per
    depth level (no 4x4 homogeneous products, no per-joint Python loop). This is the package's only forward
    kinematics: :mod:`vision3d.body.lbs` poses the SMPL mesh with it, BVH clips their skeletons.
    """
    parents = check_parents(parents)
    n = len(parents)
    if rotations.shape[-3:] != (n, 3, 3):
        raise ValueError(f"rotations must have shape [..., {n}, 3, 3] for {n} joints, got {tuple(rotations.shape)}")
    if offsets.shape[-2:] != (n, 3):
        raise ValueError(f"offsets must have shape [..., {n}, 3] for {n} joints, got {tuple(offsets.shape)}")
    batch = torch.broadcast_shapes(rotations.shape[:-3], offsets.shape[:-2])
    plan = _plan(parents, rotations.device)
    # [R_j | offset_j] in depth order, so that each level is a contiguous block.
    local = torch.cat([rotations.expand(*batch, n, 3, 3), offsets.expand(*batch, n, 3).unsqueeze(-1)], dim=-1)
    local = local.index_select(-3, plan.order)
    world = [local[..., :1, :, :]]  # [G_j | p_j], level by level
    for start, end, slots in plan.levels:
        parent = world[-1].index_select(-3, slots)
        child = parent[..., :3] @ local[..., start:end, :, :]  # [G_parent R_j | G_parent offset_j]
        child[..., 3] += parent[..., 3]
        world.append(child)
    # Levels are stacked in depth order; put the joints back in index order.
    world_all = torch.cat(world, dim=-3).index_select(-3, plan.back)
    return world_all[..., 3].contiguous(), world_all[..., :3].contiguous()


def forward_kinematics_axis_angle(
    poses: Tensor, rest_joints: Tensor, parents: Parents, transl: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """:func:`forward_kinematics` with local rotations given as axis-angle ``poses[..., J, 3]`` (SMPL's ``theta``
    reshaped from ``[..., 72]``)."""
    return forward_kinematics(axis_angle_to_matrix(poses), rest_joints, parents, transl)


def _difference_indices(n_frames: int, fps: float, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Frame indices ``prev``, ``next`` and time steps ``dt`` of central differences (``t - 1 -> t + 1``) inside a
    sequence and one-sided ones (``0 -> 1``, ``T - 2 -> T - 1``) at its ends."""
    if n_frames < 2:
        raise ValueError(f"finite differences need at least 2 frames, got {n_frames}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    t = torch.arange(n_frames, device=device)
    prev = (t - 1).clamp_min(0)
    nxt = (t + 1).clamp_max(n_frames - 1)
    return prev, nxt, (nxt - prev) / fps


def joint_velocities(positions: Tensor, fps: float) -> Tensor:
    """Velocities of ``positions[T, ...]`` sampled at ``fps`` frames per second, same shape.

    ``v_t = (x_{t+1} - x_{t-1}) fps / 2`` inside, ``(x_1 - x_0) fps`` and ``(x_{T-1} - x_{T-2}) fps`` at the ends:
    second-order accurate inside, exact for positions moving linearly in time.
    """
    prev, nxt, dt = _difference_indices(positions.shape[0], fps, positions.device)
    dt = dt.to(positions.dtype).reshape(-1, *([1] * (positions.dim() - 1)))
    return (positions[nxt] - positions[prev]) / dt


def angular_velocities(rotations: Tensor, fps: float, frame: str = "world") -> Tensor:
    """Angular velocity vectors ``[T, ..., 3]`` (rad/s) of rotation matrices ``rotations[T, ..., 3, 3]``.

    Same stencil as :func:`joint_velocities`, on the rotation group: with ``dR`` the rotation from frame ``t - 1``
    to ``t + 1`` (one-sided at the ends), ``omega_t = log(dR) / dt`` as an axis-angle vector.

    - ``frame="world"``: ``dR = R_{t+1} R_{t-1}^T``, the spatial angular velocity (``R' = [omega]_x R``), expressed
      in the frame the rotations are relative to -- the world for world rotations, the parent joint for local ones.
    - ``frame="body"``: ``dR = R_{t-1}^T R_{t+1}``, the same velocity in the rotating body's own frame
      (``R' = R [omega]_x``).

    Exact for a constant angular velocity; assumes less than half a turn between the frames of one stencil.
    """
    if rotations.shape[-2:] != (3, 3):
        raise ValueError(f"rotations must have shape [T, ..., 3, 3], got {tuple(rotations.shape)}")
    prev, nxt, dt = _difference_indices(rotations.shape[0], fps, rotations.device)
    r_prev, r_next = rotations[prev], rotations[nxt]
    if frame == "world":
        delta = r_next @ r_prev.transpose(-1, -2)
    elif frame == "body":
        delta = r_prev.transpose(-1, -2) @ r_next
    else:
        raise ValueError(f"frame must be 'world' or 'body', got {frame!r}")
    dt = dt.to(rotations.dtype).reshape(-1, *([1] * (rotations.dim() - 2)))
    return matrix_to_axis_angle(delta) / dt


def center_of_mass(joint_positions: Tensor, segment_masses: Tensor, parents: Parents | None = None) -> Tensor:
    """Mass-weighted mean position ``sum_j m_j c_j / sum_j m_j``, shape ``[..., 3]``.

    Two point-mass models of the body:

    - ``parents=None``: mass ``m_j`` sits at joint ``j``, ``c_j = p_j``.
    - ``parents`` given: mass ``m_j`` (``j >= 1``) is the segment (bone) from the parent to joint ``j``, a uniform
      rod whose centre is the midpoint ``c_j = (p_j + p_parent(j)) / 2``; ``m_0`` stays a point mass at the root.

    Args:
        joint_positions: ``[..., J, 3]``.
        segment_masses: ``[J]`` or ``[..., J]`` non-negative masses (any unit; only ratios matter).
        parents: the kinematic tree, to select the segment-midpoint model.
    """
    n = joint_positions.shape[-2]
    if segment_masses.shape[-1:] != (n,):
        raise ValueError(f"segment_masses must have shape [..., {n}] for {n} joints, got {tuple(segment_masses.shape)}")
    centres = joint_positions
    if parents is not None:
        parents = check_parents(parents)
        if len(parents) != n:
            raise ValueError(f"parents has {len(parents)} joints but joint_positions has {n}")
        parent_index = torch.tensor((0, *parents[1:]), device=joint_positions.device)
        centres = 0.5 * (joint_positions + joint_positions[..., parent_index, :])  # root: (p_0 + p_0) / 2 = p_0
    masses = segment_masses[..., None]
    return (masses * centres).sum(-2) / masses.sum(-2)
