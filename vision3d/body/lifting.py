r"""Lifting 2D keypoints to 3D joints with an MLP ("a simple yet effective baseline", Martinez et al., ICCV 2017),
why its skeletons are not bodies (bone lengths change from frame to frame), and the fix a body model gives.

    from vision3d.body.lifting import LiftConfig, TrainConfig, lifting_data, train_lifter, evaluate_lifter, lift
    train = lifting_data(20_000, TRAIN_CLIPS, seed=0)                    # synthetic people, cameras all around
    lifter = train_lifter(train, LiftConfig(hidden=1024), TrainConfig(epochs=30))
    lift(lifter, people.keypoints)                                       # [N, 24, 3] m, root-relative, camera frame
    evaluate_lifter(lifter, lifting_data(2000, TEST_CLIPS, seed=1))      # {"mpjpe_mm": ..., "pa_mpjpe_mm": ...}
    save_lifter(lifter, "runs/lift"); lifter = load_lifter("runs/lift")  # lifter.pt + lifter.json
    fit = fit_body_to_joints(model, lift(lifter, seq.keypoints))         # one shape for the sequence
    bone_lengths(fit.joints3d).std(0)                                    # 0 to float precision

**The lift.** Input: the 24 keypoints ``x_j`` (pixels) of one person, centred on the pelvis (joint 0) and divided by
their RMS distance to it, ``s = sqrt(mean_j ||x_j - x_0||^2)``:

.. math::  \hat x_j = (x_j - x_0) / s

a per-sample scale (not the paper's dataset mean/std of the inputs): the distance of the camera, which the network
cannot know, then drops out, and what is left is the *shape* of the 2D pose. The pelvis row, always 0, is left
out, so the network sees 46 numbers. Output: the 23 other joints relative to the pelvis, in metres, in the camera
frame, as in the paper standardised by the training set's per-coordinate mean ``mu`` and std ``sigma`` (buffers of
the module, saved with it): ``y_j = mu + sigma * f(\hat x)``. The absolute size of the body is then a learned prior
(the scale/depth ambiguity of one view: a large person far away projects like a small one near).

Architecture (the paper's, ``hidden=1024, blocks=2, dropout=0.5``)::

    46 -> Linear(hidden) -> BN -> ReLU -> Dropout
       -> blocks x [ h + (Linear -> BN -> ReLU -> Dropout -> Linear -> BN -> ReLU -> Dropout)(h) ]
       -> Linear(69)

trained with Adam on the MSE of the standardised outputs, the learning rate decayed exponentially per epoch (the
paper's max-norm weight constraint is left out). :func:`mpenv.networks.mlp` is Linear-activation only, so the
residual blocks with batch norm and dropout are built here.

**The failure mode.** Nothing ties the 69 outputs together: the length of a bone, ``L_b = ||y_j - y_parent(j)||``,
is whatever the regression gives for each frame, so one person's arm changes length from frame to frame
(:func:`bone_lengths`, :func:`bone_length_stats`), and far outside the training poses it can be absurd.

**The fix.** Fit the body model to the lifted joints of the whole sequence (:func:`fit_body_to_joints`), with one
shape ``beta`` for all frames and a pose ``theta_t`` (axis-angle) per frame:

.. math::

    E(\beta, \theta_{1..T}) = \frac1T \sum_t \Big[ \sum_j \|(J_j - J_0)(\beta, \theta_t) - (y_{tj} - y_{t0})\|^2
                              + \lambda_\theta (E_\theta(\theta_t) + E_a(\theta_t)) \Big] + \lambda_\beta \|\beta\|^2

(root-relative squared errors in m^2; ``E_theta``, ``E_a``: the pose and joint-limit priors of
:mod:`vision3d.body.fitting`). Forward kinematics moves each bone rigidly, ``p_j - p_parent(j) = G_parent(j)
(J_j(beta) - J_parent(j)(beta))``, so the fitted bone lengths are fixed by ``beta`` alone: exactly constant over
the sequence.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from mpenv.checkpoint import load_weights_checked
from vision3d.body import kinematics
from vision3d.body.fitting import (
    default_pose_prior_std,
    joint_limit_prior,
    mpjpe,
    pa_mpjpe,
    pose_prior,
    project,
)
from vision3d.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from vision3d.body.skeleton import N_JOINTS, PARENTS
from vision3d.body.synthetic import (
    FIGURE_HEIGHT,
    TEST_CLIPS,
    TRAIN_CLIPS,
    People,
    PeopleConfig,
    camera_looking_at,
    facing_yaw,
    sample_people,
)

if TYPE_CHECKING:
    from vision3d.body.model import BodyModel

__all__ = [
    "TEST_CLIPS",
    "TRAIN_CLIPS",
    "JointFit",
    "LiftConfig",
    "Lifter",
    "TrainConfig",
    "bone_length_stats",
    "bone_lengths",
    "clip_sequence",
    "denormalize_keypoints",
    "evaluate_lifter",
    "fit_body_to_joints",
    "lift",
    "lifting_data",
    "load_lifter",
    "mean_pose_mpjpe",
    "normalize_keypoints",
    "root_relative",
    "save_lifter",
    "train_lifter",
]

N_IN = 2 * (N_JOINTS - 1)  # the pelvis row of the centred keypoints is always 0: left out
N_OUT = 3 * (N_JOINTS - 1)  # the pelvis is the origin of the output: left out
WEIGHTS_FILE, CONFIG_FILE = "lifter.pt", "lifter.json"
CHECKPOINT_FORMAT = "vision3d.body.lifting/1"
MIN_SCALE = 1e-6  # pixels; a degenerate pose (all keypoints on the pelvis) is not divided by 0


# ---------------------------------------------------------------------------------------------------------------
# Normalisation


def normalize_keypoints(keypoints: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(x_hat [N, 24, 2], root [N, 2], scale [N])``: keypoints [N, 24, 2] centred on the pelvis and divided by
    their RMS distance to it (module docstring). :func:`denormalize_keypoints` inverts it."""
    if keypoints.ndim != 3 or keypoints.shape[1:] != (N_JOINTS, 2):
        raise ValueError(f"keypoints must have shape [N, {N_JOINTS}, 2], got {tuple(keypoints.shape)}")
    root = keypoints[:, 0]
    centred = keypoints - root[:, None]
    scale = centred.square().sum(-1).mean(-1).sqrt().clamp(min=MIN_SCALE)
    return centred / scale[:, None, None], root, scale


