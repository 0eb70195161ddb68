"""The variational autoencoder (Kingma & Welling 2014), the beta-VAE, the conditional VAE, and the
importance-weighted bound (Burda et al. 2016).

Model: a prior p(z) = N(0, I) over codes z of size d, a decoder p_theta(x | z) (Bernoulli for binary
images, Gaussian with a learned per-pixel standard deviation otherwise), and an encoder
q_phi(z | x) = N(mu_phi(x), diag sigma_phi(x)^2) that approximates the posterior. For every x

    log p(x) >= ELBO(x) = E_{q(z|x)} [log p(x | z)] - KL(q(z | x) || p(z))           (reconstruction - KL)

Reparameterization: z = mu + sigma * eps with eps ~ N(0, I), so the sample is a differentiable function
of (mu, sigma) and the gradient of the reconstruction term flows into the encoder.

KL in closed form for a diagonal Gaussian against N(0, I):

    KL = 1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)

beta-VAE (Higgins et al. 2017) trains on E[log p(x | z)] - beta KL; beta > 1 pushes towards a factorised,
more disentangled code at the price of reconstruction; beta = 1 is the VAE.

Conditional VAE (Sohn et al. 2015): the label y (one-hot) is given to the encoder q(z | x, y) and to the
decoder p(x | z, y); the prior stays N(0, I), and the ELBO bounds log p(x | y).

IWAE bound with K samples z_k ~ q(z | x):

    log p(x) >= L_K(x) = E [ log 1/K sum_k p(x | z_k) p(z_k) / q(z_k | x) ],   L_1 = ELBO <= L_K <= L_{K+1}

and L_K -> log p(x) as K grows, which is why it is the evaluation metric of choice.

``log_prob(x)`` returns a one-sample estimate of the ELBO per example (nats, a lower bound of log p(x)),
``log_prob(x, k=K)`` an estimate of L_K (also a lower bound, in expectation; tighter for larger K).
``loss(x)`` is the mean negative (beta-)ELBO, the quantity minimised in training.

    vae = VAE((1, 8, 8), latent_dim=8)                 # binary inputs, Bernoulli decoder
    history = fit(vae, train, val)                     # generative.fit.fit
    nats = -vae.log_prob(test, k=1000).mean()          # IWAE, nats per image
    cvae = ConditionalVAE((1, 8, 8), n_classes=10); fit(cvae, (x, y), (x_val, y_val))
    images = cvae.sample(10, y=torch.arange(10))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.common import bernoulli_log_prob, check_input, event_size
from mpenv.networks import mlp

__all__ = ["VAE", "BetaVAE", "ConditionalVAE", "gaussian_kl", "log_standard_normal", "reparameterize"]

LOG_2PI = math.log(2 * math.pi)
MIN_DECODER_STD = 0.01  # a floor on the Gaussian decoder's sigma: pixels that never vary (the digits' borders)
# would otherwise drive sigma to 0 and the likelihood to infinity


def reparameterize(mu: Tensor, log_var: Tensor, k: int | None = None) -> Tensor:
    """``z = mu + sigma * eps``, eps ~ N(0, I): ``[N, d]``, or ``[k, N, d]`` with ``k`` samples per example."""
    shape = mu.shape if k is None else (k, *mu.shape)
    eps = torch.randn(shape, dtype=mu.dtype, device=mu.device)
    return mu + torch.exp(0.5 * log_var) * eps


def gaussian_kl(mu: Tensor, log_var: Tensor) -> Tensor:
    """``KL(N(mu, diag exp(log_var)) || N(0, I))`` in closed form, summed over the last dimension: ``[N]``."""
    return 0.5 * (mu.pow(2) + log_var.exp() - 1.0 - log_var).sum(dim=-1)


def log_standard_normal(z: Tensor) -> Tensor:
    """``log N(z; 0, I)`` summed over the last dimension."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(dim=-1)


def _log_diag_normal(z: Tensor, mu: Tensor, log_var: Tensor) -> Tensor:
    """``log N(z; mu, diag exp(log_var))`` summed over the last dimension (the encoder's density q(z|x))."""
    return -0.5 * ((z - mu).pow(2) / log_var.exp() + log_var + LOG_2PI).sum(dim=-1)


