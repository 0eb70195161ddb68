"""Variational dequantization (Ho et al. 2019, Flow++): learn the noise that spreads each pixel over its bin.

Uniform dequantization (``dequantize.py``) bounds the discrete likelihood with ``u ~ U[0, 1)^D``; the bound is
tight only where the model's density is flat across every bin. With any density ``q(u | k)`` on ``[0, 1)^D``
(importance sampling, then Jensen):

    log P(k) = log E_{u ~ q}[ p_Y((k + u) / L) L^{-D} / q(u | k) ]
            >= E_{u ~ q}[ log p_Y((k + u) / L) - log q(u | k) ] - D log L,

with equality when ``q(u | k)`` is ``p_Y`` restricted to the bin, so the model and ``q`` are trained together on
this bound. ``q`` is itself a conditional flow: ``eps ~ N(0, I)``, ``h = g(eps; x)``, ``u = sigmoid(h)``, and

    log q(u | k) = log N(eps) - log |det dh/deps| - sum_i log sigmoid'(h_i),

with ``g`` SRFlow's conditional layers (``srflow.py``): an affine injector ``h = exp(s(x)) * eps + b(x)`` (a
per-pixel location and scale read off the image) then affine couplings whose networks see the other half of the
noise and the image's features (checkerboard masks for images, halves of the features for vectors, which run as
``(D, 1, 1)`` images).

    flow = Glow((1, 8, 8), n_bins=17, dequantization="variational"); fit(flow, train, val)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.flows.coupling import SCALE_BOUND, channel_mask, checkerboard_mask
from generative.flows.flow import LOG_2PI, Transform
from generative.flows.srflow import AffineInjector, FeatureAffineCoupling

__all__ = ["VariationalDequantizer"]


def _as_image(shape: tuple[int, ...]) -> tuple[int, int, int]:
    return shape if len(shape) == 3 else (shape[0], 1, 1)


def _mask(image_shape: tuple[int, int, int], parity: int) -> Tensor:
    c, h, w = image_shape
    return checkerboard_mask(image_shape, parity) if h * w > 1 else channel_mask(image_shape, parity)


class VariationalDequantizer(nn.Module):
    """``q(u | k)`` over ``[0, 1)^D`` for data of ``input_shape`` (``(D,)`` or ``(C, H, W)``), pixels ``x = k/(L-1)``.

    Args:
        input_shape: the data's shape.
        couplings: affine couplings after the injector (0 for a single-pixel vector, which has nothing to couple).
        hidden: channels of the injector's and couplings' networks.
        features: channels of the image encoder whose features condition every layer.
        scale_bound: ``B`` of the bounded log-scales.
    """

    def __init__(self, input_shape: Sequence[int], couplings: int = 4, hidden: int = 32, features: int = 16,
                 scale_bound: float = SCALE_BOUND) -> None:  # fmt: skip
        super().__init__()
        self.input_shape = tuple(int(d) for d in input_shape)
        if len(self.input_shape) not in (1, 3):
            raise ValueError(f"VariationalDequantizer: input_shape must be (D,) or (C, H, W), got {self.input_shape}")
        image = _as_image(self.input_shape)
        if image[0] * image[1] * image[2] == 1:
            couplings = 0  # one value: the injector alone is the whole conditional map
        self.encoder = nn.Sequential(nn.Conv2d(image[0], features, 3, padding=1), nn.ReLU(),
                                     nn.Conv2d(features, features, 3, padding=1))  # fmt: skip
        layers: list[Transform] = [AffineInjector(image[0], features, hidden, scale_bound)]
        layers += [FeatureAffineCoupling(_mask(image, k % 2), features, hidden, scale_bound) for k in range(couplings)]
        self.layers = nn.ModuleList(layers)

    def _features(self, x: Tensor) -> Tensor:
        """The encoder's features of the pixels (centred on 0), ``[N, features, H, W]``."""
        return self.encoder(x.reshape(len(x), *_as_image(self.input_shape)) - 0.5)

    def _noise_to_logits(self, eps: Tensor, features: Tensor) -> tuple[Tensor, Tensor]:
        h, total = eps, eps.new_zeros(len(eps))
        for layer in self.layers:
            h, logabsdet = layer(h, features)
            total = total + logabsdet
        return h, total

    @staticmethod
    def _log_q(eps: Tensor, h: Tensor, logabsdet: Tensor) -> Tensor:
        log_normal = -0.5 * (eps.pow(2) + LOG_2PI).flatten(1).sum(1)
        log_sigmoid_slope = (F.logsigmoid(h) + F.logsigmoid(-h)).flatten(1).sum(1)
        return log_normal - logabsdet - log_sigmoid_slope

    def sample(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``u ~ q(. | x)`` in ``(0, 1)``, shaped like ``x``, and ``log q(u | x)`` per example (differentiable:
        the reparametrization trick trains ``q`` through the bound)."""
        features = self._features(x)
        eps = torch.randn(len(x), *_as_image(self.input_shape), device=x.device, dtype=x.dtype)
        h, logabsdet = self._noise_to_logits(eps, features)
        return torch.sigmoid(h).reshape(x.shape), self._log_q(eps, h, logabsdet)

    def log_q(self, x: Tensor, u: Tensor) -> Tensor:
        """The exact density ``log q(u | x)`` of given noise ``u`` in ``(0, 1)`` (inverting the chain)."""
        features = self._features(x)
        h = (torch.log(u) - torch.log1p(-u)).reshape(len(x), *_as_image(self.input_shape))
        eps, total = h, h.new_zeros(len(h))
        for layer in reversed(self.layers):
            eps, logabsdet = layer.inverse(eps, features)
            total = total + logabsdet
        return self._log_q(eps, h, -total)
