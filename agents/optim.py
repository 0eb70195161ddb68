"""Optimizers and the gradient step every deep agent takes (DQN, REINFORCE, A2C).

One step on a loss L(theta):

    g = grad_theta L,    g <- g min(1, c / ||g||)  (global L2 norm, clipped when c > 0),    theta <- opt(theta, g)

A non-finite loss stops the run before the step, so no NaN reaches the weights, and from them a checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from mpenv.logger import NonFiniteLossError

OPTIMIZERS = ("adam", "rmsprop")


def make_optimizer(name: str, parameters: Iterable[nn.Parameter], learning_rate: float,
                   eps: float = 1e-5) -> torch.optim.Optimizer:
    """Adam, or RMSprop with the settings of the A2C paper's implementations (alpha 0.99); ``eps`` is the
    denominator's guard (1e-5 as in the A2C/PPO implementations, torch's 1e-8 for DQN)."""
    # fused/foreach: one kernel (or one call) for all parameter tensors instead of a Python loop over
    # them; for small networks that overhead is most of an optimizer step.
    parameters = list(parameters)
    if name == "adam":
        try:
            return torch.optim.Adam(parameters, lr=learning_rate, eps=eps, fused=True)
        except (RuntimeError, TypeError):  # a device or torch version without the fused kernel
            return torch.optim.Adam(parameters, lr=learning_rate, eps=eps, foreach=True)
    if name == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=learning_rate, alpha=0.99, eps=eps, foreach=True)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def gradient_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, max_grad_norm: float, step: int,
                  tag: str = "losses/loss") -> torch.Tensor:
    """One optimizer step on ``loss``, the gradient's global norm clipped to ``max_grad_norm`` (0: not
    clipped); returns the detached loss. ``tag`` names the loss if it is not finite."""
    check_finite(tag, loss.detach(), step)  # before the step, so no NaN reaches the weights
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if max_grad_norm > 0:
        clip_grad_norm(optimizer.param_groups[0]["params"], max_grad_norm)
    optimizer.step()
    return loss.detach()


def clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> None:
    """Scale the gradients by ``min(1, max_norm / (||g|| + 1e-6))``, ``||g||`` their global L2 norm: the math of
    ``nn.utils.clip_grad_norm_`` in two fused calls. Its per-device/dtype grouping costs twice these calls, about
    26 us a step, as much as the arithmetic of a small Q-network's gradient step (measured in bench_vs_sb3)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, (max_norm / (total + 1e-6)).clamp(max=1.0))


def check_finite(tag: str, value: torch.Tensor | float, step: int) -> None:
    """Stop before a NaN/inf loss reaches the optimizer (and a later checkpoint): the last good
    checkpoint stays the latest one."""
    if not torch.isfinite(torch.as_tensor(value)).all():
        raise NonFiniteLossError(f"{tag} became {float(torch.as_tensor(value).float().mean())} at step {step}; "
                                 "the run was stopped and its last good checkpoint kept")
