"""The z-buffer rasterizer (vision3d.scenes.raster) against the ray caster (vision3d.scenes.mesh through
vision3d.scenes.rendering): the same covered pixels and depths, and perspective-correct barycentrics that interpolate
the vertices to the exact 3D first hit."""

from __future__ import annotations

import pytest
import torch

from vision3d.body import BodyModel
from vision3d.body.clips import load_clip
from vision3d.scenes.cameras import Camera, pixel_rays, z_depth
from vision3d.scenes.mesh import TriangleMesh
from vision3d.scenes.raster import interpolate, rasterize, vertex_normals
from vision3d.scenes.rendering import Scene, render

F64 = torch.float64


@pytest.fixture(scope="module")
def posed_body() -> tuple[torch.Tensor, torch.Tensor]:
    model = BodyModel.default(dtype=F64, device="cpu")
    pose = torch.from_numpy(load_clip("cartwheel").poses[40])
    out = model(global_orient=pose[None, 0], body_pose=pose[None, 1:].reshape(1, -1))
    return out.vertices[0], model.faces


@pytest.mark.parametrize(("eye", "size"), [((3.0, -0.5, 0.5), 48), ((-1.0, 2.5, 1.5), 64), ((0.3, 0.2, 3.0), 40)])
def test_rasterizer_equals_ray_casting(posed_body, eye, size):
    vertices, faces = posed_body
    camera = Camera.look_at(eye, target=vertices.mean(0).tolist(), up=(0, 0, 1) if eye[2] < 2.5 else (1, 0, 0),
                            width=size, height=size + 8)
    view = render(Scene(TriangleMesh(vertices, faces)), camera)
    fragments = rasterize(vertices @ camera.R.T + camera.t, faces, camera.K, camera.width, camera.height)
    assert view.mask.sum() > 100
    assert torch.equal(fragments.mask[0], view.mask)
    hit = view.mask
    torch.testing.assert_close(fragments.depth[0][hit], z_depth(camera, view.depth)[hit], atol=1e-9, rtol=0)
    assert torch.isinf(fragments.depth[0][~hit]).all() and (fragments.face[0][~hit] == -1).all()
    # Perspective-correct barycentrics put the pixel's point exactly where its ray meets the surface.
    origins, directions = pixel_rays(camera)
    points = (origins + view.depth.reshape(-1, 1) * directions).reshape(camera.height, camera.width, 3)
    interpolated = interpolate(fragments, faces, vertices[None])[0]
    torch.testing.assert_close(interpolated[hit], points[hit], atol=1e-9, rtol=0)


def test_batches_and_ties():
    """Two coplanar triangles sharing an edge along a pixel-centre row: each centre goes to exactly one, the lower
    index on the edge; a batch equals its images one by one; a nearer triangle occludes."""
    K = torch.tensor([[10.0, 0, 5], [0, 10, 5], [0, 0, 1]], dtype=F64)
    square = torch.tensor([[-0.5, -0.5, 1.0], [0.5, -0.5, 1.0], [0.5, 0.5, 1.0], [-0.5, 0.5, 1.0]], dtype=F64)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    fragments = rasterize(square, faces, K, 10, 10)
    assert fragments.mask.sum() == 100  # the square covers the whole 10 x 10 image
    diagonal = torch.arange(10)
    assert (fragments.face[0, diagonal, diagonal] == 0).all()  # centres on the shared diagonal: the lower index
    torch.testing.assert_close(fragments.depth[0], torch.ones(10, 10, dtype=F64))
    torch.testing.assert_close(fragments.bary.sum(-1), torch.ones(1, 10, 10, dtype=F64))

    near = square * torch.tensor([0.3, 0.3, 0.5], dtype=F64)  # a smaller square at z = 0.5, same image size
    both = rasterize(torch.cat([square, near]), torch.cat([faces, faces + 4]), K, 10, 10)
    in_front = both.face[0] >= 2
    assert in_front.sum() == 36 and torch.allclose(both.depth[0][in_front], torch.tensor(0.5, dtype=F64))
    batch = rasterize(torch.stack([square, near]), faces, K, 10, 10)
    for index, vertices in enumerate((square, near)):
        single = rasterize(vertices, faces, K, 10, 10)
        assert torch.equal(batch.face[index], single.face[0]) and torch.equal(batch.depth[index], single.depth[0])


def test_behind_the_camera_is_not_drawn_and_bad_input_is_refused():
    K = torch.eye(3, dtype=F64)
    triangle = torch.tensor([[0.0, 0, -1], [1, 0, 1], [0, 1, 1]], dtype=F64)
    assert not rasterize(triangle, torch.tensor([[0, 1, 2]]), K, 4, 4).mask.any()
    with pytest.raises(ValueError, match=r"vertices must have shape \[B, V, 3\]"):
        rasterize(torch.zeros(3, 2), torch.tensor([[0, 1, 2]]), K, 4, 4)
    with pytest.raises(ValueError, match="face indices must lie in"):
        rasterize(triangle, torch.tensor([[0, 1, 3]]), K, 4, 4)
    with pytest.raises(ValueError, match="integer tensor"):
        rasterize(triangle, torch.tensor([[0.0, 1, 2]]), K, 4, 4)


def test_vertex_normals_of_a_closed_mesh_point_outward(posed_body):
    vertices, faces = posed_body
    normals = vertex_normals(vertices[None], faces)[0]
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(len(vertices), dtype=F64))
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    outward = torch.linalg.cross(b - a, c - a)
    centroid_normal = normals[faces].mean(1)
    assert ((centroid_normal * outward).sum(-1) > 0).float().mean() > 0.98  # smooth normals agree with the faces'
