"""Tests for vision3d.body.bvh: parsing a tiny hand-written BVH file, its forward kinematics and error messages."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vision3d.body.bvh import read_bvh

# Root (6 channels) -> Spine (3, ZXY) -> Head (3, XYZ) -> End Site, and a 6-channel non-root Arm off the Root.
TINY = """HIERARCHY
ROOT Hips
{
  OFFSET 0.0 0.0 0.0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation
  JOINT Spine
  {
    OFFSET 0.0 1.0 0.0
    CHANNELS 3 Zrotation Xrotation Yrotation
    JOINT Head
    {
      OFFSET 0.0 2.0 0.0
      CHANNELS 3 Xrotation Yrotation Zrotation
      End Site
      {
        OFFSET 0.0 0.5 0.0
      }
    }
  }
  JOINT Arm
  {
    OFFSET 1.0 0.0 0.0
    CHANNELS 6 Xposition Yposition Zposition Xrotation Yrotation Zrotation
  }
}
MOTION
Frames: 3
Frame Time: 0.04
0 0 0 0 0 0   0 0 0   0 0 0   1 0 0 0 0 0
1 2 3 90 0 0   0 0 0   0 0 0   1 0 0 0 0 0
0 0 0 0 0 0   30 40 50   10 20 30   2 0 0 0 0 0
"""


def _write(tmp_path, text, name="tiny.bvh"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_hierarchy_parsed_exactly(tmp_path):
    clip = read_bvh(_write(tmp_path, TINY))
    assert clip.names == ["Hips", "Spine", "Head", "Arm"]
    assert clip.parents.tolist() == [-1, 0, 1, 0]
    np.testing.assert_array_equal(clip.offsets, [[0, 0, 0], [0, 1, 0], [0, 2, 0], [1, 0, 0]])
    assert clip.channels[0] == ("Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation")
    assert clip.channels[2] == ("Xrotation", "Yrotation", "Zrotation")
    assert clip.frame_time == 0.04 and clip.fps == pytest.approx(25.0)
    assert clip.motion.shape == (3, 18) and clip.n_frames == 3
    assert clip.end_site_parents.tolist() == [2]
    np.testing.assert_array_equal(clip.end_site_offsets, [[0, 0.5, 0]])


def test_root_rotation_of_90_degrees_about_z(tmp_path):
    clip = read_bvh(_write(tmp_path, TINY))
    positions = clip.joint_positions()
    np.testing.assert_allclose(clip.root_positions()[1], [1, 2, 3])
    # Rz(90) maps the Spine offset (0, 1, 0) to (-1, 0, 0) and Head's (0, 2, 0) to (-2, 0, 0).
    np.testing.assert_allclose(positions[1, 1], [1 - 1, 2, 3], atol=1e-12)
    np.testing.assert_allclose(positions[1, 2], [1 - 3, 2, 3], atol=1e-12)
    np.testing.assert_allclose(clip.end_site_positions()[1, 0], [1 - 3.5, 2, 3], atol=1e-12)
    # Rest frame: offsets add up.
    np.testing.assert_allclose(positions[0], [[0, 0, 0], [0, 1, 0], [0, 3, 0], [1, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(positions[0], clip.rest_positions(), atol=1e-12)


def test_channel_orders_compose_intrinsically(tmp_path):
    clip = read_bvh(_write(tmp_path, TINY))
    rotations = clip.local_rotations()
    expected_zxy = Rotation.from_euler("ZXY", [30, 40, 50], degrees=True).as_matrix()
    expected_xyz = Rotation.from_euler("XYZ", [10, 20, 30], degrees=True).as_matrix()
    np.testing.assert_allclose(rotations[2, 1], expected_zxy, atol=1e-12)
    np.testing.assert_allclose(rotations[2, 2], expected_xyz, atol=1e-12)
    np.testing.assert_allclose(rotations[0], np.broadcast_to(np.eye(3), (4, 3, 3)), atol=1e-12)


def test_position_channels_of_non_root_joint_replace_offset(tmp_path):
    positions = read_bvh(_write(tmp_path, TINY)).joint_positions()
    np.testing.assert_allclose(positions[2, 3], [2, 0, 0])


def test_scale_applies_to_offsets_and_positions_only(tmp_path):
    clip = read_bvh(_write(tmp_path, TINY), scale=0.5)
    np.testing.assert_allclose(clip.offsets[2], [0, 1, 0])
    np.testing.assert_allclose(clip.root_positions()[1], [0.5, 1, 1.5])
    np.testing.assert_allclose(clip.motion[1, 3], 90.0)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("MOTION", "NOTION", "missing MOTION"),
        ("CHANNELS 3 Zrotation Xrotation Yrotation", "CHANNELS 4 Zrotation Xrotation Yrotation", "channel count"),
        ("CHANNELS 3 Xrotation Yrotation Zrotation", "CHANNELS 2 Xrotation Yrotation Zrotation", "channel count"),
        ("OFFSET 0.0 2.0 0.0", "OFFSET 0.0 two 0.0", "non-numeric"),
        ("0 0 0 0 0 0   30 40 50", "0 0 0 0 0 0   30 x 50", "non-numeric"),
        ("1 2 3 90 0 0   0 0 0", "1 2 3 90 0 0   0 0", "frame has 17 values"),
        ("Frames: 3", "Frames: 4", "Frames: 4"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, old, new, message):
    assert old in TINY
    text = TINY.replace(old, new, 1)
    with pytest.raises(ValueError, match=rf"bad\.bvh:\d+: .*{message}"):
        read_bvh(_write(tmp_path, text, "bad.bvh"))


def test_error_line_number_points_at_the_bad_frame(tmp_path):
    text = TINY.replace("0 0 0 0 0 0   30 40 50", "0 0 0 0 0 0   30 x 50")
    bad_line = text.splitlines().index(next(line for line in text.splitlines() if " x " in line)) + 1
    with pytest.raises(ValueError, match=rf"bad\.bvh:{bad_line}:"):
        read_bvh(_write(tmp_path, text, "bad.bvh"))


def _naive_fk(clip) -> np.ndarray:
    """Per-joint textbook recursion with scipy's Euler rotations (independent of vision3d)."""
    positions = np.zeros((clip.n_frames, clip.n_joints, 3))
    world = np.zeros((clip.n_frames, clip.n_joints, 3, 3))
    for t in range(clip.n_frames):
        for j, parent in enumerate(clip.parents):
            axes = "".join(name[0] for name in clip.channels[j] if name.endswith("rotation"))
            angles = [clip.joint_channel(j, name)[t] for name in clip.channels[j] if name.endswith("rotation")]
            local = Rotation.from_euler(axes, angles, degrees=True).as_matrix() if axes else np.eye(3)
            offset = clip.offsets[j].copy()
            for axis, name in enumerate(("Xposition", "Yposition", "Zposition")):
                if name in clip.channels[j]:
                    offset[axis] = clip.joint_channel(j, name)[t]
            if parent < 0:
                world[t, j], positions[t, j] = local, offset
            else:
                world[t, j] = world[t, parent] @ local
                positions[t, j] = positions[t, parent] + world[t, parent] @ offset
    return positions


