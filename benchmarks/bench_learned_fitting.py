"""Learned gradient descent (Song et al. 2020) vs Adam fitting (SMPLify-style) on the same held-out scenes.

    python benchmarks/bench_learned_fitting.py --samples 48 --seed 0

Scenes: synthetic people (:mod:`vision3d.body.synthetic`) posed like frames of the held-out clips (``TEST_CLIPS``
and their mirrors, motion neither the learned update nor the GMM prior saw), cameras within +-35 degrees of the
front and -5..10 degrees of elevation, 512 x 512 images, random shapes, keypoints + N(0, 1 px) noise, all
confidences 1 -- the protocol of ``benchmarks/bench_pose_prior.py``. Methods: ``fit_to_keypoints`` with
``FitConfig()`` and with ``gmm_fit_config()`` (100 + 400 Adam iterations, 16 depth hypotheses in the body stage),
each again with 1/5 of its iterations (20 + 80, the same schedule compressed), and the shipped learned update
unrolled for its T steps. Prints a markdown table: iterations, wall seconds (one thread), median and 90th-percentile
PA-MPJPE (cm), mean reprojection error (px).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from vision3d.body.learned_fitting import compare, default_learned_path, load_learned_fitter, markdown_table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=48, help="held-out scenes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scenes and of the keypoint noise")
    parser.add_argument("--checkpoint", type=Path, default=default_learned_path(), help="learned update directory")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.time()
    rows = compare(args.samples, args.seed, load_learned_fitter(args.checkpoint))
    print(markdown_table(rows))
    print(f"\n{args.samples} held-out scenes (TEST_CLIPS), seed {args.seed}, {time.time() - start:.0f} s wall")


if __name__ == "__main__":
    main()
