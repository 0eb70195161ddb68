"""WaveNet (van den Oord et al., 2016) / temporal convolutional network: dilated causal convolutions.

The values are a sequence ``x_1 .. x_D`` (an image is read in raster order) and

    p(x) = prod_{t=1}^{D} p(x_t | x_<t),    p(x_t = 1 | x_<t) = sigma(f_t(x_{t-R} .. x_{t-1})).

``f`` is a stack of causal convolutions: the input is shifted right by one (``s_t = x_{t-1}``, ``s_1 = 0``) and
every layer's output at ``t`` reads its input at ``t, t - d, ..., t - (k-1) d`` only (left padding). Layer
``l`` has dilation ``d_l`` (1, 2, 4, ...), so the receptive field grows exponentially with depth:

    R = 1 + (k - 1) sum_l d_l          values before t that can influence the conditional of x_t

Each layer is a gated residual block, ``z = tanh(W_f * h) . sigma(W_g * h)``, ``h <- h + W_res z``,
``skip += W_skip z``, and the head maps ``relu(skip)`` to a logit through two 1x1 convolutions.

**Cached sampling** (Paine et al., "Fast Wavenet generation", 2016). The naive loop reruns the whole
network on the whole sequence for every new value: ``O(D)`` work per step, ``O(D^2)`` in all. But step ``t``
needs only ``k - 1`` past inputs per layer, and they were computed at earlier steps. Each layer keeps a queue
of its last ``(k - 1) d_l`` inputs (a ring buffer); a step computes one column of every layer, reads the
queue at ``t - d, ..., t - (k - 1) d`` and pushes its input: ``O(1)`` network work per step, ``O(D)`` in all.

    m = WaveNet((1, 8, 8)); m.receptive_field; x = m.sample(16); x = m.sample(16, cached=False)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.autoregressive.base import AutoregressiveModel, gated_activation

__all__ = ["WaveNet"]


def _pointwise(conv: nn.Conv1d, h: Tensor) -> Tensor:
    """A 1x1 ``Conv1d`` applied to one time step ``h [N, C_in]``."""
    return F.linear(h, conv.weight[:, :, 0], conv.bias)


class WaveNet(AutoregressiveModel):
    """WaveNet over binary ``x`` of ``input_shape``, read as a sequence in raster order.

    Args:
        input_shape: ``(D,)`` or ``(C, H, W)``; inputs in {0, 1}.
        channels: residual channels (the gates use twice as many, the skip path as many).
        kernel_size: ``k`` of the dilated convolutions.
        dilations: ``d_l`` per layer; by default 1, 2, 4, ... until the receptive field covers the sequence.
    """

    def __init__(self, input_shape: Sequence[int], channels: int = 32, kernel_size: int = 2,
                 dilations: Sequence[int] | None = None) -> None:  # fmt: skip
        super().__init__(input_shape)
        if kernel_size < 2:
            raise ValueError(f"WaveNet: kernel_size must be >= 2, got {kernel_size}")
        if dilations is None:
            dilations = [1]
            while 1 + (kernel_size - 1) * sum(dilations) < self.event_size:
                dilations.append(2 * dilations[-1])
        self.kernel_size = kernel_size
        self.dilations = tuple(int(d) for d in dilations)
        self.input_conv = nn.Conv1d(1, channels, 1)
        self.dilated = nn.ModuleList(nn.Conv1d(channels, 2 * channels, kernel_size, dilation=d) for d in self.dilations)
        self.residual = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in self.dilations)
        self.skip = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in self.dilations)
        self.head_hidden = nn.Conv1d(channels, channels, 1)
        self.head_out = nn.Conv1d(channels, 1, 1)

    @property
    def receptive_field(self) -> int:
        """``R = 1 + (k - 1) sum_l d_l``: the number of previous values the conditional of ``x_t`` can see."""
        return 1 + (self.kernel_size - 1) * sum(self.dilations)

    def logits(self, x: Tensor) -> Tensor:
        seq = x.flatten(1)[:, None, :]  # [N, 1, D]
        shifted = F.pad(seq, (1, 0))[:, :, :-1]  # s_t = x_{t-1}: x_t never sees itself
        h = self.input_conv(shifted)
        skip = torch.zeros_like(h)
        for conv, res, sk, d in zip(self.dilated, self.residual, self.skip, self.dilations, strict=True):
            z = gated_activation(conv(F.pad(h, ((self.kernel_size - 1) * d, 0))), dim=1)  # left padding: causal
            h = h + res(z)
            skip = skip + sk(z)
        out = self.head_out(torch.relu(self.head_hidden(torch.relu(skip))))
        return out.view_as(x)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, cached: bool = True) -> Tensor:
        """``n`` samples; ``cached=True`` uses the per-layer queues (``O(D)``), ``False`` the naive loop (``O(D^2)``).

        Both use the same uniforms, so for the same seed they return the same samples.
        """
        if not cached:
            return super().sample(n, generator)
        u = self._uniforms(n, generator)
        x = torch.zeros_like(u)
        k = self.kernel_size
        # queues[l][:, :, slot]: the input of layer l at time t sits in slot t mod (k-1) d_l; zeros = padding.
        queues = [u.new_zeros(n, self.input_conv.out_channels, (k - 1) * d) for d in self.dilations]
        previous = u.new_zeros(n, 1)  # s_t = x_{t-1}, zero before the first value
        for t in range(self.event_size):
            h = _pointwise(self.input_conv, previous)
            skip = torch.zeros_like(h)
            for conv, res, sk, d, queue in zip(self.dilated, self.residual, self.skip, self.dilations, queues,
                                               strict=True):  # fmt: skip
                size = queue.shape[-1]
                # Tap j of the kernel reads time t - (k-1-j) d; the last tap is the current input.
                a = F.linear(h, conv.weight[:, :, k - 1], conv.bias)
                for j in range(k - 1):
                    a = a + queue[:, :, (t - (k - 1 - j) * d) % size] @ conv.weight[:, :, j].T
                queue[:, :, t % size] = h  # after reading: this slot held t - (k-1) d, the oldest tap
                z = gated_activation(a, dim=1)
                h = h + _pointwise(res, z)
                skip = skip + _pointwise(sk, z)
            logit = _pointwise(self.head_out, torch.relu(_pointwise(self.head_hidden, torch.relu(skip))))[:, 0]
            x[:, t] = (u[:, t] < torch.sigmoid(logit)).to(x)
            previous = x[:, t : t + 1]
        return x.view(n, *self.input_shape)
