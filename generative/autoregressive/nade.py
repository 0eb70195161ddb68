"""Neural autoregressive distribution estimator (NADE; Larochelle & Murray, 2011).

    p(x) = prod_{i=1}^{D} p(x_i | x_<i)
    h_i = sigma(W_{:,<i} x_<i + c)              hidden units [H], shared weights W [H, D]
    p(x_i = 1 | x_<i) = sigma(V_i . h_i + b_i)

Every conditional uses the same ``W`` and ``c``, so the pre-activations obey the running sum

    a_1 = c,    a_{i+1} = a_i + W_{:,i} x_i,    h_i = sigma(a_i),

and all ``D`` hidden vectors cost ``O(HD)`` instead of the ``O(HD^2)`` of ``D`` separate products. Here
the running sum is an exclusive cumulative sum over ``i`` of ``x_i W_{:,i}``, batched. Sampling uses the same
recursion, one step per dimension, ``O(HD)`` per sample.

    m = NADE((1, 8, 8), hidden=64); nll = m.loss(x); x_new = m.sample(16)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.autoregressive.base import AutoregressiveModel

__all__ = ["NADE"]


class NADE(AutoregressiveModel):
    """NADE over binary ``x`` of ``input_shape`` in raster order.

    Args:
        input_shape: ``(D,)`` or ``(C, H, W)``; inputs in {0, 1}.
        hidden: number of hidden units ``H``.
    """

    def __init__(self, input_shape: Sequence[int], hidden: int = 64) -> None:
        super().__init__(input_shape)
        d = self.event_size
        self.W = nn.Parameter(torch.randn(hidden, d) / d**0.5)
        self.c = nn.Parameter(torch.zeros(hidden))
        self.V = nn.Parameter(torch.randn(d, hidden) / hidden**0.5)
        self.b = nn.Parameter(torch.zeros(d))

    def logits(self, x: Tensor) -> Tensor:
        flat = x.flatten(1)  # [N, D]
        contributions = flat[:, :, None] * self.W.T  # [N, D, H]: x_i W_{:,i}
        # a_i = c + sum_{j<i} x_j W_{:,j}: shift by one step (x_i must not reach h_i), then cumulative sum.
        a = self.c + F.pad(contributions[:, :-1], (0, 0, 1, 0)).cumsum(dim=1)
        h = torch.sigmoid(a)  # [N, D, H]
        return ((h * self.V).sum(-1) + self.b).view_as(x)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples with the running sum: one ``O(H)`` update per dimension instead of a full pass."""
        u = self._uniforms(n, generator)
        x = torch.zeros_like(u)
        a = self.c.expand(n, -1).clone()
        for i in range(self.event_size):
            p = torch.sigmoid(torch.sigmoid(a) @ self.V[i] + self.b[i])
            x[:, i] = (u[:, i] < p).to(x)
            a += x[:, i : i + 1] * self.W[:, i]
        return x.view(n, *self.input_shape)
