"""Forward kinematics, finite-difference velocities, centre of mass and the SMPL skeleton constants."""

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from vision3d.body import kinematics as kin
from vision3d.body.rotations import axis_angle_to_matrix
from vision3d.body.skeleton import (
    END_EFFECTORS,
    JOINT_NAMES,
    LEFT_RIGHT_PAIRS,
    MIRROR_INDEX,
    N_JOINTS,
    PARENTS,
    check_parents,
    tree_levels,
)

J = N_JOINTS


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def t64(array) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array), dtype=torch.float64)


def random_rest_joints(seed: int = 0) -> torch.Tensor:
    return t64(rng(seed).normal(scale=0.3, size=(J, 3)))


def naive_fk(rotvecs: np.ndarray, rest: np.ndarray, parents, transl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint textbook recursion for ONE pose, with scipy's Rodrigues (independent of the code under test)."""
    local = Rotation.from_rotvec(rotvecs).as_matrix()
    world_r, world_p = np.zeros((len(parents), 3, 3)), np.zeros((len(parents), 3))
    for j, p in enumerate(parents):
        if p < 0:
            world_r[j], world_p[j] = local[j], rest[j] + transl
        else:
            world_r[j] = world_r[p] @ local[j]
            world_p[j] = world_p[p] + world_r[p] @ (rest[j] - rest[p])
    return world_p, world_r


# ------------------------------------------------------------------------------------------- forward kinematics


def test_zero_rotations_give_the_rest_joints_plus_translation():
    rest = random_rest_joints()
    eye = torch.eye(3, dtype=torch.float64).expand(4, J, 3, 3)
    transl = t64(rng(1).normal(size=(4, 3)))
    positions, world = kin.forward_kinematics(eye, rest, PARENTS, transl)
    assert torch.allclose(positions, rest + transl[:, None, :], atol=1e-12)
    assert torch.allclose(world, eye, atol=1e-12)
    positions, _ = kin.forward_kinematics_axis_angle(torch.zeros(J, 3, dtype=torch.float64), rest, PARENTS)
    assert torch.allclose(positions, rest, atol=1e-12)


def test_a_root_rotation_rotates_the_whole_body_rigidly_about_the_root():
    rest = random_rest_joints()
    poses = torch.zeros(J, 3, dtype=torch.float64)
    poses[0] = t64([0.3, -1.2, 0.7])
    positions, world = kin.forward_kinematics_axis_angle(poses, rest, PARENTS)
    root_rotation = axis_angle_to_matrix(poses[0])
    expected = rest[0] + (rest - rest[0]) @ root_rotation.T
    assert torch.allclose(positions, expected, atol=1e-12)
    assert torch.allclose(world, root_rotation.expand(J, 3, 3), atol=1e-12)


@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
def test_matches_a_naive_per_joint_reference_on_random_poses(batch):
    n = int(np.prod(batch))
    rotvecs = rng(2).normal(scale=0.8, size=(n, J, 3))
    rests = rng(3).normal(scale=0.3, size=(n, J, 3))
    transl = rng(4).normal(size=(n, 3))
    positions, world = kin.forward_kinematics_axis_angle(
        t64(rotvecs).reshape(*batch, J, 3), t64(rests).reshape(*batch, J, 3), PARENTS, t64(transl).reshape(*batch, 3)
    )
    assert positions.shape == (*batch, J, 3) and world.shape == (*batch, J, 3, 3)
    for i in range(n):
        ref_p, ref_r = naive_fk(rotvecs[i], rests[i], PARENTS, transl[i])
        assert np.allclose(positions.reshape(n, J, 3)[i].numpy(), ref_p, atol=1e-12)
        assert np.allclose(world.reshape(n, J, 3, 3)[i].numpy(), ref_r, atol=1e-12)


def test_forward_kinematics_from_per_frame_offsets_matches_the_naive_reference():
    """Bone offsets that change every frame (BVH position channels): each frame is its own rest skeleton."""
    rotvecs = rng(9).normal(scale=0.8, size=(4, J, 3))
    rests = rng(10).normal(scale=0.3, size=(4, J, 3))
    offsets = kin.local_offsets(t64(rests), PARENTS)
    positions, world = kin.forward_kinematics_from_offsets(axis_angle_to_matrix(t64(rotvecs)), offsets, PARENTS)
    for i in range(4):
        ref_p, ref_r = naive_fk(rotvecs[i], rests[i], PARENTS, np.zeros(3))
        np.testing.assert_allclose(positions[i].numpy(), ref_p, atol=1e-12)
        np.testing.assert_allclose(world[i].numpy(), ref_r, atol=1e-12)
    with pytest.raises(ValueError, match="offsets"):
        kin.forward_kinematics_from_offsets(axis_angle_to_matrix(t64(rotvecs)), offsets[..., :2], PARENTS)


def test_rest_joints_and_translation_broadcast_over_the_batch():
    rest = random_rest_joints()
    poses = t64(rng(5).normal(scale=0.5, size=(6, J, 3)))
    transl = t64(rng(6).normal(size=3))
    positions, _ = kin.forward_kinematics_axis_angle(poses, rest, PARENTS, transl)
    expanded, _ = kin.forward_kinematics_axis_angle(poses, rest.expand(6, J, 3), PARENTS, transl.expand(6, 3))
    assert positions.shape == (6, J, 3)
    assert torch.allclose(positions, expanded)


def test_bone_lengths_are_preserved_under_any_pose():
    rest = random_rest_joints()
    poses = t64(rng(7).normal(scale=1.5, size=(50, J, 3)))
    positions, _ = kin.forward_kinematics_axis_angle(poses, rest, PARENTS, t64(rng(8).normal(size=(50, 3))))
    lengths = kin.bone_lengths(positions, PARENTS)
    assert lengths.shape == (50, J - 1)
    assert torch.allclose(lengths, kin.bone_lengths(rest, PARENTS).expand(50, J - 1), atol=1e-12)


def test_forward_kinematics_is_differentiable_and_works_in_float32():
    rest = random_rest_joints().float()
    poses = torch.zeros(3, J, 3, requires_grad=True)  # includes the aa = 0 point of Rodrigues
    positions, _ = kin.forward_kinematics_axis_angle(poses, rest, PARENTS)
    assert positions.dtype == torch.float32
    (grad,) = torch.autograd.grad(positions[:, END_EFFECTORS].sum(), poses)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_forward_kinematics_validates_shapes_and_tree():
    rest = random_rest_joints()
    with pytest.raises(ValueError, match="rotations"):
        kin.forward_kinematics(torch.eye(3).expand(J - 1, 3, 3), rest, PARENTS)
    with pytest.raises(ValueError, match="topological"):
        kin.forward_kinematics(torch.eye(3, dtype=torch.float64).expand(3, 3, 3), rest[:3], (-1, 2, 0))


# -------------------------------------------------------------------------------------------------- velocities


def test_joint_velocities_of_linear_motion_are_the_constant_velocity():
    fps = 30.0
    start, velocity = t64(rng(9).normal(size=(J, 3))), t64(rng(10).normal(size=(J, 3)))
    times = torch.arange(20, dtype=torch.float64) / fps
    positions = start + times[:, None, None] * velocity
    assert torch.allclose(kin.joint_velocities(positions, fps), velocity.expand(20, J, 3), atol=1e-10)
    assert torch.allclose(kin.joint_velocities(positions[:2], fps), velocity.expand(2, J, 3), atol=1e-10)


def test_joint_velocities_use_central_differences_inside():
    fps = 10.0
    times = torch.arange(6, dtype=torch.float64) / fps
    velocities = kin.joint_velocities((times**2)[:, None], fps)[:, 0]
    # Central differences are exact for a parabola (2t) inside; the ends are one-sided.
    assert torch.allclose(velocities[1:-1], 2 * times[1:-1], atol=1e-12)
    assert torch.isclose(velocities[0], (times[1] ** 2 - times[0] ** 2) * fps)
    with pytest.raises(ValueError, match="2 frames"):
        kin.joint_velocities(times[:1, None], fps)


@pytest.mark.parametrize("frame", ["world", "body"])
def test_angular_velocities_of_a_constant_spin(frame):
    fps = 60.0
    omega = t64(rng(11).normal(size=(J, 3)))  # rad/s, at most a few rad per 2 frames
    start = axis_angle_to_matrix(t64(rng(12).normal(size=(J, 3))))
    times = torch.arange(10, dtype=torch.float64) / fps
    spin = axis_angle_to_matrix(times[:, None, None] * omega)
    rotations = spin @ start if frame == "world" else start @ spin  # R' = [w] R (world) or R [w] (body)
    assert torch.allclose(kin.angular_velocities(rotations, fps, frame), omega.expand(10, J, 3), atol=1e-9)


# ------------------------------------------------------------------------------------------------ centre of mass


def test_center_of_mass_of_point_masses_and_of_segments():
    joints = t64([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [2.0, 4.0, 0.0]]])  # a 3-joint chain, batch of 1
    masses = t64([1.0, 1.0, 2.0])
    assert torch.allclose(kin.center_of_mass(joints, masses), t64([[1.5, 2.0, 0.0]]))  # (0 + 2 + 4, 0 + 0 + 8, 0) / 4
    # Segments: m0 at the root (0, 0, 0), m1 at (1, 0, 0), m2 at (2, 2, 0) -> (0 + 1 + 4, 0 + 0 + 4, 0) / 4.
    assert torch.allclose(kin.center_of_mass(joints, masses, parents=(-1, 0, 1)), t64([[1.25, 1.0, 0.0]]))
    with pytest.raises(ValueError, match="segment_masses"):
        kin.center_of_mass(joints, masses[:2])


