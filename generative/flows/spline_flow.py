"""A neural spline flow (Durkan et al. 2019): rational-quadratic spline couplings with alternating masks.

    log p(x) = log N(f(x); 0, I) + sum_k sum_i (1 - b^k_i) log dy^k_i/dx^k_i

Each coupling (``spline.py``) bends the free elements with a monotone spline of ``bins`` bins on
``[-tail_bound, tail_bound]`` (the identity outside), its knots from a network of the others. Far more flexible
per layer than an affine coupling, so a few layers model multimodal and sharp-edged 2D densities (eight
Gaussians, the checkerboard) that an affine flow only approximates. Put the data inside the tail bound: the
identity tails leave whatever lies beyond Gaussian.

    flow = SplineFlow((2,)); fit(flow, train, val); nll = -flow.log_prob(test).mean()
"""

from __future__ import annotations

from collections.abc import Sequence

from torch.distributions import Distribution

from generative.flows.coupling import alternating_mask, channel_mask, checkerboard_mask
from generative.flows.flow import Flow
from generative.flows.spline import RationalQuadraticCoupling

__all__ = ["SplineFlow"]


class SplineFlow(Flow):
    """Rational-quadratic spline couplings, masks alternating between even and odd features.

    Args:
        input_shape: ``(D,)`` with ``D >= 2`` (or ``(C, H, W)``: checkerboard masks, then channel masks if ``C > 1``).
        n_couplings: number of spline couplings.
        bins: ``K`` bins per spline.
        tail_bound: ``B``: the splines act on ``[-B, B]``.
        hidden: the coupling networks' hidden widths.
        cond_dim: size of a condition vector passed to every coupling (0: unconditional).
        base: the latent distribution (default standard normal).
        n_bins: discrete pixels ``k / (n_bins - 1)``, dequantized (``dequantize.py``); ``None``: continuous data.
        dequantization: ``"uniform"`` or ``"variational"`` (a learned noise, ``variational_dequantize.py``).
    """

    def __init__(self, input_shape: Sequence[int], n_couplings: int = 4, bins: int = 8, tail_bound: float = 4.0,
                 hidden: Sequence[int] = (64, 64), cond_dim: int = 0,
                 base: Distribution | None = None, n_bins: int | None = None,
                 dequantization: str = "uniform") -> None:  # fmt: skip
        shape = tuple(int(d) for d in input_shape)
        if n_couplings < 1:
            raise ValueError(f"SplineFlow: n_couplings must be at least 1, got {n_couplings}")
        if len(shape) == 1:
            if shape[0] < 2:
                raise ValueError(f"SplineFlow: vectors need at least 2 features to couple, got input_shape {shape}")
            masks = [alternating_mask(shape[0], k % 2) for k in range(n_couplings)]
        elif len(shape) == 3:
            masks = [checkerboard_mask(shape, k % 2) if shape[0] == 1 or k % 4 < 2 else channel_mask(shape, k % 2)
                     for k in range(n_couplings)]  # fmt: skip
        else:
            raise ValueError(f"SplineFlow: input_shape must be (D,) or (C, H, W), got {shape}")
        couplings = [RationalQuadraticCoupling(m, bins, tail_bound, hidden, cond_dim) for m in masks]
        super().__init__(shape, couplings, base, n_bins, dequantization)
