"""Rosenblatt's perceptron algorithm (1958) and Novikoff's bound on its number of mistakes (1962).

The perceptron classifies ``x`` by the sign of ``w . x + b``, labels ``y in {-1, +1}``. Starting from ``w = 0,
b = 0`` it visits the samples one at a time and corrects itself only when it is wrong::

    if  y_i (w . x_i + b) <= 0:      w <- w + lr y_i x_i,      b <- b + lr y_i          (a mistake)

(a point on the boundary counts as a mistake, so the zero start is wrong everywhere and learning begins). An epoch
visits every sample once in a random order; the algorithm stops when an epoch would make no mistake (checked for
all samples at once before each epoch, so every epoch counted made at least one update).

Novikoff's theorem: fold the bias in as a constant feature, ``x~ = (x, 1)`` and ``w~ = (w, b)``. If some unit
vector ``u`` (``||u|| = 1``) separates the data with margin ``gamma``, ``y_i u . x~_i >= gamma > 0`` for all ``i``,
and ``R = max_i ||x~_i||``, then the perceptron makes at most::

    (R / gamma)^2   mistakes

whatever the order of the samples, so it converges. (Each mistake raises ``u . w~`` by at least ``lr gamma`` and
``||w~||^2`` by at most ``lr^2 R^2``; after ``k`` mistakes ``k lr gamma <= u . w~ <= ||w~|| <= sqrt(k) lr R``.)
From the zero start ``lr`` only scales ``w~`` and never changes a prediction. On data that no line separates,
such as XOR, there is no ``gamma > 0``: the perceptron cycles forever, and ``converged`` reports that it did not
stop within ``max_epochs``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["PerceptronResult", "train_perceptron"]


@dataclass
class PerceptronResult:
    """``weights [D]`` and ``bias`` at the end; ``epochs`` passes over the data were made (each with at least one
    mistake), with ``mistakes`` updates in all; ``converged`` if the final weights classify every sample correctly
    (``y (w . x + b) > 0``)."""

    weights: Tensor
    bias: float
    epochs: int
    mistakes: int
    converged: bool


def _all_correct(x: Tensor, y: Tensor, w: Tensor, b: float) -> bool:
    return bool(((x @ w + b) * y > 0).all())


def train_perceptron(
    x: Tensor, y: Tensor, max_epochs: int = 1000, lr: float = 1.0, generator: torch.Generator | None = None
) -> PerceptronResult:
    """Rosenblatt's rule on ``x [N, D]`` with labels ``y [N]`` in {-1, +1}, epochs in a random order drawn from
    ``generator``, until an epoch makes no mistake or ``max_epochs`` epochs have run."""
    if x.ndim != 2 or y.shape != x.shape[:1]:
        raise ValueError(f"expected x [N, D] and y [N], got {list(x.shape)} and {list(y.shape)}")
    if not bool(((y == 1) | (y == -1)).all()):
        raise ValueError("labels y must be -1 or +1")
    x = x.to(torch.float64)
    y = y.to(torch.float64)
    w = torch.zeros(x.shape[1], dtype=torch.float64)
    b = 0.0
    mistakes = 0
    epochs = 0
    # The check over all samples is one vectorized product; it ends training before a pass that would change nothing.
    while epochs < max_epochs and not _all_correct(x, y, w, b):
        epochs += 1
        # The updates are sequential by definition: each one changes the prediction for the next sample.
        for i in torch.randperm(x.shape[0], generator=generator).tolist():
            if float(y[i] * (x[i] @ w + b)) <= 0:
                w += lr * y[i] * x[i]
                b += lr * float(y[i])
                mistakes += 1
    return PerceptronResult(weights=w, bias=b, epochs=epochs, mistakes=mistakes, converged=_all_correct(x, y, w, b))
