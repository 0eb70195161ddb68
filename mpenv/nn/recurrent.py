"""Recurrent networks -- the vanilla RNN, the LSTM and the GRU -- with backpropagation through time written by hand.

A recurrent network reads a sequence ``x_1 .. x_T`` one step at a time and carries a state from step to step. The
three layers here keep their weights in torch's layout and under torch's names (``weight_ih_l0`` [G*H, I],
``weight_hh_l0`` [G*H, H], ``bias_ih_l0`` and ``bias_hh_l0`` [G*H], the G gates stacked in torch's order), take
sequences seq-first, ``[T, N, features]`` as torch does by default (``batch_first=True``: ``[N, T, features]``), and
reproduce ``nn.RNN``, ``nn.LSTM`` and ``nn.GRU`` to rounding, forward and backward (tests/test_nn_recurrent.py). One
layer, one direction.

The vanilla (Elman) RNN::

    h_t = phi(W_hh h_{t-1} + W_xh x_t + b)        phi = tanh (the course), relu, or identity (a linear RNN)

with ``W_xh = weight_ih_l0``, ``W_hh = weight_hh_l0`` and ``b = bias_ih_l0 + bias_hh_l0`` (torch keeps two biases
where one would do; their gradients are equal).

The LSTM (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000), gates in torch's order
i, f, g, o::

    [a_i, a_f, a_g, a_o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh
    i = sigmoid(a_i)     input gate: how much of the candidate to write
    f = sigmoid(a_f)     forget gate: how much of the old cell to keep
    g = tanh(a_g)        the candidate
    o = sigmoid(a_o)     output gate: how much of the cell to show
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

The cell state is the **constant error carousel**: along it ``dc_t/dc_{t-1} = diag(f_t)`` -- no weight matrix and
no squashing derivative -- so while the forget gate stays open (``f ~ 1``) an error on ``c_t`` reaches ``c_{t-k}``
almost undiminished, however large ``k``. (The 1997 LSTM had no forget gate: ``f = 1``, the carousel exactly
constant.) A forget-gate bias of 1 (:meth:`LSTM.init_forget_bias`) starts the gate more open, ``f ~ 0.73`` rather
than 0.5; learning opens it further where memory pays, without touching a weight matrix.

The GRU (Cho et al. 2014) as torch defines it, gates r, z, n::

    r = sigmoid(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)          reset gate
    z = sigmoid(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)          update gate
    n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))       candidate; r multiplies after the matrix product
    h_t = (1 - z) * n + z * h_{t-1}

so ``z ~ 1`` copies the state: the GRU's carousel is the ``z * h_{t-1}`` term.

**Backpropagation through time.** Unrolled, the network is a T-layer feed-forward network whose layers share their
weights. With a loss ``L = sum_t L_t`` on the states, the gradient on an earlier state sums the paths from every
later loss::

    dL/dh_k = sum_{t >= k} dL_t/dh_t  prod_{j=k+1..t} dh_j/dh_{j-1}

which one backward sweep computes as ``g_T = dL_T/dh_T``, ``g_k = dL_k/dh_k + (dh_{k+1}/dh_k)^T g_{k+1}``. Every
step uses the same weights, so their gradients are sums over time of each step's own term, with ``delta_t`` the
gradient on step t's pre-activations::

    dL/dW_hh = sum_t delta_t h_{t-1}^T      dL/dW_ih = sum_t delta_t x_t^T      dL/db = sum_t delta_t

(here one matrix product over all T * N rows after the sweep).

**Vanishing and exploding gradients.** For the vanilla RNN ``dh_j/dh_{j-1} = diag(phi'(a_j)) W_hh``, so the product
over ``t - k`` steps is bounded by ``(gamma ||W_hh||_2)^(t-k)``, ``gamma = max |phi'|`` (1 for tanh): it vanishes
geometrically once the largest singular value of ``W_hh`` is below ``1/gamma`` (Pascanu et al. 2013), and can only
explode when it is above. For a linear RNN the product is ``W_hh^(t-k)``, whose norm grows or decays like
``rho^(t-k)``, rho the spectral radius (the largest ``|eigenvalue|``; Gelfand: ``||W^j||^(1/j) -> rho``), exactly
``rho^(t-k)`` when ``W_hh = rho Q`` with Q orthogonal. A tanh only shrinks the factors (``tanh' <= 1``, and small
where the units saturate), so a tanh RNN with ``rho < 1`` forgets at least as fast and one with ``rho > 1``
explodes only until it saturates. :func:`jacobian_product_norms` measures these products; the figure
docs/rnn_gradient_flow.png (benchmarks/plot_gradient_flow.py) plots them for rho = 0.8, 1.0, 1.2 and the LSTM.

**Truncated BPTT**, ``backward(..., truncate=k)``: Williams & Peng's (1990) BPTT(h) with h = k (Sutskever's
TBPTT(k1 = 1, k2 = k)), the gradients of all steps summed into one update per sequence where their online algorithm
updates the weights at every step. The error injected at step t (``dL_t/dh_t``, and at t = T the gradient on the
final state) flows back through the recurrence over k steps at most -- through steps ``t, t-1, .., t-k+1`` -- and
stops at ``h_{t-k}`` as if that state were a constant (``detach()``ed). It reaches the weights, the inputs ``x_s``
and the initial state only through those steps: ``x_s`` gets the errors injected at ``s <= t <= s+k-1``, ``h_0``
(and ``c_0``) those injected at ``t <= k``. ``k = 1`` keeps each step's own dependence on the weights; ``k >= T`` is
full BPTT. Each injected error stops at its own horizon, so this costs ``O(T k)`` cell backwards against ``O(T)`` for
the full sweep. (The common practice of detaching every k steps -- run the sequence in chunks of k and start each
chunk from the previous one's final state, detached -- is TBPTT(k1 = k, k2 = k): the error at the end of a chunk
goes back k steps, the one at its start none; here it is :meth:`forward` / :meth:`backward` on each chunk with
``h0`` the previous chunk's final state.)

One step at a time: :func:`rnn_cell`, :func:`lstm_cell` and :func:`gru_cell` are the steps the layers' forward
passes use, with their backward halves; :meth:`RNN.step` (and ``LSTM.step``, ``GRU.step``) run one step with a
layer's weights, for an agent that carries the hidden state from one environment step to the next. They are plain
torch expressions, so autograd goes through them if the weights require gradients; the layers' ``forward`` and
``backward`` run without autograd.

**Restarts inside a sequence**, ``forward(..., reset=mask)``: an agent's rollout of T steps holds the end of one
episode and the start of the next, and the new episode must not see the old one's memory. Where ``reset[t, n]`` is
true, sequence n enters step t from the zero state instead of ``h_{t-1}``; backward, the error stops there, as the
state it would flow into was replaced by a constant. One forward over the whole rollout then equals separate forwards
over its episodes (a test checks it against torch run episode by episode).

**As a torch module**, :class:`RecurrentModule`: the layer's weights become ``nn.Parameter``s, and autograd's
backward pass through the module is the hand-written BPTT above, so a network around it (an encoder before, heads
after) trains with any ``torch.optim`` optimizer -- the recurrent A2C of ``agents.actor_critic`` does.

Shapes: ``x`` ``[T, N, I]``, outputs ``[T, N, H]`` (the states ``h_1 .. h_T``), states ``[N, H]`` (torch's ``h_n`` is
``[num_layers, N, H]``: here one layer, so ``h_n[0]``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import NamedTuple, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "RecurrentModule",
    "GRUCache",
    "LSTMCache",
    "RNNCache",
    "clip_grad_norm",
    "gru_cell",
    "gru_cell_backward",
    "jacobian_product_norms",
    "lstm_cell",
    "lstm_cell_backward",
    "rnn_cell",
    "rnn_cell_backward",
]

NONLINEARITIES = ("tanh", "relu", "identity")


# ----------------------------------------------------------------------------------------------------------------
# One step: the cells and their backward halves.
#
# A cell's backward takes the gradient on its new state and returns the gradient on its pre-activations (from
# which the layer builds the weight and input gradients, all steps at once) and on its previous state.


class RNNCache(NamedTuple):
    """What :func:`rnn_cell_backward` needs: the previous state (for ``dL/dW_hh``) and the new one (``phi'`` is a
    function of the output for tanh, relu and identity)."""

    h_prev: Tensor
    h: Tensor


def _phi(a: Tensor, nonlinearity: str) -> Tensor:
    if nonlinearity == "tanh":
        return torch.tanh(a)
    if nonlinearity == "relu":
        return torch.relu(a)
    return a


def _phi_prime(h: Tensor, nonlinearity: str) -> Tensor:
    """``phi'(a)`` written with ``h = phi(a)``: tanh' = 1 - h^2; relu' = [h > 0] (0 at a = 0, as torch); 1."""
    if nonlinearity == "tanh":
        return 1 - h * h
    if nonlinearity == "relu":
        return (h > 0).to(h.dtype)
    return torch.ones_like(h)


