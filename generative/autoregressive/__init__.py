"""Autoregressive models with exact likelihoods: ``p(x) = prod_i p(x_i | x_<i)``.

| model | file | conditionals |
| --- | --- | --- |
| FVSBN | ``fvsbn.py`` | logistic regression on ``x_<i`` |
| NADE | ``nade.py`` | one hidden layer with shared weights, ``O(HD)`` running sum |
| MADE | ``made.py`` | masked MLP; several orderings, order-agnostic training |
| PixelCNN | ``pixelcnn.py`` | masked convolutions, type A/B, R -> G -> B channel masks |
| GatedPixelCNN | ``pixelcnn.py`` | gated vertical and horizontal stacks: no blind spot |
| WaveNet | ``wavenet.py`` | dilated causal convolutions; cached (fast-wavenet) sampling |
| CausalTransformer | ``transformer.py`` | masked multi-head self-attention; KV-cached sampling |

Every model: ``Model(input_shape, ...)``, ``log_prob(x) [N]`` (nats), ``loss(x)`` (mean NLL), ``sample(n)``;
inputs in {0, 1}. Shared pieces (masked layers, the sampling loop) are in ``base.py``.
"""

from generative.autoregressive.base import AutoregressiveModel, MaskedConv2d, MaskedLinear
from generative.autoregressive.fvsbn import FVSBN
from generative.autoregressive.made import MADE
from generative.autoregressive.nade import NADE
from generative.autoregressive.pixelcnn import GatedPixelCNN, PixelCNN
from generative.autoregressive.transformer import CausalTransformer
from generative.autoregressive.wavenet import WaveNet

__all__ = ["FVSBN", "MADE", "NADE", "AutoregressiveModel", "CausalTransformer", "GatedPixelCNN", "MaskedConv2d",
           "MaskedLinear", "PixelCNN", "WaveNet"]  # fmt: skip
