"""A causal self-attention transformer over pixel sequences (decoder-only, as GPT; Vaswani et al., 2017).

The values are a sequence ``x_1 .. x_D`` (an image in raster order) and ``p(x) = prod_t p(x_t | x_<t)``.
Position ``t`` reads ``x_{t-1}`` (a learned start vector at ``t = 1``) plus a sinusoidal positional encoding

    e_t = W_e x_{t-1} + b_e + PE_t,    PE_{t,2k} = sin(t / 10000^{2k/d}),  PE_{t,2k+1} = cos(t / 10000^{2k/d}),

and every layer applies masked multi-head self-attention and an MLP, each with a residual and a pre-norm:

    head_h = softmax(Q_h K_h^T / sqrt(d_h) + M) V_h,    M_ts = 0 if s <= t else -inf
    A(h)  = concat(head_1 .. head_H) W_O,    Q_h = LN(h) W_Q^h, K_h = LN(h) W_K^h, V_h = LN(h) W_V^h
    h <- h + A(h);  h <- h + MLP(LN(h));    p(x_t = 1 | x_<t) = sigma(w^T LN(h_t) + b)

The mask ``M`` gives zero weight to every later position, so output ``t`` depends on ``x_1 .. x_{t-1}``
only: one pass scores all ``D`` conditionals.

**KV cache.** Keys and values of position ``s`` depend only on positions ``<= s``, so they do not change once
computed. Sampling step ``t`` pushes one new position through the network, appends its keys and values to
each layer's cache and attends over the cache: the projections and MLPs cost ``O(1)`` per step (``O(D)`` in
all) instead of rerunning the whole sequence (``O(D)`` per step, ``O(D^2)`` in all); only the attention
dot products over the cache grow with ``t`` (``O(D^2)`` in all, against the naive loop's ``O(D^3)``).

    m = CausalTransformer((1, 8, 8)); nll = m.loss(x); x = m.sample(16); x = m.sample(16, cached=False)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generative.autoregressive.base import AutoregressiveModel

__all__ = ["CausalTransformer"]


def sinusoidal_positions(length: int, dim: int) -> Tensor:
    """``PE [length, dim]``: ``sin`` on even and ``cos`` on odd features, wavelengths ``2 pi .. 10000 * 2 pi``."""
    position = torch.arange(length, dtype=torch.float64)[:, None]
    frequency = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    pe = torch.zeros(length, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(position * frequency)
    pe[:, 1::2] = torch.cos(position * frequency)
    return pe.float()


class CausalSelfAttention(nn.Module):
    """Multi-head ``softmax(Q K^T / sqrt(d_h) + M) V`` with the causal mask ``M``, and a cached one-step form."""

    def __init__(self, d_model: int, n_heads: int, max_len: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of n_heads ({n_heads})")
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)  # W_Q, W_K, W_V of all heads in one product
        self.out = nn.Linear(d_model, d_model)  # W_O
        # M_ts = -inf for s > t: additive, so softmax gives exactly zero weight to the future.
        self.register_buffer("M", torch.full((max_len, max_len), float("-inf")).triu(diagonal=1))

    def _heads(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``h [N, T, d]`` -> ``Q, K, V`` each ``[N, H, T, d_h]``."""
        n, t, _ = h.shape
        q, k, v = self.qkv(h).view(n, t, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        return q, k, v

    def forward(self, h: Tensor) -> Tensor:
        n, t, d = h.shape
        q, k, v = self._heads(h)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head) + self.M[:t, :t]
        heads = torch.softmax(scores, dim=-1) @ v  # [N, H, T, d_h]
        return self.out(heads.transpose(1, 2).reshape(n, t, d))

    def step(self, h: Tensor, cache: tuple[Tensor, Tensor], t: int) -> Tensor:
        """Position ``t`` only (``h [N, 1, d]``): write its key and value into ``cache`` ``[N, H, D, d_h]`` and
        attend over positions ``0..t`` (all in the past or present, so no mask is needed)."""
        n, _, d = h.shape
        q, k, v = self._heads(h)
        keys, values = cache
        keys[:, :, t : t + 1], values[:, :, t : t + 1] = k, v
        scores = q @ keys[:, :, : t + 1].transpose(-2, -1) / math.sqrt(self.d_head)
        heads = torch.softmax(scores, dim=-1) @ values[:, :, : t + 1]
        return self.out(heads.transpose(1, 2).reshape(n, 1, d))


