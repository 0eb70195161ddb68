"""Activation functions, their derivatives, and the two classification losses with their gradients, by hand.

A layer computes ``z = W a + b`` and then ``a' = f(z)``; backpropagation needs ``f'(z)``, elementwise. The
activations and the closed forms of their derivatives::

    sigmoid     s(z) = 1 / (1 + exp(-z))                    s'(z) = s(z) (1 - s(z))
    tanh        tanh(z)                                      tanh'(z) = 1 - tanh(z)^2
    relu        max(z, 0)                                    relu'(z) = 1 if z > 0 else 0     (0 at z = 0)
    leaky_relu  z if z > 0 else alpha z   (alpha = 0.01)     1 if z > 0 else alpha            (alpha at z = 0)
    gelu        z Phi(z)                                     gelu'(z) = Phi(z) + z phi(z)
    softplus    log(1 + exp(beta z)) / beta   (beta = 1)     softplus'(z) = s(beta z)
    identity    z                                            1

with ``Phi`` and ``phi`` the standard normal CDF and density, ``Phi(z) = (1 + erf(z / sqrt 2)) / 2`` (GELU's
exact form, torch's default, not the tanh approximation). At the kinks the derivative is the one torch's autograd
uses (relu: 0, leaky_relu: alpha), and softplus is linear above ``beta z > 20`` as torch's is (the difference is
below ``exp(-20) = 2e-9``), so that the values here equal torch's to rounding.

The losses are maximum likelihood: a classifier's logits ``z`` define a categorical distribution
``p(k | x) = softmax(z)_k`` (or a Bernoulli one, ``p(y = 1 | x) = s(z)``), and the cross-entropy is the negative
log-likelihood of the observed labels under it, averaged over the ``N`` samples::

    CE(z, t)  = 1/N sum_i [ logsumexp(z_i) - z_{i, t_i} ]          dCE/dz_i  = (softmax(z_i) - onehot(t_i)) / N
    BCE(z, y) = 1/N sum_i [ -y_i log s(z_i) - (1 - y_i) log(1 - s(z_i)) ]
              = 1/N sum_i [ max(z_i, 0) - z_i y_i + log(1 + exp(-|z_i|)) ]   dBCE/dz_i = (s(z_i) - y_i) / N

Both are computed from the logits, never from probabilities: ``logsumexp(z) = m + log sum_k exp(z_k - m)`` with
``m = max_k z_k`` and the second BCE form only exponentiate non-positive numbers, so logits of +-1000 give finite
losses and gradients where ``log(softmax(z))`` would give ``log(0) = -inf``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "ACTIVATIONS",
    "activation",
    "activation_derivative",
    "bce_with_logits",
    "bce_with_logits_backward",
    "cross_entropy_with_logits",
    "cross_entropy_with_logits_backward",
    "gelu",
    "gelu_derivative",
    "identity",
    "identity_derivative",
    "leaky_relu",
    "leaky_relu_derivative",
    "log_softmax",
    "logsumexp",
    "relu",
    "relu_derivative",
    "sigmoid",
    "sigmoid_derivative",
    "softmax",
    "softplus",
    "softplus_derivative",
    "tanh",
    "tanh_derivative",
]


# ----------------------------------------------------------------------------------------------------------------
# Activations and their derivatives


def sigmoid(z: Tensor) -> Tensor:
    # exp(-z) overflows to inf for z < -709 (float64), and 1 / inf = 0 is the right limit: no NaN to guard against.
    return 1.0 / (1.0 + torch.exp(-z))


def sigmoid_derivative(z: Tensor) -> Tensor:
    s = sigmoid(z)
    return s * (1.0 - s)


def tanh(z: Tensor) -> Tensor:
    return torch.tanh(z)


def tanh_derivative(z: Tensor) -> Tensor:
    return 1.0 - torch.tanh(z) ** 2


def relu(z: Tensor) -> Tensor:
    return torch.clamp(z, min=0.0)


def relu_derivative(z: Tensor) -> Tensor:
    # Strictly positive: the subgradient 0 at the kink, as torch's autograd takes it.
    return (z > 0).to(z.dtype)


def leaky_relu(z: Tensor, negative_slope: float = 0.01) -> Tensor:
    return torch.where(z > 0, z, negative_slope * z)


def leaky_relu_derivative(z: Tensor, negative_slope: float = 0.01) -> Tensor:
    # At z = 0 the slope of the negative side, as torch's autograd takes it.
    return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, negative_slope))


def _normal_cdf(z: Tensor) -> Tensor:
    return 0.5 * (1.0 + torch.erf(z * (1.0 / math.sqrt(2.0))))


def _normal_pdf(z: Tensor) -> Tensor:
    return torch.exp(-0.5 * z * z) * (1.0 / math.sqrt(2.0 * math.pi))


def gelu(z: Tensor) -> Tensor:
    return z * _normal_cdf(z)


def gelu_derivative(z: Tensor) -> Tensor:
    return _normal_cdf(z) + z * _normal_pdf(z)


def softplus(z: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    # Above the threshold log(1 + exp(beta z)) / beta = z to within exp(-20) / beta; torch switches to z there too.
    bz = beta * z
    return torch.where(bz > threshold, z, torch.log1p(torch.exp(bz)) / beta)


def softplus_derivative(z: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    bz = beta * z
    return torch.where(bz > threshold, torch.ones_like(z), sigmoid(bz))


def identity(z: Tensor) -> Tensor:
    return z


def identity_derivative(z: Tensor) -> Tensor:
    return torch.ones_like(z)


_FUNCTIONS: dict[str, tuple[Callable[..., Tensor], Callable[..., Tensor]]] = {
    "sigmoid": (sigmoid, sigmoid_derivative),
    "tanh": (tanh, tanh_derivative),
    "relu": (relu, relu_derivative),
    "leaky_relu": (leaky_relu, leaky_relu_derivative),
    "gelu": (gelu, gelu_derivative),
    "softplus": (softplus, softplus_derivative),
    "identity": (identity, identity_derivative),
}
ACTIVATIONS: tuple[str, ...] = tuple(_FUNCTIONS)


def _lookup(name: str) -> tuple[Callable[..., Tensor], Callable[..., Tensor]]:
    if name not in _FUNCTIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")
    return _FUNCTIONS[name]


def activation(name: str, z: Tensor, **kw: float) -> Tensor:
    """``f(z)`` elementwise for the activation ``name`` (one of :data:`ACTIVATIONS`); ``kw`` are its parameters
    (``negative_slope`` of leaky_relu, ``beta`` and ``threshold`` of softplus)."""
    return _lookup(name)[0](z, **kw)


def activation_derivative(name: str, z: Tensor, **kw: float) -> Tensor:
    """``f'(z)`` elementwise, in closed form (the module docstring's table)."""
    return _lookup(name)[1](z, **kw)


# ----------------------------------------------------------------------------------------------------------------
# Losses on logits


def logsumexp(logits: Tensor) -> Tensor:
    """``log sum_k exp(z_k)`` over the last dimension, shifted by the maximum so that no exponential overflows."""
    m = logits.max(dim=-1, keepdim=True).values
    return (m + torch.log(torch.exp(logits - m).sum(dim=-1, keepdim=True))).squeeze(-1)


def log_softmax(logits: Tensor) -> Tensor:
    return logits - logsumexp(logits).unsqueeze(-1)


def softmax(logits: Tensor) -> Tensor:
    return torch.exp(log_softmax(logits))


def _check_class_targets(logits: Tensor, targets: Tensor) -> None:
    if logits.ndim != 2 or targets.shape != logits.shape[:1]:
        raise ValueError(f"expected logits [N, K] and targets [N], got {list(logits.shape)} and {list(targets.shape)}")


def cross_entropy_with_logits(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy of ``logits [N, K]`` against class indices ``targets [N]``: the negative log-likelihood
    of the labels under the categorical model ``softmax(logits)``."""
    _check_class_targets(logits, targets)
    picked = logits.gather(1, targets.long().unsqueeze(1)).squeeze(1)  # z_{i, t_i}
    return (logsumexp(logits) - picked).mean()