def _check_nonlinearity(nonlinearity: str) -> None:
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"unknown nonlinearity {nonlinearity!r}; expected one of {NONLINEARITIES}")


def rnn_cell(
    x_t: Tensor,
    h: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
    nonlinearity: str = "tanh",
) -> tuple[Tensor, RNNCache]:
    """One vanilla RNN step ``h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``: ``x_t`` [N, I], ``h`` [N, H] ->
    (``h_t`` [N, H], cache)."""
    _check_nonlinearity(nonlinearity)
    h_new = _phi(F.linear(x_t, weight_ih, bias_ih) + F.linear(h, weight_hh, bias_hh), nonlinearity)
    return h_new, RNNCache(h, h_new)


def rnn_cell_backward(
    grad_h: Tensor, cache: RNNCache, weight_hh: Tensor, nonlinearity: str = "tanh"
) -> tuple[Tensor, Tensor]:
    """The gradient on the pre-activation ``a_t`` and on ``h_{t-1}``, from the gradient on ``h_t``::

    delta_t = dL/dh_t * phi'(a_t)        dL/dh_{t-1} = W_hh^T delta_t   (row vectors: delta_t @ W_hh)
    """
    grad_a = grad_h * _phi_prime(cache.h, nonlinearity)
    return grad_a, grad_a @ weight_hh


class LSTMCache(NamedTuple):
    """The previous state and the gates of one LSTM step (``tanh_c = tanh(c_t)``), for :func:`lstm_cell_backward`."""

    h_prev: Tensor
    c_prev: Tensor
    i: Tensor
    f: Tensor
    g: Tensor
    o: Tensor
    tanh_c: Tensor


def lstm_cell(
    x_t: Tensor,
    h: Tensor,
    c: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
) -> tuple[Tensor, Tensor, LSTMCache]:
    """One LSTM step (gates i, f, g, o as torch stacks them): ``x_t`` [N, I], ``h``, ``c`` [N, H] -> (``h_t``,
    ``c_t``, cache)."""
    a_i, a_f, a_g, a_o = (F.linear(x_t, weight_ih, bias_ih) + F.linear(h, weight_hh, bias_hh)).chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
    c_new = f * c + i * g
    tanh_c = torch.tanh(c_new)
    return o * tanh_c, c_new, LSTMCache(h, c, i, f, g, o, tanh_c)


