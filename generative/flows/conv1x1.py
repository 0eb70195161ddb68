"""Invertible 1x1 convolution (Glow; Kingma & Dhariwal 2018): a learned channel mixing ``y_{:,i,j} = W x_{:,i,j}``.

The same ``C x C`` matrix acts at every pixel, so ``log|det| = H * W * log|det W|`` (``H * W = 1`` for vectors).

Plain (:class:`InvConv1x1`): ``W`` is the parameter and ``log|det W|`` comes from ``slogdet``, ``O(C^3)`` per
call. LU (:class:`LUInvConv1x1`): ``W = P L (U + diag(s))`` with ``P`` a fixed permutation, ``L`` unit lower
triangular, ``U`` strictly upper triangular and ``s`` a vector stored as sign and ``log|s|``, so

    log|det W| = sum_c log|s_c|                                          (O(C))

Both start from a random rotation (Glow's initialization). A singular ``W`` (a zero in ``s``) is rejected: the
map would not be invertible.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from generative.flows.flow import Transform

__all__ = ["InvConv1x1", "LUInvConv1x1", "random_rotation"]


def random_rotation(channels: int, seed: int = 0) -> Tensor:
    """A random orthogonal ``[C, C]`` matrix (QR of a Gaussian matrix), seeded."""
    gaussian = torch.randn(channels, channels, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.linalg.qr(gaussian)[0].to(torch.get_default_dtype())


def _mix(weight: Tensor, x: Tensor) -> Tensor:
    """``W`` applied to dimension 1 of ``[N, C]`` or ``[N, C, H, W]``."""
    if x.ndim not in (2, 4) or x.shape[1] != weight.shape[0]:
        raise ValueError(f"1x1 convolution: expected [N, {weight.shape[0]}] or [N, {weight.shape[0]}, H, W], got "
                         f"{list(x.shape)}")  # fmt: skip
    return torch.einsum("ij,nj...->ni...", weight, x)


class InvConv1x1(Transform):
    """Plain invertible 1x1 convolution; ``weight`` ``[C, C]`` (default: a random rotation seeded by ``seed``)."""

    def __init__(self, channels: int, weight: Tensor | None = None, seed: int = 0) -> None:
        super().__init__()
        weight = random_rotation(channels, seed) if weight is None else torch.as_tensor(weight).clone()
        if weight.shape != (channels, channels):
            raise ValueError(f"InvConv1x1: weight must be [{channels}, {channels}], got {list(weight.shape)}")
        self.weight = nn.Parameter(weight)

    def _log_det(self) -> Tensor:
        sign, log_abs = torch.linalg.slogdet(self.weight)
        if sign == 0:
            raise ValueError("InvConv1x1: the weight is singular (det W = 0), so the map is not invertible")
        return log_abs

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y = _mix(self.weight, x)
        return y, (x[0, 0].numel() * self._log_det()).expand(len(x))

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        log_det = self._log_det()
        return _mix(torch.linalg.inv(self.weight), y), (-y[0, 0].numel() * log_det).expand(len(y))


class LUInvConv1x1(Transform):
    """LU-parametrized invertible 1x1 convolution ``W = P L (U + diag(s))``, ``log|det W| = sum log|s|``.

    ``weight``: the starting ``W`` (decomposed with ``torch.linalg.lu``; default a random rotation).
    """

    def __init__(self, channels: int, weight: Tensor | None = None, seed: int = 0) -> None:
        super().__init__()
        weight = random_rotation(channels, seed) if weight is None else torch.as_tensor(weight)
        if weight.shape != (channels, channels):
            raise ValueError(f"LUInvConv1x1: weight must be [{channels}, {channels}], got {list(weight.shape)}")
        p, lower, upper = torch.linalg.lu(weight)
        s = torch.diagonal(upper)
        if not (s != 0).all():
            raise ValueError("LUInvConv1x1: the weight is singular (a zero on U's diagonal), so the map is not "
                             "invertible")  # fmt: skip
        self.register_buffer("permutation", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1).to(weight.dtype))
        self.lower = nn.Parameter(torch.tril(lower, -1))
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(s.abs().log())

    def _triangles(self) -> tuple[Tensor, Tensor]:
        """``L`` (unit diagonal) and ``U + diag(s)`` from the parameters (masked: the other halves stay zero)."""
        eye = torch.eye(len(self.log_s), dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        return lower, self.upper * self.lower_mask.T + torch.diag(self.sign_s * self.log_s.exp())

    @property
    def weight(self) -> Tensor:
        """``P L (U + diag(s))``."""
        lower, upper = self._triangles()
        return self.permutation @ lower @ upper

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return _mix(self.weight, x), (x[0, 0].numel() * self.log_s.sum()).expand(len(x))

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        # W^-1 = (U + diag s)^-1 L^-1 P^T: two triangular solves, no general inverse
        lower, upper = self._triangles()
        eye = torch.eye(len(self.log_s), dtype=lower.dtype, device=lower.device)
        inv_lower = torch.linalg.solve_triangular(lower, eye, upper=False, unitriangular=True)
        inverse = torch.linalg.solve_triangular(upper, inv_lower, upper=True) @ self.permutation.T
        return _mix(inverse, y), (-y[0, 0].numel() * self.log_s.sum()).expand(len(y))
