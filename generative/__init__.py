"""Generative models of the course, each verified against an independent reference.

The main public names are importable from the package; they load on first use, so ``import generative`` does not
import torch::

    from generative import MADE, VAE, data
    from generative.fit import fit          # the function (``generative.fit`` is its module)

Submodules:

- :mod:`generative.data` -- scikit-learn's digits (grey and binarized, fixed stratified splits), Omniglot-28
  (shipped), 2D toy densities with exact log-densities, MNIST-format IDX files.
- :mod:`generative.autoencoder` -- MLP, convolutional, denoising and linear autoencoders.
- :mod:`generative.vae` -- VAE, beta-VAE, conditional VAE, the IWAE bound.
- :mod:`generative.vqvae` -- VQ-VAE with a categorical PixelCNN prior over its codes.
- :mod:`generative.autoregressive` -- FVSBN, NADE, MADE, PixelCNN, gated PixelCNN, WaveNet, causal transformer.
- :mod:`generative.flows` -- normalizing flows: coupling (affine, additive, spline), ActNorm, 1x1 convolutions,
  squeeze, multi-scale split, dequantization (uniform, variational); RealNVP, a neural spline flow, Glow,
  conditional flows, SRFlow, C-Flow.
- :mod:`generative.gans` -- GANs: minimax, non-saturating, Wasserstein-GP and hinge losses, DCGAN, unrolled GAN,
  one adversarial training loop, StyleGAN and StyleFlow, inversion, pix2pix and CycleGAN.
- :mod:`generative.diffusion` -- noise schedules, DDPM and DDIM sampling, the variational bound, DDPM on points
  and images, classifier-free guidance, ControlNet, latent diffusion, inpainting.
- :mod:`generative.fit` -- the one training loop (Adam, early stopping on validation).
- :mod:`generative.metrics` -- Frechet distance, KID, precision/recall on shipped digits classifiers' features
  (8x8 and 28x28), mode coverage.
- :mod:`generative.train` -- the ``mpenv-gen`` command.

Every likelihood model: ``Model(input_shape, ...)``, ``loss(x)``, ``log_prob(x)`` (nats per example) and
``sample(n)``; the GANs have ``sample(n)`` and the two players' losses, and no likelihood; the diffusion models
``loss(x)``, ``sample(n)`` and ``log_prob(x)``, minus their variational bound (a lower bound).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {  # public name -> the module that defines it
    **dict.fromkeys(["Autoencoder", "ConvAutoencoder", "LinearAutoencoder"], "generative.autoencoder"),
    **dict.fromkeys(["VAE", "BetaVAE", "ConditionalVAE"], "generative.vae"),
    "VQVAE": "generative.vqvae",
    **dict.fromkeys(["FVSBN", "NADE", "MADE", "PixelCNN", "GatedPixelCNN", "WaveNet", "CausalTransformer"],
                    "generative.autoregressive"),  # fmt: skip
    **dict.fromkeys(["RealNVP", "SplineFlow", "Glow", "ConditionalFlow", "SRFlow", "CFlow"], "generative.flows"),
    **dict.fromkeys(["GAN", "DCGAN", "WGANGP", "UnrolledGAN", "StyleGAN", "Pix2Pix", "CycleGAN", "fit_gan"],
                    "generative.gans"),  # fmt: skip
    **dict.fromkeys(["DDPM", "ConditionalDDPM", "ControlNet", "LatentDDPM", "inpaint"], "generative.diffusion"),
    **dict.fromkeys(["FitHistory", "mean_loss"], "generative.fit"),
    **dict.fromkeys(["frechet_distance", "kernel_distance", "precision_recall", "sample_quality"],
                    "generative.metrics"),  # fmt: skip
}
_SUBMODULES = ("autoencoder", "autoregressive", "common", "data", "diffusion", "fit", "flows", "gans", "metrics",
               "train", "vae", "vqvae")

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name: str) -> Any:
    """Import a public name (or submodule) on first access (PEP 562) and cache it in the package namespace."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"generative.{name}")
    else:
        raise AttributeError(f"module 'generative' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
