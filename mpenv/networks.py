"""Network builders shared by the packages (agents, generative, vision3d): one implementation each.

    from mpenv.networks import mlp
    net = mlp(64, (256, 256), 10)                                   # Linear-ReLU-Linear-ReLU-Linear
    features = mlp(4, (64, 64), activation=nn.Tanh, init=layer_init)  # ends with the last Tanh

Importing this module imports torch; ``import mpenv`` does not import it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["mlp", "polyak_update"]

LayerInit = Callable[[nn.Linear], nn.Module]


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int | None = None, activation: type[nn.Module] = nn.ReLU,
        init: LayerInit | None = None, out_init: LayerInit | None = None) -> nn.Sequential:  # fmt: skip
    """``in_dim -> hidden[0] -> ... -> hidden[-1] (-> out_dim)`` with ``activation`` after every hidden layer.

    With ``out_dim`` the last layer is linear with no activation (logits, means, codes, values); without it the
    network ends with the last hidden activation (a feature extractor). ``hidden=()`` with ``out_dim`` is one
    linear map. ``init`` (hidden layers) and ``out_init`` (the output layer; default ``init``) re-initialise each
    ``nn.Linear`` as soon as it is built, so a seeded network draws its weights layer by layer in order; ``None``
    keeps torch's default initialisation.
    """
    init = init if init is not None else _keep
    out_init = out_init if out_init is not None else init
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [init(nn.Linear(in_dim, width)), activation()]
        in_dim = width
    if out_dim is not None:
        layers.append(out_init(nn.Linear(in_dim, out_dim)))
    return nn.Sequential(*layers)


def _keep(layer: nn.Linear) -> nn.Linear:
    return layer


def polyak_update(target: nn.Module, source: nn.Module, tau: float, copy_buffers: bool = False) -> None:
    """``theta_target <- (1 - tau) theta_target + tau theta`` (a DQN target network, an EMA of weights with
    ``tau = 1 - decay``); ``copy_buffers`` also copies buffers (batch-norm statistics) as they are."""
    with torch.no_grad():
        for target_param, param in zip(target.parameters(), source.parameters(), strict=True):
            target_param.lerp_(param, tau)
        if copy_buffers:
            for target_buffer, buffer in zip(target.buffers(), source.buffers(), strict=True):
                target_buffer.copy_(buffer)
