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

  ``G'_k`` is forward kinematics (:func:`vision3d.body.kinematics.forward_kinematics`, one matrix product per
  depth level of the tree); :func:`world_transforms` removes the rest joints. The posed joint locations are
  ``G'_k``'s translations ``= G_k [J_k; 1]``.
* ``w_ki`` -- the skinning weights (``weights [V, J]``, rows sum to one); linear blend skinning blends the
  4x4 transforms per vertex and applies the blend (:func:`skin`).

:func:`lbs` composes the pieces; ``pose_correctives=False`` drops ``p_i`` and gives plain linear blend
skinning of the shaped template, so the candy-wrapper and elbow-collapse artefacts that the correctives
fix can be looked at side by side. All functions take any leading batch dimensions, float32 or float64,
and are differentiable in ``betas`` and the rotations.

Speed (``benchmarks/bench_body_model.py``). Four choices make the forward pass cheaper than the formula
read literally, with the same result up to rounding:

* the regressor is applied once, to the template and the shape basis, not to every shaped mesh:
  ``J(beta) = J_regressor (T + S beta) = J_regressor T + (J_regressor S) beta`` (:func:`joint_arrays`), so
  the rest joints are a shape blend of 24 points instead of a product with a ``[J, V]`` matrix;
* the two large products, ``S beta`` and ``P vec(R - I)``, are vertex-major, ``[V * 3, K] x [K, N]`` for
  ``N`` bodies (:func:`_linear_map`): :func:`shape_blend` and :func:`pose_correctives` return their
  ``[..., V, 3]`` results as views of that layout (not contiguous: ``.contiguous()`` before ``.view()``);
* the kinematic chain takes one matrix product per depth level of the tree (SMPL: 9 levels for 24 joints);
* skinning never builds the blended transforms of the whole mesh: it runs over blocks of vertices, all bodies
  at once, whose blended ``3x4`` transforms stay in the CPU cache (:data:`SKIN_CHUNK_BYTES`), and applies
  them as three multiply-adds instead of a 3x3 matrix product per vertex.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from vision3d.body.kinematics import forward_kinematics

ParentsLike = Sequence[int] | torch.Tensor

SKIN_CHUNK_BYTES = 1 << 20
"""Vertices per skinning step: as many as keep the block's blended transforms ``[v, 3, 4, N]`` within about
1 MiB, the size of a CPU core's L2 cache, so they are read back from the cache instead of from memory."""


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
    ``beta`` is a coarser body). Returns ``[..., V, 3]``. Works for any point set: :func:`lbs` also shapes the
    rest joints with it, from the regressed template and basis (:func:`joint_arrays`).
    """
    n_betas = betas.shape[-1]
    if n_betas > shapedirs.shape[-1]:
        raise ValueError(f"betas has {n_betas} coefficients but shapedirs only {shapedirs.shape[-1]} components")
    basis = shapedirs[..., :n_betas].flatten(0, 1)  # [V * 3, B], a view
    return _linear_map(basis, betas, v_template.flatten()).unflatten(-1, v_template.shape)


def regress_joints(J_regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:  # noqa: N803 (SMPL's name)
    """Joints ``J = J_regressor vertices``: ``J_regressor [J, V]``, ``vertices [..., V, 3]`` -> ``[..., J, 3]``."""
    return torch.einsum("jv,...vc->...jc", J_regressor, vertices)


def joint_arrays(
    J_regressor: torch.Tensor,  # noqa: N803 (SMPL's name)
    v_template: torch.Tensor,
    shapedirs: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The regressor applied to the template and the shape basis: ``(J_regressor T [J, 3], J_regressor S
    [J, 3, B_total])``, so that ``J(beta) = shape_blend(J_regressor T, J_regressor S, beta)`` (linearity)."""
    return regress_joints(J_regressor, v_template), torch.einsum("jv,vcb->jcb", J_regressor, shapedirs)


