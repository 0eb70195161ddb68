"""NeRF volume rendering and ray sampling against brute-force and closed-form references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from vision3d.nerf import hierarchical_samples, sample_pdf, stratified_samples, volume_render


def composite_reference(sigma: list[float], color: list[list[float]], t: list[float], far_delta: float = 1e10):
    """Front-to-back alpha compositing of one ray, one sample at a time, in Python floats."""
    transmittance, weights, rgb, depth = 1.0, [], [0.0, 0.0, 0.0], 0.0
    for i in range(len(t)):
        delta = t[i + 1] - t[i] if i + 1 < len(t) else far_delta
        alpha = 1.0 - math.exp(-sigma[i] * delta)
        weight = transmittance * alpha
        weights.append(weight)
        rgb = [acc + weight * c for acc, c in zip(rgb, color[i], strict=True)]
        depth += weight * t[i]
        transmittance *= 1.0 - alpha
    return weights, rgb, depth


def random_rays(n_rays: int, n_samples: int, seed: int = 0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    sigma = torch.rand(n_rays, n_samples, generator=generator, dtype=dtype) * 3
    sigma[:, ::3] = 0.0  # empty samples too
    color = torch.rand(n_rays, n_samples, 3, generator=generator, dtype=dtype)
    t = 2 + torch.rand(n_rays, n_samples, generator=generator, dtype=dtype).sort(dim=-1).values * 4
    return sigma, color, t


@pytest.mark.parametrize("far_delta", [1e10, 0.25])
def test_weights_equal_front_to_back_compositing(far_delta):
    sigma, color, t = random_rays(4, 9)
    result = volume_render(sigma, color, t, far_delta=far_delta)
    for ray in range(4):
        weights, rgb, depth = composite_reference(sigma[ray].tolist(), color[ray].tolist(), t[ray].tolist(), far_delta)
        assert result.weights[ray].tolist() == pytest.approx(weights, abs=1e-12)
        assert result.rgb[ray].tolist() == pytest.approx(rgb, abs=1e-12)
        assert result.depth[ray].item() == pytest.approx(depth, abs=1e-12)
    torch.testing.assert_close(result.weights.sum(-1), result.opacity, rtol=0, atol=1e-15)
    assert torch.all(result.opacity <= 1) and torch.all(result.weights >= 0)
    assert result.rgb.shape == (4, 3) and result.depth.shape == (4,) and result.weights.shape == (4, 9)


def test_default_far_delta_makes_the_last_dense_sample_opaque():
    sigma, color, t = random_rays(3, 5)
    sigma[:, -1] = 0.5
    assert torch.allclose(volume_render(sigma, color, t).opacity, torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("uniform", [True, False])
def test_constant_medium_opacity_matches_beer_lambert(uniform):
    sigma_value, length, n = 0.7, 3.0, 33
    if uniform:
        t = torch.linspace(0, length, n, dtype=torch.float64)[None]
    else:  # any partition of [0, L] integrates a constant exactly
        inner = torch.rand(n - 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64).sort().values
        t = torch.cat([torch.zeros(1, dtype=torch.float64), inner * length, torch.full((1,), length)])[None]
    sigma = torch.full_like(t, sigma_value)
    sigma[:, -1] = 0.0  # the last sample sits at t = L: nothing beyond the medium
    result = volume_render(sigma, torch.rand(1, n, 3, dtype=torch.float64), t)
    assert result.opacity.item() == pytest.approx(1 - math.exp(-sigma_value * length), abs=1e-14)
    # Expected depth of a homogeneous slab: int_0^L t sigma e^{-sigma t} dt is only approximated by the
    # left Riemann sum of the quadrature, so compare loosely on the uniform grid.
    if uniform:
        exact = (1 - math.exp(-sigma_value * length) * (1 + sigma_value * length)) / sigma_value
        assert result.depth.item() == pytest.approx(exact, abs=0.05)


def test_background_fills_the_transmitted_light():
    sigma, color, t = random_rays(3, 6)
    empty = volume_render(torch.zeros_like(sigma), color, t, background=1.0)
    assert torch.equal(empty.rgb, torch.ones(3, 3, dtype=torch.float64)) and torch.all(empty.opacity == 0)
    assert torch.all(volume_render(torch.zeros_like(sigma), color, t, background=0.0).rgb == 0)
    premultiplied = volume_render(sigma, color, t, far_delta=0.1)
    for background in (torch.tensor([0.2, 0.5, 0.9], dtype=torch.float64), torch.rand(3, 3, dtype=torch.float64)):
        result = volume_render(sigma, color, t, background=background, far_delta=0.1)
        expected = premultiplied.rgb + (1 - premultiplied.opacity[:, None]) * background
        torch.testing.assert_close(result.rgb, expected, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="background"):
        volume_render(sigma, color, t, background=torch.ones(2))


def test_volume_render_gradcheck():
    sigma, color, t = random_rays(2, 4, seed=3)
    sigma = (sigma + 0.1).requires_grad_()  # away from 0, where the last alpha jumps with far_delta = 1e10
    color.requires_grad_()
    t.requires_grad_()
    background = torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64, requires_grad=True)

    def render(sigma, color, t, background):
        result = volume_render(sigma, color, t, background=background, far_delta=0.5)
        return result.rgb, result.depth, result.opacity

    assert torch.autograd.gradcheck(render, (sigma, color, t, background))
    # And with NeRF's infinite last segment.
    assert torch.autograd.gradcheck(lambda s, c: volume_render(s, c, t.detach()).rgb, (sigma, color))


def test_volume_render_rejects_bad_input():
    sigma, color, t = random_rays(2, 4)
    with pytest.raises(ValueError, match="empty batch"):
        volume_render(sigma[:0], color[:0], t[:0])
    with pytest.raises(ValueError, match="no samples"):
        volume_render(sigma[:, :0], color[:, :0], t[:, :0])
    with pytest.raises(ValueError, match="sigma contains NaN"):
        volume_render(torch.where(sigma > 1, math.nan, sigma), color, t)
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        volume_render(sigma - 1, color, t)
    with pytest.raises(ValueError, match="color must have shape"):
        volume_render(sigma, color[..., :2], t)
    with pytest.raises(ValueError, match="t must have sigma's shape"):
        volume_render(sigma, color, t[:, :3])
    with pytest.raises(ValueError, match="non-decreasing"):
        volume_render(sigma, color, t.flip(-1))
    with pytest.raises(ValueError, match="2 dims"):
        volume_render(sigma[0], color[0], t[0])


def test_stratified_samples_lie_in_their_bins():
    generator = torch.Generator().manual_seed(0)
    near = torch.rand(5, generator=generator, dtype=torch.float64)
    far = near + 0.5 + torch.rand(5, generator=generator, dtype=torch.float64)
    n = 16
    t = stratified_samples(near, far, n, perturb=True, generator=generator)
    assert t.shape == (5, n) and t.dtype == torch.float64
    edges = near[:, None] + (far - near)[:, None] * torch.arange(n + 1, dtype=torch.float64) / n
    assert torch.all(t >= edges[:, :-1]) and torch.all(t < edges[:, 1:])
    assert torch.all(t[:, 1:] >= t[:, :-1])
    # Not the midpoints: one uniform draw per bin (all 80 draws in [0, 1) of their bins, spread out).
    position = ((t - edges[:, :-1]) / (edges[:, 1:] - edges[:, :-1])).flatten()
    assert stats.kstest(position.numpy(), "uniform").pvalue > 0.01
    midpoints = stratified_samples(near, far, n, perturb=False)
    torch.testing.assert_close(midpoints, 0.5 * (edges[:, 1:] + edges[:, :-1]), rtol=0, atol=1e-14)
    # Scalar bounds need n_rays; the same generator seed gives the same samples.
    scalar = stratified_samples(2.0, 6.0, 4, n_rays=3, generator=torch.Generator().manual_seed(7))
    assert scalar.shape == (3, 4)
    assert torch.equal(scalar, stratified_samples(2.0, 6.0, 4, n_rays=3, generator=torch.Generator().manual_seed(7)))
    with pytest.raises(ValueError, match="n_rays is required"):
        stratified_samples(2.0, 6.0, 4)
    with pytest.raises(ValueError, match="disagree"):
        stratified_samples(near, 6.0, 4, n_rays=3)
    with pytest.raises(ValueError, match="far must be greater than near"):
        stratified_samples(near, near, 4)


# A piecewise-constant density on uneven bins, with an empty bin.
BINS = np.array([0.0, 0.5, 1.5, 2.0, 4.0])
MASSES = np.array([1.0, 0.0, 3.0, 2.0])


def exact_cdf(x):
    """CDF of the density with mass MASSES_k / sum spread uniformly over [BINS_k, BINS_{k+1}]."""
    return np.interp(x, BINS, np.concatenate([[0.0], np.cumsum(MASSES) / MASSES.sum()]))


def test_sample_pdf_follows_the_piecewise_constant_density():
    n = 4000
    bins = torch.tensor(BINS)[None].repeat(2, 1)
    weights = torch.tensor(MASSES)[None].repeat(2, 1)
    samples = sample_pdf(bins, weights, n, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (2, n) and torch.all(samples[:, 1:] >= samples[:, :-1])
    draws = np.sort(samples[0].numpy())  # the two rays draw independently
    assert stats.kstest(draws, exact_cdf).pvalue > 0.01
    ecdf = np.arange(1, n + 1) / n
    assert np.max(np.abs(ecdf - exact_cdf(draws))) < 0.03  # DKW: P(sup > 0.03) <= 2 exp(-2 n 0.03^2) ~ 1.5e-3
    # The empty bin gets (almost: eps = 1e-5) nothing.
    assert np.mean((draws > 0.5) & (draws < 1.5)) < 1e-3


def test_sample_pdf_deterministic_gives_the_quantiles():
    n = 10
    bins = torch.tensor(BINS)[None]
    samples = sample_pdf(bins, torch.tensor(MASSES)[None], n, deterministic=True, eps=0.0)[0].numpy()
    quantiles = (np.arange(n) + 0.5) / n
    np.testing.assert_allclose(exact_cdf(samples), quantiles, rtol=0, atol=1e-14)
    assert not np.any((samples > 0.5) & (samples < 1.5))
    # A ray with all-zero weights puts the same mass on every bin.
    flat = sample_pdf(bins, torch.zeros(1, 4, dtype=torch.float64), n, deterministic=True, eps=0.0)[0].numpy()
    np.testing.assert_allclose(flat, np.interp(quantiles, np.linspace(0, 1, 5), BINS), rtol=0, atol=1e-14)


def test_sample_pdf_rejects_bad_input():
    bins = torch.tensor(BINS)[None]
    with pytest.raises(ValueError, match="weights must have shape"):
        sample_pdf(bins, torch.ones(1, 3, dtype=torch.float64), 4)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        sample_pdf(bins, -torch.ones(1, 4, dtype=torch.float64), 4)
    with pytest.raises(ValueError, match="bins must be non-decreasing"):
        sample_pdf(bins.flip(-1), torch.ones(1, 4, dtype=torch.float64), 4)
    with pytest.raises(ValueError, match="empty batch"):
        sample_pdf(bins[:0], torch.ones(0, 4, dtype=torch.float64), 4)


def test_hierarchical_samples_concentrate_where_the_weights_are():
    t_coarse = stratified_samples(0.0, 1.0, 32, n_rays=3, perturb=False).double()
    weights = torch.zeros_like(t_coarse)
    weights[:, 10] = 1.0  # all mass on sample 10: its bin is between the midpoints around it
    t = hierarchical_samples(t_coarse, weights, 64, generator=torch.Generator().manual_seed(0))
    assert t.shape == (3, 96) and torch.all(t[:, 1:] >= t[:, :-1])
    assert all(torch.isin(t_coarse[ray], t[ray]).all() for ray in range(3))
    fine = t[~torch.isin(t, t_coarse)]
    low, high = (t_coarse[0, 9] + t_coarse[0, 10]) / 2, (t_coarse[0, 10] + t_coarse[0, 11]) / 2
    assert ((fine >= low) & (fine <= high)).double().mean() > 0.99
    # No gradient flows into the coarse weights through the fine sample positions.
    weights.requires_grad_()
    assert not hierarchical_samples(t_coarse, weights, 8)[:, 32:].requires_grad
    with pytest.raises(ValueError, match="at least 3 samples"):
        hierarchical_samples(t_coarse[:, :2], weights[:, :2], 8)
