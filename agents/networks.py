"""Networks shared by the deep agents: an MLP, the Nature-DQN CNN, and an encoder chosen from the
observation space, so every agent handles vector, image and one-hot (Discrete) observations alike.

    encoder, n_features = encoder_for(env.observation_space, hidden=(64, 64))
    q_net = nn.Sequential(encoder, layer_init(nn.Linear(n_features, n_actions), std=1.0))
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from mpenv.networks import mlp as shared_mlp


def parse_hidden_sizes(text: str) -> tuple[int, ...]:
    """``"64,64"`` -> ``(64, 64)``: hidden layer widths as a config string, so a config stays a flat
    set of CLI flags."""
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise ValueError(f"hidden_sizes must be comma-separated positive layer widths like '64,64', got {text!r}")
    return widths


def layer_init(layer: nn.Module, std: float = float(np.sqrt(2)), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights with gain ``std`` and constant bias, the initialisation PPO/A2C/DQN
    implementations use: it keeps activations at a stable scale through depth."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int | None = None,
        activation: type[nn.Module] = nn.Tanh, out_std: float = 1.0) -> nn.Sequential:
    """The shared :func:`mpenv.networks.mlp` with the agents' conventions: ``activation`` (Tanh) between layers,
    every layer ``layer_init``-ed (orthogonal), the output layer with gain ``out_std``. Without ``out_dim`` the
    network ends with the last hidden activation (a feature extractor)."""
    return shared_mlp(in_dim, hidden, out_dim, activation, init=layer_init,
                      out_init=functools.partial(layer_init, std=out_std))


class NatureCNN(nn.Module):
    """The convolutional torso of Mnih et al. (2015) for image observations (H, W, C) in [0, 255]:
    three conv layers and a 512-unit linear layer. Images smaller than 36 px a side use a shallower
    stack (the 8x8 stride-4 kernel would not fit)."""

    def __init__(self, observation_shape: tuple[int, int, int], features: int = 512):
        super().__init__()
        height, width, channels = observation_shape
        if min(height, width) >= 36:
            convs = [nn.Conv2d(channels, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
                     nn.Conv2d(64, 64, 3, stride=1), nn.ReLU()]
        else:
            convs = [nn.Conv2d(channels, 32, 3, stride=1, padding=1), nn.ReLU(),
                     nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU()]
        self.convs = nn.Sequential(*[layer_init(m) if isinstance(m, nn.Conv2d) else m for m in convs], nn.Flatten())
        with torch.no_grad():
            n_flat = self.convs(torch.zeros(1, channels, height, width)).shape[1]
        self.head = nn.Sequential(layer_init(nn.Linear(n_flat, features)), nn.ReLU())
        self.features = features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # (B, H, W, C) uint8 -> (B, C, H, W) float in [0, 1]
        return self.head(self.convs(images.permute(0, 3, 1, 2).float() / 255.0))


class OneHot(nn.Module):
    """Discrete observations (integer states) as one-hot vectors, so an MLP can read them."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(states.long().reshape(-1), self.n).float()


def is_image_space(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


def encoder_for(space: gym.Space, hidden: Sequence[int] = (64, 64),
                activation: type[nn.Module] = nn.Tanh) -> tuple[nn.Module, int]:
    """A feature extractor for observations from ``space`` and its output width:
    images (uint8 H x W x C) -> NatureCNN; flat Box -> MLP; Discrete -> one-hot then MLP."""
    if is_image_space(space):
        cnn = NatureCNN(space.shape)
        return cnn, cnn.features
    if isinstance(space, gym.spaces.Discrete):
        return nn.Sequential(OneHot(int(space.n)), mlp(int(space.n), hidden, activation=activation)), hidden[-1]
    if isinstance(space, gym.spaces.Box):
        n_inputs = int(np.prod(space.shape))
        return nn.Sequential(nn.Flatten(), mlp(n_inputs, hidden, activation=activation)), hidden[-1]
    raise ValueError(
        f"no encoder for observation space {space}: deep agents take Box (vectors or uint8 images) or Discrete "
        "observations; flatten Dict/Tuple spaces with gymnasium.wrappers.FlattenObservation"
    )
