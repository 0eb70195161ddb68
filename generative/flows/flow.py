"""The change of variables, written once: a flow is a chain of invertible transforms over a base distribution.

For an invertible, differentiable ``f`` with ``z = f(x)`` and a base density ``p_Z``,

    log p_X(x) = log p_Z(f(x)) + log |det df/dx (x)|,

and for a chain ``f = f_K o ... o f_1`` with ``h_0 = x``, ``h_k = f_k(h_{k-1})`` the log-determinants add:

    log p_X(x) = log p_Z(h_K) + sum_k log |det df_k/dh_{k-1}|.

Every transform is an ``nn.Module`` with ``forward(x, cond=None) -> (y, logabsdet)`` (the normalizing direction,
data -> latent) and an exact ``inverse(y, cond=None) -> (x, logabsdet)`` (latent -> data; its log-determinant is
minus the forward one at the same point), with ``logabsdet`` of shape ``[N]``, one value per example. Sampling
draws ``z ~ p_Z`` and runs the inverses in reverse order. ``cond`` is an optional ``[N, cond_dim]`` condition that
the transforms which use it (the couplings) pass to their networks; the others ignore it.

The base is the standard normal by default; any ``torch.distributions.Distribution`` is accepted (the latent need
not be Gaussian): its ``log_prob`` of a latent ``[N, *input_shape]`` is summed over all but the batch dimension,
so a scalar distribution (``Laplace(0., 1.)``) acts per element and one with event or batch shape
``input_shape`` acts per example. A distribution is not a module: build it on the device (and in the dtype) the
flow will run on; the standard normal default follows the flow wherever it goes.

    flow = Flow((2,), [AffineCoupling(alternating_mask(2, 0)), AffineCoupling(alternating_mask(2, 1))])
    nll = flow.loss(x); z = flow.encode(x); x_again = flow.decode(z); x_new = flow.sample(64, temperature=0.7)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from generative.common import check_input, event_size
from generative.flows.dequantize import dequantize, quantize

__all__ = ["Flow", "Inverse", "Transform"]

LOG_2PI = math.log(2 * math.pi)
DEQUANTIZATIONS = ("uniform", "variational")


class Transform(nn.Module):
    """An invertible map with exact log-determinants: subclasses implement ``forward`` and ``inverse``."""

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(y, log|det dy/dx|)``, the latter ``[N]``."""
        raise NotImplementedError

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(x, log|det dx/dy|)`` with ``forward(x)[0] == y``."""
        raise NotImplementedError


class Inverse(Transform):
    """A transform run backwards: ``Inverse(Squeeze())`` unsqueezes."""

    def __init__(self, transform: Transform) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.transform.inverse(x, cond)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.transform(y, cond)


class Flow(Transform):
    """``transforms`` applied in order (data -> latent) over ``base`` (standard normal when ``None``).

    A flow is itself a transform, so flows nest. ``log_prob(x)`` is in nats per example, ``loss(x)`` its negative
    mean (what :func:`generative.fit.fit` minimizes), ``sample(n, temperature)`` draws from the model,
    ``encode``/``decode`` map between data and latents (interpolate in latent space, decode).

    Args:
        input_shape: ``(D,)`` vectors or ``(C, H, W)`` images; the latent has the same shape.
        transforms: the chain, in the normalizing direction.
        base: the latent distribution; ``None`` is ``N(0, I)``.
        n_bins: discrete data with this many levels, ``x = k / (n_bins - 1)``: dequantized (``dequantize.py``);
            ``None``: continuous data.
        dequantization: with ``n_bins``, ``"uniform"`` noise or ``"variational"``, a learned ``q(u | k)`` trained
            with the flow (``variational_dequantize.py``).
    """

    dequantizes = True
    """Takes ``n_bins``: ``mpenv-gen`` passes the levels of discrete image data (see ``dequantize.py``)."""

    def __init__(self, input_shape: Sequence[int], transforms: Sequence[Transform],
                 base: Distribution | None = None, n_bins: int | None = None,
                 dequantization: str = "uniform") -> None:  # fmt: skip
        super().__init__()
        if n_bins is not None and n_bins < 2:
            raise ValueError(f"{type(self).__name__}: n_bins must be at least 2 (None: continuous data), got {n_bins}")
        if dequantization not in DEQUANTIZATIONS:
            raise ValueError(f"{type(self).__name__}: dequantization must be one of {DEQUANTIZATIONS}, got "
                             f"{dequantization!r}")  # fmt: skip
        if dequantization == "variational" and n_bins is None:
            raise ValueError(f"{type(self).__name__}: variational dequantization is for discrete data: set n_bins")
        self.n_bins = n_bins
        self.input_shape = tuple(int(d) for d in input_shape)
        self.event_size = event_size(self.input_shape)
        self.transforms = nn.ModuleList(transforms)
        if base is not None and not isinstance(base, Distribution):
            raise TypeError(f"{type(self).__name__}: base must be a torch.distributions.Distribution or None, got "
                            f"{type(base).__name__}")  # fmt: skip
        self.base = base
        self.dequantizer = None
        if dequantization == "variational":
            # imported here: the dequantizer is built from conditional transforms that subclass this module's
            from generative.flows.variational_dequantize import VariationalDequantizer

            self.dequantizer = VariationalDequantizer(self.input_shape)
        # follows .to() and .double(), so inputs and latents get the flow's device and dtype even without parameters
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)

    # ------------------------------------------------------------------ the chain
    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = x.new_zeros(x.shape[0])
        for transform in self.transforms:
            x, logabsdet = transform(x, cond)
            total = total + logabsdet
        return x, total

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        total = y.new_zeros(y.shape[0])
        for transform in reversed(self.transforms):
            y, logabsdet = transform.inverse(y, cond)
            total = total + logabsdet
        return y, total

    # ------------------------------------------------------------------ the base distribution
    def base_log_prob(self, z: Tensor) -> Tensor:
        """``log p_Z(z)`` per example, ``[N]``."""
        if self.base is None:
            return -0.5 * (z.pow(2) + LOG_2PI).flatten(1).sum(1)
        log_p = self.base.log_prob(z)
        return log_p.flatten(1).sum(1) if log_p.ndim > 1 else log_p

    def base_sample(self, n: int, temperature: float = 1.0) -> Tensor:
        """``n`` latents; the standard normal's are ``N(0, T^2 I)`` at temperature ``T`` (Glow's sampling)."""
        if not (temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"{type(self).__name__}: temperature must be a positive number, got {temperature}")
        p = self._param
        if self.base is None:
            return temperature * torch.randn(n, *self.input_shape, device=p.device, dtype=p.dtype)
        if temperature != 1.0:
            raise ValueError(f"{type(self).__name__}: temperature {temperature} needs the standard normal base; "
                             "a custom base samples at temperature 1 only")  # fmt: skip
        z = self.base.sample((n,))
        if z.ndim == 1 or tuple(z.shape[1:]) != self.input_shape:  # a scalar distribution: one draw per element
            z = self.base.sample((n, *self.input_shape))
        return z.to(p)

    # ------------------------------------------------------------------ the model's interface
    @property
    def _param(self) -> Tensor:
        return self._anchor

    def _check(self, x: Tensor, cond: Tensor | None, what: str = "input") -> tuple[Tensor, Tensor | None]:
        """Shape and finiteness of a batch (in the parameters' dtype and device), and of the condition."""
        name = type(self).__name__
        check_input(x, self.input_shape, model=name)
        if not torch.isfinite(x).all():
            raise ValueError(f"{name}: the {what} contains NaN or infinite values")
        x = x.to(self._param)
        if cond is not None:
            if cond.ndim != 2 or cond.shape[0] != x.shape[0]:
                raise ValueError(f"{name}: the condition must be [N, cond_dim] with N = {x.shape[0]}, got "
                                 f"{list(cond.shape)}")  # fmt: skip
            if not torch.isfinite(cond).all():
                raise ValueError(f"{name}: the condition contains NaN or infinite values")
            cond = cond.to(self._param)
        return x, cond

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Exact ``log p(x)`` in nats, ``[N]`` (``log p(x | cond)`` with a condition); with ``n_bins``, a one-sample
        estimate of the dequantization bound on the discrete ``log P(x)`` (uniform or variational).

        Raises:
            ValueError: a wrong shape, NaN input, or a NaN log-probability (diverged weights), never a silent NaN.
        """
        x, cond = self._check(x, cond)
        dequantization = 0.0
        if self.n_bins is not None:
            x, dequantization = self._dequantize(x)
        z, logabsdet = self(x, cond)
        log_p = self.base_log_prob(z) + logabsdet + dequantization
        if torch.isnan(log_p).any():
            raise ValueError(f"{type(self).__name__}: the log-probability is NaN (the weights have diverged?)")
        return log_p

    def _dequantize(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Pixels -> ``(s, log|ds/dy| - D log L - log q(u | k))``, ``u`` uniform or from the learned ``q``."""
        if self.dequantizer is None:
            return dequantize(x, self.n_bins, model=type(self).__name__)
        u, log_q = self.dequantizer.sample(x)
        s, correction = dequantize(x, self.n_bins, u, type(self).__name__)
        return s, correction - log_q

    def loss(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """Mean negative log-likelihood in nats (maximum likelihood)."""
        return -self.log_prob(x, cond).mean()

    def encode(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """The latent ``z = f(x)`` of a batch, ``[N, *input_shape]`` (discrete pixels: of their bins' centres)."""
        x, cond = self._check(x, cond)
        if self.n_bins is not None:
            x = dequantize(x, self.n_bins, x.new_tensor(0.5), type(self).__name__)[0]
        return self(x, cond)[0]

    def decode(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        """The data point ``x = f^{-1}(z)`` of a batch of latents."""
        z, cond = self._check(z, cond, what="latent")
        x = self.inverse(z, cond)[0]
        return x if self.n_bins is None else quantize(x, self.n_bins)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, cond: Tensor | None = None) -> Tensor:
        """``n`` samples ``[n, *input_shape]``: ``x = f^{-1}(z)``, ``z`` from the base at ``temperature``."""
        if n < 1:
            raise ValueError(f"{type(self).__name__}: n must be at least 1, got {n}")
        return self.decode(self.base_sample(n, temperature), cond)
