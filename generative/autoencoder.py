"""Autoencoders: an encoder squeezes x into a small code z, a decoder rebuilds x from z, and training
minimises the reconstruction error

    L(x) = E_{x~data} [ d(x, g(f(x~))) ],   z = f(x~),   x~ = x (undercomplete) or a corrupted x (denoising)

with d the binary cross-entropy for binary images (the Bernoulli negative log-likelihood, nats) and half
the squared error otherwise. The code is smaller than x (undercomplete), so the network must keep what
matters; a denoising autoencoder (Vincent et al. 2008) reconstructs the clean x from a corrupted copy
(masking noise for binary data: each pixel set to 0 with probability ``corruption``; Gaussian noise of
standard deviation ``corruption`` otherwise), so it must learn the structure of the data, not the identity.

A linear autoencoder with squared error (Baldi & Hornik 1989) learns the principal subspace: at its
optimum the decoder's columns span the top-``latent_dim`` principal components of the data (PCA), though
not the components themselves. ``LinearAutoencoder.subspace()`` returns an orthonormal basis to compare.

An autoencoder defines no probability distribution: nothing says which codes are likely, so there is no
p(x) and no way to sample. ``log_prob`` and ``sample`` raise ``NotImplementedError``; the VAE
(``generative.vae``) adds the prior and the likelihood that make both exist.

    ae = Autoencoder((1, 8, 8), latent_dim=8)                     # MLP, binary inputs
    dae = ConvAutoencoder((1, 28, 28), latent_dim=16, corruption=0.25)
    history = generative.fit.fit(ae, train, val)                  # Adam, early stopping on val
    x_hat = ae.reconstruct(test)                                  # probabilities (binary) or values

The building blocks (``mlp``, ``conv_encoder``, ``conv_decoder``) are shared with the VAE; every model trains with
:func:`generative.fit.fit`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.common import bernoulli_log_prob, check_input, event_size
from mpenv.networks import mlp  # re-exported: the building block shared with the VAE and the agents

__all__ = ["Autoencoder", "ConvAutoencoder", "LinearAutoencoder", "conv_decoder", "conv_encoder", "mlp"]


# --------------------------------------------------------------------------------------------- building blocks


def _check_conv_shape(input_shape: Sequence[int], channels: Sequence[int]) -> None:
    factor = 2 ** len(channels)
    if len(input_shape) != 3 or input_shape[1] % factor or input_shape[2] % factor:
        raise ValueError(f"a conv model needs input_shape (C, H, W) with H and W divisible by {factor} "
                         f"({len(channels)} stride-2 layers), got {tuple(input_shape)}")  # fmt: skip


def conv_encoder(input_shape: Sequence[int], channels: Sequence[int], out_dim: int) -> nn.Sequential:
    """``[N, C, H, W] -> [N, out_dim]``: stride-2 4x4 convolutions halve H and W per layer, then a linear map."""
    _check_conv_shape(input_shape, channels)
    c, h, w = input_shape
    layers: list[nn.Module] = []
    for width in channels:
        layers += [nn.Conv2d(c, width, 4, stride=2, padding=1), nn.ReLU()]
        c = width
    factor = 2 ** len(channels)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * (h // factor) * (w // factor), out_dim))


def conv_decoder(in_dim: int, input_shape: Sequence[int], channels: Sequence[int]) -> nn.Sequential:
    """``[N, in_dim] -> [N, C, H, W]``, the mirror of ``conv_encoder``: a linear map, then stride-2
    transposed convolutions that double H and W; no activation at the end (logits or means)."""
    _check_conv_shape(input_shape, channels)
    c, h, w = input_shape
    factor = 2 ** len(channels)
    widths = list(channels)[::-1]
    layers: list[nn.Module] = [nn.Linear(in_dim, widths[0] * (h // factor) * (w // factor)), nn.ReLU(),
                               nn.Unflatten(1, (widths[0], h // factor, w // factor))]  # fmt: skip
    for a, b in zip(widths, widths[1:] + [c], strict=True):
        layers += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
    return nn.Sequential(*layers[:-1])  # drop the last ReLU


# ------------------------------------------------------------------------------------------------ the models


class Autoencoder(nn.Module):
    """An MLP autoencoder ``x -> z (latent_dim) -> x_hat``, undercomplete, denoising if ``corruption > 0``.

    Args:
        input_shape: shape of one example, ``(C, H, W)`` or ``(D,)``.
        latent_dim: size of the code z.
        hidden: hidden layer widths of the encoder; the decoder mirrors them.
        binary: inputs in {0, 1} and a Bernoulli reconstruction loss (cross-entropy); otherwise half the
            squared error.
        corruption: denoising noise level used by ``loss`` (masking probability for binary inputs,
            Gaussian standard deviation otherwise); 0 trains a plain autoencoder.
    """

    def __init__(self, input_shape: Sequence[int], latent_dim: int = 16, hidden: Sequence[int] = (256,),
                 binary: bool = True, corruption: float = 0.0):  # fmt: skip
        super().__init__()
        self.input_shape = tuple(int(d) for d in input_shape)
        self.latent_dim, self.binary, self.corruption = latent_dim, binary, corruption
        if not 0.0 <= corruption < (1.0 if binary else float("inf")):
            raise ValueError(f"corruption must be in [0, 1) for binary inputs (a masking probability) or >= 0, "
                             f"got {corruption}")  # fmt: skip
        self.encoder, self.decoder = self._networks(hidden)

    def _networks(self, hidden: Sequence[int]) -> tuple[nn.Module, nn.Module]:
        d = event_size(self.input_shape)
        encoder = nn.Sequential(nn.Flatten(), mlp(d, hidden, self.latent_dim))
        decoder = nn.Sequential(mlp(self.latent_dim, list(hidden)[::-1], d), nn.Unflatten(1, self.input_shape))
        return encoder, decoder

    def _check(self, x: Tensor) -> Tensor:
        return check_input(x, self.input_shape, binary=self.binary, model=type(self).__name__)

    def encode(self, x: Tensor) -> Tensor:
        """The code ``z [N, latent_dim]``."""
        return self.encoder(self._check(x))

    def decode(self, z: Tensor) -> Tensor:
        """Decoder output ``[N, *input_shape]``: logits for binary models, values otherwise."""
        return self.decoder(z)

    def reconstruct(self, x: Tensor) -> Tensor:
        """``g(f(x))`` of the clean input: pixel probabilities for binary models, values otherwise."""
        out = self.decode(self.encode(x))
        return torch.sigmoid(out) if self.binary else out

    def corrupt(self, x: Tensor) -> Tensor:
        """The denoising autoencoder's noisy copy of ``x`` (``x`` itself when ``corruption == 0``)."""
        if self.corruption == 0:
            return x
        if self.binary:  # masking noise keeps the input binary
            return x * (torch.rand_like(x) >= self.corruption)
        return x + self.corruption * torch.randn_like(x)

    def reconstruction_error(self, x: Tensor) -> Tensor:
        """``d(x, g(f(x~)))`` per example ``[N]``: nats (binary) or half the squared error."""
        x = self._check(x)
        out = self.decode(self.encoder(self.corrupt(x)))
        if self.binary:
            return -bernoulli_log_prob(out, x)
        return 0.5 * F.mse_loss(out, x, reduction="none").flatten(1).sum(dim=1)

    def loss(self, x: Tensor) -> Tensor:
        """The training objective: the mean reconstruction error of the batch."""
        return self.reconstruction_error(x).mean()

    def log_prob(self, x: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} defines no density p(x): an autoencoder has no prior over "
                                  "codes and no likelihood. Use reconstruction_error(x), or a VAE "
                                  "(generative.vae) for log p(x) bounds")  # fmt: skip

    def sample(self, n: int) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} cannot sample: nothing says which codes z are likely. "
                                  "A VAE (generative.vae) adds the prior p(z) that makes sampling possible")


