"""Pinhole cameras, rays through pixels, and the camera rigs that scenes are photographed from.

A camera maps a world point ``X`` to camera coordinates and then to pixels::

    X_c = R X + t                      (world -> camera, the extrinsics [R | t])
    (u, v, 1)^T ~ K X_c,   K = [[f_x, 0, c_x], [0, f_y, c_y], [0, 0, 1]]

in the **OpenCV convention**: camera x to the right, y down, z forward (into the scene), pixel ``(u, v)`` with
``u`` along the image's width, the centre of pixel ``(i, j)`` (row ``i``, column ``j``) at ``(j + 0.5, i + 0.5)``.
NeRF's ``transforms.json`` (and OpenGL/Blender) use camera-to-world matrices in the **OpenGL convention**: x
right, y up, the camera looking down its -z axis. The two differ by a flip of the camera's y and z axes,
:func:`opengl_to_opencv` / :func:`opencv_to_opengl`, and :meth:`Camera.from_opengl` reads NeRF's matrices.

The world is z-up. A ray through a pixel is ``r(t) = o + t d`` with ``o`` the camera centre ``-R^T t`` and ``d``
a unit vector, so ``t`` is the distance along the ray (what the renderers call depth; ``z_depth`` converts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

FloatLike = float | Tensor
OPENGL_FROM_OPENCV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))


def _as_float64(value: object, shape: tuple[int, ...], name: str) -> Tensor:
    tensor = torch.as_tensor(value, dtype=torch.float64)
    if tuple(tensor.shape) != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} has non-finite entries: {tensor.tolist()}")
    return tensor


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> Tensor:
    """The 3x3 matrix K of a pinhole camera without skew."""
    return torch.tensor([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=torch.float64)


def focal_from_fov(fov_degrees: float, size: int) -> float:
    """Focal length in pixels that spans ``fov_degrees`` over ``size`` pixels: ``f = size / (2 tan(fov / 2))``."""
    if not 0.0 < fov_degrees < 180.0:
        raise ValueError(f"field of view must be in (0, 180) degrees, got {fov_degrees}")
    return size / (2.0 * math.tan(math.radians(fov_degrees) / 2.0))


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: intrinsics ``K`` [3, 3], world-to-camera rotation ``R`` [3, 3] and translation ``t`` [3]
    in the OpenCV convention, and the image size in pixels. Stored in float64; checked on construction."""

    K: Tensor
    R: Tensor
    t: Tensor
    width: int
    height: int

    def __post_init__(self) -> None:
        K = _as_float64(self.K, (3, 3), "intrinsics K")
        R = _as_float64(self.R, (3, 3), "rotation R")
        t = _as_float64(self.t, (3,), "translation t")
        if K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"focal lengths must be positive, got fx={K[0, 0].item()}, fy={K[1, 1].item()}")
        if K[1, 0] != 0 or K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1:
            raise ValueError(f"K must be upper triangular with K[2, 2] = 1, got {K.tolist()}")
        orthogonality = (R @ R.T - torch.eye(3, dtype=torch.float64)).abs().max().item()
        if orthogonality > 1e-6 or torch.linalg.det(R).item() < 0:
            raise ValueError(
                f"R must be a rotation (orthonormal, det +1): |R R^T - I| = {orthogonality:.2e}, "
                f"det = {torch.linalg.det(R).item():.4f}"
            )
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        object.__setattr__(self, "K", K)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "t", t)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    @classmethod
    def look_at(
        cls,
        eye: object,
        target: object = (0.0, 0.0, 0.0),
        up: object = (0.0, 0.0, 1.0),
        fov_degrees: float = 35.0,
        width: int = 64,
        height: int = 64,
    ) -> Camera:
        """A camera at ``eye`` looking at ``target`` with ``up`` pointing up in the image, principal point at
        the image centre and the vertical field of view ``fov_degrees``."""
        R, t = look_at(eye, target, up)
        f = focal_from_fov(fov_degrees, height)
        return cls(intrinsics(f, f, width / 2.0, height / 2.0), R, t, width, height)

    @classmethod
    def from_opengl(cls, camera_to_world: object, K: object, width: int, height: int) -> Camera:
        """A camera from a NeRF/OpenGL camera-to-world matrix [4, 4] (or [3, 4])."""
        c2w = torch.as_tensor(camera_to_world, dtype=torch.float64)
        if tuple(c2w.shape) == (3, 4):
            c2w = torch.cat([c2w, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)])
        c2w_cv = opengl_to_opencv(_as_float64(c2w, (4, 4), "camera-to-world matrix"))
        R = c2w_cv[:3, :3].T
        return cls(K, R, -R @ c2w_cv[:3, 3], width, height)

    @property
    def center(self) -> Tensor:
        """The camera centre in world coordinates, ``-R^T t``."""
        return -self.R.T @ self.t

    def camera_to_world(self) -> Tensor:
        """The [4, 4] camera-to-world matrix in the OpenCV convention."""
        c2w = torch.eye(4, dtype=torch.float64)
        c2w[:3, :3] = self.R.T
        c2w[:3, 3] = self.center
        return c2w

    def to_opengl(self) -> Tensor:
        """The [4, 4] camera-to-world matrix in NeRF's OpenGL convention (y up, looking down -z)."""
        return opencv_to_opengl(self.camera_to_world())

    def resized(self, width: int, height: int) -> Camera:
        """The same camera with the image resampled to ``width`` x ``height`` (intrinsics scaled)."""
        scale = torch.tensor([[width / self.width], [height / self.height], [1.0]], dtype=torch.float64)
        return Camera(self.K * scale, self.R, self.t, width, height)


