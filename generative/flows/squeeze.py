"""Squeeze (RealNVP): trade space for channels, ``[C, H, W] -> [4C, H/2, W/2]``; a permutation, ``log|det| = 0``.

Every 2x2 block of a channel becomes 4 channels at one pixel, so a channel-wise coupling after a squeeze mixes
neighbouring pixels. ``Inverse(Squeeze())`` undoes it.
"""

from __future__ import annotations

from torch import Tensor

from generative.flows.flow import Transform

__all__ = ["Squeeze"]


class Squeeze(Transform):
    """``y[n, 4c + 2a + b, i, j] = x[n, c, 2i + a, 2j + b]``."""

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if x.ndim != 4 or x.shape[2] % 2 or x.shape[3] % 2:
            raise ValueError(f"Squeeze: expected images [N, C, H, W] with even H and W, got {list(x.shape)}")
        n, c, h, w = x.shape
        y = x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(n, 4 * c, h // 2, w // 2)
        return y, x.new_zeros(n)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if y.ndim != 4 or y.shape[1] % 4:
            raise ValueError(f"Squeeze.inverse: expected [N, 4C, H, W], got {list(y.shape)}")
        n, c4, h, w = y.shape
        x = y.view(n, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c4 // 4, 2 * h, 2 * w)
        return x, y.new_zeros(n)
