"""Images of synthetic people (:mod:`vision3d.body.synthetic`): the posed mesh rasterized
(:mod:`vision3d.scenes.raster`) and shaded, with per-joint visibility.

Each image is drawn at ``supersample`` times its size and averaged down (anti-aliased edges). Colours are random per
sample: the skin, a shirt over the torso and arms (down to the elbows or to the wrists), trousers, shoes, hair over
the back and top of the head (without it, front and back views of the smooth body differ in little but the bend of
the knees, and left and right get swapped); a vertex takes the colour of the body part whose joint moves it most
(the argmax of its skinning weights). Shading is
Lambertian, ``c = albedo * (ambient + (1 - ambient) max(0, n . l))``, with smooth (interpolated) normals and a light
from a random direction on the camera's side. The background is a random colour gradient plus smooth blotches and
pixel noise, so that a network cannot find the person by colour alone.

**Visibility** of joint j: its pixel lies in the image, and nothing there is more than ``OCCLUSION_MARGIN`` in front
of it. A joint centre lies inside the body, behind its own flesh (up to about 12 cm at the pelvis and spine), so the
margin separates that from another limb or the torso crossing in front; it is a heuristic, as every dataset's
visibility label is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vision3d.body.skeleton import JOINT_NAMES
from vision3d.scenes.raster import interpolate, rasterize, vertex_normals

if TYPE_CHECKING:
    from vision3d.body.model import BodyModel
    from vision3d.body.synthetic import People

OCCLUSION_MARGIN = 0.15  # metres
CHUNK = 32  # images rasterized at once (memory: candidates per image x chunk)
# Body parts by joint name; every SMPL joint belongs to one.
PARTS = {
    "skin": ("neck", "head", "left_wrist", "right_wrist", "left_hand", "right_hand"),
    "shirt": ("spine1", "spine2", "spine3", "left_collar", "right_collar", "left_shoulder", "right_shoulder"),
    "sleeve": ("left_elbow", "right_elbow"),  # forearms: shirt or skin, per sample
    "trousers": ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee"),
    "shoes": ("left_ankle", "right_ankle", "left_foot", "right_foot"),
}
PART_NAMES = (*PARTS, "hair")  # hair: the back and top of the head, so that a face tells front from back


def part_of_vertex(model: BodyModel) -> Tensor:
    """[V] index into ``PART_NAMES`` of each vertex: the part of the joint with its largest skinning weight, except
    that head vertices facing backwards or up in the rest pose (SMPL: y up, z forward) are hair."""
    part_of_joint = torch.empty(len(JOINT_NAMES), dtype=torch.long)
    for index, joints in enumerate(PARTS.values()):
        for joint in joints:
            part_of_joint[JOINT_NAMES.index(joint)] = index
    part = part_of_joint[model.weights.argmax(-1).cpu()]
    rest = model.v_template.detach().cpu().double()[None]
    normals = vertex_normals(rest, model.faces.cpu())[0]
    head = model.weights.argmax(-1).cpu() == JOINT_NAMES.index("head")
    head_height = float(model.J_regressor.cpu().double()[JOINT_NAMES.index("head")] @ rest[0, :, 1])
    hair = head & ((normals[:, 2] < -0.1) | ((normals[:, 1] > 0.5) & (rest[0, :, 1] > head_height)))
    part[hair] = PART_NAMES.index("hair")
    return part


def _random_colors(rng: np.random.Generator, n: int) -> Tensor:
    """Albedos [n, parts, 3]: skin tones between light and dark, clothes anywhere, shoes dark."""
    skin_light, skin_dark = np.array([0.95, 0.78, 0.66]), np.array([0.36, 0.24, 0.17])
    skin = skin_light + rng.uniform(0, 1, (n, 1)) * (skin_dark - skin_light)
    shirt = rng.uniform(0.05, 0.95, (n, 3))
    sleeve = np.where(rng.uniform(size=(n, 1)) < 0.5, shirt, skin)
    trousers = rng.uniform(0.05, 0.8, (n, 3))
    shoes = rng.uniform(0.02, 0.3, (n, 1)) * np.ones(3)
    hair_dark, hair_fair = np.array([0.08, 0.06, 0.05]), np.array([0.75, 0.6, 0.35])
    hair = hair_dark + rng.uniform(0, 1, (n, 1)) ** 2 * (hair_fair - hair_dark)
    return torch.from_numpy(np.stack([skin, shirt, sleeve, trousers, shoes, hair], axis=1))


def _backgrounds(rng: np.random.Generator, n: int, size: int) -> Tensor:
    """[n, size, size, 3]: a linear gradient between two colours, smooth blotches, pixel noise."""
    start, end = rng.uniform(0, 1, (2, n, 1, 1, 3))
    angle = rng.uniform(0, 2 * np.pi, (n, 1, 1, 1))
    grid = (np.arange(size) + 0.5) / size - 0.5
    along = np.cos(angle) * grid[None, None, :, None] + np.sin(angle) * grid[None, :, None, None] + 0.5
    image = torch.from_numpy(start + (end - start) * np.clip(along, 0, 1))
    blotches = torch.from_numpy(rng.normal(0, 0.12, (n, 3, 4, 4)))
    image = image + F.interpolate(blotches, size=(size, size), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    return (image + torch.from_numpy(rng.normal(0, 0.02, (n, size, size, 3)))).clamp(0, 1)


def _light_directions(rng: np.random.Generator, n: int) -> Tensor:
    """Unit vectors [n, 3] from the surface towards the light, camera frame: on the camera's side (z < 0), from
    above more often than below (y down)."""
    direction = np.stack([rng.uniform(-1, 1, n), rng.uniform(-1, 0.3, n), -rng.uniform(0.3, 1, n)], axis=-1)
    return torch.from_numpy(direction / np.linalg.norm(direction, axis=-1, keepdims=True))


def render_people(people: People, vertices: Tensor, model: BodyModel, size: int, rng: np.random.Generator,
                  supersample: int = 2, ambient: float = 0.35) -> None:
    """Fill ``people.images`` (uint8 [N, size, size, 3]), ``masks`` (bool [N, size, size]) and ``visibility``
    (bool [N, 24]) from the posed ``vertices`` [N, V, 3] (camera frame), drawing colours, lights and backgrounds
    from ``rng``."""
    n = len(people)
    faces = model.faces.cpu()
    part = part_of_vertex(model)
    colors, lights, backgrounds = _random_colors(rng, n), _light_directions(rng, n), _backgrounds(rng, n, size)
    big = size * supersample
    K = torch.tensor([[people.camera.focal[0], 0, people.camera.principal_point[0]],
                      [0, people.camera.focal[1], people.camera.principal_point[1]], [0, 0, 1]], dtype=torch.float64)
    K_big = torch.diag(torch.tensor([supersample, supersample, 1.0], dtype=torch.float64)) @ K
    images, masks, visibility = [], [], []
    for start in range(0, n, CHUNK):
        chunk = slice(start, min(start + CHUNK, n))
        verts = vertices[chunk].cpu()
        fragments = rasterize(verts, faces, K_big, big, big)
        normals = interpolate(fragments, faces, vertex_normals(verts, faces))
        normals = normals / normals.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        albedo = interpolate(fragments, faces, colors[chunk][:, part])
        diffuse = (normals * lights[chunk][:, None, None, :]).sum(-1).clamp_min(0)
        shaded = albedo * (ambient + (1 - ambient) * diffuse)[..., None]
        coverage = F.avg_pool2d(fragments.mask[:, None].double(), supersample)[:, 0]  # [c, size, size]
        color = F.avg_pool2d(shaded.permute(0, 3, 1, 2), supersample).permute(0, 2, 3, 1)
        images.append(color + (1 - coverage[..., None]) * backgrounds[chunk])
        masks.append(coverage >= 0.5)
        visibility.append(_visible(people.keypoints[chunk] * supersample, people.joints3d[chunk, :, 2],
                                   fragments.depth))  # fmt: skip
    people.images = (torch.cat(images).clamp(0, 1) * 255).round().to(torch.uint8)
    people.masks = torch.cat(masks)
    people.visibility = torch.cat(visibility)


def _visible(keypoints: Tensor, joint_depth: Tensor, depth: Tensor) -> Tensor:
    """[c, 24]: in the image and not occluded (see the module docstring), from the z-buffer ``depth`` [c, H, W]."""
    height, width = depth.shape[1:]
    column, row = keypoints[..., 0].floor().long(), keypoints[..., 1].floor().long()
    inside = (column >= 0) & (column < width) & (row >= 0) & (row < height)
    surface = depth[torch.arange(len(depth))[:, None], row.clamp(0, height - 1), column.clamp(0, width - 1)]
    return inside & (surface >= joint_depth - OCCLUSION_MARGIN)
