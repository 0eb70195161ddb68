"""Multi-scale split (RealNVP, Glow): factor out half the channels at each scale; the other half flows on.

    (x_1, x_2) = split(x),   y = (x_1, f_inner(x_2)),   log|det| = log|det df_inner/dx_2|

The factored-out half ``x_1`` goes straight to the latent (its prior is the flow's base, ``N(0, I)``), so the
deeper scales work on ever fewer values: cheaper, and the latent is organised from coarse to fine. Written as a
transform that wraps the rest of the chain, the latent keeps the input's shape, and ``encode``/``decode`` see one
tensor.
"""

from __future__ import annotations

import torch
from torch import Tensor

from generative.flows.flow import Transform

__all__ = ["Split"]


class Split(Transform):
    """Keep the first half of the channels (dimension 1), pass the second half through ``inner``."""

    def __init__(self, inner: Transform) -> None:
        super().__init__()
        self.inner = inner

    def _halves(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.ndim < 2 or x.shape[1] % 2:
            raise ValueError(f"Split: needs an even number of channels in dimension 1, got shape {list(x.shape)}")
        return x.chunk(2, dim=1)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        kept, rest = self._halves(x)
        rest, logabsdet = self.inner(rest, cond)
        return torch.cat([kept, rest], dim=1), logabsdet

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        kept, rest = self._halves(y)
        rest, logabsdet = self.inner.inverse(rest, cond)
        return torch.cat([kept, rest], dim=1), logabsdet
