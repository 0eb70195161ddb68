"""Denoising diffusion probabilistic models (Ho et al. 2020): learn to undo the forward process of
``schedule.py`` by predicting the noise.

    L_simple = E_{t ~ U{1..T}, x_0, eps} || eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t) ||^2

(the course's simple loss: the ELBO's per-step KL terms with their weights dropped). The network can instead
predict ``x_0`` or ``v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0`` (``prediction=``); every option is
turned into ``eps`` for the samplers (``sampling.py``: the ancestral loop, DDIM).

So far for points ``(D,)``: the denoiser is an MLP on ``[x_t, embedding(t)]``, with a sinusoidal embedding of the
step (Vaswani et al.'s, as DDPM uses).

    model = DDPM((2,)); fit(model, train, val); x = model.sample(1000); x_fast = model.sample(1000, steps=50)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from generative.common import check_input
from generative.diffusion.sampling import ddim_sample, ddpm_sample
from generative.diffusion.schedule import NoiseSchedule
from mpenv.networks import mlp

__all__ = ["DDPM", "PREDICTIONS", "sinusoidal_embedding"]

PREDICTIONS = ("eps", "x0", "v")


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """``[N] -> [N, dim]``: ``sin`` and ``cos`` of ``t`` at ``dim / 2`` geometrically spaced frequencies."""
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class DDPM(nn.Module):
    """A diffusion model of points ``(D,)``.

    Args:
        input_shape: ``(D,)``.
        steps: ``T``.
        schedule: ``"linear"``, ``"cosine"`` or ``"quadratic"`` (``schedule.py``).
        prediction: what the network outputs: ``"eps"``, ``"x0"`` or ``"v"``.
        hidden: the MLP's hidden widths.
        time_dim: size of the step embedding.
    """

    def __init__(self, input_shape: Sequence[int], steps: int = 1000, schedule: str = "linear", prediction: str = "eps",
                 hidden: Sequence[int] = (128, 128, 128), time_dim: int = 64) -> None:  # fmt: skip
        super().__init__()
        self.input_shape = tuple(int(d) for d in input_shape)
        if len(self.input_shape) != 1:
            raise ValueError(f"DDPM: points (D,) only so far (the image U-Net is not built yet), got "
                             f"{self.input_shape}")  # fmt: skip
        if prediction not in PREDICTIONS:
            raise ValueError(f"DDPM: prediction must be one of {', '.join(PREDICTIONS)}, got {prediction!r}")
        self.schedule, self.prediction, self.time_dim = NoiseSchedule(schedule, steps), prediction, time_dim
        d = self.input_shape[0]
        self.net = mlp(d + time_dim, hidden, d, activation=nn.SiLU)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    def network(self, xt: Tensor, t: Tensor) -> Tensor:
        """The raw output (``eps``, ``x_0`` or ``v`` by ``prediction``) for steps ``t`` ``[N]``."""
        return self.net(torch.cat([xt, sinusoidal_embedding(t, self.time_dim).to(xt)], dim=1))

    def eps(self, xt: Tensor, t: Tensor) -> Tensor:
        """The predicted noise, whatever the network predicts."""
        out = self.network(xt, t)
        if self.prediction == "eps":
            return out
        if self.prediction == "x0":
            return self.schedule.eps_from_x0(xt, t, out)
        ab = self.schedule.at(self.schedule.alphas_cumprod, t, xt)  # v = sqrt(ab) eps - sqrt(1 - ab) x0
        return ab.sqrt() * out + (1 - ab).sqrt() * xt

    def target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        if self.prediction == "eps":
            return noise
        if self.prediction == "x0":
            return x0
        ab = self.schedule.at(self.schedule.alphas_cumprod, t, x0)
        return ab.sqrt() * noise - (1 - ab).sqrt() * x0

    def loss(self, x: Tensor) -> Tensor:
        """``L_simple``: the mean squared error of the prediction at a uniformly drawn step per example."""
        check_input(x, self.input_shape, model=type(self).__name__)
        if not torch.isfinite(x).all():
            raise ValueError(f"{type(self).__name__}: the input contains NaN or infinite values")
        x0 = x.to(self._anchor)
        t = torch.randint(1, self.schedule.steps + 1, (len(x0),), device=x0.device)
        noise = torch.randn_like(x0)
        return (self.network(self.schedule.q_sample(x0, t, noise), t) - self.target(x0, noise, t)).square().mean()

    @torch.no_grad()
    def sample(self, n: int, steps: int | None = None, sampler: str = "ddpm", eta: float = 0.0,
               variance: str = "beta") -> Tensor:  # fmt: skip
        """``n`` samples: the ancestral loop over all ``T`` steps (``sampler="ddpm"``, ``variance`` ``"beta"`` or
        ``"posterior"``) or DDIM over ``steps`` of them (``sampler="ddim"``, ``eta``)."""
        if n < 1:
            raise ValueError(f"{type(self).__name__}: n must be at least 1, got {n}")
        was_training = self.training
        self.eval()
        x_T = torch.randn(n, *self.input_shape, device=self._anchor.device)
        if sampler == "ddpm":
            if steps not in (None, self.schedule.steps):
                raise ValueError(f"the ancestral sampler runs all {self.schedule.steps} steps; use sampler='ddim' "
                                 f"for {steps}")  # fmt: skip
            x = ddpm_sample(self.eps, self.schedule, x_T, variance)
        elif sampler == "ddim":
            x = ddim_sample(self.eps, self.schedule, x_T, steps or 50, eta)
        else:
            raise ValueError(f"unknown sampler {sampler!r}; choose ddpm or ddim")
        self.train(was_training)
        return x
