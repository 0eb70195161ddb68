"""The variational bound of a diffusion model: an upper bound on ``-log p(x_0)`` in nats.

    -log p(x_0) <= L_T + sum_{t=2}^T L_{t-1} + L_0,
        L_T     = KL(q(x_T | x_0) || N(0, I))                                  (no parameters: ~0 for T = 1000)
        L_{t-1} = E_q KL(q(x_{t-1} | x_t, x_0) || p_theta(x_{t-1} | x_t))      (two Gaussians: closed form)
        L_0     = -E_q log p_theta(x_0 | x_1)

with ``p_theta(x_{t-1} | x_t) = N(mu_theta(x_t, t), sigma_t^2 I)``, ``mu_theta = (x_t - beta_t / sqrt(1 - alpha_bar_t)
eps_theta) / sqrt(alpha_t)`` and ``sigma_t^2`` fixed (``beta_t``, or the posterior variance). Each expectation is
estimated with one ``x_t ~ q(x_t | x_0)`` per step. On discrete data (pixels on ``n_bins`` levels spread over
[-1, 1]) the decoder ``L_0`` is DDPM's discretized Gaussian: the probability of the pixel's bin, whose outer bins
extend to infinity, so the bound is on the discrete NLL and sits in the likelihood table beside the exact models.
At ``t = 1`` the posterior variance is 0, so the decoder's variance is ``beta_1`` whatever ``sigma_t`` is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from generative.diffusion.schedule import NoiseSchedule

__all__ = ["Bound", "discretized_gaussian_log_prob", "normal_kl", "variational_bound"]


class Bound(NamedTuple):
    """The bound's terms per example, nats: ``total = prior + steps.sum(1) + decoder``; ``steps[:, t - 2]`` is
    ``L_{t-1}`` for ``t = 2..T`` (weighted, and zero where a subset estimate skipped it: ``variational_bound``)."""

    total: Tensor
    prior: Tensor
    steps: Tensor
    decoder: Tensor


def normal_kl(mean1: Tensor, var1: Tensor, mean2: Tensor, var2: Tensor) -> Tensor:
    """``KL(N(mean1, var1) || N(mean2, var2))`` elementwise."""
    return 0.5 * ((var2 / var1).log() + (var1 + (mean1 - mean2) ** 2) / var2 - 1)


def _log_normal_mass(lower: Tensor, upper: Tensor) -> Tensor:
    """``log(Phi(upper) - Phi(lower))`` without cancellation: in the upper tail by the symmetry ``Phi(-z)``."""
    flip = lower > 0
    a, b = torch.where(flip, -upper, lower), torch.where(flip, -lower, upper)  # now a <= b, a <= 0
    log_b, log_a = torch.special.log_ndtr(b), torch.special.log_ndtr(a)
    return log_b + torch.log1p(-torch.exp(log_a - log_b).clamp(max=1 - 1e-12))


def discretized_gaussian_log_prob(x: Tensor, mean: Tensor, std: Tensor | float, n_bins: int) -> Tensor:
    """``log P(x)`` elementwise for ``x`` on ``n_bins`` levels evenly spread over [-1, 1]: the mass of
    ``N(mean, std^2)`` on ``x``'s bin (half a level on each side; the first and last bins reach infinity)."""
    half = 1.0 / (n_bins - 1)
    std = torch.as_tensor(std, dtype=mean.dtype, device=mean.device)
    upper = torch.where(x > 1 - half / 2, torch.full_like(x, math.inf), (x + half - mean) / std)
    lower = torch.where(x < -1 + half / 2, torch.full_like(x, -math.inf), (x - half - mean) / std)
    return _log_normal_mass(lower, upper)


def _sum_per_example(v: Tensor) -> Tensor:
    return v.flatten(1).sum(1)


def _middle_steps(T: int, steps: int | None, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """The steps ``t`` whose ``L_{t-1}`` is evaluated and the weight of each: all of ``2..T`` with weight 1, or for
    ``steps = K`` the first ``K // 2`` exactly (the small-``t`` terms dominate the bound and vary the most) and
    ``K - K // 2`` of the rest drawn without replacement, weighted by how many each stands for."""
    every = torch.arange(2, T + 1)
    if steps is None or steps >= T - 1:
        return every, torch.ones(len(every), dtype=torch.float64)
    if steps < 2:
        raise ValueError(f"a subset estimate of the bound needs at least 2 steps, got {steps}")
    exact, rest = every[: steps // 2], every[steps // 2 :]
    drawn = rest[torch.randperm(len(rest), generator=generator)[: steps - steps // 2]]
    weights = torch.cat([torch.ones(len(exact)), torch.full((len(drawn),), len(rest) / len(drawn))])
    return torch.cat([exact, drawn]), weights.double()


@torch.no_grad()
def variational_bound(eps: Callable[[Tensor, Tensor], Tensor], schedule: NoiseSchedule, x0: Tensor,
                      variance: str = "beta", n_bins: int | None = None, steps: int | None = None,
                      generator: torch.Generator | None = None) -> Bound:  # fmt: skip
    """The bound for ``x0`` (already in the model's space: [-1, 1] for pixels) in nats per example.

    ``steps=None`` evaluates every ``L_{t-1}``, ``t = 2..T`` (``T - 1`` network calls on the batch); ``steps=K``
    evaluates ``K`` of them, an unbiased estimate for cheap monitoring (``_middle_steps``). ``n_bins=None``: a
    continuous Gaussian decoder (a bound on a density).
    """
    if variance not in ("beta", "posterior"):
        raise ValueError(f"variance must be 'beta' or 'posterior', got {variance!r}")
    T = schedule.steps
    if T < 2:
        raise ValueError("the variational bound needs T >= 2")
    n = len(x0)
    ab_T = schedule.at(schedule.alphas_cumprod, torch.full((n,), T), x0)
    prior = _sum_per_example(normal_kl(ab_T.sqrt() * x0, (1 - ab_T).expand_as(x0), torch.zeros_like(x0),
                                       torch.ones_like(x0)))  # fmt: skip
    chosen, weights = _middle_steps(T, steps, generator)
    sigmas2 = schedule.betas if variance == "beta" else schedule.posterior_variance
    per_step = torch.zeros(n, T - 1, dtype=x0.dtype, device=x0.device)
    for step, weight in zip(chosen.tolist(), weights.tolist(), strict=True):
        t = torch.full((n,), step, dtype=torch.long, device=x0.device)
        xt = schedule.q_sample(x0, t, torch.randn(x0.shape, generator=generator).to(x0))
        mean_q, var_q = schedule.posterior_mean_variance(x0, xt, t)
        mean_p = schedule.mean_from_eps(xt, t, eps(xt, t))
        var_p = schedule.at(sigmas2, t, x0).expand_as(x0)
        per_step[:, step - 2] = weight * _sum_per_example(normal_kl(mean_q, var_q, mean_p, var_p))
    t1 = torch.ones(n, dtype=torch.long, device=x0.device)
    x1 = schedule.q_sample(x0, t1, torch.randn(x0.shape, generator=generator).to(x0))
    mean, std = schedule.mean_from_eps(x1, t1, eps(x1, t1)), float(schedule.betas[1]) ** 0.5
    if n_bins is None:
        log_p = -0.5 * ((x0 - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)
    else:
        log_p = discretized_gaussian_log_prob(x0, mean, std, n_bins)
    decoder = -_sum_per_example(log_p)
    return Bound(prior + per_step.sum(1) + decoder, prior, per_step, decoder)

