r"""An animatable neural implicit surface of one body: a canonical occupancy field and a learned skinning-weight field,
posed by forward linear blend skinning and fitted to posed meshes only (SNARF, Chen et al., ICCV 2021).

    from vision3d.body.animatable import default_animatable, pose_transforms, canonical_mesh, pose_mesh
    body = default_animatable()                                   # the shipped fields (data/animatable)
    transforms = pose_transforms(model, body_pose)                # body_pose [B, 69] -> B_k [B, 24, 4, 4]
    logits = body.posed_logits(points, transforms[0])             # occupancy logits of posed points [N]
    mesh = canonical_mesh(body)                                   # marching cubes, once
    vertices = pose_mesh(body, mesh.vertices, transforms[0])      # the canonical mesh posed, [V, 3]

    python -m vision3d.body.animatable --train --steps 2000 --out vision3d/body/data/animatable
    python -m vision3d.body.animatable --report                   # Chamfer table on unseen poses

The model. Canonical space is the body model's rest pose (its T-pose, arms out, legs apart; y up, pelvis at the
origin), with the pose's global orientation and translation left out: the fields describe the body in its own frame.

- Canonical occupancy ``o(x_c) = f_theta(gamma(x_c))``, a logit (:class:`~vision3d.implicit.networks.ImplicitNetwork`,
  ReLU, on NeRF's positional encoding ``gamma`` of 4 octaves); the surface is ``o = 0``, i.e. probability 1/2.
- Skinning weights ``w(x_c) = softmax(g_phi(x_c) - d(x_c) / tau)`` over the 24 bones, where ``d_k(x_c)`` is the
  distance of ``x_c`` to bone ``k``'s rest segment (joint ``k`` to its children; a leaf continues its parent's
  direction by half its length) and ``g_phi`` an MLP whose output layer starts at zero. The distance term is a
  fixed initialisation from the skeleton alone (soft nearest-bone weights at temperature ``tau``); what the
  body's surface needs on top of it is learned from posed occupancy. The model's own skinning weights are never
  used to train.
- Forward skinning with the bone transforms ``B_k`` of a pose relative to the canonical pose (``G_k`` of
  :mod:`vision3d.body.lbs`, since canonical is the rest pose):

      d(x_c, B) = sum_k w_k(x_c) B_k x_c                                   (:func:`vision3d.body.lbs.skin`)

- Occupancy of a posed point ``x_p``: its canonical correspondences are the roots of ``d(x_c, B) = x_p``. They are
  found by Broyden's method (batched 3x3 inverse Jacobians, good-Broyden update
  ``H <- H + (dx - H dg) dx^T H / (dx^T H dg)``), started at ``B_k^{-1} x_p`` for the ``K`` bones nearest to
  ``x_p`` in posed space, with ``H_0 = (sum_k w_k(x_0) R_k)^{-1}``. Roots whose residual is below a tolerance and
  that lie in the canonical bounds are kept, and

      o(x_p) = max over the kept roots x_c* of o(x_c*)      (no root: a fixed "outside" logit, no gradient).

- Gradients. The roots are found without autograd; the parameters still get their exact gradient through the
  implicit function theorem (``d(x_c*(phi), phi) = x_p`` gives ``dx_c*/dphi = -J^{-1} dd/dphi`` with
  ``J = dd/dx_c``):

      x_c = x_c* - J^{-1}.detach() (d(x_c*, B) - x_p)

  has the value ``x_c*`` (the residual is ~0) and the implicit gradient (:func:`implicit_roots`).

Training (:func:`train`): posed meshes of the default body (betas 0) at frames of
:data:`~vision3d.body.synthetic.TRAIN_CLIPS` and their mirrors. Points near each posed surface and uniform in its
bounding box are labelled inside/outside by the generalized winding number of the true posed mesh
(:func:`vision3d.scenes.mesh.winding_number`), and the loss is the binary cross-entropy of ``o(x_p)``.

Evaluation (:func:`evaluate`): the canonical mesh is extracted once by marching cubes and its vertices posed forward
with the learned weights, ``v_p = sum_k w_k(v_c) B_k v_c``; the posed mesh is compared with the true posed mesh by
Chamfer-L1 (ONet's mean of both directions, millimetres) and F-score at 1 cm on unseen poses of
:data:`~vision3d.body.synthetic.TEST_CLIPS`, from area-uniform surface samples (the true mesh's samples buried inside
another of its closed parts dropped); two sample sets of the same surface already differ (the "floor" row). The
canonical mesh keeps its largest connected piece. Baselines: the same canonical mesh posed with rigid nearest-bone
weights, the canonical mesh not posed at all, and (a reference, not a method) posed with the model's true weights.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mpenv import tables
from mpenv.checkpoint import load_weights_checked
from mpenv.networks import mlp
from vision3d.body.lbs import skin
from vision3d.body.model import BodyModel
from vision3d.body.skeleton import N_JOINTS
from vision3d.implicit.networks import ImplicitNetwork, check_points
from vision3d.nerf.encodings import PositionalEncoding

__all__ = [
    "AnimatableBody",
    "AnimatableConfig",
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "PosedSamples",
    "SkinningField",
    "bone_segments",
    "candidate_starts",
    "canonical_mesh",
    "default_animatable",
    "default_animatable_path",
    "deform",
    "deformation_jacobian",
    "evaluate",
    "find_roots",
    "implicit_roots",
    "inside_mesh",
    "load_animatable",
    "markdown_table",
    "mesh_scores",
    "point_scores",
    "pose_mesh",
    "pose_transforms",
    "posed_samples",
    "rigid_weights",
    "save_animatable",
    "segment_distances",
    "selected_poses",
    "surface_samples",
    "train",
]

CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"
OUTSIDE_LOGIT = -10.0  # o(x_p) of a posed point with no canonical root: certainly outside, and no gradient
CANONICAL_MARGIN = 0.05  # metres of canonical space around the rest mesh where roots and the mesh may lie
LEAF_EXTENSION = 0.5  # a leaf bone's segment continues its parent bone's direction by this fraction of its length


# ---------------------------------------------------------------------------------------------------------------
# Bones: rest segments, distances, transforms


def bone_segments(joints: Tensor, parents: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Rest-pose segments of the 24 bones, ``(start [24, C, 3], end [24, C, 3])`` with ``C`` the most children of a
    joint: bone ``k`` (the one ``G_k`` moves) runs from joint ``k`` to each child; a leaf joint's segment continues
    its parent's direction by :data:`LEAF_EXTENSION` of the parent bone's length. Padding repeats a segment."""
    n = len(parents)
    children: list[list[int]] = [[] for _ in range(n)]
    for child, parent in enumerate(parents):
        if parent >= 0:
            children[parent].append(child)
    width = max(len(c) for c in children)
    ends = []
    for k in range(n):
        if children[k]:
            targets = [joints[c] for c in children[k]]
        else:
            targets = [joints[k] + LEAF_EXTENSION * (joints[k] - joints[parents[k]])]
        targets += [targets[0]] * (width - len(targets))
        ends.append(torch.stack(targets))
    end = torch.stack(ends)
    return joints[:, None].expand_as(end).clone(), end