def denormalize_keypoints(normalized: Tensor, root: Tensor, scale: Tensor) -> Tensor:
    """Pixels ``[N, 24, 2]`` back from :func:`normalize_keypoints`'s output."""
    return normalized * scale[:, None, None] + root[:, None]


def root_relative(joints3d: Tensor) -> Tensor:
    """Joints ``[N, 24, 3]`` minus their pelvis (joint 0): what the lift predicts and MPJPE is measured on."""
    return joints3d - joints3d[:, :1]


# ---------------------------------------------------------------------------------------------------------------
# The network


@dataclass(frozen=True)
class LiftConfig:
    """The lifter's architecture (saved as JSON beside its weights): the paper's is the default."""

    hidden: int = 1024
    blocks: int = 2
    dropout: float = 0.5

    def __post_init__(self) -> None:
        for name in ("hidden", "blocks"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "hidden" else 0):
                raise ValueError(f"LiftConfig.{name} must be an integer >= {1 if name == 'hidden' else 0}, "
                                 f"got {value!r}")  # fmt: skip
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LiftConfig.dropout must be in [0, 1), got {self.dropout!r}")


def _dense(width_in: int, width_out: int, dropout: float) -> list[nn.Module]:
    return [nn.Linear(width_in, width_out), nn.BatchNorm1d(width_out), nn.ReLU(), nn.Dropout(dropout)]


