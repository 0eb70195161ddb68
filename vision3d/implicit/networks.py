"""The coordinate network of learned implicit surfaces: an MLP ``f(x [, z]) -> R`` with geometric initialisation.

One network serves IGR, DeepSDF and Occupancy Networks: a point ``x`` [N, 3], optionally concatenated with a latent
code ``z`` [N, d] (DeepSDF's auto-decoder, a shape's class code), goes through ``L`` hidden layers to one value per
point, a signed distance or a logit. Optionally the input is concatenated again to the middle layer's features,
divided by ``sqrt(2)`` (DeepSDF's and IGR's skip connection; the ``sqrt(2)`` keeps the features' norm).

Activations: ``Softplus(beta=100)`` for SDFs, ``softplus(t) = log(1 + exp(beta t)) / beta``, a smooth ReLU, so
the gradient ``grad_x f`` is continuous and the eikonal term ``(||grad_x f|| - 1)^2`` trains it (with a ReLU the
gradient is piecewise constant); ReLU for occupancy classifiers.

Geometric initialisation (Atzmon & Lipman, SAL 2020; IGR, Gropp et al. 2020): with ``h`` the width feeding the
last layer,

    hidden layers:  W ~ N(0, 2 / n_out),  b = 0           (the ReLU features keep ``||x||`` in expectation)
    last layer:     w ~ N(sqrt(pi) / sqrt(h), 1e-4^2),  b = -r

so that ``f(x) ~ ||x|| - r`` at initialisation: ``E relu(w.x) = ||x|| sqrt(2 / n) / sqrt(2 pi)`` per unit, summed
over ``h`` units and scaled by ``sqrt(pi / h)`` gives ``||x||``. Training starts from the SDF of a sphere, whose
gradient already has unit length, instead of from noise.

:func:`gradient` is ``grad_x f`` by autograd, with ``create_graph=True`` so that a loss on it can be trained.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial

import torch
from torch import Tensor, nn

from mpenv.networks import mlp

__all__ = ["ImplicitNetwork", "check_points", "flush_denormals", "gradient"]

LAST_LAYER_STD = 1e-4  # IGR's spread of the last layer's weights around sqrt(pi / h)


def _geometric_hidden(layer: nn.Linear) -> nn.Linear:
    nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0) / math.sqrt(layer.out_features))
    nn.init.zeros_(layer.bias)
    return layer


def _geometric_last(layer: nn.Linear, radius: float) -> nn.Linear:
    nn.init.normal_(layer.weight, math.sqrt(math.pi) / math.sqrt(layer.in_features), LAST_LAYER_STD)
    nn.init.constant_(layer.bias, -radius)
    return layer


class ImplicitNetwork(nn.Module):
    """``f(x [, z])``: points [N, 3] (and codes [N, latent_dim]) to values [N].

    ``hidden`` are the widths of the hidden layers; ``skip=True`` concatenates the input to the features after
    ``len(hidden) // 2`` layers (that layer is narrowed by the input's width so the next one keeps its width).
    ``activation`` is ``"softplus"`` (``Softplus(beta)``, for SDFs) or ``"relu"``. ``geometric_init`` starts the
    network as ``||x|| - radius`` (module docstring); without it torch's default initialisation is kept.
    """

    def __init__(self, hidden: Sequence[int] = (128, 128, 128, 128), latent_dim: int = 0, skip: bool = True,
                 activation: str = "softplus", beta: float = 100.0, geometric_init: bool = True,
                 radius: float = 0.5, in_dim: int = 3) -> None:  # fmt: skip
        super().__init__()
        hidden = tuple(int(width) for width in hidden)
        if len(hidden) == 0 or min(hidden) < 1:
            raise ValueError(f"need at least one hidden layer of positive width, got hidden={hidden}")
        if latent_dim < 0:
            raise ValueError(f"latent_dim must be non-negative, got {latent_dim}")
        if activation not in ("softplus", "relu"):
            raise ValueError(f"activation must be 'softplus' or 'relu', got {activation!r}")
        self.in_dim, self.latent_dim = in_dim, latent_dim
        input_width = in_dim + latent_dim
        split = len(hidden) // 2 if skip and len(hidden) > 1 else 0
        if split and hidden[split - 1] <= input_width:
            raise ValueError(
                f"the layer before the skip connection ({hidden[split - 1]}) must be wider than the "
                f"input ({input_width})"
            )
        act = nn.ReLU if activation == "relu" else partial(nn.Softplus, beta=beta)
        hidden_init = _geometric_hidden if geometric_init else None
        last_init = partial(_geometric_last, radius=radius) if geometric_init else None

        if split:
            before = (*hidden[: split - 1], hidden[split - 1] - input_width)
            self.before_skip: nn.Module | None = mlp(input_width, before, activation=act, init=hidden_init)
            after_in = hidden[split - 1]
        else:
            self.before_skip, after_in = None, input_width
        self.after_skip = mlp(after_in, hidden[split:], 1, activation=act, init=hidden_init, out_init=last_init)

    def forward(self, x: Tensor, z: Tensor | None = None) -> Tensor:
        """Values [N] at points ``x`` [N, 3]; ``z`` is one code [latent_dim] for all points or one per point."""
        if z is None and self.latent_dim:
            raise ValueError(f"this network needs a latent code of size {self.latent_dim}")
        if z is not None:
            if z.shape[-1] != self.latent_dim:
                raise ValueError(f"expected codes of size {self.latent_dim}, got {tuple(z.shape)}")
            x = torch.cat([x, z.expand(x.shape[0], -1)], dim=-1)
        features = x
        if self.before_skip is not None:
            features = torch.cat([self.before_skip(x), x], dim=-1) / math.sqrt(2.0)
        return self.after_skip(features).squeeze(-1)


def gradient(f_values: Tensor, x: Tensor, create_graph: bool = True) -> Tensor:
    """``grad_x f`` [N, 3] for values ``f(x)`` [N] computed from ``x`` (which must require grad); ``create_graph``
    keeps the graph so that a loss on the gradient (the eikonal term) can be back-propagated."""
    (grad,) = torch.autograd.grad(f_values, x, grad_outputs=torch.ones_like(f_values), create_graph=create_graph)
    return grad


def _flush_denormal_enabled() -> bool:
    # torch has no getter: a product in the denormal range is flushed to zero exactly when the mode is on.
    return bool((torch.tensor([1e-30]) * torch.tensor([1e-9])).item() == 0.0)


@contextmanager
def flush_denormals() -> Iterator[None]:
    """Denormal floats flushed to zero on the CPU inside the block, the previous mode restored after.

    ``Softplus(beta=100)`` computes ``exp(-100 t)``, which is denormal in float32 for ``t`` above ~0.9, and x86
    CPUs handle denormals in microcode, up to ~100x slower per operation. Flushing them sped up an earlier SDF fit
    here about 3x; on the 64- and 128-wide networks of the tests it made no measurable difference either way."""
    previous = _flush_denormal_enabled()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(previous)


def check_points(points: object, name: str = "points", dim: int = 3) -> Tensor:
    """A non-empty, finite floating tensor [N, dim], or a ValueError naming the argument."""
    tensor = torch.as_tensor(points)
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    if tensor.ndim != 2 or tensor.shape[1] != dim:
        raise ValueError(f"{name} must have shape [N, {dim}], got {tuple(tensor.shape)}")
    if tensor.shape[0] == 0:
        raise ValueError(f"{name} is empty: need at least one point")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return tensor
