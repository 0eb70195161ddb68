"""The one training loop of the generative models: minibatch Adam on ``model.loss``, early stopping on validation.

Every model of the package exposes ``loss(*batch)`` (the scalar it minimizes; ``batch`` is ``(x,)``, or ``(x, y)``
for conditional models), so one loop trains them all. It keeps the weights of the best validation epoch (these
models overfit 1.2k digits within tens of epochs) and can report every epoch to a callback, which is how
``mpenv-gen`` logs to TensorBoard and checkpoints; a :class:`FitHistory` passed back in resumes a run.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mpenv.device import module_device, torch_threads

__all__ = ["Data", "FitHistory", "batches", "fit", "fit_phases", "mean_loss"]

Data = Tensor | tuple[Tensor, ...]
"""A split: a tensor, or tensors indexed together such as ``(x, y)``."""


@dataclass
class FitHistory:
    """What :func:`fit` did: mean training and validation loss per epoch, the best epoch and its weights."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_state: dict[str, Any] | None = None
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        return len(self.val_loss)

    @property
    def best_val_loss(self) -> float:
        return self.val_loss[self.best_epoch]


def batches(data: Data, batch_size: int, generator: torch.Generator | None = None,
            device: torch.device | str = "cpu") -> Iterator[tuple[Tensor, ...]]:  # fmt: skip
    """Minibatches of ``data`` as tuples on ``device``, shuffled when a generator is given."""
    parts = data if isinstance(data, tuple) else (data,)
    order = torch.randperm(len(parts[0]), generator=generator) if generator is not None else torch.arange(len(parts[0]))
    for index in order.split(batch_size):
        yield tuple(p[index].to(device) for p in parts)


@torch.no_grad()
def mean_loss(model: nn.Module, data: Data, batch_size: int = 512) -> float:
    """The model's mean ``loss`` over ``data`` in eval mode (each batch weighted by its size)."""
    model.eval()
    total, n = 0.0, 0
    for batch in batches(data, batch_size, None, module_device(model)):
        total += float(model.loss(*batch)) * len(batch[0])
        n += len(batch[0])
    return total / n


def fit(model: nn.Module, train: Data, val: Data, *, epochs: int = 200, batch_size: int = 64, lr: float = 1e-3,
        patience: int = 10, seed: int = 0, max_seconds: float | None = None,
        optimizer: torch.optim.Optimizer | None = None, history: FitHistory | None = None,
        on_epoch: Callable[[FitHistory], None] | None = None, threads: int | None = 1) -> FitHistory:  # fmt: skip
    """Minimize ``model.loss(*batch)`` with Adam; stop when the validation loss has not improved for ``patience``
    epochs (or after ``max_seconds``, or ``epochs`` in all), and leave the model with its best weights, in eval
    mode.

    The model is not re-initialised: seed torch before building it (``mpenv.device.seed_everything``); ``seed``
    fixes the minibatch order. ``optimizer`` and ``history`` resume a run (epoch ``history.epochs + 1`` on);
    ``on_epoch(history)`` runs after every epoch (logging, checkpoints); a model's ``after_step()``, if it has one,
    after every optimizer step. Ctrl-C propagates after the epoch in
    progress is lost, with the weights as they are (the caller's last checkpoint stays valid).

    ``threads``: torch's CPU threads while fitting, restored afterwards; 1 by default, as in the ``mpenv-gen``
    CLI, because these small networks run fastest on one thread (a thread pool mostly waits: 10 epochs of MADE
    on the binarized digits took 0.8 s on one thread and 16 s with torch's default of 2 on a loaded 2-core
    machine, medians of 3 alternating rounds). ``None`` keeps torch's current setting.
    """
    with torch_threads(threads):
        return _fit(model, train, val, epochs, batch_size, lr, patience, seed, max_seconds, optimizer, history,
                    on_epoch)  # fmt: skip


def fit_phases(model: nn.Module, train: Data, val: Data, phases: Sequence[tuple[int, float]], *,
               batch_size: int = 64, patience: int = 1000, seed: int = 0,
               on_epoch: Callable[[FitHistory], None] | None = None) -> FitHistory:  # fmt: skip
    """``fit`` in phases of ``(epochs, learning rate)`` with one Adam throughout: a later phase at a smaller rate
    settles what the first found (the CLI's ``--resume RUN --learning-rate``); the best validation epoch's weights
    are kept. ``on_epoch`` as in :func:`fit`."""
    optimizer, history, total = torch.optim.Adam(model.parameters()), FitHistory(), 0
    for epochs, lr in phases:
        for group in optimizer.param_groups:
            group["lr"] = lr
        total += epochs
        fit(model, train, val, epochs=total, batch_size=batch_size, patience=patience, seed=seed, optimizer=optimizer,
            history=history, on_epoch=on_epoch)  # fmt: skip
    return history


def _fit(model: nn.Module, train: Data, val: Data, epochs: int, batch_size: int, lr: float, patience: int, seed: int,
         max_seconds: float | None, optimizer: torch.optim.Optimizer | None, history: FitHistory | None,
         on_epoch: Callable[[FitHistory], None] | None) -> FitHistory:  # fmt: skip
    history = FitHistory() if history is None else history
    optimizer = torch.optim.Adam(model.parameters(), lr=lr) if optimizer is None else optimizer
    generator = torch.Generator().manual_seed(seed + history.epochs)  # a resumed run does not replay its order
    device, start = module_device(model), time.perf_counter() - history.seconds
    while history.epochs < epochs:
        model.train()
        total, n = 0.0, 0
        for batch in batches(train, batch_size, generator, device):
            loss = model.loss(*batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if hasattr(model, "after_step"):  # e.g. a diffusion model's average of weights
                model.after_step()
            total, n = total + loss.item() * len(batch[0]), n + len(batch[0])
        history.train_loss.append(total / n)
        history.val_loss.append(mean_loss(model, val))
        if history.best_epoch < 0 or history.val_loss[-1] < history.best_val_loss:
            history.best_epoch, history.best_state = history.epochs - 1, copy.deepcopy(model.state_dict())
        history.seconds = time.perf_counter() - start
        if on_epoch is not None:
            on_epoch(history)
        out_of_time = max_seconds is not None and history.seconds > max_seconds
        if history.epochs - 1 - history.best_epoch >= patience or out_of_time:
            break
    if history.best_state is not None:
        model.load_state_dict(history.best_state)
    model.eval()
    return history
