"""Input encodings (positional, Fourier, hash grid) and the occupancy grid against independent references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vision3d.nerf import FourierFeatures, HashGrid, OccupancyGrid, PositionalEncoding, make_encoding
from vision3d.nerf.encodings import HASH_PRIMES, level_resolutions, spatial_hash


def random_points(n: int, dim: int, seed: int = 0, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(n, dim, generator=generator, dtype=torch.float64)


def randomized(grid: HashGrid, seed: int = 0) -> HashGrid:
    """The grid in float64 with O(1) table entries, so that interpolation errors are not hidden by 1e-4 values."""
    grid = grid.double()
    with torch.no_grad():
        grid.table.copy_(torch.randn(grid.table.shape, generator=torch.Generator().manual_seed(seed)))
    return grid


def test_positional_encoding_is_the_papers_formula():
    x = random_points(5, 3)
    encoding = PositionalEncoding(3, n_frequencies=4)
    expected = [x] + [f(2.0**k * math.pi * x) for k in range(4) for f in (torch.sin, torch.cos)]
    torch.testing.assert_close(encoding(x), torch.cat(expected, dim=-1), rtol=0, atol=1e-15)
    assert encoding.out_dim == 3 * (1 + 2 * 4) == encoding(x).shape[-1]
    without_input = PositionalEncoding(3, n_frequencies=4, include_input=False)
    assert without_input.out_dim == 24 and torch.equal(without_input(x), encoding(x)[:, 3:])
    # pi is in: sin(2^0 pi * 1/2) = 1, and leading batch dims pass through.
    assert without_input(torch.full((2, 1, 3), 0.5))[0, 0, 0].item() == pytest.approx(1.0)
    assert without_input(torch.zeros(2, 7, 3)).shape == (2, 7, 24)
    with pytest.raises(ValueError, match=r"\[..., 3\]"):
        encoding(torch.zeros(4, 2))


def test_positional_encoding_window_fades_octaves_in_coarse_to_fine():
    x = random_points(5, 3)
    encoding = PositionalEncoding(3, n_frequencies=4)
    full = encoding(x)
    assert encoding.window.item() == 4.0 and "window" in encoding.state_dict()
    encoding.window.fill_(0.0)
    torch.testing.assert_close(encoding(x), torch.cat([x, torch.zeros(5, 24, dtype=x.dtype)], -1), rtol=0, atol=0)
    encoding.window.fill_(1.5)  # octave 0 fully open, octave 1 half way: (1 - cos(pi / 2)) / 2 = 1/2, the rest shut
    torch.testing.assert_close(encoding.octave_weights(torch.float64), torch.tensor([1.0, 0.5, 0, 0], dtype=x.dtype))
    weights = torch.tensor([1.0, 0.5, 0, 0], dtype=x.dtype).repeat_interleave(6)
    torch.testing.assert_close(encoding(x), torch.cat([x, full[:, 3:] * weights], -1), rtol=0, atol=1e-15)
    encoding.window.fill_(4.0)
    assert torch.equal(encoding(x), full)


def test_fourier_features_scale_and_formula():
    big = FourierFeatures(3, n_features=20_000, scale=7.0, seed=0)
    assert big.B.shape == (20_000, 3) and big.out_dim == 40_000
    assert big.B.std().item() == pytest.approx(7.0, rel=0.02) and abs(big.B.mean().item()) < 0.1
    assert list(big.parameters()) == [] and "B" in big.state_dict()  # fixed, saved

    encoding = FourierFeatures(2, n_features=16, scale=3.0, seed=1)
    x = random_points(6, 2)
    angles = 2 * np.pi * x.numpy() @ encoding.B.double().numpy().T
    expected = np.concatenate([np.cos(angles), np.sin(angles)], axis=-1)
    np.testing.assert_allclose(encoding(x).numpy(), expected, rtol=0, atol=1e-12)
    assert torch.equal(FourierFeatures(2, 16, 3.0, seed=1).B, encoding.B)
    assert not torch.equal(FourierFeatures(2, 16, 3.0, seed=2).B, encoding.B)


def test_level_resolutions_follow_the_geometric_progression():
    resolutions = level_resolutions(16, 16, 2048, None)
    growth = math.exp((math.log(2048) - math.log(16)) / 15)
    assert resolutions[0] == 16 and resolutions[-1] == 2048
    assert level_resolutions(16, 16, 4096, None)[-1] == 4096  # 16 b^15 evaluates to 4095.99999999999
    assert all(abs(n - 16 * growth**level) < 1 for level, n in enumerate(resolutions))
    assert level_resolutions(3, 4, None, 2.0) == (4, 8, 16)
    assert HashGrid(2, n_levels=3, log2_table_size=6, base_resolution=4, growth_factor=2.0).resolutions == (4, 8, 16)


def dense_reference(grid: HashGrid, x: torch.Tensor) -> torch.Tensor:
    """Each level's table rows reshaped to its dense vertex grid, d-linearly interpolated by grid_sample."""
    dim, features = grid.in_dim, []
    for level, n in enumerate(grid.resolutions):
        start = int(grid.offsets[level])
        rows = grid.table[start : start + (n + 1) ** dim]
        # Row sum_i v_i (n + 1)^i, x fastest: the array axes are (z, y, x), grid_sample's (D, H, W) order.
        volume = rows.reshape(*([n + 1] * dim), grid.n_features).movedim(-1, 0)[None]
        lookup = x.reshape(1, *([1] * (dim - 1)), -1, dim)  # grid_sample wants (x, y, z) in [-1, 1]
        features.append(F.grid_sample(volume, lookup, mode="bilinear", align_corners=True).reshape(grid.n_features, -1))
    return torch.cat([f.T for f in features], dim=-1)


