"""Fixed permutations of the features (vectors) or channels (images): ``y = x[:, perm]``, ``log|det| = 0``.

Between couplings a permutation changes which elements condition which; ``reverse`` is RealNVP's/NICE's
alternation, ``random`` a fixed, seeded shuffle (Glow's baseline against the learned 1x1 convolution).
"""

from __future__ import annotations

import torch
from torch import Tensor

from generative.flows.flow import Transform

__all__ = ["Permutation"]


class Permutation(Transform):
    """Permute dimension 1 by ``perm`` (a permutation of ``0..C-1``); see :meth:`reverse` and :meth:`random`."""

    def __init__(self, perm: Tensor) -> None:
        super().__init__()
        perm = torch.as_tensor(perm, dtype=torch.long)
        if perm.ndim != 1 or not torch.equal(perm.sort().values, torch.arange(len(perm))):
            raise ValueError(f"Permutation: perm must be a permutation of 0..{len(perm) - 1}, got {perm.tolist()}")
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))

    @classmethod
    def reverse(cls, channels: int) -> Permutation:
        return cls(torch.arange(channels - 1, -1, -1))

    @classmethod
    def random(cls, channels: int, seed: int = 0) -> Permutation:
        return cls(torch.randperm(channels, generator=torch.Generator().manual_seed(seed)))

    def _check(self, x: Tensor) -> None:
        if x.ndim < 2 or x.shape[1] != len(self.perm):
            raise ValueError(f"Permutation: expected {len(self.perm)} features/channels in dimension 1, got shape "
                             f"{list(x.shape)}")  # fmt: skip

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(x)
        return x[:, self.perm], x.new_zeros(len(x))

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(y)
        return y[:, self.inverse_perm], y.new_zeros(len(y))