# ------------------------------------------------------------------------------------------------------ skeleton


def test_smpl_skeleton_constants_are_consistent():
    assert len(JOINT_NAMES) == len(PARENTS) == N_JOINTS == 24
    assert check_parents(PARENTS) == PARENTS
    assert len(tree_levels(PARENTS)) == 9 and tree_levels(PARENTS)[0] == (0,)
    assert sorted(JOINT_NAMES[j] for j in END_EFFECTORS) == ["left_foot", "left_hand", "right_foot", "right_hand"]
    assert len(LEFT_RIGHT_PAIRS) == 9
    for left, right in LEFT_RIGHT_PAIRS:
        assert JOINT_NAMES[left].replace("left_", "right_") == JOINT_NAMES[right]
    # Mirroring is an involution that maps the tree onto itself.
    assert sorted(MIRROR_INDEX) == list(range(J))
    for j in range(J):
        assert MIRROR_INDEX[MIRROR_INDEX[j]] == j
        if j:
            assert PARENTS[MIRROR_INDEX[j]] == MIRROR_INDEX[PARENTS[j]]


def test_check_parents_rejects_bad_trees():
    with pytest.raises(ValueError, match="topological"):
        check_parents((-1, 2, 0))  # joint 1's parent comes after it
    with pytest.raises(ValueError, match="root must come first"):
        check_parents((1, -1, 0))
    with pytest.raises(ValueError, match="only joint 0"):
        check_parents((-1, 0, -1))
    with pytest.raises(ValueError, match="topological"):
        check_parents((-1, 1))  # a joint that is its own parent
    with pytest.raises(ValueError, match="empty"):
        check_parents(())
