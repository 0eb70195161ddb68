"""Unrolled GAN (Metz et al. 2017): the generator optimizes against where the discriminator is about to be.

With discriminator weights ``theta_D`` and ``K`` look-ahead steps of its own gradient descent,

    theta_D^0 = theta_D,    theta_D^{k+1} = theta_D^k - eta * grad_theta L_D(theta_D^k, theta_G),

the generator minimizes ``L_G(theta_G, theta_D^K(theta_G))``: its gradient flows through the unrolled updates
(``create_graph=True``), so it feels how the discriminator would respond to it. A generator that collapses onto
one mode is punished at once by the look-ahead discriminator, which pushes the samples off that mode; spreading
over the modes is the stable answer. The discriminator itself takes only its ordinary step (the look-ahead
weights are functional copies, run with ``torch.func.functional_call``; the module is not changed). Metz et al.
unroll Adam; plain gradient steps of size ``unroll_lr`` keep the idea and the code short.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.func import functional_call

from generative.gans.losses import discriminator_loss, generator_loss

if TYPE_CHECKING:
    from generative.gans.gan import GAN

__all__ = ["unrolled_generator_loss"]


def unrolled_generator_loss(gan: GAN, real: Tensor, n: int) -> Tensor:
    """``L_G`` on ``n`` fresh samples against the discriminator after ``gan.unroll_steps`` look-ahead steps on
    ``real`` and generated batches (differentiable in the generator's weights through every step)."""
    params = dict(gan.discriminator.named_parameters())
    buffers = {name: b.clone() for name, b in gan.discriminator.named_buffers()}  # batch-norm statistics: untouched

    def logits(weights: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(gan.discriminator, (weights, buffers), (x,)).view(len(x))

    for _ in range(gan.unroll_steps):
        fake = gan.generate(gan.noise(len(real)))
        loss = discriminator_loss(gan.loss_kind, logits(params, real), logits(params, fake))
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
        params = {name: p - gan.unroll_lr * g for (name, p), g in zip(params.items(), grads, strict=True)}
    return generator_loss(gan.loss_kind, logits(params, gan.generate(gan.noise(n))))
