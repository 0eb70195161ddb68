"""A conditional flow: every coupling network also takes a condition ``c`` (a class label or a vector).

    log p(x | c) = log p_Z(f(x; c)) + sum_k log |det df_k/dh_{k-1} (h_{k-1}; c)|

Each coupling's scale and shift (or spline knots) are functions of the masked elements *and* of ``c``
(``coupling.Conditioner`` concatenates ``c`` to a vector input, broadcasts it as channels of an image), so for
every fixed ``c`` the map ``x -> f(x; c)`` is an ordinary flow: invertible, with the same triangular Jacobian.
One network thus holds a whole family of densities, one per condition; sampling draws ``z`` and inverts the
chain under the chosen ``c``.

The condition is a class label (int64 ``[N]`` in ``0..n_classes-1``: one-hot, or a learned embedding of
``embedding_dim`` features) or, with ``n_classes=0``, a float vector ``[N, cond_dim]``. The chain is one of the
package's models built with that condition size: ``realnvp`` (affine couplings), ``spline-flow`` (rational-
quadratic couplings) or ``glow`` (images).

    flow = ConditionalFlow((2,), n_classes=2, architecture="spline-flow"); fit(flow, (x, y), (x_val, y_val))
    log_p = flow.log_prob(x, y); x0 = flow.sample(500, torch.zeros(500, dtype=torch.long), temperature=0.8)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution

from generative.flows.flow import Flow
from generative.flows.glow import Glow
from generative.flows.realnvp import RealNVP
from generative.flows.spline_flow import SplineFlow

__all__ = ["ConditionalFlow"]

ARCHITECTURES = {"realnvp": RealNVP, "spline-flow": SplineFlow, "glow": Glow}


class ConditionalFlow(Flow):
    """A flow ``p(x | c)`` whose couplings all see the condition ``c``.

    Args:
        input_shape: ``(D,)`` or ``(C, H, W)``.
        n_classes: labels ``0..n_classes-1`` as the condition; ``0``: a float vector of ``cond_dim`` features.
        cond_dim: size of a vector condition (only with ``n_classes=0``).
        embedding_dim: labels through a learned ``nn.Embedding`` of this size; ``0``: one-hot.
        architecture: ``"realnvp"``, ``"spline-flow"`` or ``"glow"`` (``glow`` for images only).
        base: the latent distribution (default standard normal).
        n_bins: discrete pixels ``k / (n_bins - 1)``, dequantized (``dequantize.py``); ``None``: continuous data.
        dequantization: ``"uniform"`` or ``"variational"`` (a learned noise, ``variational_dequantize.py``).
        **kwargs: the architecture's own arguments (``n_couplings``, ``hidden``, ``levels``, ...).
    """

    conditional = True
    """``mpenv-gen`` passes the labels: ``loss(x, y)``, ``log_prob(x, y)``, ``sample(n, y)``."""

    def __init__(self, input_shape: Sequence[int], n_classes: int = 10, cond_dim: int = 0, embedding_dim: int = 0,
                 architecture: str = "realnvp", base: Distribution | None = None, n_bins: int | None = None,
                 dequantization: str = "uniform", **kwargs: Any) -> None:  # fmt: skip
        if architecture not in ARCHITECTURES:
            raise ValueError(f"ConditionalFlow: architecture must be one of {', '.join(ARCHITECTURES)}, got "
                             f"{architecture!r}")  # fmt: skip
        if n_classes < 0 or embedding_dim < 0 or cond_dim < 0:
            raise ValueError("ConditionalFlow: n_classes, cond_dim and embedding_dim must not be negative")
        if (n_classes > 0) == (cond_dim > 0):
            raise ValueError(f"ConditionalFlow: give labels (n_classes > 0) or a vector condition (n_classes=0 and "
                             f"cond_dim > 0), got n_classes={n_classes}, cond_dim={cond_dim}")  # fmt: skip
        if embedding_dim and not n_classes:
            raise ValueError("ConditionalFlow: embedding_dim embeds labels; it needs n_classes > 0")
        width = cond_dim or embedding_dim or n_classes  # what the couplings' networks receive
        chain = ARCHITECTURES[architecture](input_shape, cond_dim=width, **kwargs)
        super().__init__(chain.input_shape, list(chain.transforms), base, n_bins, dequantization)
        self.n_classes, self.cond_dim, self.architecture = n_classes, cond_dim, architecture
        self.embedding = nn.Embedding(n_classes, embedding_dim) if embedding_dim else None

    def condition(self, c: Tensor | int, n: int) -> Tensor:
        """The vector the couplings see, ``[n, width]``, from labels ``[n]`` (or one ``int`` for all) or vectors.

        Raises:
            ValueError: a condition of the wrong kind, shape, range, or with NaNs.
        """
        name = type(self).__name__
        if self.n_classes:
            labels = torch.full((n,), c, dtype=torch.long) if isinstance(c, int) else c
            if not isinstance(labels, Tensor) or labels.dtype != torch.long or labels.shape != (n,):
                shown = f"{labels.dtype} {list(labels.shape)}" if isinstance(labels, Tensor) else type(c).__name__
                raise ValueError(f"{name}: the condition must be int64 labels [{n}] in 0..{self.n_classes - 1}, got "
                                 f"{shown}")  # fmt: skip
            if labels.min() < 0 or labels.max() >= self.n_classes:
                raise ValueError(f"{name}: labels must be in 0..{self.n_classes - 1}, got values in "
                                 f"[{int(labels.min())}, {int(labels.max())}]")  # fmt: skip
            labels = labels.to(self._param.device)
            if self.embedding is not None:
                return self.embedding(labels).to(self._param)
            return F.one_hot(labels, self.n_classes).to(self._param)
        if not isinstance(c, Tensor) or c.shape != (n, self.cond_dim) or not c.is_floating_point():
            shown = f"{c.dtype} {list(c.shape)}" if isinstance(c, Tensor) else type(c).__name__
            raise ValueError(f"{name}: the condition must be a float vector [{n}, {self.cond_dim}], got {shown}")
        if not torch.isfinite(c).all():
            raise ValueError(f"{name}: the condition contains NaN or infinite values")
        return c.to(self._param)

    def _rows(self, x: Tensor) -> int:
        if not isinstance(x, Tensor) or x.ndim < 1:
            raise ValueError(f"{type(self).__name__}: expected a batch [N, {', '.join(map(str, self.input_shape))}]")
        return len(x)

    def log_prob(self, x: Tensor, c: Tensor | int) -> Tensor:
        """``log p(x | c)`` in nats, ``[N]``."""
        return super().log_prob(x, self.condition(c, self._rows(x)))

    def loss(self, x: Tensor, c: Tensor | int) -> Tensor:
        return -self.log_prob(x, c).mean()

    def encode(self, x: Tensor, c: Tensor | int) -> Tensor:
        """``z = f(x; c)``."""
        return super().encode(x, self.condition(c, self._rows(x)))

    def decode(self, z: Tensor, c: Tensor | int) -> Tensor:
        """``x = f^{-1}(z; c)``."""
        return super().decode(z, self.condition(c, self._rows(z)))

    @torch.no_grad()
    def sample(self, n: int, c: Tensor | int | None = None, temperature: float = 1.0) -> Tensor:
        """``n`` samples of ``p(x | c)`` at ``temperature``; ``c`` labels ``[n]``, one label, or vectors ``[n, D]``
        (``None``: labels ``0, 1, ..., n_classes - 1`` repeated)."""
        if n < 1:
            raise ValueError(f"{type(self).__name__}: n must be at least 1, got {n}")
        if c is None:
            if not self.n_classes:
                raise ValueError(f"{type(self).__name__}: sampling a vector-conditioned flow needs the condition c")
            c = torch.arange(n) % self.n_classes
        return self.decode(self.base_sample(n, temperature), c)
