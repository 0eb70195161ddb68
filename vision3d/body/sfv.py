r"""SFV (Peng et al., "SFV: Reinforcement Learning of Physical Skills from Videos", 2018) end to end: a video of one
person -> 2D keypoints -> a temporally smooth 3D body fit -> a Motion -> the physics humanoid imitates it.

    python -m vision3d.body.sfv frames/ --out motion.npz                 # a folder of .png/.jpg frames, by name
    python -m vision3d.body.sfv video.mp4 --out motion.npz --fov 60      # an mp4 (imageio + imageio-ffmpeg)
    python -m vision3d.body.sfv keypoints.npz --out motion.npz --fps 30  # keypoints [T, 24, 2] (+ confidences)
    python -m vision3d.body.sfv frames/ --out motion.npz --check-humanoid
    mpenv-train ppo --env mpenv/HumanoidMimic-v0 --env-kwargs '{"motion": "motion.npz"}' --total-steps 20000000

The pipeline (each stage is its own module):

1. Frames (or the keypoints of a ``.npz``): every frame padded to a square (centred) and resized to the shipped 2D
   pose network's 64 x 64 input (:func:`vision3d.body.pose2d.default_pose_model`), which predicts the 24 SMPL
   joints in pixels of that 64 x 64 image; confidences are 1 (the network gives none). A ``.npz`` needs
   ``keypoints [T, 24, 2]`` (pixels of an ``--image-size`` square image) and may have ``confidences [T, 24]``.
2. Camera: static pinhole, principal point at the image centre, focal length ``--focal`` pixels (of the input
   frames; rescaled with them) or from ``--fov`` degrees (default 40: the synthetic people's camera,
   :class:`vision3d.body.synthetic.PeopleConfig`).
3. Temporal fit (:func:`vision3d.body.video_fitting.fit_sequence`): per-frame SMPLify, then a joint refinement
   with one shape and a smoothness prior on joint accelerations and rotations (``--smooth-weight`` is
   ``lambda_J``).
4. Motion (:func:`vision3d.body.video_fitting.sequence_to_motion`): Z-up world from the floor through the planted
   feet, facing +x, soles on z = 0, ``--fps`` frames per second (default: the video's, else 30); saved as an
   AMASS-style ``.npz`` (:meth:`vision3d.body.motion.Motion.save`).
5. The humanoid (``--check-humanoid``): the Motion converted for ``mpenv/HumanoidMimic-v0`` and replayed
   kinematically through ``step`` (the character set onto the reference each step, as in
   ``tests/test_humanoid_tracking.py``): the replay's MPJPE (0 when the conversion is exact) and what clamping the
   hinge angles to the character's joint limits costs (:func:`mpenv.humanoid.reference.reference_quality`), then
   the PPO command above (``motion=`` is the env's keyword for a clip name or a motion file).

Bad input (a missing path, a folder without frames, an ``.npz`` without ``keypoints [T, 24, 2]``) is one line on
stderr naming the file, exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vision3d.body.fitting import PerspectiveCamera
from vision3d.body.motion import Motion
from vision3d.body.skeleton import N_JOINTS

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".gif")
NETWORK_SIZE = 64  # pixels: the shipped pose network's input (it was trained on 64 x 64 synthetic people)
DEFAULT_FOV = 40.0  # degrees: vision3d.body.synthetic.PeopleConfig's
DEFAULT_FPS = 30.0
PPO_COMMAND = ("mpenv-train ppo --env mpenv/HumanoidMimic-v0 --env-kwargs '{{\"motion\": \"{path}\"}}' "
               "--total-steps 20000000")  # fmt: skip


class InputError(ValueError):
    """Bad input to the CLI: its message names the file; the CLI prints it on one line and exits with 2."""


# ---------------------------------------------------------------------------------------------------------------
# Reading the input


def read_frames(path: Path) -> tuple[np.ndarray, float | None]:
    """``(frames uint8 [T, H, W, 3], fps or None)`` of a folder of images (sorted by name) or a video file."""
    import imageio.v3 as iio

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if not files:
            raise InputError(f"{path}: no frames (expected {', '.join(FRAME_SUFFIXES)} files)")
        frames = [_rgb(iio.imread(f), f) for f in files]
        if len({f.shape for f in frames}) != 1:
            raise InputError(f"{path}: frames differ in size ({sorted({f.shape[:2] for f in frames})})")
        return np.stack(frames), None
    try:
        frames = [_rgb(frame, path) for frame in iio.imiter(path)]
        fps = iio.immeta(path).get("fps")
    except (OSError, ValueError, RuntimeError) as err:
        raise InputError(f"{path}: cannot read the video ({err})") from err
    if not frames:
        raise InputError(f"{path}: no frames in the video")
    return np.stack(frames), float(fps) if fps else None


def _rgb(image: np.ndarray, path: Path) -> np.ndarray:
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise InputError(f"{path}: not an RGB image (shape {image.shape})")
    return np.asarray(image[..., :3], dtype=np.uint8)


def to_network_input(frames: np.ndarray, size: int = NETWORK_SIZE) -> tuple[torch.Tensor, float]:
    """Frames padded to a centred square and resized to ``size``: ``(uint8 [T, size, size, 3], scale)``, with
    ``scale`` = network pixels per frame pixel (pixel coordinates map as ``u' = scale (u + pad)``)."""
    _, height, width, _ = frames.shape
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    square = np.zeros((len(frames), side, side, 3), dtype=np.uint8)
    square[:, top : top + height, left : left + width] = frames
    images = torch.from_numpy(square).permute(0, 3, 1, 2).float()
    if side != size:  # area averaging when shrinking (no aliasing), bilinear when growing
        mode = "area" if side > size else "bilinear"
        images = torch.nn.functional.interpolate(images, size=(size, size), mode=mode)
    return images.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1), size / side


