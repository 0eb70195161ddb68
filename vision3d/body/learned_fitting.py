r"""Fitting the body model to 2D keypoints by learned gradient descent (Song, Chen and Hilliges, ECCV 2020).

    from vision3d.body.learned_fitting import default_learned_fitter, learned_fit
    fit = learned_fit(model, keypoints, confidences, camera)      # keypoints [B, 24, 2] px -> a FitResult
    fit.joints3d                                                    # [B, 24, 3], camera frame, metres

    python -m vision3d.body.learned_fitting train --out vision3d/body/data/learned_fitting   # regenerate the shipped F
    python -m vision3d.body.learned_fitting eval --samples 48                                 # learned vs Adam table

SMPLify (:mod:`vision3d.body.fitting`) minimises a hand-made energy with Adam for hundreds of iterations. Learned
gradient descent keeps the gradient of the data term but lets a network decide what to do with it. The unknowns
(course notation) ``Theta = (theta, beta, t)`` -- here the global orientation and the 23 body-joint rotations in
the 6D representation (6 + 138 numbers), the 10 betas and the camera-frame translation ``t`` (3), 157 in all
(:data:`THETA_SIZE`, layout :func:`pack` / :func:`unpack`) -- are updated for ``T`` steps by

.. math::

    \Theta_{t+1} = \Theta_t + F_\phi\big(\partial L_{reproj} / \partial \Theta_t,\ \Theta_t,\ x,\ t\big),
    \qquad t = 0 .. T-1,

with the reprojection loss of the keypoints ``x_j`` (pixels, confidences ``c_j``, perspective projection ``Pi``)
measured in units of the keypoints' own spread ``s`` (RMS distance to their centroid), so that its gradient does not
depend on how large the person is in the image:

.. math::

    L_{reproj}(\Theta) = \frac{\sum_j c_j \,\| (\Pi(J_j(\Theta)) - x_j) / s \|^2}{\sum_j c_j}.

``F`` (:class:`LearnedUpdate`) is an MLP shared by the steps, told the step by a one-hot code. Its input is the
concatenation of (shapes for a batch of ``B``, :func:`input_features`):

- ``gradient [B, 157]``: ``dL_reproj / dTheta_t``, by autograd, **detached** (``create_graph=False``): training does
  not differentiate through the gradient computation (no second derivatives), the gradient is an input like ``x``;
  ``Theta_t`` itself is not detached, so the training loss still reaches every earlier step through it;
- ``theta [B, 157]``: ``Theta_t`` as it is;
- ``keypoint features [B, 75]``: the keypoints centred on their confidence-weighted centroid and divided by their
  spread (48, zero where ``c_j = 0``), the confidences (24), and the centroid and spread in normalised camera
  coordinates (``(centroid - principal point) / f``, ``s / f``: where the person is and how far, 3);
- ``step [B, T]``: one-hot ``t``.

Initialisation ``Theta_0`` (:func:`initial_theta`): the rest pose (the mean pose of the shape space, betas 0), upright
and facing the camera, at the translation whose torso matches the keypoints' torso by similar triangles (as the
camera stage of :func:`~vision3d.body.fitting.fit_to_keypoints` starts). The output layer of ``F`` starts at zero, so
an untrained ``F`` leaves ``Theta`` there.

Training (:func:`train`): synthetic people (:mod:`vision3d.body.synthetic`) posed like frames of
:data:`~vision3d.body.synthetic.TRAIN_CLIPS` and their mirrors, with cameras drawn as the evaluation protocol draws
them (+-35 degrees of yaw, -5..10 degrees of elevation, 512 x 512 pixels) and fresh ``N(0, 1 px^2)`` keypoint noise
per batch. The loss sums, over every unrolled step, the mean error of the root-relative joints plus a small weight on
the pelvis position (so that the translation is learned too), in metres, against the ground truth ``J*``:

.. math::

    \mathcal{L}(\phi) = \frac1T \sum_{t=1}^{T} \Big[ \frac1{24} \sum_j
        \big\| (J_j(\Theta_t) - J_0(\Theta_t)) - (J^*_j - J^*_0) \big\| + \lambda_0 \| J_0(\Theta_t) - J^*_0 \| \Big],

backpropagated through the whole unroll (Adam, gradient clipping). Supervising every step, not only the last, is
Song et al.'s choice: each step must improve on its input, so the unroll does not rely on one lucky final jump.
The evaluation (:func:`compare`, ``benchmarks/bench_learned_fitting.py``) runs on the held-out
:data:`~vision3d.body.synthetic.TEST_CLIPS` only; nothing here was tuned on them.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mpenv import tables
from mpenv.checkpoint import load_weights_checked
from vision3d.body.fitting import (
    FACING_CAMERA,
    TORSO_JOINTS,
    FitConfig,
    FitResult,
    PerspectiveCamera,
    initial_camera,
    project,
    refine_fit,
    weighted_centroid_and_spread,
)
from vision3d.body.model import BodyModel
from vision3d.body.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    rotation_6d_to_matrix,
)
from vision3d.body.skeleton import N_JOINTS

__all__ = [
    "CHECKPOINT_NAME",
    "CONFIG_NAME",
    "KEYPOINT_FEATURES",
    "LearnedConfig",
    "LearnedUpdate",
    "THETA_SIZE",
    "compare",
    "default_learned_fitter",
    "default_learned_path",
    "initial_theta",
    "input_features",
    "joints_of",
    "keypoint_features",
    "learned_fit",
    "load_learned_fitter",
    "markdown_table",
    "pack",
    "protocol_people",
    "reprojection_objective",
    "save_learned_fitter",
    "step_losses",
    "train",
    "unpack",
    "unroll",
]

NUM_BETAS = 10
THETA_SIZE = 6 + 6 * (N_JOINTS - 1) + NUM_BETAS + 3  # orientation 6D, body pose 6D, betas, translation = 157
KEYPOINT_FEATURES = 2 * N_JOINTS + N_JOINTS + 3  # normalised keypoints, confidences, centroid and spread = 75
CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"
PELVIS_WEIGHT = 0.1  # lambda_0: the absolute pelvis position matters less than the pose for PA-MPJPE

# An update rule: (gradient [B, 157], theta [B, 157], keypoint features [B, 75], step t) -> Delta [B, 157].
Update = Callable[[Tensor, Tensor, Tensor, int], Tensor]


# ---------------------------------------------------------------------------------------------------------------
# The unknowns Theta and the objective


def pack(global_orient_6d: Tensor, body_pose_6d: Tensor, betas: Tensor, transl: Tensor) -> Tensor:
    """``Theta [B, 157]`` = ``[orientation 6D (6) | body pose 6D (23 * 6) | betas (10) | translation (3)]``."""
    return torch.cat([global_orient_6d, body_pose_6d.reshape(len(body_pose_6d), -1), betas, transl], dim=-1)


def unpack(theta: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Inverse of :func:`pack`: ``(orient_6d [B, 6], pose_6d [B, 23, 6], betas [B, 10], transl [B, 3])``."""
    if theta.ndim != 2 or theta.shape[1] != THETA_SIZE:
        raise ValueError(f"theta must have shape [B, {THETA_SIZE}], got {tuple(theta.shape)}")
    orient, pose, betas, transl = theta.split([6, 6 * (N_JOINTS - 1), NUM_BETAS, 3], dim=-1)
    return orient, pose.reshape(-1, N_JOINTS - 1, 6), betas, transl


