"""Tests for vision3d.body.motion.Motion: npz I/O, resampling, clipping, mirroring and looping."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from vision3d.body.motion import Motion
from vision3d.body.skeleton import JOINT_INDEX


def _random_motion(n_frames: int = 10, fps: float = 30.0, seed: int = 0) -> Motion:
    rng = np.random.default_rng(seed)
    # Angles below pi so axis-angle round trips through quaternions are unique.
    poses = rng.normal(scale=0.5, size=(n_frames, 24, 3))
    return Motion(fps=fps, poses=poses, trans=rng.normal(size=(n_frames, 3)), betas=rng.normal(size=10), name="r")


def _same_rotations(a: np.ndarray, b: np.ndarray) -> bool:
    ra, rb = Rotation.from_rotvec(a.reshape(-1, 3)), Rotation.from_rotvec(b.reshape(-1, 3))
    return bool(np.allclose((ra.inv() * rb).magnitude(), 0.0, atol=1e-9))


def test_validation_names_the_field():
    with pytest.raises(ValueError, match="fps"):
        Motion(fps=0, poses=np.zeros((2, 24, 3)), trans=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="poses"):
        Motion(fps=30, poses=np.zeros((2, 23, 3)), trans=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="trans"):
        Motion(fps=30, poses=np.zeros((2, 24, 3)), trans=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="poses"):
        Motion(fps=30, poses=np.full((2, 24, 3), np.nan), trans=np.zeros((2, 3)))
    m = Motion(fps=30, poses=np.zeros((2, 72)), trans=np.zeros((2, 3)))
    assert m.poses.shape == (2, 24, 3) and m.betas.shape == (10,)


def test_npz_round_trip_is_exact(tmp_path):
    m = _random_motion()
    m.source = "synthetic, CC0"
    m.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as raw:
        assert raw["poses"].shape == (10, 72)
    back = Motion.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.poses, m.poses)
    np.testing.assert_array_equal(back.trans, m.trans)
    np.testing.assert_array_equal(back.betas, m.betas)
    assert (back.fps, back.name, back.source) == (m.fps, m.name, m.source)


def test_amass_smplh_file_loads(tmp_path):
    rng = np.random.default_rng(1)
    poses = rng.normal(size=(5, 156))
    path = tmp_path / "amass.npz"
    np.savez(path, poses=poses, trans=rng.normal(size=(5, 3)), betas=rng.normal(size=16), mocap_framerate=120.0)
    m = Motion.load(path)
    assert m.fps == 120.0 and m.n_frames == 5 and m.betas.shape == (16,)
    np.testing.assert_array_equal(m.poses.reshape(5, 72)[:, :66], poses[:, :66])
    # SMPL+H has no SMPL hand joints: entries 66:72 are finger rotations and must not be read as hands.
    np.testing.assert_array_equal(m.poses[:, 22:], 0.0)


@pytest.mark.parametrize(
    ("arrays", "key"),
    [
        ({"trans": np.zeros((3, 3)), "mocap_framerate": 30.0}, "poses"),
        ({"poses": np.zeros((3, 72)), "mocap_framerate": 30.0}, "trans"),
        ({"poses": np.zeros((3, 72)), "trans": np.zeros((3, 3))}, "mocap_framerate"),
        ({"poses": np.zeros((3, 70)), "trans": np.zeros((3, 3)), "mocap_framerate": 30.0}, "poses"),
        ({"poses": np.zeros((3, 72)), "trans": np.zeros((4, 3)), "mocap_framerate": 30.0}, "trans"),
    ],
)
def test_bad_file_names_file_and_key(tmp_path, arrays, key):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=f"bad.npz.*{key}"):
        Motion.load(path)


def test_resample_same_fps_is_identity():
    m = _random_motion()
    r = m.resample(30.0)
    np.testing.assert_array_equal(r.poses, m.poses)
    np.testing.assert_array_equal(r.trans, m.trans)


def test_resample_up_and_down_returns_original_frames():
    m = _random_motion(n_frames=7)
    up = m.resample(60.0)
    assert up.n_frames == 13 and up.fps == 60.0
    np.testing.assert_allclose(up.trans[1], 0.5 * (m.trans[0] + m.trans[1]))
    down = up.resample(30.0)
    assert down.n_frames == m.n_frames
    assert _same_rotations(down.poses, m.poses)
    np.testing.assert_allclose(down.trans, m.trans, atol=1e-12)


def test_resample_to_non_multiple_rate_keeps_span_and_metadata():
    m = _random_motion(n_frames=31, fps=30.0)  # spans exactly 1 s from first to last frame
    r = m.resample(24.0)
    assert r.n_frames == 25 and r.fps == 24.0 and r.name == m.name
    np.testing.assert_array_equal(r.betas, m.betas)
    np.testing.assert_allclose(r.trans[[0, -1]], m.trans[[0, -1]], atol=1e-12)
    assert _same_rotations(r.poses[[0, -1]], m.poses[[0, -1]])


def test_resample_midpoint_matches_scipy_slerp():
    m = _random_motion(n_frames=2, seed=3)
    mid = m.resample(60.0).poses[1]
    for k in range(24):
        slerp = Slerp([0.0, 1.0], Rotation.from_rotvec(m.poses[:, k]))
        assert _same_rotations(mid[k], slerp([0.5]).as_rotvec()[0])


def _uniform_turn(n_frames: int, rate: float, fps: float = 60.0, cyclic: bool = False) -> Motion:
    """Every joint turning at ``rate`` rad per frame about its own fixed axis: a Gaussian scales the cosine and
    sine halves of a uniformly turning quaternion by the same factor, which the renormalisation removes."""
    rng = np.random.default_rng(1)
    axes = rng.normal(size=(24, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = 0.3 + rate * np.arange(n_frames)
    poses = angles[:, None, None] * axes[None]
    trans = np.outer(np.arange(n_frames), [0.02, -0.01, 0.0]) + [0.0, 0.0, 0.9]
    return Motion(fps=fps, poses=poses, trans=trans, name="turn", cyclic=cyclic)


def test_smoothing_leaves_a_uniform_turn_unchanged_inside_the_clip_and_the_root_path_everywhere():
    m = _uniform_turn(40, rate=0.05)
    s = m.smoothed(1.5)
    inside = slice(8, 32)  # the 4-sigma support (6 frames) away from the ends, where the end frames repeat
    assert _same_rotations(s.poses[inside], m.poses[inside])
    assert not _same_rotations(s.poses[:2], m.poses[:2])  # there the repeated end frames do bend it
    np.testing.assert_array_equal(s.trans, m.trans)


def test_smoothing_a_one_frame_flick_scales_it_by_the_kernels_centre_weight():
    """A small rotation on one frame: the quaternion's vector part, about half the angle, is filtered linearly, so
    the smoothed flick is the angle times the (truncated, normalised) Gaussian's centre weight, within 1%."""
    poses = np.zeros((21, 24, 3))
    poses[10, 5] = [0.0, 0.02, 0.0]
    s = Motion(fps=60.0, poses=poses, trans=np.zeros((21, 3))).smoothed(1.3)
    x = np.arange(-5, 6)  # scipy's support: int(4 sigma + 0.5) frames each side
    weights = np.exp(-0.5 * (x / 1.3) ** 2)
    np.testing.assert_allclose(np.linalg.norm(s.poses[10, 5]), 0.02 * weights[5] / weights.sum(), rtol=1e-2)
    assert np.abs(s.poses[:, [j for j in range(24) if j != 5]]).max() < 1e-12  # the other joints stay at rest