class VAE(nn.Module):
    """A VAE with MLP encoder and decoder.

    Args:
        input_shape: shape of one example, ``(C, H, W)`` or ``(D,)``.
        latent_dim: size d of the code z.
        hidden: hidden widths of the encoder; the decoder mirrors them. ``()`` makes both linear (with a
            Gaussian decoder this is the linear-Gaussian model whose p(x) is known in closed form).
        binary: inputs in {0, 1} with a Bernoulli decoder; otherwise a Gaussian decoder with a learned
            per-dimension standard deviation (at least ``MIN_DECODER_STD``). On grey images this is a
            density of continuous values, not comparable with the nats of a binary model.
        beta: weight of the KL term in ``loss`` (1 for the VAE); ``log_prob`` always uses the true ELBO.
    """

    n_classes = 0  # > 0 in the conditional VAE
    conditional = False  # True: loss, log_prob and sample take the labels y too

    def __init__(self, input_shape: Sequence[int], latent_dim: int = 8, hidden: Sequence[int] = (256,),
                 binary: bool = True, beta: float = 1.0):  # fmt: skip
        super().__init__()
        self.input_shape = tuple(int(d) for d in input_shape)
        self.latent_dim, self.binary, self.beta = latent_dim, binary, beta
        d = event_size(self.input_shape)
        self.encoder = mlp(d + self.n_classes, hidden, 2 * latent_dim)  # -> (mu, log_var)
        self.decoder = mlp(latent_dim + self.n_classes, list(hidden)[::-1], d)  # -> logits or means
        # log sigma of the Gaussian decoder; unused (and absent from the state) for binary data
        self.decoder_log_std = None if binary else nn.Parameter(torch.zeros(d))

    # ------------------------------------------------------------------------- conditioning (none here)

    def _condition(self, h: Tensor, y: Tensor | None) -> Tensor:
        """Append the one-hot label to the inputs of encoder and decoder (only in the conditional VAE)."""
        if y is not None:
            raise ValueError(f"{type(self).__name__} is unconditional; use ConditionalVAE to give labels")
        return h

    def _check(self, x: Tensor) -> Tensor:
        return check_input(x, self.input_shape, binary=self.binary, model=type(self).__name__)

    # ---------------------------------------------------------------------------------- encoder, decoder

    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``mu, log_var`` of q(z | x), each ``[N, latent_dim]``."""
        h = self._condition(self._check(x).flatten(1), y)
        mu, log_var = self.encoder(h).chunk(2, dim=-1)
        return mu, log_var

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Decoder parameters ``[..., *input_shape]`` for codes ``z [..., latent_dim]``: Bernoulli logits, or
        Gaussian means."""
        if y is not None and z.ndim == 3:  # K samples per example share the example's label
            y = y.expand(z.shape[0], *y.shape)
        out = self.decoder(self._condition(z, y))
        return out.reshape(*z.shape[:-1], *self.input_shape)

    def log_likelihood(self, x: Tensor, z: Tensor, y: Tensor | None = None) -> Tensor:
        """``log p(x | z)`` in nats: ``[N]`` for ``z [N, d]``, ``[K, N]`` for ``z [K, N, d]``."""
        out = self.decode(z, y)
        batch_shape = out.shape[: -len(self.input_shape)]  # [N] or [K, N]
        x = x.expand_as(out)
        if self.binary:
            flat = (-1, *self.input_shape)  # bernoulli_log_prob sums all but the first dimension
            return bernoulli_log_prob(out.reshape(flat), x.reshape(flat)).reshape(batch_shape)
        log_std = self._decoder_log_std()
        log_n = -0.5 * ((x - out) / log_std.exp()).pow(2) - log_std - 0.5 * LOG_2PI
        return log_n.flatten(-len(self.input_shape)).sum(dim=-1)

    # ------------------------------------------------------------------------------------------ bounds

    def elbo_terms(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One-sample reconstruction term ``log p(x | z)``, z = mu + sigma eps, and the closed-form KL: ``[N]`` each."""
        mu, log_var = self.encode(x, y)
        z = reparameterize(mu, log_var)
        return self.log_likelihood(x.float(), z, y), gaussian_kl(mu, log_var)

    def elbo(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """``ELBO(x) = log p(x | z) - KL(q(z | x) || p(z))`` per example ``[N]``, a lower bound of log p(x)."""
        reconstruction, kl = self.elbo_terms(x, y)
        return reconstruction - kl

    def iwae(self, x: Tensor, k: int, y: Tensor | None = None) -> Tensor:
        """The importance-weighted bound ``L_K(x)`` per example ``[N]`` (memory grows as K x N x D)."""
        mu, log_var = self.encode(x, y)
        z = reparameterize(mu, log_var, k)  # [K, N, d]
        log_w = self.log_likelihood(x.float(), z, y) + log_standard_normal(z) - _log_diag_normal(z, mu, log_var)
        return torch.logsumexp(log_w, dim=0) - math.log(k)

    # -------------------------------------------------------------------------------------- public API

    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The training objective, the mean negative beta-ELBO: ``-(log p(x | z) - beta KL)``."""
        reconstruction, kl = self.elbo_terms(x, y)
        return -(reconstruction - self.beta * kl).mean()

    def log_prob(self, x: Tensor, y: Tensor | None = None, k: int | None = None) -> Tensor:
        """A lower bound of ``log p(x)`` per example ``[N]``, nats: the ELBO (one sample) by default, the IWAE
        bound ``L_k`` with ``k`` samples otherwise. Both are stochastic estimates."""
        return self.elbo(x, y) if k is None else self.iwae(x, k, y)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None, mean: bool = False) -> Tensor:
        """``n`` draws ``x ~ p(x | z), z ~ N(0, I)``: ``[n, *input_shape]`` (binary for Bernoulli decoders).
        ``mean=True`` returns the decoder's mean (pixel probabilities) instead, the usual picture."""
        z = torch.randn(n, self.latent_dim, device=self.decoder[0].weight.device)
        return self._draw(self.decode(z, y), mean)

    def _draw(self, out: Tensor, mean: bool) -> Tensor:
        if self.binary:
            probs = torch.sigmoid(out)
            return probs if mean else torch.bernoulli(probs)
        if mean:
            return out
        return out + self._decoder_log_std().exp() * torch.randn_like(out)

    def _decoder_log_std(self) -> Tensor:
        return self.decoder_log_std.clamp(min=math.log(MIN_DECODER_STD)).reshape(self.input_shape)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The decoder's mean at the posterior mean code, ``[N, *input_shape]`` (pixel probabilities if binary)."""
        mu, _ = self.encode(x, y)
        return self._draw(self.decode(mu, y), mean=True)

    @torch.no_grad()
    def interpolate(self, x_a: Tensor, x_b: Tensor, steps: int = 8, y: Tensor | None = None) -> Tensor:
        """Decoder means along the straight line between the codes (posterior means) of two examples
        ``[1, *input_shape]`` each: ``[steps, *input_shape]``."""
        z_a, _ = self.encode(x_a, y)
        z_b, _ = self.encode(x_b, y)
        t = torch.linspace(0, 1, steps, device=z_a.device)[:, None]
        z = (1 - t) * z_a + t * z_b
        return self._draw(self.decode(z, None if y is None else y.expand(steps)), mean=True)