def pose_correctives(posedirs: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """Pose corrective offsets ``B_P(theta) = P vec(R(theta) - I)`` -> ``[..., V, 3]``.

    ``posedirs [P, V * 3]`` with ``P = 9 K`` for ``K`` non-root joints (SMPL: 207 = 23 * 9). ``rotations`` is
    either all joints ``[..., K + 1, 3, 3]`` (the root, joint 0, is dropped) or the non-root joints only
    ``[..., K, 3, 3]``; the count decides, so the two are never confused. ``vec`` is row-major over
    ``(joint, row, column)``, the order of the SMPL files.
    """
    return _linear_map(posedirs.T, _pose_features(posedirs, rotations)).unflatten(-1, (-1, 3))


def _linear_map(matrix: torch.Tensor, coefficients: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``bias + matrix c`` for every ``c`` in ``coefficients [..., K]``, ``matrix [R, K]``, ``bias [R]`` or
    ``[..., R]`` -> ``[..., R]``.

    One ``[R, K] x [K, N]`` product whose ``[R, N]`` result is returned as a transposed view: for SMPL's pose
    correctives (``R = 20670``, ``K = 207``) MKL ran this orientation about 1.5x faster than ``[N, K] x [K, R]``
    (one thread, side by side: 31 vs 46 ms at N = 64, 80 vs 121 ms at N = 256), and :func:`skin` reads its
    input in this layout.
    """
    flat = coefficients.reshape(-1, coefficients.shape[-1]).T
    if bias is None:
        product = matrix @ flat
    else:  # one bias [R] for all, or one per c [..., R]: either way added by the product itself
        bias = bias.unsqueeze(-1) if bias.dim() == 1 else bias.reshape(-1, matrix.shape[0]).T
        product = torch.addmm(bias, matrix, flat)
    return product.T.reshape(*coefficients.shape[:-1], matrix.shape[0])


def _pose_features(posedirs: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """``vec(R - I)`` of the non-root joints, ``[..., P]``: zero in the rest pose (see :func:`pose_correctives`)."""
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
    return (non_root - eye).flatten(-3)


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

    ``G'_k`` comes from :func:`~vision3d.body.kinematics.forward_kinematics` (world rotation ``A_k`` and
    position ``p_k``); then ``G_k = [A_k | p_k - A_k J_k]``: a rest-pose point is first expressed relative to
    its joint. The posed joints ``p_k`` are :func:`lbs`'s ``joints``.
    """
    return _relative_transforms(*_chain(rotations, joints, parents), joints)


def _chain(rotations: torch.Tensor, joints: torch.Tensor, parents: ParentsLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward kinematics ``(p_k [..., J, 3], A_k [..., J, 3, 3])``; parents as a tensor or a sequence."""
    if isinstance(parents, torch.Tensor):
        parents = parents.tolist()
    return forward_kinematics(rotations, joints, parents)


def _relative_transforms(positions: torch.Tensor, world: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
    """``G_k = [A_k | p_k - A_k J_k]`` as ``[..., J, 4, 4]`` (see :func:`world_transforms`)."""
    return _homogeneous(world, positions - (world @ joints.unsqueeze(-1)).squeeze(-1))


def skin(vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """Linear blend skinning ``t'_i = (sum_k w_ki G_k) [v_i; 1]``.

    ``vertices [..., V, 3]``, ``weights [V, J]`` (or batched ``[..., V, J]``), ``transforms [..., J, 4, 4]``
    -> ``[..., V, 3]`` (contiguous). The transforms are blended before they are applied (one 3x4 matrix per
    vertex), which is the same as blending the transformed points because both are linear.

    The work runs over blocks of vertices, all bodies at once, with the batch as the innermost (contiguous)
    dimension: a block's blended transforms ``[v, 3, 4, N]`` are one ``[v, J] x [J, 12 N]`` product, small
    enough to stay in the CPU cache (:data:`SKIN_CHUNK_BYTES`) while three multiply-adds apply them.
    """
    n_verts, n_joints = weights.shape[-2:]
    batch = torch.broadcast_shapes(vertices.shape[:-2], weights.shape[:-2], transforms.shape[:-3])
    n = batch.numel()
    # Batch-innermost views [V, 3, N] and [J, 12 N]: the vertices need no copy when they come from shape_blend.
    points = vertices.expand(*batch, n_verts, 3).reshape(n, n_verts, 3).permute(1, 2, 0)
    affine = transforms[..., :3, :].expand(*batch, n_joints, 3, 4).reshape(n, n_joints, 12).permute(1, 2, 0)
    affine = affine.reshape(n_joints, 12 * n)
    if weights.dim() > 2:
        weights = weights.expand(*batch, n_verts, n_joints).reshape(n, n_verts, n_joints)
    out = vertices.new_empty(n, n_verts, 3)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (vertices, weights, transforms))
    # One block with autograd: each block write is a node whose backward copies the whole gradient.
    step = n_verts if needs_grad else max(1, SKIN_CHUNK_BYTES // (12 * n * vertices.element_size()))
    for start in range(0, n_verts, step):
        block = slice(start, start + step)
        if weights.dim() == 2:
            blended = weights[block] @ affine
        else:  # per-body weights: a product per body
            blended = torch.einsum("nvk,kmn->vmn", weights[:, block], affine.view(n_joints, 12, n))
        skinned = _apply(blended.view(-1, 3, 4, n), points[block])  # [v, 3, N]
        out[:, block] = skinned.permute(2, 0, 1)  # transposed while the block is in the cache
    return out.view(*batch, n_verts, 3)


def _apply(affine: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``M [p; 1] = M_x p_x + M_y p_y + M_z p_z + M_t`` (the columns of ``M``) for ``affine [..., 3, 4, N]`` and
    ``points [..., 3, N]`` -> ``[..., 3, N]``: three fused multiply-adds over the innermost batch dimension, far
    cheaper than a 3x3 matrix product per vertex."""
    out = torch.addcmul(affine[..., 3, :], affine[..., 0, :], points[..., 0:1, :])
    out = out.addcmul_(affine[..., 1, :], points[..., 1:2, :])
    return out.addcmul_(affine[..., 2, :], points[..., 2:3, :])


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
    regressed: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> LBSOutput:
    """The SMPL function ``t'_i = sum_k w_ki G_k(theta, J(beta)) (t_i + s_i(beta) + p_i(theta))``.

    ``betas [..., B]``, ``rotations [..., J, 3, 3]`` (local joint rotations ``R(theta)``, root first); the
    leading dimensions broadcast. Model arrays as in the module docstring. With ``pose_correctives=False``
    the ``p_i`` term is dropped (plain LBS of the shaped template); joints and transforms are unchanged
    because ``J(beta)`` is regressed from the shaped mesh *without* pose correctives. ``regressed`` is
    :func:`joint_arrays` ``(J_regressor T, J_regressor S)``: a caller that runs the model many times computes
    it once (:class:`~vision3d.body.model.BodyModel` does); otherwise it is computed here.
    """
    batch = torch.broadcast_shapes(betas.shape[:-1], rotations.shape[:-3])
    betas = betas.expand(*batch, betas.shape[-1])
    rotations = rotations.expand(*batch, *rotations.shape[-3:])
    joint_template, joint_shapedirs = regressed or joint_arrays(J_regressor, v_template, shapedirs)
    shaped = shape_blend(v_template, shapedirs, betas)
    rest_joints = shape_blend(joint_template, joint_shapedirs, betas)  # = J_regressor shaped
    positions, world = _chain(rotations, rest_joints, parents)
    transforms = _relative_transforms(positions, world, rest_joints)
    if pose_correctives:  # t + s(beta) + p(theta) = shaped + P vec(R - I), the sum done by the product
        features = _pose_features(posedirs, rotations)
        rest_vertices = _linear_map(posedirs.T, features, shaped.flatten(-2)).unflatten(-1, shaped.shape[-2:])
    else:
        rest_vertices = shaped
    vertices = skin(rest_vertices, weights, transforms)
    return LBSOutput(vertices, positions, transforms, shaped, rest_joints)
