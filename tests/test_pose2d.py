"""Learned 2D pose (vision3d.body.pose2d and its two models): PCK by hand; the heatmap network decodes its own
targets to the keypoints and its loss is least at them; iterative error feedback starts at the mean pose and bounds
its corrections; checkpoints round-trip and bad ones are refused, naming the file; the CLI trains and evaluates.
Learning (slow): a small heatmap network beats the mean training pose on held-out clips, and its later stage does
not lose to its first."""

from __future__ import annotations

import json

import pytest
import torch

from mpenv.checkpoint import CheckpointError
from vision3d.body.pose2d import (
    PoseSet,
    build_model,
    default_pose_model,
    evaluate,
    fit_springs,
    load_pose_model,
    main,
    pck,
    pictorial_structures_decode,
    pixel_error,
    pose_set,
    save_pose_model,
    train_pose_model,
)
from vision3d.body.pose_regression_net import bounded_correction
from vision3d.body.skeleton import JOINT_INDEX
from vision3d.body.synthetic import TEST_CLIPS, TRAIN_CLIPS


@pytest.fixture(scope="module")
def small_set() -> PoseSet:
    return pose_set(24, TRAIN_CLIPS, seed=3)


def test_pck_by_hand():
    target = torch.zeros(2, 24, 2)
    target[:, JOINT_INDEX["left_shoulder"]] = torch.tensor([0.0, 0.0])
    target[:, JOINT_INDEX["right_hip"]] = torch.tensor([3.0, 4.0])  # torso diameter 5
    pred = target.clone()
    pred[0, 5] += torch.tensor([0.0, 0.99])  # within 0.2 * 5 = 1
    pred[0, 6] += torch.tensor([0.6, 0.81])  # 1.005: outside
    pred[1, 7] += torch.tensor([0.0, 0.4])  # within 0.1 * 5 = 0.5
    visible = torch.ones(2, 24, dtype=torch.bool)
    assert pck(pred, target, visible, 0.2) == pytest.approx(47 / 48)
    assert pck(pred, target, visible, 0.1) == pytest.approx(46 / 48)
    visible[0, 6] = False  # invisible joints do not count
    assert pck(pred, target, visible, 0.2) == 1.0
    assert pixel_error(pred, target, visible) == pytest.approx((0.99 + 0.4) / 47)
    with pytest.raises(ValueError, match=r"must be \[N, 24, 2\]"):
        pck(pred[:, :5], target[:, :5], visible[:, :5])


def test_heatmap_targets_decode_to_the_keypoints_and_minimize_the_loss(small_set):
    net = build_model("heatmap", stages=2, width=8)
    images, keypoints = small_set.inputs(), small_set.keypoints
    target, inside = net.targets(keypoints, (32, 32))
    decoded = net.decode(target.log().view(len(images), 24, 32, 32))
    error = (decoded - keypoints).norm(dim=-1)[inside]
    # the quarter-pixel refinement leaves at most half a heatmap pixel per axis: 1 image pixel at stride 2
    assert error.max() <= 2**0.5 + 1e-6 and error.mean() < 0.5
    # the cross-entropy is least (the target's entropy) when the logits are the target's log
    best = -(target * target.log().clamp_min(-1e9)).sum(-1)[inside].sum() / len(images)
    loss, terms = net.loss(images, keypoints)
    assert set(terms) == {"stage1", "stage2"} and float(loss.detach()) > 2 * float(best)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    assert net.predict(images, stage=1).shape == net.predict(images).shape == (24, 24, 2)


def test_iterative_error_feedback_starts_at_the_mean_pose_with_bounded_steps(small_set):
    net = build_model("regression", steps=3, width=8)
    net.set_mean_pose(small_set.keypoints)
    mean = small_set.keypoints.mean(0)
    for stage in (1, 2, 3):
        torch.testing.assert_close(net.predict(small_set.inputs(), stage), mean.expand(24, 24, 2), atol=1e-4, rtol=0)
    error = torch.tensor([[3.0, 4.0], [0.03, 0.04], [0.0, 0.0]])
    torch.testing.assert_close(bounded_correction(error, 0.1), torch.tensor([[0.06, 0.08], [0.03, 0.04], [0, 0]]))
    loss, terms = net.loss(small_set.inputs(), small_set.keypoints)
    assert set(terms) == {"step1", "step2", "step3"} and torch.isfinite(loss)
    direct = build_model("regression", steps=1, width=8)
    assert direct.max_correction == float("inf")  # one step: plain direct regression


class GivenHeatmaps(torch.nn.Module):
    """A stand-in network whose last stage returns fixed heatmaps, whatever the images."""

    stride = 2

    def __init__(self, heatmaps: torch.Tensor):
        super().__init__()
        self.heatmaps = heatmaps

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return [self.heatmaps[: len(images)]]


