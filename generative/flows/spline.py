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


def _knots(probabilities: Tensor, bound: float, minimum: float) -> tuple[Tensor, Tensor]:
    """Bin sizes from the softmax of the raw logits ``[..., K]`` -> ``(knots [..., K+1] from -B to B, sizes)``."""
    k = probabilities.shape[-1]
    sizes = minimum + (1 - minimum * k) * probabilities
    interior = 2 * bound * torch.cumsum(sizes, dim=-1)[..., :-1] - bound
    ends = interior.new_full((*interior.shape[:-1], 1), bound)
    knots = torch.cat([-ends, interior, ends], dim=-1)  # exact ends, whatever the rounding of the cumsum
    return knots, knots[..., 1:] - knots[..., :-1]


def _knots_backward(grad_knots: Tensor, probabilities: Tensor, bound: float, minimum: float) -> Tensor:
    """The gradient of the raw logits from that of the knots ``[..., K+1]`` (``_knots``'s chain, backwards): the
    interior knot ``j`` is ``2B (s_1 + ... + s_j) - B``, so a size gets ``2B`` times the knots' gradients after it;
    then through the affine map and the softmax."""
    grad_sizes = F.pad(2 * bound * grad_knots[..., 1:-1].flip(-1).cumsum(-1).flip(-1), (0, 1))
    grad_p = (1 - minimum * probabilities.shape[-1]) * grad_sizes
    return probabilities * (grad_p - (grad_p * probabilities).sum(-1, keepdim=True))


def _bin_parameters(x: Tensor, raw_widths: Tensor, raw_heights: Tensor, raw_derivatives: Tensor, bound: float,
                    inverse: bool) -> tuple[Tensor, ...]:  # fmt: skip
    """What the spline needs of every element: ``(inside, v, k, x_k, w_k, y_k, h_k, d_k, d_{k+1}, softmax of the
    widths, softmax of the heights)`` with ``v`` the input clamped to ``[-B, B]`` and ``k [..., 1]`` its bin."""
    p_widths, p_heights = torch.softmax(raw_widths, dim=-1), torch.softmax(raw_heights, dim=-1)
    x_knots, widths = _knots(p_widths, bound, MIN_BIN_WIDTH)
    y_knots, heights = _knots(p_heights, bound, MIN_BIN_HEIGHT)
    derivatives = F.pad(MIN_DERIVATIVE + F.softplus(raw_derivatives + _DERIVATIVE_OFFSET), (1, 1), value=1.0)

    inside = (x >= -bound) & (x <= bound)
    v = x.clamp(-bound, bound)  # the outside points get a harmless value, then the identity
    knots = y_knots if inverse else x_knots
    k = (v[..., None] >= knots[..., 1:-1]).sum(-1, keepdim=True)  # the bin of every element, 0..K-1

    def at(t: Tensor) -> Tensor:
        return t.gather(-1, k)[..., 0]

    return (inside, v, k, at(x_knots), at(widths), at(y_knots), at(heights), at(derivatives),
            at(derivatives[..., 1:]), p_widths, p_heights)  # fmt: skip


