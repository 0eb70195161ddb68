r"""Fitting the body model to a video (SMPLify over time, one shape), and the fit as a world-frame Motion.

    from vision3d.body.video_fitting import SequenceConfig, fit_sequence, sequence_to_motion
    fit = fit_sequence(model, keypoints, confidences, camera)   # keypoints [T, 24, 2] px, one static camera
    fit.betas, fit.joints3d                                     # [num_betas] (one shape), [T, 24, 3] camera frame
    motion = sequence_to_motion(fit, fps=30.0, name="my_video", model=model)   # Z-up world, feet on the floor
    video = render_motion_video(load_clip("cmu_walk"), yaw_degrees=60)         # test data: a static camera

**The energy** (course notation; one person seen by one static perspective camera ``K`` over ``T`` frames). The
unknowns are one shape ``beta`` and, per frame, the body pose ``theta_t``, the global orientation ``R_t`` and the
translation ``t_t`` (camera frame, OpenCV axes):

.. math::

    E = \sum_t \big[ E_J^t + \lambda_\theta E_\theta(\theta_t) + \lambda_a E_a(\theta_t) \big]
        + T \lambda_\beta \|\beta\|^2
        + \lambda_J \sum_{t=2}^{T-1} \sum_j \| s_t (J_{t+1,j} - 2 J_{t,j} + J_{t-1,j}) \|^2
        + \lambda_R \sum_{t=2}^{T-1} \sum_{k=0}^{23} \| R_{t+1,k} - 2 R_{t,k} + R_{t-1,k} \|_F^2

- ``E_J^t, E_theta, E_a, ||beta||^2``: SMPLify's per-frame terms exactly as
  :func:`vision3d.body.fitting.fit_to_keypoints` computes them (robust reprojection error in pixels weighted by
  confidence, pose prior, knee/elbow hinge, shape prior), evaluated by the same code (its ``FitEnergy``) on all
  ``T`` frames at once. The shape prior appears once per frame, so a ``T``-frame video weighs it against its
  data as a single image does.
- Joint smoothness: the squared second difference (discrete acceleration, metres per frame^2) of every 3D joint
  ``J_{t,j}(beta, theta_t, R_t) + t_t``, scaled by ``s_t = f / z_t``, pixels per metre at the body's depth in the
  initial per-frame fit (a constant). The scaled acceleration is in pixels, so ``lambda_J`` is comparable to the
  data term's weight 1 whatever the image size and distance. Why the second difference: a walk has large joint
  velocities but small accelerations, while per-frame fits jitter (mostly in depth, which one image barely
  constrains), and jitter is all acceleration; a first-difference term would also slow the true motion down.
- Rotation smoothness: the squared second difference of every joint's rotation matrix (the root's ``R_t`` and the
  23 local rotations of ``theta_t``). Joint positions do not see a twist about a bone's own axis; this term keeps
  such unobserved rotations from flickering between frames. Matrices, not angles: no wrap-around at ``pi``.

**Optimization**: per-frame fits (all frames as one batch) initialise every frame and, through their mean, the
shared shape. By default (``initial="learned"``) each starts from the learned fitter's estimate
(:func:`~vision3d.body.learned_fitting.learned_fit`) and runs SMPLify's body stage from there; ``"smplify"`` runs
:func:`~vision3d.body.fitting.fit_to_keypoints` from the T-pose. Then Adam refines all unknowns jointly for
``iterations`` steps (rotations in the 6D representation, as in the per-frame fit). The energy is one vectorized
expression over frames and joints. Pixels: both stages fit the image rescaled to a ``reference_focal`` (1000 px)
focal length, the scale :class:`~vision3d.body.fitting.FitConfig`'s weights were tuned at; rescaling moves no 3D
ray, but at 64 x 64 pixels the unscaled priors would outweigh the keypoints 200 to 1 and pull every body towards
the rest pose.

**To a Motion** (:func:`sequence_to_motion`): the camera frame has no "up", so it is estimated from the fitted body:

1. Up: the floor plane through the feet while they are planted (foot joints moving less than
   ``CONTACT_SPEED``). A plane fit alone is ill-posed for a walk in a straight line (its contacts lie near one
   line), so the normal solves the regularized least squares ``min_n n^T C n + mu ||n - n_0||^2``:
   ``n ∝ (C + mu I)^{-1} n_0``, with ``C`` the covariance of the contact points and the prior ``n_0`` the mean
   torso direction (pelvis to neck). Directions the contacts span well are decided by them; the rest by the prior.
2. Heading: world ``x`` is the mean facing direction (the body's forward axis, SMPL's ``+z``) projected on the
   floor; ``y = up x x``; ``z = up``. Every rotation and translation is re-expressed in this Z-up frame.
3. Origin: the first frame's pelvis above ``(0, 0)``, and the floor at ``z = 0`` at the lowest vertex of the posed
   mesh over the whole sequence (the soles touch the ground; the foot joints end up a few cm above it, as in the
   shipped clips). Root path in metres, as the perspective fit measured it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from vision3d.body.fitting import (
    FitConfig,
    FitEnergy,
    FitResult,
    FitUnknowns,
    PerspectiveCamera,
    check_fit_config,
    default_pose_prior_std,
    fit_to_keypoints,
    project,
)
from vision3d.body.model import BodyModel
from vision3d.body.motion import Motion
from vision3d.body.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    rotation_6d_to_matrix,
)
from vision3d.body.skeleton import JOINT_INDEX, N_JOINTS

if TYPE_CHECKING:
    from vision3d.body.synthetic import People

__all__ = [
    "SequenceConfig",
    "SequenceFit",
    "VideoClip",
    "acceleration_error",
    "estimate_up",
    "fit_sequence",
    "render_motion_video",
    "sequence_to_motion",
]

FOOT_JOINTS = (JOINT_INDEX["left_foot"], JOINT_INDEX["right_foot"])
CONTACT_SPEED = 0.5  # m/s: a foot joint slower than this is taken as planted (a walk's swing foot moves at 2-4 m/s)
UP_PRIOR_STRENGTH = 1e-3  # m^2 (mu): contact spreads well above (3 cm)^2 overrule the torso prior in their direction


# ---------------------------------------------------------------------------------------------------------------
# Temporal fit


@dataclass(frozen=True)
class SequenceConfig:
    """Settings of :func:`fit_sequence`: the per-frame initial fit, the weights of the temporal terms, the joint
    refinement's schedule (the per-frame terms keep ``per_frame``'s weights)."""

    per_frame: FitConfig = field(default_factory=lambda: FitConfig(iterations=(60, 200), multi_start=False),
                                 metadata={"help": "SMPLify settings of the per-frame initialisation and terms"})
    initial: str = field(default="learned", metadata={
        "help": "where the per-frame fits start: 'learned' (the shipped learned-gradient-descent unroll, then "
                "per_frame's body stage for the rest of its iterations; SPIN's recipe) or 'smplify' (per_frame's "
                "camera stage from the T-pose)"})
    iterations: int = field(default=200, metadata={"help": "Adam iterations of the joint refinement"})
    lr: float = field(default=0.01, metadata={"help": "Adam step size of the refinement (it starts near a fit)"})
    reference_focal: float | None = field(default=1000.0, metadata={
        "help": "pixels: keypoints and camera are rescaled to this focal length before fitting, so that the "
                "FitConfig weights (pixels^2, tuned at a 1000 px focal length) mean the same at any image size; "
                "None: fit in the given pixels"})
    joint_smooth_weight: float = field(default=10.0, metadata={
        "help": "lambda_J: weight of the squared joint accelerations, in pixels at the body's depth"})
    rotation_smooth_weight: float = field(default=100.0, metadata={
        "help": "lambda_R: weight of the squared second differences of the joint rotation matrices"})

    def __post_init__(self) -> None:
        check_fit_config(self.per_frame)
        if self.initial not in ("learned", "smplify"):
            raise ValueError(f"initial must be 'learned' or 'smplify', got {self.initial!r}")
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 0:
            raise ValueError(f"iterations must be a non-negative integer, got {self.iterations!r}")
        for name in ("joint_smooth_weight", "rotation_smooth_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a non-negative number, got {value}")
        if self.reference_focal is not None and not (math.isfinite(self.reference_focal) and self.reference_focal > 0):
            raise ValueError(f"reference_focal must be a positive number or None, got {self.reference_focal}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr}")


@dataclass
class SequenceFit:
    """A fitted (or given) sequence, detached: one shape ``betas [num_betas]``; per frame ``global_orient [T, 3]``
    and ``body_pose [T, 69]`` axis-angle, ``transl [T, 3]`` and ``joints3d [T, 24, 3]`` in the camera frame
    (metres). ``per_frame``: the initial per-frame fit; ``loss_history [iterations]``: total energy of the
    refinement; ``reprojection_error [T, 24]`` pixels."""

    betas: Tensor
    global_orient: Tensor
    body_pose: Tensor
    transl: Tensor
    joints3d: Tensor
    camera: PerspectiveCamera | None = None
    per_frame: FitResult | None = None
    loss_history: Tensor | None = None
    reprojection_error: Tensor | None = None

    def __len__(self) -> int:
        return len(self.joints3d)


def second_difference(x: Tensor) -> Tensor:
    """``x_{t+1} - 2 x_t + x_{t-1}`` along dim 0 (``[T, ...] -> [T - 2, ...]``)."""
    return x[2:] - 2.0 * x[1:-1] + x[:-2]


def acceleration_error(pred: Tensor, target: Tensor, root_relative: bool = True) -> Tensor:
    """Mean over frames and joints of ``||a_pred - a_true||``, ``a`` the second difference (units of the inputs
    per frame^2; metres -> x1000 for HMR's mm/frame^2). ``root_relative``: pelvis-centred joints (VIBE's
    convention: jitter of the pose), else as given (also the jitter of the body's path, e.g. in depth)."""
    if pred.shape != target.shape or pred.ndim != 3 or len(pred) < 3:
        raise ValueError(f"pred and target must both be [T >= 3, J, 3], got {tuple(pred.shape)}, {tuple(target.shape)}")
    if root_relative:
        pred, target = pred - pred[:, :1], target - target[:, :1]
    return torch.linalg.vector_norm(second_difference(pred) - second_difference(target), dim=-1).mean()


def _check_sequence(keypoints: Tensor, confidences: Tensor, camera: PerspectiveCamera) -> None:
    if keypoints.ndim != 3 or keypoints.shape[1:] != (N_JOINTS, 2) or len(keypoints) < 3:
        raise ValueError(f"keypoints must have shape [T >= 3, {N_JOINTS}, 2], got {tuple(keypoints.shape)}")
    if confidences.shape != keypoints.shape[:2]:
        raise ValueError(f"confidences must have shape {tuple(keypoints.shape[:2])}, got {tuple(confidences.shape)}")
    if not isinstance(camera, PerspectiveCamera):
        raise ValueError(f"a video needs a PerspectiveCamera (static, known intrinsics), got {type(camera).__name__}")


def fit_sequence(
    model: BodyModel,
    keypoints: Tensor,
    confidences: Tensor | None,
    camera: PerspectiveCamera,
    config: SequenceConfig = SequenceConfig(),  # noqa: B008  (frozen, shared default is safe)
    init: FitResult | None = None,
) -> SequenceFit:
    """Fit ``model`` to ``keypoints [T, 24, 2]`` (pixels) of one person seen by the static ``camera`` (module
    docstring). ``confidences [T, 24]`` (None: all 1). ``init``: a per-frame fit to start from, made in the
    rescaled pixels of ``config.reference_focal`` (default: computed with ``config.per_frame``, the same way).
    ``loss_history`` is in those rescaled pixels^2; ``reprojection_error`` in the given pixels."""
    keypoints = torch.as_tensor(keypoints, dtype=model.dtype, device=model.device)
    confidences = torch.ones(keypoints.shape[:2]) if confidences is None else confidences
    confidences = torch.as_tensor(confidences, dtype=model.dtype, device=model.device)
    _check_sequence(keypoints, confidences, camera)
    frames, factory = len(keypoints), {"dtype": model.dtype, "device": model.device}
    # Scaling the image (keypoints, focal length, principal point) by k leaves every 3D ray, hence the 3D solution
    # of the data term, unchanged, but multiplies pixel errors by k: it sets how much the data outweighs the priors.
    original_camera = camera
    k = 1.0 if config.reference_focal is None else config.reference_focal / float(np.mean(camera.focal))
    camera = PerspectiveCamera(tuple(k * f for f in camera.focal), tuple(k * c for c in camera.principal_point))
    keypoints = k * keypoints
    if init is None:
        init = per_frame_fit(model, keypoints, confidences, camera, config)
        init = replace(init, camera=original_camera, reprojection_error=init.reprojection_error / k)

    per_frame = config.per_frame
    pose_prior_std = default_pose_prior_std(**factory) if per_frame.pose_prior_std is None else per_frame.pose_prior_std
    mixture = per_frame.pose_prior if not isinstance(per_frame.pose_prior, str) else None
    if per_frame.pose_prior == "gmm":
        from vision3d.body.pose_prior import default_pose_prior

        mixture = default_pose_prior()
    energy = FitEnergy(model, keypoints, confidences, camera, per_frame, pose_prior_std, mixture)

    orient_6d = matrix_to_rotation_6d(axis_angle_to_matrix(init.global_orient.to(**factory))).clone()
    pose_6d = matrix_to_rotation_6d(axis_angle_to_matrix(init.body_pose.to(**factory).reshape(frames, -1, 3)))
    pose_6d = pose_6d.reshape(frames, -1).clone()
    betas = init.betas.to(**factory).mean(0, keepdim=True).clone()  # one shape: the frames' mean to start
    transl = init.transl.to(**factory).clone()
    # Pixels per metre at the body's depth (a constant): turns the joints' accelerations into pixels.
    depth = init.joints3d[:, 0, 2].to(**factory).clamp(min=0.1)
    scale = torch.as_tensor(camera.focal, **factory).mean() / depth  # [T]
    zero_scale, zero_shift = torch.zeros(frames, **factory), torch.zeros(frames, 2, **factory)

    def total(orient_6d: Tensor, pose_6d: Tensor, betas: Tensor, transl: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = FitUnknowns(orient_6d, pose_6d, betas.expand(frames, -1), transl, zero_scale, zero_shift)
        per_frame_energy, joints, body_pose = energy(x, torso_only=False, prior_factor=1.0)
        accel = second_difference(joints) * scale[1:-1, None, None]  # [T - 2, 24, 3] pixels
        rotations = torch.cat([rotation_6d_to_matrix(orient_6d)[:, None],
                               rotation_6d_to_matrix(pose_6d.reshape(frames, N_JOINTS - 1, 6))], dim=1)  # fmt: skip
        value = (per_frame_energy.sum() + config.joint_smooth_weight * (accel**2).sum()
                 + config.rotation_smooth_weight * (second_difference(rotations) ** 2).sum())  # fmt: skip
        return value, joints, body_pose

    unknowns = [orient_6d, pose_6d, betas, transl]
    for tensor in unknowns:
        tensor.requires_grad_(True)
    optimizer = torch.optim.Adam(unknowns, lr=config.lr)
    history = []
    for _ in range(config.iterations):
        optimizer.zero_grad(set_to_none=True)
        value, _, _ = total(*unknowns)
        history.append(value.detach())
        value.backward()
        optimizer.step()
    for tensor in unknowns:
        tensor.requires_grad_(False)

    with torch.no_grad():
        _, joints, body_pose = total(*unknowns)
        error = torch.linalg.vector_norm(project(joints, camera) - keypoints, dim=-1) / k
    return SequenceFit(
        betas=betas[0].detach(),
        global_orient=matrix_to_axis_angle(rotation_6d_to_matrix(orient_6d)).detach(),
        body_pose=body_pose.detach(),
        transl=transl.detach(),
        joints3d=joints.detach(),
        camera=original_camera,
        per_frame=init,
        loss_history=torch.stack(history) if history else keypoints.new_zeros(0),
        reprojection_error=error,
    )


def per_frame_fit(model: BodyModel, keypoints: Tensor, confidences: Tensor, camera: PerspectiveCamera,
                  config: SequenceConfig) -> FitResult:
    """Every frame fitted on its own as ``config.initial`` says, ``config.per_frame``'s energy and iteration budget
    (the learned unroll's steps count against it)."""
    if config.initial == "smplify":
        return fit_to_keypoints(model, keypoints, confidences, camera, config.per_frame)
    from vision3d.body.learned_fitting import default_learned_fitter, learned_fit

    network = default_learned_fitter()
    refine = max(sum(config.per_frame.iterations) - network.config.steps, 0)
    return learned_fit(model, keypoints, confidences, camera, network, refine, config.per_frame)


def per_frame_sequence(fit: FitResult, camera: PerspectiveCamera | None = None) -> SequenceFit:
    """A per-frame fit as a :class:`SequenceFit` (its shape: the frames' mean betas) for :func:`sequence_to_motion`."""
    return SequenceFit(fit.betas.mean(0), fit.global_orient, fit.body_pose, fit.transl, fit.joints3d,
                       camera=camera, per_frame=fit, reprojection_error=fit.reprojection_error)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# To a world-frame Motion


def estimate_up(joints: Tensor, forward_speed_fps: float) -> Tensor:
    """The floor normal ``[3]`` in the frame of ``joints [T, 24, 3]`` (module docstring, step 1), pointing up.

    ``forward_speed_fps``: the frame rate, which turns ``CONTACT_SPEED`` into metres per frame."""
    joints = joints.double()
    torso = joints[:, JOINT_INDEX["neck"]] - joints[:, JOINT_INDEX["pelvis"]]
    prior = (torso / torso.norm(dim=-1, keepdim=True)).mean(0)
    prior = prior / prior.norm()
    feet = joints[:, list(FOOT_JOINTS)]  # [T, 2, 3]
    speed = torch.zeros(feet.shape[:2], dtype=feet.dtype)
    speed[1:-1] = (feet[2:] - feet[:-2]).norm(dim=-1) / 2  # central differences, metres per frame
    speed[0], speed[-1] = speed[1], speed[-2]
    planted = speed < CONTACT_SPEED / forward_speed_fps
    points = feet[planted] if int(planted.sum()) >= 3 else feet.reshape(-1, 3)
    centred = points - points.mean(0)
    covariance = centred.T @ centred / len(points)
    mu = UP_PRIOR_STRENGTH
    normal = torch.linalg.solve(covariance + mu * torch.eye(3, dtype=covariance.dtype), mu * prior)
    normal = normal / normal.norm()
    return normal if float(normal @ prior) > 0 else -normal


def sequence_to_motion(fit: SequenceFit, fps: float, name: str = "", model: BodyModel | None = None,
                       source: str = "") -> Motion:
    """The fitted sequence as a :class:`Motion` in a Z-up world, facing ``+x``, feet on the floor (module
    docstring, "To a Motion"). ``model``: the body model of the fit (default: the shipped one)."""
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps}")
    model = BodyModel.default() if model is None else model
    frames = len(fit.joints3d)
    with torch.no_grad():
        betas = fit.betas.to(model.dtype).reshape(1, -1)
        posed = model(betas=betas.expand(frames, -1), global_orient=fit.global_orient.to(model.dtype),
                      body_pose=fit.body_pose.to(model.dtype), transl=fit.transl.to(model.dtype))  # fmt: skip
        rest_pelvis = model(betas=betas, return_verts=False).joints[0, 0].double()
    joints, vertices = posed.joints.double(), posed.vertices.double()

    up = estimate_up(joints, fps)
    root = axis_angle_to_matrix(fit.global_orient.double())  # [T, 3, 3] body -> camera
    forward = root[:, :, 2]  # SMPL's forward axis
    forward = forward - (forward @ up)[:, None] * up
    heading = forward.mean(0)
    if float(heading.norm()) < 1e-6:  # facing every way equally (a spin): fall back on the first frame's facing
        heading = forward[0]
    x_axis = heading / heading.norm()
    world = torch.stack([x_axis, torch.linalg.cross(up, x_axis), up])  # rows: world axes in the camera frame

    heights = vertices @ up
    origin = joints[0, 0] - (joints[0, 0] @ up) * up + heights.min() * up  # below the first pelvis, on the floor
    pelvis_world = (joints[:, 0] - origin) @ world.T
    orient_world = matrix_to_axis_angle(world @ root)
    poses = torch.cat([orient_world[:, None], fit.body_pose.double().reshape(frames, -1, 3)], dim=1)
    trans = pelvis_world - rest_pelvis  # SMPL puts the pelvis at J_0(beta) + trans whatever the rotation
    return Motion(fps, poses.numpy(), trans.numpy(), fit.betas.double().numpy(), name=name,
                  source=source or "vision3d.body.video_fitting: fitted to 2D keypoints of a video")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Test videos: a Motion seen by one static camera


@dataclass
class VideoClip:
    """A motion filmed by one static camera: ``people`` (:class:`~vision3d.body.synthetic.People`, one sample
    per frame, its camera-frame ground truth and, if rendered, ``images``), the ``motion`` filmed and ``world_joints
    [T, 24, 3]`` (its Z-up world)."""

    people: People
    motion: Motion
    world_joints: Tensor

    @property
    def keypoints(self) -> Tensor:
        return self.people.keypoints

    @property
    def camera(self) -> PerspectiveCamera:
        return self.people.camera

    @property
    def images(self) -> Tensor | None:
        return self.people.images


def render_motion_video(motion: Motion, model: BodyModel | None = None, yaw_degrees: float = 60.0,
                        elevation_degrees: float = 10.0, distance: float | None = None, image_size: int = 64,
                        fov_degrees: float = 40.0, fill: float = 0.8, betas: Tensor | None = None,
                        render: bool = True, seed: int = 0) -> VideoClip:
    """Film ``motion`` (Z-up world) with one static camera and render every frame (``render=True``).

    The camera looks at the centre of the pelvis path from ``yaw_degrees`` about the vertical away from the
    direction the body faces in the first frame (0: from the front), ``elevation_degrees`` above it; ``distance``
    (metres) by default the one at which every joint of every frame stays inside ``fill`` of the image (at least
    :mod:`~vision3d.body.synthetic`'s distance for a standing 1.8 m figure). One appearance for all frames: each
    frame is rendered by :func:`~vision3d.body.people_render.render_people` from the same seed."""
    import dataclasses

    from vision3d.body.people_render import render_people
    from vision3d.body.synthetic import FIGURE_HEIGHT, People, PeopleConfig, camera_looking_at, facing_yaw

    model = BodyModel.default() if model is None else model
    frames = motion.n_frames
    betas = torch.as_tensor(motion.betas if betas is None else betas, dtype=torch.float64)
    betas = betas[: model.num_betas].reshape(1, -1).expand(frames, -1).to(model.dtype)
    poses = torch.from_numpy(motion.poses).to(model.dtype)
    body_pose = poses[:, 1:].reshape(frames, -1)
    world = model(betas=betas, global_orient=poses[:, 0], body_pose=body_pose,
                  transl=torch.from_numpy(motion.trans).to(model.dtype), return_verts=False)  # fmt: skip
    world_joints = world.joints.double()
    pelvis = world_joints[:, 0]
    target = (pelvis.amin(0) + pelvis.amax(0)) / 2
    root = axis_angle_to_matrix(poses[:, 0].double())
    yaw = facing_yaw(root[:1]) + math.radians(yaw_degrees)
    elevation = torch.tensor([math.radians(elevation_degrees)], dtype=torch.float64)
    intrinsics = PeopleConfig(image_size=image_size, fov_degrees=fov_degrees, fill=fill)
    base = FIGURE_HEIGHT / fill / 2 / math.tan(math.radians(fov_degrees) / 2)

    def placed(d: float) -> tuple[Tensor, Tensor]:
        return camera_looking_at(target[None], yaw, elevation, torch.tensor([d], dtype=torch.float64))

    if distance is None:  # back off until the whole path fits (perspective: a few fixed-point steps)
        distance = base
        for _ in range(20):
            R, t = placed(distance)
            camera_points = world_joints @ R[0].T + t[0]
            extent = (camera_points[..., :2].abs() / camera_points[..., 2:].clamp(min=1e-3)).amax()
            ratio = float(extent) / math.tan(math.radians(fov_degrees) / 2) / fill
            if ratio <= 1.0 + 1e-3:
                break
            distance *= ratio
    R, t = placed(distance)
    R, t = R[0], t[0]

    # The body in the camera frame, as synthetic.sample_people does it: rotate the root, move the pelvis.
    global_orient = matrix_to_axis_angle(R @ root)
    rest_pelvis = model(betas=betas[:1], return_verts=False).joints[0, 0].double()
    transl = pelvis @ R.T + t - rest_pelvis
    posed = model(betas=betas, global_orient=global_orient.to(model.dtype), body_pose=body_pose,
                  transl=transl.to(model.dtype), return_verts=render)  # fmt: skip
    camera = intrinsics.camera
    joints3d = posed.joints.double()
    people = People(betas=betas.double(), body_pose=body_pose.double(), global_orient=global_orient, transl=transl,
                    joints3d=joints3d, keypoints=project(joints3d, camera), camera_R=R.expand(frames, 3, 3),
                    camera_t=t.expand(frames, 3), camera=camera, clip_index=torch.zeros(frames, dtype=torch.long),
                    frame=torch.arange(frames), clip_names=[motion.name or "motion"])  # fmt: skip
    if render:
        vertices = posed.vertices.double()
        parts = []
        for index in range(frames):  # one frame at a time, each from the same seed: the same colours and light
            one = dataclasses.replace(people, **{name: getattr(people, name)[index : index + 1] for name in (
                "betas", "body_pose", "global_orient", "transl", "joints3d", "keypoints", "camera_R", "camera_t",
                "clip_index", "frame")})  # fmt: skip
            render_people(one, vertices[index : index + 1], model, image_size, np.random.default_rng(seed))
            parts.append(one)
        people.images = torch.cat([p.images for p in parts])
        people.masks = torch.cat([p.masks for p in parts])
        people.visibility = torch.cat([p.visibility for p in parts])
    return VideoClip(people=people, motion=motion, world_joints=world_joints)
