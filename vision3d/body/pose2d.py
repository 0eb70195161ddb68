"""Learned 2D human pose on synthetic people: data, the PCK metric, training, evaluation, and the CLI.

The models are in their own files: :mod:`vision3d.body.pose_heatmap_net` (multi-stage heatmaps with intermediate
supervision) and :mod:`vision3d.body.pose_regression_net` (direct coordinate regression, and its refinement by
iterative error feedback). Both expose ``loss(images, keypoints)``, ``predict(images, stage)`` and ``n_steps``, so
one training loop and one evaluation serve both, and every stage or step can be scored on its own.
:func:`pictorial_structures_decode` puts the tree model of :mod:`vision3d.body.pictorial_structures` on top of the
learned heatmaps.

**Data** (:func:`pose_set`): rendered synthetic people (:func:`vision3d.body.synthetic.sample_people`), train images
from the frames of :data:`~vision3d.body.synthetic.TRAIN_CLIPS` and test images from the held-out
:data:`~vision3d.body.synthetic.TEST_CLIPS`, cameras all around the body.

**PCK@alpha** (percentage of correct keypoints, as on the LSP benchmark): a predicted joint is correct when it lies
within ``alpha`` times the torso diameter of the truth, the torso diameter being the image distance from the left
shoulder to the right hip; averaged over the visible joints (:mod:`vision3d.body.people_render` defines visibility).
At 64x64 the torso spans about 12 pixels, so PCK@0.2 asks for about 2.5 pixels. (Normalized by the person's
bounding box instead, PCK@0.2 would be so lenient here that predicting the mean training pose scores 72%.)

    python -m vision3d.body.pose2d train --model heatmap --stages 3 --train-samples 8000 --epochs 12 --out runs/pose
    python -m vision3d.body.pose2d eval runs/pose --test-samples 1000
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mpenv.checkpoint import CheckpointError, load_config, load_state_dict_checked, load_torch, save_torch
from mpenv.logger import write_json
from mpenv.tables import markdown_table
from vision3d.body.skeleton import JOINT_INDEX, N_JOINTS, PARENTS
from vision3d.body.synthetic import TEST_CLIPS, TRAIN_CLIPS, PeopleConfig, sample_people

MODELS = ("heatmap", "regression")
RENDER_CHUNK = 256  # people rendered per call (bounds memory)


@dataclass
class PoseSet:
    """Images uint8 [N, H, W, 3], keypoints float32 [N, 24, 2] (pixels, centres at j + 0.5), visible bool [N, 24]."""

    images: Tensor
    keypoints: Tensor
    visible: Tensor

    def __len__(self) -> int:
        return len(self.images)

    def inputs(self, index: Tensor | slice = slice(None)) -> Tensor:
        """Network inputs [n, 3, H, W] in [-0.5, 0.5]."""
        return self.images[index].permute(0, 3, 1, 2).float() / 255.0 - 0.5


def pose_set(n: int, clips: tuple[str, ...], seed: int, image_size: int = 64, yaw_degrees: float = 180.0,
             progress: bool = False) -> PoseSet:
    """``n`` rendered people posed like frames of ``clips`` (their mirrors included), deterministic by ``seed``."""
    config = PeopleConfig(clips=clips, image_size=image_size, yaw_degrees=yaw_degrees)
    parts = []
    chunks = range(0, n, RENDER_CHUNK)
    if progress:
        from tqdm import tqdm

        chunks = tqdm(chunks, desc=f"rendering {n} people", unit_scale=RENDER_CHUNK)
    for start in chunks:
        people = sample_people(min(RENDER_CHUNK, n - start), config, seed=seed * 100_003 + start, render=True)
        parts.append((people.images, people.keypoints.float(), people.visibility))
    images, keypoints, visible = (torch.cat(column) for column in zip(*parts, strict=True))
    return PoseSet(images, keypoints, visible)


# ---------------------------------------------------------------------------------------------------------------
# Metrics


def pck(pred: Tensor, target: Tensor, visible: Tensor, alpha: float = 0.2) -> float:
    """The fraction of visible joints within ``alpha`` torso diameters of the truth (module docstring)."""
    if pred.shape != target.shape or pred.shape[:-1] != visible.shape or pred.shape[1] != N_JOINTS:
        raise ValueError(f"pred {tuple(pred.shape)}, target {tuple(target.shape)} and visible "
                         f"{tuple(visible.shape)} must be [N, 24, 2], [N, 24, 2], [N, 24]")  # fmt: skip
    torso = (target[:, JOINT_INDEX["left_shoulder"]] - target[:, JOINT_INDEX["right_hip"]]).norm(dim=-1)  # [N]
    correct = (pred - target).norm(dim=-1) <= alpha * torso[:, None]
    return float(correct[visible].float().mean())


def pixel_error(pred: Tensor, target: Tensor, visible: Tensor) -> float:
    """Mean distance in pixels over the visible joints."""
    return float((pred - target).norm(dim=-1)[visible].mean())


# ---------------------------------------------------------------------------------------------------------------
# Models, training, evaluation


def build_model(kind: str, **kwargs: Any) -> nn.Module:
    """``"heatmap"`` (:class:`HeatmapPoseNet`: ``stages``, ``width``) or ``"regression"`` (:class:`RegressionPoseNet`:
    ``steps`` -- 1 for direct regression, more for iterative error feedback --, ``width``, ``image_size``)."""
    if kind == "heatmap":
        from vision3d.body.pose_heatmap_net import HeatmapPoseNet

        return HeatmapPoseNet(**kwargs)
    if kind == "regression":
        from vision3d.body.pose_regression_net import RegressionPoseNet

        return RegressionPoseNet(**kwargs)
    raise ValueError(f"model must be one of {MODELS}, got {kind!r}")


def train_pose_model(model: nn.Module, data: PoseSet, epochs: int, batch_size: int = 64, learning_rate: float = 2e-3,
                     seed: int = 0, log: Callable[[int, dict[str, float]], None] | None = None) -> list[float]:
    """Adam with a cosine learning-rate decay over ``epochs`` passes of shuffled batches; returns the mean loss of
    each epoch. ``log(epoch, terms)`` is called after each epoch with the mean of every loss term."""
    if hasattr(model, "set_mean_pose"):
        model.set_mean_pose(data.keypoints)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps_per_epoch = math.ceil(len(data) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    history = []
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(data), generator=generator)
        sums: dict[str, float] = {}
        total = 0.0
        for start in range(0, len(data), batch_size):
            index = order[start : start + batch_size]
            loss, terms = model.loss(data.inputs(index), data.keypoints[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(index)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + float(value) * len(index)
        history.append(total / len(data))
        if log is not None:
            log(epoch, {"loss": history[-1]} | {name: value / len(data) for name, value in sums.items()})
    model.eval()
    return history


@torch.no_grad()
def predict_keypoints(model: nn.Module, data: PoseSet, stage: int | None = None, batch_size: int = 256) -> Tensor:
    model.eval()
    return torch.cat([model.predict(data.inputs(slice(start, start + batch_size)), stage)
                      for start in range(0, len(data), batch_size)])  # fmt: skip


def evaluate(model: nn.Module, data: PoseSet) -> list[dict[str, float]]:
    """PCK@0.1, PCK@0.2 and the mean pixel error after every stage (heatmaps) or step (IEF), in order."""
    rows = []
    for stage in range(1, model.n_steps + 1):
        pred = predict_keypoints(model, data, stage)
        rows.append({"stage": stage, "pck@0.1": pck(pred, data.keypoints, data.visible, 0.1),
                     "pck@0.2": pck(pred, data.keypoints, data.visible, 0.2),
                     "pixel_error": pixel_error(pred, data.keypoints, data.visible)})  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------------------------------
# Pictorial structures on the learned unaries


def fit_springs(keypoints: Tensor, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """The springs of a pictorial-structures model on the SMPL tree, at heatmap resolution (pixels / ``stride``),
    from training keypoints [N, 24, 2]: each part's offset from its parent as a Gaussian, mean ``mu`` and per-axis
    variance ``s^2``, whose negative log-density is the spring ``(d - mu)^2 / (2 s^2)``: ``w = 1 / (2 s^2)``."""
    offsets = (keypoints[:, 1:] - keypoints[:, list(PARENTS[1:])]).double() / stride  # [N, 23, 2]
    means = torch.cat([torch.zeros(1, 2, dtype=torch.float64), offsets.mean(0)])
    weights = torch.cat([torch.ones(1, 2, dtype=torch.float64), 1 / (2 * offsets.var(0).clamp_min(1e-3))])
    return weights.numpy(), means.numpy()


@torch.no_grad()
def pictorial_structures_decode(model: nn.Module, data: PoseSet, springs: tuple[np.ndarray, np.ndarray]) -> Tensor:
    """Keypoints [N, 24, 2] from the exact MAP configuration of the tree model (:func:`map_inference`) whose unary
    costs are the last stage's heatmaps as negative log-probabilities, ``m_k = -log softmax(H_k)``: every part moves
    from its own argmax where its neighbours, through the springs, make another location likelier. One dynamic
    program per image (the distance transforms inside are vectorized)."""
    from vision3d.body.pictorial_structures import map_inference

    weights, means = springs
    located = []
    for start in range(0, len(data), 256):
        heatmaps = model(data.inputs(slice(start, start + 256)))[-1]
        costs = -torch.log_softmax(heatmaps.flatten(-2), dim=-1).view_as(heatmaps).double().numpy()
        located += [map_inference(cost, PARENTS, weights, means)[0] for cost in costs]
    return (torch.from_numpy(np.stack(located)).float() + 0.5) * model.stride


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints: weights in checkpoint.pt (loaded with weights_only=True), the model's kind and arguments in config.json


def save_pose_model(run_dir: str | Path, model: nn.Module, kind: str, model_args: dict[str, Any],
                    extra: dict[str, Any] | None = None) -> None:
    run_dir = Path(run_dir)
    save_torch(run_dir, {"step": 0, "modules": {"model": model.state_dict()}})
    write_json(run_dir / "config.json", {"model": kind, "model_args": model_args} | (extra or {}))


def load_pose_model(run_dir: str | Path) -> nn.Module:
    """The model of a run directory, in eval mode; a file that does not fit names itself and the problem."""
    config = load_config(run_dir)
    kind, model_args = config.get("model"), config.get("model_args")
    if kind not in MODELS or not isinstance(model_args, dict):
        raise CheckpointError(f"{run_dir}/config.json: needs 'model' (one of {MODELS}) and 'model_args' (an object)")
    try:
        model = build_model(kind, **model_args)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{run_dir}/config.json: bad model_args ({err})") from err
    state = load_torch(run_dir, required=("modules",))
    if "model" not in state["modules"]:
        raise CheckpointError(f"{run_dir}: no 'model' weights (found: {sorted(state['modules'])})")
    load_state_dict_checked(model, state["modules"]["model"], str(run_dir))
    return model.eval()


def default_pose_model() -> nn.Module:
    """The shipped heatmap network (``vision3d/body/data/pose_heatmap``: 3 stages, trained by this module's CLI on
    8,000 images of the training clips; its ``config.json`` records the command's settings and held-out scores)."""
    return load_pose_model(Path(__file__).parent / "data" / "pose_heatmap")


# ---------------------------------------------------------------------------------------------------------------
# CLI


def print_table(rows: list[dict[str, float]], title: str) -> None:
    print(title)
    cells = [{"stage": row["stage"], "pck10": row["pck@0.1"], "pck20": row["pck@0.2"], "error": row["pixel_error"]}
             for row in rows]
    print(markdown_table(cells, {"stage/step": "{stage}", "PCK@0.1": "{pck10:.3f}", "PCK@0.2": "{pck20:.3f}",
                                 "pixel error": "{error:.2f}"}))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vision3d.body.pose2d", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="render data, train a model, save it and report held-out PCK",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    train.add_argument("--model", choices=MODELS, default="heatmap")
    train.add_argument("--stages", type=int, default=3, help="heatmap stages, or IEF steps for --model regression")
    train.add_argument("--width", type=int, default=48, help="channels of the convolutions")
    train.add_argument("--train-samples", type=int, default=8000)
    train.add_argument("--test-samples", type=int, default=1000)
    train.add_argument("--epochs", type=int, default=12)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--learning-rate", type=float, default=2e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    train.add_argument("--out", required=True, help="run directory for checkpoint.pt and config.json")
    evaluation = commands.add_parser("eval", help="held-out PCK of a saved model",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    evaluation.add_argument("run_dir")
    evaluation.add_argument("--test-samples", type=int, default=1000)
    evaluation.add_argument("--seed", type=int, default=1, help="seed of the held-out images")
    args = parser.parse_args(argv)

    try:
        if args.command == "eval":
            model = load_pose_model(args.run_dir)
            test = pose_set(args.test_samples, TEST_CLIPS, seed=args.seed + 1, progress=sys.stderr.isatty())
            print_table(evaluate(model, test), f"{args.run_dir}: {len(test)} held-out images ({', '.join(TEST_CLIPS)})")
            return 0
        for flag, value in (("--stages", args.stages), ("--epochs", args.epochs), ("--train-samples",
                            args.train_samples), ("--test-samples", args.test_samples)):  # fmt: skip
            if value < 1:
                raise ValueError(f"{flag} must be at least 1, got {value}")
        torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        model_args = ({"stages": args.stages, "width": args.width} if args.model == "heatmap"
                      else {"steps": args.stages, "width": args.width})  # fmt: skip
        model = build_model(args.model, **model_args)
    except (ValueError, CheckpointError) as err:
        print(f"pose2d: error: {err}", file=sys.stderr)
        return 2
    progress = sys.stderr.isatty()
    train_data = pose_set(args.train_samples, TRAIN_CLIPS, seed=args.seed, progress=progress)
    test = pose_set(args.test_samples, TEST_CLIPS, seed=args.seed + 1, progress=progress)
    start = time.perf_counter()

    def log(epoch: int, terms: dict[str, float]) -> None:
        print(f"epoch {epoch + 1}/{args.epochs}: " + ", ".join(f"{k} {v:.4g}" for k, v in terms.items()), flush=True)

    try:
        train_pose_model(model, train_data, args.epochs, args.batch_size, args.learning_rate, args.seed, log)
    except KeyboardInterrupt:
        print("interrupted: saving the model as it is", file=sys.stderr)
    seconds = time.perf_counter() - start
    rows = evaluate(model, test)
    save_pose_model(args.out, model, args.model, model_args,
                    {"train_samples": args.train_samples, "epochs": args.epochs, "seed": args.seed,
                     "train_seconds": round(seconds, 1), "test": rows})  # fmt: skip
    print_table(rows, f"{args.model} ({model_args}), {seconds:.0f} s of training; {len(test)} held-out images")
    print(json.dumps({"run_dir": str(args.out)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
