r"""The SMPL body model as a composition of small, batched torch functions.

Notation of the course (vertex ``i`` of ``V``, joint ``k`` of ``J = 24``)::

    t'_i = sum_k w_ki G_k(theta, J(beta)) (t_i + s_i(beta) + p_i(theta))

* ``t_i`` -- vertex ``i`` of the rest template ``T`` (``v_template [V, 3]``).
* ``s_i(beta)`` -- shape blend shape, row ``i`` of ``B_S(beta) = S beta`` with the shape basis
  ``S`` (``shapedirs [V, 3, B]``) and shape coefficients ``beta`` (``betas [..., B]``).
  :func:`shape_blend` returns the shaped template ``T + S beta``.
* ``J(beta) = J_regressor (T + S beta)`` -- the rest joints, a fixed sparse-ish linear regression from
  the *shaped* mesh (``J_regressor [J, V]``), so joints move with the body shape (:func:`regress_joints`).
* ``p_i(theta)`` -- pose corrective, row ``i`` of ``B_P(theta) = P vec(R(theta) - I)``: the 23 non-root
  joint rotations ``R_k`` minus the identity, flattened to 23 * 9 = 207 numbers, times the pose basis
  ``P`` (``posedirs [207, V * 3]``). Subtracting ``I`` makes the correctives vanish in the rest pose; the
  root is excluded because a global rotation must not deform the body (:func:`pose_correctives`).
* ``G_k(theta, J(beta))`` -- world transform of joint ``k`` relative to the rest pose. Down the kinematic
  tree with parent ``p(k)``::

      G'_0 = [R_0 | J_0],        G'_k = G'_{p(k)} [R_k | J_k - J_{p(k)}]
      G_k  = G'_k [I | -J_k]     (rest joint location removed: G_k = I at theta = 0)

  (:func:`world_transforms`); the posed joint locations are ``G'_k``'s translations ``= G_k [J_k; 1]``
  (:func:`posed_joints`).
* ``w_ki`` -- the skinning weights (``weights [V, J]``, rows sum to one); linear blend skinning blends the
  4x4 transforms per vertex and applies the blend (:func:`skin`).

:func:`lbs` composes the pieces; ``pose_correctives=False`` drops ``p_i`` and gives plain linear blend
skinning of the shaped template, so the candy-wrapper and elbow-collapse artefacts that the correctives
fix can be looked at side by side. All functions take any leading batch dimensions, float32 or float64,
and are differentiable in ``betas`` and the rotations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

ParentsLike = Sequence[int] | torch.Tensor


class LBSOutput(NamedTuple):
    """Everything :func:`lbs` computes on the way (leading batch dimensions ``...``)."""

    vertices: torch.Tensor  # [..., V, 3] posed mesh t'
    joints: torch.Tensor  # [..., J, 3] posed joints G'_k translations
    transforms: torch.Tensor  # [..., J, 4, 4] G_k relative to the rest pose
    shaped: torch.Tensor  # [..., V, 3] T + S beta
    rest_joints: torch.Tensor  # [..., J, 3] J(beta)


def shape_blend(v_template: torch.Tensor, shapedirs: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """Shaped template ``T + B_S(beta) = T + S beta``.

    ``v_template [V, 3]``, ``shapedirs [V, 3, B_total]``, ``betas [..., B]`` with ``B <= B_total``: only the
    first ``B`` shape components are used (the basis is ordered by explained variance, so truncating
    ``beta`` is a coarser body). Returns ``[..., V, 3]``.
    """
    n_betas = betas.shape[-1]
    if n_betas > shapedirs.shape[-1]:
        raise ValueError(f"betas has {n_betas} coefficients but shapedirs only {shapedirs.shape[-1]} components")
    return v_template + torch.einsum("vcb,...b->...vc", shapedirs[..., :n_betas], betas)


def regress_joints(J_regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:  # noqa: N803 (SMPL's name)
    """Joints ``J = J_regressor vertices``: ``J_regressor [J, V]``, ``vertices [..., V, 3]`` -> ``[..., J, 3]``."""
    return torch.einsum("jv,...vc->...jc", J_regressor, vertices)


def pose_correctives(posedirs: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Pose corrective offsets ``B_P(theta) = P vec(R(theta) - I)`` -> ``[..., V, 3]``.

    ``posedirs [P, V * 3]`` with ``P = 9 K`` for ``K`` non-root joints (SMPL: 207 = 23 * 9). ``rotations`` is
    either all joints ``[..., K + 1, 3, 3]`` (the root, joint 0, is dropped) or the non-root joints only
    ``[..., K, 3, 3]``; the count decides, so the two are never confused. ``vec`` is row-major over
    ``(joint, row, column)``, the order of the SMPL files.
    """
    n_features = posedirs.shape[0]
    n_rot = rotations.shape[-3]
    if 9 * n_rot == n_features:
        non_root = rotations
    elif 9 * (n_rot - 1) == n_features:
        non_root = rotations[..., 1:, :, :]
    else:
        raise ValueError(
            f"posedirs has {n_features} pose features, which matches neither {n_rot} rotations "
            f"({9 * n_rot} features) nor their {n_rot - 1} non-root joints ({9 * (n_rot - 1)})"
        )
    eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
    features = (non_root - eye).flatten(-3)  # [..., P]: zero in the rest pose
    return (features @ posedirs).unflatten(-1, (-1, 3))


_pose_offsets = pose_correctives  # `lbs` has a flag of the same name


