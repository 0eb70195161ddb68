"""SFV: the temporal fit of a video, the fit as a world-frame Motion, the CLI, and the humanoid replay.

The videos are a held-out clip (``cmu_walk``, never seen by the pose prior or the 2D network) filmed by one static
camera (:func:`vision3d.body.video_fitting.render_motion_video`), 64 x 64 pixels like the synthetic people. The
bars come from independent references: the per-frame SMPLify fit the temporal fit starts from, and the true clip.
"""

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from vision3d.body.clips import load_clip
from vision3d.body.fitting import FitConfig, pa_mpjpe
from vision3d.body.model import BodyModel
from vision3d.body.motion import Motion, motion_joints
from vision3d.body.rotations import axis_angle_to_matrix
from vision3d.body.sfv import align_motion, humanoid_replay, main
from vision3d.body.synthetic import facing_yaw
from vision3d.body.video_fitting import (
    SequenceConfig,
    SequenceFit,
    acceleration_error,
    fit_sequence,
    render_motion_video,
    sequence_to_motion,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model() -> BodyModel:
    return BodyModel.default()


def walk(frames: int) -> Motion:
    return load_clip("cmu_walk").resample(30.0).clip(start_frame=0, end_frame=frames)


def rigid_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean joint distance after the best turn about z and translation of ``a [T, J, 3]`` onto ``b``."""
    a, b = a.reshape(-1, 3), b.reshape(-1, 3)
    ca, cb = a.mean(0), b.mean(0)
    u, _, vt = np.linalg.svd((a - ca)[:, :2].T @ (b - cb)[:, :2])
    turn = np.eye(3)
    turn[:2, :2] = vt.T @ np.diag([1.0, np.sign(np.linalg.det(vt.T @ u.T))]) @ u.T
    return float(np.linalg.norm((a - ca) @ turn.T + cb - b, axis=-1).mean())


def test_temporal_fit_removes_jitter_with_one_shape(model):
    """30 frames, exact keypoints + 1 px noise: the temporal fit's acceleration error is under half the per-frame
    fit's (its own initialisation), and its PA-MPJPE is not worse by more than 10 mm."""
    video = render_motion_video(walk(30), model, yaw_degrees=60, render=False)
    noise = np.random.default_rng(0).normal(0.0, 1.0, video.keypoints.shape)
    keypoints = (video.keypoints + torch.from_numpy(noise)).float()
    config = SequenceConfig(per_frame=FitConfig(iterations=(40, 120), multi_start=False), iterations=120)
    fit = fit_sequence(model, keypoints, None, video.camera, config)
    truth = video.people.joints3d.float()
    assert fit.betas.shape == (model.num_betas,) and fit.joints3d.shape == (30, 24, 3)
    single, joint = fit.per_frame.joints3d, fit.joints3d
    accel_single, accel_joint = acceleration_error(single, truth), acceleration_error(joint, truth)
    assert accel_joint < 0.5 * accel_single, (accel_joint, accel_single)
    assert acceleration_error(joint, truth, root_relative=False) < 0.5 * acceleration_error(single, truth, False)
    assert pa_mpjpe(joint, truth).mean() < pa_mpjpe(single, truth).mean() + 0.010
    assert fit.reprojection_error.mean() < 3.0  # pixels: smoothing does not walk away from the keypoints
    assert torch.isfinite(fit.loss_history).all() and fit.loss_history[-1] < fit.loss_history[0]


def test_sequence_to_motion_recovers_the_clip_up_to_heading(model):
    """From the true camera-frame parameters of an oblique, raised view: the Motion's world joints are the clip's
    up to a turn about z and a shift (a few cm: the floor normal is estimated from the feet), Z up, facing +x,
    soles on z = 0."""
    clip = walk(60)
    video = render_motion_video(clip, model, yaw_degrees=150, elevation_degrees=25, render=False)
    people = video.people
    truth_fit = SequenceFit(people.betas[0], people.global_orient, people.body_pose, people.transl, people.joints3d)
    motion = sequence_to_motion(truth_fit, 30.0, "walk_back", model)
    assert motion.n_frames == 60 and motion.fps == 30.0 and motion.name == "walk_back"
    rest = model(betas=people.betas[:1].float(), return_verts=False).joints[0].double()
    joints = motion_joints(motion, rest)
    assert rigid_error(joints, video.world_joints.numpy()) < 0.03
    neck_above = joints[:, 12, 2] - joints[:, 0, 2]
    assert (neck_above > 0.3).all()  # z is up
    heading = facing_yaw(axis_angle_to_matrix(torch.from_numpy(motion.poses[:, 0])))
    assert abs(float(torch.atan2(heading.sin().mean(), heading.cos().mean()))) < np.radians(10)
    with torch.no_grad():
        vertices = model(betas=torch.from_numpy(motion.betas).float()[None].expand(60, -1),
                         global_orient=torch.from_numpy(motion.poses[:, 0]).float(),
                         body_pose=torch.from_numpy(motion.poses[:, 1:].reshape(60, -1)).float(),
                         transl=torch.from_numpy(motion.trans).float()).vertices  # fmt: skip
    assert float(vertices[..., 2].min()) == pytest.approx(0.0, abs=1e-4)
    assert 0.0 < joints[:, [10, 11], 2].min() < 0.1  # the foot joints a few cm above the floor, as in the clips
    assert np.allclose(joints[0, 0, :2], 0.0, atol=1e-6)


def test_cli_on_keypoints_and_frames(tmp_path, model, capsys):
    video = render_motion_video(walk(8), model, yaw_degrees=60, render=True)
    np.savez(tmp_path / "kp.npz", keypoints=video.keypoints.numpy())
    out = tmp_path / "motion.npz"
    assert main([str(tmp_path / "kp.npz"), "--out", str(out), "--fps", "30", "--iterations", "20"]) == 0
    motion = Motion.load(out)
    assert motion.n_frames == 8 and motion.fps == 30.0 and np.isfinite(motion.poses).all()
    printed = capsys.readouterr().out
    assert "mpenv-train ppo --env mpenv/HumanoidMimic-v0 --env-kwargs '{\"motion\": " in printed

    frames = tmp_path / "frames"
    frames.mkdir()
    for index, image in enumerate(video.images.numpy()):
        iio.imwrite(frames / f"{index:03d}.png", image)
    status = main([str(frames), "--out", str(tmp_path / "from_frames.npz"), "--iterations", "10"])
    network = Path(__file__).parents[1] / "vision3d" / "body" / "data" / "pose_heatmap"
    if not network.is_dir():  # the shipped network is optional here: then the CLI must say so, not crash
        assert status == 2 and "pose_heatmap" in capsys.readouterr().err
        pytest.skip("no shipped 2D pose network: the frames path is checked up to the network")
    assert status == 0 and Motion.load(tmp_path / "from_frames.npz").n_frames == 8


def test_cli_bad_inputs_name_the_file(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    np.savez(tmp_path / "wrong_key.npz", points=np.zeros((5, 24, 2)))
    np.savez(tmp_path / "wrong_shape.npz", keypoints=np.zeros((5, 17, 2)))
    np.savez(tmp_path / "bad_conf.npz", keypoints=np.zeros((5, 24, 2)), confidences=np.ones((5, 17)))
    (tmp_path / "notes.txt").write_text("hello")
    for name, expected in (("missing.npz", "no such file"), ("empty", "no frames"), ("wrong_key.npz", "keypoints"),
                           ("wrong_shape.npz", "[T >= 3, 24, 2]"), ("bad_conf.npz", "confidences"),
                           ("notes.txt", "expected a folder")):  # fmt: skip
        assert main([str(tmp_path / name), "--out", str(tmp_path / "m.npz")]) == 2, name
        error = capsys.readouterr().err.strip()
        assert name in error and expected in error and "\n" not in error, error
    assert not (tmp_path / "m.npz").exists()


def test_help_documents_the_training_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--env-kwargs '{\"motion\": \"motion.npz\"}'" in capsys.readouterr().out.replace("\n", " ")


def test_humanoid_replays_the_recovered_motion_on_the_true_clip(model):
    """The Motion from the true camera-frame parameters, aligned to the clip, replayed kinematically in
    HumanoidMimic-v0 against the clip itself: a few cm of global error (the estimated floor and heading), and
    replaying a motion against itself is exact. 60 frames (2 s): over 1 s of walking the feet give too few
    contacts to fix the floor's tilt (about 9 degrees off, against 2 at 2 s)."""
    clip = walk(60)
    video = render_motion_video(clip, model, yaw_degrees=60, render=False)
    people = video.people
    fit = SequenceFit(people.betas[0], people.global_orient, people.body_pose, people.transl, people.joints3d)
    recovered = align_motion(sequence_to_motion(fit, 30.0, "recovered", model), clip)
    against_truth = humanoid_replay(recovered, clip)
    assert against_truth["steps"] == 59
    assert against_truth["mpjpe"] < 0.03 and against_truth["mpjpe_global"] < 0.05, against_truth
    itself = humanoid_replay(recovered)
    assert itself["mpjpe_global"] < 1e-6 and itself["reward"] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="bars not met: world MPJPE 128 mm (bar 60), replay reward 0.35 (bar 0.9; "
                   "root-relative 128 mm, PA-MPJPE 98 mm; from SMPLify's T-pose start: 181 mm, 0.28): at 64 px the "
                   "network's keypoints swap left and right between front and back views")
def test_sfv_end_to_end_meets_the_issue_bar(model):
    """The whole pipeline on 60 frames (2 s) of the held-out cmu_walk filmed at 64 x 64: the shipped 2D network's
    keypoints, the temporal fit, the Motion aligned to the clip by a turn about z and a shift. The issue's bars:
    mean joint error to the true motion (world frame, the humanoid's skeleton) at most 60 mm, and its kinematic
    replay in HumanoidMimic-v0 scored against the true clip with a mean reward of at least 0.9."""
    from vision3d.body.retarget import smpl_rest_joints
    from vision3d.body.sfv import network_keypoints, to_network_input

    clip = walk(60)
    video = render_motion_video(clip, model, yaw_degrees=60, image_size=64, seed=0)
    images, scale = to_network_input(video.images.numpy())
    keypoints = (network_keypoints(images) / scale).float()
    fit = fit_sequence(model, keypoints, None, video.camera, SequenceConfig())
    recovered = align_motion(sequence_to_motion(fit, 30.0, "recovered", model), clip)
    rest = smpl_rest_joints()
    error = float(np.linalg.norm(motion_joints(recovered, rest) - motion_joints(clip, rest)[: recovered.n_frames],
                                 axis=-1).mean())  # fmt: skip
    replay = humanoid_replay(recovered, clip)
    print(f"world MPJPE {1e3 * error:.0f} mm, replay {replay}")
    assert error <= 0.060, error
    assert replay["reward"] >= 0.9, replay


def test_learned_start_fits_held_out_frames_better_than_the_t_pose(model):
    """The per-frame fits of 30 frames of the held-out walk (exact keypoints + 1 px noise, the same budget of 160
    iterations): started from the learned fitter's estimate, their mean PA-MPJPE is lower than from SMPLify's T-pose
    (single start): measured 75 against 97 mm. A bad ``initial`` is refused."""
    video = render_motion_video(walk(30), model, yaw_degrees=60, render=False)
    noise = np.random.default_rng(0).normal(0.0, 1.0, video.keypoints.shape)
    keypoints = (video.keypoints + torch.from_numpy(noise)).float()
    truth = video.people.joints3d.float()
    per_frame = FitConfig(iterations=(40, 120), multi_start=False)
    errors = {}
    for initial in ("learned", "smplify"):
        config = SequenceConfig(per_frame=per_frame, iterations=0, initial=initial)
        fit = fit_sequence(model, keypoints, None, video.camera, config)
        errors[initial] = float(pa_mpjpe(fit.per_frame.joints3d, truth).mean())
    assert errors["learned"] < errors["smplify"], errors
    with pytest.raises(ValueError, match="initial must be"):
        SequenceConfig(initial="regression")