def look_at(eye: object, target: object = (0.0, 0.0, 0.0), up: object = (0.0, 0.0, 1.0)) -> tuple[Tensor, Tensor]:
    """World-to-camera ``(R, t)`` (OpenCV) of a camera at ``eye`` looking at ``target``; the image's "up" (-y)
    is the projection of ``up``. Raises when the viewing direction is parallel to ``up``."""
    eye, target, up = (_as_float64(v, (3,), name) for v, name in ((eye, "eye"), (target, "target"), (up, "up")))
    forward = target - eye
    if forward.norm() < 1e-12:
        raise ValueError(f"eye and target coincide at {eye.tolist()}")
    forward = forward / forward.norm()
    right = torch.linalg.cross(forward, up)
    if right.norm() < 1e-9:
        raise ValueError(f"viewing direction {forward.tolist()} is parallel to up {up.tolist()}; pass another up")
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    R = torch.stack([right, down, forward])  # rows: camera axes x, y, z in world coordinates
    return R, -R @ eye


def opencv_to_opengl(camera_to_world: Tensor) -> Tensor:
    """Camera-to-world [.., 4, 4] from OpenCV (y down, z forward) to OpenGL (y up, -z forward): flip y and z."""
    return camera_to_world @ OPENGL_FROM_OPENCV.to(camera_to_world)


def opengl_to_opencv(camera_to_world: Tensor) -> Tensor:
    """The inverse of :func:`opencv_to_opengl` (the flip is its own inverse)."""
    return camera_to_world @ OPENGL_FROM_OPENCV.to(camera_to_world)


def pixel_centers(camera: Camera) -> Tensor:
    """Pixel centres ``(u, v)`` [H * W, 2] in row-major order (row ``i`` = ``v``), matching images [H, W]."""
    v, u = torch.meshgrid(
        torch.arange(camera.height, dtype=torch.float64) + 0.5,
        torch.arange(camera.width, dtype=torch.float64) + 0.5,
        indexing="ij",
    )
    return torch.stack([u.reshape(-1), v.reshape(-1)], dim=-1)


