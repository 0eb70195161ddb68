"""The radiance field ``F_theta : (x, d) -> (sigma, c)`` of NeRF, with any encoding of ``x``.

NeRF's architecture in small (Mildenhall et al. 2020, Fig. 7): the encoded position ``gamma(x)`` goes through an
MLP trunk; the density ``sigma`` is read from the trunk's features *before* the viewing direction is seen, so
geometry cannot depend on the view; then the features and the encoded direction ``gamma(d)`` pass one more layer
to the colour ``c``, which may (specular highlights)::

    h = MLP(gamma(x));   sigma = softplus(w_sigma . h);   c = sigmoid(W_c relu(W_h [h, gamma(d)]))

Softplus keeps the density positive with a gradient everywhere (mip-NeRF's choice; NeRF's ReLU can die). With a
hash-grid encoding the trunk shrinks to one small hidden layer, as in Instant-NGP, because the grid's trainable
features carry most of the capacity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mpenv.networks import mlp
from vision3d.nerf.encodings import make_encoding


class RadianceField(nn.Module):
    """``(x [N, 3], d [N, 3] unit) -> (sigma [N], rgb [N, 3])``."""

    def __init__(
        self,
        encoding: str = "positional",
        encoding_kwargs: dict | None = None,
        direction_frequencies: int = 4,
        hidden: int = 128,
        depth: int = 4,
        color_hidden: int = 64,
    ) -> None:
        super().__init__()
        self.position_encoding = make_encoding(encoding, 3, **(encoding_kwargs or {}))
        self.direction_encoding = make_encoding("positional", 3, n_frequencies=direction_frequencies)
        self.trunk = mlp(self.position_encoding.out_dim, [hidden] * depth)
        self.density_head = nn.Linear(hidden, 1)
        self.color_head = mlp(hidden + self.direction_encoding.out_dim, [color_hidden], 3)

    def density(self, x: Tensor) -> Tensor:
        """``sigma`` [N] alone, without the colour branch (occupancy-grid updates need only this)."""
        return F.softplus(self.density_head(self.features(x)).squeeze(-1))

    def features(self, x: Tensor) -> Tensor:
        """The trunk's features ``h`` [N, hidden] at points [N, 3], from which density and colour are read."""
        return self.trunk(self.position_encoding(x))

    def color(self, features: Tensor, d: Tensor) -> Tensor:
        """``c`` [N, 3] from the trunk's features and unit viewing directions [N, 3]."""
        return torch.sigmoid(self.color_head(torch.cat([features, self.direction_encoding(d)], dim=-1)))

    def forward(self, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        features = self.features(x)
        return F.softplus(self.density_head(features).squeeze(-1)), self.color(features, d)
