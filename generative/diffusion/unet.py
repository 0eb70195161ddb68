"""The time-conditioned U-Net that predicts the noise of an image (Ho et al. 2020, after PixelCNN++'s).

    eps_theta(x_t, t [, c]):  x_t -> stem -> [ResBlock x blocks, Downsample] per level -> ResBlock, Attention,
                              ResBlock -> [ResBlock x (blocks + 1) on concat(h, skip), Upsample] per level -> out

The step ``t`` enters every residual block as a learned projection of its sinusoidal embedding (added to the
features after the first convolution); a class label ``c`` (``num_classes``) adds a learned embedding to the step's,
with one extra "no label" entry for classifier-free guidance. Self-attention runs only at the lowest resolution,
where it is cheap. The encoder (:meth:`UNet.encode`) and decoder (:meth:`UNet.decode`) are separate so ControlNet
(``controlnet.py``) can run a copy of the encoder and add its outputs to the skips.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["UNet", "default_mults", "sinusoidal_embedding"]


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """``[N] -> [N, dim]``: ``sin`` and ``cos`` of ``t`` at ``dim / 2`` geometrically spaced frequencies."""
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def default_mults(size: int) -> tuple[int, ...]:
    """Channel multipliers per level: two levels up to 8 pixels (8 -> 4), three above (28 -> 14 -> 7)."""
    return (1, 2) if size <= 8 else (1, 2, 2)


def norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


def zero(module: nn.Module) -> nn.Module:
    """Zero the last layer of a residual branch: each block starts as the identity, which trains more stably."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """``h + conv(act(norm(conv(act(norm(h))) + proj(emb))))``, with a 1x1 skip when the width changes."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float) -> None:
        super().__init__()
        self.first = nn.Sequential(norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.emb = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, c_out))
        self.second = nn.Sequential(norm(c_out), nn.SiLU(), nn.Dropout(dropout),
                                    zero(nn.Conv2d(c_out, c_out, 3, padding=1)))  # fmt: skip
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        return self.skip(h) + self.second(self.first(h) + self.emb(emb)[:, :, None, None])


class Attention(nn.Module):
    """Multi-head self-attention over the ``H * W`` positions, residual."""

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads if channels % heads == 0 else 1
        self.norm, self.qkv = norm(channels), nn.Conv2d(channels, 3 * channels, 1)
        self.out = zero(nn.Conv2d(channels, channels, 1))

    def forward(self, h: Tensor) -> Tensor:
        n, c, height, width = h.shape
        qkv = self.qkv(self.norm(h)).view(n, 3, self.heads, c // self.heads, height * width)
        q, k, v = qkv.transpose(-1, -2).unbind(1)
        a = F.scaled_dot_product_attention(q, k, v)  # [N, heads, HW, c / heads]
        return h + self.out(a.transpose(-1, -2).reshape(n, c, height, width))


class UNet(nn.Module):
    """``eps_theta(x [N, C, H, W], t [N], y [N] or None) -> [N, C, H, W]``.

    Args:
        in_channels: image channels.
        size: image height (= width), to check that every level halves it evenly.
        channels: width of the first level.
        mults: width multiplier per level (``default_mults(size)`` when ``None``); each but the last halves the size.
        blocks: residual blocks per level on the way down.
        num_classes: labels ``0..num_classes - 1`` (and ``num_classes``: no label); ``None`` unconditional.
        dropout: inside the residual blocks.
    """

    def __init__(self, in_channels: int, size: int, channels: int = 32, mults: Sequence[int] | None = None,
                 blocks: int = 1, num_classes: int | None = None, dropout: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        mults = tuple(default_mults(size) if mults is None else mults)
        if size % 2 ** (len(mults) - 1):
            raise ValueError(f"UNet: {len(mults)} levels halve the image {len(mults) - 1} times, so its size must be "
                             f"divisible by {2 ** (len(mults) - 1)}, got {size}; pass fewer mults")  # fmt: skip
        self.channels, self.num_classes = channels, num_classes
        emb_dim = 4 * channels
        self.time = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None
        self.stem = nn.Conv2d(in_channels, channels, 3, padding=1)
        widths, skips, c = [channels * m for m in mults], [channels], channels
        self.down = nn.ModuleList()
        for level, width in enumerate(widths):
            for _ in range(blocks):
                self.down.append(ResBlock(c, width, emb_dim, dropout))
                c = width
                skips.append(c)
            if level < len(widths) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid = nn.ModuleList([ResBlock(c, c, emb_dim, dropout), Attention(c), ResBlock(c, c, emb_dim, dropout)])
        self.skip_channels = tuple(skips)
        self.mid_channels = c
        self.up = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            for _ in range(blocks + 1):
                self.up.append(ResBlock(c + skips.pop(), width, emb_dim, dropout))
                c = width
            if level > 0:
                upsample = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1))
                self.up.append(upsample)
        self.out = nn.Sequential(norm(c), nn.SiLU(), zero(nn.Conv2d(c, in_channels, 3, padding=1)))

    def embed(self, t: Tensor, y: Tensor | None = None) -> Tensor:
        """The step's embedding, plus the label's (``y == num_classes``: no label)."""
        emb = self.time(sinusoidal_embedding(t, self.channels).to(self.stem.weight))
        if self.label is not None:
            if y is None:
                raise ValueError("this U-Net is class-conditional: pass labels y (num_classes for none)")
            emb = emb + self.label(y)
        elif y is not None:
            raise ValueError("this U-Net is unconditional: it takes no labels")
        return emb

    def encode(self, x: Tensor, emb: Tensor, hint: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
        """The lowest-resolution features and the skips (one per down module, and the stem's); ``hint`` (features
        of the stem's shape) is added after the stem, which is how ControlNet feeds its control image."""
        h = self.stem(x)
        if hint is not None:
            h = h + hint
        skips = [h]
        for module in self.down:
            h = module(h, emb) if isinstance(module, ResBlock) else module(h)
            skips.append(h)
        for module in self.mid:
            h = module(h, emb) if isinstance(module, ResBlock) else module(h)
        return h, skips

    def decode(self, h: Tensor, skips: list[Tensor], emb: Tensor) -> Tensor:
        skips = list(skips)
        for module in self.up:
            h = module(torch.cat([h, skips.pop()], dim=1), emb) if isinstance(module, ResBlock) else module(h)
        return self.out(h)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None,
                residuals: Sequence[Tensor] | None = None) -> Tensor:  # fmt: skip
        """``residuals``: one tensor per skip and a last one for the middle features, added before decoding
        (ControlNet's)."""
        emb = self.embed(t, y)
        h, skips = self.encode(x, emb)
        if residuals is not None:
            *extra, h_extra = residuals
            skips, h = [s + r for s, r in zip(skips, extra, strict=True)], h + h_extra
        return self.decode(h, skips, emb)
