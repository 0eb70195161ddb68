"""The players' networks: MLPs for 2D points, DCGAN's convolutional pair for images.

DCGAN (Radford et al. 2016), as the course states its rules: strided (transposed) convolutions instead of
pooling or upsampling layers, batch normalization in both networks (not on the generator's output nor the
discriminator's input), no fully connected hidden layers, ReLU in the generator (the output through a sigmoid:
our pixels live in [0, 1], where DCGAN's tanh targets [-1, 1]) and LeakyReLU(0.2) in the discriminator.

    G: z [N, d, 1, 1] -(transposed conv, kernel s0)-> [2c, s0, s0] -(x2)-> [c, 2 s0, 2 s0] -(x2)-> [C, H, W]
    D: [C, H, W] -(conv /2)-> [c, H/2, W/2] -(conv /2)-> [2c, s0, s0] -(conv, kernel s0)-> logit

with ``s0 = H / 4`` (2 for 8x8 digits, 7 for 28x28 images). The first and last layers are convolutions over the
whole ``s0 x s0`` map: a projection of ``z`` and a read-out, not hidden fully connected layers. A critic trained
with a gradient penalty takes ``norm="layer"`` (one group norm per layer): batch norm would couple the examples
whose per-example gradient norms the penalty constrains.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mpenv.networks import mlp

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "PatchDiscriminator", "UNetGenerator", "mlp_discriminator",
           "mlp_generator"]

NORMS = ("batch", "layer", "none")


def _leaky_relu() -> nn.Module:
    return nn.LeakyReLU(0.2)


def mlp_generator(latent_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Sequential:
    """``z -> x`` for points: ReLU hidden layers, a linear output."""
    return mlp(latent_dim, hidden, out_dim)


def mlp_discriminator(in_dim: int, hidden: Sequence[int]) -> nn.Sequential:
    """``x -> logit`` for points: LeakyReLU(0.2) hidden layers."""
    return mlp(in_dim, hidden, 1, activation=_leaky_relu)


def _norm(kind: str, channels: int) -> nn.Module:
    if kind not in NORMS:
        raise ValueError(f"unknown normalization {kind!r}; choose one of {', '.join(NORMS)}")
    return {"batch": nn.BatchNorm2d(channels), "layer": nn.GroupNorm(1, channels), "none": nn.Identity()}[kind]


def first_size(input_shape: Sequence[int]) -> tuple[int, int]:
    c, h, w = input_shape
    if h % 4 or w % 4 or h < 8 or w < 8:
        raise ValueError(f"DCGAN: height and width must be multiples of 4, at least 8, got {tuple(input_shape)}")
    return h // 4, w // 4


class DCGANGenerator(nn.Module):
    """``z [N, latent_dim] -> images [N, C, H, W]`` in (0, 1)."""

    def __init__(self, input_shape: Sequence[int], latent_dim: int = 32, channels: int = 64, norm: str = "batch"):
        super().__init__()
        s0 = first_size(input_shape)
        self.latent_dim = latent_dim
        self.net = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, 2 * channels, s0, bias=False), _norm(norm, 2 * channels), nn.ReLU(),
            nn.ConvTranspose2d(2 * channels, channels, 4, 2, 1, bias=False), _norm(norm, channels), nn.ReLU(),
            nn.ConvTranspose2d(channels, input_shape[0], 4, 2, 1), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z[:, :, None, None])


class DCGANDiscriminator(nn.Module):
    """``images [N, C, H, W] -> logits [N]``."""

    def __init__(self, input_shape: Sequence[int], channels: int = 64, norm: str = "batch") -> None:
        super().__init__()
        s0 = first_size(input_shape)
        self.net = nn.Sequential(
            nn.Conv2d(input_shape[0], channels, 4, 2, 1), _leaky_relu(),
            nn.Conv2d(channels, 2 * channels, 4, 2, 1, bias=False), _norm(norm, 2 * channels), _leaky_relu(),
            nn.Conv2d(2 * channels, 1, s0),
        )  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten()


class UNetGenerator(nn.Module):
    """pix2pix's generator for images whose sides are multiples of 4: an encoder-decoder with skip connections,

        e1 = down(x) [c, H/2]   e2 = down(e1) [2c, H/4]   d1 = up(e2) [c, H/2]   out = up([d1, e1]) [C_out, H]

    (4x4 stride-2 convolutions down with LeakyReLU, transposed ones up with ReLU, batch norm inside, a sigmoid
    out). ``noise_channels`` extra input channels carry a latent code broadcast over the image (BicycleGAN)."""

    def __init__(self, in_channels: int, out_channels: int, channels: int = 32, noise_channels: int = 0) -> None:
        super().__init__()
        self.noise_channels = noise_channels
        self.down1 = nn.Sequential(nn.Conv2d(in_channels + noise_channels, channels, 4, 2, 1), _leaky_relu())
        self.down2 = nn.Sequential(nn.Conv2d(channels, 2 * channels, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * channels),
                                   _leaky_relu())  # fmt: skip
        self.up1 = nn.Sequential(nn.ConvTranspose2d(2 * channels, channels, 4, 2, 1, bias=False),
                                 nn.BatchNorm2d(channels), nn.ReLU())  # fmt: skip
        self.up2 = nn.Sequential(nn.ConvTranspose2d(2 * channels, out_channels, 4, 2, 1), nn.Sigmoid())

    def forward(self, x: Tensor, z: Tensor | None = None) -> Tensor:
        if self.noise_channels:
            if z is None or z.shape != (len(x), self.noise_channels):
                raise ValueError(f"UNetGenerator: needs a latent code [N, {self.noise_channels}]")
            x = torch.cat([x, z[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)
        e1 = self.down1(x)
        return self.up2(torch.cat([self.up1(self.down2(e1)), e1], dim=1))


class PatchDiscriminator(nn.Module):
    """pix2pix's PatchGAN: a logit per overlapping patch, ``[N, C, H, W] -> [N, (H/4) * (W/4)]``; conditional
    when the input is the channel-wise pair ``[source, target]``."""

    def __init__(self, in_channels: int, channels: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_channels, channels, 4, 2, 1), _leaky_relu(),
                                 nn.Conv2d(channels, 2 * channels, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * channels),
                                 _leaky_relu(), nn.Conv2d(2 * channels, 1, 3, 1, 1))  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1)