def joints_of(model: BodyModel, theta: Tensor) -> Tensor:
    """Camera-frame joints ``[B, 24, 3]`` of the body with unknowns ``theta``."""
    orient, pose, betas, transl = unpack(theta)
    return model(
        betas=betas,
        global_orient=rotation_6d_to_matrix(orient)[:, None],
        body_pose=rotation_6d_to_matrix(pose),
        transl=transl,
        pose2rot=False,
        return_verts=False,
        return_full_pose=False,
    ).joints


def _check(model: BodyModel, keypoints: Tensor, confidences: Tensor, camera: PerspectiveCamera) -> None:
    if not isinstance(camera, PerspectiveCamera):
        raise ValueError(f"learned fitting needs a PerspectiveCamera, got {type(camera).__name__}")
    if model.num_betas != NUM_BETAS:
        raise ValueError(f"learned fitting is built for {NUM_BETAS} betas, the model has {model.num_betas}")
    if keypoints.ndim != 3 or keypoints.shape[1:] != (N_JOINTS, 2):
        raise ValueError(f"keypoints must have shape [B, {N_JOINTS}, 2], got {tuple(keypoints.shape)}")
    if confidences.shape != keypoints.shape[:2]:
        raise ValueError(f"confidences must have shape {tuple(keypoints.shape[:2])}, got {tuple(confidences.shape)}")
    if not bool(((confidences[:, list(TORSO_JOINTS)] > 0).sum(-1) >= 2).all()):
        raise ValueError("every sample needs at least two visible torso joints (their spread gives the depth)")


