"""Rational-quadratic spline coupling (Neural Spline Flows; Durkan, Bekasov, Murray & Papamakarios, 2019).

A monotone rational-quadratic spline maps ``[-B, B]`` onto itself through ``K`` bins and is the identity outside
(linear tails). The network gives, per element, ``K`` bin widths ``w_k``, ``K`` heights ``h_k`` (softmaxes, so
they sum to ``2B``, each at least a minimum) and the ``K - 1`` interior knot derivatives ``d_k > 0`` (softplus);
the derivatives at ``-B`` and ``B`` are 1, so the tails join smoothly. The knots ``(x_k, y_k)`` are cumulative
sums. In bin ``k``, with ``xi = (x - x_k) / w_k`` in [0, 1] and the bin's slope ``s_k = h_k / w_k``,

    y = y_k + h_k [s_k xi^2 + d_k xi (1 - xi)] / [s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi)]

    dy/dx = s_k^2 [d_{k+1} xi^2 + 2 s_k xi (1 - xi) + d_k (1 - xi)^2] / [s_k + (d_{k+1} + d_k - 2 s_k) xi (1 - xi)]^2

(Gregory & Delbourgo's monotone rational quadratic: the numerator's bracket and the denominator are positive,
so ``dy/dx > 0``). The inverse solves a quadratic in ``xi``: with ``delta = d_{k+1} + d_k - 2 s_k``,

    a = h_k (s_k - d_k) + (y - y_k) delta,   b = h_k d_k - (y - y_k) delta,   c = -s_k (y - y_k)

    xi = 2c / (-b - sqrt(b^2 - 4ac))          (the root in [0, 1], in the form that does not cancel)

and ``log|dx/dy| = -log dy/dx`` at that ``xi``. A coupling applies one such spline to every element off the mask,
its parameters from a network of the masked elements (``coupling.Conditioner``), so the Jacobian is triangular
and ``log|det| = sum_i log dy_i/dx_i``. With the network's last layer at zero every bin is ``2B / K`` wide and
high and every derivative 1: each coupling starts as the identity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from generative.flows.coupling import Conditioner
from generative.flows.flow import Transform

__all__ = ["RationalQuadraticCoupling", "rational_quadratic_spline"]

MIN_BIN_WIDTH = 1e-3  # fractions of 2B: no bin collapses, so the inverse stays well conditioned (as nflows)
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3
_DERIVATIVE_OFFSET = math.log(math.expm1(1 - MIN_DERIVATIVE))  # softplus(0 + offset) + MIN_DERIVATIVE = 1


def _knots(raw: Tensor, bound: float, minimum: float) -> tuple[Tensor, Tensor]:
    """Bin sizes from raw softmax logits ``[..., K]`` -> ``(knots [..., K+1] from -B to B, sizes [..., K])``."""
    k = raw.shape[-1]
    sizes = minimum + (1 - minimum * k) * torch.softmax(raw, dim=-1)
    interior = 2 * bound * torch.cumsum(sizes, dim=-1)[..., :-1] - bound
    ends = interior.new_full((*interior.shape[:-1], 1), bound)
    knots = torch.cat([-ends, interior, ends], dim=-1)  # exact ends, whatever the rounding of the cumsum
    return knots, knots[..., 1:] - knots[..., :-1]


def rational_quadratic_spline(x: Tensor, raw_widths: Tensor, raw_heights: Tensor, raw_derivatives: Tensor,
                              bound: float, inverse: bool = False) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The spline (or its inverse) elementwise: ``x [...]``, raw parameters ``[..., K]``, ``[..., K]``, ``[..., K-1]``.

    Returns ``(y, log|dy/dx|)``, both shaped like ``x``; outside ``[-B, B]`` the identity with log-derivative 0.
    """
    x_knots, widths = _knots(raw_widths, bound, MIN_BIN_WIDTH)
    y_knots, heights = _knots(raw_heights, bound, MIN_BIN_HEIGHT)
    derivatives = F.pad(MIN_DERIVATIVE + F.softplus(raw_derivatives + _DERIVATIVE_OFFSET), (1, 1), value=1.0)

    inside = (x >= -bound) & (x <= bound)
    v = x.clamp(-bound, bound)  # the outside points get a harmless value, then the identity below
    knots = y_knots if inverse else x_knots
    k = (v[..., None] >= knots[..., 1:-1]).sum(-1, keepdim=True)  # the bin of every element, 0..K-1

    def at(t: Tensor) -> Tensor:
        return t.gather(-1, k)[..., 0]

    xk, wk, yk, hk = at(x_knots), at(widths), at(y_knots), at(heights)
    dk, dk1 = at(derivatives), at(derivatives[..., 1:])
    s = hk / wk
    delta = dk1 + dk - 2 * s
    if inverse:
        rel = v - yk
        a = hk * (s - dk) + rel * delta
        b = hk * dk - rel * delta
        c = -s * rel
        xi = (2 * c) / (-b - torch.sqrt((b * b - 4 * a * c).clamp(min=0)))
        out = xk + xi * wk
    else:
        xi = (v - xk) / wk
        out = yk + hk * (s * xi**2 + dk * xi * (1 - xi)) / (s + delta * xi * (1 - xi))
    one_minus = 1 - xi
    denominator = s + delta * xi * one_minus
    log_derivative = (2 * torch.log(s) + torch.log(dk1 * xi**2 + 2 * s * xi * one_minus + dk * one_minus**2)
                      - 2 * torch.log(denominator))  # fmt: skip
    if inverse:
        log_derivative = -log_derivative
    return torch.where(inside, out, x), torch.where(inside, log_derivative, torch.zeros_like(x))


class RationalQuadraticCoupling(Transform):
    """A coupling whose elementwise map is a rational-quadratic spline with ``bins`` bins on ``[-B, B]``.

    Args:
        mask: which elements condition (1) and which are transformed (0); ``[D]`` or ``[C, H, W]``.
        bins: ``K``.
        tail_bound: ``B``; outside ``[-B, B]`` the map is the identity.
        hidden: the conditioner's hidden widths.
        cond_dim: size of the condition vector (0: unconditional).
    """

    def __init__(self, mask: Tensor, bins: int = 8, tail_bound: float = 4.0, hidden: Sequence[int] = (64, 64),
                 cond_dim: int = 0) -> None:  # fmt: skip
        super().__init__()
        if bins < 2:
            raise ValueError(f"RationalQuadraticCoupling: bins must be at least 2, got {bins}")
        if not tail_bound > 0:
            raise ValueError(f"RationalQuadraticCoupling: tail_bound must be positive, got {tail_bound}")
        self.register_buffer("mask", mask.float())
        self.bins, self.tail_bound = bins, float(tail_bound)
        self.net = Conditioner(mask.shape, 3 * bins - 1, hidden, cond_dim)

    def _spline(self, x: Tensor, cond: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        params = self.net(x * self.mask, cond).movedim(1, -1)  # [N, *shape, 3K - 1]
        widths, heights, derivatives = params.split([self.bins, self.bins, self.bins - 1], dim=-1)
        y, log_derivative = rational_quadratic_spline(x, widths, heights, derivatives, self.tail_bound, inverse)
        keep = self.mask.bool()
        return torch.where(keep, x, y), torch.where(keep, 0.0, log_derivative).flatten(1).sum(1)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._spline(x, cond, inverse=False)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._spline(y, cond, inverse=True)
