"""Normalizing flows: exact likelihoods through the change of variables, and a latent space both ways.

| piece | file | what |
| --- | --- | --- |
| Transform, Flow, Inverse | ``flow.py`` | ``log p(x) = log p_Z(f(x)) + sum_k log|det J_k|``; any base distribution |
| AffineCoupling, AdditiveCoupling | ``coupling.py`` | RealNVP (bounded scale), NICE; image and vector masks |
| RationalQuadraticCoupling | ``spline.py`` | monotone rational-quadratic splines (Durkan et al. 2019) |
| Permutation | ``permutation.py`` | fixed: reverse or seeded random |
| ActNorm | ``actnorm.py`` | per-channel affine, data-dependent initialization (Glow) |
| InvConv1x1, LUInvConv1x1 | ``conv1x1.py`` | invertible 1x1 convolution, ``slogdet`` or ``W = P L (U + diag(s))`` |
| dequantize, quantize | ``dequantize.py`` | uniform dequantization and logit pre-processing of discrete pixels |
| VariationalDequantizer | ``variational_dequantize.py`` | learned dequantization noise ``q(u | k)`` (Flow++) |
| Squeeze | ``squeeze.py`` | ``[C, H, W] -> [4C, H/2, W/2]`` |
| Split | ``split.py`` | multi-scale: half the channels to the latent, the rest on through the deeper scales |
| RealNVP | ``realnvp.py`` | affine couplings over vectors or images |
| SplineFlow | ``spline_flow.py`` | spline couplings; the strong 2D model |
| Glow | ``glow.py`` | multi-scale: squeeze, K x [ActNorm, LU 1x1 conv, coupling], split |
| ConditionalFlow | ``conditional.py`` | ``p(x; c)``: every coupling network also sees a label or a vector ``c`` |
| SRFlow, AffineInjector | ``srflow.py`` | super-resolution: conditional Glow on a low-res image's features |
| CFlow | ``cflow.py`` | two flows, the second conditioned on the first's latent (C-Flow) |
| load_digits_flow, load_toy_flow | ``pretrained.py`` | the shipped Glows, C-Flow (digits), spline flow (checkerboard) |

Every transform: ``forward(x, cond=None) -> (y, logabsdet [N])`` (data -> latent) and the exact
``inverse(y, cond=None) -> (x, logabsdet)``. Every model: ``Model(input_shape, ...)``, ``log_prob(x)`` (nats),
``loss(x)``, ``sample(n, temperature=1.0)``, ``encode(x)``, ``decode(z)``; trained by ``generative.fit.fit``.
"""

from generative.flows.actnorm import ActNorm
from generative.flows.cflow import CFlow
from generative.flows.conditional import ConditionalFlow
from generative.flows.conv1x1 import InvConv1x1, LUInvConv1x1
from generative.flows.coupling import (
    AdditiveCoupling,
    AffineCoupling,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
)
from generative.flows.flow import Flow, Inverse, Transform
from generative.flows.glow import Glow
from generative.flows.permutation import Permutation
from generative.flows.pretrained import DIGITS_FLOWS, TOY_FLOWS, load_digits_flow, load_toy_flow, shipped_flow_dir
from generative.flows.realnvp import RealNVP
from generative.flows.spline import RationalQuadraticCoupling, rational_quadratic_spline
from generative.flows.spline_flow import SplineFlow
from generative.flows.split import Split
from generative.flows.squeeze import Squeeze
from generative.flows.srflow import AffineInjector, FeatureAffineCoupling, SRFlow
from generative.flows.variational_dequantize import VariationalDequantizer

__all__ = ["DIGITS_FLOWS", "TOY_FLOWS", "ActNorm", "AdditiveCoupling", "AffineCoupling", "AffineInjector", "CFlow",
           "ConditionalFlow", "FeatureAffineCoupling", "Flow", "Glow", "InvConv1x1", "Inverse", "LUInvConv1x1",
           "Permutation", "RationalQuadraticCoupling", "RealNVP", "SRFlow", "SplineFlow", "Split", "Squeeze",
           "Transform", "VariationalDequantizer",
           "alternating_mask", "channel_mask", "checkerboard_mask", "load_digits_flow", "load_toy_flow",
           "rational_quadratic_spline", "shipped_flow_dir"]  # fmt: skip
