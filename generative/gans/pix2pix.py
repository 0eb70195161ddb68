"""pix2pix (Isola et al. 2017): paired image-to-image translation with a conditional GAN and an L1 term, and
BicycleGAN's latent code (Zhu et al. 2017) so one input can give several outputs.

    min_G max_D  E[log D(x, y)] + E[log(1 - D(x, G(x, z)))]  +  lambda E[|y - G(x, z)|_1]
                 (+ lambda_z E[|E(G(x, z)) - z|_1], with a latent code z)

``x`` is the source image, ``y`` its target; the discriminator sees the pair (source and target stacked as
channels) and judges each patch (PatchGAN: realism of local structure, while the L1 term takes care of the low
frequencies); the generator is a U-Net whose skip connections carry the source's layout straight to the output.
With a latent code (``noise_dim > 0``) the L1 term alone would teach the generator to ignore ``z``; BicycleGAN's
latent regression (cLR-GAN) makes ``z`` recoverable from the output by an encoder ``E`` trained with the
generator, so different codes must give different outputs.

The pairs come from the digits themselves (``domains.py``): the source is a digit's task image (its edge map,
thick strokes, or a rotation), the target the digit, so training takes plain digit batches (``mpenv-gen train
pix2pix --data digits``) and the digits classifier can check the translations.

    model = Pix2Pix((1, 8, 8), task="edges"); fit_gan(model, digits); y = model.translate(apply_task("edges", x))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.common import check_input
from generative.gans.domains import TASKS, apply_task
from generative.gans.gan import GAN
from generative.gans.losses import generator_loss
from generative.gans.networks import PatchDiscriminator, UNetGenerator
from mpenv.networks import mlp

__all__ = ["Pix2Pix"]


class Pix2Pix(GAN):
    """Conditional GAN from a digit's ``task`` image back to the digit.

    Args:
        input_shape: ``(C, H, W)`` of the digits, sides multiples of 4.
        task: ``"edges"``, ``"thick"`` or ``"rotated"`` (``domains.py``).
        channels: base channel count of the U-Net and the PatchGAN.
        l1_weight: ``lambda`` of the L1 term.
        noise_dim: size of BicycleGAN's latent code (0: none, the deterministic pix2pix).
        latent_weight: ``lambda_z`` of the latent regression.
        loss: the adversarial loss (``losses.py``).
    """

    translates = True
    """``mpenv-gen`` samples and evaluates translations of the test digits' task images."""

    def __init__(self, input_shape: Sequence[int], task: str = "edges", channels: int = 32, l1_weight: float = 100.0,
                 noise_dim: int = 0, latent_weight: float = 0.5, loss: str = "non-saturating") -> None:  # fmt: skip
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 3:
            raise ValueError(f"Pix2Pix: input_shape must be (C, H, W), got {shape}")
        if task not in TASKS:
            raise ValueError(f"unknown translation task {task!r}; choose one of {', '.join(TASKS)}")
        if noise_dim < 0 or l1_weight < 0 or latent_weight < 0:
            raise ValueError("Pix2Pix: noise_dim, l1_weight and latent_weight must not be negative")
        super().__init__(shape, latent_dim=max(noise_dim, 1), channels=channels, loss=loss)
        c = shape[0]
        self.task, self.noise_dim, self.l1_weight, self.latent_weight = task, noise_dim, l1_weight, latent_weight
        self.generator = nn.ModuleDict({"unet": UNetGenerator(c, c, channels, noise_dim)})
        if noise_dim:
            self.generator["encoder"] = mlp(c * shape[1] * shape[2], (128,), noise_dim)
        self.discriminator = PatchDiscriminator(2 * c, channels)

    # ------------------------------------------------------------------ translation
    def _code(self, n: int) -> Tensor | None:
        return self.noise(n) if self.noise_dim else None

    def source_of(self, target: Tensor) -> Tensor:
        """The task image of each digit: the generator's input."""
        return apply_task(self.task, target)

    @torch.no_grad()
    def translate(self, source: Tensor, z: Tensor | None = None) -> Tensor:
        """``G(x, z)`` for task images ``[N, C, H, W]`` (a random code when the model has one and ``z`` is None)."""
        check_input(source, self.input_shape, model=type(self).__name__)
        unet = self.generator["unet"]
        was_training = unet.training
        unet.eval()
        z = self._code(len(source)) if z is None and self.noise_dim else z
        out = unet(source.to(self._anchor), z)
        unet.train(was_training)
        return out

    def sample(self, n: int) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} translates images: translate(source), not sample(n)")

    # ------------------------------------------------------------------ the losses of one step
    def fake_batch(self, real: Tensor) -> Tensor:
        return self.generator["unet"](self.source_of(real.to(self._anchor)), self._code(len(real)))

    def discriminator_loss(self, real: Tensor, fake: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        check_input(real, self.input_shape, model=type(self).__name__)
        target = real.to(self._anchor)
        source = self.source_of(target)
        if fake is None:
            with torch.no_grad():
                fake = self.generator["unet"](source, self._code(len(real)))
        return self.judge(self.discriminator(torch.cat([source, target], dim=1)),
                          self.discriminator(torch.cat([source, fake], dim=1)))  # fmt: skip

    def generator_loss(self, n: int, real: Tensor | None = None, fake: Tensor | None = None) -> Tensor:
        if real is None:
            raise ValueError(f"{type(self).__name__}: the generator's loss needs the real (target) batch")
        target = real.to(self._anchor)
        source = self.source_of(target)
        fake = self.generator["unet"](source, self._code(len(target))) if fake is None else fake
        loss = generator_loss(self.loss_kind, self.discriminator(torch.cat([source, fake], dim=1)))
        loss = loss + self.l1_weight * F.l1_loss(fake, target)
        if self.noise_dim:  # latent regression: the code must be readable from the output
            z = self.noise(len(target))
            recovered = self.generator["encoder"](self.generator["unet"](source, z).flatten(1))
            loss = loss + self.latent_weight * F.l1_loss(recovered, z)
        return loss
