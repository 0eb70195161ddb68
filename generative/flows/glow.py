"""Glow (Kingma & Dhariwal 2018): multi-scale flow of steps ``ActNorm -> invertible 1x1 conv -> affine coupling``.

    level(x) = unsqueeze( split( K x step( squeeze(x) ), level ) )      step = coupling o conv1x1 o actnorm

At each of the ``levels`` scales the image is squeezed (``[C, H, W] -> [4C, H/2, W/2]``), ``K`` steps mix it (the
LU-parametrized 1x1 convolution, ``O(C)`` log-determinant, replaces RealNVP's fixed channel permutations, so every
coupling can use the same channel mask), half the channels are factored out (``split.py``) and the other half
goes to the next level; the last level factors nothing out. The latent keeps the image's shape.

Continuous data, or discrete pixels with ``n_bins`` levels (dequantized: ``dequantize.py``).

    flow = Glow((1, 8, 8), levels=2, steps=4); z = flow.encode(x); x_new = flow.sample(16, temperature=0.7)
"""

from __future__ import annotations

from collections.abc import Sequence

from torch.distributions import Distribution

from generative.flows.actnorm import ActNorm
from generative.flows.conv1x1 import LUInvConv1x1
from generative.flows.coupling import SCALE_BOUND, AffineCoupling, channel_mask
from generative.flows.flow import Flow, Inverse, Transform
from generative.flows.split import Split
from generative.flows.squeeze import Squeeze

__all__ = ["Glow"]


def _level(shape: tuple[int, int, int], levels: int, steps: int, hidden: Sequence[int], scale_bound: float,
           cond_dim: int, seed: int) -> list[Transform]:  # fmt: skip
    """The transforms of one scale over ``shape``, with the deeper ``levels - 1`` scales inside its split."""
    c, h, w = shape
    squeezed = (4 * c, h // 2, w // 2)
    transforms: list[Transform] = [Squeeze()]
    for k in range(steps):
        transforms += [ActNorm(4 * c), LUInvConv1x1(4 * c, seed=seed + k),
                       AffineCoupling(channel_mask(squeezed, 0), hidden, scale_bound, cond_dim)]  # fmt: skip
    if levels > 1:
        inner_shape = (2 * c, h // 2, w // 2)
        inner = _level(inner_shape, levels - 1, steps, hidden, scale_bound, cond_dim, seed + steps)
        transforms.append(Split(Flow(inner_shape, inner)))
    transforms.append(Inverse(Squeeze()))
    return transforms


class Glow(Flow):
    """Glow over images ``(C, H, W)``, ``H`` and ``W`` divisible by ``2^levels``.

    Args:
        input_shape: ``(C, H, W)``.
        levels: scales (squeeze ... split); each halves the height and width.
        steps: ``K``, flow steps per scale.
        hidden: the coupling networks' channels (the first entry).
        scale_bound: ``B`` of the couplings' bounded log-scale.
        cond_dim: size of a condition vector passed to every coupling (0: unconditional).
        seed: seeds the 1x1 convolutions' initial rotations.
        base: the latent distribution (default standard normal).
        n_bins: discrete pixels ``k / (n_bins - 1)``, dequantized (``dequantize.py``); ``None``: continuous data.
        dequantization: ``"uniform"`` or ``"variational"`` (a learned noise, ``variational_dequantize.py``).
    """

    def __init__(self, input_shape: Sequence[int], levels: int = 2, steps: int = 4, hidden: Sequence[int] = (64,),
                 scale_bound: float = SCALE_BOUND, cond_dim: int = 0, seed: int = 0,
                 base: Distribution | None = None, n_bins: int | None = None,
                 dequantization: str = "uniform") -> None:  # fmt: skip
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 3:
            raise ValueError(f"Glow: input_shape must be (C, H, W), got {shape}")
        if levels < 1 or steps < 1:
            raise ValueError(f"Glow: levels and steps must be at least 1, got {levels} and {steps}")
        if shape[1] % 2**levels or shape[2] % 2**levels:
            raise ValueError(f"Glow: height and width must be divisible by 2^levels = {2**levels}, got {shape}")
        transforms = _level(shape, levels, steps, hidden, scale_bound, cond_dim, seed)
        super().__init__(shape, transforms, base, n_bins, dequantization)