def segment_distances(points: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """Distance [N, 24] of points [N, 3] to each bone's nearest segment (``start``/``end`` [24, C, 3]).

    With ``u = p - a`` and ``e = b - a`` the nearest point of segment ``ab`` is ``a + t e``, ``t = clamp(u.e / e.e)``,
    at squared distance ``|u|^2 - 2 t u.e + t^2 e.e``; ``|u|^2`` and ``u.e`` are matrix products with the
    points, so no [N, 24, C, 3] tensor is built (this runs at every root-finding iteration)."""
    a, e = start.reshape(-1, 3), (end - start).reshape(-1, 3)
    ee = (e * e).sum(-1).clamp_min(1e-12)
    ue = points @ e.T - (a * e).sum(-1)
    uu = (points * points).sum(-1, keepdim=True) - 2 * points @ a.T + (a * a).sum(-1)
    t = (ue / ee).clamp(0.0, 1.0)
    squared = (uu - 2 * t * ue + t * t * ee).clamp_min(0.0)
    return (squared.view(len(points), *start.shape[:2]).amin(dim=-1) + 1e-12).sqrt()  # + eps: finite gradient on a bone


def pose_transforms(model: BodyModel, body_pose: Tensor) -> Tensor:
    """Bone transforms ``B_k`` [B, 24, 4, 4] of body poses relative to the canonical (rest) pose, no global
    orientation or translation. ``body_pose`` is axis-angle [B, 69] or [B, 23, 3]."""
    body_pose = torch.as_tensor(body_pose, dtype=model.dtype, device=model.device)
    if body_pose.ndim == 3 and body_pose.shape[1:] == (N_JOINTS - 1, 3):
        body_pose = body_pose.reshape(len(body_pose), -1)
    if body_pose.ndim != 2 or body_pose.shape[1] != 3 * (N_JOINTS - 1):
        raise ValueError(f"body_pose must be axis-angle [B, 69] or [B, 23, 3], got {tuple(body_pose.shape)}")
    with torch.no_grad():
        return model(body_pose=body_pose, return_verts=False, return_full_pose=False).transforms


def _check_transforms(transforms: Any, like: Tensor) -> Tensor:
    transforms = torch.as_tensor(transforms).to(like)
    if transforms.shape != (N_JOINTS, 4, 4):
        raise ValueError(f"transforms must be one pose's bone transforms [24, 4, 4], got {tuple(transforms.shape)}")
    return transforms


def deform(points: Tensor, weights: Tensor, transforms: Tensor) -> Tensor:
    """``d(x_c, B) = sum_k w_k B_k x_c``: points [N, 3], weights [N, 24], one pose [24, 4, 4] -> [N, 3]."""
    return skin(points, weights, transforms)


def _apply_inverse(transforms: Tensor, points: Tensor) -> Tensor:
    """``B^{-1} x`` for rigid transforms [..., 4, 4] and points [..., 3] (``R^T (x - t)``)."""
    rotation, translation = transforms[..., :3, :3], transforms[..., :3, 3]
    return ((points - translation)[..., None, :] @ rotation)[..., 0, :]


# ---------------------------------------------------------------------------------------------------------------
# The two fields


@dataclass(frozen=True)
class AnimatableConfig:
    """Architecture and root finding of :class:`AnimatableBody` (what ``config.json`` must hold to rebuild it)."""

    occupancy_hidden: tuple[int, ...] = (128, 128, 128, 128)  # widths of the canonical occupancy MLP
    weight_hidden: tuple[int, ...] = (64, 64, 64)  # widths of the skinning-weight MLP g_phi
    frequencies: int = 4  # octaves of NeRF's positional encoding of x_c before the occupancy MLP (0: x only)
    tau: float = 0.05  # metres: temperature of the nearest-bone initialisation of the weights
    candidates: int = 3  # K: root-finding starts, at the inverse transforms of the K nearest posed bones
    iterations: int = 15  # Broyden iterations at most
    tolerance: float = 1e-4  # metres: a root's residual |d(x_c) - x_p| must be below this to be kept

    def check(self, source: str = "config") -> None:
        for name in ("occupancy_hidden", "weight_hidden"):
            widths = getattr(self, name)
            if not (len(widths) >= 1 and all(isinstance(w, int) and w >= 8 for w in widths)):
                raise ValueError(f"{source}: {name} must be a non-empty list of integers >= 8, got {widths!r}")
        if not (isinstance(self.frequencies, int) and 0 <= self.frequencies <= 12):
            raise ValueError(f"{source}: frequencies must be an integer in [0, 12], got {self.frequencies!r}")
        if not (isinstance(self.tau, (int, float)) and math.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"{source}: tau must be a positive number, got {self.tau!r}")
        if not (isinstance(self.candidates, int) and 1 <= self.candidates <= N_JOINTS):
            raise ValueError(f"{source}: candidates must be an integer in [1, {N_JOINTS}], got {self.candidates!r}")
        if not (isinstance(self.iterations, int) and self.iterations >= 1):
            raise ValueError(f"{source}: iterations must be a positive integer, got {self.iterations!r}")
        if not (isinstance(self.tolerance, (int, float)) and self.tolerance > 0):
            raise ValueError(f"{source}: tolerance must be a positive number, got {self.tolerance!r}")


def _zero(layer: nn.Linear) -> nn.Linear:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class SkinningField(nn.Module):
    """``w(x_c) = softmax(g_phi(x_c) - d(x_c) / tau)`` [N, 24] (module docstring); ``g_phi`` starts at zero."""

    segment_start: Tensor
    segment_end: Tensor

    def __init__(self, start: Tensor, end: Tensor, hidden: Sequence[int] = (64, 64, 64), tau: float = 0.05) -> None:
        super().__init__()
        self.register_buffer("segment_start", start.float().clone())
        self.register_buffer("segment_end", end.float().clone())
        self.tau = tau
        self.net = mlp(3, tuple(hidden), N_JOINTS, activation=nn.Softplus, out_init=_zero)  # smooth: J exists

    def prior_logits(self, x: Tensor) -> Tensor:
        return -segment_distances(x, self.segment_start.to(x), self.segment_end.to(x)) / self.tau

    def logits(self, x: Tensor) -> Tensor:
        return self.net(x) + self.prior_logits(x)

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.logits(x), dim=-1)


