"""View-dependent colour of a Gaussian from real spherical harmonics (SH), degrees 0 to 3.

Each Gaussian stores ``K = (L + 1)^2`` RGB coefficients ``c_k`` (``sh [N, K, 3]``, ``k = l^2 + l + m`` for band
``l`` and order ``m = -l..l``; ``k = 0`` is the DC term). Seen from the unit direction ``d = (x, y, z)`` (camera
centre to Gaussian mean), its colour is::

    f(d) = sum_{k < (L + 1)^2} c_k Y_k(d)                    (one sum per colour channel)
    rgb(d) = max(f(d) + 1/2, 0)

The ``+ 1/2`` makes zero coefficients mid-grey; the clamp keeps colours non-negative (values above 1 are allowed).
Only bands ``l <= L`` with ``L`` the *active* degree enter the sum, so training can switch bands on one by one
(progressive activation) while ``sh`` already holds all of them.

The basis ``Y_k`` is orthonormal on the unit sphere (``integral Y_j Y_k dOmega = delta_jk``) and uses the constants
and sign convention of the 3D Gaussian splatting reference implementation (Kerbl et al. 2023)::

    l = 0:  C0
    l = 1:  -C1 y,  C1 z,  -C1 x
    l = 2:  C2[0] xy,  C2[1] yz,  C2[2] (2z^2 - x^2 - y^2),  C2[3] xz,  C2[4] (x^2 - y^2)
    l = 3:  C3[0] y (3x^2 - y^2),  C3[1] xyz,  C3[2] y (4z^2 - x^2 - y^2),  C3[3] z (2z^2 - 3x^2 - 3y^2),
            C3[4] x (4z^2 - x^2 - y^2),  C3[5] z (x^2 - y^2),  C3[6] x (x^2 - 3y^2)

These are the textbook real harmonics ``Y_lm`` times ``(-1)^m``: the odd orders have flipped signs. That only
relabels the coefficients, but it must match for checkpoints and PLY files to mean the same colours.

Since ``Y_0 = C0`` is constant, the DC coefficient of a colour ``rgb`` is ``(rgb - 1/2) / C0``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "C0",
    "C1",
    "C2",
    "C3",
    "MAX_SH_DEGREE",
    "eval_sh",
    "num_sh_coefficients",
    "rgb_to_sh0",
    "sh0_to_rgb",
    "sh_basis",
    "sh_degree_from_coefficients",
    "sh_to_rgb",
]

MAX_SH_DEGREE = 3

C0 = 0.28209479177387814  # 1 / (2 sqrt(pi))
C1 = 0.4886025119029199  # sqrt(3 / (4 pi))
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def num_sh_coefficients(degree: int) -> int:
    """``(degree + 1)^2``: the number of basis functions of bands ``0..degree``."""
    _check_degree(degree)
    return (degree + 1) ** 2


def sh_degree_from_coefficients(num_coefficients: int) -> int:
    """The degree ``L`` with ``(L + 1)^2 == num_coefficients``; a ``ValueError`` unless that is 1, 4, 9 or 16."""
    for degree in range(MAX_SH_DEGREE + 1):
        if (degree + 1) ** 2 == num_coefficients:
            return degree
    raise ValueError(f"the number of SH coefficients must be 1, 4, 9 or 16 (degree 0 to 3), got {num_coefficients}")


def _check_degree(degree: int) -> None:
    if isinstance(degree, bool) or not isinstance(degree, int) or not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"SH degree must be an int in 0..{MAX_SH_DEGREE}, got {degree!r}")


def unit_directions(directions: Tensor) -> Tensor:
    """``directions [N, 3]`` scaled to unit length; a ``ValueError`` for a bad shape, a non-finite or a zero vector.

    The basis polynomials are harmonic only on the unit sphere, so every direction is normalized here rather than
    trusted: callers can pass ``mean - camera_centre`` as it is.
    """
    if directions.ndim != 2 or directions.shape[1] != 3:
        raise ValueError(f"directions must have shape [N, 3], got {list(directions.shape)}")
    if not directions.is_floating_point():
        raise ValueError(f"directions must be a floating point tensor, got {directions.dtype}")
    if not torch.isfinite(directions).all():
        raise ValueError("directions has non-finite entries")
    norms = torch.linalg.vector_norm(directions, dim=1, keepdim=True)
    if (norms == 0).any():
        raise ValueError("directions has zero-length vectors, which have no direction")
    return directions / norms


def sh_basis(degree: int, directions: Tensor) -> Tensor:
    """The real SH basis ``Y_k(d)`` of bands ``0..degree``: ``[N, (degree + 1)^2]``, in ``directions``' dtype.

    ``directions [N, 3]`` need not be unit: they are normalized (see :func:`unit_directions`).
    """
    _check_degree(degree)
    d = unit_directions(directions)
    x, y, z = d.unbind(dim=1)
    bands = [torch.full_like(x, C0)]
    if degree >= 1:
        bands += [-C1 * y, C1 * z, -C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        bands += [
            C2[0] * x * y,
            C2[1] * y * z,
            C2[2] * (2 * zz - xx - yy),
            C2[3] * x * z,
            C2[4] * (xx - yy),
        ]
    if degree >= 3:
        bands += [
            C3[0] * y * (3 * xx - yy),
            C3[1] * x * y * z,
            C3[2] * y * (4 * zz - xx - yy),
            C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            C3[4] * x * (4 * zz - xx - yy),
            C3[5] * z * (xx - yy),
            C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(bands, dim=1)


def _active_degree(sh: Tensor, directions: Tensor, degree: int | None) -> int:
    """Validates ``sh [N, K, 3]`` against ``directions [N, 3]`` and returns the degree to evaluate."""
    if sh.ndim != 3 or sh.shape[2] != 3:
        raise ValueError(f"sh must have shape [N, K, 3], got {list(sh.shape)}")
    max_degree = sh_degree_from_coefficients(sh.shape[1])
    if directions.ndim != 2 or directions.shape != (sh.shape[0], 3):
        expected = [sh.shape[0], 3]
        raise ValueError(f"directions must have shape [N, 3] = {expected} to match sh, got {list(directions.shape)}")
    if degree is None:
        return max_degree
    _check_degree(degree)
    if degree > max_degree:
        raise ValueError(f"SH degree {degree} needs {(degree + 1) ** 2} coefficients, sh holds only {sh.shape[1]}")
    return degree


def eval_sh(sh: Tensor, directions: Tensor, degree: int | None = None) -> Tensor:
    """``f(d) = sum_k sh[:, k, :] Y_k(d)`` over the first ``(degree + 1)^2`` coefficients: ``[N, 3]``.

    ``degree`` (the active degree) defaults to the largest that ``sh``'s ``K`` holds; coefficients above it are
    ignored and get zero gradient.
    """
    degree = _active_degree(sh, directions, degree)
    basis = sh_basis(degree, directions).to(sh.dtype)
    active = sh[:, : basis.shape[1], :]
    return (active * basis[:, :, None]).sum(dim=1)


def sh_to_rgb(sh: Tensor, directions: Tensor, degree: int | None = None) -> Tensor:
    """The colour 3DGS renders, ``max(f(d) + 1/2, 0)``: ``[N, 3]``. Not clamped above (an optimizer may need > 1)."""
    return (eval_sh(sh, directions, degree) + 0.5).clamp_min(0.0)


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """The DC coefficient whose degree-0 colour is ``rgb`` (any shape): ``(rgb - 1/2) / C0``."""
    return (rgb - 0.5) / C0


def sh0_to_rgb(sh0: Tensor) -> Tensor:
    """The inverse of :func:`rgb_to_sh0`: ``C0 sh0 + 1/2`` (unclamped)."""
    return sh0 * C0 + 0.5