class ResidualBlock(nn.Module):
    """``h + (Linear -> BN -> ReLU -> Dropout) x 2 (h)``: the skip lets the block start near the identity."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.body = nn.Sequential(*_dense(width, width, dropout), *_dense(width, width, dropout))

    def forward(self, h: Tensor) -> Tensor:
        return h + self.body(h)


class Lifter(nn.Module):
    """Pixels ``[N, 24, 2]`` -> root-relative camera-frame joints ``[N, 24, 3]`` in metres (module docstring).

    ``target_mean``/``target_std`` [69] are the output standardisation, set from the training set by
    :func:`train_lifter` (identity until then)."""

    target_mean: Tensor
    target_std: Tensor

    def __init__(self, config: LiftConfig = LiftConfig()) -> None:
        super().__init__()
        self.config = config
        self.stem = nn.Sequential(*_dense(N_IN, config.hidden, config.dropout))
        self.blocks = nn.Sequential(*(ResidualBlock(config.hidden, config.dropout) for _ in range(config.blocks)))
        self.head = nn.Linear(config.hidden, N_OUT)
        self.register_buffer("target_mean", torch.zeros(N_OUT))
        self.register_buffer("target_std", torch.ones(N_OUT))

    def standardized(self, keypoints: Tensor) -> Tensor:
        """The network's raw output ``f(x_hat)`` [N, 69] (what the MSE is taken on)."""
        normalized, _, _ = normalize_keypoints(keypoints.to(self.target_mean.dtype))
        return self.head(self.blocks(self.stem(normalized[:, 1:].flatten(1))))

    def forward(self, keypoints: Tensor) -> Tensor:
        joints = self.target_mean + self.target_std * self.standardized(keypoints)
        return torch.cat([joints.new_zeros(len(joints), 1, 3), joints.unflatten(1, (N_JOINTS - 1, 3))], dim=1)


# ---------------------------------------------------------------------------------------------------------------
# Data, training, evaluation


def lifting_data(n: int, clips: Sequence[str] = TRAIN_CLIPS, seed: int = 0, model: BodyModel | None = None,
                 yaw_degrees: float = 180.0) -> People:  # fmt: skip
    """``n`` synthetic people of ``clips`` seen from cameras all around (``yaw_degrees=180``), float64."""
    return sample_people(n, PeopleConfig(clips=tuple(clips), yaw_degrees=yaw_degrees), seed=seed, model=model)


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`train_lifter` trains (the paper: batch 64, lr 1e-3 decayed by 0.96 every 100k steps, 200 epochs
    of Human3.6M; larger batches and a faster decay here, for a CPU and a small synthetic set)."""

    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    lr_decay: float = 0.95  # per epoch
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.epochs >= 0 and self.batch_size >= 2 and self.lr > 0 and 0 < self.lr_decay <= 1):
            raise ValueError(f"bad TrainConfig (need epochs >= 0, batch_size >= 2 for batch norm, lr > 0, "
                             f"0 < lr_decay <= 1): {self}")  # fmt: skip


def train_lifter(train: People, config: LiftConfig = LiftConfig(), train_config: TrainConfig = TrainConfig(),
                 device: str | torch.device = "cpu", progress: bool = False) -> Lifter:  # fmt: skip
    """A :class:`Lifter` trained on ``train`` (keypoints -> root-relative ``joints3d``) by Adam on the MSE of the
    standardised outputs; one fixed set, reshuffled every epoch. Returned in eval mode, on ``device``."""
    from tqdm.auto import tqdm

    torch.manual_seed(train_config.seed)
    lifter = Lifter(config).to(device)
    keypoints = train.keypoints.to(device, torch.float32)
    targets = root_relative(train.joints3d)[:, 1:].flatten(1).to(device, torch.float32)
    lifter.target_mean.copy_(targets.mean(0))
    lifter.target_std.copy_(targets.std(0).clamp(min=1e-6))
    targets = (targets - lifter.target_mean) / lifter.target_std
    optimizer = torch.optim.Adam(lifter.parameters(), lr=train_config.lr)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=train_config.lr_decay)
    generator = torch.Generator().manual_seed(train_config.seed)
    n, batch = len(keypoints), train_config.batch_size
    lifter.train()
    bar = tqdm(range(train_config.epochs), desc="lift", disable=not progress)
    for _ in bar:
        order = torch.randperm(n, generator=generator).to(device)
        # Whole batches only: a last batch of 1 would make batch norm's statistics degenerate.
        for start in range(0, n - batch + 1 if n >= batch else 1, batch):
            rows = order[start : start + batch]
            loss = (lifter.standardized(keypoints[rows]) - targets[rows]).square().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
    return lifter.eval()


@torch.no_grad()
def lift(lifter: Lifter, keypoints: Tensor, batch: int = 8192) -> Tensor:
    """``lifter(keypoints)`` in eval mode, in chunks, as float64 on the keypoints' device."""
    lifter.eval()
    device = lifter.target_mean.device
    chunks = [lifter(chunk.to(device, torch.float32)) for chunk in keypoints.split(batch)]
    return torch.cat(chunks).to(keypoints.device, torch.float64)


