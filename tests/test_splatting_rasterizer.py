"""vision3d.splatting.rasterizer: the tile rasterizer against a per-pixel loop, its gradients, its identities."""

from __future__ import annotations

import math

import pytest
import torch

from vision3d.splatting.rasterizer import ALPHA_MAX, ALPHA_MIN, rasterize, tile_intersections

F64 = torch.float64


def naive_rasterize(means2d, conics, opacities, colors, depths, radii, width, height, background):
    """The rules spelled out one pixel and one Gaussian at a time (no tiles, no vectorization)."""
    n, n_channels = colors.shape
    order = sorted(range(n), key=lambda i: (float(depths[i]), i))
    image = torch.zeros(height, width, n_channels, dtype=F64)
    alpha = torch.zeros(height, width, dtype=F64)
    for y in range(height):
        for x in range(width):
            px, py = x + 0.5, y + 0.5
            transmittance, color = 1.0, [0.0] * n_channels
            for i in order:
                r = int(radii[i])
                u, v = float(means2d[i, 0]), float(means2d[i, 1])
                dx, dy = px - u, py - v
                if r == 0 or abs(dx) > r or abs(dy) > r:  # outside the closed footprint square
                    continue
                a, b, c = (float(q) for q in conics[i])
                power = -0.5 * (a * dx * dx + 2 * b * dx * dy + c * dy * dy)
                if power > 0:
                    continue
                alpha_i = min(ALPHA_MAX, float(opacities[i]) * math.exp(power))
                if alpha_i < ALPHA_MIN:
                    continue
                for k in range(n_channels):
                    color[k] += transmittance * alpha_i * float(colors[i, k])
                transmittance *= 1 - alpha_i
            for k in range(n_channels):
                image[y, x, k] = color[k] + transmittance * float(background[k])
            alpha[y, x] = 1 - transmittance
    return image, alpha


