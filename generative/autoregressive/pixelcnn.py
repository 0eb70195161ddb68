"""PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu, 2016) and the gated PixelCNN with vertical and
horizontal stacks (van den Oord et al., "Conditional image generation with PixelCNN decoders", 2016).

An image ``x [C, H, W]`` is generated pixel by pixel in raster order and, within a pixel, channel by channel
(R, then G given R, then B given R and G):

    p(x) = prod_{i=1}^{H W} p(x_{i,R} | x_<i) p(x_{i,G} | x_<i, x_{i,R}) p(x_{i,B} | x_<i, x_{i,R}, x_{i,G})

All ``C H W`` conditionals come out of one fully convolutional pass whose convolutions are masked
(:class:`~generative.autoregressive.base.MaskedConv2d`): a kernel sees the rows above its centre and the
pixels to its left; at the centre, type A (first layer) lets colour group ``g`` see only groups ``< g`` and
type B (later layers) groups ``<= g``. Values are binary per channel here: every conditional is a Bernoulli
(``C = 1`` for binarized digits; ``C = 3`` gives a binary-per-channel colour model that exercises the colour
masks). ``PixelCNN(..., n_classes=K)`` takes values in ``0..K-1`` instead: the first layer reads them through
a learned embedding and every conditional is a ``K``-way softmax, ``p(x_{i,c} = k | ...) = softmax(l_{i,c})_k``
-- the VQ-VAE's prior over its code grid (``generative.vqvae``); ``K = 256`` would model 8-bit images.

**The blind spot.** Stacking masked kernels grows the receptive field as a cone that never reaches the
pixels up and to the right beyond its diagonal: with 3 x 3 kernels after a ``K x K`` first layer, pixel
``(i, j)`` never sees ``(i - a, j + b)`` for ``b > a + K // 2 - 1``, however deep the network. The gated
PixelCNN splits the network into two stacks:

    vertical:   v' = tanh(W_{v,f} * v) . sigma(W_{v,g} * v)       kernel (k//2 + 1) x k: rows <= i, all columns
    horizontal: h' = h + W_1x1 (tanh(W_{h,f} * h + V_f v_) . sigma(W_{h,g} * h + V_g v_))   kernel 1 x k, left

where ``v_`` is the vertical stack's pre-activation shifted down one row (so it holds only rows ``< i``).
The vertical stack covers every row above, in full width; the horizontal stack covers the current row to
the left; together their receptive field is every earlier pixel. ``tanh . sigma`` is the gated activation
unit (LSTM-like multiplicative gates).

    m = PixelCNN((1, 8, 8)); nll = -m.log_prob(test).mean(); x = m.sample(16)
    m = GatedPixelCNN((3, 8, 8))       # binary colour channels, R -> G -> B
    prior = PixelCNN((1, 4, 4), n_classes=32)   # categorical: codes 0..31 on a 4 x 4 grid
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.autoregressive.base import AutoregressiveModel, MaskedConv2d, gated_activation
from generative.common import check_input

__all__ = ["GatedPixelCNN", "PixelCNN"]


def _check_image_shape(model: str, input_shape: Sequence[int], channels: int) -> None:
    if len(input_shape) != 3:
        raise ValueError(f"{model}: input_shape must be (C, H, W), got {tuple(input_shape)}")
    if channels % input_shape[0] != 0:
        raise ValueError(f"{model}: channels ({channels}) must be a multiple of C = {input_shape[0]} "
                         "so that every colour group has the same number of feature maps")  # fmt: skip


class _PixelOrder:
    """Raster order over pixels, colour channels inside a pixel: flat index ``c H W + p`` at step ``p C + c``."""

    input_shape: tuple[int, ...]

    def ordering(self) -> Tensor:
        c, h, w = self.input_shape
        return (torch.arange(h * w)[:, None] + torch.arange(c)[None, :] * h * w).flatten()


class PixelCNN(_PixelOrder, AutoregressiveModel):
    """PixelCNN: a type-A ``first_kernel`` masked convolution, ``n_layers`` residual type-B ``kernel``
    convolutions, and a 1x1 type-B head, over binary (per channel) or categorical images.

    Args:
        input_shape: ``(C, H, W)``; ``C > 1`` channels are ordered R -> G -> B.
        channels: feature maps per layer (a multiple of ``C``: equal colour groups).
        n_layers: type-B layers after the first.
        first_kernel, kernel: odd kernel sizes of the first and later layers.
        n_classes: values per channel. 2: inputs in {0, 1}, one Bernoulli logit per channel (``logits`` is
            ``[N, C, H, W]``); ``K > 2``: inputs in ``0..K-1``, embedded, a ``K``-way softmax per channel
            (``logits`` is ``[N, K, C, H, W]``).
    """

    def __init__(self, input_shape: Sequence[int], channels: int = 48, n_layers: int = 5, first_kernel: int = 7,
                 kernel: int = 3, n_classes: int = 2) -> None:  # fmt: skip
        _check_image_shape("PixelCNN", input_shape, channels)
        if n_classes < 2:
            raise ValueError(f"PixelCNN: n_classes must be >= 2, got {n_classes}")
        super().__init__(input_shape)
        c = self.input_shape[0]
        self.n_classes = n_classes
        # one input map and one logit per channel (binary), or an embedding of channels / C features and K logits
        # per channel: map j * C + c belongs to colour c, so every map's group (its index modulo C) is its channel's
        width = 1 if n_classes == 2 else n_classes
        if self.categorical:  # each value of each channel -> channels / C features (a learned embedding)
            self.embed = nn.Embedding(n_classes, channels // c)
        self.first = MaskedConv2d(channels if self.categorical else c, channels, first_kernel, "A", n_groups=c)
        self.hidden = nn.ModuleList(MaskedConv2d(channels, channels, kernel, "B", n_groups=c) for _ in range(n_layers))
        self.head = nn.Sequential(nn.ReLU(), MaskedConv2d(channels, channels, 1, "B", n_groups=c), nn.ReLU(),
                                  MaskedConv2d(channels, c * width, 1, "B", n_groups=c))  # fmt: skip

    @property
    def categorical(self) -> bool:
        return self.n_classes > 2

    def logits(self, x: Tensor) -> Tensor:
        if self.categorical:  # [N, C, H, W] values -> [N, E * C, H, W] embeddings, feature e of channel c at e C + c
            x = self.embed(x.long()).permute(0, 4, 1, 2, 3).flatten(1, 2)
        h = self.first(x)
        for layer in self.hidden:
            h = h + layer(torch.relu(h))  # residual: deeper stacks train as easily as shallow ones
        out = self.head(h)
        return out.unflatten(1, (self.n_classes, self.input_shape[0])) if self.categorical else out

    # The categorical model's likelihood and sampler; the binary model inherits the Bernoulli ones.

    def _check(self, x: Tensor) -> Tensor:
        if not self.categorical:
            return super()._check(x)
        x = check_input(x, self.input_shape, model="PixelCNN").to(self._param)
        if not torch.all((x == x.round()) & (x >= 0) & (x < self.n_classes)):
            raise ValueError(f"PixelCNN: a categorical model needs integer inputs in 0..{self.n_classes - 1}")
        return x

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)`` in nats, ``[N]``: the sum of the conditionals' Bernoulli or categorical terms."""
        if not self.categorical:
            return super().log_prob(x)
        x = self._check(x)
        return -F.cross_entropy(self.logits(x), x.long(), reduction="none").flatten(1).sum(1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` exact samples ``[n, *input_shape]`` (float values), one channel of one pixel at a time."""
        if not self.categorical:
            return super().sample(n, generator)
        uniforms = self._uniforms(n, generator)
        x = torch.zeros_like(uniforms)
        for d in self.ordering().tolist():  # inverse CDF: x_d = #{k : P(x_d <= k) < u_d}
            logits = self.logits(x.view(n, *self.input_shape)).flatten(2)[:, :, d]
            cdf = torch.softmax(logits, dim=1).cumsum(dim=1)
            x[:, d] = (cdf[:, :-1] < uniforms[:, d, None]).sum(dim=1).to(x)
        return x.view(n, *self.input_shape)


class GatedLayer(nn.Module):
    """One gated PixelCNN layer: ``(v, h) -> (v', h')`` as in the module docstring."""

    def __init__(self, in_channels: int, channels: int, kernel: int, mask_type: str, n_groups: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.residual = mask_type == "B"  # the first layer maps C inputs to ``channels``: no residual
        self.vertical = nn.Conv2d(in_channels, 2 * channels, (kernel // 2 + 1, kernel))
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        # 1 x k, masked: the centre row left of the centre, and the centre's earlier colour groups (type A)
        # or its own group too (type B). The k//2 right-hand taps are masked away.
        self.horizontal = MaskedConv2d(in_channels, 2 * channels, (1, kernel), mask_type, n_groups)
        self.horizontal_out = MaskedConv2d(channels, channels, 1, "B", n_groups)

    def forward(self, v: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        k = self.kernel
        # Pad so that output (i, j) sees rows i - k//2 .. i and columns j - k//2 .. j + k//2.
        v_pre = self.vertical(F.pad(v, (k // 2, k // 2, k // 2, 0)))
        # Shift down one row before feeding the horizontal stack: row i then holds only rows < i.
        v_shifted = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]
        h_pre = self.horizontal(h) + self.vertical_to_horizontal(v_shifted)
        h_out = self.horizontal_out(gated_activation(h_pre))
        return gated_activation(v_pre), (h + h_out if self.residual else h_out)


class GatedPixelCNN(_PixelOrder, AutoregressiveModel):
    """Gated PixelCNN: ``n_layers`` gated layers (the first type A) with vertical and horizontal stacks, no
    blind spot, and a 1x1 type-B head; binary (per channel) images.

    Args:
        input_shape: ``(C, H, W)``; inputs in {0, 1}; ``C > 1`` channels are ordered R -> G -> B.
        channels: feature maps per stack (a multiple of ``C``).
        n_layers: gated layers, the first included.
        first_kernel, kernel: odd kernel widths of the first and later layers.
    """

    def __init__(self, input_shape: Sequence[int], channels: int = 48, n_layers: int = 5, first_kernel: int = 7,
                 kernel: int = 3) -> None:  # fmt: skip
        _check_image_shape("GatedPixelCNN", input_shape, channels)
        super().__init__(input_shape)
        c = self.input_shape[0]
        self.layers = nn.ModuleList(
            [GatedLayer(c, channels, first_kernel, "A", c)]
            + [GatedLayer(channels, channels, kernel, "B", c) for _ in range(n_layers - 1)]
        )
        self.head = nn.Sequential(nn.ReLU(), MaskedConv2d(channels, channels, 1, "B", n_groups=c), nn.ReLU(),
                                  MaskedConv2d(channels, c, 1, "B", n_groups=c))  # fmt: skip

    def logits(self, x: Tensor) -> Tensor:
        v, h = x, x
        for layer in self.layers:
            v, h = layer(v, h)
        return self.head(h)