def lstm_cell_backward(
    grad_h: Tensor, grad_c: Tensor, cache: LSTMCache, weight_hh: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The gradient on the four gates' pre-activations [N, 4H] and on ``h_{t-1}`` and ``c_{t-1}``, from the
    gradients on ``h_t`` and ``c_t``::

        dL/dc_t  += dL/dh_t * o * (1 - tanh(c_t)^2)       c_t reaches the loss directly and through h_t
        dL/do     = dL/dh_t * tanh(c_t)
        dL/di     = dL/dc_t * g        dL/dg = dL/dc_t * i        dL/df = dL/dc_t * c_{t-1}
        dL/dc_{t-1} = dL/dc_t * f                                  the carousel: no matrix, no squashing
        dL/dh_{t-1} = W_hh^T delta_t
    """
    h_prev, c_prev, i, f, g, o, tanh_c = cache
    grad_c = grad_c + grad_h * o * (1 - tanh_c * tanh_c)
    grad_a = torch.cat(
        [
            grad_c * g * i * (1 - i),  # sigmoid' = s (1 - s)
            grad_c * c_prev * f * (1 - f),
            grad_c * i * (1 - g * g),  # tanh' = 1 - tanh^2
            grad_h * tanh_c * o * (1 - o),
        ],
        dim=-1,
    )
    return grad_a, grad_a @ weight_hh, grad_c * f


class GRUCache(NamedTuple):
    """The previous state, the gates and ``hn = W_hn h_{t-1} + b_hn`` of one GRU step, for
    :func:`gru_cell_backward`."""

    h_prev: Tensor
    r: Tensor
    z: Tensor
    n: Tensor
    hn: Tensor


def gru_cell(
    x_t: Tensor,
    h: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor | None = None,
    bias_hh: Tensor | None = None,
) -> tuple[Tensor, GRUCache]:
    """One GRU step (gates r, z, n as torch stacks them): ``x_t`` [N, I], ``h`` [N, H] -> (``h_t``, cache)."""
    x_r, x_z, x_n = F.linear(x_t, weight_ih, bias_ih).chunk(3, dim=-1)
    h_r, h_z, h_n = F.linear(h, weight_hh, bias_hh).chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h, GRUCache(h, r, z, n, h_n)


def gru_cell_backward(grad_h: Tensor, cache: GRUCache, weight_hh: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The gradients on the input side's pre-activations ``W_ih x_t + b_ih`` [N, 3H], on the recurrent side's
    ``W_hh h_{t-1} + b_hh`` [N, 3H] and on ``h_{t-1}``. The two sides differ in the n block only, where ``r``
    multiplies the recurrent side::

        dL/dn = dL/dh_t * (1 - z)     dL/dz = dL/dh_t * (h_{t-1} - n)     direct: dL/dh_{t-1} += dL/dh_t * z
        delta_n = dL/dn * (1 - n^2)   -> input side delta_n, recurrent side r * delta_n,  dL/dr = delta_n * hn
    """
    h_prev, r, z, n, hn = cache
    grad_n = grad_h * (1 - z) * (1 - n * n)
    grad_r = grad_n * hn * r * (1 - r)
    grad_z = grad_h * (h_prev - n) * z * (1 - z)
    grad_x_side = torch.cat([grad_r, grad_z, grad_n], dim=-1)
    grad_h_side = torch.cat([grad_r, grad_z, grad_n * r], dim=-1)
    return grad_x_side, grad_h_side, grad_h * z + grad_h_side @ weight_hh


# ----------------------------------------------------------------------------------------------------------------
# The layers: the same loop over time for all three; each defines its cell, its cell's backward and its one-step
# Jacobian.

State = tuple[Tensor, ...]  # (h,) for the RNN and the GRU, (h, c) for the LSTM
Layer = TypeVar("Layer", bound="_Recurrent")


class _Recurrent:
    """Weights, validation, the loop over time and BPTT; the subclasses supply one step forward and backward."""

    num_gates: int = 1  # G: the weights stack G blocks of H rows
    state_names: tuple[str, ...] = ("h",)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        *,
        batch_first: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.input_size, self.hidden_size, self.bias, self.batch_first = input_size, hidden_size, bias, batch_first
        # torch's initialization: every weight and bias U(-1/sqrt(H), 1/sqrt(H)), drawn here in torch's order
        bound = 1 / math.sqrt(hidden_size)
        rows = self.num_gates * hidden_size
        shapes = {"weight_ih_l0": (rows, input_size), "weight_hh_l0": (rows, hidden_size)}
        if bias:
            shapes |= {"bias_ih_l0": (rows,), "bias_hh_l0": (rows,)}
        self._names = tuple(shapes)
        for name, shape in shapes.items():
            u = torch.rand(shape, generator=generator, dtype=dtype, device=device)
            setattr(self, name, (2 * u - 1) * bound)
        self._saved: tuple[Tensor, list[NamedTuple]] | None = None

    # -- weights --------------------------------------------------------------------------------------------

    weight_ih_l0: Tensor
    weight_hh_l0: Tensor
    bias_ih_l0: Tensor | None = None
    bias_hh_l0: Tensor | None = None

    def parameters(self) -> dict[str, Tensor]:
        """The weights by torch's names, in torch's order; the tensors themselves (an optimizer updates them)."""
        return {name: getattr(self, name) for name in self._names}

    def state_dict(self) -> dict[str, Tensor]:
        return {name: t.detach().clone() for name, t in self.parameters().items()}

    def load_state_dict(self, state_dict: Mapping[str, Tensor]) -> None:
        """Copy weights in place (keeping this layer's dtype and device) from a torch module's ``state_dict()``."""
        if set(state_dict) != set(self._names):
            raise ValueError(f"expected the keys {sorted(self._names)}, got {sorted(state_dict)}")
        for name, value in state_dict.items():
            mine = getattr(self, name)
            if tuple(value.shape) != tuple(mine.shape):
                raise ValueError(f"{name} has shape {tuple(value.shape)}, this layer's has {tuple(mine.shape)}")
            with torch.no_grad():
                mine.copy_(value)

    @classmethod
    def from_torch(cls: type[Layer], module: torch.nn.RNNBase) -> Layer:
        """A layer with the weights (copied), sizes, bias and ``batch_first`` of a one-layer, one-direction
        ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU``."""
        expected = {"RNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[cls.__name__]
        if not isinstance(module, expected):
            raise ValueError(f"{cls.__name__}.from_torch needs a torch.nn.{cls.__name__}, got {type(module).__name__}")
        if module.num_layers != 1 or module.bidirectional or getattr(module, "proj_size", 0):
            raise ValueError("only one layer, one direction and no projection are supported")
        weight = module.weight_ih_l0
        kwargs = {"nonlinearity": module.nonlinearity} if cls is RNN else {}
        layer = cls(module.input_size, module.hidden_size, bias=module.bias, dtype=weight.dtype, **kwargs,
                    batch_first=module.batch_first, device=weight.device)  # fmt: skip
        layer.load_state_dict(module.state_dict())
        return layer

    def __repr__(self) -> str:
        extra = f", nonlinearity={self.nonlinearity!r}" if isinstance(self, RNN) else ""
        return (f"{type(self).__name__}(input_size={self.input_size}, hidden_size={self.hidden_size}{extra}, "
                f"bias={self.bias}, batch_first={self.batch_first})")  # fmt: skip

    # -- one step (the subclasses) --------------------------------------------------------------------------

    def _cell(self, x_t: Tensor, state: State) -> tuple[State, NamedTuple]:
        raise NotImplementedError

    def _cell_backward(self, grad_state: State, cache: NamedTuple) -> tuple[Tensor, Tensor, State]:
        """-> (gradient on the input side's pre-activations, on the recurrent side's, on the previous state)."""
        raise NotImplementedError

    def _state_jacobian(self, cache: NamedTuple) -> Tensor:
        """d state_t / d state_{t-1} [N, S, S], the state flattened as ``(h, c)``."""
        raise NotImplementedError

    # -- validation -----------------------------------------------------------------------------------------

    def _check_input(self, x: Tensor) -> Tensor:
        """``x`` as [T, N, I] (transposed from [N, T, I] if ``batch_first``)."""
        layout = "[N, T, I]" if self.batch_first else "[T, N, I]"
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"x has shape {tuple(x.shape)}, but {type(self).__name__} expects {layout} with "
                             f"I = input_size = {self.input_size}")  # fmt: skip
        x = x.transpose(0, 1) if self.batch_first else x
        if x.shape[0] == 0:
            raise ValueError(f"x has shape {tuple(x.shape)}: the sequence is empty")
        return x

    def _initial_state(self, given: tuple[Tensor | None, ...], x: Tensor) -> State:
        batch, expected = x.shape[1], (x.shape[1], self.hidden_size)
        state = []
        for name, s in zip(self.state_names, given, strict=True):
            if s is None:
                s = x.new_zeros(expected)
            elif tuple(s.shape) != expected:
                raise ValueError(f"{name}0 has shape {tuple(s.shape)}, expected [N, H] = {expected} for x of shape "
                                 f"{tuple(x.shape)} (N = {batch}) and hidden_size = {self.hidden_size}")  # fmt: skip
            state.append(s)
        return tuple(state)

    def _check_grad(self, name: str, grad: Tensor | None, expected: tuple[int, ...], like: Tensor) -> Tensor:
        if grad is None:
            return like.new_zeros(expected)
        if tuple(grad.shape) != expected:
            raise ValueError(f"{name} has shape {tuple(grad.shape)}, expected {expected}")
        return grad

    # -- the sequence ---------------------------------------------------------------------------------------

    def _check_reset(self, reset: Tensor | None, x: Tensor) -> Tensor | None:
        """``reset`` as a [T, N, 1] float mask of the states kept (0 where a sequence restarts), or None."""
        if reset is None:
            return None
        layout = "[N, T]" if self.batch_first else "[T, N]"
        expected = tuple(x.shape[1::-1]) if self.batch_first else tuple(x.shape[:2])
        if tuple(reset.shape) != expected or reset.dtype != torch.bool:
            raise ValueError(f"reset must be a bool tensor of shape {layout} = {expected} for x of shape "
                             f"{tuple(x.shape)}, got {reset.dtype} {tuple(reset.shape)}")  # fmt: skip
        reset = reset.T if self.batch_first else reset
        return (~reset).to(x.dtype)[:, :, None]

    def _run(self, x: Tensor, state0: State, keep: Tensor | None = None) -> tuple[Tensor, State, list[NamedTuple]]:
        outputs, caches, state = [], [], state0
        for t, x_t in enumerate(x):
            if keep is not None:  # a restarting sequence enters step t from the zero state
                state = tuple(s * keep[t] for s in state)
            state, cache = self._cell(x_t, state)
            outputs.append(state[0])
            caches.append(cache)
        return torch.stack(outputs), state, caches

    @torch.no_grad()
    def _forward(self, x: Tensor, given: tuple[Tensor | None, ...], reset: Tensor | None = None
                 ) -> tuple[Tensor, State]:
        x = self._check_input(x)
        keep = self._check_reset(reset, x)
        outputs, state, caches = self._run(x, self._initial_state(given, x), keep)
        self._saved = (x, caches, keep)  # for backward
        return (outputs.transpose(0, 1) if self.batch_first else outputs), state

    @torch.no_grad()
    def _backward(
        self,
        grad_outputs: Tensor | None,
        grad_final: tuple[Tensor | None, ...],
        truncate: int | None,
        saved: tuple[Tensor, list[NamedTuple], Tensor | None] | None = None,
    ) -> tuple[Tensor, State, dict[str, Tensor]]:
        saved = self._saved if saved is None else saved
        if saved is None:
            raise RuntimeError("backward needs a forward first (it uses the forward's intermediate values)")
        if truncate is not None and (isinstance(truncate, bool) or not isinstance(truncate, int) or truncate < 1):
            raise ValueError(f"truncate must be None or a positive integer, got {truncate!r}")
        x, caches, keep = saved
        T, N = x.shape[:2]
        H, G = self.hidden_size, self.num_gates * self.hidden_size
        shape = (N, T, H) if self.batch_first else (T, N, H)
        grad_outputs = self._check_grad("grad_outputs", grad_outputs, shape, x)
        if self.batch_first:
            grad_outputs = grad_outputs.transpose(0, 1)
        grad_final = tuple(self._check_grad(f"the gradient on {s}_n", g, (N, H), x)
                           for s, g in zip(self.state_names, grad_final, strict=True))  # fmt: skip
        zero = x.new_zeros(N, H)

        def injected(t: int) -> State:
            """The error injected at step t: the output's gradient, and at the last step the final state's."""
            grad = (grad_outputs[t],) + (zero,) * (len(self.state_names) - 1)
            return tuple(a + b for a, b in zip(grad, grad_final, strict=True)) if t == T - 1 else grad

        def step_back(grad: State, t: int) -> tuple[Tensor, Tensor, State]:
            """Step t's backward; at a restart the error stops: the state entering step t was zero, not h_{t-1}."""
            dx, dh, grad = self._cell_backward(grad, caches[t])
            return dx, dh, grad if keep is None else tuple(g * keep[t] for g in grad)

        grad_x_side = [x.new_zeros(N, G) for _ in range(T)]  # delta_t, the input side's pre-activations
        grad_h_side = [x.new_zeros(N, G) for _ in range(T)]  # and the recurrent side's (the GRU's n block differs)
        if truncate is None or truncate >= T:
            # full BPTT: one sweep, g_t = injected_t + (d state_{t+1} / d state_t)^T g_{t+1}
            grad = tuple(zero for _ in self.state_names)
            for t in reversed(range(T)):
                grad = tuple(a + b for a, b in zip(grad, injected(t), strict=True))
                grad_x_side[t], grad_h_side[t], grad = step_back(grad, t)
            grad_state0 = grad
        else:
            # TBPTT(k): each injected error separately through steps t, .., t-k+1, then dropped at h_{t-k}
            grad_state0 = tuple(zero for _ in self.state_names)
            for t in reversed(range(T)):
                grad = injected(t)
                for s in range(t, max(t - truncate, -1), -1):
                    dx, dh, grad = step_back(grad, s)
                    grad_x_side[s] = grad_x_side[s] + dx
                    grad_h_side[s] = grad_h_side[s] + dh
                if t - truncate < 0:  # this error's window reached step 1: what is left lands on the initial state
                    grad_state0 = tuple(a + b for a, b in zip(grad_state0, grad, strict=True))

        # the weights are shared by every step: their gradients sum over time (and batch), one product each
        delta_x, delta_h = torch.stack(grad_x_side), torch.stack(grad_h_side)  # [T, N, G]
        h_prev = torch.stack([cache.h_prev for cache in caches])  # [T, N, H]: h_0 .. h_{T-1}
        grads = {
            "weight_ih_l0": delta_x.reshape(-1, G).T @ x.reshape(-1, self.input_size),
            "weight_hh_l0": delta_h.reshape(-1, G).T @ h_prev.reshape(-1, H),
        }
        if self.bias:
            grads["bias_ih_l0"] = delta_x.sum((0, 1))
            grads["bias_hh_l0"] = delta_h.sum((0, 1))
        grad_x = delta_x @ self.weight_ih_l0
        return (grad_x.transpose(0, 1) if self.batch_first else grad_x), grad_state0, grads


class RNN(_Recurrent):
    """The vanilla RNN, ``h_t = phi(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)``, as ``torch.nn.RNN`` (one layer).

    ``nonlinearity``: ``"tanh"`` or ``"relu"`` (as torch), or ``"identity"`` (a linear RNN, for the theory).

        rnn = RNN(3, 16, generator=torch.Generator().manual_seed(0))
        out, h_n = rnn.forward(x)                          # x [T, N, 3] -> [T, N, 16], [N, 16]
        grad_x, grad_h0, grads = rnn.backward(grad_out)    # grads["weight_hh_l0"], ...
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        nonlinearity: str = "tanh",
        bias: bool = True,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        *,
        batch_first: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        _check_nonlinearity(nonlinearity)
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, generator, dtype, batch_first=batch_first, device=device)

    def _cell(self, x_t: Tensor, state: State) -> tuple[State, RNNCache]:
        h, cache = rnn_cell(x_t, state[0], self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0, self.bias_hh_l0,
                            self.nonlinearity)  # fmt: skip
        return (h,), cache

    def _cell_backward(self, grad_state: State, cache: RNNCache) -> tuple[Tensor, Tensor, State]:
        grad_a, grad_h = rnn_cell_backward(grad_state[0], cache, self.weight_hh_l0, self.nonlinearity)
        return grad_a, grad_a, (grad_h,)

    def _state_jacobian(self, cache: RNNCache) -> Tensor:
        # dh_t/dh_{t-1} = diag(phi'(a_t)) W_hh: row i of W_hh scaled by phi'(a_t)_i
        return _phi_prime(cache.h, self.nonlinearity)[:, :, None] * self.weight_hh_l0

    def step(self, x_t: Tensor, h: Tensor | None = None) -> Tensor:
        """One step with this layer's weights: ``x_t`` [N, I], ``h`` [N, H] (zeros if None) -> ``h_t`` [N, H]."""
        h = x_t.new_zeros(x_t.shape[0], self.hidden_size) if h is None else h
        return self._cell(x_t, (h,))[0][0]

    def forward(self, x: Tensor, h0: Tensor | None = None, reset: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``x`` [T, N, I], ``h0`` [N, H] (zeros if None) -> (outputs ``h_1 .. h_T`` [T, N, H], ``h_T`` [N, H]).
        ``reset`` [T, N] bool: sequence n restarts from the zero state at step t (module docstring). Keeps what
        :meth:`backward` needs."""
        outputs, (h_n,) = self._forward(x, (h0,), reset)
        return outputs, h_n

    __call__ = forward

    def backward(
        self, grad_outputs: Tensor | None, grad_final_state: Tensor | None = None, truncate: int | None = None
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """BPTT of the last :meth:`forward`: the gradients on the outputs [T, N, H] and on ``h_n`` [N, H] (None:
        zero) -> (``grad_x`` [T, N, I], ``grad_h0`` [N, H], ``{weight name: gradient}``). ``truncate=k``:
        Williams & Peng's TBPTT(k) (module docstring)."""
        grad_x, (grad_h0,), grads = self._backward(grad_outputs, (grad_final_state,), truncate)
        return grad_x, grad_h0, grads


class LSTM(_Recurrent):
    """The LSTM, as ``torch.nn.LSTM`` (one layer, no projection): gates i, f, g, o; ``c_t = f*c_{t-1} + i*g``,
    ``h_t = o*tanh(c_t)``.

        out, (h_n, c_n) = lstm.forward(x)                                  # x [T, N, I]
        grad_x, grad_h0, grad_c0, grads = lstm.backward(grad_out, (grad_h_n, grad_c_n))
    """

    num_gates = 4
    state_names = ("h", "c")

    def init_forget_bias(self, value: float = 1.0) -> None:
        """Set the forget gate's total bias to ``value`` (``bias_ih`` to ``value``, ``bias_hh`` to 0 on the f
        block): with 1, ``f ~ sigmoid(1) = 0.73`` at the start and the carousel carries errors further (Gers et
        al. 2000; Jozefowicz et al. 2015)."""
        if not self.bias:
            raise ValueError("this LSTM has no biases (bias=False)")
        f_block = slice(self.hidden_size, 2 * self.hidden_size)
        with torch.no_grad():
            self.bias_ih_l0[f_block] = value
            self.bias_hh_l0[f_block] = 0.0

    def _cell(self, x_t: Tensor, state: State) -> tuple[State, LSTMCache]:
        h, c, cache = lstm_cell(x_t, *state, self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0, self.bias_hh_l0)
        return (h, c), cache

    def _cell_backward(self, grad_state: State, cache: LSTMCache) -> tuple[Tensor, Tensor, State]:
        grad_a, grad_h, grad_c = lstm_cell_backward(*grad_state, cache, self.weight_hh_l0)
        return grad_a, grad_a, (grad_h, grad_c)

    def _state_jacobian(self, cache: LSTMCache) -> Tensor:
        # the blocks of d(h_t, c_t)/d(h_{t-1}, c_{t-1}); diag(v) W is v[:, :, None] * W
        _, c_prev, i, f, g, o, tanh_c = cache
        w_i, w_f, w_g, w_o = self.weight_hh_l0.chunk(4, dim=0)
        dtanh_c = o * (1 - tanh_c * tanh_c)  # dh_t/dc_t, diagonal
        dc_dh = (
            (g * i * (1 - i))[:, :, None] * w_i
            + (c_prev * f * (1 - f))[:, :, None] * w_f
            + (i * (1 - g * g))[:, :, None] * w_g
        )
        dc_dc = torch.diag_embed(f)  # the carousel
        dh_dh = (tanh_c * o * (1 - o))[:, :, None] * w_o + dtanh_c[:, :, None] * dc_dh
        dh_dc = torch.diag_embed(dtanh_c * f)
        return torch.cat([torch.cat([dh_dh, dh_dc], dim=2), torch.cat([dc_dh, dc_dc], dim=2)], dim=1)

    def step(self, x_t: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """One step with this layer's weights: ``x_t`` [N, I], ``state = (h, c)`` [N, H] each (zeros if None) ->
        ``(h_t, c_t)``."""
        if state is None:
            zero = x_t.new_zeros(x_t.shape[0], self.hidden_size)
            state = (zero, zero)
        return self._cell(x_t, state)[0]

    def forward(
        self, x: Tensor, h0: Tensor | None = None, c0: Tensor | None = None, reset: Tensor | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``x`` [T, N, I], ``h0``, ``c0`` [N, H] (zeros if None) -> (outputs ``h_1 .. h_T`` [T, N, H],
        ``(h_T, c_T)``). ``reset`` [T, N] bool: sequence n restarts from zero ``(h, c)`` at step t. Keeps what
        :meth:`backward` needs."""
        outputs, (h_n, c_n) = self._forward(x, (h0, c0), reset)
        return outputs, (h_n, c_n)

    __call__ = forward

    def backward(
        self,
        grad_outputs: Tensor | None,
        grad_final_state: tuple[Tensor | None, Tensor | None] | None = None,
        truncate: int | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
        """BPTT of the last :meth:`forward`: the gradients on the outputs [T, N, H] and on ``(h_n, c_n)`` (None,
        or either None: zero) -> (``grad_x``, ``grad_h0``, ``grad_c0``, ``{weight name: gradient}``).
        ``truncate=k``: Williams & Peng's TBPTT(k) on the whole state (h, c) (module docstring)."""
        grad_final = (None, None) if grad_final_state is None else tuple(grad_final_state)
        grad_x, (grad_h0, grad_c0), grads = self._backward(grad_outputs, grad_final, truncate)
        return grad_x, grad_h0, grad_c0, grads


class GRU(_Recurrent):
    """The GRU, as ``torch.nn.GRU`` (one layer): gates r, z, n; ``h_t = (1-z)*n + z*h_{t-1}``. Same interface as
    :class:`RNN`."""

    num_gates = 3

    def _cell(self, x_t: Tensor, state: State) -> tuple[State, GRUCache]:
        h, cache = gru_cell(x_t, state[0], self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0, self.bias_hh_l0)
        return (h,), cache

    def _cell_backward(self, grad_state: State, cache: GRUCache) -> tuple[Tensor, Tensor, State]:
        grad_x_side, grad_h_side, grad_h = gru_cell_backward(grad_state[0], cache, self.weight_hh_l0)
        return grad_x_side, grad_h_side, (grad_h,)

    def _state_jacobian(self, cache: GRUCache) -> Tensor:
        # dh_t/dh_{t-1} = diag(z) + diag(h_{t-1} - n) dz/dh + diag(1 - z) dn/dh, with
        # dz/dh = diag(z(1-z)) W_hz,  dn/dh = diag(1 - n^2) (diag(r) W_hn + diag(hn) dr/dh),  dr/dh = diag(r(1-r)) W_hr
        h_prev, r, z, n, hn = cache
        w_r, w_z, w_n = self.weight_hh_l0.chunk(3, dim=0)
        dr_dh = (r * (1 - r))[:, :, None] * w_r
        dz_dh = (z * (1 - z))[:, :, None] * w_z
        dn_dh = (1 - n * n)[:, :, None] * (r[:, :, None] * w_n + hn[:, :, None] * dr_dh)
        return torch.diag_embed(z) + (h_prev - n)[:, :, None] * dz_dh + (1 - z)[:, :, None] * dn_dh

    # One state, h, as the RNN: the same step, forward and backward.
    step, forward, backward = RNN.step, RNN.forward, RNN.backward
    __call__ = forward


# ----------------------------------------------------------------------------------------------------------------
# The hand-written BPTT inside autograd


class _HandBPTT(torch.autograd.Function):
    """Forward: the layer's loop over time; backward: its BPTT. Inputs after the layer, ``truncate`` and the keep
    mask: ``x``, the initial state's tensors, then the weights in the layer's order."""

    @staticmethod
    def forward(ctx, layer: _Recurrent, truncate: int | None, keep: Tensor | None, x: Tensor, *tensors: Tensor):
        n_states = len(layer.state_names)
        outputs, state, caches = layer._run(x, tuple(tensors[:n_states]), keep)
        ctx.layer, ctx.truncate, ctx.saved = layer, truncate, (x, caches, keep)
        return (outputs, *state)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_outputs: Tensor, *grad_final: Tensor):
        layer = ctx.layer
        grad_x, grad_state0, grads = layer._backward(grad_outputs, grad_final, ctx.truncate, ctx.saved)
        ctx.saved = None  # the caches hold T steps of activations: free them now
        return (None, None, None, grad_x, *grad_state0, *(grads[name] for name in layer._names))


class RecurrentModule(torch.nn.Module):
    """A hand-written :class:`RNN`, :class:`LSTM` or :class:`GRU` as a ``torch.nn.Module``: the layer's weights are
    registered as parameters (under torch's names), and gradients through :meth:`forward` come from the layer's own
    BPTT -- truncated to ``truncate`` steps if given -- not from autograd's tape of the loop.

        core = RecurrentModule(LSTM(8, 32))
        out, (h, c) = core(x, state, reset=starts)      # x [T, N, 8]; state None or (h0, c0); reset [T, N] bool
        loss(out).backward()                            # the hand-written BPTT fills core.weight_hh_l0.grad, ...

    Sequences are seq-first, ``[T, N, I]``. Moving the module (``.to``) moves the layer's weights with it, since they
    are the same tensors.
    """

    def __init__(self, layer: RNN | LSTM | GRU, truncate: int | None = None) -> None:
        super().__init__()
        if not isinstance(layer, _Recurrent):
            raise ValueError(f"RecurrentModule wraps an mpenv.nn RNN, LSTM or GRU, got {type(layer).__name__}")
        if layer.batch_first:
            raise ValueError("RecurrentModule takes seq-first layers ([T, N, I]): make it with batch_first=False")
        if truncate is not None and (isinstance(truncate, bool) or not isinstance(truncate, int) or truncate < 1):
            raise ValueError(f"truncate must be None or a positive integer, got {truncate!r}")
        self.layer, self.truncate = layer, truncate
        for name, tensor in layer.parameters().items():
            parameter = torch.nn.Parameter(tensor)
            self.register_parameter(name, parameter)
            setattr(layer, name, parameter)  # the layer computes with the parameters themselves

    @property
    def hidden_size(self) -> int:
        return self.layer.hidden_size

    def initial_state(self, batch: int, like: Tensor) -> tuple[Tensor, ...]:
        """The zero state for ``batch`` sequences, as a tuple (``(h,)``, or the LSTM's ``(h, c)``)."""
        return tuple(like.new_zeros(batch, self.layer.hidden_size) for _ in self.layer.state_names)

    def forward(
        self, x: Tensor, state: tuple[Tensor, ...] | None = None, reset: Tensor | None = None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """``x`` [T, N, I], ``state`` a tuple of [N, H] tensors (None: zeros), ``reset`` [T, N] bool -> (outputs
        [T, N, H], the final state as a tuple)."""
        layer = self.layer
        x = layer._check_input(x)
        given = (None,) * len(layer.state_names) if state is None else tuple(state)
        if len(given) != len(layer.state_names):
            raise ValueError(f"{type(layer).__name__} takes a state of {len(layer.state_names)} tensors "
                             f"{layer.state_names}, got {len(given)}")  # fmt: skip
        state0 = layer._initial_state(given, x)
        keep = layer._check_reset(reset, x)
        outputs, *final = _HandBPTT.apply(layer, self.truncate, keep, x, *state0, *layer.parameters().values())
        return outputs, tuple(final)


# ----------------------------------------------------------------------------------------------------------------
# Gradient clipping and the Jacobian products


@torch.no_grad()
def clip_grad_norm(grads: Mapping[str, Tensor] | Iterable[Tensor], max_norm: float) -> float:
    """Scale the gradients in place so that their global L2 norm ``sqrt(sum_i ||g_i||^2)`` is at most ``max_norm``;
    return the norm before clipping.

    Clipping by the global norm keeps the update's direction and only bounds its length, the remedy for exploding
    gradients (Pascanu et al. 2013). As ``torch.nn.utils.clip_grad_norm_``: the factor is
    ``min(1, max_norm / (norm + 1e-6))`` (the 1e-6 keeps a zero gradient finite), the same for every tensor.
    """
    tensors = [g for g in (grads.values() if isinstance(grads, Mapping) else grads) if g is not None]
    if not tensors:
        return 0.0
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in tensors]))
    scale = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    for g in tensors:
        g.mul_(scale.to(g.dtype))
    return float(norm)


@torch.no_grad()
def jacobian_product_norms(
    model: RNN | LSTM | GRU,
    x: Tensor,
    h0: Tensor | tuple[Tensor, Tensor] | None = None,
    ord: int | str = 2,
    of: str | None = None,
) -> Tensor:
    """How much of a change of the state at step ``T - j`` is left at the last step T: ``||d s_T / d s_{T-j}||``
    for ``j = 0 .. T``, from the hand-written one-step Jacobians (no autograd).

    ``x`` [T, N, I] (or [N, T, I] if the model is ``batch_first``), ``h0`` the initial state as for ``forward``
    (the LSTM's: ``(h0, c0)``) -> [T + 1, N], row j the norm for each sequence; ``j = 0`` is the identity (norm 1
    with ``ord=2``) and ``j = T`` is ``d s_T / d s_0``. ``ord``: 2 the spectral norm (the largest singular value:
    the most any unit change of ``s_{T-j}`` can move ``s_T``), ``"fro"`` the Frobenius norm.

    The product is ``J_T J_{T-1} .. J_{T-j+1}`` of the one-step Jacobians ``J_t = d s_t / d s_{t-1}`` along the
    sequence's own trajectory: the vanilla RNN's ``diag(phi'(a_t)) W_hh`` (module docstring: for a linear RNN with
    ``W_hh = rho Q``, exactly ``rho^j``); the GRU's ``dh_t/dh_{t-1}``; the LSTM's 2H x 2H Jacobian of ``(h, c)``.
    ``of`` picks the block whose norm is returned: ``"h"`` (the RNN's and the GRU's default), ``"c"``
    (``d c_T / d c_{T-j}`` along every path, the LSTM's default: the carousel), or ``"state"`` (the whole (h, c)).
    """
    default = "c" if isinstance(model, LSTM) else "h"
    of = default if of is None else of
    allowed = ("h", "c", "state") if isinstance(model, LSTM) else ("h", "state")
    if of not in allowed:
        raise ValueError(f"of={of!r}: expected one of {allowed} for {type(model).__name__}")
    given = tuple(h0) if isinstance(h0, tuple) else (h0,) + (None,) * (len(model.state_names) - 1)
    x = model._check_input(x)
    _, _, caches = model._run(x, model._initial_state(given, x))
    H = model.hidden_size
    block = {"h": slice(0, H), "c": slice(H, 2 * H), "state": slice(None)}[of]

    product = None  # d s_T / d s_{T-j}, built by multiplying earlier Jacobians on the right
    norms = []
    for j in range(len(caches) + 1):
        if j == 0:
            size = len(model.state_names) * H
            product = torch.eye(size, dtype=x.dtype, device=x.device).expand(x.shape[1], size, size)
        else:
            product = product @ model._state_jacobian(caches[-j])
        norms.append(torch.linalg.matrix_norm(product[:, block, block], ord=ord))
    return torch.stack(norms)
