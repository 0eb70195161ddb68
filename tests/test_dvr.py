"""DVR: the implicit-differentiation gradient of the surface point against finite differences of the root, ray
marching against the exact intersection, and learning a shape from images and masks alone."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vision3d.implicit.dvr import DVRConfig, differentiable_depth, fit_dvr, march_to_surface, render_dvr
from vision3d.scenes import hemisphere_cameras, make_scene, orbit_cameras, render, render_views
from vision3d.scenes.cameras import sphere_bounds

F64 = torch.float64


class BumpySphere(nn.Module):
    """Occupancy logit ``0.6 - |p| + 0.1 g_theta(p)``: a sphere deformed by a small random network."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.g = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1)).double()
        with torch.no_grad():  # bumps of a few centimetres, not a shift of the whole sphere
            self.g[2].bias.zero_()
            self.g[2].weight.mul_(0.3)

    def forward(self, p):
        return 0.6 - p.norm(dim=-1) + 0.1 * self.g(p).squeeze(-1)


def rays(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    origins = torch.randn(n, 3, generator=g, dtype=F64)
    origins = 3.0 * origins / origins.norm(dim=-1, keepdim=True)
    directions = 0.25 * torch.randn(n, 3, generator=g, dtype=F64) - origins
    return origins, directions / directions.norm(dim=-1, keepdim=True)


def root_of(field, origins, directions):
    near, far = sphere_bounds(origins, directions, 1.3)
    hit, root, _, _ = march_to_surface(field, origins, directions, near, far, n_march=256, n_secant=40)
    return hit, root


def test_the_implicit_gradient_of_the_surface_depth_matches_finite_differences():
    field = BumpySphere()
    origins, directions = rays(6, seed=1)
    hit, root = root_of(field, origins, directions)
    assert hit.all()
    depth = differentiable_depth(field, origins, directions, root)
    torch.testing.assert_close(depth, root, atol=1e-12, rtol=0)  # same value: the correction is f(p_hat) ~ 0
    parameters = list(field.parameters())
    analytic = [torch.autograd.grad(depth[ray], parameters, retain_graph=True) for ray in range(len(origins))]
    for ray in range(len(origins)):
        for parameter, gradient in zip(parameters, analytic[ray], strict=True):
            for index in [(0,) * parameter.ndim, tuple(s - 1 for s in parameter.shape)]:
                eps = 1e-6
                with torch.no_grad():
                    parameter[index] += eps
                    _, plus = root_of(field, origins[ray : ray + 1], directions[ray : ray + 1])
                    parameter[index] -= 2 * eps
                    _, minus = root_of(field, origins[ray : ray + 1], directions[ray : ray + 1])
                    parameter[index] += eps
                numeric = (plus - minus) / (2 * eps)
                assert gradient[index].item() == pytest.approx(numeric.item(), abs=1e-6, rel=1e-4)


def test_marching_and_secant_find_the_exact_intersection():
    scene = make_scene("torus")
    camera = orbit_cameras(1, width=24, height=24, elevation_degrees=40)[0]
    exact = render(scene, camera)
    from vision3d.scenes import pixel_rays

    origins, directions = pixel_rays(camera)
    hit, root = root_of(lambda p: -scene.shape.sdf(p), origins, directions)
    assert torch.equal(hit.reshape(24, 24), exact.mask)
    torch.testing.assert_close(root.reshape(24, 24)[exact.mask], exact.depth[exact.mask], atol=1e-9, rtol=0)


@pytest.mark.slow
def test_dvr_learns_a_silhouette_from_images_and_masks():
    scene = make_scene("sphere")
    train = render_views(scene, hemisphere_cameras(20, seed=0, width=24, height=24))
    test = render_views(scene, orbit_cameras(3, elevation_degrees=25, start_degrees=30, width=24, height=24))
    config = DVRConfig(steps=1000, batch_rays=512, hidden=64, depth=3)
    field, history = fit_dvr(train, config)
    ious = []
    for camera, mask in zip(test.cameras, test.mask, strict=True):
        _, silhouette = render_dvr(field, camera, config)
        ious.append(((silhouette & mask).sum() / (silhouette | mask).sum()).item())
    assert min(ious) >= 0.85, ious
