"""A multilayer perceptron with a hand-written backward pass: the delta recursion of backpropagation.

An MLP with layer sizes ``[n_0, n_1, ..., n_L]`` maps a batch ``x [N, n_0]`` through ``L`` affine layers, each
followed by an elementwise activation (``f`` on the hidden layers, ``g`` on the output)::

    a_0 = x
    z_l = a_{l-1} W_l^T + b_l           W_l [n_l, n_{l-1}],  b_l [n_l]        (row l of the batch: z = W a + b)
    a_l = f(z_l)   for l < L,           a_L = g(z_L)   (the output; g = identity gives logits or a regression)

The forward pass keeps every ``z_l`` and ``a_l``. Given the gradient of the loss with respect to the output,
``dL/da_L``, the backward pass walks the layers from the top down with the error signal ``delta_l = dL/dz_l``::

    delta_L = dL/da_L * g'(z_L)
    delta_l = (delta_{l+1} W_{l+1}) * f'(z_l)                    (per sample: (W_{l+1}^T delta_{l+1}) * f'(z_l))
    dL/dW_l = delta_l^T a_{l-1}        = sum_i delta_{l,i} a_{l-1,i}^T
    dL/db_l = sum_i delta_{l,i}
    dL/dx   = delta_1 W_1

(``*`` elementwise; the sums over the batch appear because the same weights serve every sample). Each ``W_l``
is used once, so the whole gradient costs about twice the forward pass: that is all backpropagation is.

Initialization keeps the activations' variance from growing or dying with depth: He (Kaiming) normal,
``W ~ N(0, 2 / n_in)``, for the ReLU family (relu, leaky_relu, gelu), which zero about half their inputs;
Glorot (Xavier) normal, ``W ~ N(0, 2 / (n_in + n_out))``, for the others (sigmoid, tanh, softplus, identity),
which are close to linear around 0. Biases start at 0.

:func:`fit` trains with this backward pass: the gradients are written into the parameters' ``.grad`` and a
``torch.optim`` optimizer (plain SGD or Adam) steps them; autograd is never involved.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from mpenv.nn.activations import (
    ACTIVATIONS,
    activation,
    activation_derivative,
    bce_with_logits,
    bce_with_logits_backward,
    cross_entropy_with_logits,
    cross_entropy_with_logits_backward,
)

__all__ = ["LOSSES", "MLP", "fit"]

HE_ACTIVATIONS = ("relu", "leaky_relu", "gelu")  # zero about half the inputs: He initialization
LOSSES = ("mse", "cross_entropy", "bce")

# The torch module computing each activation, for MLP.to_torch (defaults equal those of activations.py).
_TORCH_MODULES = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU,
                  "gelu": nn.GELU, "softplus": nn.Softplus, "identity": nn.Identity}  # fmt: skip


class MLP:
    """A fully connected network with sizes ``[n_0, ..., n_L]``, hidden activation ``activation`` and output
    activation ``output`` (names from :data:`mpenv.nn.activations.ACTIVATIONS`). Parameters ``weights[l]``
    (``W_{l+1}``, ``[n_{l+1}, n_l]``) and ``biases[l]`` are plain tensors, not autograd leaves."""

    def __init__(
        self,
        sizes: list[int],
        activation: str = "relu",
        output: str = "identity",
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if len(sizes) < 2 or any(int(n) < 1 for n in sizes):
            raise ValueError(f"sizes must list at least two positive layer widths, got {sizes}")
        for name in (activation, output):
            if name not in ACTIVATIONS:
                raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")
        self.sizes = [int(n) for n in sizes]
        self.activation = activation
        self.output = output
        self.weights: list[Tensor] = []
        self.biases: list[Tensor] = []
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            std = math.sqrt(2.0 / n_in) if activation in HE_ACTIVATIONS else math.sqrt(2.0 / (n_in + n_out))
            self.weights.append(torch.randn(n_out, n_in, generator=generator, dtype=dtype) * std)
            self.biases.append(torch.zeros(n_out, dtype=dtype))
        self._zs: list[Tensor] = []  # pre-activations z_1..z_L of the last forward pass
        self._activations: list[Tensor] = []  # a_0 = x, a_1..a_L

    @property
    def num_layers(self) -> int:
        return len(self.weights)

    def _layer_activation(self, layer: int) -> str:
        return self.output if layer == self.num_layers - 1 else self.activation

    # ------------------------------------------------------------------------------------------------------------
    # Forward and backward

    def forward(self, x: Tensor) -> Tensor:
        """The output ``a_L [N, n_L]`` for inputs ``x [N, n_0]``; keeps every ``z_l`` and ``a_l`` for backward."""
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"expected input of shape [N, {self.sizes[0]}], got {list(x.shape)}")
        a = x.to(self.weights[0].dtype)
        self._zs, self._activations = [], [a]
        for layer, (W, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = a @ W.T + b
            a = activation(self._layer_activation(layer), z)
            self._zs.append(z)
            self._activations.append(a)
        return a

    __call__ = forward

    def backward(self, grad_output: Tensor) -> dict[str, Tensor]:
        """The gradients of a loss given its gradient ``dL/da_L`` with respect to the last forward pass's output.

        Returns ``{"W1": dL/dW_1, "b1": dL/db_1, ..., "WL", "bL", "input": dL/dx}`` (layers numbered from 1 as in
        the module docstring) and also stores each parameter's gradient in its ``.grad``, replacing the previous
        one, so that a ``torch.optim`` optimizer over :meth:`parameters` can step."""
        if not self._zs:
            raise RuntimeError("backward needs a forward pass first")
        output = self._activations[-1]
        if grad_output.shape != output.shape:
            raise ValueError(f"expected grad_output of the output's shape {list(output.shape)}, "
                             f"got {list(grad_output.shape)}")  # fmt: skip
        grads: dict[str, Tensor] = {}
        delta = grad_output.to(output.dtype) * activation_derivative(self.output, self._zs[-1])  # delta_L
        for layer in reversed(range(self.num_layers)):
            grads[f"W{layer + 1}"] = delta.T @ self._activations[layer]  # sum over the batch of delta a^T
            grads[f"b{layer + 1}"] = delta.sum(dim=0)
            delta = delta @ self.weights[layer]  # dL/da_{l-1}: W_l^T delta_l per sample
            if layer > 0:
                delta = delta * activation_derivative(self.activation, self._zs[layer - 1])
        grads["input"] = delta
        for param, grad in self.parameters_and_grads(grads):
            param.grad = grad
        return grads

    # ------------------------------------------------------------------------------------------------------------
    # Parameters and the equivalent torch module

    def parameter_names(self) -> list[str]:
        return [f"{kind}{layer + 1}" for layer in range(self.num_layers) for kind in ("W", "b")]

    def parameters(self) -> list[Tensor]:
        """``[W_1, b_1, ..., W_L, b_L]``, the tensors themselves: updating them in place updates the network."""
        return [t for pair in zip(self.weights, self.biases, strict=True) for t in pair]

    def parameters_and_grads(self, grads: dict[str, Tensor] | None = None) -> list[tuple[Tensor, Tensor | None]]:
        """Each parameter with its gradient from ``grads`` (a :meth:`backward` result), or its ``.grad``."""
        if grads is None:
            return [(p, p.grad) for p in self.parameters()]
        return [(p, grads[name]) for p, name in zip(self.parameters(), self.parameter_names(), strict=True)]

    def to_torch(self) -> nn.Sequential:
        """An ``nn.Sequential`` of ``nn.Linear`` and activation modules computing the same function (a copy)."""
        modules: list[nn.Module] = []
        for layer, (W, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            linear = nn.Linear(W.shape[1], W.shape[0], dtype=W.dtype)
            with torch.no_grad():
                linear.weight.copy_(W)
                linear.bias.copy_(b)
            modules.append(linear)
            name = self._layer_activation(layer)
            if name != "identity":
                modules.append(_TORCH_MODULES[name]())
        return nn.Sequential(*modules)

    def load_from_torch(self, seq: nn.Sequential) -> MLP:
        """Copies the weights of the ``nn.Linear`` layers of ``seq``, in order, into this network (the activations
        are this network's own)."""
        linears = [m for m in seq if isinstance(m, nn.Linear)]
        expected = [list(W.shape) for W in self.weights]
        got = [list(m.weight.shape) for m in linears]
        if got != expected:
            raise ValueError(f"expected nn.Linear weights of shapes {expected}, got {got}")
        with torch.no_grad():
            for W, b, linear in zip(self.weights, self.biases, linears, strict=True):
                W.copy_(linear.weight)
                b.copy_(linear.bias if linear.bias is not None else torch.zeros_like(b))
        return self


# ----------------------------------------------------------------------------------------------------------------
# Training with the hand-written backward


def loss_and_gradient(loss: str, output: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """The mean loss and ``dL/doutput`` for ``loss`` in :data:`LOSSES`. ``mse`` averages ``(output - y)^2`` over
    every element; ``cross_entropy`` takes logits ``[N, K]`` and class indices ``[N]``; ``bce`` takes logits and
    targets in [0, 1] of the same shape (``[N]`` targets for ``[N, 1]`` logits are reshaped)."""
    if loss == "mse":
        y = y.reshape(output.shape).to(output.dtype)
        return ((output - y) ** 2).mean(), 2.0 * (output - y) / output.numel()
    if loss == "cross_entropy":
        return cross_entropy_with_logits(output, y), cross_entropy_with_logits_backward(output, y)
    if loss == "bce":
        y = y.reshape(output.shape)
        return bce_with_logits(output, y), bce_with_logits_backward(output, y)
    raise ValueError(f"unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")


def fit(
    mlp: MLP,
    x: Tensor,
    y: Tensor,
    loss: str = "mse",
    steps: int = 1000,
    lr: float = 1e-2,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    optimizer: str = "sgd",
) -> list[float]:
    """Trains ``mlp`` in place on ``(x, y)`` for ``steps`` updates and returns the loss before each update.

    Every step: forward, the loss's gradient (:func:`loss_and_gradient`), :meth:`MLP.backward` (which fills each
    parameter's ``.grad``), then ``torch.optim.SGD`` (plain: no momentum) or ``torch.optim.Adam`` (torch's
    defaults besides ``lr``) steps the tensors. ``batch_size=None`` is full-batch gradient descent; otherwise
    each step draws ``batch_size`` samples without replacement, from ``generator``."""
    if loss in ("cross_entropy", "bce") and mlp.output != "identity":
        raise ValueError(f"loss {loss!r} takes logits: the MLP's output activation must be 'identity', "
                         f"not {mlp.output!r}")  # fmt: skip
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"unknown optimizer {optimizer!r}; expected 'sgd' or 'adam'")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y differ in their number of samples: {list(x.shape)} and {list(y.shape)}")
    opt_class = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
    opt = opt_class(mlp.parameters(), lr=lr)
    history: list[float] = []
    for _ in range(steps):
        if batch_size is None or batch_size >= x.shape[0]:
            xb, yb = x, y
        else:
            idx = torch.randperm(x.shape[0], generator=generator)[:batch_size]
            xb, yb = x[idx], y[idx]
        value, grad_output = loss_and_gradient(loss, mlp.forward(xb), yb)
        mlp.backward(grad_output)
        opt.step()
        history.append(float(value))
    return history
