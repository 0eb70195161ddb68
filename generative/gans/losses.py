"""The adversarial game: value function, optimal discriminator, and the losses both players minimize.

Goodfellow et al.'s minimax game between a generator ``G`` and a discriminator ``D(x) = sigmoid(l(x))`` (``l``
the discriminator's logit):

    min_G max_D V(G, D) = E_{x ~ p_d}[log D(x)] + E_{z ~ p(z)}[log(1 - D(G(z)))].

For a fixed generator with density ``p_m`` the inner maximum is reached at

    D*(x) = p_d(x) / (p_d(x) + p_m(x)),      V(G, D*) = -log 4 + 2 JSD(p_d || p_m),

so the generator's game against the best discriminator minimizes the Jensen-Shannon divergence.

Losses by ``kind`` (each player minimizes its own; logits ``l_r`` on real data, ``l_f`` on generated data):

    kind             discriminator                                 generator
    minimax          -log D(x) - log(1 - D(G(z)))                  log(1 - D(G(z)))      (saturating)
    non-saturating   the same                                      -log D(G(z))
    wasserstein      l_f - l_r  (+ lambda (||grad l(x_hat)|| - 1)^2)   -l_f
    hinge            max(0, 1 - l_r) + max(0, 1 + l_f)             -l_f

With ``log D = -softplus(-l)`` and ``log(1 - D) = -softplus(l)`` every loss stays finite for any logit. Against
a confident discriminator (``D(G(z)) -> 0``, ``l_f -> -inf``) the minimax generator's gradient
``d/dl_f log(1 - sigmoid(l_f)) = -sigmoid(l_f)`` vanishes, while the non-saturating one's, ``-(1 - sigmoid(l_f))``,
tends to -1: the same fixed point, but a generator that can still learn when it is losing badly.

Wasserstein GAN with gradient penalty (Gulrajani et al. 2017): the critic ``l`` estimates the 1-Wasserstein
distance, ``sup_{||l||_L <= 1} E_d[l] - E_m[l]``, and the Lipschitz constraint is a penalty on the gradient norm
at random interpolates ``x_hat = e x + (1 - e) G(z)``, ``e ~ U[0, 1]``, where the optimal critic has norm 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LOSSES", "discriminator_loss", "generator_loss", "gradient_penalty", "optimal_discriminator"]

LOSSES = ("minimax", "non-saturating", "wasserstein", "hinge")


def check_loss(kind: str) -> str:
    if kind not in LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}; choose one of {', '.join(LOSSES)}")
    return kind


def discriminator_loss(kind: str, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The discriminator's (critic's) loss, a mean over the batch; the gradient penalty is added separately."""
    check_loss(kind)
    if kind in ("minimax", "non-saturating"):  # -log D(x) - log(1 - D(G(z)))
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "wasserstein":
        return fake_logits.mean() - real_logits.mean()
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def generator_loss(kind: str, fake_logits: Tensor) -> Tensor:
    """The generator's loss on the discriminator's logits of generated samples, a mean over the batch."""
    check_loss(kind)
    if kind == "minimax":  # log(1 - D(G(z))): saturates when D wins
        return -F.softplus(fake_logits).mean()
    if kind == "non-saturating":  # -log D(G(z))
        return F.softplus(-fake_logits).mean()
    return -fake_logits.mean()


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    """``(E[(||grad_x l(x_hat)|| - 1)^2], ||grad||`` per interpolate``)``; differentiable in the critic's weights."""
    e = torch.rand(len(real), *([1] * (real.ndim - 1)), device=real.device, dtype=real.dtype)
    x_hat = (e * real + (1 - e) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norms = grad.flatten(1).norm(dim=1)
    return (norms - 1).square().mean(), norms.detach()


def optimal_discriminator(p_data: Tensor, p_model: Tensor) -> Tensor:
    """``D*(x) = p_d(x) / (p_d(x) + p_m(x))`` from the two densities at the same points."""
    return p_data / (p_data + p_model)
