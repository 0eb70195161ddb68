"""Synthetic people: the body model posed like the frames of motion clips, with random shapes and cameras, and
exact 2D and 3D ground truth -- the data the learned half of the body chapter trains and is measured on.

    from vision3d.body.synthetic import PeopleConfig, sample_people
    people = sample_people(1000, PeopleConfig(clips=TRAIN_CLIPS), seed=0)                  # keypoints only
    people = sample_people(1000, PeopleConfig(clips=TEST_CLIPS, image_size=64), seed=1, render=True)
    people.keypoints, people.joints3d, people.images     # [N, 24, 2] px, [N, 24, 3] m (camera frame), [N, H, W, 3]

What one sample is, drawn independently with a ``numpy`` generator seeded by ``seed`` (the same seed and config
give the same samples, bit for bit):

- **pose**: a frame drawn uniformly from the frames of the config's clips (each clip and, with ``mirrors``, its
  left/right mirror weighted equally, whatever their lengths), its 23 body-joint rotations as they are;
- **shape**: ``betas ~ N(0, shape_std^2)`` per component of the model's shape space, clipped to +-2.5 std;
- **camera**: a pinhole camera (``fov_degrees``, square ``image_size`` pixels, principal point at the centre) that
  looks at the pelvis from ``yaw`` degrees around the vertical axis away from the direction the body faces
  (uniform in ``+-yaw_degrees``: 180 is all around, 0 straight from the front), ``elevation`` degrees above the
  horizontal (uniform in ``elevation_degrees``), at the distance where a 1.8 m tall figure would span ``fill`` of
  the image height, times a random factor in ``distance_jitter``;
- ground truth in the camera frame (OpenCV: x right, y down, z forward): the 24 joints in metres, their pixel
  coordinates ``keypoints = K X`` (exact: :func:`vision3d.body.fitting.project` of ``joints3d``), and the pose's
  global orientation and translation re-expressed in the camera frame (``global_orient``, ``transl``) so that
  ``model(betas, global_orient, body_pose, transl).joints`` is ``joints3d``.

The clips are Z-up; the camera's image "up" is world +z. Train and test sets are split by clip
(:data:`TRAIN_CLIPS`, :data:`TEST_CLIPS`), so a test measures generalization to motion never seen in training.
With ``render=True`` the posed mesh is rasterized and shaded (random skin tint, light direction and background;
:mod:`vision3d.body.people_render`) and each joint gets a visibility flag.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from vision3d.body.fitting import PerspectiveCamera
from vision3d.body.motion import Motion
from vision3d.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle

if TYPE_CHECKING:
    from vision3d.body.model import BodyModel

# Split by clip: the test clips' motions never appear in training (nor their mirrors).
TRAIN_CLIPS = ("walk", "jump", "cartwheel", "cmu_jumps")
TEST_CLIPS = ("run", "cmu_walk")
FIGURE_HEIGHT = 1.8  # metres: what ``fill`` is measured on
MIRROR_AXIS = 1  # the shipped Z-up clips face +x: their left is +-y (Motion.mirror)


@dataclass(frozen=True)
class PeopleConfig:
    """What :func:`sample_people` draws from (see the module docstring)."""

    clips: tuple[str | Motion, ...] = TRAIN_CLIPS
    mirrors: bool = True
    shape_std: float = 1.0
    yaw_degrees: float = 180.0
    elevation_degrees: tuple[float, float] = (-10.0, 30.0)
    fov_degrees: float = 40.0
    image_size: int = 64
    fill: float = 0.8
    distance_jitter: tuple[float, float] = (0.9, 1.15)

    def __post_init__(self) -> None:
        problems = []
        if not self.clips:
            problems.append("clips is empty")
        if not (self.shape_std >= 0 and math.isfinite(self.shape_std)):
            problems.append(f"shape_std must be >= 0, got {self.shape_std}")
        if not 0 <= self.yaw_degrees <= 180:
            problems.append(f"yaw_degrees must be in [0, 180], got {self.yaw_degrees}")
        low, high = self.elevation_degrees
        if not -80 <= low <= high <= 80:
            problems.append(f"elevation_degrees must be (low, high) within [-80, 80], got {self.elevation_degrees}")
        if not 0 < self.fov_degrees < 150:
            problems.append(f"fov_degrees must be in (0, 150), got {self.fov_degrees}")
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < 8:
            problems.append(f"image_size must be an integer >= 8, got {self.image_size!r}")
        if not 0 < self.fill <= 1.5:
            problems.append(f"fill must be in (0, 1.5], got {self.fill}")
        if not 0 < self.distance_jitter[0] <= self.distance_jitter[1]:
            problems.append(f"distance_jitter must be 0 < low <= high, got {self.distance_jitter}")
        if problems:
            raise ValueError("bad PeopleConfig: " + "; ".join(problems))

    @property
    def focal(self) -> float:
        return self.image_size / 2 / math.tan(math.radians(self.fov_degrees) / 2)

    @property
    def camera(self) -> PerspectiveCamera:
        """The intrinsics every sample shares (the camera's pose is per sample)."""
        return PerspectiveCamera(self.focal, (self.image_size / 2, self.image_size / 2))


@dataclass
class People:
    """A batch of N synthetic people (float64 tensors; see the module docstring for the frames and units).

    ``clip_index`` [N] points into ``clip_names`` (mirrors are named ``<clip>_mirror``) and ``frame`` [N] is the
    frame of that clip. ``camera_R`` [N, 3, 3], ``camera_t`` [N, 3] map world points to the camera frame. ``images``
    (uint8 [N, H, W, 3]), ``masks`` (bool [N, H, W]) and ``visibility`` (bool [N, 24]) are None unless rendered."""

    betas: Tensor
    body_pose: Tensor
    global_orient: Tensor
    transl: Tensor
    joints3d: Tensor
    keypoints: Tensor
    camera_R: Tensor
    camera_t: Tensor
    camera: PerspectiveCamera
    clip_index: Tensor
    frame: Tensor
    clip_names: list[str]
    images: Tensor | None = None
    masks: Tensor | None = None
    visibility: Tensor | None = None
    vertices: Tensor | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.joints3d)