def initial_theta(model: BodyModel, keypoints: Tensor, confidences: Tensor, camera: PerspectiveCamera) -> Tensor:
    """``Theta_0 [B, 157]``: rest pose, betas 0, facing the camera, translation by similar triangles of the torso."""
    batch, factory = keypoints.shape[0], {"dtype": keypoints.dtype, "device": keypoints.device}
    orient = torch.tensor(FACING_CAMERA, **factory).expand(batch, 3)
    with torch.no_grad():
        rest = model(global_orient=orient, return_verts=False, return_full_pose=False).joints.to(keypoints.dtype)
    torso = list(TORSO_JOINTS)
    transl, _, _ = initial_camera(rest[:, torso], keypoints[:, torso], confidences[:, torso], camera)
    identity = matrix_to_rotation_6d(torch.eye(3, **factory).expand(batch, N_JOINTS - 1, 3, 3))
    return pack(matrix_to_rotation_6d(axis_angle_to_matrix(orient)), identity, keypoints.new_zeros(batch, NUM_BETAS),
                transl)  # fmt: skip


def reprojection_objective(
    joints: Tensor, keypoints: Tensor, confidences: Tensor, camera: PerspectiveCamera
) -> Tensor:
    """``L_reproj [B]`` of the module docstring: confidence-weighted mean squared reprojection error in units of the
    keypoints' spread."""
    _, spread = weighted_centroid_and_spread(keypoints, confidences)
    squared = (((project(joints, camera) - keypoints) / spread[:, None, None]) ** 2).sum(-1)
    return (confidences * squared).sum(-1) / confidences.sum(-1).clamp(min=1e-12)


def keypoint_features(keypoints: Tensor, confidences: Tensor, camera: PerspectiveCamera) -> Tensor:
    """``[B, 75]``: normalised keypoints (48), confidences (24), centroid and spread in camera units (3)."""
    centroid, spread = weighted_centroid_and_spread(keypoints, confidences)
    normalised = (keypoints - centroid[:, None]) / spread[:, None, None] * (confidences > 0)[..., None]
    focal = keypoints.new_tensor(camera.focal)
    where = (centroid - keypoints.new_tensor(camera.principal_point)) / focal
    return torch.cat([normalised.flatten(1), confidences, where, (spread / focal.mean())[:, None]], dim=-1)


def input_features(gradient: Tensor, theta: Tensor, features: Tensor, step: int, steps: int) -> Tensor:
    """F's input ``[B, 157 + 157 + 75 + T]``: ``[gradient | theta | keypoint features | one-hot step]``."""
    if gradient.shape != theta.shape or theta.shape[1:] != (THETA_SIZE,):
        raise ValueError(f"gradient and theta must be [B, {THETA_SIZE}], got {tuple(gradient.shape)}, "
                         f"{tuple(theta.shape)}")  # fmt: skip
    if features.shape != (theta.shape[0], KEYPOINT_FEATURES):
        raise ValueError(f"keypoint features must be [B, {KEYPOINT_FEATURES}], got {tuple(features.shape)}")
    if not 0 <= step < steps:
        raise ValueError(f"step must be in [0, {steps}), got {step}")
    one_hot = theta.new_zeros(theta.shape[0], steps)
    one_hot[:, step] = 1.0
    return torch.cat([gradient, theta, features, one_hot], dim=-1)


# ---------------------------------------------------------------------------------------------------------------
# The network F and the unroll


