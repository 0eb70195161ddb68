"""Spherical harmonics of vision3d.splatting.sh against independent references (scipy's complex harmonics, a
quadrature on the sphere, the formula written out by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import roots_legendre, sph_harm_y

from vision3d.splatting.sh import (
    C0,
    C1,
    C2,
    C3,
    eval_sh,
    num_sh_coefficients,
    rgb_to_sh0,
    sh0_to_rgb,
    sh_basis,
    sh_degree_from_coefficients,
    sh_to_rgb,
)

# (l, m) of each basis index k = l^2 + l + m, and the sign of 3DGS's function relative to the textbook real harmonic:
# 3DGS's basis is (-1)^m Y_lm, i.e. the odd orders are flipped.
LM = [(band, m) for band in range(4) for m in range(-band, band + 1)]
SIGNS = [1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1]


def random_unit_directions(n: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    v = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return v / v.norm(dim=1, keepdim=True)


def real_sh_scipy(band: int, m: int, directions: np.ndarray) -> np.ndarray:
    """Textbook real harmonic from scipy's complex one (which carries the Condon-Shortley phase (-1)^m)."""
    x, y, z = directions.T
    theta = np.arccos(np.clip(z, -1.0, 1.0))
    phi = np.mod(np.arctan2(y, x), 2 * np.pi)
    if m < 0:
        return math.sqrt(2) * (-1) ** m * sph_harm_y(band, -m, theta, phi).imag
    if m > 0:
        return math.sqrt(2) * (-1) ** m * sph_harm_y(band, m, theta, phi).real
    return sph_harm_y(band, 0, theta, phi).real


def test_signs_are_minus_one_to_the_m():
    assert SIGNS == [(-1) ** m for _, m in LM]


def test_basis_equals_scipy_real_harmonics_up_to_the_stated_sign():
    d = random_unit_directions(200)
    basis = sh_basis(3, d).numpy()
    assert basis.shape == (200, 16) and basis.dtype == np.float64
    for k, ((band, m), sign) in enumerate(zip(LM, SIGNS, strict=True)):
        expected = sign * real_sh_scipy(band, m, d.numpy())
        np.testing.assert_allclose(basis[:, k], expected, rtol=0, atol=1e-10, err_msg=f"k={k} (l={band}, m={m})")


def test_lower_degree_basis_is_a_prefix_and_directions_are_normalized():
    d = random_unit_directions(20, seed=1)
    full = sh_basis(3, d)
    for degree in range(4):
        assert torch.equal(sh_basis(degree, d), full[:, : num_sh_coefficients(degree)])
    scaled = d * torch.linspace(0.1, 30.0, 20, dtype=d.dtype)[:, None]
    torch.testing.assert_close(sh_basis(3, scaled), full, rtol=0, atol=1e-14)


def test_basis_is_orthonormal_on_the_sphere():
    # Gauss-Legendre in cos(theta) (exact for polynomials of degree <= 2 * 8 - 1) times a uniform rule in phi
    # (exact for trigonometric polynomials of order < 16): exact for products of two degree-3 harmonics.
    nodes, weights = roots_legendre(8)
    n_phi = 16
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    cos_theta, phi_grid = np.meshgrid(nodes, phi, indexing="ij")
    sin_theta = np.sqrt(1 - cos_theta**2)
    directions = np.stack([sin_theta * np.cos(phi_grid), sin_theta * np.sin(phi_grid), cos_theta], -1).reshape(-1, 3)
    w = (weights[:, None] * np.full(n_phi, 2 * np.pi / n_phi)[None, :]).reshape(-1)
    basis = sh_basis(3, torch.from_numpy(directions)).numpy()
    gram = basis.T @ (w[:, None] * basis)
    np.testing.assert_allclose(gram, np.eye(16), rtol=0, atol=1e-10)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_eval_sh_equals_the_formula_written_out(degree):
    generator = torch.Generator().manual_seed(degree)
    sh = torch.randn(1, 16, 3, generator=generator, dtype=torch.float64)
    d = random_unit_directions(1, seed=10 + degree)
    x, y, z = d[0].tolist()
    c = sh[0]
    f = C0 * c[0]
    if degree >= 1:
        f = f - C1 * y * c[1] + C1 * z * c[2] - C1 * x * c[3]
    if degree >= 2:
        f = (
            f
            + C2[0] * x * y * c[4]
            + C2[1] * y * z * c[5]
            + C2[2] * (2 * z * z - x * x - y * y) * c[6]
            + C2[3] * x * z * c[7]
            + C2[4] * (x * x - y * y) * c[8]
        )
    if degree >= 3:
        f = (
            f
            + C3[0] * y * (3 * x * x - y * y) * c[9]
            + C3[1] * x * y * z * c[10]
            + C3[2] * y * (4 * z * z - x * x - y * y) * c[11]
            + C3[3] * z * (2 * z * z - 3 * x * x - 3 * y * y) * c[12]
            + C3[4] * x * (4 * z * z - x * x - y * y) * c[13]
            + C3[5] * z * (x * x - y * y) * c[14]
            + C3[6] * x * (x * x - 3 * y * y) * c[15]
        )
    torch.testing.assert_close(eval_sh(sh, d, degree)[0], f, rtol=0, atol=1e-12)
    # With exactly (degree + 1)^2 coefficients the degree is implied.
    torch.testing.assert_close(eval_sh(sh[:, : (degree + 1) ** 2], d)[0], f, rtol=0, atol=1e-12)
    torch.testing.assert_close(sh_to_rgb(sh, d, degree)[0], (f + 0.5).clamp_min(0), rtol=0, atol=1e-12)


