"""Throughput of the body chapter's learned pipeline on this CPU: 2D pose images/s, fitting frames/s, SFV seconds
per second of video.

    python benchmarks/bench_pose.py                       # one thread, 5 alternating rounds, median
    python benchmarks/bench_pose.py --threads 2 --rounds 3 --images 256 --scenes 16

Three tables, each measured in one run with the rows timed in alternating rounds (the median is printed):

- **2D pose**: images per second of every 2D model on the same held-out 64x64 images (batches of 64): the shipped
  3-stage heatmap network, a 1-stage heatmap network and direct regression / iterative error feedback at the
  widths ``bench_pose2d.py`` trains (throughput does not depend on the weights), and pictorial-structures decoding
  on the shipped network's maps (its dynamic program runs per image).
- **Fitting**: scenes per second of SMPLify-style Adam fitting (500 iterations, the diagonal Gaussian and the learned
  mixture prior) against learned gradient descent (6 steps of the shipped update network), the same batch of
  held-out scenes under the pose-prior protocol (``bench_learned_fitting.py`` measures their accuracy).
- **SFV**: wall seconds per second of 30 fps video for each stage of ``python -m vision3d.body.sfv`` on a rendered
  held-out clip: 2D keypoints by the shipped network, the temporal fit (per-frame fits included), the Motion.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from mpenv.tables import markdown_table
from vision3d.body.clips import load_clip
from vision3d.body.fitting import FitConfig, fit_to_keypoints
from vision3d.body.learned_fitting import default_learned_fitter, learned_fit, protocol_people
from vision3d.body.model import BodyModel
from vision3d.body.pose2d import build_model, default_pose_model, fit_springs, pictorial_structures_decode, pose_set
from vision3d.body.pose_prior import gmm_fit_config
from vision3d.body.sfv import network_keypoints, to_network_input
from vision3d.body.synthetic import TEST_CLIPS, TRAIN_CLIPS
from vision3d.body.video_fitting import SequenceConfig, fit_sequence, render_motion_video, sequence_to_motion

FPS = 30.0


def median_seconds(tasks: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Each task timed once per round, the tasks alternating within a round; the median over rounds."""
    times: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(rounds):
        for name, task in tasks.items():
            start = time.perf_counter()
            task()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def pose2d_rows(n_images: int, rounds: int, seed: int) -> list[dict]:
    data = pose_set(n_images, TEST_CLIPS, seed=seed)
    springs_data = pose_set(256, TRAIN_CLIPS, seed=seed + 1)
    shipped = default_pose_model()
    springs = fit_springs(springs_data.keypoints, shipped.stride)
    models = {
        "heatmaps, 3 stages (shipped)": shipped,
        "heatmaps, 1 stage": build_model("heatmap", stages=1, width=32).eval(),
        "direct regression": build_model("regression", steps=1, width=32).eval(),
        "iterative error feedback, 3 steps": build_model("regression", steps=3, width=32).eval(),
    }

    def predict(model: torch.nn.Module) -> Callable[[], object]:
        def run() -> None:
            with torch.no_grad():
                for start in range(0, n_images, 64):
                    model.predict(data.inputs(slice(start, start + 64)), None)
        return run

    def decode() -> None:
        with torch.no_grad():
            pictorial_structures_decode(shipped, data, springs)

    tasks = {name: predict(model) for name, model in models.items()}
    tasks["shipped + pictorial structures"] = decode
    seconds = median_seconds(tasks, rounds)
    return [{"model": name, "per_s": n_images / s, "ms": 1e3 * s / n_images} for name, s in seconds.items()]


def fitting_rows(n_scenes: int, rounds: int, seed: int) -> list[dict]:
    model = BodyModel.default(dtype=torch.float64, device="cpu")
    people, keypoints, confidences = protocol_people(n_scenes, TEST_CLIPS, seed, model)
    network = default_learned_fitter().double()
    fits = {
        "Adam, diagonal Gaussian prior (500 it.)": (500, lambda: fit_to_keypoints(
            model, keypoints, confidences, people.camera, FitConfig())),
        "Adam, learned mixture prior (500 it.)": (500, lambda: fit_to_keypoints(
            model, keypoints, confidences, people.camera, gmm_fit_config())),
        f"learned gradient descent ({network.config.steps} steps)": (network.config.steps, lambda: learned_fit(
            model, keypoints, confidences, people.camera, network)),
    }
    seconds = median_seconds({name: task for name, (_, task) in fits.items()}, rounds)
    base = seconds[next(iter(fits))]
    return [{"fit": name, "iterations": fits[name][0], "per_s": n_scenes / s, "s_each": s / n_scenes,
             "speedup": base / s} for name, s in seconds.items()]


def sfv_rows(n_frames: int, seed: int) -> list[dict]:
    model = BodyModel.default()
    clip = load_clip("cmu_walk").resample(FPS).clip(start_frame=0, end_frame=n_frames)
    video = render_motion_video(clip, model, yaw_degrees=60, image_size=64, seed=seed)
    frames = video.images.numpy()
    stages: dict[str, float] = {}
    start = time.perf_counter()
    images, scale = to_network_input(frames)
    keypoints = network_keypoints(images) / scale
    stages["2D keypoints (shipped network)"] = time.perf_counter() - start
    start = time.perf_counter()
    fit = fit_sequence(model, keypoints.float(), None, video.camera, SequenceConfig())
    stages["temporal fit (per-frame fits included)"] = time.perf_counter() - start
    start = time.perf_counter()
    sequence_to_motion(fit, FPS, name="bench", model=model)
    stages["to a Motion"] = time.perf_counter() - start
    stages["total"] = sum(stages.values())
    video_seconds = n_frames / FPS
    return [{"stage": name, "seconds": s, "ratio": s / video_seconds} for name, s in stages.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per table (median reported)")
    parser.add_argument("--images", type=int, default=256, help="held-out 64x64 images per 2D model and round")
    parser.add_argument("--scenes", type=int, default=16, help="held-out scenes fitted per fit and round")
    parser.add_argument("--frames", type=int, default=30, help="video frames for the SFV table (30 fps)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], choices=["pose2d", "fitting", "sfv"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.threads} thread(s), median of {args.rounds} alternating rounds")
    if "pose2d" not in args.skip:
        print(f"\n{args.images} held-out images, batches of 64\n")
        print(markdown_table(pose2d_rows(args.images, args.rounds, args.seed),
                             {"2D model": "{model}", "images/s": "{per_s:.0f}", "ms/image": "{ms:.2f}"}))
    if "fitting" not in args.skip:
        print(f"\n{args.scenes} held-out scenes, one batch, float64\n")
        print(markdown_table(fitting_rows(args.scenes, args.rounds, args.seed),
                             {"fit": "{fit}", "iterations": "{iterations}", "scenes/s": "{per_s:.2f}",
                              "s/scene": "{s_each:.3f}", "speed-up vs the first": "{speedup:.0f}x"}))
    if "sfv" not in args.skip:
        print(f"\ncmu_walk, {args.frames} frames at 30 fps rendered at 64x64, one run\n")
        print(markdown_table(sfv_rows(args.frames, args.seed),
                             {"SFV stage": "{stage}", "seconds": "{seconds:.1f}", "s per s of video": "{ratio:.1f}"}))


if __name__ == "__main__":
    main()
