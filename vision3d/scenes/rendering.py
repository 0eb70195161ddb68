"""Exact renders of analytic scenes: colour, depth, normals and masks per pixel, and posed image sets.

Each pixel's ray ``o + t d`` is intersected exactly with the scene's shape (see
:mod:`vision3d.scenes.shapes`); at the first hit ``x = o + t d`` with normal ``n`` the colour is
Blinn–Phong with one directional light ``l``::

    c = albedo(x) (k_a + (1 - k_a) max(0, n . l)) + k_s max(0, n . h)^s,    h = (l - d) / |l - d|

The specular term depends on the viewing direction ``d`` (the reason NeRF conditions colour on it); with
``k_s = 0`` the scene is Lambertian. Rays that miss show the background. Depth is the distance ``t`` along the
unit ray (``inf`` off the shape).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vision3d.scenes.cameras import Camera, pixel_rays


@dataclass(frozen=True)
class Scene:
    """A shape (any of :mod:`vision3d.scenes.shapes` or a :class:`~vision3d.scenes.mesh.TriangleMesh`) lit by
    one directional light."""

    shape: object
    name: str = "scene"
    light_direction: tuple[float, float, float] = (0.45, -0.35, 0.82)
    ambient: float = 0.3
    specular: float = 0.0
    shininess: float = 32.0
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def bounding_radius(self) -> float:
        """The radius of a sphere around the origin that holds the whole shape."""
        low, high = self.shape.bounds()
        return float(torch.maximum(low.abs(), high.abs()).norm())


@dataclass(frozen=True)
class View:
    """One exact render: ``rgb`` [H, W, 3] in [0, 1], ``depth`` [H, W] along the ray (``inf`` off the shape),
    ``normal`` [H, W, 3] (zero off the shape), ``mask`` [H, W]."""

    rgb: Tensor
    depth: Tensor
    normal: Tensor
    mask: Tensor


def shade(scene: Scene, points: Tensor, normals: Tensor, directions: Tensor) -> Tensor:
    """Blinn–Phong colour [N, 3] at surface points seen along ``directions``."""
    light = torch.as_tensor(scene.light_direction, dtype=points.dtype, device=points.device)
    light = light / light.norm()
    diffuse = (normals @ light).clamp_min(0.0)
    color = scene.shape.albedo(points) * (scene.ambient + (1.0 - scene.ambient) * diffuse)[:, None]
    if scene.specular > 0:
        half = light - directions
        half = half / half.norm(dim=-1, keepdim=True)
        color = color + scene.specular * (normals * half).sum(-1).clamp_min(0.0)[:, None] ** scene.shininess
    return color.clamp(0.0, 1.0)


def render_rays(scene: Scene, origins: Tensor, directions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Colour [N, 3], depth [N], normal [N, 3] and hit mask [N] of rays (float64)."""
    depth = scene.shape.intersect(origins, directions)
    mask = torch.isfinite(depth)
    rgb = torch.as_tensor(scene.background, dtype=origins.dtype, device=origins.device).repeat(len(origins), 1)
    normal = torch.zeros_like(origins)
    if mask.any():
        points = origins[mask] + depth[mask, None] * directions[mask]
        normal[mask] = scene.shape.normal(points)
        rgb[mask] = shade(scene, points, normal[mask], directions[mask])
    return rgb, depth, normal, mask


def render(scene: Scene, camera: Camera) -> View:
    """The exact image of ``scene`` through ``camera`` (float64)."""
    origins, directions = pixel_rays(camera)
    rgb, depth, normal, mask = render_rays(scene, origins, directions)
    h, w = camera.height, camera.width
    return View(rgb.reshape(h, w, 3), depth.reshape(h, w), normal.reshape(h, w, 3), mask.reshape(h, w))


@dataclass(frozen=True)
class ViewSet:
    """Posed images of one scene: ``rgb`` [V, H, W, 3], ``depth`` [V, H, W], ``normal`` [V, H, W, 3], ``mask``
    [V, H, W] (float32/bool) and the cameras that took them."""

    rgb: Tensor
    depth: Tensor
    normal: Tensor
    mask: Tensor
    cameras: tuple[Camera, ...]
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __len__(self) -> int:
        return len(self.cameras)

    def subset(self, indices: Sequence[int]) -> ViewSet:
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return ViewSet(self.rgb[index], self.depth[index], self.normal[index], self.mask[index],
                       tuple(self.cameras[i] for i in index.tolist()), self.background)

    def rays(self) -> tuple[Tensor, Tensor]:
        """Origins and directions [V * H * W, 3] (float32) of every pixel, in the order of ``rgb.reshape(-1, 3)``."""
        pairs = [pixel_rays(camera) for camera in self.cameras]
        return torch.cat([o for o, _ in pairs]).float(), torch.cat([d for _, d in pairs]).float()

    def save(self, path: str | os.PathLike[str]) -> None:
        np.savez_compressed(
            path, rgb=self.rgb.numpy(), depth=self.depth.numpy(), normal=self.normal.numpy(), mask=self.mask.numpy(),
            K=torch.stack([c.K for c in self.cameras]).numpy(), R=torch.stack([c.R for c in self.cameras]).numpy(),
            t=torch.stack([c.t for c in self.cameras]).numpy(), background=np.asarray(self.background),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ViewSet:
        """Read a view set written by :meth:`save`, checking every array's shape; errors name the file."""
        path = os.fspath(path)
        with np.load(path, allow_pickle=False) as data:
            missing = {"rgb", "depth", "normal", "mask", "K", "R", "t", "background"} - set(data.files)
            if missing:
                raise ValueError(f"{path}: not a view set, missing arrays {sorted(missing)}")
            arrays = {key: data[key] for key in data.files}
        v, h, w = arrays["depth"].shape if arrays["depth"].ndim == 3 else (None, None, None)
        expected = {"rgb": (v, h, w, 3), "normal": (v, h, w, 3), "mask": (v, h, w), "K": (v, 3, 3),
                    "R": (v, 3, 3), "t": (v, 3), "background": (3,)}
        for key, shape in expected.items():
            if v is None or arrays[key].shape != shape:
                raise ValueError(f"{path}: array {key!r} has shape {arrays[key].shape}, expected {shape} "
                                 f"(depth is {arrays['depth'].shape})")
        cameras = tuple(Camera(K, R, t, w, h) for K, R, t in zip(arrays["K"], arrays["R"], arrays["t"], strict=True))
        return cls(torch.from_numpy(arrays["rgb"]).float(), torch.from_numpy(arrays["depth"]).float(),
                   torch.from_numpy(arrays["normal"]).float(), torch.from_numpy(arrays["mask"]).bool(), cameras,
                   tuple(float(x) for x in arrays["background"]))


def render_views(scene: Scene, cameras: Sequence[Camera], progress: bool = False) -> ViewSet:
    """Render ``scene`` from every camera into a :class:`ViewSet`."""
    from tqdm.auto import tqdm

    views = [render(scene, camera) for camera in tqdm(cameras, desc=f"render {scene.name}", disable=not progress)]
    return ViewSet(
        torch.stack([v.rgb for v in views]).float(), torch.stack([v.depth for v in views]).float(),
        torch.stack([v.normal for v in views]).float(), torch.stack([v.mask for v in views]),
        tuple(cameras), scene.background,
    )