@pytest.mark.parametrize("dim", [2, 3])
def test_collision_free_hash_grid_equals_dense_interpolation(dim):
    grid = randomized(HashGrid(dim, n_levels=3, log2_table_size=12, n_features=2, base_resolution=2, max_resolution=8))
    assert grid.resolutions == (2, 4, 8) and all(grid.dense_levels) and grid.out_dim == 6
    corners = torch.tensor([[-1.0] * dim, [1.0] * dim, [1.0] + [-1.0] * (dim - 1)], dtype=torch.float64)
    x = torch.cat([random_points(200, dim, seed=dim), corners])
    out = grid(x)
    assert out.shape == (203, 6)
    torch.testing.assert_close(out, dense_reference(grid, x), rtol=0, atol=1e-12)
    assert grid(x.reshape(7, 29, dim)).shape == (7, 29, 6)


def numpy_hash(vertices: np.ndarray, table_size: int) -> np.ndarray:
    """Instant-NGP's hash in wrapping uint32 arithmetic."""
    primes = np.array(HASH_PRIMES, dtype=np.uint32)
    vertices = vertices.astype(np.uint32)
    hashed = np.zeros(vertices.shape[:-1], dtype=np.uint32)
    for i in range(vertices.shape[-1]):
        hashed ^= vertices[..., i] * primes[i]
    return hashed.astype(np.int64) % table_size


def test_spatial_hash_uses_instant_ngp_primes():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [3, 7, 12], [2048, 2047, 1], [99_999, 5, 77_777]])
    assert HASH_PRIMES == (1, 2654435761, 805459861)
    for table_size in (2**8, 2**19, 2**32):
        np.testing.assert_array_equal(
            spatial_hash(torch.from_numpy(vertices), table_size).numpy(), numpy_hash(vertices, table_size)
        )
    # By hand: (0, 1, 0) -> 2654435761 mod 2^19.
    assert spatial_hash(torch.tensor([0, 1, 0]), 2**19).item() == 2654435761 % 2**19
    np.testing.assert_array_equal(
        spatial_hash(torch.from_numpy(vertices[:, :2]), 2**19).numpy(), numpy_hash(vertices[:, :2], 2**19)
    )


def test_hashed_level_reads_the_hashed_rows():
    grid = randomized(HashGrid(3, n_levels=2, log2_table_size=8, n_features=2, base_resolution=4, max_resolution=16))
    assert grid.resolutions == (4, 16) and grid.dense_levels == (True, False) and grid.level_sizes == (125, 256)
    table = grid.table.detach().numpy()
    # At a vertex of level 1 the level's feature is that vertex's row.
    vertex = np.array([3, 7, 12])
    x = torch.tensor(-1 + 2 * vertex / 16)[None]
    row = 125 + numpy_hash(vertex, 256)
    np.testing.assert_allclose(grid(x)[0, 2:].detach().numpy(), table[row], rtol=0, atol=1e-15)
    # Inside a cell: trilinear interpolation of the 8 hashed corners, one corner at a time.
    point = np.array([0.123, -0.456, 0.789])
    scaled = (point + 1) / 2 * 16
    cell, fraction = np.floor(scaled).astype(np.int64), scaled - np.floor(scaled)
    expected = np.zeros(2)
    for bits in np.ndindex(2, 2, 2):
        weight = np.prod([f if b else 1 - f for f, b in zip(fraction, bits, strict=True)])
        expected += weight * table[125 + numpy_hash(cell + np.array(bits), 256)]
    np.testing.assert_allclose(grid(torch.tensor(point)[None])[0, 2:].detach().numpy(), expected, atol=1e-12)


def test_hash_grid_gradients_match_finite_differences():
    grid = randomized(HashGrid(3, n_levels=2, log2_table_size=6, n_features=2, base_resolution=2, max_resolution=4))
    assert grid.dense_levels == (True, False)
    x = random_points(6, 3, seed=5, low=-0.95, high=0.95)
    table = grid.table.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda tab: torch.func.functional_call(grid, {"table": tab}, (x,)), (table,))
    # W.r.t. x inside cells (random points are almost surely 1e-6 away from every cell face).
    assert torch.autograd.gradcheck(grid, (x.clone().requires_grad_(),))


