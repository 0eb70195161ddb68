"""SRFlow-style super-resolution (Lugmayr et al. 2020): a conditional Glow over the high-resolution image,
conditioned on encoder features of its low-resolution version.

    log p(x | u) = log p_Z(f(x; g(u))) + sum_k log |det df_k/dh_{k-1} (h_{k-1}; g(u))|,   u = avgpool_r(x)

``g`` is a small convolutional encoder of the low-resolution image ``u``; its feature map is resized to the
spatial size of every layer that uses it. Each of Glow's steps (``glow.py``) gets two conditional layers:

- the affine injector, ``h' = exp(s(g)) * h + b(g)`` elementwise, ``log|det| = sum s(g)``: an invertible map of
  ``h`` whatever the features (``s`` bounded like the couplings', ``|s| < B``), which moves and scales the
  activations by what the low-res image says, with no dependence on ``h`` (so no Jacobian beyond the diagonal);
- an affine coupling whose network sees the masked half of ``h`` and the features (concatenated as channels).

    step = coupling(.; g) o injector(.; g) o conv1x1 o actnorm

Sampling draws ``z ~ N(0, T^2 I)`` and inverts the chain for one ``u``: many different high-resolution images,
each (once trained) consistent with ``u``. The condition comes from the data itself: ``log_prob(x)`` and
``loss(x)`` downsample ``x`` to get ``u``, so the model trains on plain images like the unconditional flows.

    sr = SRFlow((1, 8, 8)); fit(sr, train, val); x_hr = sr.super_resolve(u, n_samples=8, temperature=0.8)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution

from generative.common import check_input
from generative.flows.actnorm import ActNorm
from generative.flows.conv1x1 import LUInvConv1x1
from generative.flows.coupling import SCALE_BOUND, AffineCoupling, channel_mask
from generative.flows.flow import Flow, Inverse, Transform
from generative.flows.split import Split
from generative.flows.squeeze import Squeeze

__all__ = ["AffineInjector", "FeatureAffineCoupling", "SRFlow", "downsample"]


def downsample(x: Tensor, factor: int) -> Tensor:
    """The low-resolution image: ``factor x factor`` average pooling, ``[N, C, H, W] -> [N, C, H/r, W/r]``."""
    return F.avg_pool2d(x, factor)


def _at_size(features: Tensor, like: Tensor) -> Tensor:
    """The feature map resized (bilinear; average pooling when shrinking) to ``like``'s height and width."""
    size = tuple(like.shape[2:])
    if tuple(features.shape[2:]) == size:
        return features
    if features.shape[2] % size[0] == 0 and features.shape[3] % size[1] == 0:
        return F.adaptive_avg_pool2d(features, size)
    return F.interpolate(features, size=size, mode="bilinear", align_corners=False)


def _feature_net(in_channels: int, width: int, out_channels: int) -> nn.Sequential:
    """3x3 conv -> 1x1 conv -> 3x3 conv (ReLU between); the last layer starts at zero (the layer: the identity)."""
    net = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 1),
                        nn.ReLU(), nn.Conv2d(width, out_channels, 3, padding=1))  # fmt: skip
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


def _features(cond: Tensor | None, layer: str) -> Tensor:
    if cond is None or cond.ndim != 4:
        raise ValueError(f"{layer}: needs the encoder's feature map [N, F, h, w] as its condition")
    return cond


