"""Pieces every generative model shares: input checks and the Bernoulli likelihood of binary data.

Conventions of the package: a model's constructor takes ``input_shape`` first (``(C, H, W)`` images or ``(D,)``
vectors); inputs are batches ``x [N, *input_shape]``; ``log_prob(x)`` returns ``[N]`` nats; binary models take
values in {0, 1}.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["bernoulli_log_prob", "check_input", "event_size"]


def event_size(input_shape: Sequence[int]) -> int:
    """Number of values in one example, ``prod(input_shape)``."""
    size = 1
    for dim in input_shape:
        size *= int(dim)
    return size


def check_input(x: Tensor, input_shape: Sequence[int], binary: bool = False, model: str = "model") -> Tensor:
    """Validate a batch ``[N, *input_shape]`` (and ``{0, 1}`` values for binary models); return it as float.

    Raises:
        ValueError: naming the model, the expected shape and what was given.
    """
    expected = tuple(int(d) for d in input_shape)
    if not isinstance(x, Tensor):
        raise TypeError(f"{model}: expected a torch.Tensor of shape [N, {', '.join(map(str, expected))}], got "
                        f"{type(x).__name__}")  # fmt: skip
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected:
        raise ValueError(f"{model}: expected input of shape [N, {', '.join(map(str, expected))}], got {list(x.shape)}")
    x = x.float()
    if binary and not torch.all((x == 0) | (x == 1)):
        raise ValueError(f"{model}: binary model needs inputs in {{0, 1}}; binarize the data first")
    return x


def bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """``sum_d log Bernoulli(x_d | sigmoid(logits_d))`` over all but the batch dimension, in nats: ``[N]``."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(dim=1)
