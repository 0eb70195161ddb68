"""Latent diffusion (Rombach et al. 2022): diffuse in the code space of a trained autoencoder, decode at the end.

    z_0 = E(x),  z_0 / s ~ DDPM,  x = D(s z_0^sampled)

The autoencoder (a ``mpenv-gen`` run of ``autoencoder``, ``vae``, ... : anything with ``encode`` and
``decode``; a VAE's code is its posterior mean) is frozen; the codes are standardized per dimension (``s``, and a
shift, measured on the first training batch and stored with the weights) so the diffusion sees unit-variance data
like the forward process assumes. The denoiser is the point MLP of ``ddpm.py``: a code of ``d`` numbers costs a
fraction of the image U-Net's work per step, which is the point of the method. The decoder turns the sampled
codes into images: a Bernoulli decoder's pixel probabilities are drawn (binary data), a Gaussian's means
clipped to [0, 1].

    model = LatentDDPM((1, 8, 8), autoencoder="runs/<vae run>"); fit(model, train, val); x = model.sample(64)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from generative.diffusion.ddpm import DDPM

__all__ = ["LatentDDPM"]


def _code(autoencoder: nn.Module, x: Tensor) -> Tensor:
    """The deterministic code of ``x``: a VAE's posterior mean, an autoencoder's code."""
    out = autoencoder.encode(x)
    return out[0] if isinstance(out, tuple) else out


class LatentDDPM(nn.Module):
    """A ``DDPM`` of an autoencoder's codes.

    Args:
        input_shape: the images', which must be the autoencoder's.
        autoencoder: a trained model with ``encode``/``decode`` and ``latent_dim``, or its run directory.
        **kwargs: the code DDPM's (``steps``, ``schedule``, ``prediction``, ``hidden``, ...).
    """

    diffusion = True
    training_defaults = DDPM.training_defaults

    def __init__(self, input_shape: Sequence[int], autoencoder: nn.Module | str, **kwargs: Any) -> None:
        super().__init__()
        if isinstance(autoencoder, str):
            from generative.train import load_run  # a run directory: the CLI's loader checks config and weights

            autoencoder = load_run(autoencoder, torch.device("cpu"))[0]
        if not all(hasattr(autoencoder, a) for a in ("encode", "decode", "latent_dim", "input_shape")):
            raise ValueError(f"LatentDDPM needs an autoencoder with encode, decode and latent_dim, got "
                             f"{type(autoencoder).__name__}")  # fmt: skip
        if getattr(autoencoder, "conditional", False) or getattr(autoencoder, "n_classes", 0):
            raise ValueError("LatentDDPM needs an unconditional autoencoder")
        if tuple(input_shape) != tuple(autoencoder.input_shape):
            raise ValueError(f"LatentDDPM: input_shape {tuple(input_shape)} differs from the autoencoder's "
                             f"{tuple(autoencoder.input_shape)}")  # fmt: skip
        self.input_shape = tuple(autoencoder.input_shape)
        self.autoencoder = autoencoder.requires_grad_(False).eval()
        self.code_ddpm = DDPM((autoencoder.latent_dim,), **kwargs)
        self.register_buffer("shift", torch.zeros(autoencoder.latent_dim))
        self.register_buffer("scale", torch.ones(autoencoder.latent_dim))
        self.register_buffer("standardized", torch.tensor(False))

    def train(self, mode: bool = True) -> LatentDDPM:
        super().train(mode)
        self.autoencoder.eval()
        return self

    def after_step(self) -> None:
        self.code_ddpm.after_step()

    def log_prob(self, x: Tensor) -> Tensor:
        raise NotImplementedError("LatentDDPM has no likelihood of images: its decoder is deterministic")

    @torch.no_grad()
    def codes(self, x: Tensor) -> Tensor:
        """Standardized codes of images ``x``; the first call (the first training batch) sets the standardization."""
        z = _code(self.autoencoder, x.to(self.shift.device))
        if not bool(self.standardized):
            if len(z) < 2:
                raise ValueError("LatentDDPM: the first batch must hold at least 2 images to standardize the codes")
            self.shift.copy_(z.mean(0))
            self.scale.copy_(z.std(0).clamp(min=1e-6))
            self.standardized.fill_(True)
        return (z - self.shift) / self.scale

    def loss(self, x: Tensor) -> Tensor:
        """The code DDPM's simple loss."""
        return self.code_ddpm.loss(self.codes(x))

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        out = self.autoencoder.decode(codes * self.scale + self.shift)
        if getattr(self.autoencoder, "binary", False):
            return torch.bernoulli(torch.sigmoid(out))
        return out.clamp(0, 1)

    @torch.no_grad()
    def sample(self, n: int, steps: int | None = None, sampler: str = "ddpm", eta: float = 0.0) -> Tensor:
        """``n`` images: codes from the code DDPM (``sampler``, ``steps``, ``eta`` as ``DDPM.sample``), decoded."""
        return self.decode(self.code_ddpm.sample(n, steps, sampler, eta))
