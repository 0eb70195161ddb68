"""The scene library: analytic shapes and the body mesh, each fitting in the cube [-1, 1]^3, by name.

``make_scene("torus")`` gives a lit :class:`~vision3d.scenes.rendering.Scene`; ``specular > 0`` adds the
view-dependent highlight. ``scene_names()`` lists them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vision3d.scenes.mesh import TriangleMesh
from vision3d.scenes.rendering import Scene
from vision3d.scenes.shapes import Box, Capsule, Sphere, Torus, Union

RED, GREEN, BLUE, SAND, GREY = (0.85, 0.3, 0.25), (0.3, 0.75, 0.35), (0.25, 0.45, 0.85), (0.9, 0.75, 0.45), (0.6,) * 3


def body_mesh(height: float = 1.7) -> TriangleMesh:
    """The default body model (``vision3d.body``) in its rest pose, turned z-up, centred, ``height`` tall."""
    from vision3d.body import BodyModel

    model = BodyModel.default(dtype=torch.float64, device="cpu")
    with torch.no_grad():
        vertices = model().vertices[0]
    vertices = torch.stack([vertices[:, 0], -vertices[:, 2], vertices[:, 1]], dim=-1)  # y-up -> z-up
    low, high = vertices.min(dim=0).values, vertices.max(dim=0).values
    vertices = (vertices - (low + high) / 2) * (height / (high - low)[2])
    return TriangleMesh(vertices, model.faces.long(), color=SAND, name="body")


SCENE_SHAPES: dict[str, Callable[[], object]] = {
    "sphere": lambda: Sphere(radius=0.8, color=RED),
    "box": lambda: Box(half_size=(0.6, 0.45, 0.35), color=BLUE),
    "torus": lambda: Torus(major=0.65, minor=0.25, color=SAND),
    "capsule": lambda: Capsule((-0.45, -0.2, -0.35), (0.45, 0.2, 0.35), 0.3, color=GREEN),
    "blocks": lambda: Union(children=(
        Box((0.0, 0.0, -0.6), (0.75, 0.75, 0.12), color=GREY),
        Sphere((-0.35, -0.3, -0.15), 0.33, color=RED),
        Capsule((0.35, 0.35, -0.45), (0.35, 0.35, 0.45), 0.2, color=GREEN),
        Torus((0.35, -0.35, -0.38), 0.28, 0.1, color=BLUE),
    )),
    "body": body_mesh,
}


def scene_names() -> list[str]:
    return list(SCENE_SHAPES)


def make_scene(name: str, specular: float = 0.0, background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Scene:
    """The library scene ``name`` with a specular strength and a background colour."""
    if name not in SCENE_SHAPES:
        raise ValueError(f"unknown scene {name!r}; choose one of {scene_names()}")
    return Scene(SCENE_SHAPES[name](), name=name, specular=specular, background=background)


def scene_views(name: str, views: int, test_views: int, resolution: int, seed: int, specular: float = 0.0):
    """The posed image sets every learned method is trained and measured on: ``views`` training views drawn
    uniformly on the upper hemisphere (seeded) and ``test_views`` held-out views on an orbit at 25 degrees
    elevation, azimuths between them; rendered exactly. Returns ``(train, test)`` :class:`ViewSet`s."""
    from vision3d.scenes.cameras import hemisphere_cameras, orbit_cameras
    from vision3d.scenes.rendering import render_views

    scene = make_scene(name, specular=specular)
    train = render_views(scene, hemisphere_cameras(views, seed=seed, width=resolution, height=resolution))
    test = render_views(scene, orbit_cameras(test_views, elevation_degrees=25.0, start_degrees=180.0 / test_views,
                                             width=resolution, height=resolution))
    return train, test
