"""A generative adversarial network: a generator, a discriminator, and the losses of ``losses.py`` between them.

    discriminator step (k per generator step):  min_D  L_D(D(x), D(G(z)))  (+ lambda * gradient penalty)
    generator step:                             min_G  L_G(D(G(z)))          (through k unrolled D steps, optional)

Points ``(D,)`` get MLP players, images ``(C, H, W)`` DCGAN's (``networks.py``). The presets are the course's
variants: ``DCGAN`` (non-saturating loss, batch norm), ``WGANGP`` (Wasserstein loss, gradient penalty 10, five
critic steps per generator step, no batch norm in the critic) and ``UnrolledGAN`` (the generator looks ahead
through ``unroll_steps`` discriminator updates, ``unrolled.py``). An exponential moving average of the generator's
weights (``ema_decay``) is what ``sample`` draws from when kept.

The adversarial loop that trains every one of them is ``train.py``; a GAN has no ``log_prob``.

    gan = GAN((2,), loss="non-saturating"); fit_gan(gan, points, steps=4000); x = gan.sample(1000)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from generative.common import check_input
from generative.gans.losses import check_loss, discriminator_loss, generator_loss, gradient_penalty
from generative.gans.networks import DCGANDiscriminator, DCGANGenerator, mlp_discriminator, mlp_generator
from generative.gans.unrolled import unrolled_generator_loss
from mpenv.networks import polyak_update

__all__ = ["DCGAN", "GAN", "UnrolledGAN", "WGANGP"]


class GAN(nn.Module):
    """Generator and discriminator over data of ``input_shape``.

    Args:
        input_shape: ``(D,)`` points or ``(C, H, W)`` images (height and width multiples of 4).
        latent_dim: size of ``z ~ N(0, I)``; default 8 for points, 32 for images.
        hidden: the MLPs' hidden widths (points).
        channels: DCGAN's base channel count (images).
        loss: ``"minimax"``, ``"non-saturating"``, ``"wasserstein"`` or ``"hinge"`` (``losses.py``).
        d_steps: ``k``, discriminator steps per generator step.
        gp_weight: ``lambda`` of the gradient penalty (0: none).
        unroll_steps: look-ahead discriminator steps in the generator's loss (0: plain GAN).
        unroll_lr: the step size of those look-ahead (plain gradient) steps.
        ema_decay: keep an exponential moving average of the generator's weights and sample from it (0: off).
        critic_norm: the image discriminator's normalization, ``"batch"``, ``"layer"`` or ``"none"``; default
            batch norm, layer norm with a gradient penalty.
    """

    adversarial = True
    """Trained by ``generative.gans.train`` (two players), not by ``generative.fit``."""

    def __init__(self, input_shape: Sequence[int], latent_dim: int | None = None, hidden: Sequence[int] = (128, 128),
                 channels: int = 64, loss: str = "non-saturating", d_steps: int = 1, gp_weight: float = 0.0,
                 unroll_steps: int = 0, unroll_lr: float = 1e-2, ema_decay: float = 0.0,
                 critic_norm: str | None = None) -> None:  # fmt: skip
        super().__init__()
        self.input_shape = tuple(int(d) for d in input_shape)
        self.loss_kind = check_loss(loss)
        if d_steps < 1 or unroll_steps < 0 or gp_weight < 0 or not 0 <= ema_decay < 1 or unroll_lr <= 0:
            raise ValueError(f"{type(self).__name__}: need d_steps >= 1, unroll_steps >= 0, gp_weight >= 0, "
                             f"0 <= ema_decay < 1, unroll_lr > 0; got {d_steps}, {unroll_steps}, {gp_weight}, "
                             f"{ema_decay}, {unroll_lr}")  # fmt: skip
        self.d_steps, self.gp_weight, self.unroll_steps, self.unroll_lr = d_steps, gp_weight, unroll_steps, unroll_lr
        self.ema_decay = ema_decay
        if len(self.input_shape) == 1:
            self.latent_dim = latent_dim or 8
            self.generator = mlp_generator(self.latent_dim, hidden, self.input_shape[0])
            self.discriminator = mlp_discriminator(self.input_shape[0], hidden)
        elif len(self.input_shape) == 3:
            self.latent_dim = latent_dim or 32
            norm = critic_norm or ("layer" if gp_weight > 0 else "batch")
            self.generator = DCGANGenerator(self.input_shape, self.latent_dim, channels)
            self.discriminator = DCGANDiscriminator(self.input_shape, channels, norm)
        else:
            raise ValueError(f"{type(self).__name__}: input_shape must be (D,) or (C, H, W), got {self.input_shape}")
        self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False) if ema_decay > 0 else None
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    # ------------------------------------------------------------------ the players
    def noise(self, n: int) -> Tensor:
        return torch.randn(n, self.latent_dim, device=self._anchor.device, dtype=self._anchor.dtype)

    def generate(self, z: Tensor) -> Tensor:
        """``G(z)``, ``[N, *input_shape]``."""
        return self.generator(z).view(len(z), *self.input_shape)

    def discriminate(self, x: Tensor) -> Tensor:
        """The discriminator's logits ``l(x)``, ``[N]``."""
        return self.discriminator(x).view(len(x))

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator that samples come from: the weights' moving average when kept (``ema_decay > 0``)."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """``n`` samples ``G(z)`` (from the weights' moving average when kept), generator in eval mode."""
        if n < 1:
            raise ValueError(f"{type(self).__name__}: n must be at least 1, got {n}")
        generator = self.sampling_generator
        was_training = generator.training
        generator.eval()
        x = generator(self.noise(n)).view(n, *self.input_shape)
        generator.train(was_training)
        return x

    # ------------------------------------------------------------------ the losses of one step
    def fake_batch(self, real: Tensor) -> Tensor:
        """The generated counterpart of a real batch, with its graph: as many samples ``G(z)``."""
        return self.generate(self.noise(len(real)))

    def discriminator_loss(self, real: Tensor, fake: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """The discriminator's loss on a real batch and as many generated samples (``fake``, detached, or fresh
        ones), and what to log."""
        check_input(real, self.input_shape, model=type(self).__name__)
        real = real.to(self._anchor)
        if fake is None:
            with torch.no_grad():
                fake = self.generate(self.noise(len(real)))
        loss, stats = self.judge(self.discriminate(real), self.discriminate(fake))
        if self.gp_weight > 0:
            penalty, norms = gradient_penalty(self.discriminate, real, fake)
            loss = loss + self.gp_weight * penalty
            stats.update(gradient_norm=float(norms.mean()), discriminator=float(loss.detach()))
        return loss, stats

    def judge(self, real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The discriminator's loss on its logits (checked finite) and what to log: ``D`` on both, the loss."""
        if not (torch.isfinite(real_logits).all() and torch.isfinite(fake_logits).all()):
            raise FloatingPointError(f"{type(self).__name__}: the discriminator output NaN or infinite logits")
        loss = discriminator_loss(self.loss_kind, real_logits, fake_logits)
        d_real, d_fake = torch.sigmoid(real_logits.detach()).mean(), torch.sigmoid(fake_logits.detach()).mean()
        return loss, {"d_real": float(d_real), "d_fake": float(d_fake), "discriminator": float(loss.detach())}

    def generator_loss(self, n: int, real: Tensor | None = None, fake: Tensor | None = None) -> Tensor:
        """The generator's loss on ``n`` fresh samples (or on ``fake``, samples with their graph); an unrolled GAN
        looks ahead on the ``real`` batch."""
        if self.unroll_steps > 0:
            if real is None:
                raise ValueError(f"{type(self).__name__}: the unrolled generator loss needs a real batch")
            return unrolled_generator_loss(self, real.to(self._anchor), n)
        fake = self.generate(self.noise(n)) if fake is None else fake
        return generator_loss(self.loss_kind, self.discriminate(fake))

    @torch.no_grad()
    def update_ema(self) -> None:
        """``theta_ema <- decay * theta_ema + (1 - decay) * theta`` (buffers copied)."""
        if self.generator_ema is None:
            return
        polyak_update(self.generator_ema, self.generator, 1 - self.ema_decay, copy_buffers=True)