def evaluate_lifter(lifter: Lifter, people: People) -> dict[str, float]:
    """Mean MPJPE and PA-MPJPE (mm) of the lifted, root-relative joints of ``people`` against their truth."""
    pred, truth = lift(lifter, people.keypoints), root_relative(people.joints3d)
    return {
        "mpjpe_mm": 1000 * mpjpe(pred, truth).mean().item(),
        "pa_mpjpe_mm": 1000 * pa_mpjpe(pred, truth).mean().item(),
    }


def mean_pose_mpjpe(train: People, test: People) -> float:
    """The chance baseline (mm): MPJPE on ``test`` of always predicting the mean root-relative training pose."""
    mean = root_relative(train.joints3d).mean(0, keepdim=True)
    truth = root_relative(test.joints3d)
    return 1000 * mpjpe(mean.expand_as(truth), truth).mean().item()


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints


def save_lifter(lifter: Lifter, directory: str | os.PathLike[str]) -> Path:
    """``directory/lifter.pt`` (the state dict, CPU tensors) and ``directory/lifter.json`` (the architecture)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in lifter.state_dict().items()}, directory / WEIGHTS_FILE)
    config = {"format": CHECKPOINT_FORMAT, **asdict(lifter.config)}
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return directory


def load_lifter(directory: str | os.PathLike[str], device: str | torch.device = "cpu") -> Lifter:
    """The :class:`Lifter` that :func:`save_lifter` wrote, in eval mode. ``ValueError`` naming the file for an
    unreadable or mismatching config, a missing or unexpected key, or a tensor of the wrong shape."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    try:
        raw = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{config_path}: cannot read the lifter config ({error})") from error
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{config_path}: not a lifter config (expected format {CHECKPOINT_FORMAT!r})")
    names = {f.name for f in fields(LiftConfig)}
    if set(raw) - {"format"} != names:
        raise ValueError(f"{config_path}: expected keys {sorted(names)}, got {sorted(set(raw) - {'format'})}")
    try:
        config = LiftConfig(**{name: raw[name] for name in names})
    except (TypeError, ValueError) as error:
        raise ValueError(f"{config_path}: {error}") from error
    lifter = Lifter(config)
    load_weights_checked(weights_path, lifter, "lifter weights")
    return lifter.to(device).eval()


# ---------------------------------------------------------------------------------------------------------------
# Bone lengths: the failure mode


def bone_lengths(joints: Tensor, parents: Sequence[int] = PARENTS) -> Tensor:
    """``||p_j - p_parent(j)||`` of the bones of a tree (default SMPL's: ``[..., 24, 3] -> [..., 23]``, bone
    ``b`` ends at joint ``b + 1``)."""
    return kinematics.bone_lengths(joints, parents)


def bone_length_stats(joints: Tensor, true_lengths: Tensor) -> dict[str, Tensor | float]:
    """How much the bones of one person's sequence ``joints [T, 24, 3]`` vary and how wrong they are:

    - ``std [23]``: per-bone standard deviation over the frames (metres; 0 for a rigid skeleton);
    - ``max_relative_error``: ``max_{t, b} |L_tb - L_b| / L_b`` against the true lengths ``[23]``;
    - ``worst_bone``: the bone (its child joint's index) where that maximum is reached."""
    lengths = bone_lengths(joints)
    relative = ((lengths - true_lengths) / true_lengths).abs()
    worst = int(relative.max(0).values.argmax())
    return {"std": lengths.std(0), "max_relative_error": relative.max().item(), "worst_bone": worst + 1}


