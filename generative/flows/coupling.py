"""Coupling layers: affine (RealNVP; Dinh, Sohl-Dickstein & Bengio 2017) and additive (NICE; Dinh et al. 2015).

A binary mask ``b`` splits the input; the masked part passes unchanged and parameterizes an elementwise map of
the rest:

    affine:    y = b * x + (1 - b) * (x * exp(s(b * x)) + t(b * x)),   log|det| = sum_i (1 - b_i) s_i(b * x)
    additive:  y = b * x + (1 - b) * (x + t(b * x)),                   log|det| = 0 (volume preserving)

The Jacobian is triangular (``y_b`` depends only on ``x_b``, and ``y_i`` for ``b_i = 0`` on ``x_i`` only through
the elementwise map), so its log-determinant is the sum of the log-scales, and the inverse needs no inversion of
the networks: ``b * y = b * x`` gives ``s`` and ``t`` back, and ``x = (y - t) * exp(-s)`` off the mask.

The scale is bounded, ``s = B tanh(s_raw / B)`` (``|s| < B``, slope 1 at 0), so an early large step cannot blow
the scale up (training is stable), and no scale is ever zero: the layer is invertible for every weight.

Masks: ``checkerboard_mask`` (images; neighbouring pixels alternate), ``channel_mask`` (images; the first or the
second half of the channels, after a squeeze), ``alternating_mask`` (vectors; even or odd features). Stacked
couplings alternate the parity so every element gets transformed.

The networks (``Conditioner``) see ``b * x`` and, for a conditional flow, the condition ``c`` (concatenated to a
vector, broadcast as extra channels of an image); the last layer starts at zero, so every coupling starts as
the identity.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from generative.flows.flow import Transform
from mpenv.networks import mlp

__all__ = ["AdditiveCoupling", "AffineCoupling", "Conditioner", "alternating_mask", "channel_mask",
           "checkerboard_mask"]  # fmt: skip

SCALE_BOUND = 2.0  # |s| < 2: a coupling scales each element by at most e^2 ~ 7.4 either way


def alternating_mask(size: int, parity: int) -> Tensor:
    """``[size]`` with ones on the even (``parity=0``) or odd (``parity=1``) features."""
    return ((torch.arange(size) + parity) % 2 == 0).float()


def checkerboard_mask(input_shape: Sequence[int], parity: int) -> Tensor:
    """``[C, H, W]`` with ones where ``(row + column + parity)`` is even, the same in every channel."""
    c, h, w = input_shape
    rows, cols = torch.arange(h)[:, None], torch.arange(w)[None, :]
    return ((rows + cols + parity) % 2 == 0).float().expand(c, h, w).clone()


def channel_mask(input_shape: Sequence[int], parity: int) -> Tensor:
    """``[C, H, W]`` with ones on the first (``parity=0``) or the second (``parity=1``) half of the channels."""
    c, h, w = input_shape
    if c < 2:
        raise ValueError(f"channel_mask needs at least 2 channels (squeeze first), got {tuple(input_shape)}")
    first = (torch.arange(c) < c // 2).float()
    return (first if parity == 0 else 1 - first)[:, None, None].expand(c, h, w).clone()


class Conditioner(nn.Module):
    """The coupling's network: ``(b * x, c) -> [N, params_per_element, *shape]``.

    Vectors ``(D,)``: an MLP on ``[b * x, c]``. Images ``(C, H, W)``: 3x3 conv -> 1x1 conv -> 3x3 conv (ReLU
    between, 'same' padding) on ``b * x`` with ``c`` broadcast as channels. The output layer starts at zero.
    """

    def __init__(self, input_shape: Sequence[int], params_per_element: int, hidden: Sequence[int] = (64, 64),
                 cond_dim: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.input_shape, self.params, self.cond_dim = tuple(input_shape), params_per_element, cond_dim
        if len(self.input_shape) == 1:
            (d,) = self.input_shape
            self.net = mlp(d + cond_dim, hidden, d * params_per_element)
        elif len(self.input_shape) == 3:
            c, width = self.input_shape[0], hidden[0] if hidden else 64
            self.net = nn.Sequential(nn.Conv2d(c + cond_dim, width, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(width, width, 1), nn.ReLU(),
                                     nn.Conv2d(width, c * params_per_element, 3, padding=1))  # fmt: skip
        else:
            raise ValueError(f"coupling: input_shape must be (D,) or (C, H, W), got {self.input_shape}")
        last = self.net[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x_masked: Tensor, cond: Tensor | None = None) -> Tensor:
        if (cond is None) != (self.cond_dim == 0) or (cond is not None and cond.shape[-1] != self.cond_dim):
            given = "none" if cond is None else f"[N, {cond.shape[-1]}]"
            raise ValueError(f"coupling: built for a condition of size {self.cond_dim}, given {given}")
        h = x_masked
        if cond is not None:
            extra = cond if h.ndim == 2 else cond[:, :, None, None].expand(-1, -1, *h.shape[2:])
            h = torch.cat([h, extra], dim=1)
        return self.net(h).view(len(x_masked), self.params, *self.input_shape)


class AffineCoupling(Transform):
    """RealNVP's affine coupling over ``mask`` (``[D]`` or ``[C, H, W]``; ones pass unchanged).

    Args:
        mask: which elements condition (1) and which are transformed (0).
        hidden: the conditioner's hidden widths (an image conditioner uses the first as its channel count).
        scale_bound: ``B`` of ``s = B tanh(s_raw / B)``.
        cond_dim: size of the condition vector (0: unconditional).
    """

    def __init__(self, mask: Tensor, hidden: Sequence[int] = (64, 64), scale_bound: float = SCALE_BOUND,
                 cond_dim: int = 0) -> None:  # fmt: skip
        super().__init__()
        if not scale_bound > 0:
            raise ValueError(f"AffineCoupling: scale_bound must be positive, got {scale_bound}")
        self.register_buffer("mask", mask.float())
        self.scale_bound = float(scale_bound)
        self.net = Conditioner(mask.shape, 2, hidden, cond_dim)

    def _scale_shift(self, x: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        raw_s, t = self.net(x * self.mask, cond).unbind(1)
        free = 1 - self.mask
        return free * self.scale_bound * torch.tanh(raw_s / self.scale_bound), free * t

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        s, t = self._scale_shift(x, cond)
        return x * torch.exp(s) + t, s.flatten(1).sum(1)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        s, t = self._scale_shift(y, cond)  # b * y = b * x: the same s and t as the forward pass
        return (y - t) * torch.exp(-s), -s.flatten(1).sum(1)


class AdditiveCoupling(Transform):
    """NICE's additive coupling ``y = x + (1 - b) * t(b * x)``: volume preserving, ``log|det| = 0``."""

    def __init__(self, mask: Tensor, hidden: Sequence[int] = (64, 64), cond_dim: int = 0) -> None:
        super().__init__()
        self.register_buffer("mask", mask.float())
        self.net = Conditioner(mask.shape, 1, hidden, cond_dim)

    def _shift(self, x: Tensor, cond: Tensor | None) -> Tensor:
        return (1 - self.mask) * self.net(x * self.mask, cond)[:, 0]

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x + self._shift(x, cond), x.new_zeros(len(x))

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return y - self._shift(y, cond), y.new_zeros(len(y))