def test_coefficients_above_the_active_degree_do_not_change_the_output():
    generator = torch.Generator().manual_seed(3)
    sh = torch.randn(50, 16, 3, generator=generator, dtype=torch.float64)
    d = random_unit_directions(50, seed=4)
    for degree in range(4):
        active = num_sh_coefficients(degree)
        changed = sh.clone()
        changed[:, active:] = torch.randn(50, 16 - active, 3, generator=generator, dtype=torch.float64) * 100
        assert torch.equal(eval_sh(changed, d, degree), eval_sh(sh, d, degree))
        assert torch.equal(eval_sh(sh, d, degree), eval_sh(sh[:, :active], d))
        # ...and receive zero gradient.
        leaf = sh.clone().requires_grad_()
        eval_sh(leaf, d, degree).sum().backward()
        assert torch.all(leaf.grad[:, active:] == 0) and torch.all(leaf.grad[:, :active] != 0)


def test_rgb_dc_round_trip_and_degree_zero_colour_is_view_independent():
    rgb = torch.rand(30, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    sh0 = rgb_to_sh0(rgb)
    torch.testing.assert_close(sh0_to_rgb(sh0), rgb, rtol=0, atol=1e-15)
    torch.testing.assert_close(rgb_to_sh0(sh0_to_rgb(sh0)), sh0, rtol=0, atol=1e-14)
    assert torch.equal(rgb_to_sh0(torch.full((3,), 0.5)), torch.zeros(3))
    sh = torch.zeros(30, 16, 3, dtype=torch.float64)
    sh[:, 0] = sh0
    for seed in range(3):
        torch.testing.assert_close(sh_to_rgb(sh, random_unit_directions(30, seed=seed), 0), rgb, rtol=0, atol=1e-14)
    # The colour is clamped at 0 from below only.
    extreme = torch.tensor([[[-10.0, 0.0, 10.0]]], dtype=torch.float64)
    colour = sh_to_rgb(extreme, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64))
    torch.testing.assert_close(colour, torch.tensor([[0.0, 0.5, 10.0 * C0 + 0.5]], dtype=torch.float64))


def test_float32_inputs_keep_their_dtype():
    sh = torch.randn(4, 9, 3, generator=torch.Generator().manual_seed(0))
    d = random_unit_directions(4, dtype=torch.float32)
    assert eval_sh(sh, d).dtype == torch.float32 and sh_basis(2, d).dtype == torch.float32


def test_degree_from_coefficients():
    assert [sh_degree_from_coefficients(k) for k in (1, 4, 9, 16)] == [0, 1, 2, 3]
    for k in (0, 2, 3, 25):
        with pytest.raises(ValueError, match="1, 4, 9 or 16"):
            sh_degree_from_coefficients(k)


def test_errors_for_bad_input():
    d = random_unit_directions(5)
    with pytest.raises(ValueError, match="1, 4, 9 or 16"):
        eval_sh(torch.zeros(5, 5, 3, dtype=torch.float64), d)
    with pytest.raises(ValueError, match=r"sh must have shape \[N, K, 3\]"):
        eval_sh(torch.zeros(5, 4), d)
    with pytest.raises(ValueError, match=r"sh must have shape \[N, K, 3\]"):
        eval_sh(torch.zeros(5, 4, 1), d)
    with pytest.raises(ValueError, match=r"directions must have shape \[N, 3\]"):
        eval_sh(torch.zeros(6, 4, 3, dtype=torch.float64), d)
    with pytest.raises(ValueError, match="holds only 4"):
        eval_sh(torch.zeros(5, 4, 3, dtype=torch.float64), d, degree=2)
    for degree in (-1, 4, 1.0, True):
        with pytest.raises(ValueError, match="SH degree"):
            eval_sh(torch.zeros(5, 16, 3, dtype=torch.float64), d, degree=degree)
    with pytest.raises(ValueError, match=r"directions must have shape \[N, 3\]"):
        sh_basis(1, torch.zeros(5, 2))
    with pytest.raises(ValueError, match="zero-length"):
        sh_basis(1, torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="non-finite"):
        sh_basis(1, torch.tensor([[1.0, float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="floating point"):
        sh_basis(1, torch.tensor([[1, 0, 0]]))
