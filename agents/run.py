"""What a deep agent's training loop is given from outside: the env to train on, the budget, the seed,
the device, where to log, where to checkpoint and what to resume from. ``mpenv-train`` builds it from
flags; Python users and tests build it directly:

    from agents.run import RunContext
    from agents.dqn import DQNConfig, train_dqn
    q_net = train_dqn(DQNConfig(), RunContext("CartPole-v1", total_steps=50_000, seed=1))

Checkpoints (``checkpoint.pt`` in ``run_dir``) hold the networks' and optimizers' state dicts and the
step counter; the hyperparameters live beside them in ``config.json``. ``save`` is atomic, so Ctrl-C or
a NaN stop always leaves the last good checkpoint intact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mpenv.checkpoint import load_state_dict_checked, load_torch, save_torch
from mpenv.device import get_device
from mpenv.logger import NonFiniteLossError

LogFn = Callable[[str, float, int], None]


def ignore_log(tag: str, value: float, step: int) -> None:
    pass


@dataclass
class RunContext:
    env_id: str
    total_steps: int
    seed: int = 1
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    log: LogFn = ignore_log
    run_dir: Path | None = None  # None: no checkpoints (quick experiments, tests)
    resume: Path | None = None  # a run directory or checkpoint.pt to continue from
    checkpoint_every: int = 10_000  # env steps between checkpoints

    def __post_init__(self) -> None:
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {self.total_steps}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1 env step, got {self.checkpoint_every}")

    @property
    def torch_device(self) -> torch.device:
        return get_device(self.device)

    def save(self, step: int, modules: dict[str, torch.nn.Module],
             optimizers: dict[str, torch.optim.Optimizer] | None = None, **extra: Any) -> None:
        """Checkpoint the networks and optimizers at env step ``step`` (no-op without a run_dir)."""
        if self.run_dir is None:
            return
        save_torch(self.run_dir, {
            "step": int(step),
            "modules": {name: module.state_dict() for name, module in modules.items()},
            "optimizers": {name: opt.state_dict() for name, opt in (optimizers or {}).items()},
            "extra": extra,
        })

    def restore(self, modules: dict[str, torch.nn.Module],
                optimizers: dict[str, torch.optim.Optimizer] | None = None) -> tuple[int, dict[str, Any]]:
        """Load ``resume`` into the given networks and optimizers; returns ``(step, extra)``, or
        ``(0, {})`` for a fresh run. Every name must be present in the file."""
        if self.resume is None:
            return 0, {}
        state = load_torch(self.resume, required=("step", "modules", "optimizers"))
        for group, objects in (("modules", modules), ("optimizers", optimizers or {})):
            for name, obj in objects.items():
                if name not in state[group]:
                    raise ValueError(f"{self.resume}: no {group[:-1]} {name!r} (found: {sorted(state[group])})")
                load_state_dict_checked(obj, state[group][name], str(self.resume))
        return int(state["step"]), dict(state.get("extra", {}))


def check_finite(tag: str, value: torch.Tensor | float, step: int) -> None:
    """Stop before a NaN/inf loss reaches the optimizer (and a later checkpoint): the last good
    checkpoint stays the latest one."""
    if not torch.isfinite(torch.as_tensor(value)).all():
        raise NonFiniteLossError(f"{tag} became {float(torch.as_tensor(value).float().mean())} at step {step}; "
                                 "the run was stopped and its last good checkpoint kept")
