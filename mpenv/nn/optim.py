"""First-order optimizers of the course written by hand: SGD, Polyak momentum, Nesterov, AdaGrad, RMSProp, Adam, AdamW.

Every optimizer here is a ``torch.optim.Optimizer``, so it drops into any training loop (``zero_grad``,
``step(closure=None)``, ``state_dict`` / ``load_state_dict``, learning-rate schedulers, per-group hyperparameters)
and is checked step for step against torch's own (tests/test_nn_optim.py: 200 steps agree to 1e-6 in float64).
``g_t`` is the gradient at step ``t`` (counted from 1), products and squares are elementwise, and ``lambda`` is
``weight_decay``. L2 weight decay adds the gradient of ``lambda/2 ||theta||^2`` to the loss's, as torch does::

    g_t = grad L(theta_t) + lambda theta_t

**SGD** (:class:`SGD`), with **Polyak's heavy ball** when ``momentum = mu > 0``: the velocity ``v`` (``v_0 = 0``)
accumulates the past steps, so along a direction the gradient keeps pointing to the step grows to ``lr / (1 - mu)``
times the plain one, while oscillating components cancel::

    theta_{t+1} = theta_t - lr g_t                                      (mu = 0)
    v_{t+1}     = mu v_t - lr g_t,     theta_{t+1} = theta_t + v_{t+1}   (heavy ball)

torch's SGD keeps a gradient sum ``b`` instead, ``b_{t+1} = mu b_t + g_t``, ``theta_{t+1} = theta_t - lr b_{t+1}``.
With ``v_t = -lr b_t`` the two are the same recursion, so for a constant ``lr`` the iterates are identical. They part
when ``lr`` changes during training (a scheduler): the course's velocity keeps the steps taken at the old ``lr``
and fades them by ``mu``, torch's buffer is rescaled at once by the new ``lr``.

**Nesterov** (:class:`Nesterov`) evaluates the gradient where the momentum is about to carry the parameters, the
look-ahead point ``theta_t + mu v_t``, so the step corrects an overshoot before it happens::

    v_{t+1}     = mu v_t - lr grad L(theta_t + mu v_t)
    theta_{t+1} = theta_t + v_{t+1}

A training loop computes the gradient where the parameters are, so the course's form needs the loss at a point that
is not the parameters (a closure). Sutskever et al. (2013) and Bengio et al. (2013) change variables to the
look-ahead point itself, ``phi_t = theta_t + mu v_t``: then ``phi_{t+1} = theta_{t+1} + mu v_{t+1}`` gives::

    v_{t+1}   = mu v_t - lr grad L(phi_t)
    phi_{t+1} = phi_t + mu v_{t+1} - lr grad L(phi_t)

which needs the gradient at the parameters only. With ``v_t = -lr b_t`` this is torch's ``SGD(nesterov=True)``:
``b_{t+1} = mu b_t + g_t``, ``phi_{t+1} = phi_t - lr (g_t + mu b_{t+1})`` with ``g_t = grad L(phi_t) + lambda phi_t``.
``Nesterov(form="lookahead")`` runs the first recursion (``param`` holds ``theta_t``), ``form="torch"`` the second
(``param`` holds ``phi_t``); both give the same ``theta_t = phi_t - mu v_t`` (tests/test_nn_optim.py).

**AdaGrad** (:class:`AdaGrad`) divides each coordinate's step by the root of its summed squared gradients: rarely
moved coordinates keep a large step, and every step shrinks over time (like ``1/sqrt(t)`` for steady gradients)::

    r_t         = r_{t-1} + g_t^2                                        (r_0 = 0)
    theta_{t+1} = theta_t - lr g_t / (sqrt(r_t) + eps)

**RMSProp** (:class:`RMSProp`) forgets old gradients with an exponential average, so the step does not die out; with
``momentum = mu > 0`` the scaled steps go through a heavy ball (torch's ``RMSprop(centered=False)``)::

    r_t         = alpha r_{t-1} + (1 - alpha) g_t^2
    theta_{t+1} = theta_t - lr g_t / (sqrt(r_t) + eps)                     (mu = 0)
    b_{t+1}     = mu b_t + g_t / (sqrt(r_t) + eps),  theta_{t+1} = theta_t - lr b_{t+1}

**Adam** (:class:`Adam`): momentum on the gradient and RMSProp's scale together. Both averages start at 0 and are
biased towards it; dividing by ``1 - beta^t`` removes the bias (early on, ``m_t`` is ``(1 - beta1^t)`` times the
average gradient), so the first steps have size about ``lr`` instead of ``lr (1 - beta1) / sqrt(1 - beta2)``::

    m_t = beta1 m_{t-1} + (1 - beta1) g_t,        m_hat = m_t / (1 - beta1^t)
    s_t = beta2 s_{t-1} + (1 - beta2) g_t^2,      s_hat = s_t / (1 - beta2^t)
    theta_{t+1} = theta_t - lr m_hat / (sqrt(s_hat) + eps)

**AdamW** (:class:`AdamW`, Loshchilov & Hutter 2019) decouples the weight decay: in Adam the L2 term goes through
``1 / sqrt(s_hat)`` and large-gradient weights are barely decayed; AdamW shrinks every weight by the same factor
and runs Adam on the loss's gradient alone::

    theta_t <- (1 - lr lambda) theta_t,    then the Adam step with g_t = grad L(theta_t)

For **mini-batch SGD**, :func:`minibatches` shuffles the ``n`` example indices once per epoch and cuts them into
batches, so each epoch visits every example once and ``g_t`` is the mean gradient over one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor

__all__ = ["SGD", "Nesterov", "AdaGrad", "RMSProp", "Adam", "AdamW", "minibatches"]

Params = Iterable[Tensor] | Iterable[dict[str, Any]]
NESTEROV_FORMS = ("lookahead", "torch")


def _check_nonnegative(name: str, value: float) -> None:
    if not value >= 0.0:  # `not >=` also rejects NaN
        raise ValueError(f"{name} must be >= 0, got {value}")


def _check_unit_interval(name: str, value: float) -> None:
    """Averaging and momentum coefficients live in [0, 1): at 1 the past never fades (and the heavy ball diverges)."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def _check_positive(name: str, value: float) -> None:
    if not value > 0.0:
        raise ValueError(f"{name} must be > 0, got {value}")


