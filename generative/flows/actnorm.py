"""Activation normalization (Glow; Kingma & Dhariwal 2018): a per-channel affine map with data-dependent init.

    y_{c,i,j} = exp(log_scale_c) * (x_{c,i,j} + bias_c),   log|det| = H * W * sum_c log_scale_c

(``H * W = 1`` for vectors, whose features are the channels). At the first forward pass the parameters are set
from that batch, ``bias_c = -mean_c``, ``log_scale_c = -log std_c``, so the batch comes out with zero mean and
unit variance per channel; afterwards they are ordinary parameters (no batch statistics, unlike batch norm, so
small batches are fine). Whether the initialization happened is a buffer: a loaded checkpoint does not redo it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from generative.flows.flow import Transform

__all__ = ["ActNorm"]


class ActNorm(Transform):
    """Per-channel scale and bias over dimension 1 of ``[N, C]`` or ``[N, C, H, W]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("initialized", torch.tensor(False))

    def _view(self, p: Tensor, x: Tensor) -> Tensor:
        return p.view(1, -1, *([1] * (x.ndim - 2)))

    def _check(self, x: Tensor) -> None:
        if x.ndim not in (2, 4) or x.shape[1] != len(self.bias):
            raise ValueError(f"ActNorm: expected [N, {len(self.bias)}] or [N, {len(self.bias)}, H, W], got "
                             f"{list(x.shape)}")  # fmt: skip

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set ``bias = -mean`` and ``log_scale = -log std`` per channel from the batch ``x``.

        Raises:
            ValueError: a channel that does not vary in the batch (a zero scale: the map would not be invertible).
        """
        per_channel = x.transpose(0, 1).reshape(x.shape[1], -1)
        if per_channel.shape[1] < 2:
            raise ValueError("ActNorm: the initialization batch needs at least 2 values per channel")
        mean, std = per_channel.mean(1), per_channel.std(1, unbiased=False)
        if not (std > 0).all():
            flat = torch.nonzero(~(std > 0)).flatten().tolist()
            raise ValueError(f"ActNorm: channel(s) {flat} have zero variance in the initialization batch, so "
                             "their scale would be infinite; initialize on a batch where every channel "
                             "varies")  # fmt: skip
        self.bias.copy_(-mean)
        self.log_scale.copy_(-std.log())
        self.initialized.fill_(True)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(x)
        if not self.initialized:
            self.initialize(x)
        pixels = x[0, 0].numel()
        y = (x + self._view(self.bias, x)) * self._view(self.log_scale, x).exp()
        return y, (pixels * self.log_scale.sum()).expand(len(x))

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(y)
        pixels = y[0, 0].numel()
        x = y * (-self._view(self.log_scale, y)).exp() - self._view(self.bias, y)
        return x, (-pixels * self.log_scale.sum()).expand(len(y))
