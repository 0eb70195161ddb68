"""3D Gaussian splatting in vectorized torch on this machine: render speed against a per-pixel reference, and
time-to-PSNR against NeRF on the same views.

    python benchmarks/bench_splatting.py                        # 10k and 50k Gaussians at 128x128 and 256x256
    python benchmarks/bench_splatting.py --parts speed --rounds 3 --threads 1
    python benchmarks/bench_splatting.py --parts curves --rounds 2   # Gaussians against the two NeRFs
    python benchmarks/bench_splatting.py --gaussians 200000 --resolutions 256 --device cuda

Part ``speed``, per (number of Gaussians, resolution, tile size):

- ``rasterize``: :func:`~vision3d.splatting.rasterizer.rasterize` on precomputed projections (RGB, as training
  renders), forward only and forward + backward of ``image.sum() + alpha.sum()``;
- ``render``: :func:`~vision3d.splatting.render.render_gaussians` (covariances, projection, SH colour of degree 3,
  rasterization of RGB + depth), forward only and forward + backward with respect to every Gaussian parameter;
- ``per-pixel``: the same rasterization as the course states it, one pixel at a time over every Gaussian sorted by
  depth (each pixel vectorized over the Gaussians: no tiles, no culling), forward and forward + backward. A whole
  image would take minutes, so it is timed on ``--reference-pixels`` pixels spread over the image and scaled to the
  image's pixel count (its cost is linear in the pixels: each pixel does the same work). The tiled renderer's
  speed-up over it is printed (the issue's goal: at least 50x).

Part ``curves``: 3D Gaussians (``--splat-steps``; from random Gaussians in the scene cube, and from points on the
scene's exact surface, the stand-in for the paper's SfM points), the positional-encoding NeRF and the hash-grid NeRF
trained on the same views of ``--scene`` (the NeRF benchmark's: 40 views at 64x64, 8 held-out), alternating in
rounds; held-out PSNR against training wall time (evaluations excluded): time to 20 and 25 dB, final PSNR and SSIM,
median over rounds.

The scene: Gaussians uniform in the box ``[-1, 1]^3`` with 3DGS's initial scales (mean distance to the 3 nearest
neighbours) times ``--shrink`` and random SH coefficients, seen by an orbit camera 3.5 units away with a 35 degree
field of view. At 128x128 the unshrunk initial scales give median radii of 13 px (10k) and 8 px (50k); trained scenes
have smaller Gaussians, so by default they are halved, which leaves footprints a few pixels wide (the median radius
is printed). Opacities are uniform in ``[0.05, 0.95]``, as after some training.

Each speed configuration runs once as warm-up, then the timings alternate between configurations in rounds, so slow
drift of the machine hits all of them alike; the median over rounds is printed, in milliseconds. Nothing is written
to disk.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import torch

from vision3d.scenes.cameras import Camera, orbit_cameras
from vision3d.splatting.gaussians import Gaussians, random_gaussians_in_box
from vision3d.splatting.projection import project_gaussians
from vision3d.splatting.rasterizer import ALPHA_MAX, ALPHA_MIN, footprint_bounds, rasterize
from vision3d.splatting.render import render_gaussians, view_directions
from vision3d.splatting.sh import sh_to_rgb


def make_scene(n: int, resolution: int, device: str, shrink: float, seed: int = 0) -> tuple[Gaussians, Camera]:
    """``n`` Gaussians in ``[-1, 1]^3`` with random colours and opacities, and one orbit camera looking at them."""
    generator = torch.Generator().manual_seed(seed)
    gaussians = random_gaussians_in_box(n, -1.0, 1.0, sh_degree=3, generator=generator)
    gaussians.log_scales += math.log(shrink)
    gaussians.sh[:, 1:] = 0.1 * torch.randn(gaussians.sh[:, 1:].shape, generator=generator)
    opacities = 0.05 + 0.9 * torch.rand(n, generator=generator)
    gaussians.opacity_logits = torch.logit(opacities)
    camera = orbit_cameras(1, width=resolution, height=resolution)[0]
    return gaussians.to(device), camera


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(function: Callable[[], None], device: str) -> float:
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - start


def rasterizer_cases(gaussians: Gaussians, camera: Camera, tile_size: int) -> dict[str, Callable[[], None]]:
    """Forward and forward + backward of the rasterizer alone, on a projection computed once here."""
    with torch.no_grad():
        projected = project_gaussians(gaussians.means, gaussians.covariances(), camera)
        colors = sh_to_rgb(gaussians.sh, view_directions(gaussians.means, camera))
    inputs = [projected.means2d, projected.conics, gaussians.opacities, colors]

    def forward(requires_grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
        leaves = [tensor.detach().requires_grad_(requires_grad) for tensor in inputs]
        return rasterize(*leaves, projected.depths, projected.radii, camera.width, camera.height, tile_size=tile_size)

    def forward_only() -> None:
        with torch.no_grad():
            forward(False)

    def forward_backward() -> None:
        image, alpha = forward(True)
        (image.sum() + alpha.sum()).backward()

    return {"rasterize fwd": forward_only, "rasterize fwd+bwd": forward_backward}


def render_cases(gaussians: Gaussians, camera: Camera, tile_size: int) -> dict[str, Callable[[], None]]:
    """Forward and forward + backward of the whole render, gradients to every Gaussian parameter."""
    trainable = Gaussians(**{name: t.detach().clone() for name, t in gaussians.parameters().items()}).requires_grad_()

    def forward_only() -> None:
        with torch.no_grad():
            render_gaussians(gaussians, camera, tile_size=tile_size)

    def forward_backward() -> None:
        out = render_gaussians(trainable, camera, tile_size=tile_size)
        (out.image.sum() + out.alpha.sum()).backward()

    return {"render fwd": forward_only, "render fwd+bwd": forward_backward}


def per_pixel_rasterize(means2d, conics, opacities, colors, depths, radii, pixels: torch.Tensor, width: int,
                        height: int) -> torch.Tensor:
    """The colours of ``pixels [P, 2]`` (column, row), one pixel at a time over all Gaussians front to back."""
    order = torch.argsort(depths, stable=True)
    means2d, conics, opacities, colors, radii = means2d[order], conics[order], opacities[order], colors[order], \
        radii[order]
    x_min, x_max, y_min, y_max = footprint_bounds(means2d.detach(), radii, width, height).unbind(-1)
    out = []
    for x, y in pixels.tolist():
        d = torch.tensor([x + 0.5, y + 0.5], dtype=means2d.dtype) - means2d
        a, b, c = conics.unbind(-1)
        power = -0.5 * (a * d[:, 0] ** 2 + 2 * b * d[:, 0] * d[:, 1] + c * d[:, 1] ** 2)
        alpha = (opacities * torch.exp(power)).clamp(max=ALPHA_MAX)
        inside = (x >= x_min) & (x <= x_max) & (y >= y_min) & (y <= y_max) & (radii > 0) & (power <= 0)
        alpha = torch.where(inside & (alpha >= ALPHA_MIN), alpha, 0.0)
        transmittance = torch.cumprod(torch.cat([alpha.new_ones(1), 1 - alpha[:-1]]), 0)
        out.append((transmittance * alpha) @ colors)
    return torch.stack(out)


def reference_cases(gaussians: Gaussians, camera: Camera, n_pixels: int) -> dict[str, Callable[[], None]]:
    """The per-pixel reference on ``n_pixels`` pixels spread evenly over the image, forward and forward + backward."""
    with torch.no_grad():
        projected = project_gaussians(gaussians.means, gaussians.covariances(), camera)
        colors = sh_to_rgb(gaussians.sh, view_directions(gaussians.means, camera))
    inputs = [projected.means2d, projected.conics, gaussians.opacities, colors]
    index = torch.linspace(0, camera.width * camera.height - 1, n_pixels).long()
    pixels = torch.stack([index % camera.width, index // camera.width], -1)

    def forward(requires_grad: bool) -> torch.Tensor:
        means2d, conics, opacities, colors_ = (t.detach().requires_grad_(requires_grad) for t in inputs)
        return per_pixel_rasterize(means2d, conics, opacities, colors_, projected.depths, projected.radii, pixels,
                                   camera.width, camera.height)

    def forward_only() -> None:
        with torch.no_grad():
            forward(False)

    def forward_backward() -> None:
        forward(True).sum().backward()

    return {"per-pixel fwd": forward_only, "per-pixel fwd+bwd": forward_backward}


def speed(args: argparse.Namespace) -> None:
    print(f"device {args.device}, {torch.get_num_threads()} threads, shrink {args.shrink}, median of {args.rounds} "
          f"rounds, milliseconds per image (per-pixel: {args.reference_pixels} pixels timed, scaled to the image)")
    cases: dict[tuple[int, int, int, str], Callable[[], None]] = {}
    scale: dict[tuple[int, int, int, str], float] = {}
    for n in args.gaussians:
        for resolution in args.resolutions:
            gaussians, camera = make_scene(n, resolution, args.device, args.shrink)
            with torch.no_grad():
                projected = project_gaussians(gaussians.means, gaussians.covariances(), camera)
            radii = projected.radii[projected.visible].float()
            print(f"{n} Gaussians at {resolution}x{resolution}: {int(projected.visible.sum())} visible, median radius "
                  f"{radii.median().item():.0f} px (quartiles {radii.quantile(0.25).item():.0f}-"
                  f"{radii.quantile(0.75).item():.0f})")
            for tile_size in args.tile_sizes:
                for name, case in {**rasterizer_cases(gaussians, camera, tile_size),
                                   **render_cases(gaussians, camera, tile_size)}.items():
                    cases[n, resolution, tile_size, name] = case
            for name, case in reference_cases(gaussians, camera, args.reference_pixels).items():
                cases[n, resolution, 0, name] = case
                scale[n, resolution, 0, name] = resolution * resolution / args.reference_pixels

    for case in cases.values():  # warm-up: allocator, thread pool, lazy initialisation
        case()
    times: dict[tuple[int, int, int, str], list[float]] = {key: [] for key in cases}
    for _ in range(args.rounds):
        for key, case in cases.items():
            times[key].append(timed(case, args.device) * scale.get(key, 1.0))
    median = {key: 1e3 * statistics.median(values) for key, values in times.items()}

    names = ["rasterize fwd", "rasterize fwd+bwd", "render fwd", "render fwd+bwd"]
    print(f"\n{'Gaussians':>9} {'size':>5} {'tile':>4}" + "".join(f" {name:>18}" for name in names))
    for n in args.gaussians:
        for resolution in args.resolutions:
            for tile_size in args.tile_sizes:
                row = "".join(f" {median[n, resolution, tile_size, name]:18.1f}" for name in names)
                print(f"{n:>9} {resolution:>5} {tile_size:>4}{row}")
    print(f"\n{'Gaussians':>9} {'size':>5} {'per-pixel fwd':>14} {'fwd+bwd':>10}  speed-up of the tiled rasterizer "
          f"(tile {args.tile_sizes[0]}): fwd, fwd+bwd")
    for n in args.gaussians:
        for resolution in args.resolutions:
            forward, backward = median[n, resolution, 0, "per-pixel fwd"], median[n, resolution, 0, "per-pixel fwd+bwd"]
            tiled = args.tile_sizes[0]
            print(f"{n:>9} {resolution:>5} {forward:14.0f} {backward:10.0f}  "
                  f"{forward / median[n, resolution, tiled, 'rasterize fwd']:.0f}x, "
                  f"{backward / median[n, resolution, tiled, 'rasterize fwd+bwd']:.0f}x")


def curves(args: argparse.Namespace) -> None:
    """Gaussians against the positional-encoding and hash-grid NeRFs on the same views, alternating in rounds."""
    from bench_nerf import time_to

    from vision3d.nerf.train import preset, train_nerf
    from vision3d.scenes.library import scene_views
    from vision3d.splatting.train import config_for_steps, surface_gaussians, train_gaussians

    train, test = scene_views(args.scene, args.views, 8, args.curve_resolution, seed=0)
    models = args.models
    results: dict[str, list[list[dict]]] = {m: [] for m in models}
    for round_ in range(args.rounds):
        for model in models if round_ % 2 == 0 else reversed(models):
            if model.startswith("gaussians"):
                config = config_for_steps(args.splat_steps, eval_every=args.eval_every, seed=round_,
                                          split_mode=args.split_mode)
                initial = (surface_gaussians(args.scene, config.initial_gaussians, config.sh_degree, seed=round_)
                           if model == "gaussians-surface" else None)
                history = train_gaussians(train, test, config, device=args.device, progress=True,
                                          initial=initial).history
            else:
                steps = args.nerf_steps if model == "nerf" else args.hash_steps
                config = preset(model, steps=steps, eval_every=args.eval_every, seed=round_)
                history = train_nerf(train, test, config, device=args.device, progress=True).history
            results[model].append(history)
            print(f"round {round_} {model}: " + ", ".join(f"{h['train_seconds']:.0f}s {h['psnr']:.1f}dB"
                                                       for h in history), flush=True)
    print(f"\n{'model':18s} {'to 20 dB':>9s} {'to 25 dB':>9s} {'final PSNR':>11s} {'final SSIM':>11s} {'seconds':>8s}"
          f"  (median of {args.rounds} round{'s' if args.rounds > 1 else ''}, training seconds)")
    for model, runs in results.items():
        print(f"{model:18s} {statistics.median(time_to(h, 20.0) for h in runs):9.1f} "
              f"{statistics.median(time_to(h, 25.0) for h in runs):9.1f} "
              f"{statistics.median(h[-1]['psnr'] for h in runs):11.2f} "
              f"{statistics.median(h[-1]['ssim'] for h in runs):11.3f} "
              f"{statistics.median(h[-1]['train_seconds'] for h in runs):8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["speed", "curves"], choices=["speed", "curves"])
    parser.add_argument("--gaussians", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--resolutions", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--tile-sizes", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--shrink", type=float, default=0.5, help="factor on 3DGS's initial scales")
    parser.add_argument("--reference-pixels", type=int, default=256, help="pixels the per-pixel reference renders")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scene", default="blocks", help="curves: the library scene")
    parser.add_argument("--views", type=int, default=40, help="curves: training views")
    parser.add_argument("--curve-resolution", type=int, default=64, help="curves: image size")
    parser.add_argument("--models", nargs="+", default=["gaussians-box", "gaussians-surface", "nerf", "hash-nerf"],
                        choices=["gaussians-box", "gaussians-surface", "nerf", "hash-nerf"],
                        help="curves: Gaussians from random ones in the box or from the scene's surface, and NeRFs")
    parser.add_argument("--splat-steps", type=int, default=2000,
                        help="curves: steps of the Gaussians (the default schedule scaled to them)")
    parser.add_argument("--split-mode", default="moments", choices=["sample", "moments"], help="curves: the split")
    parser.add_argument("--nerf-steps", type=int, default=1200, help="curves: steps of the positional-encoding NeRF")
    parser.add_argument("--hash-steps", type=int, default=3000, help="curves: steps of the hash-grid NeRF")
    parser.add_argument("--eval-every", type=int, default=100, help="curves: steps between held-out evaluations")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if "speed" in args.parts:
        speed(args)
    if "curves" in args.parts:
        curves(args)


if __name__ == "__main__":
    main()