class BetaVAE(VAE):
    """The beta-VAE: the VAE trained on ``log p(x | z) - beta KL`` with ``beta = 4`` by default."""

    def __init__(self, input_shape: Sequence[int], latent_dim: int = 8, hidden: Sequence[int] = (256,),
                 binary: bool = True, beta: float = 4.0):  # fmt: skip
        super().__init__(input_shape, latent_dim, hidden, binary, beta)


class ConditionalVAE(VAE):
    """The conditional VAE: labels ``y`` (int64 ``[N]`` in ``0..n_classes-1``) go one-hot into encoder and
    decoder. ``loss(x, y)``, ``log_prob(x, y)`` (bounds of log p(x | y)) and ``sample(n, y)`` need them;
    ``sample(n)`` without labels cycles through the classes."""

    conditional = True

    def __init__(self, input_shape: Sequence[int], n_classes: int = 10, latent_dim: int = 8,
                 hidden: Sequence[int] = (256,), binary: bool = True, beta: float = 1.0):  # fmt: skip
        self.n_classes = n_classes  # read by VAE.__init__ to size the networks (set before nn.Module.__init__)
        super().__init__(input_shape, latent_dim, hidden, binary, beta)

    def _condition(self, h: Tensor, y: Tensor | None) -> Tensor:
        if y is None:
            raise ValueError("ConditionalVAE needs the labels y as well: loss(x, y), log_prob(x, y), sample(n, y)")
        if y.shape != h.shape[:-1] or y.dtype.is_floating_point:
            raise ValueError(f"ConditionalVAE: expected integer labels of shape {list(h.shape[:-1])}, got "
                             f"{y.dtype} {list(y.shape)}")  # fmt: skip
        if y.min() < 0 or y.max() >= self.n_classes:
            raise ValueError(f"ConditionalVAE: labels must be in 0..{self.n_classes - 1}")
        return torch.cat([h, F.one_hot(y, self.n_classes).to(h.dtype)], dim=-1)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None, mean: bool = False) -> Tensor:
        if y is None:
            y = torch.arange(n) % self.n_classes
        return super().sample(n, y, mean)
