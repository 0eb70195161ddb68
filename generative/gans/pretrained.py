"""The GANs shipped with the package: a DCGAN and a StyleGAN of grey 8x8 digits.

Each is an ``mpenv-gen`` run directory in ``generative/assets/`` (``config.json`` with ``made_by``,
``checkpoint.pt`` with the final weights, the TensorBoard events of the training), made by
``python benchmarks/gan_assets.py dcgan`` / ``stylegan``: seed 0, the package defaults
(``DCGAN((1, 8, 8))``; ``StyleGAN((1, 8, 8), ema_decay=0.99)``), ``fit_gan`` with Adam 2e-4 and batch 64, for
60 epochs (DCGAN) or 30 (StyleGAN), one torch thread. The slow tests of ``tests/test_gans.py`` evaluate them
instead of training them in CI. They load through the run loader (``generative.train.load_run``,
``weights_only=True``), so ``mpenv-gen eval generative/assets/digits_dcgan`` evaluates one like any run.

    gan = load_digits_gan("digits_dcgan"); x = gan.sample(16)
"""

from __future__ import annotations

from pathlib import Path

import torch

from generative.gans.gan import GAN
from generative.shipped import load_shipped_run, shipped_run_dir

__all__ = ["DIGITS_GANS", "digits_gan_dir", "load_digits_gan"]

DIGITS_GANS = ("digits_dcgan", "digits_stylegan")
"""The shipped GANs' asset folders."""


def digits_gan_dir(name: str) -> Path:
    """The run directory of the shipped GAN ``name`` (one of :data:`DIGITS_GANS`)."""
    return shipped_run_dir(name, DIGITS_GANS, "GAN")


def load_digits_gan(name: str, device: torch.device | str = "cpu") -> GAN:
    """The shipped GAN ``name``, in eval mode; a fresh copy on every call."""
    return load_shipped_run(digits_gan_dir(name), GAN, device)
