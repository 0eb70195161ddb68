"""Speed of 3D Gaussian splatting in vectorized torch: the rasterizer alone and the whole render, forward and backward.

    python benchmarks/bench_splatting.py                        # 10k and 50k Gaussians, 128x128, tiles 8 and 16
    python benchmarks/bench_splatting.py --rounds 3 --threads 1
    python benchmarks/bench_splatting.py --gaussians 200000 --resolution 256 --device cuda

What it measures, per (number of Gaussians, tile size):

- ``rasterize``: :func:`~vision3d.splatting.rasterizer.rasterize` on precomputed projections (RGB, as training
  renders), forward only and forward + backward of ``image.sum() + alpha.sum()``;
- ``render``: :func:`~vision3d.splatting.render.render_gaussians` (covariances, projection, SH colour of degree 3,
  rasterization of RGB + depth), forward only and forward + backward with respect to every Gaussian parameter.

The scene: Gaussians uniform in the box ``[-1, 1]^3`` with 3DGS's initial scales (mean distance to the 3 nearest
neighbours) times ``--shrink`` and random SH coefficients, seen by an orbit camera 3.5 units away with a 35 degree
field of view. At 128x128 the unshrunk initial scales give median radii of 13 px (10k) and 8 px (50k); trained scenes
have smaller Gaussians, so by default they are halved, which leaves footprints a few pixels wide (the median radius
is printed). Opacities are uniform in ``[0.05, 0.95]``, as after some training.

Each configuration runs once as warm-up, then the timings alternate between configurations in rounds, so slow drift
of the machine hits all of them alike; the median over rounds is printed, in milliseconds. Nothing is written to disk.
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
from vision3d.splatting.rasterizer import rasterize
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gaussians", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--tile-sizes", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--shrink", type=float, default=0.5, help="factor on 3DGS's initial scales")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"device {args.device}, {torch.get_num_threads()} threads, {args.resolution}x{args.resolution}, "
          f"shrink {args.shrink}, "
          f"median of {args.rounds} rounds, milliseconds")

    cases: dict[tuple[int, int, str], Callable[[], None]] = {}
    for n in args.gaussians:
        gaussians, camera = make_scene(n, args.resolution, args.device, args.shrink)
        with torch.no_grad():
            projected = project_gaussians(gaussians.means, gaussians.covariances(), camera)
        radii = projected.radii[projected.visible].float()
        print(f"{n} Gaussians: {int(projected.visible.sum())} visible, median radius {radii.median().item():.0f} px "
              f"(quartiles {radii.quantile(0.25).item():.0f}-{radii.quantile(0.75).item():.0f})")
        for tile_size in args.tile_sizes:
            for name, case in {**rasterizer_cases(gaussians, camera, tile_size),
                               **render_cases(gaussians, camera, tile_size)}.items():
                cases[n, tile_size, name] = case

    for case in cases.values():  # warm-up: allocator, thread pool, lazy initialisation
        case()
    times: dict[tuple[int, int, str], list[float]] = {key: [] for key in cases}
    for _ in range(args.rounds):
        for key, case in cases.items():
            times[key].append(timed(case, args.device))

    names = list(dict.fromkeys(name for _, _, name in cases))
    print(f"{'Gaussians':>9} {'tile':>4}" + "".join(f" {name:>18}" for name in names))
    for n in args.gaussians:
        for tile_size in args.tile_sizes:
            row = "".join(f" {1e3 * statistics.median(times[n, tile_size, name]):18.1f}" for name in names)
            print(f"{n:>9} {tile_size:>4}{row}")


if __name__ == "__main__":
    main()
