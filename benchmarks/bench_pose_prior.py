"""Fitting 2D keypoints with the hand-set diagonal Gaussian pose prior vs the Gaussian mixture learned from mocap.

    python benchmarks/bench_pose_prior.py --samples 48 --seed 0

Both priors fit the same scenes in one run: synthetic people (:mod:`vision3d.body.synthetic`) posed like frames of
the held-out clips (``TEST_CLIPS``: motion the mixture never saw) and of the training clips (``TRAIN_CLIPS``, what
it was fitted on), both with their mirrors; cameras within +-35 degrees of the front and -5..10 degrees of
elevation, random shapes, keypoints + N(0, 1 px) noise, all confidences 1. A third row per split fits with the
mixture from the learned fitter's estimate (``learned_start_fit``: its 6 steps, then the body stage, 500 iterations
in all) instead of from the 16 depth hypotheses. Prints a markdown table of the median
and 90th-percentile PA-MPJPE (cm) and the mean reprojection error (px), and the CPU seconds it took.
"""

from __future__ import annotations

import argparse
import time

import torch

from vision3d.body.pose_prior import compare_priors, markdown_table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=48, help="scenes per split (test clips, train clips)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scenes and of the keypoint noise")
    parser.add_argument("--body-iterations", type=int, default=400, help="Adam iterations of the body stage")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--image-size", type=int, default=512, help="square image, pixels (the noise is 1 px)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.process_time()
    rows = compare_priors(args.samples, args.seed, iterations=(100, args.body_iterations), image_size=args.image_size)
    print(markdown_table(rows))
    print(f"\n{args.samples} scenes per split, seed {args.seed}, {time.process_time() - start:.0f} s CPU")


if __name__ == "__main__":
    main()
