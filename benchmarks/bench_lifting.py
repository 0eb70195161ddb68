"""Benchmark of the 2D -> 3D lift (:mod:`vision3d.body.lifting`, Martinez et al. 2017) and of the body-model fit
that makes its skeletons rigid.

1. Train the lift on ``--samples`` synthetic people of the training clips (cameras all around), time it, save the
   checkpoint to ``--out`` and load it back (same outputs).
2. MPJPE / PA-MPJPE (mm, root-relative) on fresh draws of the training clips (new shapes, cameras, frames) and of
   the held-out test clips (motions never seen in training), next to the chance baseline: always predicting the
   mean training pose.
3. One person (a fixed random shape) in ``--frames`` consecutive frames of the held-out clip ``--clip``, filmed by
   one camera: the lift's bone lengths vary from frame to frame; the body model fitted to the lifted joints with
   one shape (:func:`~vision3d.body.lifting.fit_body_to_joints`) has constant ones. Reported: MPJPE before/after
   the fit, the per-bone standard deviation of the lengths over the frames (mean and worst bone), and the worst
   relative error of a bone length against the truth.

    python benchmarks/bench_lifting.py                        # the paper's widths, 20k samples: minutes on a CPU
    python benchmarks/bench_lifting.py --epochs 30 --samples 4000 --hidden 256 --dropout 0.1   # the test's setup
    python benchmarks/bench_lifting.py --device auto --out runs/lifting

Prints two markdown tables. Everything is seeded (``--seed``); torch runs on ``--threads`` threads.
"""

from __future__ import annotations

import argparse
import time

import torch

from mpenv.device import get_device, seed_everything
from vision3d.body.fitting import mpjpe
from vision3d.body.lifting import (
    TEST_CLIPS,
    TRAIN_CLIPS,
    LiftConfig,
    TrainConfig,
    bone_length_stats,
    bone_lengths,
    clip_sequence,
    evaluate_lifter,
    fit_body_to_joints,
    lift,
    lifting_data,
    load_lifter,
    mean_pose_mpjpe,
    root_relative,
    save_lifter,
    train_lifter,
)
from vision3d.body.model import BodyModel
from vision3d.body.skeleton import JOINT_NAMES


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--samples", type=int, default=20_000, help="training set size (drawn once)")
    parser.add_argument("--eval-samples", type=int, default=2000, help="per evaluation set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/lifting", help="checkpoint directory (lifter.pt + lifter.json)")
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--clip", default="cmu_walk", choices=TEST_CLIPS, help="held-out clip of the sequence")
    parser.add_argument("--frames", type=int, default=120, help="consecutive frames of the sequence")
    parser.add_argument("--fit-iterations", type=int, default=200)
    parser.add_argument("--device", default="cpu", help="where the lift trains: cpu, cuda, auto, ...")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--progress", action="store_true", help="tqdm bar over epochs")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    device = get_device(args.device)
    model = BodyModel.default(dtype=torch.float64, device="cpu")

    train = lifting_data(args.samples, TRAIN_CLIPS, seed=args.seed, model=model)
    train_eval = lifting_data(args.eval_samples, TRAIN_CLIPS, seed=args.seed + 1, model=model)
    test = lifting_data(args.eval_samples, TEST_CLIPS, seed=args.seed + 2, model=model)

    config = LiftConfig(hidden=args.hidden, blocks=args.blocks, dropout=args.dropout)
    train_config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    start = time.perf_counter()
    lifter = train_lifter(train, config, train_config, device=device, progress=args.progress)
    seconds = time.perf_counter() - start
    save_lifter(lifter, args.out)
    reloaded = load_lifter(args.out, device=device)
    if not torch.equal(lift(reloaded, test.keypoints), lift(lifter, test.keypoints)):
        raise RuntimeError(f"the checkpoint in {args.out} does not give the trained lifter's outputs")

    on_train, on_test = evaluate_lifter(lifter, train_eval), evaluate_lifter(lifter, test)
    baseline_train, baseline_test = mean_pose_mpjpe(train, train_eval), mean_pose_mpjpe(train, test)

    # One person, consecutive frames of a held-out clip, one camera.
    betas = torch.randn(1, model.num_betas, generator=torch.Generator().manual_seed(args.seed), dtype=torch.float64)
    sequence = clip_sequence(model, args.clip, slice(0, args.frames), betas=betas.clamp(-2.0, 2.0))
    truth = root_relative(sequence.joints3d)
    lifted = lift(lifter, sequence.keypoints)
    start = time.perf_counter()
    fit = fit_body_to_joints(model, lifted, iterations=args.fit_iterations)
    fit_seconds = time.perf_counter() - start
    true_lengths = bone_lengths(truth[0])
    rows = {}
    for name, joints in (("lift", lifted), ("SMPL fit", root_relative(fit.joints3d))):
        stats = bone_length_stats(joints, true_lengths)
        rows[name] = (
            1000 * mpjpe(joints, truth).mean().item(),
            1000 * stats["std"].mean().item(),
            1000 * stats["std"].max().item(),
            100 * stats["max_relative_error"],
            JOINT_NAMES[stats["worst_bone"]],
        )

    n_params = sum(p.numel() for p in lifter.parameters())
    print(f"\nLift: hidden {args.hidden}, {args.blocks} blocks, dropout {args.dropout}, {n_params:,} parameters; "
          f"{args.samples} training samples, {args.epochs} epochs, batch {args.batch_size}, on {device}: "
          f"{seconds:.1f} s training; checkpoint {args.out}\n")  # fmt: skip
    print(f"| {args.eval_samples} fresh samples | train clips {', '.join(TRAIN_CLIPS)} | "
          f"test clips {', '.join(TEST_CLIPS)} |")  # fmt: skip
    print("|---|---:|---:|")
    print(f"| MPJPE (mm) | {on_train['mpjpe_mm']:.1f} | {on_test['mpjpe_mm']:.1f} |")
    print(f"| PA-MPJPE (mm) | {on_train['pa_mpjpe_mm']:.1f} | {on_test['pa_mpjpe_mm']:.1f} |")
    print(f"| mean training pose, MPJPE (mm) | {baseline_train:.1f} | {baseline_test:.1f} |")
    print(f"| training (s) | {seconds:.1f} | |")
    print(f"\n| {args.clip}, {len(truth)} consecutive frames, one person | lift | SMPL fit, one shape |")
    print("|---|---:|---:|")
    labels = ("MPJPE (mm)", "bone-length std over frames, mean over bones (mm)",
              "bone-length std over frames, worst bone (mm)", "worst relative bone-length error (%)")  # fmt: skip
    formats = ("{:.1f}", "{:.3g}", "{:.3g}", "{:.1f}")  # %g: the fit's std is ~1e-13 mm
    for column, (label, fmt) in enumerate(zip(labels, formats, strict=True)):
        cells = [fmt.format(rows[name][column]) for name in rows]
        if column == 3:
            cells = [f"{cell} ({rows[name][4]})" for cell, name in zip(cells, rows, strict=True)]
        print(f"| {label} | {' | '.join(cells)} |")
    print(f"| fit time (s) | | {fit_seconds:.1f} |")


if __name__ == "__main__":
    main()
