"""docs/vision3d_scenes.png: every library scene rendered exactly, as colour, depth and normals.

    python benchmarks/scenes_figure.py [--out docs/vision3d_scenes.png] [--resolution 128]
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from vision3d.scenes import Camera, make_scene, render, scene_names  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="docs/vision3d_scenes.png")
    parser.add_argument("--resolution", type=int, default=128)
    args = parser.parse_args()
    names = scene_names()
    camera = Camera.look_at((2.6, -2.0, 1.5), width=args.resolution, height=args.resolution, fov_degrees=40)
    figure, axes = plt.subplots(3, len(names), figsize=(2.2 * len(names), 6.8))
    for column, name in enumerate(names):
        view = render(make_scene(name, specular=0.4), camera)
        depth = torch.where(view.mask, view.depth, torch.full_like(view.depth, float("nan")))
        axes[0, column].imshow(view.rgb.numpy())
        axes[1, column].imshow(depth.numpy(), cmap="viridis")
        normal = torch.where(view.mask[..., None], 0.5 * view.normal + 0.5, torch.ones_like(view.normal))
        axes[2, column].imshow(normal.numpy())
        axes[0, column].set_title(name)
    for row, label in enumerate(("colour (Blinn–Phong)", "depth along the ray", "normal")):
        axes[row, 0].set_ylabel(label)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    figure.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