def network_keypoints(images: torch.Tensor) -> torch.Tensor:
    """Keypoints ``[T, 24, 2]`` (pixels of the ``NETWORK_SIZE`` images) from the shipped 2D pose network."""
    from vision3d.body.pose2d import PoseSet, default_pose_model, predict_keypoints

    try:
        network = default_pose_model()
    except (OSError, ValueError) as err:  # CheckpointError is a ValueError; a missing folder an OSError
        raise InputError(f"vision3d/body/data/pose_heatmap: the shipped 2D pose network is missing or unreadable "
                         f"({err}); give keypoints as an .npz instead") from err  # fmt: skip
    data = PoseSet(images, torch.zeros(len(images), N_JOINTS, 2), torch.ones(len(images), N_JOINTS, dtype=torch.bool))
    with torch.no_grad():
        return predict_keypoints(network, data).double()


def read_keypoints(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(keypoints [T, 24, 2], confidences [T, 24])`` of a ``.npz``; confidences default to 1."""
    try:
        with np.load(path, allow_pickle=False) as data:
            contents = {key: data[key] for key in data.files}
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read the .npz ({err})") from err
    if "keypoints" not in contents:
        raise InputError(f"{path}: no 'keypoints' array (found: {sorted(contents)}); expected keypoints [T, 24, 2]")
    keypoints = np.asarray(contents["keypoints"], dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[1:] != (N_JOINTS, 2) or len(keypoints) < 3:
        raise InputError(f"{path}: keypoints must have shape [T >= 3, {N_JOINTS}, 2], got {keypoints.shape}")
    confidences = np.asarray(contents.get("confidences", np.ones(keypoints.shape[:2])), dtype=np.float64)
    if confidences.shape != keypoints.shape[:2]:
        raise InputError(f"{path}: confidences must have shape {keypoints.shape[:2]}, got {confidences.shape}")
    if not (np.isfinite(keypoints).all() and np.isfinite(confidences).all() and (confidences >= 0).all()):
        raise InputError(f"{path}: keypoints and confidences must be finite, confidences >= 0")
    return keypoints, confidences


def make_camera(image_size: float, focal: float | None, fov: float | None) -> PerspectiveCamera:
    """Pinhole camera of a square ``image_size`` image: focal length ``focal`` pixels, else from ``fov`` degrees."""
    if focal is None:
        focal = image_size / 2 / math.tan(math.radians(DEFAULT_FOV if fov is None else fov) / 2)
    return PerspectiveCamera(focal, (image_size / 2, image_size / 2))


# ---------------------------------------------------------------------------------------------------------------
# The humanoid


def align_motion(motion: Motion, target: Motion) -> Motion:
    """``motion`` turned about the vertical and moved so that its joints best match ``target``'s (least squares
    over the common frames; both Z-up and at the same fps): an evaluation of shape and path, not of heading."""
    from vision3d.body.motion import motion_joints
    from vision3d.body.retarget import smpl_rest_joints
    from vision3d.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    rest = smpl_rest_joints()  # the humanoid's body, whatever betas the motions carry
    frames = min(motion.n_frames, target.n_frames)
    a = motion_joints(motion, rest)[:frames].reshape(-1, 3)
    b = motion_joints(target, rest)[:frames].reshape(-1, 3)
    ca, cb = a.mean(0), b.mean(0)
    u, _, vt = np.linalg.svd((a - ca)[:, :2].T @ (b - cb)[:, :2])  # 2D Kabsch in the ground plane
    turn2 = vt.T @ np.diag([1.0, np.sign(np.linalg.det(vt.T @ u.T))]) @ u.T
    turn = np.eye(3)
    turn[:2, :2] = turn2
    shift = cb - turn @ ca
    poses = motion.poses.copy()
    root = axis_angle_to_matrix(torch.from_numpy(poses[:, 0]))
    poses[:, 0] = matrix_to_axis_angle(torch.from_numpy(turn) @ root).numpy()
    trans = (rest[0] + motion.trans) @ turn.T + shift - rest[0]  # the pelvis moves rigidly
    return Motion(motion.fps, poses, trans, motion.betas, name=motion.name, source=motion.source)


def humanoid_replay(motion: Motion, truth: Motion | None = None) -> dict[str, float]:
    """Kinematic replay of ``motion`` in ``mpenv/HumanoidMimic-v0`` through ``step``: the character is set onto
    the converted ``motion`` every step and scored against the env's reference, ``truth`` (default: ``motion``
    itself, which checks the conversion and scores 0 error). Means over the steps of ``mpjpe`` (root-relative),
    ``mpjpe_global``, ``pa_mpjpe`` (metres) and the reward, plus ``clamp_mpjpe`` (what the character's joint
    limits cost ``motion``) and ``steps``. Give ``truth`` in the same world (:func:`align_motion`)."""
    from mpenv.device import torch_threads
    from mpenv.humanoid.env import HumanoidMimicEnv
    from mpenv.humanoid.reference import reference_quality

    settings: dict[str, Any] = {"rsi": False, "random_heading": False, "reference_sync": "none",
                                "eval_metrics": True, "early_termination": False}  # fmt: skip
    with torch_threads(1):
        player = HumanoidMimicEnv(motion, **settings)
        judge = player if truth is None else HumanoidMimicEnv(truth, **settings)

    def teleport(ctrl: np.ndarray, n_frames: int) -> None:
        state = player.reference_state(judge._frame + 1)
        judge.set_state(state["qpos"], state["qvel"])

    judge.do_simulation = teleport
    judge.reset(seed=0)
    steps = min(player.reference.n_frames, judge.reference.n_frames) - 1
    rewards, infos = [], []
    for _ in range(steps):
        _, reward, _, _, info = judge.step(np.zeros(69))
        rewards.append(reward)
        infos.append(info)
    quality = reference_quality(player.reference, player._character)
    result = {key: float(np.mean([info[key] for info in infos])) for key in ("mpjpe", "mpjpe_global", "pa_mpjpe")}
    return result | {"reward": float(np.mean(rewards)), "clamp_mpjpe": quality.clamp_mpjpe_mean, "steps": steps}


# ---------------------------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vision3d.body.sfv",
        description="SFV: a video of one person (a folder of frames, an mp4, or a .npz of 2D keypoints) -> a "
        "temporally smooth 3D body fit -> a Motion (.npz) for the physics humanoid mpenv/HumanoidMimic-v0.",
        epilog="Then train a policy that imitates it: " + PPO_COMMAND.format(path="motion.npz"),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="folder of .png/.jpg frames, a video, or a .npz")
    parser.add_argument("--out", type=Path, default=Path("motion.npz"), help="the Motion file to write")
    parser.add_argument("--fps", type=float, default=None, help="frames per second (default: the video's, else 30)")
    parser.add_argument("--focal", type=float, default=None, help="focal length, pixels of the input frames")
    parser.add_argument("--fov", type=float, default=None,
                        help=f"horizontal field of view, degrees, if no --focal (default {DEFAULT_FOV:g})")
    parser.add_argument("--image-size", type=float, default=float(NETWORK_SIZE),
                        help="size of the square image the keypoints of a .npz are in, pixels")
    parser.add_argument("--smooth-weight", type=float, default=None,
                        help="lambda_J, weight of the joint accelerations (default: SequenceConfig's)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="Adam iterations of the temporal refinement (default: SequenceConfig's)")
    parser.add_argument("--initial", choices=("learned", "smplify"), default="learned",
                        help="start of the per-frame fits: the learned fitter's estimate, or SMPLify's T-pose")
    parser.add_argument("--name", default=None, help="name stored in the Motion (default: the input's stem)")
    parser.add_argument("--check-humanoid", action="store_true",
                        help="replay the Motion kinematically in mpenv/HumanoidMimic-v0 and report its errors")
    return parser


def run(args: argparse.Namespace) -> Motion:
    from vision3d.body.model import BodyModel
    from vision3d.body.video_fitting import SequenceConfig, fit_sequence, sequence_to_motion

    path: Path = args.input
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    for name in ("fps", "focal", "fov", "smooth_weight"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value > 0 or (name == "smooth_weight" and value == 0)):
            raise InputError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
    if args.iterations is not None and args.iterations < 0:
        raise InputError(f"--iterations must be >= 0, got {args.iterations}")
    start = time.perf_counter()
    video_fps = None
    if path.is_file() and path.suffix.lower() == ".npz":
        keypoints, confidences = read_keypoints(path)
        camera = make_camera(args.image_size, args.focal, args.fov)
        source = f"keypoints {path.name}"
    elif path.is_dir() or path.suffix.lower() in VIDEO_SUFFIXES:
        frames, video_fps = read_frames(path)
        if len(frames) < 3:
            raise InputError(f"{path}: {len(frames)} frames; a temporal fit needs at least 3")
        images, scale = to_network_input(frames)
        keypoints = network_keypoints(images).numpy()
        confidences = np.ones(keypoints.shape[:2])
        focal = None if args.focal is None else args.focal * scale
        camera = make_camera(NETWORK_SIZE, focal, args.fov)
        source = f"{len(frames)} frames of {path.name} ({frames.shape[2]}x{frames.shape[1]})"
    else:
        raise InputError(f"{path}: expected a folder of frames, a video ({', '.join(VIDEO_SUFFIXES)}) or a .npz")
    fps = args.fps or video_fps or DEFAULT_FPS

    changes = {"joint_smooth_weight": args.smooth_weight, "iterations": args.iterations, "initial": args.initial}
    config = dataclasses.replace(SequenceConfig(), **{k: v for k, v in changes.items() if v is not None})
    model = BodyModel.default()
    fit = fit_sequence(model, torch.from_numpy(keypoints), torch.from_numpy(confidences), camera, config)
    motion = sequence_to_motion(fit, fps, name=args.name or path.stem, model=model,
                                source=f"vision3d.body.sfv from {source}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    motion.save(args.out)
    seconds = time.perf_counter() - start

    path_length = float(np.linalg.norm(np.diff(motion.trans[:, :2], axis=0), axis=-1).sum())
    print(f"input: {source}, camera focal {camera.focal[0]:.1f} px, principal point {camera.principal_point}")
    print(f"fit: {len(keypoints)} frames in {seconds:.1f} s, reprojection error {fit.reprojection_error.mean():.2f} px "
          f"(per-frame init {fit.per_frame.reprojection_error.mean():.2f} px), betas[:3] "
          f"{', '.join(f'{b:.2f}' for b in fit.betas[:3].tolist())}")  # fmt: skip
    print(f"motion: {motion!r}")
    low, high = motion.trans[:, 2].min(), motion.trans[:, 2].max()
    print(f"  root path {path_length:.2f} m, trans z {low:.2f}..{high:.2f} m, wrote {args.out}")
    if args.check_humanoid:
        replay = humanoid_replay(motion)
        print(f"humanoid kinematic replay ({replay['steps']} steps at 30 Hz): MPJPE {1e3 * replay['mpjpe']:.2f} mm, "
              f"global {1e3 * replay['mpjpe_global']:.2f} mm, reward {replay['reward']:.3f}; clamping to the joint "
              f"limits costs {1e3 * replay['clamp_mpjpe']:.1f} mm")  # fmt: skip
    print("train a policy on it: " + PPO_COMMAND.format(path=args.out))
    return motion


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 on bad input, with a one-line message naming the file)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small batched problems: threads cost more than they give, and the CLI shares cores
    try:
        run(args)
    except InputError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["InputError", "align_motion", "humanoid_replay", "main", "make_camera", "read_frames",
           "read_keypoints", "to_network_input"]