def test_pictorial_structures_fix_a_misplaced_part_from_its_neighbours(small_set):
    net = build_model("heatmap", stages=1, width=8)
    target, inside = net.targets(small_set.keypoints, (32, 32))
    logits = target.clamp_min(1e-30).log().view(24, 24, 32, 32)
    springs = fit_springs(small_set.keypoints, stride=2)
    clean = pictorial_structures_decode(GivenHeatmaps(logits), small_set, springs)
    error = (clean - small_set.keypoints).norm(dim=-1)[inside]  # on the heatmap grid: up to 1 pixel per axis
    assert error.mean() < 1.2 and (error <= 2.0).float().mean() > 0.9
    # the left knee's map gets a second, slightly stronger peak in a far corner: argmax jumps there, the tree does not
    knee = JOINT_INDEX["left_knee"]
    corrupted = logits.clone()
    corrupted[:, knee, 0, 0] = logits[:, knee].amax((-2, -1)) + 0.5
    fooled = net.decode(corrupted)[:, knee]
    fixed = pictorial_structures_decode(GivenHeatmaps(corrupted), small_set, springs)[:, knee]
    truth, seen = small_set.keypoints[:, knee], inside[:, knee]
    assert (fooled - truth).norm(dim=-1)[seen].mean() > 10
    assert (fixed - truth).norm(dim=-1)[seen].mean() < 2.0


def test_checkpoints_round_trip_and_bad_ones_are_refused(tmp_path, small_set):
    torch.manual_seed(0)
    net = build_model("heatmap", stages=2, width=8)
    train_pose_model(net, small_set, epochs=1, batch_size=8)
    save_pose_model(tmp_path / "run", net, "heatmap", {"stages": 2, "width": 8})
    loaded = load_pose_model(tmp_path / "run")
    torch.testing.assert_close(loaded.predict(small_set.inputs()), net.predict(small_set.inputs()))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    (tmp_path / "run" / "config.json").write_text(json.dumps(config | {"model_args": {"stages": 3, "width": 8}}))
    with pytest.raises(CheckpointError, match="run: weights do not fit the network"):
        load_pose_model(tmp_path / "run")
    (tmp_path / "run" / "config.json").write_text(json.dumps({"model": "transformer"}))
    with pytest.raises(CheckpointError, match="config.json: needs 'model'"):
        load_pose_model(tmp_path / "run")


def test_cli_trains_and_evaluates(tmp_path, capsys):
    args = ["train", "--model", "regression", "--stages", "2", "--width", "8", "--train-samples", "32",
            "--test-samples", "8", "--epochs", "1", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    assert "| 2 |" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "run"), "--test-samples", "8"]) == 0
    assert "held-out images (run, cmu_walk)" in capsys.readouterr().out
    assert main(["train", "--epochs", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing")]) == 2


@pytest.mark.slow
def test_a_small_heatmap_network_beats_the_mean_pose_on_held_out_clips():
    """1,500 images, 3 epochs: the bar is 0.1 above the mean training pose's PCK@0.2 (0.33), and the second stage must
    not lose to the first. Measured: 0.35 after stage 1, 0.45 after stage 2. (1,000 images are not enough: 0.32.)"""
    train, test = pose_set(1500, TRAIN_CLIPS, seed=10), pose_set(300, TEST_CLIPS, seed=11)
    torch.manual_seed(0)
    net = build_model("heatmap", stages=2, width=16)
    train_pose_model(net, train, epochs=3, batch_size=32)
    rows = evaluate(net, test)
    baseline = pck(train.keypoints.mean(0).expand_as(test.keypoints), test.keypoints, test.visible, 0.2)
    assert rows[-1]["pck@0.2"] >= baseline + 0.1, (rows, baseline)
    assert rows[-1]["pck@0.2"] >= rows[0]["pck@0.2"] - 0.01, rows


@pytest.fixture(scope="module")
def shipped_rows() -> list[dict[str, float]]:
    """The shipped 3-stage network on 500 fresh images of the test clips (seed 7: neither its training images, seed
    0, nor the CLI's own test images, seed 1)."""
    return evaluate(default_pose_model(), pose_set(500, TEST_CLIPS, seed=7))


@pytest.mark.slow
def test_each_stage_of_the_shipped_network_helps(shipped_rows):
    """Measured when shipped (1,000 other held-out images): PCK@0.2 0.668, 0.747, 0.766 after stages 1, 2, 3."""
    for before, after in zip(shipped_rows, shipped_rows[1:], strict=False):
        assert after["pck@0.2"] >= before["pck@0.2"] + 0.01, shipped_rows
        assert after["pixel_error"] <= before["pixel_error"], shipped_rows


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="bar not reached: the shipped 3-stage network (8,000 images, 12 epochs, 21 min "
                   "on one core) scores PCK@0.2 0.766 on held-out clips at 64x64; the issue asks 0.9")
def test_the_shipped_network_meets_the_issue_bar(shipped_rows):
    assert shipped_rows[-1]["pck@0.2"] >= 0.9, shipped_rows