class AnimatableBody(nn.Module):
    """Canonical occupancy ``o(x_c)`` and skinning weights ``w(x_c)``; :meth:`posed_logits` is ``o(x_p)``."""

    bounds: Tensor

    def __init__(self, start: Tensor, end: Tensor, bounds: Tensor,
                 config: AnimatableConfig = AnimatableConfig()) -> None:  # noqa: B008 (frozen dataclass)  # fmt: skip
        super().__init__()
        config.check()
        self.config = config
        # The encoding lets the ReLU MLP fit the limbs' few-centimetre curvature in hundreds rather than thousands
        # of steps.
        self.encoding = PositionalEncoding(3, config.frequencies)
        self.occupancy = ImplicitNetwork(config.occupancy_hidden, activation="relu", geometric_init=False,
                                         in_dim=self.encoding.out_dim)  # fmt: skip
        self.skinning = SkinningField(start, end, config.weight_hidden, config.tau)
        self.register_buffer("bounds", bounds.float().clone())  # [2, 3]: canonical box where roots may lie

    @classmethod
    def for_model(cls, model: BodyModel, config: AnimatableConfig = AnimatableConfig()) -> AnimatableBody:  # noqa: B008
        """Fields for ``model``'s mean shape: bone segments from its rest joints, bounds from its rest mesh."""
        with torch.no_grad():
            rest = model()
        start, end = bone_segments(rest.joints[0].float().cpu(), model.parents.tolist())
        vertices = rest.vertices[0].float().cpu()
        bounds = torch.stack([vertices.amin(0) - CANONICAL_MARGIN, vertices.amax(0) + CANONICAL_MARGIN])
        return cls(start, end, bounds, config)

    def canonical_logits(self, x_c: Tensor) -> Tensor:
        """``o(x_c)`` [N], logits of canonical points [N, 3]."""
        return self.occupancy(self.encoding(x_c))

    def weights(self, x_c: Tensor) -> Tensor:
        return self.skinning(x_c)

    def posed_logits(self, x_p: Tensor, transforms: Tensor) -> Tensor:
        """``o(x_p)`` [N] for posed points [N, 3] under one pose's bone transforms [24, 4, 4]."""
        x_p = check_points(x_p, "x_p").to(self.bounds)
        transforms = _check_transforms(transforms, self.bounds)
        roots, valid = self.correspondences(x_p, transforms)
        n, k = valid.shape
        logits = torch.full((n, k), -math.inf, dtype=x_p.dtype, device=x_p.device)
        if valid.any():
            point, candidate = valid.nonzero(as_tuple=True)
            x_c = implicit_roots(self.weights, roots[point, candidate], x_p[point], transforms)
            logits = logits.index_put((point, candidate), self.canonical_logits(x_c))
        best = logits.max(dim=1).values
        return torch.where(valid.any(dim=1), best, torch.full_like(best, OUTSIDE_LOGIT))

    def correspondences(self, x_p: Tensor, transforms: Tensor) -> tuple[Tensor, Tensor]:
        """Canonical roots [N, K, 3] of ``d(x_c) = x_p`` and which are kept [N, K] (converged, inside bounds)."""
        with torch.no_grad():
            starts = candidate_starts(x_p, transforms, self.skinning.segment_start, self.skinning.segment_end,
                                      self.config.candidates)  # fmt: skip
            roots, residual = find_roots(self.weights, x_p, transforms, starts, self.config.iterations,
                                        self.config.tolerance)
            inside = ((roots >= self.bounds[0]) & (roots <= self.bounds[1])).all(dim=-1)
            return roots, (residual < self.config.tolerance) & inside


