"""SFV benchmark: per-frame SMPLify vs the temporal fit of a filmed held-out clip, and the recovered Motion in the
physics humanoid.

    python benchmarks/bench_sfv.py                       # cmu_walk, 90 frames at 30 fps, 64 x 64
    python benchmarks/bench_sfv.py --frames 120 --sizes 64 128 --seed 1

The clip (``cmu_walk``, a test clip: neither the pose prior nor the 2D network saw it) is filmed by one static camera
60 degrees off its start heading, 10 degrees above (:func:`vision3d.body.video_fitting.render_motion_video`).
Keypoints: the exact projections + 1 px Gaussian noise, and, if it is shipped, the 2D network's predictions on the
rendered frames. Rows: per-frame fit (:func:`~vision3d.body.video_fitting.per_frame_fit`, the temporal fit's
initialisation, from the learned fitter's start) and temporal fit (:func:`~vision3d.body.video_fitting.fit_sequence`).
Columns: MPJPE and PA-MPJPE (mm, camera frame), acceleration error (mm/frame^2; root-relative, and of the joints as
placed, which includes depth jitter), seconds, and the humanoid's kinematic replay of the recovered Motion (aligned to
the clip by a turn about z and a shift) against the true clip in ``mpenv/HumanoidMimic-v0``: root-relative and global
MPJPE, mm.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vision3d.body.clips import load_clip
from vision3d.body.fitting import mpjpe, pa_mpjpe
from vision3d.body.model import BodyModel
from vision3d.body.sfv import align_motion, humanoid_replay, network_keypoints
from vision3d.body.video_fitting import (
    SequenceConfig,
    acceleration_error,
    fit_sequence,
    per_frame_fit,
    per_frame_sequence,
    render_motion_video,
    sequence_to_motion,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", default="cmu_walk")
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-humanoid", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = BodyModel.default()
    clip = load_clip(args.clip).resample(30.0).clip(start_frame=0, end_frame=args.frames)
    config = SequenceConfig()
    print(f"| {args.clip}, {args.frames} frames | keypoints | fit | MPJPE mm | PA-MPJPE mm | accel mm/f^2 | "
          "accel (placed) | seconds | humanoid MPJPE mm | humanoid global mm |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for size in args.sizes:
        video = render_motion_video(clip, model, yaw_degrees=60, image_size=size, seed=args.seed)
        truth = video.people.joints3d.float()
        sources = {"exact + 1 px": video.keypoints + torch.from_numpy(
            np.random.default_rng(args.seed).normal(0.0, size / 64, video.keypoints.shape))}  # 1 px at 64 x 64
        try:
            from vision3d.body.sfv import to_network_input

            images, scale = to_network_input(video.images.numpy())
            sources["2D network"] = network_keypoints(images) / scale
        except ValueError as err:
            print(f"(no 2D network rows: {err})")
        for source, keypoints in sources.items():
            start = time.perf_counter()
            fit = fit_sequence(model, keypoints.float(), None, video.camera, config)
            total = time.perf_counter() - start
            # The per-frame baseline's own time: the same initial fit again, alone (the temporal time includes it).
            start = time.perf_counter()
            k = config.reference_focal / video.camera.focal[0]
            scaled = type(video.camera)(video.camera.focal[0] * k, tuple(k * c for c in video.camera.principal_point))
            per_frame_fit(model, k * keypoints.float(), torch.ones(keypoints.shape[:2]), scaled, config)
            init_seconds = time.perf_counter() - start
            for name, result, seconds in (("per-frame", per_frame_sequence(fit.per_frame), init_seconds),
                                          ("temporal", fit, total)):  # fmt: skip
                joints = result.joints3d.float()
                row = [1e3 * mpjpe(joints, truth).mean(), 1e3 * pa_mpjpe(joints, truth).mean(),
                       1e3 * acceleration_error(joints, truth), 1e3 * acceleration_error(joints, truth, False)]
                replay = "-", "-"
                if not args.no_humanoid:
                    motion = align_motion(sequence_to_motion(result, 30.0, name, model), clip)
                    r = humanoid_replay(motion, clip)
                    replay = f"{1e3 * r['mpjpe']:.0f}", f"{1e3 * r['mpjpe_global']:.0f}"
                print(f"| {size} px | {source} | {name} | " + " | ".join(f"{float(v):.1f}" for v in row)
                      + f" | {seconds:.1f} | {replay[0]} | {replay[1]} |")  # fmt: skip


if __name__ == "__main__":
    main()