def clip_sequence(model: BodyModel, clip: str, frames: slice = slice(None), betas: Tensor | None = None,
                  yaw_degrees: float = 30.0, elevation_degrees: float = 10.0,
                  config: PeopleConfig | None = None) -> People:  # fmt: skip
    """Consecutive frames of one shipped clip, one person (``betas [1, B]``, default the mean shape), filmed by a
    camera with a fixed orientation that follows the pelvis (so it stays at the image centre as in
    :func:`~vision3d.body.synthetic.sample_people`): ``yaw_degrees`` around the vertical from the direction the
    body faces in the first frame, ``elevation_degrees`` up, at ``config``'s distance for a 1.8 m figure."""
    from vision3d.body.clips import load_clip

    config = PeopleConfig() if config is None else config
    motion = load_clip(clip)
    factory = {"dtype": torch.float64, "device": "cpu"}
    poses = torch.as_tensor(motion.poses[frames], **factory)
    n = len(poses)
    betas = torch.zeros(1, model.num_betas, **factory) if betas is None else betas.to(**factory).reshape(1, -1)
    betas = betas.expand(n, -1)
    body_pose = poses[:, 1:].flatten(1)
    root_world = axis_angle_to_matrix(poses[:, 0])
    world = model(betas=betas, global_orient=poses[:, 0], body_pose=body_pose, return_verts=False)
    pelvis = world.joints[:, 0].to(**factory)
    yaw = facing_yaw(root_world[:1]) + math.radians(yaw_degrees)
    distance = FIGURE_HEIGHT / config.fill / 2 / math.tan(math.radians(config.fov_degrees) / 2)
    R, t = camera_looking_at(pelvis, yaw.expand(n), torch.full((n,), math.radians(elevation_degrees), **factory),
                             torch.full((n,), distance, **factory))  # fmt: skip
    # As in sample_people: the root rotated into the camera frame, the translation putting the pelvis there.
    global_orient = matrix_to_axis_angle(R @ root_world)
    rest_pelvis = model(betas=betas[:1], return_verts=False).joints[:, 0].to(**factory)
    transl = (R @ pelvis[:, :, None])[:, :, 0] + t - rest_pelvis
    joints3d = model(betas=betas, global_orient=global_orient, body_pose=body_pose, transl=transl,
                     return_verts=False).joints.to(**factory)  # fmt: skip
    frame = torch.arange(motion.n_frames)[frames]
    return People(betas=betas, body_pose=body_pose, global_orient=global_orient, transl=transl, joints3d=joints3d,
                  keypoints=project(joints3d, config.camera), camera_R=R, camera_t=t, camera=config.camera,
                  clip_index=torch.zeros(n, dtype=torch.long), frame=frame, clip_names=[motion.name])  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# The body model fit: the fix


@dataclass
class JointFit:
    """:func:`fit_body_to_joints`'s result: ``betas [1, B]`` (shared) or ``[T, B]``, axis-angle ``global_orient
    [T, 3]`` and ``body_pose [T, 69]``, ``transl [T, 3]``, the model's ``joints3d [T, 24, 3]`` for them, and the
    energy at the start and after each iteration ``loss_history [iterations + 1]``."""

    betas: Tensor
    global_orient: Tensor
    body_pose: Tensor
    transl: Tensor
    joints3d: Tensor
    loss_history: Tensor


def _kabsch(source: Tensor, target: Tensor, centre: bool = True) -> Tensor:
    """Rotations ``R [T, 3, 3]`` minimising ``sum_k ||R s_k - t_k||^2`` for point sets ``source [K, 3]``, ``target
    [T, K, 3]`` (centred first if ``centre``): ``R = U diag(1, 1, det(U V^T)) V^T`` from ``svd(sum_k t_k s_k^T)``."""
    if centre:
        source, target = source - source.mean(0), target - target.mean(1, keepdim=True)
    u, _, vh = torch.linalg.svd(target.transpose(1, 2) @ source)
    d = torch.ones(len(target), 3, dtype=target.dtype, device=target.device)
    d[:, -1] = torch.sign(torch.det(u @ vh))
    return u @ torch.diag_embed(d) @ vh


def _swing(source: Tensor, target: Tensor) -> Tensor:
    """The smallest rotations ``[T, 3, 3]`` turning the direction ``source [3]`` into ``target [T, 3]``: about
    ``source x target`` by the angle between them."""
    source = source.expand_as(target)
    axis = torch.linalg.cross(source, target)
    sine, cosine = axis.norm(dim=-1, keepdim=True), (source * target).sum(-1, keepdim=True)
    angle = torch.atan2(sine, cosine)
    return axis_angle_to_matrix(axis / sine.clamp(min=1e-12) * angle)