# ---------------------------------------------------------------------------------------------------------------
# Root finding and the implicit gradient

WeightField = Callable[[Tensor], Tensor]


def candidate_starts(x_p: Tensor, transforms: Tensor, start: Tensor, end: Tensor, k: int) -> Tensor:
    """``B_j^{-1} x_p`` [N, K, 3] for the ``K`` bones ``j`` whose posed segments lie nearest to ``x_p``."""
    rotation, translation = transforms[:, None, :3, :3], transforms[:, None, :3, 3]  # [24, 1, 3, 3], [24, 1, 3]
    posed_start = (rotation @ start.to(x_p)[..., None])[..., 0] + translation
    posed_end = (rotation @ end.to(x_p)[..., None])[..., 0] + translation
    bones = segment_distances(x_p, posed_start, posed_end).topk(k, dim=1, largest=False).indices  # [N, K]
    return _apply_inverse(transforms[bones], x_p[:, None].expand(-1, k, 3))


def find_roots(weight_field: WeightField, x_p: Tensor, transforms: Tensor, starts: Tensor,
               iterations: int = 15, tolerance: float = 1e-7) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Broyden's method for ``d(x_c) = x_p`` from each start: ``x_p`` [N, 3], ``starts`` [N, K, 3], one pose's
    transforms [24, 4, 4]. Returns the best iterate [N, K, 3] and its residual norm [N, K]. Problems whose residual
    falls below ``tolerance`` stop iterating (the rest keep going), so most of the work is spent on the few hard
    starts near joints. Call it under ``torch.no_grad``."""
    n, k, _ = starts.shape
    target = x_p[:, None].expand(n, k, 3).reshape(-1, 3)

    def residual(x: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
        w = weight_field(x)
        return deform(x, w, transforms) - target[index], w

    x = starts.reshape(-1, 3).clone()
    everything = torch.arange(len(x), device=x.device)
    g, w = residual(x, everything)
    # H_0: the inverse of the Jacobian without the weights' gradient, sum_k w_k R_k (exact where w is constant).
    h = torch.linalg.inv((w @ transforms[:, :3, :3].reshape(-1, 9)).view(-1, 3, 3))
    best_x, best_r = x.clone(), g.norm(dim=-1)
    active = everything[best_r >= tolerance]
    for _ in range(iterations):
        if len(active) == 0:
            break
        h_a, g_a = h[active], g[active]
        dx = -(h_a @ g_a[..., None])[..., 0]
        x_new = x[active] + dx
        g_new, _ = residual(x_new, active)
        dg = g_new - g_a
        h_dg = (h_a @ dg[..., None])[..., 0]
        denominator = (dx * h_dg).sum(-1, keepdim=True)
        usable = denominator.abs() > 1e-12  # a degenerate step leaves H as it was
        update = (dx - h_dg)[..., :, None] * (dx[..., None, :] @ h_a) / torch.where(usable, denominator, 1.0)[..., None]
        h[active] = h_a + torch.where(usable[..., None], update, 0.0)
        x[active], g[active] = x_new, g_new
        r = g_new.norm(dim=-1)
        better = r < best_r[active]
        best_x[active[better]], best_r[active[better]] = x_new[better], r[better]
        active = active[(r >= tolerance) & torch.isfinite(r)]
    return best_x.reshape(n, k, 3), best_r.reshape(n, k)


def deformation_jacobian(weight_field: WeightField, x_c: Tensor, transforms: Tensor) -> Tensor:
    """``J = dd/dx_c`` [N, 3, 3] at points [N, 3] (autograd, three backward passes), including the weights' gradient."""
    with torch.enable_grad():
        x = x_c.detach().requires_grad_(True)
        d = deform(x, weight_field(x), transforms)
        rows = [torch.autograd.grad(d[:, i].sum(), x, retain_graph=i < 2)[0] for i in range(3)]
    return torch.stack(rows, dim=1)


