"""Masked autoencoder for distribution estimation (MADE; Germain, Gregor, Murray & Larochelle, 2015).

An autoencoder ``x -> h^1 -> ... -> h^L -> l`` becomes an autoregressive model once the edges that would let
output ``i`` see inputs not before ``i`` are removed. Give every unit a degree ``m``:

    m^0(d) = rank of input d in the ordering o            (0 .. D-1)
    m^l(k) ~ Uniform{min_k' m^{l-1}(k'), ..., D-2}          hidden unit k of layer l
    M^l[k, k'] = 1[m^l(k) >= m^{l-1}(k')]                   hidden layers: see at most what the inputs see
    M^out[d, k] = 1[m^0(d) > m^L(k)]                        output d: only units of strictly lower degree

Then ``h^l = relu((W^l * M^l) h^{l-1} + b^l)`` and ``l = (W^out * M^out) h^L + b^out`` give all ``D``
conditionals of ``p(x) = prod_i p(x_{o(i)} | x_{o(<i)})`` in one pass.

Several orderings (``num_orderings = K``): each ordering ``o_k`` comes with its own degrees, hence its own
masks over the same weights. Training is order-agnostic: each ``loss`` call in training mode uses one of the
``K`` mask sets at random, so the weights learn every ordering at once. ``log_prob`` is the exact
likelihood of the uniform mixture, ``log p(x) = logsumexp_k log p_k(x) - log K`` (an ensemble, which the
paper found better than any single ordering), and ``sample`` draws a component, then samples in its order.

    m = MADE((1, 8, 8)); nll = -m.log_prob(test).mean(); x = m.sample(16)
    m = MADE((1, 8, 8), num_orderings=8)          # order-agnostic training, an 8-ordering ensemble
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from generative.autoregressive.base import AutoregressiveModel, MaskedLinear, sample_in_order
from generative.common import bernoulli_log_prob
from mpenv.device import draw_device

__all__ = ["MADE"]


class MADE(AutoregressiveModel):
    """MADE over binary ``x`` of ``input_shape``.

    Args:
        input_shape: ``(D,)`` or ``(C, H, W)``; inputs in {0, 1}.
        hidden_sizes: widths of the hidden layers.
        num_orderings: ``K`` orderings (and connectivities) trained order-agnostically; ``K = 1`` is plain MADE.
        natural_ordering: the first ordering is the raster order of ``x.flatten(1)``; the others are random.
        seed: seeds the orderings and degrees, so a model rebuilt with the same arguments has the same masks.
    """

    def __init__(self, input_shape: Sequence[int], hidden_sizes: Sequence[int] = (256,), num_orderings: int = 1,
                 natural_ordering: bool = True, seed: int = 0) -> None:  # fmt: skip
        super().__init__(input_shape)
        if num_orderings < 1:
            raise ValueError(f"MADE: num_orderings must be >= 1, got {num_orderings}")
        d = self.event_size
        sizes = [d, *hidden_sizes, d]
        self.layers = nn.ModuleList(MaskedLinear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.num_orderings = num_orderings

        generator = torch.Generator().manual_seed(seed)
        orders, masks = [], [[] for _ in self.layers]
        for k in range(num_orderings):
            order = torch.arange(d) if (k == 0 and natural_ordering) else torch.randperm(d, generator=generator)
            orders.append(order)
            for layer_masks, mask in zip(masks, self._masks(order, hidden_sizes, generator), strict=True):
                layer_masks.append(mask)
        self.register_buffer("orders", torch.stack(orders))  # [K, D]
        for i, layer_masks in enumerate(masks):
            self.register_buffer(f"masks_{i}", torch.stack(layer_masks))  # [K, out, in]
        for layer, mask in zip(self.layers, self._masks_of(0), strict=True):
            layer.set_mask(mask)  # the layers' own masks: the first ordering

    @staticmethod
    def _masks(order: Tensor, hidden_sizes: Sequence[int], generator: torch.Generator) -> list[Tensor]:
        """The masks of one ordering: degrees per unit, then ``M = 1[m_out >= m_in]`` (``>`` for the outputs)."""
        d = order.numel()
        rank = torch.empty(d, dtype=torch.long)
        rank[order] = torch.arange(d)  # m^0(d): position of input d in the ordering
        degrees = [rank]
        for width in hidden_sizes:
            low = int(degrees[-1].min())
            # Degree D-1 would connect to nothing (no output has a larger rank), so it is never drawn.
            degrees.append(torch.randint(low, max(d - 1, low + 1), (width,), generator=generator))
        pairs = zip(degrees[:-1], degrees[1:], strict=True)
        masks = [(m_out[:, None] >= m_in[None, :]).float() for m_in, m_out in pairs]
        masks.append((rank[:, None] > degrees[-1][None, :]).float())
        return masks

    def _masks_of(self, k: int) -> list[Tensor]:
        """The masks of ordering ``k``, one per layer."""
        return [getattr(self, f"masks_{i}")[k] for i in range(len(self.layers))]

    def ordering(self, k: int = 0) -> Tensor:
        return self.orders[k].cpu()

    def logits(self, x: Tensor, k: int = 0) -> Tensor:
        """The conditionals' logits under ordering ``k``."""
        # Masks go in per call: copying them into the layers in place would break backward through log_prob.
        masks = self._masks_of(k)
        h = x.flatten(1)
        for layer, mask in zip(self.layers[:-1], masks[:-1], strict=True):
            h = torch.relu(layer(h, mask))
        return self.layers[-1](h, masks[-1]).view_as(x)

    def log_prob(self, x: Tensor) -> Tensor:
        x = self._check(x)
        per_order = torch.stack([bernoulli_log_prob(self.logits(x, k), x) for k in range(self.num_orderings)])
        return torch.logsumexp(per_order, dim=0) - math.log(self.num_orderings)

    def loss(self, x: Tensor) -> Tensor:
        """Mean NLL in nats; in training mode with ``K > 1``, under one ordering drawn at random (order-agnostic)."""
        if not (self.training and self.num_orderings > 1):
            return -self.log_prob(x).mean()
        x = self._check(x)
        k = int(torch.randint(self.num_orderings, ()))
        return -bernoulli_log_prob(self.logits(x, k), x).mean()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw a mixture component per sample, then sample each group in its component's ordering."""
        u = self._uniforms(n, generator)
        source = draw_device(generator, u.device)  # a CPU generator may drive a GPU model
        component = torch.randint(self.num_orderings, (n,), generator=generator, device=source).to(u.device)
        x = torch.zeros_like(u).view(n, *self.input_shape)
        for k in range(self.num_orderings):
            rows = component == k
            if rows.any():
                x[rows] = sample_in_order(lambda z, k=k: self.logits(z, k), u[rows], self.ordering(k),
                                          self.input_shape)  # fmt: skip
        return x
