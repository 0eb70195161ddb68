"""Retargeting BVH and DeepMimic motion onto the SMPL tree (vision3d.body.retarget)."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from vision3d.body.clips import clip_names, convert_clip, load_clip
from vision3d.body.deepmimic import JOINT_LAYOUT
from vision3d.body.motion import Motion, motion_joints
from vision3d.body.retarget import (
    AIM_CHILD,
    CMU_JOINT_MAPS,
    DEEPMIMIC_JOINT_MAP,
    DEEPMIMIC_REST,
    HINGE_FLEXION_AXES,
    SMPL_TO_WORLD,
    bvh_to_motion,
    deepmimic_to_motion,
    leading_tpose_frames,
    rotation_between,
    smpl_rest_joints,
    source_to_canonical,
)
from vision3d.body.skeleton import JOINT_INDEX, JOINT_NAMES, PARENTS


@pytest.fixture(scope="module")
def smpl_rest() -> np.ndarray:
    return smpl_rest_joints()


def write_bvh(path, names, parents, offsets, root_positions, rotations) -> None:
    """A BVH with a 6-channel root and ZYX rotation channels; ``rotations (T, J, 3, 3)`` are local matrices."""
    children = {j: [c for c, p in enumerate(parents) if p == j] for j in range(len(names))}
    lines = ["HIERARCHY"]
    file_order: list[int] = []  # BVH lists joints depth first, which need not be the index order

    def joint(j: int, depth: int) -> None:
        file_order.append(j)
        pad = "  " * depth
        lines.append(f"{pad}{'ROOT' if parents[j] < 0 else 'JOINT'} {names[j]}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {' '.join(f'{v:.9f}' for v in offsets[j])}")
        channels = "Xposition Yposition Zposition " if parents[j] < 0 else ""
        lines.append(f"{pad}  CHANNELS {6 if parents[j] < 0 else 3} {channels}Zrotation Yrotation Xrotation")
        for c in children[j]:
            joint(c, depth + 1)
        if not children[j]:
            lines.extend([f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET 0 0.05 0", pad + "  }"])
        lines.append(pad + "}")

    joint(0, 0)
    n_frames = len(rotations)
    euler = Rotation.from_matrix(rotations.reshape(-1, 3, 3)).as_euler("ZYX", degrees=True)
    euler = euler.reshape(n_frames, len(names), 3)
    lines.extend(["MOTION", f"Frames: {n_frames}", "Frame Time: 0.0333333"])
    for t in range(n_frames):
        values = [*root_positions[t], *euler[t, file_order].ravel()]
        lines.append(" ".join(f"{v:.9f}" for v in values))
    path.write_text("\n".join(lines) + "\n")


def random_rotations(n_frames: int, n_joints: int, seed: int, max_deg: float = 60.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    axis = rng.normal(size=(n_frames, n_joints, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = np.deg2rad(rng.uniform(0, max_deg, size=(n_frames, n_joints, 1)))
    return Rotation.from_rotvec((axis * angle).reshape(-1, 3)).as_matrix().reshape(n_frames, n_joints, 3, 3)


def bvh_world(parents, offsets, root_positions, rotations) -> np.ndarray:
    """Forward kinematics of the written BVH, independent of the parser: ``(T, J, 3)``."""
    world_r = np.empty_like(rotations)
    world_p = np.empty((*rotations.shape[:2], 3))
    for j, p in enumerate(parents):
        if p < 0:
            world_r[:, j], world_p[:, j] = rotations[:, j], root_positions
        else:
            world_r[:, j] = world_r[:, p] @ rotations[:, j]
            world_p[:, j] = world_p[:, p] + world_r[:, p] @ offsets[j]
    return world_p


def test_matching_skeleton_reproduces_bvh_joint_positions(tmp_path, smpl_rest):
    """A BVH of the SMPL skeleton itself (same rest joints, SMPL names): retargeting must reproduce its joints."""
    offsets = smpl_rest - np.vstack([np.zeros(3), smpl_rest[list(PARENTS[1:])]])
    offsets[0] = 0.0
    n = 12
    rotations = random_rotations(n, 24, seed=0)
    root = np.stack([np.linspace(0, 1, n), 0.9 + 0.05 * np.sin(np.arange(n)), np.linspace(0, 0.5, n)], axis=1)
    path = tmp_path / "smpl.bvh"
    write_bvh(path, list(JOINT_NAMES), PARENTS, offsets, root, rotations)

    motion = bvh_to_motion(path, {name: name for name in JOINT_NAMES}, trim_tpose=False)
    ours = motion_joints(motion, smpl_rest)
    expected = bvh_world(PARENTS, offsets, root, rotations) @ SMPL_TO_WORLD.T  # Y-up, +z forward -> Z-up world
    assert motion.n_frames == n and motion.fps == pytest.approx(30.0, rel=1e-5)
    # Same skeleton: relative joint positions equal, and the root trajectory differs by one constant shift.
    np.testing.assert_allclose(ours - ours[:, :1], expected - expected[:, :1], atol=1e-6)
    shift = ours[:, 0] - expected[:, 0]
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-6)
    np.testing.assert_allclose(ours[0, 0, :2], 0.0, atol=1e-9)  # the clip starts at the origin


CMU_NAMES = [
    "Hips", "LHipJoint", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase",
    "RHipJoint", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase",
    "LowerBack", "Spine", "Spine1", "Neck", "Neck1", "Head",
    "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand", "LeftFingerBase",
    "RightShoulder", "RightArm", "RightForeArm", "RightHand", "RightFingerBase",
]  # fmt: skip
CMU_PARENTS = [-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 15, 13, 17, 18, 19, 20, 13, 22, 23, 24, 25]


def cmu_offsets(arms_down: bool) -> np.ndarray:
    """A CMU-like rest skeleton in metres with splayed legs, arms out (T-pose) or hanging down."""
    leg = [[0, 0, 0], [0.08, -0.1, 0.05], [0.14, -0.38, 0], [0.14, -0.4, 0], [0.01, -0.03, 0.13]]
    arm_dir = np.array([0.0, -1.0, 0.0]) if arms_down else np.array([1.0, 0.0, 0.0])
    arm = [[0, 0, 0], [0.19, 0.07, -0.02], 0.28 * arm_dir, 0.2 * arm_dir, 0.04 * arm_dir]
    spine = [[0, 0, 0], [0, 0.12, -0.01], [0, 0.12, 0], [0, 0, 0], [0, 0.1, 0.01], [0, 0.1, 0]]
    right = lambda rows: [[-x, y, z] for x, y, z in np.asarray(rows, dtype=float)]  # noqa: E731
    return np.array([[0, 0, 0], *leg, *right(leg), *spine, *arm, *right(arm)], dtype=float)


@pytest.mark.parametrize("arms_down", [False, True])
def test_cmu_naming_bone_directions_follow_the_source(tmp_path, smpl_rest, arms_down):
    """Whatever the source rest pose, every mapped SMPL bone points where the source bone points, every frame."""
    offsets = cmu_offsets(arms_down)
    n = 10
    rotations = random_rotations(n, len(CMU_NAMES), seed=1, max_deg=45)
    root = np.tile([0.0, 0.95, 0.0], (n, 1))
    path = tmp_path / "cmu.bvh"
    write_bvh(path, CMU_NAMES, CMU_PARENTS, offsets, root, rotations)

    motion = bvh_to_motion(path, trim_tpose=False)  # "auto" must pick the MotionBuilder-style map
    ours = motion_joints(motion, smpl_rest)
    source = bvh_world(CMU_PARENTS, offsets, root, rotations) @ SMPL_TO_WORLD.T
    joint_map = CMU_JOINT_MAPS["cmu_motionbuilder"]
    checked = 0
    for joint, child in AIM_CHILD.items():
        if child is None:
            continue
        a, b = JOINT_INDEX[joint], JOINT_INDEX[child]
        s_a, s_b = CMU_NAMES.index(joint_map[joint]), CMU_NAMES.index(joint_map[child])
        if CMU_PARENTS[s_b] != s_a:
            continue  # a bone spanning an unmapped source joint (Neck -> Neck1 -> Head) bends where SMPL's cannot
        src_bone = source[:, s_b] - source[:, s_a]
        if np.linalg.norm(src_bone, axis=-1).min() < 1e-6:
            continue  # coincident source joints (CMU's Neck sits on Spine1) have no direction
        ours_dir = ours[:, b] - ours[:, a]
        ours_dir /= np.linalg.norm(ours_dir, axis=-1, keepdims=True)
        np.testing.assert_allclose(
            ours_dir, src_bone / np.linalg.norm(src_bone, axis=-1, keepdims=True), atol=1e-6, err_msg=joint
        )
        checked += 1
    assert checked >= 14


def test_a_tilted_source_elbow_hinge_becomes_pure_flexion(tmp_path):
    """CMU's elbow axis lies 30 deg off the body's lateral axis: retargeted, the whole bend is SMPL elbow flexion
    (no elbow abduction or twist), the shoulder takes the twist, and the bones still follow the source."""
    offsets = cmu_offsets(arms_down=True)
    n = 12
    rotations = random_rotations(n, len(CMU_NAMES), seed=3, max_deg=30)
    flexion = np.linspace(0.2, 1.9, n)  # up to 109 deg
    tilt = np.radians(30.0)
    for name, side in (("LeftForeArm", 1.0), ("RightForeArm", -1.0)):
        axis = np.array([-side * np.cos(tilt), 0.0, np.sin(tilt)])  # a horizontal axis 30 deg off the lateral one
        rotations[:, CMU_NAMES.index(name)] = Rotation.from_rotvec(flexion[:, None] * axis).as_matrix()
    root = np.tile([0.0, 0.95, 0.0], (n, 1))
    path = tmp_path / "tilted.bvh"
    write_bvh(path, CMU_NAMES, CMU_PARENTS, offsets, root, rotations)
    motion = bvh_to_motion(path, trim_tpose=False)
    for joint in ("left_elbow", "right_elbow"):
        expected = flexion[:, None] * np.asarray(HINGE_FLEXION_AXES[joint])
        np.testing.assert_allclose(motion.poses[:, JOINT_INDEX[joint]], expected, atol=1e-6, err_msg=joint)
    ours = motion_joints(motion, smpl_rest_joints())
    source = bvh_world(CMU_PARENTS, offsets, root, rotations) @ SMPL_TO_WORLD.T
    for a, b in (("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist")):
        joint_map = CMU_JOINT_MAPS["cmu_motionbuilder"]
        src = source[:, CMU_NAMES.index(joint_map[b])] - source[:, CMU_NAMES.index(joint_map[a])]
        dst = ours[:, JOINT_INDEX[b]] - ours[:, JOINT_INDEX[a]]
        np.testing.assert_allclose(
            dst / np.linalg.norm(dst, axis=-1, keepdims=True), src / np.linalg.norm(src, axis=-1, keepdims=True),
            atol=1e-6,
        )


def test_leading_tpose_frame_is_trimmed(tmp_path):
    offsets = cmu_offsets(arms_down=False)
    n = 6
    rotations = random_rotations(n, len(CMU_NAMES), seed=2, max_deg=20)
    rotations[:, [18, 23]] = Rotation.from_euler("z", [[-70], [70]], degrees=True).as_matrix()  # arms down
    rotations[0] = np.eye(3)  # calibration frame: the rest T-pose
    path = tmp_path / "tpose.bvh"
    write_bvh(path, CMU_NAMES, CMU_PARENTS, offsets, np.tile([0.0, 0.95, 0.0], (n, 1)), rotations)
    assert bvh_to_motion(path).n_frames == n - 1
    assert bvh_to_motion(path, trim_tpose=False).n_frames == n


def test_tpose_detector_on_rest_and_posed_frames(smpl_rest):
    posed = Motion(fps=30, poses=np.zeros((3, 24, 3)), trans=np.zeros((3, 3)))
    posed.poses[1:, JOINT_INDEX["left_shoulder"]] = [0.0, 0.0, -1.2]  # left arm down from frame 1
    joints = motion_joints(posed, smpl_rest)
    assert leading_tpose_frames(joints @ SMPL_TO_WORLD.T) == 1
    assert leading_tpose_frames(np.repeat(joints[:1], 3, axis=0) @ SMPL_TO_WORLD.T) == 0  # all T-pose: keep all


SHARED_MOTIONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "motions"


@pytest.mark.parametrize("name", clip_names())
def test_shipped_clips_stand_upright_on_the_ground(name, smpl_rest):
    motion = load_clip(name)
    assert motion.name == name and motion.source
    joints = motion_joints(motion, smpl_rest)
    feet = joints[:, [JOINT_INDEX[n] for n in ("left_foot", "right_foot", "left_ankle", "right_ankle")], 2]
    assert 0.0 < feet.min() < 0.06  # the lowest foot joint rests at its clearance above z = 0
    head = joints[:, JOINT_INDEX["head"], 2]
    assert np.median(head) > (1.0 if name == "cartwheel" else 1.3)
    assert motion.cyclic == (name in ("walk", "run", "jump", "cartwheel"))


def test_walk_clip_walks_forward_along_x():
    motion = load_clip("walk")
    step = motion.trans[-1] - motion.trans[0]
    speed = np.linalg.norm(step[:2]) / (motion.duration - 1 / motion.fps)
    assert step[0] > 0 and abs(step[1]) < 0.1 * step[0] and 0.8 < speed < 1.6  # a walking pace, m/s


def test_unknown_clip_name_lists_the_choices():
    with pytest.raises(ValueError, match="unknown motion clip 'moonwalk'.*'walk'"):
        load_clip("moonwalk")


@pytest.mark.skipif(not SHARED_MOTIONS.exists(), reason=f"original motion files not found in {SHARED_MOTIONS}")
@pytest.mark.parametrize("name", ["walk", "cmu_walk", "cmu_jumps"])
def test_conversion_reproduces_the_shipped_clips(name):
    converted, shipped = convert_clip(name, SHARED_MOTIONS), load_clip(name)
    np.testing.assert_allclose(converted.poses, shipped.poses, atol=1e-9)
    np.testing.assert_allclose(converted.trans, shipped.trans, atol=1e-9)
    assert converted.fps == shipped.fps


def deepmimic_frame(seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    frame = [1 / 30, 0.1 * seed, 0.85, 0.0]
    for _, dof in (("root", 4), *JOINT_LAYOUT):
        if dof == 4:
            q = Rotation.from_rotvec(rng.normal(scale=0.4, size=3)).as_quat()  # x, y, z, w
            frame += [q[3], q[0], q[1], q[2]]
        else:
            frame.append(rng.uniform(-1.5, 0.0))
    return frame


def test_deepmimic_bone_directions_follow_the_source(tmp_path, smpl_rest):
    frames = [deepmimic_frame(s) for s in range(5)]
    path = tmp_path / "clip.txt"
    path.write_text(json.dumps({"Loop": "none", "Frames": frames}))
    motion = deepmimic_to_motion(path)
    assert motion.n_frames == 5 and not motion.cyclic

    # Independent FK of the DeepMimic skeleton with scipy, then Y-up/+x-forward -> Z-up/+x-forward.
    names = list(DEEPMIMIC_REST)
    f = np.array(frames)
    local = {"root": f[:, 4:8]}
    col = 8
    for name, dof in JOINT_LAYOUT:
        if dof == 4:
            local[name] = f[:, col : col + 4]
        else:
            local[name] = np.stack([np.cos(f[:, col] / 2), 0 * f[:, col], 0 * f[:, col], np.sin(f[:, col] / 2)], 1)
        col += dof
    world_r, world_p = {}, {}
    for name, (parent, offset) in DEEPMIMIC_REST.items():
        q = local.get(name, np.tile([1.0, 0, 0, 0], (5, 1)))
        r = Rotation.from_quat(q[:, [1, 2, 3, 0]])
        world_r[name] = r if parent is None else world_r[parent] * r
        world_p[name] = f[:, 1:4] if parent is None else world_p[parent] + world_r[parent].apply(offset)
    to_world = SMPL_TO_WORLD @ source_to_canonical("+y", "+x")
    ours = motion_joints(motion, smpl_rest)
    for joint, child in (("left_hip", "left_knee"), ("right_knee", "right_ankle"), ("left_shoulder", "left_elbow"),
                         ("right_elbow", "right_wrist"), ("spine1", "neck")):  # fmt: skip
        src = (world_p[DEEPMIMIC_JOINT_MAP[child]] - world_p[DEEPMIMIC_JOINT_MAP[joint]]) @ to_world.T
        dst = ours[:, JOINT_INDEX[child]] - ours[:, JOINT_INDEX[joint]]
        cos = np.sum(src * dst, axis=1) / np.linalg.norm(src, axis=1) / np.linalg.norm(dst, axis=1)
        np.testing.assert_allclose(cos, 1.0, atol=1e-9, err_msg=f"{joint}->{child}")
    assert names[0] == "root"


def test_deepmimic_wrap_clip_becomes_an_open_cycle(tmp_path):
    frames = [deepmimic_frame(s) for s in range(4)]
    frames[-1][0] = 0.0
    path = tmp_path / "loop.txt"
    path.write_text(json.dumps({"Loop": "wrap", "Frames": frames}))
    motion = deepmimic_to_motion(path)
    assert motion.cyclic and motion.n_frames == 3


def test_unknown_joint_in_map_is_a_clear_error(tmp_path, smpl_rest):
    offsets = cmu_offsets(False)
    path = tmp_path / "cmu.bvh"
    write_bvh(path, CMU_NAMES, CMU_PARENTS, offsets, np.zeros((2, 3)), random_rotations(2, len(CMU_NAMES), 3))
    bad = {**CMU_JOINT_MAPS["cmu_motionbuilder"], "left_knee": "LeftKnee"}
    with pytest.raises(ValueError, match=r"do not exist: \['LeftKnee'\]"):
        bvh_to_motion(path, bad)
    with pytest.raises(ValueError, match="not SMPL joints"):
        bvh_to_motion(path, {"pelvis": "Hips", "left_thigh": "LeftUpLeg"})
    with pytest.raises(ValueError, match="must map 'pelvis'"):
        bvh_to_motion(path, {"left_hip": "LeftUpLeg"})
    with pytest.raises(ValueError, match="unknown joint map 'vicon'"):
        bvh_to_motion(path, "vicon")


def test_unmappable_skeleton_names_its_joints(tmp_path):
    names = ["Root", "Thigh", "Shin"]
    path = tmp_path / "odd.bvh"
    offsets = np.array([[0, 0, 0], [0.1, -0.1, 0], [0, -0.4, 0]])
    write_bvh(path, names, [-1, 0, 1], offsets, np.zeros((2, 3)), random_rotations(2, 3, 4))
    with pytest.raises(ValueError, match=r"odd.bvh: no built-in joint map fits.*'Thigh'"):
        bvh_to_motion(path)


def test_file_in_wrong_units_warns(tmp_path):
    offsets = cmu_offsets(False) / 0.056444  # CMU's own units
    path = tmp_path / "units.bvh"
    write_bvh(path, CMU_NAMES, CMU_PARENTS, offsets, np.zeros((2, 3)), random_rotations(2, len(CMU_NAMES), 5))
    with pytest.warns(UserWarning, match="scale=0.056444"):
        bvh_to_motion(path)
    motion = bvh_to_motion(path, scale=0.056444)  # no warning, same motion as in metres
    assert np.all(np.isfinite(motion.poses))


def test_rotation_between_and_frames():
    rng = np.random.default_rng(0)
    for u, v in [rng.normal(size=(2, 3)) for _ in range(20)] + [(np.array([1.0, 0, 0]), np.array([-2.0, 0, 0]))]:
        r = rotation_between(u, v)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)
        np.testing.assert_allclose(r @ (u / np.linalg.norm(u)), v / np.linalg.norm(v), atol=1e-12)
    np.testing.assert_array_equal(source_to_canonical("+y", "+z"), np.eye(3))
    np.testing.assert_array_equal(SMPL_TO_WORLD @ [0, 0, 1], [1, 0, 0])  # SMPL forward -> world +x
    np.testing.assert_array_equal(SMPL_TO_WORLD @ [0, 1, 0], [0, 0, 1])  # SMPL up -> world +z
    with pytest.raises(ValueError, match="different axes"):
        source_to_canonical("+y", "-y")
    with pytest.raises(ValueError, match="axis must be"):
        source_to_canonical("up", "+x")


def test_mirror_about_the_walking_direction_keeps_heading(smpl_rest):
    """Mirroring a Z-up clip across world y = 0 swaps left and right and reflects y, keeping the walk along +x."""
    from vision3d.body.skeleton import MIRROR_INDEX

    motion = load_clip("walk")
    joints = motion_joints(motion, smpl_rest)
    mirrored = motion_joints(motion.mirror(world_axis=1), smpl_rest)
    expected = joints[:, list(MIRROR_INDEX)] * [1.0, -1.0, 1.0]
    np.testing.assert_allclose(mirrored, expected, atol=1e-9)  # the stand-in skeleton is exactly symmetric
