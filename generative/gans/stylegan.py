"""A style-based generator (Karras et al. 2019, with StyleGAN2's weight demodulation, 2020).

    w = f(z / rms(z))                mapping network: an MLP from the (normalized) latent z to the latent w
    h_0 = c                          a learned constant, not z, starts the synthesis
    h_l = act(conv_{W'_l}(up(h_{l-1})) + b_l + a_l * n_l)     one layer per style

Each layer's style ``s_l = A_l w + b_l`` (a learned affine map of ``w``, ``b_l`` starting at 1) scales the
convolution's input channels: the weights are modulated, ``W'_{oik} = s_i W_{oik}``, then demodulated,
``W''_{oik} = W'_{oik} / sqrt(sum_{ik} W'^2_{oik} + eps)``, so each output channel has unit expected variance
whatever the style (what AdaIN's instance normalization did in StyleGAN1, without its droplet artefacts). One
sample's convolution has its own weights; as the convolution is linear, that is the shared weights applied to
styled input channels, the output channels then scaled by the demodulation factors. Per-pixel noise
``n_l ~ N(0, 1)`` with a learned per-channel scale ``a_l`` gives the stochastic detail. The image comes out of a
1x1 modulated convolution and a sigmoid. The mapping network and the style maps start with unit gain (He
initialization; ``A_l`` with variance ``1 / dim w``), so ``w`` and the styles vary with ``z`` from the first step:
with the styles all near 1 the generator would start (and stay) nearly constant in ``z``.

Style mixing: with probability ``mixing_prob`` a training batch uses ``w_1 = f(z_1)`` for the layers before a
random crossover and ``w_2 = f(z_2)`` after it, so neighbouring layers' styles cannot rely on each other;
``mix(z_1, z_2, crossover)`` does it on purpose: coarse layers (early) from one latent, fine ones from another.

    gan = StyleGAN((1, 8, 8)); fit_gan(gan, digits); x = gan.sample(16); x_mix = gan.generator.mix(z1, z2, 2)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.gans.gan import GAN
from generative.gans.networks import first_size
from mpenv.networks import mlp

__all__ = ["ModulatedConv2d", "StyleGAN", "StyleGenerator", "modulated_conv2d"]


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, demodulate: bool = True, eps: float = 1e-8) -> Tensor:
    """``x [N, I, H, W]`` convolved ('same' padding) with ``weight [O, I, k, k]`` modulated by ``styles [N, I]``
    per sample (and demodulated per output channel).

    The convolution is linear in its weights, so scaling sample ``n``'s weights by ``s_ni`` on the input channels
    equals scaling its input channels by ``s_ni``, and the demodulation is a per-sample, per-output-channel factor
    with ``sum_{ik} (s_ni W_oik)^2 = sum_i s_ni^2 sum_k W_oik^2``: one ordinary convolution of the whole batch
    (StyleGAN2's non-fused form). Building ``N`` modulated weight copies for a grouped convolution instead made a
    StyleGAN training step on the 8x8 digits (batch 64, channels 64) 2.4x slower on a CPU."""
    k = weight.shape[-1]
    out = F.conv2d(x * styles[:, :, None, None], weight, padding=k // 2)
    if demodulate:
        norms = styles.square() @ weight.square().sum(dim=(2, 3)).t()  # [N, O]: each sample's weights' squared norms
        out = out * torch.rsqrt(norms + eps)[:, :, None, None]
    return out


def _unit_gain(layer: nn.Linear) -> nn.Linear:
    """He initialization: each layer keeps its input's scale through the LeakyReLUs, so ``w`` has unit scale."""
    nn.init.kaiming_normal_(layer.weight, a=0.2)
    nn.init.zeros_(layer.bias)
    return layer


class ModulatedConv2d(nn.Module):
    """A style-modulated convolution with its affine style map ``s = A w + b``, bias, noise and activation."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, kernel: int = 3, demodulate: bool = True,
                 noise: bool = True, activation: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel) / math.sqrt(c_in * kernel * kernel))
        self.affine = nn.Linear(w_dim, c_in)
        nn.init.normal_(self.affine.weight, std=1 / math.sqrt(w_dim))
        nn.init.ones_(self.affine.bias)  # s = 1 + A w: styles vary with w from the start
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.noise_scale = nn.Parameter(torch.zeros(c_out)) if noise else None
        self.demodulate, self.activation = demodulate, activation

    def forward(self, x: Tensor, w: Tensor, noise: Tensor | None = None) -> Tensor:
        h = modulated_conv2d(x, self.weight, self.affine(w), self.demodulate)
        if self.noise_scale is not None:
            noise = torch.randn(len(h), 1, *h.shape[2:], device=h.device, dtype=h.dtype) if noise is None else noise
            h = h + self.noise_scale[:, None, None] * noise
        h = h + self.bias[:, None, None]
        # sqrt(2) restores the variance the activation halves (StyleGAN's gain), so the signal keeps its scale
        return math.sqrt(2) * F.leaky_relu(h, 0.2) if self.activation else h


class StyleGenerator(nn.Module):
    """``z [N, latent_dim] -> images [N, C, H, W]`` in (0, 1), ``H`` and ``W`` multiples of 4.

    Layers: two convolutions at ``H/4``, then two after each of the two 2x upsamplings (6 styled layers) and the
    1x1 output layer (a 7th style).
    """

    def __init__(self, input_shape: Sequence[int], latent_dim: int = 32, w_dim: int = 32, channels: int = 64,
                 mapping_layers: int = 4, mixing_prob: float = 0.9) -> None:  # fmt: skip
        super().__init__()
        if not 0 <= mixing_prob <= 1:
            raise ValueError(f"StyleGenerator: mixing_prob must be in [0, 1], got {mixing_prob}")
        s0 = first_size(input_shape)
        self.latent_dim, self.mixing_prob = latent_dim, mixing_prob
        self.mapping = mlp(latent_dim, [w_dim] * (mapping_layers - 1), w_dim, activation=lambda: nn.LeakyReLU(0.2),
                           init=_unit_gain, out_init=_unit_gain)  # fmt: skip
        self.constant = nn.Parameter(torch.randn(channels, *s0))
        widths = [channels, channels, channels, channels // 2, channels // 2, channels // 4, channels // 4]
        self.layers = nn.ModuleList(ModulatedConv2d(a, b, w_dim) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.to_image = ModulatedConv2d(widths[-1], input_shape[0], w_dim, kernel=1, demodulate=True, noise=False,
                                        activation=False)  # fmt: skip

    @property
    def n_styles(self) -> int:
        return len(self.layers) + 1

    def synthesize(self, ws: Tensor) -> Tensor:
        """Images from one ``w`` per layer, ``ws [N, n_styles, w_dim]``."""
        h = self.constant.expand(len(ws), *self.constant.shape)
        for i, layer in enumerate(self.layers):
            if i in (2, 4):  # two upsamplings: H/4 -> H/2 -> H
                h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
            h = layer(h, ws[:, i])
        return torch.sigmoid(self.to_image(h, ws[:, -1]))

    def map(self, z: Tensor) -> Tensor:
        """``w = f(z)``, ``z`` normalized to the sphere of radius sqrt(d) first (StyleGAN's pixel norm)."""
        return self.mapping(z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8))

    def forward(self, z: Tensor) -> Tensor:
        w = self.map(z)
        ws = w[:, None].expand(-1, self.n_styles, -1)
        if self.training and self.mixing_prob > 0 and torch.rand(()) < self.mixing_prob:
            w2 = self.map(torch.randn_like(z))
            crossover = int(torch.randint(1, self.n_styles, ()))
            ws = torch.cat([ws[:, :crossover], w2[:, None].expand(-1, self.n_styles - crossover, -1)], dim=1)
        return self.synthesize(ws)

    def mix(self, z_coarse: Tensor, z_fine: Tensor, crossover: int) -> Tensor:
        """Styles of ``z_coarse`` for the first ``crossover`` layers, of ``z_fine`` after them."""
        if not 0 <= crossover <= self.n_styles:
            raise ValueError(f"StyleGenerator.mix: crossover must be in 0..{self.n_styles}, got {crossover}")
        w1, w2 = self.map(z_coarse), self.map(z_fine)
        ws = torch.cat([w1[:, None].expand(-1, crossover, -1), w2[:, None].expand(-1, self.n_styles - crossover, -1)],
                       dim=1)  # fmt: skip
        return self.synthesize(ws)


class StyleGAN(GAN):
    """The style-based generator against DCGAN's discriminator, non-saturating loss (``GAN``'s loop).

    Args:
        input_shape: ``(C, H, W)``, height and width multiples of 4.
        latent_dim: size of ``z``.
        w_dim: size of ``w``.
        channels: the synthesis network's (and the discriminator's) base channel count.
        mapping_layers: depth of the mapping MLP.
        mixing_prob: probability of style mixing per training batch.
        loss, d_steps, gp_weight, ema_decay: as ``GAN``.
    """

    def __init__(self, input_shape: Sequence[int], latent_dim: int = 32, w_dim: int = 32, channels: int = 64,
                 mapping_layers: int = 4, mixing_prob: float = 0.9, loss: str = "non-saturating", d_steps: int = 1,
                 gp_weight: float = 0.0, ema_decay: float = 0.0) -> None:  # fmt: skip
        if len(tuple(input_shape)) != 3:
            raise ValueError(f"StyleGAN: input_shape must be (C, H, W), got {tuple(input_shape)}")
        super().__init__(input_shape, latent_dim, channels=channels, loss=loss, d_steps=d_steps, gp_weight=gp_weight,
                         ema_decay=ema_decay)  # fmt: skip
        self.generator = StyleGenerator(self.input_shape, latent_dim, w_dim, channels, mapping_layers, mixing_prob)
        if ema_decay > 0:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False)
