"""The forward (noising) process of a diffusion model and its closed forms.

Discrete time ``t = 1..T`` (Ho et al. 2020), with ``alpha_t = 1 - beta_t`` and ``alpha_bar_t = prod_{s<=t} alpha_s``:

    q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t I)
    q(x_t | x_0)     = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)          (x_t = sqrt(ab) x_0 + sqrt(1-ab) eps)
    q(x_{t-1} | x_t, x_0) = N(mu_q, sigma_q^2 I),
        mu_q = c1 x_0 + c2 x_t,   c1 = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t),
                                  c2 = sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t),
        sigma_q^2 = beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t),
        and with eps:  mu_q = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t).

Schedules: ``linear`` (``beta`` from ``beta_start`` to ``beta_end``, DDPM's), ``cosine`` (Nichol & Dhariwal 2021:
``alpha_bar_t = f(t) / f(0)``, ``f(t) = cos^2((t/T + s) / (1 + s) * pi/2)``, betas clipped at 0.999) and
``quadratic``. Tensors are indexed by ``t`` directly: entry 0 is ``t = 0`` (``alpha_bar_0 = 1``, no noise).

Continuous time (Kingma et al. 2021): ``t`` in [0, 1] with the log signal-to-noise ratio ``lambda(t)``, here
linear from ``log_snr_max`` to ``log_snr_min``; ``alpha_t^2 = sigmoid(lambda)``, ``sigma_t^2 = sigmoid(-lambda)``,
``x_t = alpha_t x_0 + sigma_t eps`` (``ContinuousSchedule``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["SCHEDULES", "ContinuousSchedule", "NoiseSchedule"]

SCHEDULES = ("linear", "cosine", "quadratic")


def _betas(kind: str, steps: int, beta_start: float, beta_end: float) -> Tensor:
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
    if kind == "quadratic":
        return torch.linspace(beta_start**0.5, beta_end**0.5, steps, dtype=torch.float64) ** 2
    s = 0.008
    f = torch.cos((torch.arange(steps + 1, dtype=torch.float64) / steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=0.999)


class NoiseSchedule:
    """The discrete forward process: ``betas``, ``alphas``, ``alphas_cumprod`` (``alpha_bar``),
    ``posterior_variance``, ``posterior_mean_coef1`` and ``2``, each ``[T + 1]`` indexed by ``t`` (float64), and
    ``timesteps``, the network's step for each ``t`` (``t`` itself, except in a ``respaced`` schedule).

    Args:
        kind: ``"linear"``, ``"cosine"`` or ``"quadratic"``.
        steps: ``T``.
        beta_start, beta_end: the linear and quadratic schedules' ends.
    """

    def __init__(self, kind: str = "linear", steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        if kind not in SCHEDULES:
            raise ValueError(f"unknown noise schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
        if steps < 1 or not 0 < beta_start <= beta_end < 1:
            raise ValueError(f"NoiseSchedule: need steps >= 1 and 0 < beta_start <= beta_end < 1, got {steps}, "
                             f"{beta_start}, {beta_end}")  # fmt: skip
        self.kind, self.steps = kind, steps
        self.timesteps = torch.arange(steps + 1)
        self._derive(_betas(kind, steps, beta_start, beta_end))

    def _derive(self, betas: Tensor) -> None:
        self.betas = torch.cat([torch.zeros(1, dtype=torch.float64), betas])
        self.alphas = 1 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        previous = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        denominator = (1 - self.alphas_cumprod).clamp(min=1e-20)  # t = 0 has no posterior
        self.posterior_variance = self.betas * (1 - previous) / denominator
        self.posterior_mean_coef1 = previous.sqrt() * self.betas / denominator
        self.posterior_mean_coef2 = self.alphas.sqrt() * (1 - previous) / denominator
        self.alphas_cumprod_prev = previous

    def respaced(self, timesteps: list[int]) -> NoiseSchedule:
        """The same process seen only at ``timesteps`` (distinct steps of ``1..T``, any order; DDIM's
        ``ddim_timesteps``): a schedule of ``S = len(timesteps)`` steps whose ``alpha_bar`` at step ``i`` is this
        one's at the ``i``-th smallest timestep ``tau_i``, so
        ``beta'_i = 1 - alpha_bar_{tau_i} / alpha_bar_{tau_{i-1}}`` (Nichol & Dhariwal 2021, section 4; RePaint
        samples on 250 of 1000 steps this way). Its ``timesteps`` ``[S + 1]`` maps each of its steps to the step of
        this schedule (the one the network was trained on)."""
        taus = sorted(set(int(t) for t in timesteps))
        if not taus or len(taus) != len(timesteps) or taus[0] < 1 or taus[-1] > self.steps:
            raise ValueError(f"respaced: timesteps must be distinct steps in 1..{self.steps}, got {list(timesteps)}")
        spaced = NoiseSchedule.__new__(NoiseSchedule)
        spaced.kind, spaced.steps = self.kind, len(taus)
        spaced.timesteps = self.timesteps[torch.tensor([0, *taus])]
        alpha_bar = self.alphas_cumprod[spaced.timesteps]
        spaced._derive(1 - alpha_bar[1:] / alpha_bar[:-1])
        return spaced

    def check_t(self, t: Tensor) -> Tensor:
        t = torch.as_tensor(t)
        if t.dtype.is_floating_point or (t < 0).any() or (t > self.steps).any():
            raise ValueError(f"t must be integer steps in 0..{self.steps}, got {t.min().item()}..{t.max().item()} "
                             f"({t.dtype})")  # fmt: skip
        return t

    def at(self, values: Tensor, t: Tensor, like: Tensor) -> Tensor:
        """``values[t]`` shaped to broadcast over ``like`` ``[N, ...]``, in its dtype and device."""
        t = self.check_t(t).to(values.device)
        return values[t].to(like).view(-1, *([1] * (like.ndim - 1)))

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor | None = None) -> Tensor:
        """``x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps``."""
        noise = torch.randn_like(x0) if noise is None else noise
        ab = self.at(self.alphas_cumprod, t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def posterior_mean_variance(self, x0: Tensor, xt: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu_q, sigma_q^2)`` of ``q(x_{t-1} | x_t, x_0)``, ``t >= 1``."""
        if (torch.as_tensor(t) < 1).any():
            raise ValueError("posterior_mean_variance: t must be at least 1 (x_0 has no predecessor)")
        mean = self.at(self.posterior_mean_coef1, t, x0) * x0 + self.at(self.posterior_mean_coef2, t, xt) * xt
        return mean, self.at(self.posterior_variance, t, x0).expand_as(x0)

    def mean_from_eps(self, xt: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """``mu = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t)``: the posterior mean with ``x_0``
        written through the noise, which is the reverse step's mean when ``eps`` is predicted."""
        beta, alpha, ab = (self.at(v, t, xt) for v in (self.betas, self.alphas, self.alphas_cumprod))
        return (xt - beta / (1 - ab).sqrt() * eps) / alpha.sqrt()

    def x0_from_eps(self, xt: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """``x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)``."""
        ab = self.at(self.alphas_cumprod, t, xt)
        return (xt - (1 - ab).sqrt() * eps) / ab.sqrt()

    def eps_from_x0(self, xt: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        ab = self.at(self.alphas_cumprod, t, xt)
        return (xt - ab.sqrt() * x0) / (1 - ab).sqrt()


class ContinuousSchedule:
    """Continuous time ``t`` in [0, 1] with a linear log-SNR ``lambda(t) = log_snr_max + t (log_snr_min -
    log_snr_max)``; ``alpha_t^2 = sigmoid(lambda)``, ``sigma_t^2 = sigmoid(-lambda)``."""

    def __init__(self, log_snr_min: float = -10.0, log_snr_max: float = 10.0) -> None:
        if not log_snr_min < log_snr_max:
            raise ValueError(f"ContinuousSchedule: need log_snr_min < log_snr_max, got {log_snr_min}, {log_snr_max}")
        self.log_snr_min, self.log_snr_max = log_snr_min, log_snr_max

    def log_snr(self, t: Tensor) -> Tensor:
        t = torch.as_tensor(t)
        if (t < 0).any() or (t > 1).any():
            raise ValueError(f"continuous t must lie in [0, 1], got {t.min().item()}..{t.max().item()}")
        return self.log_snr_max + t * (self.log_snr_min - self.log_snr_max)

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        lam = self.log_snr(t)
        return torch.sigmoid(lam).sqrt(), torch.sigmoid(-lam).sqrt()

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor | None = None) -> Tensor:
        """``x_t = alpha_t x_0 + sigma_t eps`` with ``t`` per example ``[N]``."""
        noise = torch.randn_like(x0) if noise is None else noise
        alpha, sigma = (v.to(x0).view(-1, *([1] * (x0.ndim - 1))) for v in self.alpha_sigma(t))
        return alpha * x0 + sigma * noise
