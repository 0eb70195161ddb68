"""RealNVP (Dinh, Sohl-Dickstein & Bengio 2017): a stack of affine couplings with alternating masks.

    log p(x) = log N(f(x); 0, I) + sum_k sum_i (1 - b^k_i) s^k_i,    f = coupling_K o ... o coupling_1

(see ``coupling.py`` for one coupling). Vectors ``(D,)``: ``n_couplings`` couplings whose masks alternate between
the even and the odd features. Images ``(C, H, W)`` (``H``, ``W`` even), one scale of the paper's architecture:
three checkerboard couplings (alternating parity), a squeeze, three channel-mask couplings (alternating halves),
and the squeeze undone, so the latent has the image's shape (no multi-scale split).

Continuous data, or discrete pixels with ``n_bins`` levels (dequantized: ``dequantize.py``).

    flow = RealNVP((2,)); fit(flow, train, val); nll = -flow.log_prob(test).mean()
    x = flow.sample(500, temperature=0.8); z = flow.encode(x); x_back = flow.decode(z)
"""

from __future__ import annotations

from collections.abc import Sequence

from torch.distributions import Distribution

from generative.flows.coupling import SCALE_BOUND, AffineCoupling, alternating_mask, channel_mask, checkerboard_mask
from generative.flows.flow import Flow, Inverse, Transform
from generative.flows.squeeze import Squeeze

__all__ = ["RealNVP"]

COUPLINGS_PER_STAGE = 3  # images: checkerboard x 3, squeeze, channel x 3 (the paper's scale)


class RealNVP(Flow):
    """RealNVP over vectors or images.

    Args:
        input_shape: ``(D,)`` with ``D >= 2``, or ``(C, H, W)`` with even ``H`` and ``W``.
        n_couplings: couplings of a vector flow (images use 3 + 3).
        hidden: the coupling networks' hidden widths (an image network uses the first as its channels).
        scale_bound: ``B`` of the bounded log-scale ``s = B tanh(s_raw / B)``.
        cond_dim: size of a condition vector passed to every coupling (0: unconditional).
        base: the latent distribution (default standard normal).
        n_bins: discrete pixels ``k / (n_bins - 1)``, dequantized (``dequantize.py``); ``None``: continuous data.
        dequantization: ``"uniform"`` or ``"variational"`` (a learned noise, ``variational_dequantize.py``).
    """

    def __init__(self, input_shape: Sequence[int], n_couplings: int = 8, hidden: Sequence[int] = (64, 64),
                 scale_bound: float = SCALE_BOUND, cond_dim: int = 0,
                 base: Distribution | None = None, n_bins: int | None = None,
                 dequantization: str = "uniform") -> None:  # fmt: skip
        shape = tuple(int(d) for d in input_shape)
        if n_couplings < 1:
            raise ValueError(f"RealNVP: n_couplings must be at least 1, got {n_couplings}")
        transforms: list[Transform] = []
        if len(shape) == 1:
            if shape[0] < 2:
                raise ValueError(f"RealNVP: vectors need at least 2 features to couple, got input_shape {shape}")
            transforms = [AffineCoupling(alternating_mask(shape[0], k % 2), hidden, scale_bound, cond_dim)
                          for k in range(n_couplings)]  # fmt: skip
        elif len(shape) == 3:
            c, h, w = shape
            if h % 2 or w % 2:
                raise ValueError(f"RealNVP: images need even height and width (for the squeeze), got {shape}")
            squeezed = (4 * c, h // 2, w // 2)
            transforms = [AffineCoupling(checkerboard_mask(shape, k % 2), hidden, scale_bound, cond_dim)
                          for k in range(COUPLINGS_PER_STAGE)]  # fmt: skip
            transforms.append(Squeeze())
            transforms += [AffineCoupling(channel_mask(squeezed, k % 2), hidden, scale_bound, cond_dim)
                           for k in range(COUPLINGS_PER_STAGE)]  # fmt: skip
            transforms.append(Inverse(Squeeze()))
        else:
            raise ValueError(f"RealNVP: input_shape must be (D,) or (C, H, W), got {shape}")
        super().__init__(shape, transforms, base, n_bins, dequantization)
