"""Image-to-image tasks made from the digits themselves, with an exact answer: each maps a digit to its
counterpart in another domain, deterministically, so pairs (pix2pix) and unpaired sets (CycleGAN) come free.

    edges     the morphological gradient x - erode(x): the outline of the strokes (3x3 erosion = min filter)
    thick     dilate(x): the strokes thickened by one pixel (3x3 max filter)
    rotated   the digit turned by 90 degrees counter-clockwise

Translation runs from the task's domain back to the digits (``edges(x) -> x``, ``thick(x) -> x``,
``rotated(x) -> x``), so the digits classifier can check that a translated image is the input's digit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["TASKS", "apply_task"]


def _dilate(x: Tensor) -> Tensor:
    return F.max_pool2d(x, 3, stride=1, padding=1)


def _erode(x: Tensor) -> Tensor:
    return -F.max_pool2d(-x, 3, stride=1, padding=1)


TASKS = {
    "edges": lambda x: (x - _erode(x)).clamp(0, 1),
    "thick": _dilate,
    "rotated": lambda x: torch.rot90(x, 1, dims=(2, 3)),
}


def apply_task(name: str, x: Tensor) -> Tensor:
    """The task's domain image of each digit in ``x [N, C, H, W]``."""
    if name not in TASKS:
        raise ValueError(f"unknown translation task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name](x)