@dataclass(frozen=True)
class LearnedConfig:
    """Architecture of :class:`LearnedUpdate` (what ``config.json`` must hold to rebuild it)."""

    steps: int = 6
    hidden: int = 384
    layers: int = 2
    gradient_scale: float = 10.0  # the spread-normalised gradient is O(0.1); scaled so inputs are O(1)

    def check(self, source: str = "config") -> None:
        if not (isinstance(self.steps, int) and 1 <= self.steps <= 100):
            raise ValueError(f"{source}: steps must be an integer in [1, 100], got {self.steps!r}")
        if not (isinstance(self.hidden, int) and self.hidden >= 8):
            raise ValueError(f"{source}: hidden must be an integer >= 8, got {self.hidden!r}")
        if not (isinstance(self.layers, int) and self.layers >= 1):
            raise ValueError(f"{source}: layers must be an integer >= 1, got {self.layers!r}")
        if not (isinstance(self.gradient_scale, (int, float)) and math.isfinite(self.gradient_scale)
                and self.gradient_scale > 0):  # fmt: skip
            raise ValueError(f"{source}: gradient_scale must be a positive number, got {self.gradient_scale!r}")


class LearnedUpdate(nn.Module):
    """``F``: MLP ``[gradient | theta | keypoint features | one-hot step] -> Delta [B, 157]``, output layer at zero."""

    def __init__(self, config: LearnedConfig = LearnedConfig()) -> None:  # noqa: B008 (frozen dataclass)
        super().__init__()
        config.check()
        self.config = config
        width = 2 * THETA_SIZE + KEYPOINT_FEATURES + config.steps
        blocks: list[nn.Module] = []
        for _ in range(config.layers):
            blocks += [nn.Linear(width, config.hidden), nn.GELU()]
            width = config.hidden
        self.body = nn.Sequential(*blocks)
        self.out = nn.Linear(width, THETA_SIZE)
        # Zero output: the untrained unroll is the identity, so training starts from Theta_0, not from noise.
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, gradient: Tensor, theta: Tensor, features: Tensor, step: int) -> Tensor:
        dtype = self.out.weight.dtype
        inputs = input_features(self.config.gradient_scale * gradient, theta, features, step, self.config.steps)
        return self.out(self.body(inputs.to(dtype))).to(theta.dtype)


def unroll(
    model: BodyModel,
    keypoints: Tensor,
    confidences: Tensor,
    camera: PerspectiveCamera,
    update: Update,
    steps: int,
    theta0: Tensor | None = None,
) -> list[Tensor]:
    """``[Theta_0, ..., Theta_T]`` of ``Theta_{t+1} = Theta_t + update(dL_reproj/dTheta_t, Theta_t, x, t)``.

    The gradient is computed on a detached copy of ``Theta_t`` (``create_graph=False``), so it carries no graph;
    the ``Theta_t`` given to ``update`` does, and the returned iterates are differentiable in ``update``'s
    parameters when grad mode is on. ``theta0`` defaults to :func:`initial_theta`."""
    _check(model, keypoints, confidences, camera)
    theta = initial_theta(model, keypoints, confidences, camera) if theta0 is None else theta0
    features = keypoint_features(keypoints, confidences, camera)
    iterates = [theta]
    for step in range(steps):
        with torch.enable_grad():
            leaf = theta.detach().requires_grad_(True)
            objective = reprojection_objective(joints_of(model, leaf), keypoints, confidences, camera)
            # Batch elements are independent, so the gradient of the sum is each element's own gradient.
            (gradient,) = torch.autograd.grad(objective.sum(), leaf)
        theta = theta + update(gradient, theta, features, step)
        iterates.append(theta)
    return iterates


def learned_fit(
    model: BodyModel,
    keypoints: Tensor,
    confidences: Tensor,
    camera: PerspectiveCamera,
    network: LearnedUpdate | None = None,
    refine_iterations: int = 0,
    refine_config: FitConfig | None = None,
) -> FitResult:
    """Fit by unrolling ``network`` (default: the shipped one) for its ``steps``; a
    :class:`~vision3d.body.fitting.FitResult` whose ``loss_history [T + 1, B]`` holds ``L_reproj`` of each iterate.

    ``refine_iterations > 0``: then run that many iterations of :func:`~vision3d.body.fitting.fit_to_keypoints`'s
    body stage from the unroll's result (:func:`~vision3d.body.fitting.refine_fit`, with ``refine_config``'s energy
    and schedule, default ``FitConfig()``), as SPIN refines a regressor's estimate with SMPLify; ``loss_history`` is
    then the refinement's energies."""
    if refine_iterations < 0:
        raise ValueError(f"refine_iterations must be >= 0, got {refine_iterations}")
    network = default_learned_fitter() if network is None else network
    keypoints = torch.as_tensor(keypoints, dtype=model.dtype, device=model.device)
    confidences = torch.as_tensor(confidences, dtype=model.dtype, device=model.device)
    with torch.no_grad():
        iterates = unroll(model, keypoints, confidences, camera, network, network.config.steps)
        history = torch.stack([reprojection_objective(joints_of(model, t), keypoints, confidences, camera)
                               for t in iterates])  # fmt: skip
        orient, pose, betas, transl = unpack(iterates[-1])
        joints = joints_of(model, iterates[-1])
        fit = FitResult(
            betas=betas,
            global_orient=matrix_to_axis_angle(rotation_6d_to_matrix(orient)),
            body_pose=matrix_to_axis_angle(rotation_6d_to_matrix(pose)).reshape(len(pose), -1),
            transl=transl,
            joints3d=joints,
            loss_history=history,
            camera=camera,
            reprojection_error=torch.linalg.vector_norm(project(joints, camera) - keypoints, dim=-1),
        )
    if refine_iterations:
        fit = refine_fit(model, keypoints, confidences, camera, fit, refine_iterations, refine_config or FitConfig())
    return fit


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints


def default_learned_path() -> Path:
    return Path(__file__).resolve().parent / "data" / "learned_fitting"


def save_learned_fitter(network: LearnedUpdate, directory: str | Path, extra: dict[str, Any] | None = None) -> None:
    """Write ``directory/checkpoint.pt`` (the state dict) and ``directory/config.json`` (architecture + ``extra``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().float().cpu().clone() for name, tensor in network.state_dict().items()}
    torch.save(state, directory / CHECKPOINT_NAME)
    config = {"architecture": asdict(network.config), **(extra or {})}
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load_learned_fitter(directory: str | Path) -> LearnedUpdate:
    """Rebuild ``F`` from :func:`save_learned_fitter`'s directory; ``ValueError`` naming the file if anything is off."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_NAME, directory / CHECKPOINT_NAME
    try:
        raw = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{config_path}: cannot read the learned-fitting config ({error})") from error
    if not isinstance(raw, dict) or not isinstance(raw.get("architecture"), dict):
        raise ValueError(f"{config_path}: expected an object with an 'architecture' object")
    fields = set(LearnedConfig.__dataclass_fields__)
    unknown = set(raw["architecture"]) - fields
    if unknown:
        raise ValueError(f"{config_path}: unknown architecture keys {sorted(unknown)} (expected {sorted(fields)})")
    config = LearnedConfig(**raw["architecture"])
    config.check(str(config_path))
    network = LearnedUpdate(config)
    load_weights_checked(weights_path, network, "learned-fitting weights")
    return network.eval()


_DEFAULT: LearnedUpdate | None = None