def conics_from(sigmas: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """``[N, 3]`` inverse covariances of Gaussians with axis std devs ``sigmas [N, 2]`` rotated by ``angles``."""
    cos, sin = torch.cos(angles), torch.sin(angles)
    rotation = torch.stack([cos, -sin, sin, cos], -1).reshape(-1, 2, 2)
    inverse = rotation @ torch.diag_embed(1 / sigmas**2) @ rotation.transpose(1, 2)
    return torch.stack([inverse[:, 0, 0], inverse[:, 0, 1], inverse[:, 1, 1]], -1)


def random_scene(n, width, height, seed, n_channels=3, max_opacity=1.0, dtype=F64):
    """Random Gaussians of random size, some centres outside the image, some radii 0, some nearly opaque."""
    g = torch.Generator().manual_seed(seed)
    means2d = torch.rand(n, 2, generator=g, dtype=F64) * torch.tensor([width + 6.0, height + 6.0], dtype=F64) - 3
    sigmas = 0.4 + 2.5 * torch.rand(n, 2, generator=g, dtype=F64)
    conics = conics_from(sigmas, math.pi * torch.rand(n, generator=g, dtype=F64))
    radii = torch.ceil(3 * sigmas.amax(1)).long()
    radii[torch.rand(n, generator=g) < 0.1] = 0
    opacities = max_opacity * (0.05 + 0.95 * torch.rand(n, generator=g, dtype=F64))
    colors = torch.rand(n, n_channels, generator=g, dtype=F64)
    depths = torch.rand(n, generator=g, dtype=F64)
    background = torch.rand(n_channels, generator=g, dtype=F64)
    tensors = (means2d, conics, opacities, colors, depths)
    return (*(t.to(dtype) for t in tensors), radii, background.to(dtype))


def render(scene, width, height, **kwargs):
    means2d, conics, opacities, colors, depths, radii, background = scene
    return rasterize(means2d, conics, opacities, colors, depths, radii, width, height, background, **kwargs)


def assert_matches_naive(scene, width, height, tile_size):
    image, alpha = render(scene, width, height, tile_size=tile_size)
    expected_image, expected_alpha = naive_rasterize(*scene[:6], width, height, scene[6])
    assert image.shape == (height, width, scene[3].shape[1]) and alpha.shape == (height, width)
    torch.testing.assert_close(image, expected_image, rtol=0, atol=1e-10)
    torch.testing.assert_close(alpha, expected_alpha, rtol=0, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_naive_loop_on_tiles_cut_by_the_border(seed):
    width, height = 13, 11  # tile_size 4: the last tile column and row are cut by the image border
    scene = random_scene(30, width, height, seed)
    conics = scene[1]
    conics[0] = torch.tensor([0.3, 0.8, 0.2], dtype=F64)  # indefinite: power > 0 on part of the footprint
    conics[1] = torch.tensor([40.0, 0.0, 40.0], dtype=F64)  # tiny and nearly opaque: alpha = min(0.99, ...) binds
    scene[2][1] = 1.0
    image, alpha = render(scene, width, height, tile_size=4)
    assert (alpha > 0.9).any() and (alpha < 0.5).any()  # the scene is neither empty nor saturated
    assert_matches_naive(scene, width, height, tile_size=4)


def test_tile_intersections_match_brute_force():
    width, height, tile_size = 13, 11, 4
    means2d, _, _, _, _, radii, _ = random_scene(40, width, height, seed=3)
    tile_ids, gaussian_ids = tile_intersections(means2d, radii, width, height, tile_size)
    found = set(zip(tile_ids.tolist(), gaussian_ids.tolist(), strict=True))
    assert len(found) == len(tile_ids)  # no pair twice
    tiles_x = math.ceil(width / tile_size)
    expected = set()
    for i in range(len(radii)):
        for y in range(height):
            for x in range(width):
                dx, dy = x + 0.5 - float(means2d[i, 0]), y + 0.5 - float(means2d[i, 1])
                if radii[i] > 0 and abs(dx) <= radii[i] and abs(dy) <= radii[i]:
                    expected.add(((y // tile_size) * tiles_x + x // tile_size, i))
    assert found == expected


def test_gaussians_on_tile_corners_and_outside_the_image_are_not_lost():
    width, height = 13, 11
    means2d = torch.tensor(
        [[4.0, 4.0], [8.0, 8.0], [12.0, 4.0], [-2.5, 5.0], [14.0, 12.0], [6.5, -3.0], [4.0, 9.5]], dtype=F64
    )
    n = len(means2d)
    conics = conics_from(torch.full((n, 2), 1.5, dtype=F64), torch.zeros(n, dtype=F64))
    radii = torch.tensor([3, 2, 5, 4, 3, 5, 2])
    opacities = torch.linspace(0.3, 0.9, n, dtype=F64)
    colors = torch.rand(n, 3, generator=torch.Generator().manual_seed(0), dtype=F64)
    scene = (means2d, conics, opacities, colors, torch.arange(n, dtype=F64), radii, torch.zeros(3, dtype=F64))
    for tile_size in (2, 4, 16):
        assert_matches_naive(scene, width, height, tile_size)
    image, alpha = render(scene, width, height, tile_size=4)
    assert (alpha[:3, 4:10] > 0).any()  # the one whose centre is above the image reaches into it


def test_single_gaussian_on_a_tile_corner_renders_symmetrically():
    means2d = torch.tensor([[4.0, 4.0]], dtype=F64)  # the corner shared by the four tiles of an 8x8 image
    conics = torch.tensor([[0.5, 0.0, 0.5]], dtype=F64)
    args = (conics, torch.tensor([0.8], dtype=F64), torch.ones(1, 1, dtype=F64), torch.zeros(1, dtype=F64))
    image, alpha = rasterize(means2d, *args, torch.tensor([3]), 8, 8, tile_size=4)
    for flipped in (alpha.flip(0), alpha.flip(1), alpha.T):
        torch.testing.assert_close(alpha, flipped, rtol=0, atol=1e-15)
    assert (alpha[1:7, 1:7] > 0).all() and (alpha[0] == 0).all()  # the square of radius 3 covers 6x6 pixels


def kink_distance(scene, width, height):
    """How far the scene is from every kink of the piecewise function: alpha = 1/255, alpha = 0.99, a pixel centre on
    the footprint square's border, power = 0 (positive definite conics only, where it sits at the centre)."""
    means2d, conics, opacities, _, _, radii, _ = scene
    ys, xs = torch.meshgrid(torch.arange(height, dtype=F64) + 0.5, torch.arange(width, dtype=F64) + 0.5, indexing="ij")
    dx = xs.reshape(-1, 1) - means2d[:, 0]
    dy = ys.reshape(-1, 1) - means2d[:, 1]
    a, b, c = conics.unbind(1)
    alpha_raw = opacities * torch.exp(-0.5 * (a * dx * dx + 2 * b * dx * dy + c * dy * dy))
    inside = (dx.abs() <= radii) & (dy.abs() <= radii) & (radii > 0)
    alpha_gap = torch.minimum((alpha_raw - ALPHA_MIN).abs(), (alpha_raw - ALPHA_MAX).abs())[inside]
    border_gap = torch.minimum((dx.abs() - radii).abs(), (dy.abs() - radii).abs())[:, radii > 0]
    return min(float(alpha_gap.min()), float(border_gap.min()))


def kink_free_scene(n, width, height, seed):
    scene = random_scene(n, width, height, seed, max_opacity=0.8)  # alpha <= o <= 0.8: the 0.99 cap never binds
    for t in scene:
        t.requires_grad_(t.is_floating_point() and t is not scene[4])
    assert (
        kink_distance(tuple(t.detach() for t in scene), width, height) > 1e-5
    )  # finite differences of step 1e-6 never cross a kink
    return scene


def test_gradients_match_central_finite_differences():
    width, height = 9, 7
    scene = kink_free_scene(12, width, height, seed=5)
    g = torch.Generator().manual_seed(0)
    image_weights = torch.randn(height, width, 3, generator=g, dtype=F64)
    alpha_weights = torch.randn(height, width, generator=g, dtype=F64)

    def loss():
        image, alpha = render(scene, width, height, tile_size=4)
        return (image * image_weights).sum() + (alpha * alpha_weights).sum()

    loss().backward()
    names = {0: "means2d", 1: "conics", 2: "opacities", 3: "colors", 6: "background"}
    step = 1e-6
    for index, name in names.items():
        tensor = scene[index]
        numeric = torch.zeros_like(tensor)
        with torch.no_grad():
            flat, numeric_flat = tensor.view(-1), numeric.view(-1)
            for k in range(flat.numel()):
                original = flat[k].item()
                flat[k] = original + step
                plus = loss()
                flat[k] = original - step
                minus = loss()
                flat[k] = original
                numeric_flat[k] = (plus - minus) / (2 * step)
        assert tensor.grad.abs().max() > 0, name
        torch.testing.assert_close(tensor.grad, numeric, rtol=1e-6, atol=1e-7, msg=lambda m, name=name: f"{name}: {m}")


def test_gradcheck_on_a_tiny_case():
    width, height = 5, 4
    means2d, conics, opacities, colors, depths, radii, background = kink_free_scene(3, width, height, seed=1)

    def function(means2d, conics, opacities, colors, background):
        return rasterize(means2d, conics, opacities, colors, depths, radii, width, height, background, tile_size=2)

    inputs = tuple(t.detach().requires_grad_() for t in (means2d, conics, opacities, colors, background))
    assert torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-6)


def test_one_gaussian_over_the_background():
    background = torch.tensor([0.1, 0.2, 0.3], dtype=F64)
    color = torch.tensor([[0.9, 0.5, 0.0]], dtype=F64)
    for opacity, expected_alpha in ((0.7, 0.7), (1.0, ALPHA_MAX)):  # alpha is capped at 0.99
        image, alpha = rasterize(
            torch.tensor([[2.5, 3.5]], dtype=F64),  # the centre of pixel (row 3, column 2): power = 0 there
            torch.tensor([[0.3, 0.1, 0.4]], dtype=F64),
            torch.tensor([opacity], dtype=F64),
            color,
            torch.zeros(1, dtype=F64),
            torch.tensor([4]),
            6,
            5,
            background,
        )
        torch.testing.assert_close(alpha[3, 2], torch.tensor(expected_alpha, dtype=F64), rtol=0, atol=1e-15)
        expected = expected_alpha * color[0] + (1 - expected_alpha) * background
        torch.testing.assert_close(image[3, 2], expected, rtol=0, atol=1e-15)


def test_two_gaussians_composite_front_to_back():
    means2d = torch.tensor([[1.5, 1.5], [1.5, 1.5]], dtype=F64)
    conics = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]], dtype=F64)
    opacities = torch.tensor([0.4, 0.6], dtype=F64)  # listed back first: the sort must put Gaussian 1 in front
    colors = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=F64)
    depths = torch.tensor([2.0, 1.0], dtype=F64)
    background = torch.tensor([0.0, 0.0, 1.0], dtype=F64)
    image, alpha = rasterize(means2d, conics, opacities, colors, depths, torch.tensor([2, 2]), 3, 3, background)
    front, back = 0.6, 0.4
    expected = front * colors[1] + (1 - front) * back * colors[0] + (1 - front) * (1 - back) * background
    torch.testing.assert_close(image[1, 1], expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(alpha[1, 1], torch.tensor(1 - (1 - front) * (1 - back), dtype=F64))


def test_invariant_to_input_order_and_tile_size():
    width, height = 37, 29
    scene = random_scene(60, width, height, seed=7)
    reference_image, reference_alpha = render(scene, width, height, tile_size=16)
    permutation = torch.randperm(60, generator=torch.Generator().manual_seed(0))
    permuted = tuple(t[permutation] for t in scene[:6]) + (scene[6],)
    for candidate, tile_size in ((permuted, 16), (scene, 4), (scene, 8), (scene, 64)):
        image, alpha = render(candidate, width, height, tile_size=tile_size)
        torch.testing.assert_close(image, reference_image, rtol=0, atol=1e-12)
        torch.testing.assert_close(alpha, reference_alpha, rtol=0, atol=1e-12)


def test_switched_off_and_empty_inputs_render_the_background():
    background = torch.tensor([0.2, 0.4, 0.6, 0.8], dtype=F64)
    scene = random_scene(5, 10, 6, seed=0, n_channels=4)
    scene = scene[:5] + (torch.zeros(5, dtype=torch.long), background)
    empty = (torch.zeros(0, 2), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, 4), torch.zeros(0))
    empty = tuple(t.to(F64) for t in empty) + (torch.zeros(0, dtype=torch.long), background)
    for candidate in (scene, empty):
        image, alpha = render(candidate, 10, 6)
        torch.testing.assert_close(image, background.expand(6, 10, 4), rtol=0, atol=0)
        assert (alpha == 0).all()
    image, alpha = rasterize(*empty[:6], 3, 2)  # default background: zeros
    assert image.shape == (2, 3, 4) and (image == 0).all()