def test_hash_grid_is_continuous_across_cell_faces_and_clamps_outside():
    grid = randomized(HashGrid(3, n_levels=3, log2_table_size=8, n_features=2, base_resolution=4, max_resolution=16))
    assert not all(grid.dense_levels)
    yz = random_points(10, 2, seed=2)
    for face in (-0.5, 0.25):  # a face of every level, of the two finer ones
        below = grid(torch.cat([torch.full((10, 1), face - 1e-7, dtype=torch.float64), yz], dim=-1))
        above = grid(torch.cat([torch.full((10, 1), face + 1e-7, dtype=torch.float64), yz], dim=-1))
        # Slopes are at most ~16 cells * 2 * |table| ~ 100: a jump would be O(1), continuity gives ~2e-5.
        assert (below - above).abs().max().item() < 1e-4
    inside = torch.tensor([[1.0, 0.3, -1.0]], dtype=torch.float64)
    outside = torch.tensor([[1.5, 0.3, -4.0]], dtype=torch.float64)
    assert torch.equal(grid(inside), grid(outside))


def test_hash_grid_initialisation_and_errors():
    grid = HashGrid(2, n_levels=4, log2_table_size=10, n_features=4, base_resolution=4, max_resolution=64)
    assert grid.table.abs().max().item() <= 1e-4 and grid.table.std().item() > 1e-5
    assert grid.table.shape == (sum(grid.level_sizes), 4) and grid.out_dim == 16
    with pytest.raises(ValueError, match="in_dim"):
        HashGrid(4)
    with pytest.raises(ValueError, match="not both"):
        HashGrid(3, max_resolution=64, growth_factor=1.5)
    with pytest.raises(ValueError, match="bounds"):
        HashGrid(3, bounds=(1.0, -1.0))


def ball_density(points: torch.Tensor) -> torch.Tensor:
    return 10.0 * (points.norm(dim=-1) < 0.5).to(points.dtype)


def test_occupancy_grid_marks_a_ball():
    n = 16
    grid = OccupancyGrid(resolution=n, bounds=(-1.0, 1.0), threshold=0.01, decay=0.95)
    assert grid.occupied_fraction == 1.0  # nothing ruled out before the first update
    grid.update(ball_density, generator=torch.Generator().manual_seed(0))

    # Independent geometry: a cell surely inside the ball has its farthest corner inside, a cell surely outside
    # has its nearest point outside; the cells the sphere cuts may go either way.
    low = np.arange(n) * (2 / n) - 1
    lows = np.stack(np.meshgrid(low, low, low, indexing="ij"), axis=-1)
    highs = lows + 2 / n
    farthest = np.linalg.norm(np.maximum(np.abs(lows), np.abs(highs)), axis=-1)
    nearest = np.linalg.norm(np.clip(0.0, lows, highs), axis=-1)
    occupied = grid.occupied.numpy().copy()  # the buffer is updated in place
    assert occupied[farthest < 0.5].all() and (farthest < 0.5).sum() > 0
    assert not occupied[nearest >= 0.5].any()
    assert grid.occupied_fraction == pytest.approx(occupied.mean())

    # mask: the cell lookup, and nothing outside the box.
    points = random_points(500, 3, seed=4, low=-1.2, high=1.2)
    cell = np.clip(np.floor((points.numpy() + 1) / (2 / n)).astype(int), 0, n - 1)
    inside = np.all(np.abs(points.numpy()) <= 1, axis=-1)
    expected = inside & occupied[cell[:, 0], cell[:, 1], cell[:, 2]]
    np.testing.assert_array_equal(grid.mask(points.float()).numpy(), expected)
    assert grid.mask(torch.zeros(1, 3)).item() and not grid.mask(torch.full((1, 3), 0.95)).item()

    # Exponential moving max: a vanished density decays instead of dropping at once.
    grid.update(lambda p: torch.zeros(p.shape[0]), jitter=False, chunk_size=1000)
    assert torch.equal(grid.occupied, torch.from_numpy(occupied))
    assert grid.density.max().item() == pytest.approx(9.5)
    with pytest.raises(ValueError, match="density_fn must return"):
        grid.update(lambda p: torch.zeros(p.shape[0], 2))


def test_make_encoding():
    assert isinstance(make_encoding("positional", 3, n_frequencies=6), PositionalEncoding)
    assert make_encoding("fourier", 2, n_features=8, scale=1.0).out_dim == 16
    hashed = make_encoding("hash", 2, n_levels=2, log2_table_size=8, base_resolution=4, max_resolution=8)
    assert isinstance(hashed, HashGrid) and hashed(torch.zeros(5, 2)).shape == (5, hashed.out_dim)
    with pytest.raises(ValueError, match="fourier, hash, positional"):
        make_encoding("sinusoidal", 3)