def test_smoothing_a_cyclic_clip_is_continuous_across_the_seam():
    """Filtering the loop, not the clip: a smoothed cycle played twice equals the smoothed three-cycle clip there,
    and the cycle's displacement is kept."""
    m = _random_motion(n_frames=30, seed=4)
    m.poses *= 0.2
    m.cyclic = True
    twice = m.smoothed(1.5).loop(2)
    reference = m.loop(3).smoothed(1.5)  # its first and second cycles' seam is far from its ends
    assert _same_rotations(twice.poses[24:36], reference.poses[24:36])
    np.testing.assert_array_equal(twice.trans, m.loop(2).trans)


def test_antialias_blurs_by_0_75_new_frames_only_when_the_rate_drops():
    m = _uniform_turn(41, rate=0.05)
    m.poses[20, 3] += [0.0, 0.3, 0.0]  # a flick that plain sampling keeps whole on an even frame
    plain, smooth = m.resample(30.0), m.resample(30.0, antialias=True)
    assert _same_rotations(plain.poses[10], m.poses[20])
    assert _same_rotations(smooth.poses, m.smoothed(0.75 * np.sqrt(3.0)).resample(30.0).poses)
    flick = [Rotation.from_rotvec(r.poses[10, 3]).inv() * Rotation.from_rotvec(r.poses[9, 3]) for r in (plain, smooth)]
    assert flick[1].magnitude() < 0.6 * flick[0].magnitude()
    near = Motion(fps=30.0012, poses=m.poses, trans=m.trans)  # the walk's stored rate: nothing to remove
    np.testing.assert_array_equal(near.resample(30.0, antialias=True).poses, near.resample(30.0).poses)
    np.testing.assert_array_equal(m.resample(120.0, antialias=True).poses, m.resample(120.0).poses)
    with pytest.raises(ValueError, match="sigma"):
        m.smoothed(-1.0)