def cross_entropy_with_logits_backward(logits: Tensor, targets: Tensor) -> Tensor:
    """``dCE/dlogits = (softmax(logits) - onehot(targets)) / N``, shape ``[N, K]``."""
    _check_class_targets(logits, targets)
    onehot = torch.zeros_like(logits).scatter_(1, targets.long().unsqueeze(1), 1.0)
    return (softmax(logits) - onehot) / logits.shape[0]


def _check_binary_targets(logits: Tensor, targets: Tensor) -> None:
    if targets.shape != logits.shape:
        raise ValueError(f"expected targets of the logits' shape {list(logits.shape)}, got {list(targets.shape)}")


def bce_with_logits(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean binary cross-entropy of ``logits`` against ``targets`` in [0, 1] (same shape): the negative
    log-likelihood under the Bernoulli model ``p(y = 1) = sigmoid(logits)``, in the form that cannot overflow."""
    _check_binary_targets(logits, targets)
    targets = targets.to(logits.dtype)
    return (torch.clamp(logits, min=0.0) - logits * targets + torch.log1p(torch.exp(-logits.abs()))).mean()


def bce_with_logits_backward(logits: Tensor, targets: Tensor) -> Tensor:
    """``dBCE/dlogits = (sigmoid(logits) - targets) / N``, with ``N`` the number of elements (the mean's)."""
    _check_binary_targets(logits, targets)
    return (sigmoid(logits) - targets.to(logits.dtype)) / logits.numel()
