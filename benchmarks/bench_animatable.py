"""The animatable implicit body (SNARF-style): training and root-finding speed, and Chamfer on unseen poses.

    python benchmarks/bench_animatable.py --frames 2 --samples 20000

Speed: Adam steps per second of :func:`vision3d.body.animatable.train` (8 poses x 256 posed points per step, the
CLI's default batch, fresh fields) and posed occupancy queries per second (root finding from ``K`` bone starts,
Broyden, with and without the implicit-gradient graph), both on one thread. Quality: the shipped (or ``--weights``)
fields' canonical mesh (marching cubes at ``--resolution``) posed with the learned weights, with rigid nearest-bone
weights, not posed, with the model's true weights at the nearest rest vertex (a reference, not a method), and a second
sample set of the true mesh (the floor: what the samples can resolve), against
the true posed mesh: Chamfer-L1 (mm, ONet's mean of both directions) and F-score at 1 cm over ``--frames`` frames of
each clip, on the unseen TEST_CLIPS and on the training clips. Printed as markdown.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from vision3d.body.animatable import (
    AnimatableBody,
    default_animatable_path,
    evaluate,
    load_animatable,
    markdown_table,
    posed_samples,
    selected_poses,
    train,
)
from vision3d.body.model import BodyModel
from vision3d.body.synthetic import TEST_CLIPS, TRAIN_CLIPS


def training_speed(model: BodyModel, steps: int) -> float:
    """Steps per second of fresh fields on 8 training poses (the CLI's batch: 8 poses x 256 points)."""
    data = posed_samples(model, selected_poses(TRAIN_CLIPS, 2, mirrors=False), 1024, seed=0)
    body = AnimatableBody.for_model(model)
    train(body, data, 2)  # warm-up
    start = time.perf_counter()
    train(body, data, steps)
    return steps / (time.perf_counter() - start)


def query_speed(body: AnimatableBody, model: BodyModel, n: int) -> tuple[float, float, float]:
    """(queries/s without grad, queries/s with the implicit-gradient graph and backward, fraction with a root)."""
    data = posed_samples(model, selected_poses(TEST_CLIPS, 1, mirrors=False), n, seed=1)
    x_p, transforms = data.points[0], data.transforms[0]
    start = time.perf_counter()
    with torch.no_grad():
        body.posed_logits(x_p, transforms)
    plain = n / (time.perf_counter() - start)
    start = time.perf_counter()
    body.posed_logits(x_p, transforms).sum().backward()
    with_grad = n / (time.perf_counter() - start)
    _, valid = body.correspondences(x_p, transforms)
    return plain, with_grad, float(valid.any(dim=1).float().mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=default_animatable_path(), help="fields directory")
    parser.add_argument("--frames", type=int, default=2, help="frames per clip (no mirrors) in the Chamfer table")
    parser.add_argument("--resolution", type=int, default=128, help="marching-cubes grid of the canonical mesh")
    parser.add_argument("--samples", type=int, default=20_000, help="surface samples per mesh for Chamfer")
    parser.add_argument("--train-steps", type=int, default=20, help="steps timed for the training speed")
    parser.add_argument("--queries", type=int, default=4096, help="posed points timed for the query speed")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = BodyModel.default(device="cpu")
    body = load_animatable(args.weights, model)
    wall = time.time()

    steps_per_s = training_speed(model, args.train_steps)
    plain, with_grad, found = query_speed(body, model, args.queries)
    print(f"training: {steps_per_s:.2f} steps/s (8 poses x 256 points per step, {args.threads} thread(s))")
    print(f"posed occupancy queries: {plain:,.0f}/s without grad, {with_grad:,.0f}/s with the implicit gradient "
          f"and backward; {100 * found:.1f}% of the points have a kept root ({body.config.candidates} starts)\n")

    results = {
        f"unseen: {', '.join(TEST_CLIPS)} ({args.frames * len(TEST_CLIPS)} poses)":
            evaluate(body, model, selected_poses(TEST_CLIPS, args.frames, mirrors=False), args.resolution,
                     args.samples, floor=True),
        f"training clips ({args.frames * len(TRAIN_CLIPS)} poses)":
            evaluate(body, model, selected_poses(TRAIN_CLIPS, args.frames, mirrors=False), args.resolution,
                     args.samples, floor=True),
    }  # fmt: skip
    print(markdown_table(results))
    print(f"\n{args.resolution}^3 marching cubes, {args.samples} surface samples per mesh, {time.time() - wall:.0f} s "
          f"wall")


if __name__ == "__main__":
    main()
