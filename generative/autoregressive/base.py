"""What every autoregressive model shares: the chain rule, the masked layers, and the sampling loop.

An autoregressive model writes the joint distribution of ``D`` values with the chain rule,

    p(x) = prod_{i=1}^{D} p(x_{o(i)} | x_{o(<i)}),

for an ordering ``o`` of the dimensions, and parameterizes every conditional with one network that outputs all
``D`` conditionals at once: output ``i`` may depend only on the inputs before ``i`` in the ordering (the
*autoregressive property*). For binary data each conditional is a Bernoulli with logit ``l_i(x_{o(<i)})``, so

    log p(x) = sum_i [x_i log sigmoid(l_i) + (1 - x_i) log(1 - sigmoid(l_i))]

is exact and normalized: one forward pass scores a batch. Sampling cannot be parallel: ``x_{o(i)}`` is
drawn only once everything before it is known, so the generic loop below calls the network ``D`` times
(``O(D^2)`` work for a network whose cost grows with ``D``); WaveNet and the transformer override it with
caches that make it ``O(D)``.

Masked layers enforce the property by zeroing weights: :class:`MaskedLinear` (FVSBN, MADE) and
:class:`MaskedConv2d` (PixelCNN's type-A/B masks with R -> G -> B channel masking).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.common import bernoulli_log_prob, check_input, event_size
from mpenv.device import uniform

__all__ = ["AutoregressiveModel", "MaskedConv2d", "MaskedLinear", "gated_activation", "sample_in_order"]


class MaskedLinear(nn.Linear):
    """``y = (W * M) x + b`` with a fixed binary mask ``M`` [out, in]: a zero in ``M`` is a missing edge."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", torch.ones(out_features, in_features))

    def set_mask(self, mask: Tensor) -> None:
        self.mask.copy_(mask.to(self.mask))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """``mask`` overrides the stored one for this call (MADE keeps one mask per ordering)."""
        return F.linear(x, self.weight * (self.mask if mask is None else mask), self.bias)


class MaskedConv2d(nn.Conv2d):
    """A 'same' convolution that sees only pixels before the centre in raster order (PixelCNN).

    Spatially the mask keeps the rows above the centre and the pixels left of it on the centre row. At the
    centre itself channels are split into ``n_groups`` colour groups (channel ``k`` is in group ``k % n_groups``;
    R, G, B for colour images) and output group ``g`` sees input groups ``< g`` (type ``"A"``, the first layer:
    a pixel's own value is never an input to its conditional) or ``<= g`` (type ``"B"``, later layers: the
    features at the centre already exclude the current value). With one group, type A removes the centre and
    type B keeps it. The modulo grouping keeps groups intact when gated layers split channels in halves.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], mask_type: str,
                 n_groups: int = 1, bias: bool = True) -> None:  # fmt: skip
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"MaskedConv2d needs odd kernel sizes, got {(kh, kw)}")
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        super().__init__(in_channels, out_channels, (kh, kw), padding=(kh // 2, kw // 2), bias=bias)
        mask = torch.zeros(out_channels, in_channels, kh, kw)
        mask[:, :, : kh // 2] = 1  # every row above the centre
        mask[:, :, kh // 2, : kw // 2] = 1  # the centre row, left of the centre
        out_group = torch.arange(out_channels)[:, None] % n_groups
        in_group = torch.arange(in_channels)[None, :] % n_groups
        centre = in_group < out_group if mask_type == "A" else in_group <= out_group
        mask[:, :, kh // 2, kw // 2] = centre.float()
        self.register_buffer("mask", mask)
        self.mask_type = mask_type

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


def gated_activation(a: Tensor, dim: int = 1) -> Tensor:
    """The gated activation unit ``tanh(a_f) . sigma(a_g)`` of PixelCNN and WaveNet; ``a = [a_f, a_g]`` on ``dim``."""
    f, g = a.chunk(2, dim=dim)
    return torch.tanh(f) * torch.sigmoid(g)


def sample_in_order(logits_fn: Callable[[Tensor], Tensor], uniforms: Tensor, order: Tensor,
                    input_shape: Sequence[int]) -> Tensor:  # fmt: skip
    """The generic (naive) sampling loop: ``x_{o(i)} ~ Bernoulli(sigmoid(l_{o(i)}(x)))`` for ``i = 1..D``.

    ``uniforms`` [n, D] are drawn up front and indexed by dimension, ``x_d = 1[u_d < sigmoid(l_d)]``, so any
    faster sampler that uses the same uniforms returns exactly the same samples. Every step reruns the whole
    network on the partly filled batch and keeps one output: ``D`` full passes.
    """
    n = uniforms.shape[0]
    x = torch.zeros_like(uniforms)
    for d in order.tolist():
        logits = logits_fn(x.view(n, *input_shape)).reshape(n, -1)[:, d]
        x[:, d] = (uniforms[:, d] < torch.sigmoid(logits)).to(x)
    return x.view(n, *input_shape)


class AutoregressiveModel(nn.Module):
    """Base class: exact ``log_prob`` from the conditionals' logits, ``loss``, and sequential ``sample``.

    A subclass implements :meth:`logits` (``[N, *input_shape]`` -> the logit of every conditional, same shape)
    and, if its ordering is not the raster order of ``x.flatten(1)``, :meth:`ordering`.
    """

    def __init__(self, input_shape: Sequence[int]) -> None:
        super().__init__()
        self.input_shape = tuple(int(d) for d in input_shape)
        self.event_size = event_size(self.input_shape)

    # ------------------------------------------------------------------ to implement
    def logits(self, x: Tensor) -> Tensor:
        """Logit of ``p(x_i = 1 | x_<i)`` for every ``i``: ``[N, *input_shape]``; ``x`` is already checked."""
        raise NotImplementedError

    def ordering(self) -> Tensor:
        """Flat indices (into ``x.flatten(1)``) in generation order; raster order by default."""
        return torch.arange(self.event_size)

    # ------------------------------------------------------------------ shared
    @property
    def _param(self) -> Tensor:
        return next(self.parameters())

    def _check(self, x: Tensor) -> Tensor:
        x = check_input(x, self.input_shape, binary=True, model=type(self).__name__)
        return x.to(device=self._param.device, dtype=self._param.dtype)

    def forward(self, x: Tensor) -> Tensor:
        """The conditionals' logits of a checked batch (what the autoregressive-property tests differentiate)."""
        return self.logits(check_input(x, self.input_shape, model=type(self).__name__).to(self._param))

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)`` in nats, ``[N]``: the sum of the ``D`` Bernoulli conditionals' log-likelihoods."""
        x = self._check(x)
        return bernoulli_log_prob(self.logits(x), x)

    def loss(self, x: Tensor) -> Tensor:
        """Mean negative log-likelihood in nats: the scalar training minimizes (maximum likelihood)."""
        return -self.log_prob(x).mean()

    def _uniforms(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        p = self._param
        return uniform((n, self.event_size), generator, p.device, p.dtype)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` exact samples ``[n, *input_shape]`` in {0, 1}, one dimension at a time in the model's ordering."""
        return sample_in_order(self.logits, self._uniforms(n, generator), self.ordering(), self.input_shape)
