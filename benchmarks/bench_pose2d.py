"""Learned 2D pose, the course's comparisons side by side: direct regression against iterative error feedback, one
heatmap stage against several, heatmaps against regression, and pictorial structures on the learned heatmaps.

Every model trains with the same settings (Adam, cosine decay, batch 64, the same rendered images of the train clips,
the same seed) and is scored after each of its stages or steps on the same held-out images of the test clips
(:mod:`vision3d.body.pose2d`: PCK against the torso diameter, visible joints). The mean training pose is the floor.

    python benchmarks/bench_pose2d.py --train-samples 4000 --epochs 6 --test-samples 1000
"""

from __future__ import annotations

import argparse
import time

import torch

from vision3d.body.pose2d import (
    build_model,
    evaluate,
    fit_springs,
    pck,
    pictorial_structures_decode,
    pixel_error,
    pose_set,
    train_pose_model,
)
from vision3d.body.synthetic import TEST_CLIPS, TRAIN_CLIPS

MODELS = {
    "direct regression": ("regression", {"steps": 1}),
    "IEF (3 steps)": ("regression", {"steps": 3}),
    "heatmaps (1 stage)": ("heatmap", {"stages": 1}),
    "heatmaps (3 stages)": ("heatmap", {"stages": 3}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--train-samples", type=int, default=4000)
    parser.add_argument("--test-samples", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default=";".join(MODELS), help="semicolon-separated names from the table")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train = pose_set(args.train_samples, TRAIN_CLIPS, seed=args.seed + 20)
    test = pose_set(args.test_samples, TEST_CLIPS, seed=args.seed + 21)
    print(f"{len(train)} training images ({', '.join(TRAIN_CLIPS)}), {len(test)} held-out ({', '.join(TEST_CLIPS)}), "
          f"{args.epochs} epochs, width {args.width}")
    print("| model | stage/step | PCK@0.1 | PCK@0.2 | pixel error | training s |")
    print("| --- | --- | --- | --- | --- | --- |")
    mean_pose = train.keypoints.mean(0).expand_as(test.keypoints)
    print(f"| mean training pose | - | {pck(mean_pose, test.keypoints, test.visible, 0.1):.3f} | "
          f"{pck(mean_pose, test.keypoints, test.visible, 0.2):.3f} | "
          f"{pixel_error(mean_pose, test.keypoints, test.visible):.2f} | - |")
    for name in args.models.split(";"):
        kind, kwargs = MODELS[name]
        torch.manual_seed(args.seed)
        model = build_model(kind, width=args.width, **kwargs)
        start = time.perf_counter()
        train_pose_model(model, train, args.epochs, seed=args.seed)
        seconds = time.perf_counter() - start
        for row in evaluate(model, test):
            print(f"| {name} | {row['stage']} | {row['pck@0.1']:.3f} | {row['pck@0.2']:.3f} | "
                  f"{row['pixel_error']:.2f} | {seconds:.0f} |", flush=True)
        if kind == "heatmap" and model.n_steps > 1:
            located = pictorial_structures_decode(model, test, fit_springs(train.keypoints, model.stride))
            print(f"| {name} + pictorial structures | {model.n_steps} | "
                  f"{pck(located, test.keypoints, test.visible, 0.1):.3f} | "
                  f"{pck(located, test.keypoints, test.visible, 0.2):.3f} | "
                  f"{pixel_error(located, test.keypoints, test.visible):.2f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