def clip_motions(clips: Sequence[str | Motion], mirrors: bool = True) -> list[Motion]:
    """The clips as Motions (shipped ones by name), each followed by its mirror if ``mirrors``."""
    from vision3d.body.clips import load_clip

    motions = []
    for clip in clips:
        motion = load_clip(clip) if isinstance(clip, str) else clip
        if not motion.name:
            motion = Motion(motion.fps, motion.poses, motion.trans, motion.betas, name=f"clip{len(motions)}")
        motions.append(motion)
        if mirrors:
            mirrored = motion.mirror(MIRROR_AXIS)
            mirrored.name = f"{motion.name}_mirror"
            motions.append(mirrored)
    return motions


def facing_yaw(root_orient: Tensor) -> Tensor:
    """The heading [N] (radians about world +z) of bodies with root rotations [N, 3, 3]: where SMPL's forward
    axis (+z in the body frame) points, projected on the ground."""
    forward = root_orient[:, :, 2]
    return torch.atan2(forward[:, 1], forward[:, 0])


def camera_looking_at(target: Tensor, yaw: Tensor, elevation: Tensor, distance: Tensor) -> tuple[Tensor, Tensor]:
    """World-to-camera ``(R [N, 3, 3], t [N, 3])`` of cameras at ``distance`` from ``target`` [N, 3], in the
    horizontal direction ``yaw`` and ``elevation`` above it (radians), looking at it, image "up" along world +z."""
    direction = torch.stack([torch.cos(elevation) * torch.cos(yaw), torch.cos(elevation) * torch.sin(yaw),
                             torch.sin(elevation)], dim=-1)  # fmt: skip
    eye = target + distance[:, None] * direction
    forward = -direction
    up = torch.tensor([0.0, 0.0, 1.0], dtype=target.dtype).expand_as(forward)
    right = torch.linalg.cross(forward, up)
    right = right / right.norm(dim=-1, keepdim=True)
    down = torch.linalg.cross(forward, right)
    R = torch.stack([right, down, forward], dim=1)  # rows: the camera's axes in world coordinates
    return R, -(R @ eye[:, :, None])[:, :, 0]


def sample_people(n: int, config: PeopleConfig = PeopleConfig(), seed: int = 0, model: BodyModel | None = None,
                  render: bool = False) -> People:
    """``n`` synthetic people drawn as the module docstring says, from ``model`` (default: the shipped body
    model). ``render=True`` adds images, masks and joint visibility."""
    from vision3d.body.model import BodyModel

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    model = BodyModel.default() if model is None else model
    motions = clip_motions(config.clips, config.mirrors)
    rng = np.random.default_rng(seed)
    clip_index = rng.integers(len(motions), size=n)
    frame = np.array([rng.integers(motions[c].n_frames) for c in clip_index])
    poses = torch.from_numpy(np.stack([motions[c].poses[f] for c, f in zip(clip_index, frame, strict=True)]))
    betas = torch.from_numpy(np.clip(rng.normal(0.0, config.shape_std, (n, model.num_betas)), -2.5, 2.5))
    yaw_offset = np.radians(rng.uniform(-config.yaw_degrees, config.yaw_degrees, n))
    elevation = np.radians(rng.uniform(*config.elevation_degrees, n))
    jitter = rng.uniform(*config.distance_jitter, n)

    # The body in the world with its root at the origin of the clip's frame (the translation cancels below).
    root_world = axis_angle_to_matrix(poses[:, 0])
    body_pose = poses[:, 1:].reshape(n, -1)
    world = model(betas=betas, global_orient=poses[:, 0], body_pose=body_pose, return_verts=False)
    pelvis = world.joints[:, 0].double()
    distance = FIGURE_HEIGHT / config.fill / 2 / math.tan(math.radians(config.fov_degrees) / 2) * jitter
    R, t = camera_looking_at(pelvis, facing_yaw(root_world) + torch.from_numpy(yaw_offset),
                             torch.from_numpy(elevation), torch.from_numpy(distance))  # fmt: skip

    # The same body in the camera frame: rotate the root, and translate so that the pelvis lands where R, t put it.
    global_orient = matrix_to_axis_angle(R @ root_world)
    rest_pelvis = model(betas=betas, return_verts=False).joints[:, 0].double()
    transl = (R @ pelvis[:, :, None])[:, :, 0] + t - rest_pelvis
    posed = model(betas=betas, global_orient=global_orient, body_pose=body_pose, transl=transl,
                  return_verts=render)  # fmt: skip
    camera = config.camera
    from vision3d.body.fitting import project

    joints3d = posed.joints.double()
    people = People(betas=betas, body_pose=body_pose, global_orient=global_orient, transl=transl, joints3d=joints3d,
                    keypoints=project(joints3d, camera), camera_R=R, camera_t=t, camera=camera,
                    clip_index=torch.from_numpy(clip_index), frame=torch.from_numpy(frame),
                    clip_names=[m.name for m in motions])  # fmt: skip
    if render:
        from vision3d.body.people_render import render_people

        render_people(people, posed.vertices.double(), model, config.image_size, rng)
    return people