def pixel_rays(camera: Camera, pixels: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Rays through pixel positions [N, 2] (default: every pixel centre, row-major): origins [N, 3] and unit
    directions [N, 3] in world coordinates, float64. ``d ~ R^T K^{-1} (u, v, 1)^T``."""
    uv = pixel_centers(camera) if pixels is None else torch.as_tensor(pixels, dtype=torch.float64)
    if uv.ndim != 2 or uv.shape[-1] != 2:
        raise ValueError(f"pixels must have shape [N, 2], got {list(uv.shape)}")
    homogeneous = torch.cat([uv, torch.ones_like(uv[:, :1])], dim=-1)
    directions = torch.linalg.solve(camera.K, homogeneous.T).T @ camera.R  # (R^T K^-1 x)^T = x^T K^-T R
    directions = directions / directions.norm(dim=-1, keepdim=True)
    return camera.center.expand_as(directions).clone(), directions


def project(camera: Camera, points: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel positions ``(u, v)`` [N, 2] and camera-space depths ``z`` [N] of world points [N, 3]."""
    points = torch.as_tensor(points, dtype=torch.float64)
    camera_points = points @ camera.R.T + camera.t
    z = camera_points[:, 2]
    uvw = camera_points @ camera.K.T
    return uvw[:, :2] / z[:, None], z


def sphere_bounds(origins: Tensor, directions: Tensor, radius: float) -> tuple[Tensor, Tensor]:
    """``near, far`` [R] where each ray crosses the sphere of ``radius`` around the origin. A ray that misses it
    gets a millimetre at its closest approach, where the field is empty, so it renders as background."""
    closest = -(origins * directions).sum(-1)
    squared_gap = (origins * origins).sum(-1) - closest**2
    half_chord = (radius**2 - squared_gap).clamp_min(0.0).sqrt()
    near = (closest - half_chord).clamp_min(0.0)
    return near, torch.maximum(closest + half_chord, near + 1e-3)


def z_depth(camera: Camera, ray_depth: Tensor) -> Tensor:
    """Distance along each pixel's unit ray [H, W] -> the camera-space depth ``z`` [H, W] of the same point."""
    _, directions = pixel_rays(camera)
    cos_to_axis = directions @ camera.R[2]  # the z axis of the camera in world coordinates
    return ray_depth * cos_to_axis.reshape(camera.height, camera.width).to(ray_depth)


# --- rigs: where a scene is photographed from ------------------------------------------------------------------


def _spherical(radius: Tensor, azimuth: Tensor, elevation: Tensor) -> Tensor:
    return torch.stack(
        [
            radius * torch.cos(elevation) * torch.cos(azimuth),
            radius * torch.cos(elevation) * torch.sin(azimuth),
            radius * torch.sin(elevation),
        ],
        dim=-1,
    )


def _cameras_at(eyes: Tensor, target: object, fov_degrees: float, width: int, height: int) -> list[Camera]:
    target = _as_float64(target, (3,), "target")
    cameras = []
    for eye in eyes:
        offset = (eye - target) / (eye - target).norm()
        # Straight above or below the target the world's z can't be "up"; the y axis serves there.
        up = (0.0, 0.0, 1.0) if abs(offset[2].item()) < 0.999 else (0.0, 1.0, 0.0)
        cameras.append(Camera.look_at(eye, target, up, fov_degrees, width, height))
    return cameras


def orbit_cameras(
    n: int,
    radius: float = 3.5,
    elevation_degrees: float = 20.0,
    target: object = (0.0, 0.0, 0.0),
    fov_degrees: float = 35.0,
    width: int = 64,
    height: int = 64,
    start_degrees: float = 0.0,
) -> list[Camera]:
    """``n`` cameras evenly spaced in azimuth on a circle at a fixed elevation, all looking at ``target``
    (a turntable)."""
    if n < 1:
        raise ValueError(f"need at least one camera, got n={n}")
    azimuth = torch.deg2rad(start_degrees + torch.arange(n, dtype=torch.float64) * 360.0 / n)
    elevation = torch.full_like(azimuth, math.radians(elevation_degrees))
    eyes = _spherical(torch.full_like(azimuth, radius), azimuth, elevation) + _as_float64(target, (3,), "target")
    return _cameras_at(eyes, target, fov_degrees, width, height)


def hemisphere_cameras(
    n: int,
    radius: float = 3.5,
    seed: int = 0,
    min_elevation_degrees: float = 5.0,
    target: object = (0.0, 0.0, 0.0),
    fov_degrees: float = 35.0,
    width: int = 64,
    height: int = 64,
) -> list[Camera]:
    """``n`` cameras uniformly distributed (by area) on the upper hemisphere above ``min_elevation_degrees``,
    as NeRF's synthetic scenes are photographed."""
    if n < 1:
        raise ValueError(f"need at least one camera, got n={n}")
    generator = torch.Generator().manual_seed(seed)
    low = math.sin(math.radians(min_elevation_degrees))
    sin_elevation = low + (1.0 - low) * torch.rand(n, generator=generator, dtype=torch.float64)
    azimuth = 2.0 * math.pi * torch.rand(n, generator=generator, dtype=torch.float64)
    eyes = _spherical(torch.full((n,), radius, dtype=torch.float64), azimuth, torch.asin(sin_elevation))
    return _cameras_at(eyes + _as_float64(target, (3,), "target"), target, fov_degrees, width, height)


def random_cameras(
    n: int,
    radius: tuple[float, float] = (3.0, 4.0),
    seed: int = 0,
    target: object = (0.0, 0.0, 0.0),
    fov_degrees: float = 35.0,
    width: int = 64,
    height: int = 64,
) -> list[Camera]:
    """``n`` cameras at uniformly random directions on the whole sphere and random distances in ``radius``."""
    if n < 1:
        raise ValueError(f"need at least one camera, got n={n}")
    generator = torch.Generator().manual_seed(seed)
    direction = torch.randn(n, 3, generator=generator, dtype=torch.float64)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    distance = radius[0] + (radius[1] - radius[0]) * torch.rand(n, 1, generator=generator, dtype=torch.float64)
    return _cameras_at(direction * distance + _as_float64(target, (3,), "target"), target, fov_degrees, width, height)
