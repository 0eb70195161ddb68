"""Uniform dequantization and the logit pre-processing (Theis et al. 2016; RealNVP): honest densities over
discrete pixels.

A continuous density on discrete values can grow without bound (put all its mass in spikes). Pixels with ``L``
levels, ``x = k / (L - 1)``, ``k`` in ``0..L-1``, are spread over their bins instead, ``y = (k + u) / L`` with
``u ~ U[0, 1)^D``, and a density ``p_Y`` on ``[0, 1)^D`` bounds the probability of the discrete image (Jensen):

    log P(k) = log int_{[0,1)^D} p_Y((k + u) / L) L^{-D} du  >=  E_u[log p_Y((k + u) / L)] - D log L.

So ``log_prob`` of a dequantized flow is a one-sample estimate of that lower bound, in nats per image, comparable
with the exact discrete likelihoods of the autoregressive models. The flow itself models ``s = logit(t)``,
``t = a + (1 - 2a) y`` (``a = 0.05``: the logit stays finite at the borders), with

    log p_Y(y) = log p_S(s) + sum_i [log(1 - 2a) - log t_i - log(1 - t_i)].

``quantize`` maps a sample back: ``y = (sigmoid(s) - a) / (1 - 2a)``, ``k = floor(L y)`` clamped to ``0..L-1``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["LOGIT_ALPHA", "dequantize", "quantize"]

LOGIT_ALPHA = 0.05  # RealNVP's value


def dequantize(x: Tensor, n_bins: int, noise: Tensor | None = None, model: str = "flow") -> tuple[Tensor, Tensor]:
    """``x = k / (L - 1)`` -> ``(s, sum_i log|ds_i/dy_i| - D log L)`` per example: ``s`` the logit of
    ``a + (1 - 2a)(k + u) / L``; add ``log p_S(s)`` to get the bound on ``log P(k)``.

    ``noise`` is ``u`` (default fresh uniforms; ``0.5`` gives the bin centres).

    Raises:
        ValueError: values that are not ``k / (L - 1)`` for an integer ``k`` in ``0..L-1``.
    """
    k = x * (n_bins - 1)
    levels = k.round()
    if (k - levels).abs().max() > 1e-4 or levels.min() < 0 or levels.max() > n_bins - 1:
        raise ValueError(f"{model}: n_bins={n_bins} expects pixels k / {n_bins - 1} with integer k in 0..{n_bins - 1} "
                         f"(values in [0, 1] on {n_bins} levels), got values in [{float(x.min()):.4g}, "
                         f"{float(x.max()):.4g}] off that grid")  # fmt: skip
    u = torch.rand_like(x) if noise is None else noise.expand_as(x)
    t = LOGIT_ALPHA + (1 - 2 * LOGIT_ALPHA) * (levels + u) / n_bins
    s = torch.log(t) - torch.log1p(-t)
    per_element = math.log(1 - 2 * LOGIT_ALPHA) - torch.log(t) - torch.log1p(-t)  # log |ds/dy|
    return s, per_element.flatten(1).sum(1) - x[0].numel() * math.log(n_bins)


def quantize(s: Tensor, n_bins: int) -> Tensor:
    """The pixels ``k / (L - 1)`` of logit-space values ``s``."""
    y = (torch.sigmoid(s) - LOGIT_ALPHA) / (1 - 2 * LOGIT_ALPHA)
    return (y * n_bins).floor().clamp(0, n_bins - 1) / (n_bins - 1)
