"""NeRF on this machine: time-to-PSNR of the three encodings, rendering speed, and empty-space skipping.

    python benchmarks/bench_nerf.py                       # blocks scene, 64x64, 40 views, all parts
    python benchmarks/bench_nerf.py --parts curves --steps 2000 --hash-steps 4000 --rounds 3
    python benchmarks/bench_nerf.py --parts sparse --rounds 3   # 4 views, with and without each sparse-view prior
    python benchmarks/bench_nerf.py --parts sparse --resolution 32 --steps 1500 --rounds 3 --priors none color

Parts:

- ``curves``: the positional-encoding NeRF, the Fourier-feature NeRF and the hash-grid NeRF trained on the same
  views, alternating in rounds; held-out PSNR against *training* wall time (evaluation excluded). Prints the time
  to 20 and 25 dB and the final PSNR per model (median over rounds) and the hash grid's speed-up.
- ``render``: rays per second of a trained field's full render, with and without the occupancy grid.
- ``sparse``: held-out PSNR from 4 training views, unregularized against each sparse-view prior alone: RegNeRF's
  depth smoothness and sample-space annealing, FreeNeRF's frequency annealing, mip-NeRF 360's distortion loss and
  the colour-consistency prior (``--priors`` picks some; seeds alternate between them).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vision3d.nerf.train import preset, render_image, train_nerf
from vision3d.scenes.library import scene_views


def time_to(history: list[dict], level: float) -> float:
    """Training seconds at the first evaluation at or above ``level`` dB (``inf`` if never)."""
    return next((h["train_seconds"] for h in history if h["psnr"] >= level), float("inf"))


def curves(args: argparse.Namespace, train, test) -> dict:
    models = ("nerf", "fourier-nerf", "hash-nerf")
    results: dict[str, list[list[dict]]] = {m: [] for m in models}
    for round_ in range(args.rounds):
        for model in models if round_ % 2 == 0 else reversed(models):
            steps = args.hash_steps if model == "hash-nerf" else args.steps
            config = preset(model, steps=steps, eval_every=args.eval_every, seed=round_)
            history = train_nerf(train, test, config, device=args.device, progress=True).history
            results[model].append(history)
            print(f"round {round_} {model}: " + ", ".join(f"{h['train_seconds']:.0f}s {h['psnr']:.1f}dB"
                                                       for h in history), flush=True)
    print(f"\n{'model':14s} {'to 20 dB':>9s} {'to 25 dB':>9s} {'final PSNR':>11s} {'final SSIM':>11s}  "
          f"(median of {args.rounds} round{'s' if args.rounds > 1 else ''}, training seconds)")
    summary = {}
    for model, runs in results.items():
        t20 = statistics.median(time_to(h, 20.0) for h in runs)
        t25 = statistics.median(time_to(h, 25.0) for h in runs)
        final = statistics.median(h[-1]["psnr"] for h in runs)
        final_ssim = statistics.median(h[-1]["ssim"] for h in runs)
        summary[model] = (t20, t25, final)
        print(f"{model:14s} {t20:9.1f} {t25:9.1f} {final:11.2f} {final_ssim:11.3f}")
    print(f"hash grid reaches 20 dB {summary['nerf'][0] / summary['hash-nerf'][0]:.1f}x sooner than the positional "
          f"encoding, 25 dB {summary['nerf'][1] / summary['hash-nerf'][1]:.1f}x sooner")
    seconds = {m: statistics.median(h[-1]["train_seconds"] for h in runs) for m, runs in results.items()}
    print(f"final: hash grid {summary['hash-nerf'][2]:.2f} dB after {seconds['hash-nerf']:.0f} s of training, "
          f"positional encoding {summary['nerf'][2]:.2f} dB after {seconds['nerf']:.0f} s")
    return summary


def render_speed(args: argparse.Namespace, train, test) -> None:
    steps = min(args.hash_steps, 600)  # enough for the grid to settle; the speed is what is measured
    run = train_nerf(train, test, preset("hash-nerf", steps=steps, eval_every=steps), device=args.device)
    background = torch.ones(3, device=next(run.field.parameters()).device)
    camera = test.cameras[0]
    timings = {"with occupancy grid": [], "without": []}
    for _ in range(args.rounds * 2 + 1):
        for label, grid in (("with occupancy grid", run.grid), ("without", None)):
            began = time.perf_counter()
            render_image(run.field, camera, run.config, background, grid=grid)
            timings[label].append(time.perf_counter() - began)
    rays = camera.width * camera.height
    for label, values in timings.items():
        print(f"hash-grid render {label:20s}: {rays / statistics.median(values):9.0f} rays/s")
    speedup = statistics.median(timings["without"]) / statistics.median(timings["with occupancy grid"])
    print(f"empty-space skipping: {speedup:.1f}x faster, occupied fraction {run.grid.occupied_fraction:.3f}")


SPARSE_PRIORS = ("none", "depth", "sample", "frequency", "distortion", "color")


def sparse(args: argparse.Namespace) -> None:
    train, test = scene_views(args.scene, 4, 8, args.resolution, seed=0)
    priors = {
        "none": ("none", {}),
        "depth": (f"depth smoothness {args.depth_smoothness:g}", {"depth_smoothness": args.depth_smoothness}),
        "sample": ("sample annealing", {"sample_annealing": args.steps // 4}),
        "frequency": ("frequency annealing", {"frequency_annealing": int(0.8 * args.steps)}),
        "distortion": (f"distortion {args.distortion:g}", {"distortion": args.distortion}),
        "color": (f"colour consistency {args.color_consistency:g}", {"color_consistency": args.color_consistency}),
    }
    psnrs: dict[str, list[float]] = {key: [] for key in args.priors}
    for seed in range(args.rounds):
        for key in args.priors if seed % 2 == 0 else reversed(args.priors):
            run = train_nerf(train, test, preset("nerf", steps=args.steps, eval_every=args.steps, seed=seed,
                                                 **priors[key][1]), device=args.device)
            psnrs[key].append(run.history[-1]["psnr"])
            print(f"seed {seed} {priors[key][0]}: {psnrs[key][-1]:.2f} dB", flush=True)
    for key, values in psnrs.items():
        print(f"4 views, {priors[key][0]:24s}: held-out PSNR {statistics.median(values):.2f} dB "
              f"(seeds {', '.join(f'{p:.2f}' for p in values)})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scene", default="blocks")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--views", type=int, default=40)
    parser.add_argument("--steps", type=int, default=1200, help="steps of the positional and Fourier NeRFs")
    parser.add_argument("--hash-steps", type=int, default=3000, help="steps of the hash-grid NeRF")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu (the figures in the README), cuda, auto, ...")
    parser.add_argument("--depth-smoothness", type=float, default=0.1)
    parser.add_argument("--distortion", type=float, default=0.01)
    parser.add_argument("--color-consistency", type=float, default=0.1)
    parser.add_argument("--priors", nargs="+", default=list(SPARSE_PRIORS), choices=SPARSE_PRIORS,
                        help="the sparse part's priors")
    parser.add_argument("--parts", nargs="+", default=["curves", "render", "sparse"],
                        choices=["curves", "render", "sparse"])
    args = parser.parse_args()
    if {"curves", "render"} & set(args.parts):
        train, test = scene_views(args.scene, args.views, 4, args.resolution, seed=0)
        print(f"scene {args.scene}, {args.views} training views, 4 held-out views, "
              f"{args.resolution}x{args.resolution}, {torch.get_num_threads()} threads")
        if "curves" in args.parts:
            curves(args, train, test)
        if "render" in args.parts:
            render_speed(args, train, test)
    if "sparse" in args.parts:
        print(f"scene {args.scene}, 4 training views, 8 held-out views, {args.resolution}x{args.resolution}, "
              f"{args.steps} steps, {torch.get_num_threads()} threads")
        sparse(args)


if __name__ == "__main__":
    main()
