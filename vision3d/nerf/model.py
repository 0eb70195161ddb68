"""The radiance field ``F_theta : (x, d) -> (sigma, c)`` of NeRF, with any encoding of ``x``.

NeRF's architecture in small (Mildenhall et al. 2020, Fig. 7): the encoded position ``gamma(x)`` goes through an
MLP trunk; the density ``sigma`` is read from the trunk's features *before* the viewing direction is seen, so
geometry cannot depend on the view; then the features and the encoded direction ``gamma(d)`` pass one more layer
to the colour ``c``, which may (specular highlights)::

    h = MLP(gamma(x));   sigma = softplus(w_sigma . h);   c = sigmoid(W_c relu(W_h [h, gamma(d)]))

Softplus keeps the density positive with a gradient everywhere (mip-NeRF's choice; NeRF's ReLU can die). With a
hash-grid encoding the trunk shrinks to one small hidden layer, as in Instant-NGP, because the grid's trainable
features carry most of the capacity.

The direction enters only the colour's first layer, ``W_h [h, gamma(d)] = W_h^h h + W_h^d gamma(d)``, so the field
takes directions that broadcast against the points: the samples of a ray share their direction, and with points
``[R, S, 3]`` and directions ``[R, 1, 3]`` the direction's encoding and its share of that layer are computed once
per ray instead of once per sample (the same function, ``S`` times less of that work).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mpenv.networks import mlp
from vision3d.nerf.encodings import make_encoding


class RadianceField(nn.Module):
    """``(x [N, 3], d [N, 3] unit) -> (sigma [N], rgb [N, 3])``; any leading shape, ``d`` broadcast against ``x``."""

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
        self.trunk_width = hidden
        self.color_head = mlp(hidden + self.direction_encoding.out_dim, [color_hidden], 3)

    def density(self, x: Tensor) -> Tensor:
        """``sigma`` [N] alone, without the colour branch (occupancy-grid updates need only this)."""
        return F.softplus(self.density_head(self.features(x)).squeeze(-1))

    def features(self, x: Tensor) -> Tensor:
        """The trunk's features ``h`` [N, hidden] at points [N, 3], from which density and colour are read."""
        return self.trunk(self.position_encoding(x))

    def color(self, features: Tensor, d: Tensor) -> Tensor:
        """``c`` [..., 3] from the trunk's features [..., hidden] and unit viewing directions [..., 3] that broadcast
        against them (module docstring)."""
        return self._color(F.linear(features, self.color_head[0].weight[:, : features.shape[-1]]), d)

    def _color(self, feature_term: Tensor, d: Tensor) -> Tensor:
        """The colour from ``W_h^h h`` [..., color_hidden] and the directions: the first layer on the concatenation
        ``[h, gamma(d)]`` as two products, with no [..., hidden + dirs] copy and the direction's product at the
        directions' own (per-ray) size."""
        first, *rest = self.color_head
        hidden = feature_term + F.linear(self.direction_encoding(d), first.weight[:, self.trunk_width :], first.bias)
        for layer in rest:
            hidden = layer(hidden)
        return torch.sigmoid(hidden)

    def forward(self, x: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        """``(sigma [...], rgb [..., 3])`` at points ``x`` [..., 3] seen along ``d``, which broadcasts against
        ``x`` (e.g. ``[R, S, 3]`` samples and ``[R, 1, 3]`` ray directions)."""
        features = self.features(x)
        # The density head and the colour's feature term are one product with the stacked weights [1 + color_hidden,
        # hidden]: the features are read once, and backward gets their gradient from one product instead of an
        # outer product, a second product and a sum of the two at the features' full size.
        weight = torch.cat([self.density_head.weight, self.color_head[0].weight[:, : self.trunk_width]])
        both = F.linear(features, weight)
        return F.softplus(both[..., 0] + self.density_head.bias[0]), self._color(both[..., 1:], d)