def implicit_roots(weight_field: WeightField, roots: Tensor, x_p: Tensor, transforms: Tensor) -> Tensor:
    """``x_c = x_c* - J^{-1}.detach() (d(x_c*) - x_p)`` [N, 3]: the value of the roots [N, 3] with the gradient of the
    implicit function theorem to the weight field's parameters (and ``J^{-1}`` to ``x_p``)."""
    jacobian_inverse = torch.linalg.inv(deformation_jacobian(weight_field, roots, transforms)).detach()
    x_star = roots.detach()
    residual = deform(x_star, weight_field(x_star), transforms) - x_p
    return x_star - (jacobian_inverse @ residual[..., None])[..., 0]


# ---------------------------------------------------------------------------------------------------------------
# Posing meshes


def rigid_weights(body: AnimatableBody, x_c: Tensor) -> Tensor:
    """One-hot weights [N, 24] of the nearest rest bone (the rigid baseline, and ``tau -> 0`` of the initialisation)."""
    nearest = body.skinning.prior_logits(x_c).argmax(dim=1)
    return F.one_hot(nearest, N_JOINTS).to(x_c.dtype)


def pose_mesh(body: AnimatableBody, vertices: Any, transforms: Tensor, weights: str | Tensor = "learned") -> Tensor:
    """Canonical vertices [V, 3] posed by one pose [24, 4, 4]: ``v_p = sum_k w_k(v_c) B_k v_c`` [V, 3] with the learned
    weights, ``"rigid"`` nearest-bone weights, or given weights [V, 24]."""
    x_c = check_points(torch.as_tensor(vertices), "vertices").to(body.bounds)
    transforms = _check_transforms(transforms, body.bounds)
    with torch.no_grad():
        if isinstance(weights, Tensor):
            w = weights.to(x_c)
        elif weights == "learned":
            w = body.weights(x_c)
        elif weights == "rigid":
            w = rigid_weights(body, x_c)
        else:
            raise ValueError(f"weights must be 'learned', 'rigid' or a [V, 24] tensor, got {weights!r}")
        if w.shape != (len(x_c), N_JOINTS):
            raise ValueError(f"weights must have shape [{len(x_c)}, {N_JOINTS}], got {tuple(w.shape)}")
        return deform(x_c, w, transforms)


def canonical_mesh(body: AnimatableBody, resolution: int = 128, largest_component: bool = True):  # -> meshing.Mesh
    """The canonical surface ``o(x_c) = 0`` by marching cubes (coarse to fine) inside the canonical bounds.

    ``largest_component`` keeps the connected piece with the most faces: canonical space that no posed training
    point maps to gets no supervision, and the occupancy network may leave small blobs there."""
    from vision3d.implicit.meshing import Mesh, extract_mesh

    lo, hi = body.bounds.cpu().tolist()
    mesh = extract_mesh(body.canonical_logits, bounds=(lo, hi), resolution=resolution, level=0.0, inside="positive",
                        device=body.bounds.device)  # fmt: skip
    if not largest_component:
        return mesh
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n, faces = len(mesh.vertices), mesh.faces
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    keep_label = np.bincount(label[faces[:, 0]]).argmax()
    kept_faces = faces[label[faces[:, 0]] == keep_label]
    used = np.unique(kept_faces)
    new_index = np.full(n, -1)
    new_index[used] = np.arange(len(used))
    return Mesh(mesh.vertices[used], new_index[kept_faces], mesh.normals[used], n_evaluations=mesh.n_evaluations)


# ---------------------------------------------------------------------------------------------------------------
# Data: posed meshes of one body, labelled points


def selected_poses(clips: Sequence[str], per_clip: int, mirrors: bool = True) -> Tensor:
    """Body poses [P, 69]: ``per_clip`` frames evenly spaced through each clip (and each mirror)."""
    from vision3d.body.synthetic import clip_motions

    poses = []
    for motion in clip_motions(list(clips), mirrors=mirrors):
        frames = np.linspace(0, len(motion.poses) - 1, per_clip).round().astype(int)
        poses.append(torch.as_tensor(np.asarray(motion.poses)[frames, 1:], dtype=torch.float32).reshape(per_clip, -1))
    return torch.cat(poses)