def test_forward_kinematics_matches_a_per_joint_loop_on_random_channels(tmp_path):
    header, frames = TINY.split("Frames: 3")
    values = np.random.default_rng(0).uniform(-120, 120, size=(5, 18))
    text = header + "Frames: 5\nFrame Time: 0.04\n" + "\n".join(" ".join(f"{v:.6f}" for v in row) for row in values)
    clip = read_bvh(_write(tmp_path, text))
    np.testing.assert_allclose(clip.joint_positions(), _naive_fk(clip), atol=1e-12)


def test_several_roots_are_separate_trees(tmp_path):
    second = "ROOT Prop\n{\n  OFFSET 5 0 0\n  CHANNELS 3 Zrotation Xrotation Yrotation\n"
    second += "  JOINT Tip\n  {\n    OFFSET 0 1 0\n    CHANNELS 3 Zrotation Xrotation Yrotation\n  }\n}\n"
    header, motion = TINY.split("MOTION")
    rows = motion.strip().splitlines()
    extra = ["0 0 0  0 0 0", "90 0 0  0 0 0", "0 0 0  0 0 0"]
    frames = [f"{a}  {b}" for a, b in zip(rows[2:], extra, strict=True)]  # the new channels close every frame
    text = header + second + "MOTION\n" + "\n".join(rows[:2] + frames)
    clip = read_bvh(_write(tmp_path, text))
    single = read_bvh(_write(tmp_path, TINY, "single.bvh"))
    assert clip.parents.tolist() == [-1, 0, 1, 0, -1, 4]
    positions = clip.joint_positions()
    np.testing.assert_allclose(positions[:, :4], single.joint_positions(), atol=1e-12)
    np.testing.assert_allclose(positions[:, 4], [[5, 0, 0]] * 3, atol=1e-12)
    np.testing.assert_allclose(positions[:, 5], [[5, 1, 0], [4, 0, 0], [5, 1, 0]], atol=1e-12)  # Rz(90) in frame 1
    np.testing.assert_allclose(positions, _naive_fk(clip), atol=1e-12)
    np.testing.assert_allclose(clip.rest_positions()[4:], [[5, 0, 0], [5, 1, 0]], atol=1e-12)
