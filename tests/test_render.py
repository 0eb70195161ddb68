"""Tests of vision3d.body.render on a synthetic walk: a T-pose rest skeleton with anthropometric proportions whose
legs and arms swing via forward kinematics. Images are read back to check sizes, frame counts and that something
was actually drawn."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from vision3d.body.motion import Motion
from vision3d.body.render import motion_joints, skeleton_strip, skeleton_video
from vision3d.body.skeleton import JOINT_INDEX, JOINT_NAMES, PARENTS

FPS = 30.0
N_FRAMES = 12


def tpose_rest_joints() -> np.ndarray:
    """SMPL-ordered rest joints (24, 3) in metres of a ~1.65 m adult in a T-pose: y up, facing +z, left = +x."""
    centre = {
        "pelvis": (0.0, 0.93, 0.0),
        "spine1": (0.0, 1.03, 0.0),
        "spine2": (0.0, 1.16, 0.0),
        "spine3": (0.0, 1.22, 0.0),
        "neck": (0.0, 1.45, 0.0),
        "head": (0.0, 1.58, 0.02),
    }
    sided = {  # x of the subject's left side; the right side mirrors it
        "hip": (0.09, 0.84, 0.0),
        "knee": (0.10, 0.48, 0.0),
        "ankle": (0.10, 0.08, -0.02),
        "foot": (0.11, 0.02, 0.11),
        "collar": (0.07, 1.38, 0.0),
        "shoulder": (0.18, 1.40, 0.0),
        "elbow": (0.45, 1.40, 0.0),
        "wrist": (0.70, 1.40, 0.0),
        "hand": (0.78, 1.40, 0.0),
    }
    points = dict(centre)
    for part, (x, y, z) in sided.items():
        points[f"left_{part}"], points[f"right_{part}"] = (x, y, z), (-x, y, z)
    return np.array([points[name] for name in JOINT_NAMES])


def walking_motion(n_frames: int = N_FRAMES) -> Motion:
    """Hips and shoulders swing in opposition at 1 Hz, arms lowered from the T-pose, root moving forward."""
    phase = 2 * np.pi * np.arange(n_frames) / FPS
    poses = np.zeros((n_frames, 24, 3))
    for side, sign in (("left", 1.0), ("right", -1.0)):
        poses[:, JOINT_INDEX[f"{side}_hip"], 0] = 0.5 * sign * np.sin(phase)
        poses[:, JOINT_INDEX[f"{side}_shoulder"], 0] = -0.4 * sign * np.sin(phase)
        poses[:, JOINT_INDEX[f"{side}_shoulder"], 2] = -1.2 * sign
    trans = np.stack([np.zeros(n_frames), np.zeros(n_frames), 1.2 * np.arange(n_frames) / FPS], axis=1)
    return Motion(fps=FPS, poses=poses, trans=trans)


@pytest.fixture(scope="module")
def joints() -> np.ndarray:
    return motion_joints(walking_motion(), tpose_rest_joints())


def drawn_fraction(image: np.ndarray) -> float:
    """Share of pixels that are not (near) white background."""
    return float((image.min(axis=-1) < 200).mean())


def test_motion_joints_is_forward_kinematics(joints: np.ndarray):
    rest = tpose_rest_joints()
    motion = walking_motion()
    assert joints.shape == (N_FRAMES, 24, 3)
    # Frame 0 has zero hip/shoulder swing: legs and trunk at rest, shifted by the root translation.
    legs_and_trunk = [JOINT_INDEX[n] for n in ("pelvis", "left_knee", "right_ankle", "head")]
    np.testing.assert_allclose(joints[0, legs_and_trunk], rest[legs_and_trunk] + motion.trans[0], atol=1e-12)
    # Rotations preserve bone lengths.
    bones = joints[:, 1:] - joints[:, list(PARENTS[1:])]
    rest_bones = rest[1:] - rest[list(PARENTS[1:])]
    lengths = np.broadcast_to(np.linalg.norm(rest_bones, axis=-1), bones.shape[:2])
    np.testing.assert_allclose(np.linalg.norm(bones, axis=-1), lengths, atol=1e-12)
    with pytest.raises(ValueError, match="rest_joints"):
        motion_joints(motion, rest[:23])


def test_strip_png_size_and_content(tmp_path: Path, joints: np.ndarray):
    path = tmp_path / "strip.png"
    image = skeleton_strip(joints, PARENTS, frames=4, path=path, fps=FPS, panel_px=160)
    written = imageio.imread(path)
    assert written.shape[:2] == (160, 4 * 160) and image.shape == (160, 640, 3)
    np.testing.assert_array_equal(written[..., :3], image)
    assert drawn_fraction(image) > 0.01
    for panel in np.split(image, 4, axis=1):  # every panel shows a skeleton, not only the first
        assert drawn_fraction(panel) > 0.005
    blue = (image[..., 2] > 150) & (image[..., 0] < 100)  # the subject's left side
    red = (image[..., 0] > 150) & (image[..., 2] < 100)
    assert blue.sum() > 20 and red.sum() > 20


def test_strip_caps_frames_accepts_one_frame_and_z_up(joints: np.ndarray):
    assert skeleton_strip(joints[:3], PARENTS, frames=8, panel_px=64).shape == (64, 3 * 64, 3)
    assert skeleton_strip(joints[0], PARENTS, frames=8, panel_px=64).shape == (64, 64, 3)
    # The same body stored z-up (x, y, z) -> (x, -z, y) must render identically with up="z".
    z_up = np.stack([joints[..., 0], -joints[..., 2], joints[..., 1]], axis=-1)
    y_image = skeleton_strip(joints, PARENTS, frames=2, panel_px=96, up="y")
    z_image = skeleton_strip(z_up, PARENTS, frames=2, panel_px=96, up="z")
    assert np.mean(np.abs(y_image.astype(int) - z_image.astype(int))) < 0.5


def test_strip_reference_is_drawn(joints: np.ndarray):
    reference = joints + np.array([0.3, 0.0, 0.0])
    alone = skeleton_strip(joints, PARENTS, frames=2, panel_px=96)
    both = skeleton_strip(joints, PARENTS, frames=2, panel_px=96, reference=reference)
    assert drawn_fraction(both) > drawn_fraction(alone)


def test_video_frames_size_and_content(tmp_path: Path, joints: np.ndarray):
    path = skeleton_video(joints, PARENTS, fps=FPS, path=tmp_path / "walk.mp4", size=(160, 128))
    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        assert reader.count_frames() == N_FRAMES
        assert reader.get_meta_data()["fps"] == pytest.approx(FPS)
        frame = reader.get_data(N_FRAMES // 2)
    finally:
        reader.close()
    assert frame.shape == (128, 160, 3)
    assert drawn_fraction(frame) > 0.01


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"joints": np.zeros((5, 24, 2))}, r"\(T, J, 3\)"),
        ({"joints": np.zeros(72)}, r"\(T, J, 3\)"),
        ({"joints": np.zeros((0, 24, 3))}, r"\(T, J, 3\)"),
        ({"parents": PARENTS[:23]}, "parents has 23 entries"),
        ({"parents": (0, *PARENTS[1:])}, "root"),
        ({"reference": np.zeros((4, 24, 3))}, "reference"),
        ({"up": "x"}, "up"),
        ({"joints": np.full((5, 24, 3), np.nan)}, "NaN"),
    ],
)
def test_bad_input_raises(tmp_path: Path, joints: np.ndarray, kwargs: dict, message: str):
    args = {"joints": joints, "parents": PARENTS, **kwargs}
    with pytest.raises(ValueError, match=message):
        skeleton_strip(args.pop("joints"), args.pop("parents"), frames=2, panel_px=32, **args)
    args = {"joints": joints, "parents": PARENTS, **kwargs}
    path = tmp_path / "bad.mp4"
    with pytest.raises(ValueError, match=message):
        skeleton_video(args.pop("joints"), args.pop("parents"), FPS, path, size=(32, 32), **args)
    assert not path.exists()


def test_bad_video_settings_raise(tmp_path: Path, joints: np.ndarray):
    with pytest.raises(ValueError, match="fps"):
        skeleton_video(joints, PARENTS, 0.0, tmp_path / "a.mp4")
    with pytest.raises(ValueError, match="even"):
        skeleton_video(joints, PARENTS, FPS, tmp_path / "a.mp4", size=(161, 128))
    with pytest.raises(ValueError, match="frames"):
        skeleton_strip(joints, PARENTS, frames=0)
