"""Fully visible sigmoid belief network (FVSBN): the chain rule with a logistic regression per conditional.

    p(x) = prod_{i=1}^{D} p(x_i | x_<i),    p(x_i = 1 | x_<i) = sigma(b_i + sum_{j<i} W_ij x_j)

``W`` is strictly lower triangular: ``D (D - 1) / 2`` weights plus ``D`` biases, and all ``D`` logits come out
of one masked matrix product ``l = (W * M) x + b`` with ``M_ij = 1[j < i]``. No hidden units: the simplest
exact-likelihood model that still captures pairwise dependencies in order.

    m = FVSBN((1, 8, 8)); nll = m.loss(x); x_new = m.sample(16)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from generative.autoregressive.base import AutoregressiveModel, MaskedLinear

__all__ = ["FVSBN"]


class FVSBN(AutoregressiveModel):
    """Fully visible sigmoid belief network over binary ``x`` of ``input_shape`` in raster order.

    Args:
        input_shape: ``(D,)`` or ``(C, H, W)``; inputs in {0, 1}.
    """

    def __init__(self, input_shape: Sequence[int]) -> None:
        super().__init__(input_shape)
        d = self.event_size
        self.linear = MaskedLinear(d, d)
        self.linear.set_mask(torch.ones(d, d).tril(diagonal=-1))  # M_ij = 1[j < i]
        # The masked weights start at zero too, so the parameter vector says exactly what the model uses.
        with torch.no_grad():
            self.linear.weight.mul_(self.linear.mask)

    def logits(self, x: Tensor) -> Tensor:
        return self.linear(x.flatten(1)).view_as(x)