class DCGAN(GAN):
    """DCGAN on images: the non-saturating loss, batch norm in both players (``GAN``'s defaults)."""


class WGANGP(GAN):
    """Wasserstein GAN with gradient penalty: ``lambda = 10``, five critic steps per generator step, a critic
    with layer norm (Gulrajani et al.'s settings)."""

    def __init__(self, input_shape: Sequence[int], latent_dim: int | None = None, hidden: Sequence[int] = (128, 128),
                 channels: int = 64, loss: str = "wasserstein", d_steps: int = 5, gp_weight: float = 10.0,
                 unroll_steps: int = 0, unroll_lr: float = 1e-2, ema_decay: float = 0.0,
                 critic_norm: str | None = None) -> None:  # fmt: skip
        super().__init__(input_shape, latent_dim, hidden, channels, loss, d_steps, gp_weight, unroll_steps, unroll_lr,
                         ema_decay, critic_norm)  # fmt: skip


class UnrolledGAN(GAN):
    """Unrolled GAN (Metz et al. 2017): the generator's loss through five look-ahead discriminator steps."""

    def __init__(self, input_shape: Sequence[int], latent_dim: int | None = None, hidden: Sequence[int] = (128, 128),
                 channels: int = 64, loss: str = "non-saturating", d_steps: int = 1, gp_weight: float = 0.0,
                 unroll_steps: int = 5, unroll_lr: float = 1e-2, ema_decay: float = 0.0,
                 critic_norm: str | None = None) -> None:  # fmt: skip
        super().__init__(input_shape, latent_dim, hidden, channels, loss, d_steps, gp_weight, unroll_steps, unroll_lr,
                         ema_decay, critic_norm)  # fmt: skip