def default_learned_fitter() -> LearnedUpdate:
    """The shipped ``F`` (``vision3d/body/data/learned_fitting``), loaded once."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = load_learned_fitter(default_learned_path())
    return _DEFAULT


# ---------------------------------------------------------------------------------------------------------------
# Training


def protocol_people(n: int, clips: tuple[str, ...], seed: int, model: BodyModel, noise_px: float = 1.0,
                    image_size: int = 512) -> tuple[Any, Tensor, Tensor]:  # fmt: skip
    """The evaluation protocol's scenes: ``(people, noisy keypoints, confidences)`` (float64; see :func:`compare`)."""
    from vision3d.body.synthetic import PeopleConfig, sample_people

    config = PeopleConfig(clips=clips, yaw_degrees=35, elevation_degrees=(-5, 10), image_size=image_size)
    people = sample_people(n, config, seed=seed, model=model)
    noise = torch.randn(people.keypoints.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return people, people.keypoints + noise_px * noise, torch.ones(n, N_JOINTS, dtype=torch.float64)


def step_losses(model: BodyModel, iterates: list[Tensor], target: Tensor) -> Tensor:
    """Per-step training loss ``[T]`` (the bracket of the module docstring's ``L(phi)``, batch mean), metres."""
    losses = []
    for theta in iterates[1:]:
        joints = joints_of(model, theta)
        relative = (joints - joints[:, :1]) - (target - target[:, :1])
        pelvis = torch.linalg.vector_norm(joints[:, 0] - target[:, 0], dim=-1)
        losses.append((torch.linalg.vector_norm(relative, dim=-1).mean(-1) + PELVIS_WEIGHT * pelvis).mean())
    return torch.stack(losses)


def train(
    config: LearnedConfig = LearnedConfig(),  # noqa: B008 (frozen dataclass)
    iterations: int = 3000,
    batch: int = 128,
    lr: float = 1e-3,
    train_samples: int = 20000,
    seed: int = 0,
    log_every: int = 100,
    log: Callable[[str], None] | None = print,
) -> tuple[LearnedUpdate, dict[str, Any]]:
    """Train ``F`` on :data:`~vision3d.body.synthetic.TRAIN_CLIPS` scenes (module docstring). Returns ``F`` and a
    record (settings, seconds, final validation PA-MPJPE on other TRAIN_CLIPS scenes) for ``config.json``."""
    from vision3d.body.fitting import pa_mpjpe
    from vision3d.body.synthetic import TRAIN_CLIPS

    torch.manual_seed(seed)
    model64 = BodyModel.default(dtype=torch.float64, device="cpu")
    model = BodyModel.default(dtype=torch.float32, device="cpu")  # float32: ~3x faster on CPU, plenty for training
    people, _, _ = protocol_people(train_samples, TRAIN_CLIPS, seed, model64)
    camera = people.camera
    clean = people.keypoints.float()
    target = people.joints3d.float()
    val_people, val_keypoints, val_conf = protocol_people(256, TRAIN_CLIPS, seed + 1000, model64)
    network = LearnedUpdate(config)
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iterations)
    generator = torch.Generator().manual_seed(seed)
    confidences = torch.ones(batch, N_JOINTS)
    start = time.time()

    def validate() -> float:
        with torch.no_grad():
            iterates = unroll(model, val_keypoints.float(), val_conf.float(), camera, network, config.steps)
            return float(100 * pa_mpjpe(joints_of(model, iterates[-1]).double(), val_people.joints3d).median())

    for iteration in range(1, iterations + 1):
        rows = torch.randint(train_samples, (batch,), generator=generator)
        keypoints = clean[rows] + torch.randn(batch, N_JOINTS, 2, generator=generator)
        iterates = unroll(model, keypoints, confidences, camera, network, config.steps)
        losses = step_losses(model, iterates, target[rows])
        optimizer.zero_grad(set_to_none=True)
        losses.mean().backward()
        nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if log is not None and (iteration % log_every == 0 or iteration == 1):
            per_step = " ".join(f"{100 * v:.1f}" for v in losses.detach())
            log(f"iter {iteration:5d}  {time.time() - start:6.0f} s  loss per step (cm) {per_step}")
    network.eval()
    record = {"iterations": iterations, "batch": batch, "lr": lr, "train_samples": train_samples, "seed": seed,
              "train_clips": list(TRAIN_CLIPS), "train_seconds": round(time.time() - start, 1),
              "validation_pa_mpjpe_median_cm_train_clips": round(validate(), 2)}  # fmt: skip
    if log is not None:
        log(f"validation (256 other TRAIN_CLIPS scenes) median PA-MPJPE {record[list(record)[-1]]:.2f} cm")
    return network, record


# ---------------------------------------------------------------------------------------------------------------
# Evaluation