def _parent_list(parents: ParentsLike, n_joints: int) -> list[int]:
    """Parents as Python ints, checked to be a tree in topological order (parent index below the child)."""
    values = [int(p) for p in (parents.tolist() if isinstance(parents, torch.Tensor) else parents)]
    if len(values) != n_joints:
        raise ValueError(f"parents has {len(values)} entries for {n_joints} joints")
    if values[0] >= 0:
        raise ValueError(f"joint 0 must be the root (parent -1), got parent {values[0]}")
    for k, p in enumerate(values[1:], start=1):
        if not 0 <= p < k:
            raise ValueError(f"joint {k} has parent {p}; parents must precede their children (0 <= parent < {k})")
    return values


def _homogeneous(rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """``[R | t]`` with the row ``[0 0 0 1]``: ``[..., 3, 3]``, ``[..., 3]`` -> ``[..., 4, 4]``."""
    top = torch.cat([rotation, translation.unsqueeze(-1)], dim=-1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


def world_transforms(rotations: torch.Tensor, joints: torch.Tensor, parents: ParentsLike) -> torch.Tensor:
    """World transforms ``G_k`` relative to the rest pose, ``[..., J, 4, 4]``.

    ``rotations [..., J, 3, 3]`` are the local joint rotations ``R_k`` (joint 0: global orientation),
    ``joints [..., J, 3]`` the rest joints ``J(beta)``, ``parents`` the kinematic tree (root -1)::

        G'_k = G'_{p(k)} [R_k | J_k - J_{p(k)}]   (G'_0 = [R_0 | J_0]),     G_k = G'_k [I | -J_k]

    The loop runs over the joints only (each needs its parent's result); vertices and batch stay vectorized.
    """
    n_joints = joints.shape[-2]
    parent_list = _parent_list(parents, n_joints)
    parent_index = torch.tensor([max(p, 0) for p in parent_list], device=joints.device)
    # Offsets to the parent; the root keeps its absolute position.
    offsets = joints - joints[..., parent_index, :]
    offsets = torch.cat([joints[..., :1, :], offsets[..., 1:, :]], dim=-2)
    local = _homogeneous(rotations, offsets)
    chain = [local[..., 0, :, :]]
    for k in range(1, n_joints):
        chain.append(chain[parent_list[k]] @ local[..., k, :, :])
    absolute = torch.stack(chain, dim=-3)  # G'_k: maps joint-k-local coordinates to the world
    rotation = absolute[..., :3, :3]
    # G'_k [I | -J_k] = [R | t - R J_k]: a rest-pose point is first expressed relative to its joint.
    translation = absolute[..., :3, 3] - torch.einsum("...ab,...b->...a", rotation, joints)
    return _homogeneous(rotation, translation)


def posed_joints(transforms: torch.Tensor, rest_joints: torch.Tensor) -> torch.Tensor:
    """Posed joint locations ``G_k [J_k; 1]`` (= the translation of ``G'_k``): ``[..., J, 3]``."""
    return torch.einsum("...ab,...b->...a", transforms[..., :3, :3], rest_joints) + transforms[..., :3, 3]


def skin(vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """Linear blend skinning ``t'_i = (sum_k w_ki G_k) [v_i; 1]``.

    ``vertices [..., V, 3]``, ``weights [V, J]`` (or batched ``[..., V, J]``), ``transforms [..., J, 4, 4]``
    -> ``[..., V, 3]``. The transforms are blended before they are applied (one 3x4 matrix per vertex),
    which is the same as blending the transformed points because both are linear.
    """
    # Written as two matmuls rather than einsums: einsum's generic path was ~1.4x slower here
    # (benchmarks/bench_body_model.py), and the result is bit-identical.
    blended = (weights @ transforms[..., :3, :].flatten(-2)).unflatten(-1, (3, 4))  # [..., V, 3, 4]
    return (blended[..., :3] @ vertices.unsqueeze(-1)).squeeze(-1) + blended[..., 3]


def lbs(
    betas: torch.Tensor,
    rotations: torch.Tensor,
    v_template: torch.Tensor,
    shapedirs: torch.Tensor,
    posedirs: torch.Tensor,
    J_regressor: torch.Tensor,  # noqa: N803 (SMPL's name)
    parents: ParentsLike,
    weights: torch.Tensor,
    pose_correctives: bool = True,
) -> LBSOutput:
    """The SMPL function ``t'_i = sum_k w_ki G_k(theta, J(beta)) (t_i + s_i(beta) + p_i(theta))``.

    ``betas [..., B]``, ``rotations [..., J, 3, 3]`` (local joint rotations ``R(theta)``, root first); the
    leading dimensions broadcast. Model arrays as in the module docstring. With ``pose_correctives=False``
    the ``p_i`` term is dropped (plain LBS of the shaped template); joints and transforms are unchanged
    because ``J(beta)`` is regressed from the shaped mesh *without* pose correctives.
    """
    batch = torch.broadcast_shapes(betas.shape[:-1], rotations.shape[:-3])
    betas = betas.expand(*batch, betas.shape[-1])
    rotations = rotations.expand(*batch, *rotations.shape[-3:])
    shaped = shape_blend(v_template, shapedirs, betas)
    rest_joints = regress_joints(J_regressor, shaped)
    transforms = world_transforms(rotations, rest_joints, parents)
    rest_vertices = shaped + _pose_offsets(posedirs, rotations) if pose_correctives else shaped
    vertices = skin(rest_vertices, weights, transforms)
    return LBSOutput(vertices, posed_joints(transforms, rest_joints), transforms, shaped, rest_joints)
