"""Synthetic people (vision3d.body.synthetic, vision3d.body.people_render): the keypoints are the body model's joints
through the camera, computed independently from the world-frame pose; the camera-frame parameters reproduce the
camera-frame joints; the camera looks at the pelvis from the drawn yaw and elevation; samples are deterministic by
seed; train and test clips are disjoint; images, masks and visibility are consistent with the z-buffer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vision3d.body import BodyModel
from vision3d.body.people_render import OCCLUSION_MARGIN, _visible, part_of_vertex
from vision3d.body.rotations import axis_angle_to_matrix
from vision3d.body.synthetic import TEST_CLIPS, TRAIN_CLIPS, PeopleConfig, clip_motions, facing_yaw, sample_people

F64 = torch.float64


@pytest.fixture(scope="module")
def model() -> BodyModel:
    return BodyModel.default(dtype=F64, device="cpu")


def test_keypoints_are_the_world_joints_through_the_camera(model):
    people = sample_people(40, PeopleConfig(), seed=3, model=model)
    motions = clip_motions(TRAIN_CLIPS)
    drawn = list(zip(people.clip_index.tolist(), people.frame.tolist(), strict=True))
    poses = torch.stack([torch.from_numpy(motions[c].poses[f]) for c, f in drawn])
    transl = torch.from_numpy(np.stack([motions[c].trans[f] for c, f in drawn]))
    torch.testing.assert_close(people.body_pose, poses[:, 1:].reshape(40, -1))
    world = model(betas=people.betas, global_orient=poses[:, 0], body_pose=people.body_pose, transl=transl)
    camera_frame = world.joints @ people.camera_R.transpose(1, 2) + people.camera_t[:, None]
    # the clip's translation moves body and camera target alike: only the offset from the pelvis matters
    relative = camera_frame - camera_frame[:, :1] + people.joints3d[:, :1]
    torch.testing.assert_close(relative, people.joints3d, atol=1e-9, rtol=0)
    focal, centre = people.camera.focal[0], people.camera.principal_point[0]
    expected = focal * people.joints3d[..., :2] / people.joints3d[..., 2:] + centre
    torch.testing.assert_close(people.keypoints, expected, atol=1e-9, rtol=0)
    # the camera-frame parameters give the camera-frame joints directly
    again = model(betas=people.betas, global_orient=people.global_orient, body_pose=people.body_pose,
                  transl=people.transl)
    torch.testing.assert_close(again.joints, people.joints3d, atol=1e-9, rtol=0)


def test_the_camera_looks_at_the_pelvis_from_the_drawn_direction(model):
    config = PeopleConfig(clips=("walk",), mirrors=False, yaw_degrees=0.0, elevation_degrees=(0.0, 0.0),
                          distance_jitter=(1.0, 1.0))
    people = sample_people(30, config, seed=1, model=model)
    centre = torch.tensor(people.camera.principal_point, dtype=F64)
    torch.testing.assert_close(people.keypoints[:, 0], centre.expand(30, 2), atol=1e-9, rtol=0)
    distance = 1.8 / config.fill / 2 / math.tan(math.radians(config.fov_degrees) / 2)
    torch.testing.assert_close(people.joints3d[:, 0, 2], torch.full((30,), distance, dtype=F64))
    # yaw 0: the body's forward axis points back at the camera (its horizontal part along -z)
    forward = axis_angle_to_matrix(people.global_orient)[:, :, 2]
    horizontal = forward[:, [0, 2]] / forward[:, [0, 2]].norm(dim=-1, keepdim=True)
    torch.testing.assert_close(horizontal, torch.tensor([[0.0, -1.0]], dtype=F64).expand(30, 2), atol=1e-9, rtol=0)
    assert torch.allclose(forward[:, 1], torch.zeros(30, dtype=F64), atol=0.35)  # walking: roughly upright


def test_facing_yaw_by_hand():
    quarter = axis_angle_to_matrix(torch.tensor([[0.0, 0.0, math.pi / 2]], dtype=F64))
    # SMPL's forward (+z) rotated by 90 degrees about world z stays +z: no heading; tip it over first
    tipped = quarter @ axis_angle_to_matrix(torch.tensor([[math.pi / 2, 0.0, 0.0]], dtype=F64))
    forward = tipped[0, :, 2]
    assert facing_yaw(tipped).item() == pytest.approx(math.atan2(forward[1], forward[0]))


def test_samples_are_deterministic_by_seed_and_split_by_clip(model):
    config = PeopleConfig(clips=TEST_CLIPS, image_size=32)
    first = sample_people(6, config, seed=5, model=model, render=True)
    again = sample_people(6, config, seed=5, model=model, render=True)
    other = sample_people(6, config, seed=6, model=model, render=True)
    assert torch.equal(first.images, again.images) and torch.equal(first.keypoints, again.keypoints)
    assert not torch.equal(first.images, other.images)
    assert set(TRAIN_CLIPS).isdisjoint(TEST_CLIPS)
    assert first.clip_names == ["run", "run_mirror", "cmu_walk", "cmu_walk_mirror"]
    assert first.images.shape == (6, 32, 32, 3) and first.images.dtype == torch.uint8
    assert first.masks.shape == (6, 32, 32) and first.visibility.shape == (6, 24)


def test_masks_and_visibility_follow_the_body(model):
    people = sample_people(16, PeopleConfig(image_size=48), seed=2, model=model, render=True)
    assert 0.03 < people.masks.float().mean() < 0.4
    # a visible joint's pixel is on the body, and most joints are visible
    column, row = people.keypoints[..., 0].long(), people.keypoints[..., 1].long()
    inside = (column >= 0) & (column < 48) & (row >= 0) & (row < 48)
    on_body = people.masks[torch.arange(16)[:, None], row.clamp(0, 47), column.clamp(0, 47)]
    assert (on_body[people.visibility & inside]).float().mean() > 0.9
    assert 0.6 < people.visibility.float().mean() < 0.98
    assert not people.visibility[~inside].any()


def test_visibility_rule_by_hand():
    depth = torch.full((1, 4, 4), torch.inf, dtype=F64)
    depth[0, 1, 1] = 2.0  # a surface at z = 2 covering pixel (row 1, column 1)
    keypoints = torch.tensor([[[1.5, 1.5], [1.5, 1.5], [1.5, 1.5], [3.5, 0.5], [4.5, 0.5]]], dtype=F64)
    joint_depth = torch.tensor([[2.1, 2.0 + OCCLUSION_MARGIN - 1e-6, 2.0 + OCCLUSION_MARGIN + 0.01, 9.0, 1.0]],
                               dtype=F64)
    assert _visible(keypoints, joint_depth, depth).tolist() == [[True, True, False, True, False]]


def test_every_vertex_has_a_part(model):
    part = part_of_vertex(model)
    assert part.shape == (model.v_template.shape[0],) and part.min() >= 0 and len(part.unique()) == 6


def test_bad_configs_are_named():
    with pytest.raises(ValueError, match=r"yaw_degrees must be in \[0, 180\], got 200.*image_size must be an integer"):
        PeopleConfig(yaw_degrees=200, image_size=4)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        sample_people(0)
