"""VQ-VAE (van den Oord et al. 2017): a discrete latent grid, the straight-through estimator, and a prior over it.

The encoder maps ``x`` to a grid of vectors ``z_e(x)``; each is replaced by its nearest codebook entry::

    k_i = argmin_j ||z_e(x)_i - e_j||,      z_q(x)_i = e_{k_i}

and the decoder gives ``p(x | z_q)`` (Bernoulli pixels here). The argmin has no gradient, so the decoder's
gradient is copied to the encoder unchanged (straight-through: ``z_q = z_e + sg[z_q - z_e]`` in the forward
pass). The loss (eq. 3 of the paper)::

    L = -log p(x | z_q(x)) + ||sg[z_e(x)] - e||^2 + beta ||z_e(x) - sg[e]||^2

moves the codebook towards the encoder outputs (second term) and commits the encoder to its codes (third term,
``beta = 0.25``). A prior ``p(k)`` over the code grid -- an autoregressive model of the code indices, here the
PixelCNN of :mod:`generative.autoregressive.pixelcnn` with a ``K``-way softmax per position
(``PixelCNN((1, H/2, W/2), n_classes=K)``) -- is trained on the (detached) codes of the data in the same loss, so
one optimizer trains both; ``sample(n)`` draws codes from the prior and decodes them.

Likelihood: ``q(k | x)`` is one-hot, so the ELBO is ``log p(x | z_q(x)) + log p(k(x))`` (the KL is minus the
prior's log-probability of the chosen codes); :meth:`VQVAE.log_prob` returns that lower bound on ``log p(x)``.
Codebook usage (the perplexity of the code histogram, and the fraction of codes used) is reported by
:meth:`VQVAE.codebook_usage`: a dead codebook is the classic failure of VQ training.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from generative.autoregressive.pixelcnn import PixelCNN
from generative.common import bernoulli_log_prob, check_input

__all__ = ["VQVAE", "quantize"]


def quantize(z_e: Tensor, codebook: Tensor) -> tuple[Tensor, Tensor]:
    """Nearest codebook entries of ``z_e [N, D, H, W]``: ``(indices [N, H, W], z_q [N, D, H, W])`` (no gradient
    tricks here; see :meth:`VQVAE.encode`)."""
    n, d, h, w = z_e.shape
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)
    distances = flat.square().sum(1, keepdim=True) - 2 * flat @ codebook.T + codebook.square().sum(1)[None, :]
    indices = distances.argmin(dim=1)
    z_q = codebook[indices].reshape(n, h, w, d).permute(0, 3, 1, 2)
    return indices.reshape(n, h, w), z_q


class VQVAE(nn.Module):
    """VQ-VAE on binary images ``[N, C, H, W]`` (H, W divisible by 2) with a categorical PixelCNN prior.

    Args:
        input_shape: ``(C, H, W)``.
        codebook_size: number of codes ``K``.
        code_dim: dimension ``D`` of each code vector.
        hidden: channels of the encoder and decoder.
        beta: commitment weight.
        prior_hidden: channels of the prior PixelCNN over the ``H/2 x W/2`` code grid.
        prior_layers: its residual type-B layers (after a 5 x 5 type-A layer).
    """

    def __init__(self, input_shape: Sequence[int], codebook_size: int = 32, code_dim: int = 16, hidden: int = 64,
                 beta: float = 0.25, prior_hidden: int = 64, prior_layers: int = 4) -> None:  # fmt: skip
        super().__init__()
        self.input_shape = tuple(int(d) for d in input_shape)
        if len(self.input_shape) != 3 or self.input_shape[1] % 2 or self.input_shape[2] % 2:
            raise ValueError(f"VQVAE needs image input_shape (C, H, W) with even H and W, got {self.input_shape}")
        channels = self.input_shape[0]
        self.beta = beta
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, code_dim, 1),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Conv2d(code_dim, hidden, 3, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(hidden, channels, 3, padding=1),
        )  # fmt: skip
        scale = 1.0 / codebook_size
        self.codebook = nn.Parameter(torch.empty(codebook_size, code_dim).uniform_(-scale, scale))
        self.grid = (self.input_shape[1] // 2, self.input_shape[2] // 2)
        self.prior = PixelCNN((1, *self.grid), channels=prior_hidden, n_layers=prior_layers, first_kernel=5,
                              n_classes=codebook_size)  # fmt: skip

    # ------------------------------------------------------------------------------------------ VQ

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(indices, z_q with the straight-through gradient, z_e)`` of a batch."""
        z_e = self.encoder(x)
        indices, z_q = quantize(z_e, self.codebook)
        return indices, z_e + (z_q - z_e).detach(), z_e

    def decode_logits(self, z_q: Tensor) -> Tensor:
        return self.decoder(z_q)

    def codes_to_latents(self, indices: Tensor) -> Tensor:
        return self.codebook[indices].permute(0, 3, 1, 2)

    def vq_terms(self, x: Tensor) -> dict[str, Tensor]:
        """Per-example reconstruction log-likelihood, codebook and commitment losses, and the codes."""
        indices, z_q_st, z_e = self.encode(x)
        z_q = self.codes_to_latents(indices)
        return {
            "log_px_z": bernoulli_log_prob(self.decode_logits(z_q_st), x),
            "codebook": (z_e.detach() - z_q).square().flatten(1).sum(1),
            "commitment": (z_e - z_q.detach()).square().flatten(1).sum(1),
            "indices": indices,
        }

    # ------------------------------------------------------------------------------------------ model API

    def loss(self, x: Tensor) -> Tensor:
        """Training mode: mean of the VQ-VAE loss plus the prior's NLL of the (detached) codes. Eval mode: the
        mean negative ELBO, so that early stopping watches the bound rather than the auxiliary codebook and
        commitment terms (which spike while the codebook settles)."""
        x = check_input(x, self.input_shape, binary=True, model="VQVAE")
        if not self.training:
            return -self.log_prob(x).mean()
        terms = self.vq_terms(x)
        vq = -terms["log_px_z"] + terms["codebook"] + self.beta * terms["commitment"]
        return (vq - self.code_log_prob(terms["indices"].detach())).mean()

    def log_prob(self, x: Tensor) -> Tensor:
        """ELBO ``log p(x | z_q(x)) + log p(k(x))`` per example, nats: a lower bound on ``log p(x)``."""
        x = check_input(x, self.input_shape, binary=True, model="VQVAE")
        terms = self.vq_terms(x)
        return terms["log_px_z"] + self.code_log_prob(terms["indices"])

    def code_log_prob(self, indices: Tensor) -> Tensor:
        """The prior's exact ``log p(k)`` of code grids ``[N, H/2, W/2]``, nats ``[N]``."""
        return self.prior.log_prob(indices[:, None])

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        """Codes from the prior, decoded, pixels drawn from the decoder's Bernoulli distributions."""
        indices = self.prior.sample(n)[:, 0].long()
        return torch.bernoulli(torch.sigmoid(self.decode_logits(self.codes_to_latents(indices))))

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Decoder means of the quantized encodings."""
        indices, _, _ = self.encode(check_input(x, self.input_shape, binary=True, model="VQVAE"))
        return torch.sigmoid(self.decode_logits(self.codes_to_latents(indices)))

    @torch.no_grad()
    def codebook_usage(self, x: Tensor) -> dict[str, float]:
        """Perplexity ``exp(H(code histogram))`` (``K`` when all codes are used evenly) and fraction used."""
        indices, _, _ = self.encode(check_input(x, self.input_shape, binary=True, model="VQVAE"))
        counts = torch.bincount(indices.flatten(), minlength=len(self.codebook)).float()
        p = counts / counts.sum()
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        return {"perplexity": float(entropy.exp()), "fraction_used": float((counts > 0).float().mean()),
                "codebook_size": len(self.codebook)}  # fmt: skip
