"""The z-buffer rasterizer against the ray caster on the same work: the posed body mesh (2,936 triangles) seen by the
same camera, every pixel's first hit and depth (the two agree exactly; tests/test_raster.py). Alternating rounds,
medians, one torch thread; also the rasterizer on a batch of 32 images at once, per image.

    python benchmarks/bench_raster.py --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from vision3d.body import BodyModel
from vision3d.body.clips import load_clip
from vision3d.scenes.cameras import Camera
from vision3d.scenes.mesh import TriangleMesh
from vision3d.scenes.raster import rasterize
from vision3d.scenes.rendering import Scene, render


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="64,128,256", help="image sizes, pixels")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = BodyModel.default(dtype=torch.float64, device="cpu")
    pose = torch.from_numpy(load_clip("cartwheel").poses[40])
    vertices = model(global_orient=pose[None, 0], body_pose=pose[None, 1:].reshape(1, -1)).vertices[0]
    scene = Scene(TriangleMesh(vertices, model.faces))
    print("| image | ray caster ms | rasterizer ms | ratio | rasterizer, batch of 32, ms per image |")
    print("| --- | --- | --- | --- | --- |")
    for size in (int(s) for s in args.sizes.split(",")):
        camera = Camera.look_at((3.0, -0.5, 0.5), target=vertices.mean(0).tolist(), up=(0, 0, 1), width=size,
                                height=size)  # fmt: skip
        in_camera = vertices @ camera.R.T + camera.t
        batch = in_camera.expand(32, -1, -1).contiguous()
        ray, raster, batched = [], [], []
        for _ in range(args.rounds):  # alternating, so that a slow moment of the machine hits both sides
            ray.append(seconds(lambda: render(scene, camera)))  # noqa: B023
            raster.append(seconds(lambda: rasterize(in_camera, model.faces, camera.K, size, size)))  # noqa: B023
            batched.append(seconds(lambda: rasterize(batch, model.faces, camera.K, size, size)) / 32)  # noqa: B023
        ray_ms, raster_ms = 1e3 * statistics.median(ray), 1e3 * statistics.median(raster)
        print(f"| {size}x{size} | {ray_ms:.1f} | {raster_ms:.2f} | {ray_ms / raster_ms:.0f}x | "
              f"{1e3 * statistics.median(batched):.2f} |", flush=True)


if __name__ == "__main__":
    main()
