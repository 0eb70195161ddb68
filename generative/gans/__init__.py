"""Generative adversarial networks: a generator and a discriminator in a two-player game.

| piece | file | what |
| --- | --- | --- |
| discriminator_loss, generator_loss, ... | ``losses.py`` | minimax, non-saturating, Wasserstein (GP), hinge; ``D*`` |
| mlp_generator, DCGANGenerator, ... | ``networks.py`` | MLP players for points, DCGAN's convolutional pair for images |
| GAN, DCGAN, WGANGP, UnrolledGAN | ``gan.py`` | the players, ``k`` discriminator steps, gradient penalty, EMA |
| unrolled_generator_loss | ``unrolled.py`` | the generator's loss through look-ahead discriminator steps |
| StyleGAN, StyleGenerator | ``stylegan.py`` | mapping net, constant input, (de)modulated convs, noise, mixing |
| StyleFlow, fit_styleflow | ``styleflow.py`` | attribute edits: a conditional flow ``w <-> u`` given attributes |
| TASKS, apply_task | ``domains.py`` | digit-domain tasks with exact answers: edge maps, thick strokes, rotations |
| Pix2Pix | ``pix2pix.py`` | paired translation: U-Net, conditional PatchGAN, L1; BicycleGAN's latent code |
| CycleGAN | ``cyclegan.py`` | unpaired translation: two generators, two critics, cycle and identity terms |
| invert, inpaint, train_encoder | ``inversion.py`` | optimize ``z`` so ``G(z) = x`` (restarts, mask, encoder start) |
| fit_gan | ``train.py`` | the adversarial loop every GAN uses; the ``mpenv-gen train`` run |
| load_digits_gan | ``pretrained.py`` | the shipped DCGAN and StyleGAN of 8x8 digits (``generative/assets/``) |

Every model: ``Model(input_shape, ...)``, ``sample(n)``, ``discriminator_loss(real)``, ``generator_loss(n)``;
trained by :func:`generative.gans.train.fit_gan`. A GAN has no ``log_prob``: ``mpenv-gen eval`` reports sample
quality (Fréchet distance, precision/recall, modes covered) instead.
"""

from generative.gans.cyclegan import CycleGAN
from generative.gans.domains import TASKS, apply_task
from generative.gans.gan import DCGAN, GAN, WGANGP, UnrolledGAN
from generative.gans.inversion import inpaint, invert, train_encoder
from generative.gans.losses import (
    LOSSES,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    optimal_discriminator,
)
from generative.gans.networks import (
    DCGANDiscriminator,
    DCGANGenerator,
    PatchDiscriminator,
    UNetGenerator,
    mlp_discriminator,
    mlp_generator,
)
from generative.gans.pix2pix import Pix2Pix
from generative.gans.pretrained import DIGITS_GANS, digits_gan_dir, load_digits_gan
from generative.gans.styleflow import StyleFlow, digit_attributes, fit_styleflow
from generative.gans.stylegan import ModulatedConv2d, StyleGAN, StyleGenerator, modulated_conv2d
from generative.gans.train import GANHistory, fit_gan
from generative.gans.unrolled import unrolled_generator_loss

__all__ = ["DIGITS_GANS", "DCGAN", "GAN", "LOSSES", "TASKS", "WGANGP", "CycleGAN", "DCGANDiscriminator",
           "PatchDiscriminator", "digits_gan_dir", "load_digits_gan",
           "ModulatedConv2d", "Pix2Pix", "StyleFlow", "StyleGAN", "StyleGenerator", "UNetGenerator", "apply_task",
           "digit_attributes", "fit_styleflow", "modulated_conv2d", "DCGANGenerator", "GANHistory", "UnrolledGAN",
           "discriminator_loss", "fit_gan", "generator_loss", "gradient_penalty", "inpaint", "invert",
           "mlp_discriminator", "mlp_generator", "optimal_discriminator", "train_encoder",
           "unrolled_generator_loss"]  # fmt: skip
