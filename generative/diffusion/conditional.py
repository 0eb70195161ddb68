"""Class-conditional diffusion with classifier-free guidance (Ho & Salimans 2021).

One network learns both ``eps_theta(x_t, t, c)`` and the unconditional ``eps_theta(x_t, t)``: during training the
label is replaced by a "no label" token with probability ``p_uncond`` (label dropout). At sampling time the two
predictions are combined, the course's form,

    eps~ = (1 + rho) eps_theta(x_t, t, c) - rho eps_theta(x_t, t)

which for ``rho > 0`` pushes each step away from the unconditional score, towards samples the implicit classifier
``p(c | x_t)`` finds typical of ``c``: sharper classes at the cost of diversity (``rho = 0`` is the plain
conditional model). Both predictions come from one batched call on ``[x_t, x_t]``.

    model = ConditionalDDPM((1, 8, 8), n_bins=17); fit(model, (x, y), (x_val, y_val))
    x = model.sample(10, y=torch.arange(10), guidance=2.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from generative.diffusion.ddpm import DDPM

__all__ = ["ConditionalDDPM"]


class ConditionalDDPM(DDPM):
    """``DDPM`` given a class label: ``loss(x, y)``, ``log_prob(x, y)``, ``sample(n, y=labels, guidance=rho)``.

    Args:
        input_shape: as ``DDPM``.
        num_classes: labels ``0..num_classes - 1``.
        p_uncond: probability of dropping the label during training (what makes guidance possible).
        **kwargs: ``DDPM``'s.
    """

    conditional = True

    def __init__(self, input_shape: Sequence[int], num_classes: int = 10, p_uncond: float = 0.1,
                 **kwargs: Any) -> None:  # fmt: skip
        if num_classes < 1:
            raise ValueError(f"ConditionalDDPM: num_classes must be at least 1, got {num_classes}")
        if not 0 <= p_uncond < 1:
            raise ValueError(f"ConditionalDDPM: p_uncond must lie in [0, 1), got {p_uncond}")
        super().__init__(input_shape, num_classes=num_classes, **kwargs)
        self.p_uncond = p_uncond

    def null_labels(self, n: int) -> Tensor:
        """The "no label" token, ``num_classes``."""
        return torch.full((n,), self.num_classes, dtype=torch.long, device=self._anchor.device)

    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """``L_simple`` with each label replaced by "no label" with probability ``p_uncond``."""
        x0 = self.check_data(x)
        y = self.check_labels(y, len(x0))
        drop = torch.rand(len(y), device=y.device) < self.p_uncond
        return self.simple_loss(x0, torch.where(drop, self.null_labels(len(y)), y))

    def log_prob(self, x: Tensor, y: Tensor, steps: int | None = None, seed: int | None = 0) -> Tensor:
        """Minus the variational bound of ``log p(x | y)`` (unguided), nats."""
        return -self.bound(x, y, steps, seed).total

    def sampling_eps(self, y: Tensor | None, guidance: float) -> Callable[[Tensor, Tensor], Tensor]:
        """``eps~`` for labels ``y`` (``None``: the unconditional model, which takes no guidance)."""
        if y is None:
            if guidance:
                raise ValueError("guidance needs labels: pass y")
            return lambda xt, t: self.eps(xt, t, self.null_labels(len(xt)))
        if guidance < 0:
            raise ValueError(f"guidance rho must be >= 0, got {guidance}")
        if not guidance:
            return lambda xt, t: self.eps(xt, t, y)
        labels = torch.cat([y, self.null_labels(len(y))])

        def guided(xt: Tensor, t: Tensor) -> Tensor:
            conditional, unconditional = self.eps(torch.cat([xt, xt]), torch.cat([t, t]), labels).chunk(2)
            return (1 + guidance) * conditional - guidance * unconditional

        return guided

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None, steps: int | None = None, sampler: str = "ddpm", eta: float = 0.0,
               variance: str | None = None, guidance: float = 0.0,
               trajectory: list[Tensor] | None = None) -> Tensor:  # fmt: skip
        """``n`` samples of classes ``y`` (``None``: unconditional) with guidance ``rho``; the rest as ``DDPM``."""
        return super().sample(n, steps, sampler, eta, variance, guidance, trajectory, y)

    def check_labels(self, y: Tensor | None, n: int) -> Tensor | None:
        """Labels ``0..num_classes - 1``; ``None`` stays ``None`` (sampling without a label)."""
        return None if y is None else super().check_labels(y, n)
