"""Benchmark of template-based capture (:mod:`vision3d.body.template_capture`): tracking against independent
per-frame fits on point clouds of the held-out clips.

For each clip of ``--clips`` (default: the held-out ``run`` and ``cmu_walk``, at 30 fps) and each seed, one random
shape (betas ~ N(0, 1), clipped to +-2.5) is posed like the clip's first ``--frames`` frames and each frame's mesh
is sampled into a cloud of ``--points`` points (+ ``--noise`` metres of Gaussian noise). Rows:

- tracking: the template fit on frame 0 (8 headings), then pose-only tracking (:func:`track`);
- per-frame: the same template, then every frame fitted on its own from the template's pose with the same number of
  steps and no temporal term (:func:`fit_frames_independently`, all frames as one batch).

Columns: surface Chamfer (mean over frames and worst frame), mean vertex-to-vertex error (mean and worst frame) and
MPJPE, all in mm against the exact posed meshes, and frames per second (tracking's time includes the template fit).

    python benchmarks/bench_template_capture.py                           # 30 frames of run and cmu_walk, seed 0
    python benchmarks/bench_template_capture.py --frames 60 --seeds 0 1 --noise 0.005

Prints one markdown table. torch runs on one thread.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from vision3d.body.model import BodyModel
from vision3d.body.synthetic import TEST_CLIPS
from vision3d.body.template_capture import (
    CaptureConfig,
    capture_errors,
    fit_frames_independently,
    posed_point_clouds,
    report,
    summary_row,
    track,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", nargs="+", default=list(TEST_CLIPS), help="shipped clips (default: held out)")
    parser.add_argument("--frames", type=int, default=30, help="frames per clip, at 30 fps")
    parser.add_argument("--points", type=int, default=2000, help="points per cloud")
    parser.add_argument("--noise", type=float, default=0.0, help="Gaussian noise on the points, metres")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one random shape and cloud set per seed")
    parser.add_argument("--metric-points", type=int, default=2000, help="surface points per Chamfer direction")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = BodyModel.default(dtype=torch.float32, device="cpu")
    rows = []
    for clip in args.clips:
        for seed in args.seeds:
            betas = np.clip(np.random.default_rng(seed).normal(0.0, 1.0, model.num_betas), -2.5, 2.5)
            data = posed_point_clouds(clip, args.frames, betas, args.points, args.noise, seed)
            config = CaptureConfig(seed=seed)
            tracked = track(data.points, model, config, progress=True)
            independent = fit_frames_independently(data.points, model, config, template=tracked.template)
            for result in (tracked, independent):
                errors = capture_errors(result, data, model, args.metric_points, seed)
                rows.append(summary_row(f"{clip}, seed {seed}", result, errors))
            print(report(rows[-2:]), flush=True)
    print()
    print(report(rows))


if __name__ == "__main__":
    main()
