"""Tests for vision3d.body.deepmimic: parsing small hand-written DeepMimic motion files."""

import json

import numpy as np
import pytest

from vision3d.body.deepmimic import FRAME_SIZE, JOINT_LAYOUT, JOINT_NAMES, PARENTS, read_deepmimic


def _frame(dt: float, seed: int) -> list[float]:
    """dt, root position, then per joint either a (deliberately unnormalised) quaternion or an angle."""
    rng = np.random.default_rng(seed)
    values = [dt, *rng.normal(size=3), *(2.0 * np.array([1.0, 0.1, 0.2, 0.3]))]
    for _, dof in JOINT_LAYOUT:
        values.extend(rng.normal(size=dof) if dof == 1 else [1.0, *rng.normal(scale=0.2, size=3)])
    return [float(v) for v in values]


def _write(tmp_path, frames, loop="wrap", name="clip.txt"):
    path = tmp_path / name
    path.write_text(json.dumps({"Loop": loop, "Frames": frames}))
    return path


def test_layout_constants():
    assert FRAME_SIZE == 44
    assert len(JOINT_NAMES) == len(PARENTS) == 13
    assert JOINT_NAMES[PARENTS[JOINT_NAMES.index("left_elbow")]] == "left_shoulder"


def test_parses_frames(tmp_path):
    frames = [_frame(1 / 30, seed) for seed in range(2)] + [_frame(0.0, 2)]
    clip = read_deepmimic(_write(tmp_path, frames))
    data = np.array(frames)
    assert clip.n_frames == 3 and clip.loop == "wrap" and clip.is_cyclic
    assert clip.fps == pytest.approx(30.0)
    np.testing.assert_allclose(clip.times, [0, 1 / 30, 2 / 30])
    assert clip.duration == pytest.approx(2 / 30)
    np.testing.assert_array_equal(clip.root_pos, data[:, 1:4])
    np.testing.assert_allclose(clip.root_rot, data[:, 4:8] / np.linalg.norm(data[:, 4:8], axis=1, keepdims=True))
    np.testing.assert_allclose(np.linalg.norm(clip.joint_rotations["neck"], axis=1), 1.0)
    np.testing.assert_allclose(
        clip.joint_rotations["chest"][:, 1:] / clip.joint_rotations["chest"][:, :1], data[:, 9:12]
    )
    # Columns: 0 dt, 1-3 pos, 4-7 root, 8-11 chest, 12-15 neck, 16-19 r_hip, 20 r_knee, ..., 43 l_elbow.
    np.testing.assert_array_equal(clip.joint_angles["right_knee"], data[:, 20])
    np.testing.assert_array_equal(clip.joint_angles["right_elbow"], data[:, 29])
    np.testing.assert_array_equal(clip.joint_angles["left_knee"], data[:, 34])
    np.testing.assert_array_equal(clip.joint_angles["left_elbow"], data[:, 43])


def test_local_quaternions_turn_angles_into_z_rotations(tmp_path):
    clip = read_deepmimic(_write(tmp_path, [_frame(0.05, 0), _frame(0.05, 1)], loop="none"))
    quats = clip.local_quaternions()
    assert quats.shape == (2, 13, 4) and not clip.is_cyclic
    knee = JOINT_NAMES.index("left_knee")
    angle = clip.joint_angles["left_knee"]
    np.testing.assert_allclose(
        quats[:, knee], np.stack([np.cos(angle / 2), 0 * angle, 0 * angle, np.sin(angle / 2)], 1)
    )
    np.testing.assert_array_equal(quats[:, 0], clip.root_rot)


def test_wrong_frame_length_names_file_and_frame(tmp_path):
    frames = [_frame(0.1, 0), _frame(0.1, 1)[:-1]]
    with pytest.raises(ValueError, match="bad.txt: frame 1 has 43 values"):
        read_deepmimic(_write(tmp_path, frames, name="bad.txt"))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda doc: doc["Frames"][1].__setitem__(5, "x"), "frame 1 has a non-numeric"),
        (lambda doc: doc["Frames"][0].__setitem__(0, -0.1), "frame 0 has dt"),
        (lambda doc: doc.__setitem__("Loop", "forever"), "Loop"),
        (lambda doc: doc.pop("Frames"), "missing 'Frames'"),
        (lambda doc: doc["Frames"][1].__setitem__(slice(8, 12), [0, 0, 0, 0]), "frame 1: zero quaternion for chest"),
    ],
)
def test_invalid_content_raises(tmp_path, mutate, message):
    doc = {"Loop": "wrap", "Frames": [_frame(0.1, 0), _frame(0.1, 1)]}
    mutate(doc)
    path = tmp_path / "bad.txt"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=f"bad.txt: .*{message}"):
        read_deepmimic(path)


def test_invalid_json_raises(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text('{"Loop": "wrap", "Frames": [[0.1, 1,]]}')
    with pytest.raises(ValueError, match="bad.txt: invalid JSON"):
        read_deepmimic(path)