def _align_bones(offsets: Tensor, target: Tensor) -> Tensor:
    """Local rotations ``[T, 24, 3, 3]`` (root: global) that point every rest bone (``offsets [24, 3]``, ``J_j -
    J_parent(j)``) along the target's (``target [T, 24, 3]``): analytic inverse kinematics down the tree, one joint
    at a time (a loop over the 24 joints, vectorized over frames). A joint with one child turns by the smallest
    rotation (its twist is invisible in the joints), one with several (pelvis, spine3) by Kabsch on its bones."""
    eye = torch.eye(3, dtype=target.dtype, device=target.device).expand(len(target), 3, 3)
    rotations, world = [], []
    for joint in range(N_JOINTS):  # topological order: the parent's world rotation is known
        parent_world = world[PARENTS[joint]] if joint > 0 else eye
        children = [child for child in range(N_JOINTS) if PARENTS[child] == joint]
        # The children's target bones in the frame the joint's local rotation acts in.
        goal = (target[:, children] - target[:, joint : joint + 1]) @ parent_world
        if not children:
            rotation = eye
        elif len(children) == 1:
            rotation = _swing(offsets[children[0]], goal[:, 0])
        else:
            rotation = _kabsch(offsets[children], goal, centre=False)
        rotations.append(rotation)
        world.append(parent_world @ rotation)
    return torch.stack(rotations, dim=1)


def _best_betas(a: Tensor, b: Tensor, target: Tensor, shape_weight: float, shared: bool) -> Tensor:
    """The ``beta`` minimising ``mean_t ||a_t + b_t beta - y_t||^2 + lambda_beta ||beta||^2`` (``a [T, 24, 3]``,
    ``b [T, 24, 3, B]``): the normal equations, one ``B x B`` system (``shared``: ``[1, B]``) or one per frame."""
    b = b.flatten(1, 2)  # [T, 72, B]
    gram = b.transpose(1, 2) @ b  # [T, B, B]
    rhs = (b.transpose(1, 2) @ (target - a).flatten(1)[..., None])[..., 0]  # [T, B]
    if shared:
        gram, rhs = gram.mean(0, keepdim=True), rhs.mean(0, keepdim=True)
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    return torch.linalg.solve(gram + shape_weight * eye, rhs)


def _ancestor_matrix(parents: Sequence[int]) -> Tensor:
    """``A [J, J]`` with ``A[j, k] = 1`` when ``k`` is ``j`` or one of its ancestors: summing bone vectors along
    the path from the root, ``p_j = sum_k A[j, k] bone_k``."""
    matrix = torch.zeros(len(parents), len(parents))
    for joint, parent in enumerate(parents):  # topological order: the parent's row is complete
        if parent >= 0:
            matrix[joint] = matrix[parent]
        matrix[joint, joint] = 1.0
    return matrix