def compare(samples: int = 48, seed: int = 0, network: LearnedUpdate | None = None,
            adam_iterations: tuple[int, int] = (100, 400)) -> list[dict[str, Any]]:  # fmt: skip
    """Fit the same held-out scenes (:data:`~vision3d.body.synthetic.TEST_CLIPS`, the protocol of
    ``benchmarks/bench_pose_prior.py``: +-35 degrees of yaw, -5..10 degrees of elevation, 512 x 512 pixels, 1 px
    noise, confidences 1) with Adam (``FitConfig()``, :func:`~vision3d.body.pose_prior.gmm_fit_config`, each also
    with 1/5 of its iterations) and with the learned unroll. One row per method: iterations, wall seconds (one
    thread as set by the caller), median / p90 PA-MPJPE (cm), mean reprojection error (px)."""
    from vision3d.body.fitting import fit_to_keypoints, pa_mpjpe
    from vision3d.body.pose_prior import gmm_fit_config
    from vision3d.body.synthetic import TEST_CLIPS

    model = BodyModel.default(dtype=torch.float64, device="cpu")
    people, keypoints, confidences = protocol_people(samples, TEST_CLIPS, seed, model)
    network = default_learned_fitter() if network is None else network
    fifth = (adam_iterations[0] // 5, adam_iterations[1] // 5)
    methods: list[tuple[str, int, Callable[[], FitResult]]] = []
    for name, make in (("Adam, FitConfig()", FitConfig), ("Adam, gmm_fit_config()", gmm_fit_config)):
        for its in (adam_iterations, fifth):
            label = name if its == adam_iterations else f"{name}, 1/5 iterations"
            methods.append((label, sum(its), lambda make=make, its=its: fit_to_keypoints(
                model, keypoints, confidences, people.camera, make(iterations=its))))  # fmt: skip
    steps = network.config.steps
    methods.append((f"learned, T = {steps}", steps,
                    lambda: learned_fit(model, keypoints, confidences, people.camera, network)))  # fmt: skip
    refine = sum(fifth) - steps  # the learned steps and the refinement within 1/5 of Adam's iterations
    for name, make in (("FitConfig()", FitConfig), ("gmm_fit_config()", gmm_fit_config)):
        methods.append((f"learned, T = {steps}, + {refine} Adam iterations of {name}", steps + refine,
                        lambda make=make: learned_fit(model, keypoints, confidences, people.camera, network,
                                                      refine, make())))  # fmt: skip
    rows = []
    for label, its, fit_fn in methods:
        start = time.time()
        fit = fit_fn()
        seconds = time.time() - start
        error = 100.0 * pa_mpjpe(fit.joints3d, people.joints3d)
        rows.append({"method": label, "iterations": its, "seconds": seconds, "samples": samples,
                     "median_cm": float(error.median()), "p90_cm": float(torch.quantile(error, 0.9)),
                     "reprojection_px": float(fit.reprojection_error.mean())})  # fmt: skip
    return rows


def markdown_table(rows: list[dict[str, Any]]) -> str:
    return tables.markdown_table(rows, {
        "method": "{method}", "iterations": "{iterations}", "wall s": "{seconds:.2f}",
        "PA-MPJPE median (cm)": "{median_cm:.1f}", "PA-MPJPE p90 (cm)": "{p90_cm:.1f}",
        "reprojection (px)": "{reprojection_px:.2f}"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vision3d.body.learned_fitting", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train F on TRAIN_CLIPS scenes and save it")
    tr.add_argument("--out", type=Path, default=default_learned_path(), help="directory for checkpoint.pt, config.json")
    tr.add_argument("--iterations", type=int, default=3000, help="Adam steps on F")
    tr.add_argument("--batch", type=int, default=128, help="scenes per step")
    tr.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (cosine-decayed to 0)")
    tr.add_argument("--steps", type=int, default=LearnedConfig.steps, help="T, unrolled steps")
    tr.add_argument("--hidden", type=int, default=LearnedConfig.hidden, help="MLP width")
    tr.add_argument("--layers", type=int, default=LearnedConfig.layers, help="MLP hidden layers")
    tr.add_argument("--train-samples", type=int, default=20000, help="synthetic TRAIN_CLIPS scenes drawn once")
    tr.add_argument("--seed", type=int, default=0, help="seed of the scenes, noise and initial weights")
    ev = sub.add_parser("eval", help="learned vs Adam fitting on held-out TEST_CLIPS scenes (markdown table)")
    ev.add_argument("--checkpoint", type=Path, default=default_learned_path(), help="directory written by train")
    ev.add_argument("--samples", type=int, default=48, help="held-out scenes")
    ev.add_argument("--seed", type=int, default=0, help="seed of the scenes and of the keypoint noise")
    for p in (tr, ev):
        p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.command == "train":
        config = LearnedConfig(steps=args.steps, hidden=args.hidden, layers=args.layers)
        network, record = train(config, args.iterations, args.batch, args.lr, args.train_samples, args.seed)
        save_learned_fitter(network, args.out, {"training": record, "threads": args.threads})
        size = (args.out / CHECKPOINT_NAME).stat().st_size
        print(f"wrote {args.out} ({size / 1e6:.2f} MB)")
    else:
        network = load_learned_fitter(args.checkpoint)
        print(markdown_table(compare(args.samples, args.seed, network)))
        print(f"\n{args.samples} held-out scenes (TEST_CLIPS), seed {args.seed}, {args.threads} thread(s)")


if __name__ == "__main__":
    main()