class _Optimizer(torch.optim.Optimizer):
    """What every optimizer below shares: hyperparameter validation for every parameter group, the closure, the loop
    over the parameters that have a gradient, and L2 weight decay. A subclass writes one parameter's update."""

    l2_weight_decay = True  # False in AdamW, which decays the weights itself

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        # torch's constructor adds the groups through here too, so every group (defaults filled in) is checked
        # before it is added, and so is a group added later in training.
        self._check({**self.defaults, **param_group})
        super().add_param_group(param_group)

    def _check(self, group: dict[str, Any]) -> None:
        _check_nonnegative("lr", group["lr"])
        _check_nonnegative("weight_decay", group["weight_decay"])

    def _gradients(self, group: dict[str, Any]) -> Iterator[tuple[Tensor, Tensor]]:
        """``(param, g)`` for the parameters of ``group`` that have a gradient, with L2 decay added to ``g``."""
        for p in group["params"]:
            if p.grad is None:  # not part of this loss (a frozen layer, an unused head): nothing to do
                continue
            if p.grad.is_sparse:
                raise RuntimeError(f"{type(self).__name__} does not support sparse gradients "
                                   "(use dense gradients, e.g. nn.Embedding(sparse=False))")  # fmt: skip
            g = p.grad
            if self.l2_weight_decay and group["weight_decay"] != 0.0:
                g = g.add(p, alpha=group["weight_decay"])  # a new tensor: p.grad itself stays the loss's gradient
            yield p, g

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():  # the closure runs the forward and backward pass
                loss = closure()
        for group in self.param_groups:
            for p, g in self._gradients(group):
                self._update(p, g, self.state[p], group)
        return loss

    def _update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError


class SGD(_Optimizer):
    """Gradient descent, and Polyak's heavy ball for ``momentum > 0`` in the course's form
    ``v_{t+1} = mu v_t - lr g_t``, ``theta_{t+1} = theta_t + v_{t+1}``; ``state["velocity"]`` is ``v``.

    The iterates equal ``torch.optim.SGD(momentum=mu)``'s for a constant ``lr`` (its buffer is ``-v / lr``)."""

    def __init__(self, params: Params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    def _check(self, group: dict[str, Any]) -> None:
        super()._check(group)
        _check_unit_interval("momentum", group["momentum"])

    def _update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if group["momentum"] == 0.0:
            p.add_(g, alpha=-group["lr"])
            return
        if "velocity" not in state:
            state["velocity"] = torch.zeros_like(p)
        v = state["velocity"]
        v.mul_(group["momentum"]).add_(g, alpha=-group["lr"])
        p.add_(v)


class Nesterov(_Optimizer):
    """Nesterov's accelerated gradient, ``v_{t+1} = mu v_t - lr grad L(theta_t + mu v_t)``, in one of two forms.

    ``form="lookahead"`` (the course's): ``param`` holds ``theta_t`` between steps and ``state["velocity"]`` holds
    ``v_t``. :meth:`step` needs a closure: it moves the parameters to the look-ahead point ``theta_t + mu v_t``, calls
    the closure there (it zeroes the gradients, computes the loss, calls ``backward`` and returns the loss: the
    returned loss is the look-ahead point's), and then sets ``param`` to ``theta_{t+1} = theta_t + v_{t+1}``.

    ``form="torch"`` (Sutskever's reformulation, ``torch.optim.SGD(nesterov=True)``): ``param`` holds the look-ahead
    point ``phi_t = theta_t + mu v_t`` itself, so the gradient of an ordinary training loop is the one the method
    needs; ``state["momentum_buffer"]`` holds torch's ``b_t = -v_t / lr``. The course's iterate is
    ``theta_t = phi_t + mu lr b_t``.

    The form is one for the whole optimizer (it decides what every ``param`` means); a state dict loads into an
    optimizer of the same form."""

    def __init__(self, params: Params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 form: str = "lookahead") -> None:  # fmt: skip
        if form not in NESTEROV_FORMS:
            raise ValueError(f"form must be one of {NESTEROV_FORMS}, got {form!r}")
        self.form = form
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    def _check(self, group: dict[str, Any]) -> None:
        super()._check(group)
        _check_unit_interval("momentum", group["momentum"])

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        if self.form == "torch":
            return super().step(closure)
        if closure is None:
            raise RuntimeError(
                "Nesterov(form='lookahead') needs a closure: the gradient is taken at the look-ahead "
                "point theta + mu v, not at the parameters (form='torch' works without one)"
            )
        # Move to the look-ahead point phi = theta + mu v (v = 0 before the first step), take the gradient there.
        for group in self.param_groups:
            for p in group["params"]:
                if "velocity" in self.state.get(p, {}):  # not self.state[p]: that adds an empty state to the dict
                    p.add_(self.state[p]["velocity"], alpha=group["momentum"])
        with torch.enable_grad():
            loss = closure()
        for group in self.param_groups:
            mu, lr = group["momentum"], group["lr"]
            for p in group["params"]:
                if p.grad is None and "velocity" in self.state.get(p, {}):  # skipped, but back to its theta
                    p.sub_(self.state[p]["velocity"], alpha=mu)
            # p is phi_t here, so g = grad L(phi_t) + lambda phi_t: the decay term is looked ahead with the loss.
            for p, g in self._gradients(group):
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p)
                v = state["velocity"]
                p.sub_(v, alpha=mu)  # theta_t
                v.mul_(mu).add_(g, alpha=-lr)  # v_{t+1}
                p.add_(v)  # theta_{t+1}
        return loss

    def _update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        # form="torch" only: p is phi_t, b_{t+1} = mu b_t + g_t, phi_{t+1} = phi_t - lr (g_t + mu b_{t+1})
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p)
        b = state["momentum_buffer"]
        b.mul_(group["momentum"]).add_(g)
        p.add_(g.add(b, alpha=group["momentum"]), alpha=-group["lr"])