class Block(nn.Module):
    """Pre-norm transformer block: ``h + A(LN(h))``, then ``h + MLP(LN(h))``."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, max_len: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.attention = CausalSelfAttention(d_model, n_heads, max_len)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model))

    def forward(self, h: Tensor, cache: tuple[Tensor, Tensor] | None = None, t: int = 0) -> Tensor:
        a = self.norm1(h)
        h = h + (self.attention(a) if cache is None else self.attention.step(a, cache, t))
        return h + self.mlp(self.norm2(h))


class CausalTransformer(AutoregressiveModel):
    """Decoder-only transformer over binary ``x`` of ``input_shape`` in raster order.

    Args:
        input_shape: ``(D,)`` or ``(C, H, W)``; inputs in {0, 1}.
        d_model: width ``d`` (even: sin/cos pairs).
        n_heads: attention heads ``H`` (``d_h = d / H``).
        n_layers: transformer blocks.
        d_ff: hidden width of the MLPs.
    """

    def __init__(self, input_shape: Sequence[int], d_model: int = 64, n_heads: int = 4, n_layers: int = 2,
                 d_ff: int = 128) -> None:  # fmt: skip
        super().__init__(input_shape)
        if d_model % 2:
            raise ValueError(f"CausalTransformer: d_model must be even, got {d_model}")
        length = self.event_size
        self.start = nn.Parameter(torch.randn(d_model) * 0.02)  # the input at t = 1, before any value
        self.value_embedding = nn.Linear(1, d_model)  # W_e x + b_e: linear, so the logits are smooth in x
        self.register_buffer("PE", sinusoidal_positions(length, d_model))
        self.blocks = nn.ModuleList(Block(d_model, n_heads, d_ff, length) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 1)

    def _embed(self, previous: Tensor, t0: int) -> Tensor:
        """``previous [N, T]`` (values at positions ``t0-1 ..``; the start vector where ``t = 0``) -> ``[N, T, d]``."""
        e = self.value_embedding(previous[..., None])
        if t0 == 0:
            e = torch.cat([self.start.expand(e.shape[0], 1, -1), e[:, 1:]], dim=1)
        return e + self.PE[t0 : t0 + e.shape[1]]

    def logits(self, x: Tensor) -> Tensor:
        seq = x.flatten(1)
        h = self._embed(F.pad(seq, (1, 0))[:, :-1], 0)  # position t reads x_{t-1}
        for block in self.blocks:
            h = block(h)
        return self.head(self.norm(h)).view_as(x)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, cached: bool = True) -> Tensor:
        """``n`` samples; ``cached=True`` uses the KV cache, ``False`` the naive loop (same uniforms, same result)."""
        if not cached:
            return super().sample(n, generator)
        u = self._uniforms(n, generator)
        x = torch.zeros_like(u)
        first = self.blocks[0].attention
        shape = (n, first.n_heads, self.event_size, first.d_head)
        caches = [(u.new_zeros(shape), u.new_zeros(shape)) for _ in self.blocks]
        previous = u.new_zeros(n, 1)
        for t in range(self.event_size):
            h = self._embed(previous, t)
            for block, cache in zip(self.blocks, caches, strict=True):
                h = block(h, cache, t)
            p = torch.sigmoid(self.head(self.norm(h))[:, 0, 0])
            x[:, t] = (u[:, t] < p).to(x)
            previous = x[:, t : t + 1]
        return x.view(n, *self.input_shape)
