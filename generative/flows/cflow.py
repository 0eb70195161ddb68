"""C-Flow (Pumarola et al. 2020): two flows, the second conditioned on the first's latent, so an image of one
modality guides generation in the other.

    log p(u, x) = log p_A(u) + log p_B(x | z_A),     z_A = f_A(u)

Flow A (a Glow) models the partner modality ``u``; flow B models the image ``x``, every one of its steps
conditioned on features of ``z_A`` through SRFlow's affine injectors and feature-conditioned couplings
(``srflow.py``, with ``z_A`` in place of the low-res image). Both are trained together by maximum likelihood on
pairs. Here the partner is the image's ``factor``-times average-pooled version, a function of ``x``; then
``p(u, x) = p(x)`` for the discrete data (``u`` is determined by ``x``), so the joint NLL is a (dequantized)
bound on the image's own NLL, comparable with the unconditional models', and sampling ``u ~ p_A``, then
``x ~ p_B(. | f_A(u))`` generates digits unconditionally. Given a partner image ``u`` (a low-res digit),
``sample_given(u)`` draws ``x`` from ``p_B(x | f_A(u))``: many digits that agree with it.

Discrete pixels ``k / (L - 1)`` average to ``m / ((L - 1) r^2)``, so the partner has ``(L - 1) r^2 + 1`` levels
and is dequantized with those.

    cflow = CFlow((1, 8, 8), n_bins=17); fit(cflow, train, val); x = cflow.sample_given(u, n_samples=8)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from generative.common import check_input
from generative.flows.glow import Glow
from generative.flows.srflow import SRFlow, downsample

__all__ = ["CFlow"]


class CFlow(nn.Module):
    """A pair of flows ``p_A(u)``, ``p_B(x | f_A(u))`` over images ``(C, H, W)`` and their low-res partners.

    Args:
        input_shape: ``(C, H, W)`` of ``x``; ``H``, ``W`` divisible by ``factor * 2^levels``.
        factor: the partner is ``x`` average-pooled by ``factor``.
        levels: Glow scales of both flows.
        steps: steps per scale of both flows.
        hidden: channels of the coupling (and injector) networks.
        features: channels of the encoder of ``z_A``.
        n_bins: discrete pixels ``k / (n_bins - 1)``, dequantized (the partner with its own levels); ``None``:
            continuous data.
        dequantization: ``"uniform"`` or ``"variational"``, for both flows (``variational_dequantize.py``).
    """

    dequantizes = True
    """Takes ``n_bins``: ``mpenv-gen`` passes the levels of discrete image data."""

    def __init__(self, input_shape: Sequence[int], factor: int = 2, levels: int = 2, steps: int = 4,
                 hidden: int = 64, features: int = 32, n_bins: int | None = None,
                 dequantization: str = "uniform") -> None:  # fmt: skip
        super().__init__()
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 3:
            raise ValueError(f"CFlow: input_shape must be (C, H, W), got {shape}")
        if factor < 2 or shape[1] % (factor * 2**levels) or shape[2] % (factor * 2**levels):
            raise ValueError(f"CFlow: height and width must be divisible by factor * 2^levels = "
                             f"{factor * 2**levels} (factor at least 2), got {shape} and factor {factor}")  # fmt: skip
        self.input_shape, self.factor, self.event_size = shape, factor, shape[0] * shape[1] * shape[2]
        self.partner_shape = (shape[0], shape[1] // factor, shape[2] // factor)
        self.n_bins = n_bins
        partner_bins = None if n_bins is None else (n_bins - 1) * factor**2 + 1
        self.partner_flow = Glow(self.partner_shape, levels, steps, (hidden,), n_bins=partner_bins,
                                 dequantization=dequantization)
        self.flow = SRFlow(shape, factor, levels, steps, hidden, features, n_bins=n_bins, dequantization=dequantization)

    def partner(self, x: Tensor) -> Tensor:
        """The partner modality of a batch: its ``factor``-times average-pooled image."""
        check_input(x, self.input_shape, model=type(self).__name__)
        return downsample(x.to(self.flow._param), self.factor)

    def _partner_latent(self, u: Tensor) -> Tensor:
        """``z_A = f_A(u)`` (discrete partners: of their bins' centres), the second flow's condition."""
        return self.partner_flow.encode(u)

    def log_prob(self, x: Tensor, partner: Tensor | None = None) -> Tensor:
        """``log p_A(u) + log p_B(x | f_A(u))`` in nats, ``[N]``; ``u`` defaults to ``x``'s own partner."""
        u = self.partner(x) if partner is None else partner
        return self.partner_flow.log_prob(u) + self.flow.log_prob(x, self._partner_latent(u))

    def loss(self, x: Tensor, partner: Tensor | None = None) -> Tensor:
        return -self.log_prob(x, partner).mean()

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """``n`` images: ``u ~ p_A``, then ``x ~ p_B(. | f_A(u))``, both at ``temperature``."""
        u = self.partner_flow.sample(n, temperature)
        return self.flow.sample(n, temperature, self._partner_latent(u))

    @torch.no_grad()
    def sample_given(self, partner: Tensor, n_samples: int = 8, temperature: float = 0.8) -> Tensor:
        """``n_samples`` images per partner image ``u`` (``[N, *partner_shape]``): ``[N, n_samples, C, H, W]``."""
        check_input(partner, self.partner_shape, model=type(self).__name__)
        return self.flow.super_resolve(self._partner_latent(partner), n_samples, temperature)
