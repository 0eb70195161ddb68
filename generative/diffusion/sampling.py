"""The reverse process: ancestral (DDPM) and DDIM sampling from any noise predictor ``eps(x_t, t)``.

DDPM (Ho et al. 2020), the course's loop: ``x_T ~ N(0, I)``, then for ``t = T..1``

    x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps(x_t, t)) / sqrt(alpha_t) + sigma_t z,    z ~ N(0, I)

with ``sigma_t^2 = beta_t`` (or the posterior variance ``beta~_t``; both are the bounds of the optimal variance),
and no noise at the last step.

DDIM (Song et al. 2021) on a subsequence ``tau_S > ... > tau_1`` of the steps: predict ``x_0`` from ``eps``,

    x_0^ = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)
    x_s  = sqrt(alpha_bar_s) x_0^ + sqrt(1 - alpha_bar_s - sigma^2) eps + sigma z,
    sigma = eta sqrt((1 - alpha_bar_s) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_s)

``eta = 0`` is deterministic; ``eta = 1`` over all steps is DDPM with the posterior variance (over few steps it
is a coarse discretization: with the exact predictor of a 1D mixture and 50 steps, a mode comes out 15% too
narrow). ``x_0^`` divides by ``sqrt(alpha_bar_t)``, so DDIM refuses a schedule that reaches ``alpha_bar = 0``
(the cosine one). Both loops are batched: one call of the predictor per step for the whole batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from generative.diffusion.schedule import NoiseSchedule

__all__ = ["SAMPLERS", "EpsFn", "ddim_sample", "ddim_timesteps", "ddpm_sample", "reverse_mean", "reverse_process"]

SAMPLERS = ("ddpm", "ddim")

EpsFn = Callable[[Tensor, Tensor], Tensor]
"""``eps(x_t [N, ...], t [N] int64) -> [N, ...]``."""


def reverse_mean(schedule: NoiseSchedule, xt: Tensor, t: Tensor, eps: Tensor, clip: float | None = None) -> Tensor:
    """The mean of ``p_theta(x_{t-1} | x_t)``: the ``eps`` form, or with ``clip`` the posterior mean of the
    predicted ``x_0`` clipped to ``[-clip, clip]`` (the same when nothing is clipped)."""
    if clip is None:
        return schedule.mean_from_eps(xt, t, eps)
    return schedule.posterior_mean_variance(schedule.x0_from_eps(xt, t, eps).clamp(-clip, clip), xt, t)[0]


@torch.no_grad()
def ddpm_sample(eps: EpsFn, schedule: NoiseSchedule, x_T: Tensor, variance: str = "beta",
                trajectory: list[Tensor] | None = None, clip: float | None = None) -> Tensor:  # fmt: skip
    """Ancestral sampling from ``x_T`` through all ``T`` steps; ``trajectory`` collects ``x_t`` after each step.
    ``clip``: data known to lie in ``[-clip, clip]`` (images): each step's mean is the posterior mean
    ``mu_q(x_t, x_0^)`` of the predicted ``x_0`` clipped to that range (equal to the ``eps`` form unclipped)."""
    if variance not in ("beta", "posterior"):
        raise ValueError(f"variance must be 'beta' or 'posterior', got {variance!r}")
    x = x_T
    sigmas2 = schedule.betas if variance == "beta" else schedule.posterior_variance
    for step in range(schedule.steps, 0, -1):
        t = torch.full((len(x),), step, dtype=torch.long, device=x.device)
        x = reverse_mean(schedule, x, t, eps(x, t), clip)
        if step > 1:
            x = x + schedule.at(sigmas2, t, x).sqrt() * torch.randn_like(x)
        if trajectory is not None:
            trajectory.append(x)
    return x


def ddim_timesteps(total: int, steps: int) -> list[int]:
    """``steps`` evenly spaced steps of ``1..total``, descending (always ending at 1)."""
    if not 1 <= steps <= total:
        raise ValueError(f"DDIM needs 1 <= steps <= {total}, got {steps}")
    return sorted({round(1 + i * (total - 1) / max(steps - 1, 1)) for i in range(steps)}, reverse=True)


@torch.no_grad()
def ddim_sample(eps: EpsFn, schedule: NoiseSchedule, x_T: Tensor, steps: int = 50, eta: float = 0.0,
                trajectory: list[Tensor] | None = None, clip: float | None = None) -> Tensor:  # fmt: skip
    """DDIM from ``x_T`` over ``steps`` of the schedule's steps, ``eta`` in [0, 1]; ``clip`` clips ``x_0^`` to
    ``[-clip, clip]`` and recomputes the noise from it (diffusers' ``use_clipped_model_output``: keeping the
    unclipped noise beside a clipped ``x_0^`` sends guided samples off the data)."""
    if not 0 <= eta <= 1:
        raise ValueError(f"DDIM's eta must lie in [0, 1], got {eta}")
    x = x_T
    taus = ddim_timesteps(schedule.steps, steps)
    first = float(schedule.alphas_cumprod[taus[0]])
    if first < 1e-8:  # x_0^ divides by sqrt(alpha_bar_t): at a pure-noise step that is 1/0
        raise ValueError(f"DDIM: alpha_bar at step {taus[0]} is {first:.3g}, so the x_0 estimate divides by ~0 "
                         "(the cosine schedule ends at alpha_bar = 0); use the linear or quadratic schedule, or "
                         "the ancestral sampler")  # fmt: skip
    for step, previous in zip(taus, [*taus[1:], 0], strict=True):
        t = torch.full((len(x),), step, dtype=torch.long, device=x.device)
        s = torch.full_like(t, previous)
        ab_t, ab_s = schedule.at(schedule.alphas_cumprod, t, x), schedule.at(schedule.alphas_cumprod, s, x)
        e = eps(x, t)
        x0 = (x - (1 - ab_t).sqrt() * e) / ab_t.sqrt()
        if clip is not None:  # and the noise consistent with the clipped x_0 (else guided eps drives x off)
            x0 = x0.clamp(-clip, clip)
            e = (x - ab_t.sqrt() * x0) / (1 - ab_t).sqrt()
        sigma = eta * ((1 - ab_s) / (1 - ab_t)).sqrt() * (1 - ab_t / ab_s).sqrt()
        x = ab_s.sqrt() * x0 + (1 - ab_s - sigma**2).clamp(min=0).sqrt() * e
        if previous > 0 and eta > 0:
            x = x + sigma * torch.randn_like(x)
        if trajectory is not None:
            trajectory.append(x)
    return x


def reverse_process(eps: EpsFn, schedule: NoiseSchedule, x_T: Tensor, sampler: str = "ddpm",
                    steps: int | None = None, eta: float = 0.0, variance: str = "beta",
                    trajectory: list[Tensor] | None = None, clip: float | None = None) -> Tensor:  # fmt: skip
    """What the models' ``sample`` runs: the ancestral loop over all ``T`` steps (``sampler="ddpm"``, ``variance``)
    or DDIM over ``steps`` of them (default 50, or ``T`` if fewer; ``eta``)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose ddpm or ddim")
    if sampler == "ddim":
        return ddim_sample(eps, schedule, x_T, steps or min(50, schedule.steps), eta, trajectory, clip)
    if steps not in (None, schedule.steps):
        raise ValueError(f"the ancestral sampler runs all {schedule.steps} steps; use sampler='ddim' for {steps}")
    return ddpm_sample(eps, schedule, x_T, variance, trajectory, clip)