class AffineInjector(Transform):
    """SRFlow's affine injector ``h' = exp(s(g)) * h + b(g)``, ``log|det| = sum s``, over ``[N, C, H, W]``.

    ``s`` and ``b`` come from a conv net of the features ``g`` (``[N, feature_channels, h, w]``, resized to
    ``H x W``); ``s = B tanh(s_raw / B)``: never zero scale, so invertible for every weight.
    """

    def __init__(self, channels: int, feature_channels: int, hidden: int = 64, scale_bound: float = SCALE_BOUND):
        super().__init__()
        if not scale_bound > 0:
            raise ValueError(f"AffineInjector: scale_bound must be positive, got {scale_bound}")
        self.channels, self.scale_bound = channels, float(scale_bound)
        self.net = _feature_net(feature_channels, hidden, 2 * channels)

    def _scale_shift(self, h: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        if h.ndim != 4 or h.shape[1] != self.channels:
            raise ValueError(f"AffineInjector: expected [N, {self.channels}, H, W], got {list(h.shape)}")
        raw_s, b = self.net(_at_size(_features(cond, "AffineInjector"), h)).chunk(2, dim=1)
        return self.scale_bound * torch.tanh(raw_s / self.scale_bound), b

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        s, b = self._scale_shift(x, cond)
        return torch.exp(s) * x + b, s.flatten(1).sum(1)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        s, b = self._scale_shift(y, cond)
        return (y - b) * torch.exp(-s), -s.flatten(1).sum(1)


class _FeatureConditioner(nn.Module):
    """A coupling network of ``[masked h, features resized to h]`` -> ``[N, 2, C, H, W]`` (log-scale, shift)."""

    def __init__(self, shape: tuple[int, int, int], feature_channels: int, hidden: int) -> None:
        super().__init__()
        self.shape = shape
        self.net = _feature_net(shape[0] + feature_channels, hidden, 2 * shape[0])

    def forward(self, h_masked: Tensor, cond: Tensor | None = None) -> Tensor:
        g = _at_size(_features(cond, "FeatureAffineCoupling"), h_masked)
        return self.net(torch.cat([h_masked, g], dim=1)).view(len(h_masked), 2, *h_masked.shape[1:])


class FeatureAffineCoupling(AffineCoupling):
    """RealNVP's affine coupling (``coupling.py``) whose network also sees a feature map (SRFlow's conditional
    coupling): ``y = b * x + (1 - b) * (x * exp(s(b * x, g)) + t(b * x, g))``."""

    def __init__(self, mask: Tensor, feature_channels: int, hidden: int = 64, scale_bound: float = SCALE_BOUND):
        super().__init__(mask, (hidden,), scale_bound)
        self.net = _FeatureConditioner(tuple(mask.shape), feature_channels, hidden)


def _level(shape: tuple[int, int, int], levels: int, steps: int, hidden: int, features: int, scale_bound: float,
           seed: int) -> list[Transform]:  # fmt: skip
    """Glow's scale (``glow.py``) with an injector and a feature-conditioned coupling in every step."""
    c, h, w = shape
    squeezed = (4 * c, h // 2, w // 2)
    transforms: list[Transform] = [Squeeze()]
    for k in range(steps):
        transforms += [ActNorm(4 * c), LUInvConv1x1(4 * c, seed=seed + k),
                       AffineInjector(4 * c, features, hidden, scale_bound),
                       FeatureAffineCoupling(channel_mask(squeezed, k % 2), features, hidden, scale_bound)]  # fmt: skip
    if levels > 1:
        inner_shape = (2 * c, h // 2, w // 2)
        inner = _level(inner_shape, levels - 1, steps, hidden, features, scale_bound, seed + steps)
        transforms.append(Split(Flow(inner_shape, inner)))
    transforms.append(Inverse(Squeeze()))
    return transforms


class SRFlow(Flow):
    """``p(x_hr | u)`` over images ``(C, H, W)``, ``u`` the ``factor``-times average-pooled image.

    Args:
        input_shape: the high-resolution ``(C, H, W)``; ``H``, ``W`` divisible by ``2^levels`` and by ``factor``.
        factor: ``r``, the downsampling factor of the low-resolution image.
        levels: Glow scales (squeeze ... split).
        steps: ``K`` steps per scale.
        hidden: channels of the injectors' and couplings' networks.
        features: channels of the low-res encoder's feature map.
        scale_bound: ``B`` of the bounded log-scales.
        seed: seeds the 1x1 convolutions' initial rotations.
        base: the latent distribution (default standard normal).
        n_bins: discrete pixels ``k / (n_bins - 1)``, dequantized (``dequantize.py``); ``None``: continuous data.
        dequantization: ``"uniform"`` or ``"variational"`` (a learned noise, ``variational_dequantize.py``).
    """

    def __init__(self, input_shape: Sequence[int], factor: int = 2, levels: int = 2, steps: int = 4,
                 hidden: int = 64, features: int = 32, scale_bound: float = SCALE_BOUND, seed: int = 0,
                 base: Distribution | None = None, n_bins: int | None = None,
                 dequantization: str = "uniform") -> None:  # fmt: skip
        shape = tuple(int(d) for d in input_shape)
        if len(shape) != 3:
            raise ValueError(f"SRFlow: input_shape must be (C, H, W), got {shape}")
        if factor < 2 or levels < 1 or steps < 1 or hidden < 1 or features < 1:
            raise ValueError(f"SRFlow: factor must be at least 2 and levels, steps, hidden, features at least 1, got "
                             f"{factor}, {levels}, {steps}, {hidden}, {features}")  # fmt: skip
        if shape[1] % 2**levels or shape[2] % 2**levels or shape[1] % factor or shape[2] % factor:
            raise ValueError(f"SRFlow: height and width must be divisible by 2^levels = {2**levels} and by factor "
                             f"= {factor}, got {shape}")  # fmt: skip
        transforms = _level(shape, levels, steps, hidden, features, scale_bound, seed)
        super().__init__(shape, transforms, base, n_bins, dequantization)
        self.factor = factor
        self.low_res_shape = (shape[0], shape[1] // factor, shape[2] // factor)
        self.encoder = nn.Sequential(nn.Conv2d(shape[0], features, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(features, features, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(features, features, 3, padding=1))  # fmt: skip

    def _check(self, x: Tensor, cond: Tensor | None, what: str = "input") -> tuple[Tensor, Tensor | None]:
        """The batch, and the encoder's features of the low-res condition ``[N, *low_res_shape]``."""
        x = super()._check(x, None, what)[0]
        if cond is None:
            raise ValueError("SRFlow: needs the low-resolution image as its condition")
        if not isinstance(cond, Tensor) or tuple(cond.shape) != (len(x), *self.low_res_shape):
            shown = list(cond.shape) if isinstance(cond, Tensor) else type(cond).__name__
            raise ValueError(f"SRFlow: the low-resolution image must be [{len(x)}, "
                             f"{', '.join(map(str, self.low_res_shape))}], got {shown}")  # fmt: skip
        if not torch.isfinite(cond).all():
            raise ValueError("SRFlow: the low-resolution image contains NaN or infinite values")
        return x, self.encoder(cond.to(self._param))

    def low_res(self, x: Tensor) -> Tensor:
        """``u = avgpool_r(x)`` of a high-resolution batch (checked)."""
        check_input(x, self.input_shape, model=type(self).__name__)
        return downsample(x.to(self._param), self.factor)

    def log_prob(self, x: Tensor, low_res: Tensor | None = None) -> Tensor:
        """``log p(x | u)`` in nats, ``[N]``; ``u`` defaults to ``x``'s own downsampled image."""
        return super().log_prob(x, self.low_res(x) if low_res is None else low_res)

    def loss(self, x: Tensor, low_res: Tensor | None = None) -> Tensor:
        return -self.log_prob(x, low_res).mean()

    def encode(self, x: Tensor, low_res: Tensor | None = None) -> Tensor:
        """``z = f(x; g(u))``, ``u`` defaulting to ``x``'s downsampled image."""
        return super().encode(x, self.low_res(x) if low_res is None else low_res)

    def decode(self, z: Tensor, low_res: Tensor) -> Tensor:
        """``x = f^{-1}(z; g(u))``."""
        return super().decode(z, low_res)

    @torch.no_grad()
    def sample(self, n: int, temperature: float = 1.0, low_res: Tensor | None = None) -> Tensor:
        """``n`` high-resolution samples for ``low_res`` (``[n, *low_res_shape]``, or one image for all ``n``)."""
        if low_res is None:
            raise ValueError("SRFlow: sampling needs low_res, the low-resolution image(s) to super-resolve")
        if isinstance(low_res, Tensor) and low_res.ndim == 4 and len(low_res) == 1:
            low_res = low_res.expand(n, -1, -1, -1)
        return super().sample(n, temperature, low_res)

    @torch.no_grad()
    def super_resolve(self, low_res: Tensor, n_samples: int = 8, temperature: float = 0.8) -> Tensor:
        """``n_samples`` high-resolution images per low-resolution input: ``[N, n_samples, C, H, W]``."""
        if not isinstance(low_res, Tensor) or low_res.ndim != 4:
            raise ValueError(f"SRFlow: low_res must be [N, {', '.join(map(str, self.low_res_shape))}]")
        repeated = low_res.repeat_interleave(n_samples, dim=0)
        return self.sample(len(repeated), temperature, repeated).view(len(low_res), n_samples, *self.input_shape)