class ConvAutoencoder(Autoencoder):
    """The convolutional autoencoder for images ``(C, H, W)``; H and W divisible by ``2 ** len(channels)``.

    ``channels`` are the widths of the stride-2 convolutions (e.g. 8x8 -> 4x4 -> 2x2 with two layers);
    the other arguments are those of ``Autoencoder``.
    """

    def __init__(self, input_shape: Sequence[int], latent_dim: int = 16, channels: Sequence[int] = (32, 64),
                 binary: bool = True, corruption: float = 0.0):  # fmt: skip
        self.channels = tuple(channels)
        super().__init__(input_shape, latent_dim, hidden=(), binary=binary, corruption=corruption)

    def _networks(self, hidden: Sequence[int]) -> tuple[nn.Module, nn.Module]:
        encoder = conv_encoder(self.input_shape, self.channels, self.latent_dim)
        decoder = conv_decoder(self.latent_dim, self.input_shape, self.channels)
        return encoder, decoder


class LinearAutoencoder(Autoencoder):
    """``x_hat = W_dec (W_enc x + b_enc) + b_dec`` trained with squared error: it learns PCA's subspace."""

    def __init__(self, input_shape: Sequence[int], latent_dim: int = 2):
        super().__init__(input_shape, latent_dim, hidden=(), binary=False)

    def subspace(self) -> Tensor:
        """An orthonormal basis ``[D, latent_dim]`` of the decoder's column space (where x_hat lives)."""
        weight = self.decoder[0][0].weight.detach()  # [D, latent_dim]
        basis, _ = torch.linalg.qr(weight)
        return basis