def fit_body_to_joints(model: BodyModel, joints3d: Tensor, iterations: int = 200, shared_shape: bool = True,
                       lr: float = 0.03, pose_weight: float = 1e-6,
                       shape_weight: float = 1e-6) -> JointFit:  # fmt: skip
    """Fit ``model`` to a sequence of 3D joints ``[T, 24, 3]`` (metres): minimise the module docstring's energy,
    ``iterations`` Adam steps on the poses (learning rate decayed from ``lr`` to ``lr / 100``), the shape solved
    exactly at every step.

    ``shared_shape``: one ``betas`` for all frames (bone lengths constant over the sequence) or one per frame.
    ``pose_weight``/``shape_weight`` are ``lambda_theta``/``lambda_beta`` in m^2: with ``1e-6`` one prior standard
    deviation costs as much as a 1 mm error at one joint -- the joints determine the pose except the twists about
    the bones, which move no joint, so the priors only keep those and the flat shape directions in check.

    Two things make a few hundred steps enough (from the T-pose, plain Adam on everything left 5-15 mm after 400
    steps on joints made by the model itself):

    - the start: every bone pointed along the target's by analytic inverse kinematics down the tree
      (:func:`_align_bones`), which is already within ~1 mm on exact joints;
    - the shape: with the rotations fixed the joints are *linear* in ``beta`` (the bone offsets ``J_j(beta) -
      J_parent(j)(beta)`` are, and ``p_j = sum_{k on the path to j} G_parent(k) offset_k``), so the best ``beta``
      is a ridge regression, solved exactly at each step (variable projection). At that minimum ``dE/d beta = 0``,
      so the poses' gradient is the same with ``beta`` held constant.

    Joints come from that sum, without building the mesh; the result's ``joints3d`` from the model's own forward
    pass. The translation does not enter a root-relative energy and is set in closed form at the end (fitted
    pelvis = given pelvis)."""
    if joints3d.ndim != 3 or joints3d.shape[1:] != (N_JOINTS, 3):
        raise ValueError(f"joints3d must have shape [T, {N_JOINTS}, 3], got {tuple(joints3d.shape)}")
    factory = {"dtype": model.dtype, "device": model.device}
    joints3d = joints3d.detach().to(**factory)  # a lifter's output: its graph is not ours to backpropagate into
    target = root_relative(joints3d)
    n = len(target)
    template, basis = (a.detach() for a in model.regressed_arrays())  # J(beta) = template + basis beta
    # Bone offsets of the template and of each shape component [1 + B, 24, 3]; root row 0: root-relative output.
    offsets = kinematics.local_offsets(torch.cat([template[None], basis.permute(2, 0, 1)]), PARENTS)
    offsets[:, 0] = 0.0
    start = _align_bones(offsets[0], target)
    orient0 = start[:, 0]
    delta = torch.zeros(n, 3, **factory, requires_grad=True)  # global orientation = orient0 exp(delta)
    body_pose = matrix_to_axis_angle(start[:, 1:]).requires_grad_(True)
    prior_std = default_pose_prior_std(**factory)

    parent_index = torch.tensor((0, *PARENTS[1:]), device=model.device)
    on_path = _ancestor_matrix(PARENTS).to(**factory)

    def linear_parts() -> tuple[Tensor, Tensor]:
        """``(a [T, 24, 3], b [T, 24, 3, B])`` with root-relative joints ``a + b beta`` at the current pose:
        ``p_j = sum_{k on the path to j} G_parent(k) offset_k``, each offset linear in ``beta``."""
        rotations = axis_angle_to_matrix(torch.cat([delta[:, None], body_pose], dim=1))
        rotations = torch.cat([orient0[:, None] @ rotations[:, :1], rotations[:, 1:]], dim=1)
        world = kinematics.forward_kinematics_from_offsets(rotations, offsets[0], PARENTS)[1]  # G_j [T, 24, 3, 3]
        rotated = torch.einsum("tkcd,skd->tskc", world[:, parent_index], offsets)  # [T, 1 + B, 24, 3]
        parts = torch.einsum("jk,tskc->tsjc", on_path, rotated)
        return parts[:, 0], parts[:, 1:].permute(0, 2, 3, 1)

    optimizer = torch.optim.Adam([delta, body_pose], lr=lr)
    # Adam at a constant rate jitters by about lr around the minimum (0.05 rad is 2 cm at the end of a limb):
    # decay it to 1% so the last steps settle.
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.01 ** (1 / max(iterations, 1)))
    history = []
    for _ in range(iterations + 1):
        a, b = linear_parts()
        with torch.no_grad():
            betas = _best_betas(a, b, target, shape_weight, shared_shape)
        pose = body_pose.flatten(1)
        joints = a + torch.einsum("tjcb,tb->tjc", b, betas.expand(n, -1))
        data = (joints - target).square().sum((-1, -2))
        prior = pose_weight * (pose_prior(pose, 0.0, prior_std) + joint_limit_prior(pose))
        energy = (data + prior).mean() + shape_weight * betas.square().sum(-1).mean()
        history.append(energy.detach())
        if len(history) > iterations:  # the last pass only evaluates the final pose
            break
        optimizer.zero_grad(set_to_none=True)
        energy.backward()
        optimizer.step()
        schedule.step()

    with torch.no_grad():
        global_orient = matrix_to_axis_angle(orient0 @ axis_angle_to_matrix(delta))
        body_pose = body_pose.detach().flatten(1)
        # The model's own forward pass (not the offsets above), so the result is what BodyModel gives for it.
        unmoved = model(betas=betas.expand(n, -1), global_orient=global_orient, body_pose=body_pose,
                        return_verts=False).joints  # fmt: skip
        transl = joints3d[:, 0] - unmoved[:, 0]
        return JointFit(
            betas=betas,
            global_orient=global_orient,
            body_pose=body_pose,
            transl=transl,
            joints3d=unmoved + transl[:, None],
            loss_history=torch.stack(history),
        )
