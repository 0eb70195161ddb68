"""GAN inversion: find the latent whose image is a given one, ``z* = argmin_z L(G(z), x)``, and inpaint with it.

A GAN has no encoder, so its latent for a real image is found by optimization (Zhu et al. 2016; Creswell &
Bharath 2018):

    L(z) = || m * (G(z) - x) ||^2 / |m|  +  beta || m * (phi(G(z)) - phi(x)) ||^2  +  gamma || z ||^2 / d

with ``m`` a mask of the known pixels (all ones for plain inversion), ``phi`` an optional feature map (the digits
classifier's features: a perceptual term that prefers images the classifier reads alike), and a weak pull towards
the prior's typical set. The loss is not convex in ``z``: several random restarts run side by side (one batch of
``restarts x N`` latents) and each image keeps its best. An encoder ``E: x -> z`` trained on the generator's own
samples (``|| E(G(z)) - z ||^2``) gives a starting point close to the answer (the encoder-initialized variant,
Zhu et al.'s hybrid), so fewer steps are needed.

Inpainting is inversion with a mask: the optimized ``G(z*)`` fills the unknown pixels, the known ones are kept.

    z, x_hat, error = invert(gan, x, steps=300, restarts=4); filled = inpaint(gan, x, mask)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from generative.common import check_input
from mpenv.networks import mlp

if TYPE_CHECKING:
    from generative.gans.gan import GAN

__all__ = ["inpaint", "invert", "train_encoder"]


def _generator(gan: GAN) -> nn.Module:
    return gan.generator_ema if gan.generator_ema is not None else gan.generator


def invert(gan: GAN, x: Tensor, steps: int = 300, restarts: int = 4, lr: float = 0.05, mask: Tensor | None = None,
           features: Callable[[Tensor], Tensor] | None = None, feature_weight: float = 1e-4,
           prior_weight: float = 1e-3, encoder: nn.Module | None = None,
           seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Latents ``[N, d]``, their images ``G(z*)`` and the per-image mean squared error on the known pixels.

    Args:
        x: images (or points) ``[N, *input_shape]``.
        steps: Adam steps on ``z``.
        restarts: random starting latents per image (the encoder's guess replaces the first).
        mask: ``1`` where ``x`` is known, broadcastable to ``x`` (``None``: everywhere).
        features: a feature map ``phi`` for the perceptual term (e.g. the digits classifier's ``features``).
        encoder: a trained ``E: x -> z`` (``train_encoder``) for the first start.
    """
    check_input(x, gan.input_shape, model="invert")
    if steps < 1 or restarts < 1:
        raise ValueError(f"invert: steps and restarts must be at least 1, got {steps} and {restarts}")
    generator = _generator(gan).eval()
    x = x.to(gan._anchor)
    m = torch.ones_like(x) if mask is None else mask.to(x).expand_as(x)
    if not ((m == 0) | (m == 1)).all() or (m.flatten(1).sum(1) == 0).any():
        raise ValueError("invert: the mask must be 0/1 with at least one known value per image")
    n = len(x)
    g = torch.Generator(device=x.device).manual_seed(seed)
    z0 = torch.randn(restarts, n, gan.latent_dim, generator=g, device=x.device, dtype=x.dtype)
    if encoder is not None:
        with torch.no_grad():
            z0[0] = encoder(x.flatten(1))
    z = z0.flatten(0, 1).clone().requires_grad_(True)
    target, known = x.repeat(restarts, *([1] * (x.ndim - 1))), m.repeat(restarts, *([1] * (x.ndim - 1)))
    with torch.no_grad():
        target_features = features(target * known) if features is not None else None
    optimizer = torch.optim.Adam([z], lr=lr)
    generator.requires_grad_(False)
    try:
        for _ in range(steps):
            loss = _inversion_loss(generator, z, target, known, features, target_features, feature_weight,
                                   prior_weight, gan.input_shape).sum()  # fmt: skip
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    finally:
        generator.requires_grad_(True)
    with torch.no_grad():
        images = generator(z).view(len(z), *gan.input_shape)
        errors = ((images - target) * known).square().flatten(1).sum(1) / known.flatten(1).sum(1)
        best = errors.view(restarts, n).argmin(0)
        pick = best * n + torch.arange(n, device=x.device)
    return z.detach()[pick], images[pick], errors[pick]


def _inversion_loss(generator: nn.Module, z: Tensor, target: Tensor, known: Tensor,
                    features: Callable[[Tensor], Tensor] | None, target_features: Tensor | None,
                    feature_weight: float, prior_weight: float, shape: tuple[int, ...]) -> Tensor:  # fmt: skip
    """``L(z)`` per latent, ``[restarts * N]``."""
    image = generator(z).view(len(z), *shape)
    loss = ((image - target) * known).square().flatten(1).sum(1) / known.flatten(1).sum(1)
    if features is not None:
        loss = loss + feature_weight * (features(image * known) - target_features).square().sum(1)
    return loss + prior_weight * z.square().mean(1)


def inpaint(gan: GAN, x: Tensor, mask: Tensor, **invert_kwargs) -> Tensor:
    """``x`` with its unknown pixels (``mask == 0``) filled from the inverted ``G(z*)``."""
    _, images, _ = invert(gan, x, mask=mask, **invert_kwargs)
    m = mask.to(images).expand_as(images)
    return m * x.to(images) + (1 - m) * images


def train_encoder(gan: GAN, steps: int = 2000, batch_size: int = 128, hidden: tuple[int, ...] = (256, 256),
                  lr: float = 1e-3, seed: int = 0) -> nn.Module:  # fmt: skip
    """An MLP ``E: flattened x -> z`` trained on the generator's samples to give back their latents."""
    torch.manual_seed(seed)
    size = int(torch.tensor(gan.input_shape).prod())
    encoder = mlp(size, hidden, gan.latent_dim).to(gan._anchor)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr)
    generator = _generator(gan).eval()
    for _ in range(steps):
        z = gan.noise(batch_size)
        with torch.no_grad():
            x = generator(z).flatten(1)
        loss = (encoder(x) - z).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return encoder.eval()