def test_float32_stays_float32_and_close_to_float64():
    scene64 = random_scene(40, 20, 15, seed=4)
    scene32 = random_scene(40, 20, 15, seed=4, dtype=torch.float32)
    image32, alpha32 = render(scene32, 20, 15)
    image64, alpha64 = render(scene64, 20, 15)
    assert image32.dtype == alpha32.dtype == torch.float32
    torch.testing.assert_close(image32.double(), image64, rtol=0, atol=1e-4)
    torch.testing.assert_close(alpha32.double(), alpha64, rtol=0, atol=1e-4)


def test_small_memory_budget_gives_the_same_image_and_gradients():
    width, height = 40, 33
    scene = random_scene(80, width, height, seed=8)
    weights = torch.randn(height, width, 3, generator=torch.Generator().manual_seed(1), dtype=F64)
    results = []
    # One tile per chunk, recomputed in backward or kept; or everything in one chunk.
    for max_elements, max_saved_elements in ((1, 0), (1, 2**30), (2**30, 2**30)):
        inputs = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in scene]
        image, alpha = render(inputs, width, height, tile_size=8, max_elements=max_elements,
                              max_saved_elements=max_saved_elements)
        ((image * weights).sum() + alpha.sum()).backward()
        results.append((image, alpha, *(inputs[i].grad for i in (0, 1, 2, 3, 6))))
    for chunked in results[:2]:
        for small, large in zip(chunked, results[-1], strict=True):
            torch.testing.assert_close(small, large, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("means2d", torch.zeros(4, 3, dtype=F64), "means2d"),
        ("conics", torch.zeros(4, 2, dtype=F64), "conics"),
        ("opacities", torch.zeros(5, dtype=F64), "opacities"),
        ("colors", torch.zeros(3, 3, dtype=F64), "colors"),
        ("depths", torch.zeros(4, 1, dtype=F64), "depths"),
        ("radii", torch.ones(4, dtype=F64), "radii"),
        ("radii", -torch.ones(4, dtype=torch.long), "radii"),
        ("background", torch.zeros(2, dtype=F64), "background"),
        ("means2d", torch.full((4, 2), math.nan, dtype=F64), "means2d contains NaN"),
        ("opacities", torch.tensor([0.5, math.nan, 0.5, 0.5], dtype=F64), "opacities contains NaN"),
        ("opacities", torch.tensor([0.5, 1.5, 0.5, 0.5], dtype=F64), "opacities must lie in"),
        ("colors", torch.zeros(4, 3, dtype=torch.float32), "colors has dtype"),
        ("width", 0, "width"),
        ("tile_size", 2.0, "tile_size"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_culprit(field, value, message):
    names = ("means2d", "conics", "opacities", "colors", "depths", "radii", "background")
    arguments = dict(zip(names, random_scene(4, 8, 8, seed=0), strict=True))
    arguments.update(width=8, height=8, tile_size=4)
    arguments[field] = value
    with pytest.raises(ValueError, match=message):
        rasterize(**arguments)