class _ForwardSpline(torch.autograd.Function):
    """The spline's forward direction (what training differentiates) with a hand-written backward.

    Autograd through the formulas records ~100 small operations per coupling and replays about as many in the
    backward pass; on the small tensors of a 2D flow that per-operation overhead is what a training step costs.
    Here the forward pass runs without recording (the same formulas, the same values), and the backward pass is
    the chain rule written out: the partials of ``y`` and ``log dy/dx`` in ``xi``, ``s_k``, ``h_k``, ``d_k``,
    ``d_{k+1}``, then through ``xi = (x - x_k) / w_k`` and ``s_k = h_k / w_k`` to the bin's knots, scattered onto
    the knot vectors and taken back through the cumulative sums, softmaxes and softplus to the raw parameters
    (``tests/test_flows.py`` checks it with ``gradcheck`` in float64). With the coupling passing only its free
    elements, a training step of ``SplineFlow((2,), bins=16)`` at batch 256 went from 14.4 to 10.0 ms (one thread).
    """

    @staticmethod
    def forward(ctx, x: Tensor, raw_widths: Tensor, raw_heights: Tensor, raw_derivatives: Tensor,
                bound: float) -> tuple[Tensor, Tensor]:  # fmt: skip
        inside, v, k, xk, wk, yk, hk, dk, dk1, p_widths, p_heights = _bin_parameters(
            x, raw_widths, raw_heights, raw_derivatives, bound, inverse=False)  # fmt: skip
        s = hk / wk
        delta = dk1 + dk - 2 * s
        xi = (v - xk) / wk
        out = yk + hk * (s * xi**2 + dk * xi * (1 - xi)) / (s + delta * xi * (1 - xi))
        one_minus = 1 - xi
        denominator = s + delta * xi * one_minus
        slope_term = dk1 * xi**2 + 2 * s * xi * one_minus + dk * one_minus**2
        log_derivative = 2 * torch.log(s) + torch.log(slope_term) - 2 * torch.log(denominator)
        ctx.save_for_backward(inside, k, xi, s, wk, hk, dk, dk1, denominator, slope_term, p_widths, p_heights,
                              raw_derivatives)  # fmt: skip
        ctx.bound = bound
        return torch.where(inside, out, x), torch.where(inside, log_derivative, torch.zeros_like(x))

    @staticmethod
    def backward(ctx, grad_y: Tensor, grad_log: Tensor) -> tuple[Tensor | None, ...]:
        inside, k, xi, s, wk, hk, dk, dk1, denominator, slope_term, p_widths, p_heights, raw_derivatives = (
            ctx.saved_tensors)  # fmt: skip
        bound = ctx.bound
        gy, gl = torch.where(inside, grad_y, 0.0), torch.where(inside, grad_log, 0.0)  # the tails: the identity
        one_minus = 1 - xi
        t = xi * one_minus
        delta = dk1 + dk - 2 * s
        numerator = s * xi**2 + dk * t
        # y = y_k + h_k N / D and log dy/dx = 2 log s + log P - 2 log D with N, D, P as in forward
        gy_h_over_d2 = gy * hk / denominator**2
        grad_d = -gy_h_over_d2 * numerator - 2 * gl / denominator  # dL/dD, L = gy * y + gl * log dy/dx
        grad_n = gy_h_over_d2 * denominator  # dL/dN
        grad_p = gl / slope_term  # dL/dP
        grad_xi = (grad_n * (2 * s * xi + dk * (1 - 2 * xi)) + grad_d * delta * (1 - 2 * xi)
                   + grad_p * 2 * (dk1 * xi + s * (1 - 2 * xi) - dk * one_minus))  # fmt: skip
        grad_s = grad_n * xi**2 + grad_d * (1 - 2 * t) + grad_p * 2 * t + 2 * gl / s
        grad_dk = grad_n * t + grad_d * t + grad_p * one_minus**2
        grad_dk1 = grad_d * t + grad_p * xi**2
        grad_hk = gy * numerator / denominator + grad_s / wk  # s = h_k / w_k
        grad_wk = -(grad_xi * xi + grad_s * s) / wk  # xi = (x - x_k) / w_k
        grad_xk = -grad_xi / wk

        grad_x = grad_raw_widths = grad_raw_heights = grad_raw_derivatives = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.where(inside, grad_xi / wk, grad_y)
        k1 = k + 1
        n_knots = p_widths.shape[-1] + 1

        def to_knots(at_k: Tensor, at_k1: Tensor) -> Tensor:  # per-element gradients onto knots k and k + 1
            zeros = at_k.new_zeros((*at_k.shape, n_knots))
            return zeros.scatter_add_(-1, k, at_k[..., None]).scatter_add_(-1, k1, at_k1[..., None])

        if ctx.needs_input_grad[1]:  # x_k = knot k, w_k = knot k+1 - knot k
            grad_knots = to_knots(grad_xk - grad_wk, grad_wk)
            grad_raw_widths = _knots_backward(grad_knots, p_widths, bound, MIN_BIN_WIDTH)
        if ctx.needs_input_grad[2]:  # y_k = knot k (its gradient is gy), h_k = knot k+1 - knot k
            grad_knots = to_knots(gy - grad_hk, grad_hk)
            grad_raw_heights = _knots_backward(grad_knots, p_heights, bound, MIN_BIN_HEIGHT)
        if ctx.needs_input_grad[3]:  # the interior derivatives 1..K-1 are MIN + softplus(raw + offset)
            grad_derivatives = to_knots(grad_dk, grad_dk1)[..., 1:-1]
            grad_raw_derivatives = grad_derivatives * torch.sigmoid(raw_derivatives + _DERIVATIVE_OFFSET)
        return grad_x, grad_raw_widths, grad_raw_heights, grad_raw_derivatives, None


def rational_quadratic_spline(x: Tensor, raw_widths: Tensor, raw_heights: Tensor, raw_derivatives: Tensor,
                              bound: float, inverse: bool = False) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The spline (or its inverse) elementwise: ``x [...]``, raw parameters ``[..., K]``, ``[..., K]``, ``[..., K-1]``.

    Returns ``(y, log|dy/dx|)``, both shaped like ``x``; outside ``[-B, B]`` the identity with log-derivative 0.
    """
    if not inverse:
        return _ForwardSpline.apply(x, raw_widths, raw_heights, raw_derivatives, bound)
    # the inverse (sampling, decoding) keeps autograd through the formulas
    inside, v, _, xk, wk, yk, hk, dk, dk1, _, _ = _bin_parameters(x, raw_widths, raw_heights, raw_derivatives, bound,
                                                                  inverse=True)  # fmt: skip
    s = hk / wk
    delta = dk1 + dk - 2 * s
    rel = v - yk
    a = hk * (s - dk) + rel * delta
    b = hk * dk - rel * delta
    c = -s * rel
    xi = (2 * c) / (-b - torch.sqrt((b * b - 4 * a * c).clamp(min=0)))
    out = xk + xi * wk
    one_minus = 1 - xi
    denominator = s + delta * xi * one_minus
    log_derivative = -(2 * torch.log(s) + torch.log(dk1 * xi**2 + 2 * s * xi * one_minus + dk * one_minus**2)
                       - 2 * torch.log(denominator))  # fmt: skip
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
        # the flattened positions of the transformed elements: only they go through the spline
        self.register_buffer("free", (mask.flatten() == 0).nonzero().squeeze(1), persistent=False)
        self.bins, self.tail_bound = bins, float(tail_bound)
        self.net = Conditioner(mask.shape, 3 * bins - 1, hidden, cond_dim)

    def _spline(self, x: Tensor, cond: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        params = self.net(x * self.mask, cond).flatten(2)[:, :, self.free].transpose(1, 2)  # [N, free, 3K - 1]
        widths, heights, derivatives = params.split([self.bins, self.bins, self.bins - 1], dim=-1)
        flat = x.flatten(1)
        y, log_derivative = rational_quadratic_spline(flat[:, self.free], widths, heights, derivatives,
                                                      self.tail_bound, inverse)  # fmt: skip
        return flat.index_copy(1, self.free, y).view_as(x), log_derivative.sum(1)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._spline(x, cond, inverse=False)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._spline(y, cond, inverse=True)
