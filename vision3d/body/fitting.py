r"""Fitting a body model to 2D keypoints by optimization (SMPLify, Bogo et al., ECCV 2016), and 3D joint errors.

    from vision3d.body import FitConfig, PerspectiveCamera, fit_to_keypoints, pa_mpjpe
    camera = PerspectiveCamera(focal=1000.0, principal_point=(256.0, 256.0))
    fit = fit_to_keypoints(model, keypoints, confidences, camera)   # keypoints [B, 24, 2] px, confidences [B, 24]
    fit = fit_to_keypoints(model, keypoints, confidences, camera, FitConfig(penalty="huber", multi_start=False))
    fit.joints3d                                                     # [B, 24, 3], camera frame, metres
    pa_mpjpe(fit.joints3d, gt_joints)                                # [B], units of the inputs

The objective (course notation), for each batch element independently:

.. math::

    E(\beta, \theta, K) = E_J(\beta, \theta; K, x, c) + \lambda_\theta E_\theta(\theta)
                          + \lambda_a E_a(\theta) + \lambda_\beta E_\beta(\beta)

- Data term ``E_J = sum_j c_j rho_sigma(|| Pi_K(J_j(beta, theta) + t) - x_j ||)``: the robust penalty ``rho`` of the
  reprojection error in pixels of joint ``j``, weighted by its detector confidence ``c_j`` (``c_j = 0``: not
  visible, no influence). ``rho`` is Geman-McClure, ``rho(r) = sigma^2 r^2 / (sigma^2 + r^2)``, or Huber (see
  :func:`robust_penalty`): both are ``r^2`` near 0, so small errors are least squares, but an outlier detection
  costs at most ``sigma^2`` (Geman-McClure) or grows only linearly (Huber) instead of dragging the whole body.
- Pose prior ``E_theta = sum_k ((theta_k - mu_k) / s_k)^2`` over the 69 axis-angle components of the 23 body
  joints: a Gaussian with diagonal covariance (SMPLify uses a mixture of Gaussians learned from mocap; a single
  diagonal Gaussian, by default centred on the rest pose, is the simplest prior that still keeps the
  unobservable degrees of freedom -- rotations about a bone's own axis, depth ambiguities -- at plausible values).
  With ``FitConfig(pose_prior="gmm")`` (or a :class:`~vision3d.body.pose_prior.GaussianMixturePrior`) it is
  SMPLify's ``E_theta = min_k (-log w_k + 1/2 (theta - mu_k)^T Sigma_k^{-1} (theta - mu_k) + 1/2 log det Sigma_k)``
  of a full-covariance Gaussian mixture fitted to mocap frames (:mod:`vision3d.body.pose_prior`; the shipped one
  saw the training clips only, and :func:`~vision3d.body.pose_prior.gmm_fit_config` sets its tuned weight): it
  knows how joints move together, which narrows depth ambiguities the diagonal Gaussian leaves open -- on poses
  like its training motions; ``benchmarks/bench_pose_prior.py`` measures how much carries over to new motion.
- Joint-limit term ``E_a = sum_{knees, elbows} max(0, -s_j a_j)^2``: a squared hinge on the one angle of each knee
  (``x``) and elbow (``y``) that flexes it, with ``s_j`` the sign of natural flexion. A bent limb projects the same
  whether it bends forwards or backwards; the hinge picks the anatomically possible side (SMPLify uses
  ``exp(-s_j a_j)``; the hinge is zero on the allowed side, so it never biases a correct pose).
- Shape prior ``E_beta = ||beta||^2``: the betas are PCA coefficients in units of standard deviations, so this is
  the Gaussian shape prior.
- ``K``: a :class:`PerspectiveCamera` with known focal length and principal point, whose translation relative to
  the body (``t``, the model's ``transl``) is unknown, or a :class:`WeakPerspectiveCamera` whose scale and 2D
  translation are unknown. The body lives in the camera frame (OpenCV: ``x`` right, ``y`` down, ``z`` forward);
  SMPL's ``y``-up, ``z``-forward body faces the camera after a rotation by ``pi`` about ``x``, the default initial
  global orientation.

Optimization, staged as in SMPLify:

1. Camera: ``t`` (or the weak-perspective scale and translation) and the global orientation from the torso joints
   only, with ``beta = 0`` and ``theta_body = 0``. The torso is nearly rigid, so this is a well-posed small problem;
   it is initialised by similar triangles (depth ``= f * torso size in metres / torso size in pixels``).
2. Body: everything, with the prior weights annealed from large to the given values (SMPLify's schedule): early
   iterations keep the pose near the prior while the limbs are still far from the keypoints. From the T-pose the
   gradient cannot tell whether a limb tilts towards or away from the camera (both shorten its image alike), and
   the two sides are separate local minima; so by default the stage runs, vectorized, from 16 starts with the
   shoulders and hips tilted either way (:func:`depth_hypotheses`) and keeps the lowest-energy one per sample.

Both stages run Adam for a fixed number of iterations from a fixed initialisation, so a fit is deterministic; the
losses of the batch elements are summed, and Adam's updates are per parameter entry, so the batch elements are
fitted independently of each other (a sample's result does not depend on the rest of its batch).

Rotations are optimized in the 6D representation (Zhou et al., CVPR 2019): it is continuous, with no singularity
or wrap-around at angle ``pi`` (where axis-angle jumps from ``pi * n`` to ``-pi * n``) and no unit-norm constraint
(quaternions); the global orientation starts at a rotation by ``pi``, exactly where axis-angle is worst. The priors
still need angles, which come from the current rotation matrices through the (stable) matrix-to-axis-angle map.

Evaluation: :func:`mpjpe` (mean per-joint position error) and :func:`pa_mpjpe` (after a Procrustes similarity
alignment, Umeyama 1991, which removes the global rotation, scale and translation that a monocular fit cannot know).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from vision3d.body.model import BodyModel
from vision3d.body.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    rotation_6d_to_matrix,
)
from vision3d.body.skeleton import JOINT_INDEX, N_JOINTS

if TYPE_CHECKING:
    from vision3d.body.pose_prior import GaussianMixturePrior

__all__ = [
    "FitConfig",
    "FitEnergy",
    "FitResult",
    "FitUnknowns",
    "PerspectiveCamera",
    "TORSO_JOINTS",
    "WeakPerspectiveCamera",
    "check_fit_config",
    "default_pose_prior_std",
    "depth_hypotheses",
    "fit_to_keypoints",
    "initial_camera",
    "joint_limit_prior",
    "mpjpe",
    "pa_mpjpe",
    "pose_prior",
    "procrustes_align",
    "project",
    "reprojection_loss",
    "robust_penalty",
    "weighted_centroid_and_spread",
]

TORSO_JOINTS: tuple[int, ...] = tuple(
    JOINT_INDEX[name]
    for name in (
        "pelvis",
        "left_hip",
        "right_hip",
        "spine1",
        "spine2",
        "spine3",
        "neck",
        "left_shoulder",
        "right_shoulder",
    )
)
"""Joints used by the camera stage: they move with the global orientation and the (nearly rigid) spine only."""

# (joint, axis, sign of natural flexion): knees flex about +x (the shin swings backwards, to -z in SMPL's body
# frame), the left elbow about -y and the right elbow about +y (the forearm swings forwards, to +z, from a T-pose).
JOINT_LIMITS: tuple[tuple[int, int, float], ...] = (
    (JOINT_INDEX["left_knee"], 0, 1.0),
    (JOINT_INDEX["right_knee"], 0, 1.0),
    (JOINT_INDEX["left_elbow"], 1, -1.0),
    (JOINT_INDEX["right_elbow"], 1, 1.0),
)

HINGE_OFF_AXIS_STD = 0.05  # radians: knees and elbows barely rotate about their two non-flexion axes
BALL_JOINT_STD = 0.5  # radians: every other joint component (hips, shoulders, spine, ...)
HINGE_FLEXION_STD = 1.0  # radians: flexing a knee or elbow is common, so cheap

# Out-of-plane axes of the limbs' root joints in the T-pose (arms along x swing forwards about y, legs along -y
# about x), and how far :func:`depth_hypotheses` starts each of them from the plane.
HYPOTHESIS_AXES: tuple[tuple[int, int], ...] = (
    (JOINT_INDEX["left_shoulder"], 1),
    (JOINT_INDEX["right_shoulder"], 1),
    (JOINT_INDEX["left_hip"], 0),
    (JOINT_INDEX["right_hip"], 0),
)
DEPTH_HYPOTHESIS_ANGLE = 0.5  # radians (0.3 and 0.7 did worse on the synthetic test scenes)

FACING_CAMERA = (math.pi, 0.0, 0.0)  # axis-angle: SMPL's y-up, z-forward body -> upright, facing an OpenCV camera
MIN_DEPTH = 1e-3  # metres; keeps the perspective division finite if an iterate puts a joint behind the camera

Penalty = Literal["gmof", "huber", "l2"]


# ---------------------------------------------------------------------------------------------------------------
# Cameras and projection


@dataclass(frozen=True)
class PerspectiveCamera:
    """Pinhole camera at the origin looking down ``+z`` (OpenCV axes), focal length and principal point in pixels:
    ``u = f_x X / Z + c_x``, ``v = f_y Y / Z + c_y``. ``focal`` is one value or ``(f_x, f_y)``."""

    focal: float | tuple[float, float]
    principal_point: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        focal = _pair(self.focal, "focal")
        if not all(math.isfinite(f) and f > 0 for f in focal):
            raise ValueError(f"focal length must be positive and finite, got {self.focal!r}")
        centre = _pair(self.principal_point, "principal_point", allow_scalar=False)
        if not all(math.isfinite(c) for c in centre):
            raise ValueError(f"principal_point must be finite, got {self.principal_point!r}")
        object.__setattr__(self, "focal", focal)
        object.__setattr__(self, "principal_point", centre)


@dataclass(frozen=True)
class WeakPerspectiveCamera:
    """Scaled orthographic camera: ``u = s X + t_x``, ``v = s Y + t_y`` (``s`` in pixels per metre), depth ignored.

    ``scale`` is a number or a tensor ``[B]``, ``translation`` a pair or a tensor ``[B, 2]`` (a fit returns the
    per-sample tensors). Passed to :func:`fit_to_keypoints` the values are ignored: both are unknowns there,
    initialised from the keypoints."""

    scale: float | Tensor = 1.0
    translation: tuple[float, float] | Tensor = (0.0, 0.0)

    def __post_init__(self) -> None:
        scale = torch.as_tensor(self.scale, dtype=torch.float64)
        if not bool(torch.all(torch.isfinite(scale) & (scale > 0))):
            raise ValueError(f"weak-perspective scale must be positive and finite, got {self.scale!r}")
        if torch.as_tensor(self.translation).shape[-1:] != (2,):
            raise ValueError(f"translation must be (t_x, t_y) or [B, 2], got {self.translation!r}")


Camera = PerspectiveCamera | WeakPerspectiveCamera


def _pair(value: float | Sequence[float], name: str, allow_scalar: bool = True) -> tuple[float, float]:
    if isinstance(value, (int, float)) and allow_scalar:
        return float(value), float(value)
    try:
        pair = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except TypeError as error:
        raise ValueError(f"{name} must be {'a number or ' if allow_scalar else ''}a pair, got {value!r}") from error
    if len(pair) != 2:
        raise ValueError(f"{name} must have 2 values, got {value!r}")
    return pair[0], pair[1]


def project(points: Tensor, camera: Camera) -> Tensor:
    """Pixel coordinates ``[B, N, 2]`` of camera-frame points ``[B, N, 3]`` (see the camera classes for the maps).

    Perspective depths are clamped to ``MIN_DEPTH`` so an optimizer iterate behind the camera cannot divide by 0.
    """
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape [B, N, 3], got {tuple(points.shape)}")
    if isinstance(camera, PerspectiveCamera):
        focal = points.new_tensor(camera.focal)
        centre = points.new_tensor(camera.principal_point)
        depth = points[..., 2:].clamp(min=MIN_DEPTH)
        return focal * points[..., :2] / depth + centre
    if isinstance(camera, WeakPerspectiveCamera):
        scale = torch.as_tensor(camera.scale, dtype=points.dtype, device=points.device).reshape(-1, 1, 1)
        shift = torch.as_tensor(camera.translation, dtype=points.dtype, device=points.device).reshape(-1, 1, 2)
        return scale * points[..., :2] + shift
    raise ValueError(f"camera must be a PerspectiveCamera or WeakPerspectiveCamera, got {type(camera).__name__}")


# ---------------------------------------------------------------------------------------------------------------
# Energy terms


def robust_penalty(residual: Tensor, scale: float, kind: Penalty = "gmof") -> Tensor:
    """``rho(r)`` elementwise, all ``~ r^2`` for ``|r| << scale``:

    - ``"gmof"`` Geman-McClure ``scale^2 r^2 / (scale^2 + r^2)``: bounded by ``scale^2`` (outliers stop pulling);
    - ``"huber"`` ``r^2`` for ``|r| <= scale``, else ``2 scale |r| - scale^2``: linear (gradient capped);
    - ``"l2"`` ``r^2``: plain least squares.
    """
    if not scale > 0:
        raise ValueError(f"robust penalty scale must be positive, got {scale}")
    squared = residual * residual
    if kind == "gmof":
        return scale**2 * squared / (scale**2 + squared)
    if kind == "huber":
        magnitude = residual.abs()
        return torch.where(magnitude <= scale, squared, 2.0 * scale * magnitude - scale**2)
    if kind == "l2":
        return squared
    raise ValueError(f"unknown robust penalty {kind!r} (expected 'gmof', 'huber' or 'l2')")


def reprojection_loss(
    projected: Tensor, keypoints: Tensor, confidences: Tensor, sigma: float, kind: Penalty = "gmof"
) -> Tensor:
    """``E_J`` per batch element ``[B]``: ``sum_j c_j rho(||projected_j - keypoint_j||)``, errors in pixels.

    The penalty takes the Euclidean error of the joint (not each coordinate), so it is rotation invariant in the
    image. The norm is computed as ``sqrt(. + eps)``, whose gradient stays finite at a perfect fit."""
    error = torch.sqrt(((projected - keypoints) ** 2).sum(-1) + 1e-12)
    return (confidences * robust_penalty(error, sigma, kind)).sum(-1)


def default_pose_prior_std(dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> Tensor:
    """Per-component standard deviations ``[69]`` of the default pose prior: ``BALL_JOINT_STD`` everywhere except
    knees and elbows, which are hinges -- ``HINGE_FLEXION_STD`` about the flexion axis of :data:`JOINT_LIMITS`,
    ``HINGE_OFF_AXIS_STD`` about the other two. The hinge structure matters: with three free axes an elbow can
    bend "sideways" instead of forwards, which projects the same (a twist of the upper arm is unobservable from
    joints), and the joint-limit hinge, which watches the flexion axis only, could not tell."""
    std = torch.full((N_JOINTS - 1, 3), BALL_JOINT_STD, dtype=dtype, device=device)
    for joint, axis, _ in JOINT_LIMITS:
        std[joint - 1] = HINGE_OFF_AXIS_STD
        std[joint - 1, axis] = HINGE_FLEXION_STD
    return std.reshape(-1)


def pose_prior(body_pose: Tensor, mean: Tensor | float = 0.0, std: Tensor | float = 1.0) -> Tensor:
    """``E_theta`` per batch element ``[B]``: ``sum_k ((theta_k - mu_k) / s_k)^2`` over axis-angle ``[B, 69]``."""
    return (((body_pose - mean) / std) ** 2).sum(-1)


def joint_limit_prior(body_pose: Tensor) -> Tensor:
    """``E_a`` per batch element ``[B]``: squared hinge on knees/elbows flexing the wrong way (module docstring).

    ``body_pose`` is axis-angle ``[B, 69]`` of joints 1..23 (joint ``j`` at columns ``3 (j - 1) : 3 j``)."""
    columns = [3 * (joint - 1) + axis for joint, axis, _ in JOINT_LIMITS]
    signs = body_pose.new_tensor([sign for _, _, sign in JOINT_LIMITS])
    return (torch.relu(-signs * body_pose[:, columns]) ** 2).sum(-1)


# ---------------------------------------------------------------------------------------------------------------
# Evaluation


def _check_joint_pair(pred: Tensor, target: Tensor) -> None:
    if pred.ndim != 3 or pred.shape[-1] != 3 or pred.shape != target.shape:
        raise ValueError(
            f"pred and target must both have shape [B, J, 3], got {tuple(pred.shape)} and {tuple(target.shape)}"
        )


def mpjpe(pred: Tensor, target: Tensor) -> Tensor:
    """Mean per-joint position error ``[B]``: mean over joints of ``||pred_j - target_j||``, in input units."""
    _check_joint_pair(pred, target)
    return torch.linalg.vector_norm(pred - target, dim=-1).mean(-1)


def procrustes_align(pred: Tensor, target: Tensor) -> Tensor:
    """``s R pred + t`` for the similarity ``(s, R, t)`` minimising ``sum_j ||s R p_j + t - q_j||^2`` (Umeyama).

    With centred point sets ``P, Q`` (``[J, 3]``) and ``U S V^T = svd(Q^T P)``: ``R = U D V^T`` with
    ``D = diag(1, 1, det(U V^T))`` (a proper rotation, never a reflection), ``s = tr(S D) / ||P||_F^2``,
    ``t = mean(q) - s R mean(p)``. Batched over ``B``."""
    _check_joint_pair(pred, target)
    mu_p, mu_q = pred.mean(-2, keepdim=True), target.mean(-2, keepdim=True)
    p, q = pred - mu_p, target - mu_q
    u, s, vh = torch.linalg.svd(q.transpose(-1, -2) @ p)
    d = torch.ones_like(s)
    d[:, -1] = torch.sign(torch.det(u @ vh))
    rotation = u @ torch.diag_embed(d) @ vh
    scale = (s * d).sum(-1) / (p * p).sum((-1, -2)).clamp(min=torch.finfo(p.dtype).tiny)
    return scale[:, None, None] * p @ rotation.transpose(-1, -2) + mu_q


def pa_mpjpe(pred: Tensor, target: Tensor) -> Tensor:
    """Procrustes-aligned MPJPE ``[B]``: :func:`mpjpe` after :func:`procrustes_align` of ``pred`` onto ``target``."""
    return mpjpe(procrustes_align(pred, target), target)


# ---------------------------------------------------------------------------------------------------------------
# Fitting


@dataclass(frozen=True)
class FitConfig:
    """Settings of :func:`fit_to_keypoints` (the energy's weights, the robust penalty, the optimizer schedule).
    The defaults fit the synthetic test scenes (1.5 px noise, 1000 px focal length) to a median PA-MPJPE of a few
    centimetres; weights are in pixels^2 per unit of their term, since the data term sums squared pixel errors."""

    iterations: tuple[int, int] = field(default=(100, 400), metadata={
        "help": "Adam iterations of the camera stage and of the body stage"})
    pose_weight: float = field(default=10.0, metadata={"help": "lambda_theta, weight of the pose prior E_theta"})
    shape_weight: float = field(default=10.0, metadata={"help": "lambda_beta, weight of the shape prior ||beta||^2"})
    joint_limit_weight: float = field(default=1000.0, metadata={
        "help": "lambda_a, weight of the knee/elbow hinge E_a (not annealed)"})
    pose_prior_mean: Tensor | float = field(default=0.0, metadata={
        "help": "mu of the diagonal Gaussian pose prior, radians: a number or a [69] tensor (0: the rest pose)"})
    pose_prior_std: Tensor | float | None = field(default=None, metadata={
        "help": "s of the pose prior, radians: a number or a [69] tensor; None: default_pose_prior_std() (hinges)"})
    pose_prior: Literal["gaussian", "gmm"] | GaussianMixturePrior = field(default="gaussian", metadata={
        "help": "E_theta: 'gaussian' (diagonal, pose_prior_mean/std), 'gmm' (the shipped mocap mixture, "
                "vision3d.body.pose_prior; use its weight, gmm_fit_config()) or a GaussianMixturePrior"})
    sigma: float = field(default=100.0, metadata={"help": "scale of the robust penalty, pixels"})
    penalty: Penalty = field(default="gmof", metadata={
        "help": "robust penalty of the reprojection error: 'gmof' (Geman-McClure), 'huber' or 'l2'"})
    anneal: tuple[float, ...] = field(default=(10.0, 3.0, 1.0), metadata={
        "help": "factors on lambda_theta and lambda_beta over equal parts of the body stage; (1.0,): no annealing"})
    lr: float = field(default=0.05, metadata={
        "help": "Adam step size (all unknowns are O(1) in their units: 6D entries, metres, betas)"})
    init_global_orient: Tensor | tuple[float, float, float] = field(default=FACING_CAMERA, metadata={
        "help": "axis-angle start of the global orientation, [3] or [B, 3]; default: upright, facing the camera"})
    multi_start: bool = field(default=True, metadata={
        "help": "body stage from the 16 depth_hypotheses (16x the work, vectorized), keep the best per sample"})


def check_fit_config(config: FitConfig) -> None:
    """Raise ``ValueError`` naming the first setting of ``config`` that cannot work."""
    if not isinstance(config, FitConfig):
        raise ValueError(f"config must be a FitConfig, got {type(config).__name__}")
    if len(config.iterations) != 2 or min(config.iterations) < 0:
        raise ValueError(
            f"iterations must be two non-negative counts (camera stage, body stage), got {config.iterations}"
        )
    if not config.anneal or min(config.anneal) <= 0:
        raise ValueError(f"anneal must be a non-empty sequence of positive factors, got {config.anneal}")
    for name in ("pose_weight", "shape_weight", "joint_limit_weight"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a non-negative number, got {value}")
    for name in ("sigma", "lr"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value}")
    if config.penalty not in ("gmof", "huber", "l2"):
        raise ValueError(f"penalty must be 'gmof', 'huber' or 'l2', got {config.penalty!r}")
    if not (config.pose_prior in ("gaussian", "gmm") or callable(getattr(config.pose_prior, "energy", None))):
        raise ValueError(f"pose_prior must be 'gaussian', 'gmm' or a GaussianMixturePrior, got {config.pose_prior!r}")


@dataclass
class FitResult:
    """Output of :func:`fit_to_keypoints` (detached tensors). Rotations in axis-angle, as :class:`BodyModel` takes
    them; ``joints3d`` and ``transl`` in the camera frame; ``loss_history [T, B]`` the total energy of each batch
    element at each of the ``T`` iterations (both stages); ``reprojection_error [B, 24]`` in pixels."""

    betas: Tensor
    global_orient: Tensor
    body_pose: Tensor
    transl: Tensor
    joints3d: Tensor
    loss_history: Tensor
    camera: Camera
    reprojection_error: Tensor


def _check_inputs(keypoints: Tensor, confidences: Tensor, model: BodyModel) -> None:
    if keypoints.ndim != 3 or keypoints.shape[1:] != (N_JOINTS, 2):
        raise ValueError(f"keypoints must have shape [B, {N_JOINTS}, 2], got {tuple(keypoints.shape)}")
    if confidences.shape != keypoints.shape[:2]:
        raise ValueError(f"confidences must have shape {tuple(keypoints.shape[:2])}, got {tuple(confidences.shape)}")
    if not bool(torch.isfinite(keypoints).all()):
        raise ValueError("keypoints contain NaN or infinite values (give missing joints confidence 0 instead)")
    if not bool((torch.isfinite(confidences) & (confidences >= 0)).all()):
        raise ValueError("confidences must be finite and non-negative")
    if not bool(((confidences[:, list(TORSO_JOINTS)] > 0).sum(-1) >= 2).all()):
        raise ValueError("every sample needs at least two visible torso joints (their spread gives the depth)")
    if not isinstance(model, BodyModel):
        raise ValueError(f"model must be a BodyModel, got {type(model).__name__}")


def weighted_centroid_and_spread(points: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Confidence-weighted centroid ``[B, D]`` and RMS distance to it ``[B]`` of ``points [B, N, D]``."""
    w = weights / weights.sum(-1, keepdim=True).clamp(min=1e-12)
    centroid = (w[..., None] * points).sum(-2)
    spread = torch.sqrt((w * ((points - centroid[:, None]) ** 2).sum(-1)).sum(-1).clamp(min=1e-12))
    return centroid, spread


def initial_camera(
    rest_torso: Tensor, keypoints: Tensor, confidences: Tensor, camera: Camera
) -> tuple[Tensor, Tensor, Tensor]:
    """Similar-triangles start: ``(transl [B, 3], log_scale [B], shift [B, 2])``. ``rest_torso [B, T, 3]`` are the
    torso joints of the initial pose, camera frame, before translation; a perspective camera gets ``transl``
    placing them at the depth where their pixel size matches, a weak one the scale and shift doing the same."""
    centre_3d, spread_3d = weighted_centroid_and_spread(rest_torso[..., :2], confidences)
    centre_2d, spread_2d = weighted_centroid_and_spread(keypoints, confidences)
    batch = keypoints.shape[0]
    transl = keypoints.new_zeros(batch, 3)
    if isinstance(camera, PerspectiveCamera):
        focal = keypoints.new_tensor(camera.focal).mean()
        depth = focal * spread_3d / spread_2d.clamp(min=1e-6)
        xy = (centre_2d - keypoints.new_tensor(camera.principal_point)) * depth[:, None] / focal - centre_3d
        mean_z = (confidences * rest_torso[..., 2]).sum(-1) / confidences.sum(-1)
        transl = torch.cat([xy, (depth - mean_z)[:, None]], dim=-1)
        return transl, keypoints.new_zeros(batch), keypoints.new_zeros(batch, 2)
    scale = spread_2d / spread_3d
    return transl, torch.log(scale), centre_2d - scale[:, None] * centre_3d


@dataclass
class FitUnknowns:
    """The optimized tensors of ``N`` problems (``N = B`` or ``B * H`` with depth hypotheses)."""

    orient_6d: Tensor  # [N, 6]
    pose_6d: Tensor  # [N, 23 * 6]
    betas: Tensor  # [N, num_betas]
    transl: Tensor  # [N, 3] (perspective: optimized; weak: stays 0)
    log_scale: Tensor  # [N] weak perspective only
    shift: Tensor  # [N, 2] weak perspective only

    def repeat(self, times: int) -> FitUnknowns:
        """Each problem ``times`` times in a row (sample-major: row ``b * times + h``), detached copies."""
        return FitUnknowns(*(t.detach().repeat_interleave(times, dim=0).clone() for t in vars(self).values()))

    def select(self, rows: Tensor) -> FitUnknowns:
        return FitUnknowns(*(t.detach()[rows] for t in vars(self).values()))


@dataclass(frozen=True)
class FitEnergy:
    """Everything fixed during a fit: data, camera, weights (see :func:`fit_to_keypoints`)."""

    model: BodyModel
    keypoints: Tensor
    confidences: Tensor
    camera: Camera
    config: FitConfig
    pose_prior_std: Tensor | float  # config.pose_prior_std, or the default when that is None
    mixture: GaussianMixturePrior | None = None  # the GMM prior, when config.pose_prior asks for one

    @property
    def weak(self) -> bool:
        return isinstance(self.camera, WeakPerspectiveCamera)

    def camera_of(self, x: FitUnknowns) -> Camera:
        return WeakPerspectiveCamera(x.log_scale.exp(), x.shift) if self.weak else self.camera

    def __call__(self, x: FitUnknowns, torso_only: bool, prior_factor: float) -> tuple[Tensor, Tensor, Tensor]:
        """``(E [N], joints [N, 24, 3], body pose axis-angle [N, 69])`` at ``x``; ``torso_only``: the camera
        stage's data term (pose and shape are frozen at 0 there, so the priors are constant and left out)."""
        n = x.betas.shape[0]
        rotations = rotation_6d_to_matrix(x.pose_6d.reshape(n, N_JOINTS - 1, 6))
        joints = self.model(
            betas=x.betas,
            global_orient=rotation_6d_to_matrix(x.orient_6d)[:, None],
            body_pose=rotations,
            transl=x.transl,
            pose2rot=False,
            return_verts=False,
            return_full_pose=False,
        ).joints
        weights = self.confidences
        if torso_only:
            weights = torch.zeros_like(self.confidences)
            weights[:, list(TORSO_JOINTS)] = self.confidences[:, list(TORSO_JOINTS)]
        config = self.config
        energy = reprojection_loss(
            project(joints, self.camera_of(x)), self.keypoints, weights, config.sigma, config.penalty
        )
        body_pose = matrix_to_axis_angle(rotations).reshape(n, -1)
        if not torso_only:
            if self.mixture is not None:
                pose_energy = self.mixture.energy(body_pose)
            else:
                pose_energy = pose_prior(body_pose, config.pose_prior_mean, self.pose_prior_std)
            energy = (
                energy
                + prior_factor * config.pose_weight * pose_energy
                + config.joint_limit_weight * joint_limit_prior(body_pose)
                + prior_factor * config.shape_weight * (x.betas * x.betas).sum(-1)
            )
        return energy, joints, body_pose

    def repeat(self, times: int) -> FitEnergy:
        return replace(
            self,
            keypoints=self.keypoints.repeat_interleave(times, dim=0),
            confidences=self.confidences.repeat_interleave(times, dim=0),
        )


def _adam(
    energy: FitEnergy, x: FitUnknowns, names: Sequence[str], steps: int, lr: float, torso_only: bool, factor: float
) -> list[Tensor]:
    """``steps`` Adam iterations on the fields ``names`` of ``x`` (in place); returns the energies ``[N]``."""
    unknowns = [getattr(x, name).requires_grad_(True) for name in names]
    optimizer = torch.optim.Adam(unknowns, lr=lr)
    history = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        total, _, _ = energy(x, torso_only, factor)
        history.append(total.detach())
        total.sum().backward()  # problems are independent: the sum's gradient is each problem's own gradient
        optimizer.step()
    for tensor in unknowns:
        tensor.requires_grad_(False)
    return history


def depth_hypotheses(angle: float = DEPTH_HYPOTHESIS_ANGLE, dtype: torch.dtype = torch.float32) -> Tensor:
    """Initial body poses ``[16, 69]`` (axis-angle): each shoulder and hip rotated by ``+-angle`` out of the
    T-pose's plane (shoulders about ``y``, hips about ``x``), all 2^4 sign combinations.

    Why: a limb in the image plane projects longest, and tilting it towards or away from the camera shortens
    its image by the same amount (to first order), so from the T-pose the gradient cannot tell the two sides
    apart, and each side is a separate local minimum. Starting on both sides of every limb and keeping the
    lowest energy lets perspective (the nearer side projects larger) decide."""
    signs = torch.tensor(list(itertools.product((1.0, -1.0), repeat=4)), dtype=dtype)
    pose = torch.zeros(16, N_JOINTS - 1, 3, dtype=dtype)
    for column, (joint, axis) in enumerate(HYPOTHESIS_AXES):
        pose[:, joint - 1, axis] = angle * signs[:, column]
    return pose.reshape(16, -1)


def fit_to_keypoints(
    model: BodyModel,
    keypoints: Tensor,
    confidences: Tensor,
    camera: Camera,
    config: FitConfig = FitConfig(),  # noqa: B008  (frozen, so one shared default instance is safe)
) -> FitResult:
    """Fit ``model`` to 2D ``keypoints [B, 24, 2]`` (pixels) with ``confidences [B, 24]``; see the module docstring.

    Args:
        camera: a :class:`PerspectiveCamera` (known intrinsics; the body translation is the unknown extrinsic) or
            a :class:`WeakPerspectiveCamera` (scale and translation unknown; the body translation stays 0).
        config: the weights, robust penalty and optimizer schedule (:class:`FitConfig`, one line per field).

    ``loss_history`` holds the camera stage's torso energies, then the body stage's energies of the kept start.
    """
    keypoints = torch.as_tensor(keypoints, dtype=model.dtype, device=model.device)
    confidences = torch.as_tensor(confidences, dtype=model.dtype, device=model.device)
    _check_inputs(keypoints, confidences, model)
    if not isinstance(camera, (PerspectiveCamera, WeakPerspectiveCamera)):
        raise ValueError(f"camera must be a PerspectiveCamera or WeakPerspectiveCamera, got {type(camera).__name__}")
    check_fit_config(config)
    iterations, lr = config.iterations, config.lr
    batch, factory = keypoints.shape[0], {"dtype": model.dtype, "device": model.device}
    energy = _energy(model, keypoints, confidences, camera, config)

    # Stage 1: camera and global orientation from the torso, starting from similar triangles.
    orient0 = torch.as_tensor(config.init_global_orient, **factory).reshape(-1, 3).expand(batch, 3)
    with torch.no_grad():
        rest = model(global_orient=orient0, return_verts=False, return_full_pose=False).joints
    torso = list(TORSO_JOINTS)
    transl, log_scale, shift = initial_camera(rest[:, torso], keypoints[:, torso], confidences[:, torso], camera)
    x = FitUnknowns(
        orient_6d=matrix_to_rotation_6d(axis_angle_to_matrix(orient0)).clone(),
        pose_6d=matrix_to_rotation_6d(torch.eye(3, **factory).expand(batch, N_JOINTS - 1, 3, 3)).reshape(batch, -1),
        betas=torch.zeros(batch, model.num_betas, **factory),
        transl=transl,
        log_scale=log_scale,
        shift=shift,
    )
    camera_names = ("log_scale", "shift") if energy.weak else ("transl",)
    history = _adam(energy, x, (*camera_names, "orient_6d"), iterations[0], lr, torso_only=True, factor=1.0)

    # Stage 2: everything, from each start, with annealed priors.
    starts = 16 if config.multi_start else 1
    x, energy_all = x.repeat(starts), energy.repeat(starts)
    if config.multi_start:
        pose0 = depth_hypotheses(dtype=model.dtype).to(model.device).repeat(batch, 1).reshape(-1, N_JOINTS - 1, 3)
        x.pose_6d = matrix_to_rotation_6d(axis_angle_to_matrix(pose0)).reshape(batch * starts, -1)
    names = (*camera_names, "orient_6d", "pose_6d", "betas")
    body_history = _body_stage(energy_all, x, names, iterations[1], config)

    with torch.no_grad():
        final, _, _ = energy_all(x, False, 1.0)
        best = final.reshape(batch, starts).argmin(-1) + torch.arange(batch, device=final.device) * starts
    history += [h[best] for h in body_history]
    return _fit_result(energy, x.select(best), history)


def _body_stage(energy: FitEnergy, x: FitUnknowns, names: Sequence[str], iterations: int,
                config: FitConfig) -> list[Tensor]:
    """Adam on ``names`` for ``iterations`` in total, the prior weights scaled by ``config.anneal``'s factors over
    equal parts of them; returns the energies of every iteration."""
    history: list[Tensor] = []
    for part, factor in enumerate(config.anneal):
        steps = iterations * (part + 1) // len(config.anneal) - iterations * part // len(config.anneal)
        history += _adam(energy, x, names, steps, config.lr, torso_only=False, factor=factor)
    return history


def _fit_result(energy: FitEnergy, x: FitUnknowns, history: list[Tensor]) -> FitResult:
    with torch.no_grad():
        _, joints, body_pose = energy(x, False, 1.0)
        fitted_camera = energy.camera_of(x)
        error = torch.linalg.vector_norm(project(joints, fitted_camera) - energy.keypoints, dim=-1)
        return FitResult(
            betas=x.betas,
            global_orient=matrix_to_axis_angle(rotation_6d_to_matrix(x.orient_6d)),
            body_pose=body_pose,
            transl=x.transl,
            joints3d=joints,
            loss_history=torch.stack(history) if history else energy.keypoints.new_zeros(0, len(x.betas)),
            camera=fitted_camera,
            reprojection_error=error,
        )


def refine_fit(
    model: BodyModel,
    keypoints: Tensor,
    confidences: Tensor,
    camera: PerspectiveCamera,
    start: FitResult,
    iterations: int,
    config: FitConfig = FitConfig(),  # noqa: B008  (frozen)
) -> FitResult:
    """The body stage of :func:`fit_to_keypoints` (``config``'s energy, annealing and step size; pose, shape,
    orientation and translation all free) run for ``iterations`` from ``start`` -- one start per sample, e.g. a
    :func:`~vision3d.body.learned_fitting.learned_fit` -- instead of from the camera stage and the depth
    hypotheses. ``loss_history`` holds the energies of these iterations only."""
    keypoints = torch.as_tensor(keypoints, dtype=model.dtype, device=model.device)
    confidences = torch.as_tensor(confidences, dtype=model.dtype, device=model.device)
    _check_inputs(keypoints, confidences, model)
    if not isinstance(camera, PerspectiveCamera):
        raise ValueError(f"refine_fit takes a PerspectiveCamera, got {type(camera).__name__}")
    check_fit_config(config)
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    batch, factory = keypoints.shape[0], {"dtype": model.dtype, "device": model.device}
    if start.body_pose.shape != (batch, 3 * (N_JOINTS - 1)) or start.betas.shape != (batch, model.num_betas):
        raise ValueError(f"start must be a fit of the same {batch} samples: body_pose {tuple(start.body_pose.shape)}, "
                         f"betas {tuple(start.betas.shape)}")
    energy = _energy(model, keypoints, confidences, camera, config)
    pose = axis_angle_to_matrix(start.body_pose.to(**factory).reshape(batch, N_JOINTS - 1, 3))
    x = FitUnknowns(
        orient_6d=matrix_to_rotation_6d(axis_angle_to_matrix(start.global_orient.to(**factory))).clone(),
        pose_6d=matrix_to_rotation_6d(pose).reshape(batch, -1).clone(),
        betas=start.betas.to(**factory).clone(),
        transl=start.transl.to(**factory).clone(),
        log_scale=torch.zeros(batch, **factory),
        shift=torch.zeros(batch, 2, **factory),
    )
    history = _body_stage(energy, x, ("transl", "orient_6d", "pose_6d", "betas"), iterations, config)
    return _fit_result(energy, x, history)


def _energy(model: BodyModel, keypoints: Tensor, confidences: Tensor, camera: Camera, config: FitConfig) -> FitEnergy:
    factory = {"dtype": model.dtype, "device": model.device}
    pose_prior_std = default_pose_prior_std(**factory) if config.pose_prior_std is None else config.pose_prior_std
    mixture = config.pose_prior if not isinstance(config.pose_prior, str) else None
    if config.pose_prior == "gmm":
        from vision3d.body.pose_prior import default_pose_prior

        mixture = default_pose_prior()
    return FitEnergy(model, keypoints, confidences, camera, config, pose_prior_std, mixture)