def test_mirror_twice_is_identity_and_swaps_sides():
    m = _random_motion()
    mm = m.mirror()
    np.testing.assert_allclose(mm.mirror().poses, m.poses)
    np.testing.assert_allclose(mm.mirror().trans, m.trans)
    left, right = JOINT_INDEX["left_elbow"], JOINT_INDEX["right_elbow"]
    np.testing.assert_allclose(mm.poses[:, right], m.poses[:, left] * [1, -1, -1])
    np.testing.assert_allclose(mm.trans, m.trans * [-1, 1, 1])


def test_mirror_is_reflection_of_rotation_matrices():
    m = _random_motion(n_frames=3, seed=4)
    reflect = np.diag([-1.0, 1.0, 1.0])
    got = Rotation.from_rotvec(m.mirror().poses[:, 0]).as_matrix()
    expected = reflect @ Rotation.from_rotvec(m.poses[:, 0]).as_matrix() @ reflect
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_loop_continues_constant_velocity():
    n = 8
    velocity = np.array([0.05, 0.01, 0.0])  # per frame, Z-up: horizontal
    trans = np.arange(n)[:, None] * velocity + [0, 0, 0.9]
    m = Motion(fps=30, poses=np.zeros((n, 24, 3)), trans=trans)
    looped = m.loop(3)
    assert looped.n_frames == 3 * n
    np.testing.assert_allclose(looped.trans, np.arange(3 * n)[:, None] * velocity + [0, 0, 0.9], atol=1e-12)
    with pytest.raises(ValueError):
        m.loop(0)


def test_loop_closed_cycle_drops_duplicate_frames():
    n = 5
    velocity = np.array([0.0, 0.1, 0.0])
    poses = np.random.default_rng(5).normal(scale=0.3, size=(n, 24, 3))
    poses[-1] = poses[0]  # closed: the last frame repeats the first pose one cycle further on
    m = Motion(fps=30, poses=poses, trans=np.arange(n)[:, None] * velocity)
    looped = m.loop(3, closed=True)
    assert looped.n_frames == 2 * (n - 1) + n
    np.testing.assert_allclose(looped.trans, np.arange(looped.n_frames)[:, None] * velocity, atol=1e-12)
    np.testing.assert_array_equal(looped.poses[n - 1 : 2 * (n - 1) + 1], poses)


def test_loop_does_not_accumulate_height():
    trans = np.array([[0.0, 0.0, 0.9], [0.1, 0.0, 1.0]])
    looped = Motion(fps=30, poses=np.zeros((2, 24, 3)), trans=trans).loop(2, up_axis=2)
    np.testing.assert_allclose(looped.trans[2:, 2], trans[:, 2])


def test_clip_by_seconds_and_frames():
    m = _random_motion(n_frames=30, fps=10.0)
    c = m.clip(0.5, 1.5)
    assert c.n_frames == 10 and c.duration == pytest.approx(1.0)
    np.testing.assert_array_equal(c.poses, m.poses[5:15])
    np.testing.assert_array_equal(m.clip(start_frame=25).trans, m.trans[25:])
    with pytest.raises(ValueError):
        m.clip(2.0, 1.0)
    with pytest.raises(ValueError):
        m.clip(0.0, start_frame=1)


def test_repr_is_one_short_line_without_the_arrays():
    motion = Motion(fps=30.0, poses=np.zeros((45, 24, 3)), trans=np.zeros((45, 3)), name="walk", cyclic=True,
                    source="DeepMimic humanoid3d_walk.txt, MIT licence, retargeted to SMPL by vision3d")  # fmt: skip
    text = repr(motion)
    assert text == (
        "Motion(name='walk', frames=45, fps=30, duration=1.50 s, joints=24, cyclic=True, poses=(45, 24, 3), "
        "trans=(45, 3), betas=(10,), source='DeepMimic humanoid3d_walk.txt, MIT li...')"
    )
    assert str(motion) == text and "\n" not in text and "[" not in text and "array" not in text
    long_clip = _random_motion(n_frames=5000, fps=120.0)
    assert len(repr(long_clip)) < 250 and "frames=5000" in repr(long_clip) and "duration=41.67 s" in repr(long_clip)