def inside_mesh(points: Tensor, vertices: Tensor, faces: Tensor) -> Tensor:
    """Inside/outside [N] bool of points [N, 3] for a closed triangle mesh: the generalized winding number
    (:func:`vision3d.scenes.mesh.winding_number`) above 1/2. Robust where closed parts overlap (there it is 2)."""
    from vision3d.scenes.mesh import winding_number

    points = check_points(points, "points")
    return winding_number(points, torch.as_tensor(vertices).to(points), torch.as_tensor(faces).long()) > 0.5


@dataclass
class PosedSamples:
    """Labelled points of posed meshes: ``points`` [P, S, 3], ``inside`` [P, S] bool, ``transforms`` [P, 24, 4, 4],
    ``vertices`` [P, V, 3] (the true posed meshes), ``faces`` [F, 3]."""

    points: Tensor
    inside: Tensor
    transforms: Tensor
    vertices: Tensor
    faces: Tensor = field(repr=False)


def posed_samples(model: BodyModel, body_pose: Tensor, per_pose: int, seed: int = 0,
                  near_std: tuple[float, float] = (0.01, 0.04), box_margin: float = 0.1) -> PosedSamples:  # fmt: skip
    """``per_pose`` points for each pose: half near the surface (surface samples plus Gaussian offsets of the two
    ``near_std``, a quarter each), half uniform in the posed bounding box grown by ``box_margin``; labelled by the
    generalized winding number of the true posed mesh (``> 1/2`` is inside, robust to the limbs' overlapping parts)."""
    from vision3d.scenes.mesh import sample_mesh_surface

    if per_pose < 4:
        raise ValueError(f"per_pose must be at least 4, got {per_pose}")
    transforms = pose_transforms(model, body_pose)
    with torch.no_grad():
        vertices = model(body_pose=torch.as_tensor(body_pose, dtype=model.dtype)).vertices.float().cpu()
    faces = model.faces.long().cpu()
    generator = torch.Generator().manual_seed(seed)
    n_near = per_pose // 2
    stds = torch.tensor(near_std).repeat_interleave(torch.tensor([n_near // 2, n_near - n_near // 2]))
    points, inside = [], []
    for i, verts in enumerate(vertices):
        surface, _ = sample_mesh_surface(verts, faces, n_near, seed=seed * 100_003 + i)
        near = torch.from_numpy(surface).float() + stds[:, None] * torch.randn(n_near, 3, generator=generator)
        lo, hi = verts.amin(0) - box_margin, verts.amax(0) + box_margin
        box = lo + (hi - lo) * torch.rand(per_pose - n_near, 3, generator=generator)
        pts = torch.cat([near, box])
        points.append(pts)
        inside.append(inside_mesh(pts, verts, faces))
    return PosedSamples(torch.stack(points), torch.stack(inside), transforms.float().cpu(), vertices, faces)


# ---------------------------------------------------------------------------------------------------------------
# Training


def train(body: AnimatableBody, data: PosedSamples, steps: int, batch_poses: int = 8, points_per_pose: int = 256,
          lr: float = 3e-3, seed: int = 0, progress: bool = False, on_step: Callable[[int, float], None] | None = None,
          ) -> list[float]:  # fmt: skip
    """Adam on the BCE of ``o(x_p)`` over random points of random training poses (cosine-decayed learning rate);
    returns the loss per step. Stops cleanly on Ctrl-C (the losses so far are returned; the fields keep their last
    completed step), so that a CLI can still save."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(body.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(steps, 1))
    n_poses, per_pose = data.inside.shape
    losses: list[float] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="animatable", unit="step")
    try:
        for step in range(steps):
            poses = torch.randint(n_poses, (batch_poses,), generator=generator).tolist()
            rows = torch.randint(per_pose, (batch_poses, points_per_pose), generator=generator)
            # One pose at a time: skinning under one pose is a [N, 24] x [24, 12] product.
            pairs = list(zip(poses, rows, strict=True))
            logits = torch.cat([body.posed_logits(data.points[p, r], data.transforms[p]) for p, r in pairs])
            labels = torch.cat([data.inside[p, r] for p, r in pairs]).float()
            loss = F.binary_cross_entropy_with_logits(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            if on_step is not None:
                on_step(step, losses[-1])
            if bar is not None:
                bar.update(1)
                bar.set_postfix(bce=f"{losses[-1]:.4f}")
    except KeyboardInterrupt:
        print(f"\ninterrupted after {len(losses)} steps")
    finally:
        if bar is not None:
            bar.close()
    return losses


# ---------------------------------------------------------------------------------------------------------------
# Evaluation


def surface_samples(vertices: Tensor, faces: Tensor, n: int, seed: int = 0, exposed_only: bool = False) -> Tensor:
    """``n`` points uniform by area on a mesh [n, 3] (float64). ``exposed_only`` drops points buried inside another
    closed part (winding number above one; the true mesh's limbs overlap, and a buried triangle is no surface).
    The winding numbers are float32: a point on an exposed face has ``w ~ 1/2``, a buried one ``w ~ 3/2``."""
    from vision3d.scenes.mesh import sample_mesh_surface, winding_number

    kept, total, round_ = [], 0, 0
    while total < n:
        points = torch.from_numpy(sample_mesh_surface(vertices, faces, 2 * n if exposed_only else n,
                                                      seed=seed * 1_000_003 + round_)[0])  # fmt: skip
        if exposed_only:
            points = points[winding_number(points.float(), vertices.float(), faces) < 1.0]
        kept.append(points.double())
        total, round_ = total + len(points), round_ + 1
    return torch.cat(kept)[:n]


def mesh_scores(pred_vertices: Tensor, pred_faces: Tensor, gt_samples: Tensor, n: int, seed: int) -> dict[str, float]:
    """Chamfer-L1 (mm) and F-score at 1 cm of a predicted mesh against samples of the true surface."""
    return point_scores(surface_samples(pred_vertices, pred_faces, n, seed), gt_samples)


def point_scores(pred: Tensor, gt: Tensor) -> dict[str, float]:
    """Chamfer-L1 (mm) and F-score at 1 cm between two point sets."""
    from vision3d.implicit.metrics import chamfer_distance, f_score

    return {"chamfer_mm": 1000 * chamfer_distance(pred, gt).l1, "f_1cm": f_score(pred, gt, 0.01).f}


def evaluate(body: AnimatableBody, model: BodyModel, body_pose: Tensor, resolution: int = 128, samples: int = 20_000,
             seed: int = 0, oracle: bool = True, floor: bool = False) -> dict[str, dict[str, float]]:  # fmt: skip
    """Mean Chamfer-L1 (mm) and F-score at 1 cm over poses [P, 69] for the canonical mesh posed with the learned
    weights, rigid nearest-bone weights, not posed, and (``oracle``) the model's true weights at the nearest rest
    vertex. ``floor`` adds the score of a second, independent sample set of the true mesh: what ``samples`` points
    per surface can resolve (about 4 mm at 20,000 points on this body). Returns ``{method: {"chamfer_mm",
    "f_1cm"}}``."""
    mesh = canonical_mesh(body, resolution)
    canonical = torch.as_tensor(mesh.vertices)
    faces = torch.as_tensor(mesh.faces)
    transforms = pose_transforms(model, body_pose).float().cpu()
    with torch.no_grad():
        truth = model(body_pose=torch.as_tensor(body_pose, dtype=model.dtype)).vertices.float().cpu()
        rest = model().vertices[0].float().cpu()
    weights: dict[str, str | Tensor] = {"learned": "learned", "rigid": "rigid"}
    if oracle:
        nearest = torch.cdist(canonical, rest).argmin(dim=1)
        weights["oracle"] = model.weights.float().cpu()[nearest]
    scores: dict[str, list[dict[str, float]]] = {name: [] for name in [*weights, "unposed", *(["floor"] * floor)]}
    for i, pose in enumerate(transforms):
        gt = surface_samples(truth[i], model.faces.long().cpu(), samples, seed + i, exposed_only=True)
        for name, w in weights.items():
            scores[name].append(mesh_scores(pose_mesh(body, canonical, pose, w), faces, gt, samples, seed + i))
        scores["unposed"].append(mesh_scores(canonical, faces, gt, samples, seed + i))
        if floor:
            other = surface_samples(truth[i], model.faces.long().cpu(), samples, seed + 7919 + i, exposed_only=True)
            scores["floor"].append(point_scores(other, gt))
    return {name: {key: float(np.mean([r[key] for r in rows])) for key in rows[0]} for name, rows in scores.items()}


METHOD_LABELS = {
    "learned": "learned weights (SNARF-style)",
    "rigid": "rigid nearest-bone weights",
    "unposed": "canonical mesh, not posed",
    "oracle": "model's true weights (reference)",
    "floor": "true mesh, other samples (floor)",
}


def markdown_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """``results[poses][method]`` -> one row per (poses, method)."""
    rows = [{"poses": poses, "method": METHOD_LABELS.get(method, method), **values}
            for poses, by_method in results.items() for method, values in by_method.items()]  # fmt: skip
    return tables.markdown_table(rows, {"poses": "{poses}", "posing": "{method}", "Chamfer-L1 (mm)": "{chamfer_mm:.1f}",
                                        "F-score @ 1 cm": "{f_1cm:.3f}"})  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints


def default_animatable_path() -> Path:
    return Path(__file__).resolve().parent / "data" / "animatable"


def save_animatable(body: AnimatableBody, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``directory/checkpoint.pt`` (the plain state dict, float32) and ``directory/config.json``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().float().cpu().clone() for name, tensor in body.state_dict().items()}
    tmp = directory / (CHECKPOINT_NAME + ".tmp")
    torch.save(state, tmp)
    tmp.replace(directory / CHECKPOINT_NAME)  # atomic: a Ctrl-C mid-save keeps the previous weights
    config = {"architecture": asdict(body.config), **(extra or {})}
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return directory / CHECKPOINT_NAME


def load_animatable(directory: str | Path, model: BodyModel | None = None) -> AnimatableBody:
    """Rebuild the fields from :func:`save_animatable`'s directory; ``ValueError`` naming the file if anything is
    off (unreadable config, unknown keys, weights that do not fit)."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_NAME, directory / CHECKPOINT_NAME
    try:
        raw = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{config_path}: cannot read the animatable-body config ({error})") from error
    if not isinstance(raw, dict) or not isinstance(raw.get("architecture"), dict):
        raise ValueError(f"{config_path}: expected an object with an 'architecture' object")
    fields = set(AnimatableConfig.__dataclass_fields__)
    unknown = set(raw["architecture"]) - fields
    if unknown:
        raise ValueError(f"{config_path}: unknown architecture keys {sorted(unknown)} (expected {sorted(fields)})")
    arch = dict(raw["architecture"])
    for name in ("occupancy_hidden", "weight_hidden"):
        if name in arch:
            if not isinstance(arch[name], list):
                raise ValueError(f"{config_path}: {name} must be a list of widths, got {arch[name]!r}")
            arch[name] = tuple(arch[name])
    config = AnimatableConfig(**arch)
    config.check(str(config_path))
    body = AnimatableBody.for_model(model or BodyModel.default(device="cpu"), config)
    load_weights_checked(weights_path, body, "animatable-body weights")
    return body.eval()


_DEFAULT: AnimatableBody | None = None


def default_animatable() -> AnimatableBody:
    """The shipped fields (``vision3d/body/data/animatable``), loaded once."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_animatable(default_animatable_path())
    return _DEFAULT


# ---------------------------------------------------------------------------------------------------------------
# CLI


def report(body: AnimatableBody, model: BodyModel, per_clip: int, resolution: int, samples: int) -> str:
    """The markdown table: unseen TEST_CLIPS poses and training poses (TRAIN_CLIPS, no mirrors), with the floor."""
    from vision3d.body.synthetic import TEST_CLIPS, TRAIN_CLIPS

    results = {}
    for label, clips in (("unseen", TEST_CLIPS), ("training clips", TRAIN_CLIPS)):
        poses = selected_poses(clips, per_clip, mirrors=False)
        name = f"{label}: {', '.join(clips)} ({len(poses)} poses)"
        results[name] = evaluate(body, model, poses, resolution, samples, floor=True)
    return markdown_table(results)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vision3d.body.animatable", description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--train", action="store_true", help="fit the fields to posed meshes of TRAIN_CLIPS and save")
    mode.add_argument("--report", action="store_true", help="Chamfer table on unseen TEST_CLIPS poses")
    parser.add_argument("--out", type=Path, default=default_animatable_path(), help="directory for --train's weights")
    parser.add_argument("--weights", type=Path, default=default_animatable_path(), help="directory for --report")
    parser.add_argument("--steps", type=int, default=2000, help="Adam steps")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (cosine-decayed to 0)")
    parser.add_argument("--train-frames", type=int, default=8, help="frames per training clip and per mirror")
    parser.add_argument("--points", type=int, default=4096, help="labelled points per training pose")
    parser.add_argument("--batch-poses", type=int, default=8, help="poses per step")
    parser.add_argument("--batch-points", type=int, default=256, help="points per pose per step")
    parser.add_argument("--report-frames", type=int, default=2, help="frames per clip in the report")
    parser.add_argument("--resolution", type=int, default=128, help="marching-cubes grid of the canonical mesh")
    parser.add_argument("--samples", type=int, default=20_000, help="surface samples per mesh for Chamfer")
    parser.add_argument("--seed", type=int, default=0, help="seed of the points and the initial weights")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = BodyModel.default(device="cpu")
    if args.report:
        print(report(load_animatable(args.weights, model), model, args.report_frames, args.resolution, args.samples))
        return
    from vision3d.body.synthetic import TRAIN_CLIPS

    torch.manual_seed(args.seed)
    start = time.time()
    poses = selected_poses(TRAIN_CLIPS, args.train_frames)
    data = posed_samples(model, poses, args.points, seed=args.seed)
    print(f"{len(poses)} training poses x {args.points} labelled points in {time.time() - start:.0f} s")
    body = AnimatableBody.for_model(model)
    start = time.time()
    losses = train(body, data, args.steps, args.batch_poses, args.batch_points, args.lr, args.seed, progress=True)
    record = {"steps_done": len(losses), "steps": args.steps, "lr": args.lr, "train_clips": list(TRAIN_CLIPS),
              "train_frames_per_clip": args.train_frames, "mirrors": True, "points_per_pose": args.points,
              "batch_poses": args.batch_poses, "batch_points": args.batch_points, "seed": args.seed,
              "train_seconds": round(time.time() - start, 1), "threads": args.threads,
              "final_bce_mean_last_100": round(float(np.mean(losses[-100:])), 5) if losses else None}  # fmt: skip
    path = save_animatable(body, args.out, {"training": record})
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) after {len(losses)} steps")


if __name__ == "__main__":
    main()