class AdaGrad(_Optimizer):
    """``r_t = r_{t-1} + g_t^2``, ``theta_{t+1} = theta_t - lr g_t / (sqrt(r_t) + eps)``; ``state["sum"]`` is ``r``
    (torch's ``Adagrad`` with ``lr_decay=0``, ``initial_accumulator_value=0``)."""

    def __init__(self, params: Params, lr: float = 1e-2, eps: float = 1e-10, weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay))

    def _check(self, group: dict[str, Any]) -> None:
        super()._check(group)
        _check_positive("eps", group["eps"])

    def _update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if "sum" not in state:
            state["sum"] = torch.zeros_like(p)
        r = state["sum"]
        r.addcmul_(g, g)
        p.addcdiv_(g, r.sqrt().add_(group["eps"]), value=-group["lr"])


class RMSProp(_Optimizer):
    """``r_t = alpha r_{t-1} + (1 - alpha) g_t^2``, step ``lr g_t / (sqrt(r_t) + eps)``, through a heavy ball
    ``b_{t+1} = mu b_t + g_t / (sqrt(r_t) + eps)`` when ``momentum = mu > 0``; ``state["square_avg"]`` is ``r`` and
    ``state["momentum_buffer"]`` is ``b`` (torch's ``RMSprop(centered=False)``)."""

    def __init__(self, params: Params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:  # fmt: skip
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=weight_decay))

    def _check(self, group: dict[str, Any]) -> None:
        super()._check(group)
        _check_unit_interval("alpha", group["alpha"])
        _check_positive("eps", group["eps"])
        _check_unit_interval("momentum", group["momentum"])

    def _update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if "square_avg" not in state:
            state["square_avg"] = torch.zeros_like(p)
        r = state["square_avg"]
        r.mul_(group["alpha"]).addcmul_(g, g, value=1.0 - group["alpha"])
        scaled = g / r.sqrt().add_(group["eps"])
        if group["momentum"] == 0.0:
            p.add_(scaled, alpha=-group["lr"])
            return
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p)
        b = state["momentum_buffer"]
        b.mul_(group["momentum"]).add_(scaled)
        p.add_(b, alpha=-group["lr"])


class Adam(_Optimizer):
    """Adam with bias correction; ``weight_decay`` is L2 (added to the gradient, as torch's ``Adam``). The state is
    ``step`` (``t``), ``exp_avg`` (``m``) and ``exp_avg_sq`` (``s``), torch's names."""

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:  # fmt: skip
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _check(self, group: dict[str, Any]) -> None:
        super()._check(group)
        beta1, beta2 = group["betas"]
        _check_unit_interval("betas[0]", beta1)
        _check_unit_interval("betas[1]", beta2)
        _check_positive("eps", group["eps"])

    def _update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if "step" not in state:
            state["step"] = 0  # an int: torch's load_state_dict leaves a "step" as it is
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        beta1, beta2 = group["betas"]
        state["step"] += 1
        t, m, s = state["step"], state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(g, alpha=1.0 - beta1)
        s.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        m_hat = m / (1.0 - beta1**t)
        s_hat = s / (1.0 - beta2**t)
        p.addcdiv_(m_hat, s_hat.sqrt_().add_(group["eps"]), value=-group["lr"])


class AdamW(Adam):
    """Adam with decoupled weight decay: ``theta <- (1 - lr lambda) theta``, then the Adam step on the loss's gradient
    alone (torch's ``AdamW``)."""

    l2_weight_decay = False

    def __init__(self, params: Params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:  # fmt: skip
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)

    def _update(self, p: Tensor, g: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        p.mul_(1.0 - group["lr"] * group["weight_decay"])
        super()._update(p, g, state, group)


def minibatches(n: int, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Tensor]:
    """One epoch of mini-batch SGD's index batches: a fresh shuffle of ``0 .. n-1`` cut into batches of
    ``batch_size`` (the last one smaller when ``batch_size`` does not divide ``n``), so every example is used once.
    Call it once per epoch; the ``generator`` fixes the shuffles::

        gen = torch.Generator().manual_seed(0)
        for epoch in range(epochs):
            for idx in minibatches(len(x), 64, gen):
                loss = loss_fn(model(x[idx]), y[idx])
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    yield from torch.randperm(n, generator=generator).split(batch_size)
