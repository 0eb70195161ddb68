"""What a deep agent's training loop is given from outside: the env to train on, the budget, the seed,
the device and CPU threads, where to log, where to checkpoint and what to resume from. ``mpenv-train``
builds it from flags; Python users and tests build it directly:

    from agents.run import RunContext
    from agents.dqn import DQNConfig, train_dqn
    q_net = train_dqn(DQNConfig(), RunContext("CartPole-v1", total_steps=50_000, seed=1))

Checkpoints (``checkpoint.pt`` in ``run_dir``) hold the networks' and optimizers' state dicts and the
step counter; the hyperparameters live beside them in ``config.json``. ``save`` is atomic, so Ctrl-C or
a NaN stop always leaves the last good checkpoint intact.

Also here, what the training loops share around a run: :class:`Every` (cadence of evaluations and
checkpoints), :func:`policy_gradient_run` (the set-up of REINFORCE and A2C, checkpoint restored) with
:func:`save_training_state`, and :func:`load_network` (a trained network back from a run directory).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import torch
from torch import nn

from agents.envs import make_vector_env
from agents.evaluate import KeepBest, keep_best
from agents.networks import parse_hidden_sizes
from agents.optim import make_optimizer
from agents.policies import ActorCritic, actor_from_network, build_actor_critic
from mpenv.checkpoint import CheckpointError, load_config, load_state_dict_checked, load_torch, save_torch
from mpenv.device import get_device, seed_everything

LogFn = Callable[[str, float, int], None]


def ignore_log(tag: str, value: float, step: int) -> None:
    pass


@dataclass
class RunContext:
    """One training run. ``threads`` (default 1, as ``mpenv-train --threads``) is the number of torch CPU
    threads, set for the whole process when training starts: the small MLPs of these agents are several
    times faster on one thread than on torch's default of one per core; 0 keeps torch's setting."""

    env_id: str
    total_steps: int
    seed: int = 1
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    device: str = "auto"
    log: LogFn = ignore_log
    run_dir: Path | None = None  # None: no checkpoints (quick experiments, tests)
    resume: Path | None = None  # a run directory or checkpoint.pt to continue from
    checkpoint_every: int = 10_000  # env steps between checkpoints
    threads: int = 1  # torch CPU threads, set when training starts (0: torch's default)

    def __post_init__(self) -> None:
        if self.total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {self.total_steps}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be at least 1 env step, got {self.checkpoint_every}")
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")

    def start(self) -> None:
        """What every training function does first: torch's CPU threads as ``threads`` says."""
        if self.threads:
            torch.set_num_threads(self.threads)

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
        step = int(state["step"])
        if step >= self.total_steps:  # mpenv-train refuses this; the Python API says it and saves what it loaded
            warnings.warn(f"{self.resume}: the run already took {step:,} env steps and total_steps is "
                          f"{self.total_steps:,}: nothing to train (raise total_steps to continue)", stacklevel=2)
        return step, dict(state.get("extra", {}))


def check_config_fields(algo: str, config: Any, *, at_least_one: Sequence[str] = (),
                        non_negative: Sequence[str] = (), positive: Sequence[str] = (),
                        unit_interval: Sequence[str] = (), choices: dict[str, Sequence[str]] | None = None,
                        hidden_sizes: bool = True, problems: Sequence[str] = ()) -> None:
    """The one way the deep agents check a config: every bad field at once, before an env or a file is made,
    as a ``ValueError`` "bad ALGO hyperparameters: <field> must be ...; ...". Fields annotated ``int`` must
    hold integers; NaN fails every numeric test. ``problems`` adds checks of the agent's own."""
    found: list[str] = []
    annotations = {f.name: str(getattr(f.type, "__name__", f.type)) for f in dataclasses.fields(config)}

    def bad(name: str, rule: str, test: Callable[[Any], bool]) -> None:
        value = getattr(config, name)
        is_int = annotations.get(name) == "int"
        if isinstance(value, bool) or (is_int and not isinstance(value, numbers.Integral)) \
                or not isinstance(value, numbers.Real) or not test(value):
            found.append(f"{name} must be {'an integer ' if is_int else ''}{rule}, got {value!r}")

    for name in at_least_one:
        bad(name, ">= 1", lambda value: value >= 1)
    for name in non_negative:
        bad(name, ">= 0", lambda value: value >= 0)
    for name in positive:
        bad(name, "> 0 and finite", lambda value: 0 < value < math.inf)
    for name in unit_interval:
        bad(name, "in [0, 1]", lambda value: 0 <= value <= 1)
    for name, allowed in (choices or {}).items():
        if getattr(config, name) not in allowed:
            listed = ", ".join(map(repr, allowed))
            options = " or ".join(map(repr, allowed)) if len(allowed) == 2 else f"one of {listed}"
            found.append(f"{name} must be {options}, got {getattr(config, name)!r}")
    if hidden_sizes:
        try:
            parse_hidden_sizes(config.hidden_sizes)
        except ValueError as err:
            found.append(str(err))
    found += problems
    if found:
        raise ValueError(f"bad {algo} hyperparameters: " + "; ".join(found))


class Every:
    """``due(step)`` is true once each time the env-step counter passes a multiple of ``interval``
    (never for ``interval <= 0``); rollouts advance the counter in chunks, so an exact hit is rare."""

    def __init__(self, interval: int, start_step: int = 0):
        self.interval = interval
        self.next = (start_step // interval + 1) * interval if interval > 0 else math.inf

    def due(self, step: int) -> bool:
        if step < self.next:
            return False
        self.next = (step // self.interval + 1) * self.interval
        return True


# ---------------------------------------------------------------------------------------------------
# The run of a policy-gradient agent (REINFORCE, A2C)


class TrainingState(NamedTuple):
    envs: gym.vector.VectorEnv
    model: ActorCritic
    optimizer: torch.optim.Optimizer
    keeper: KeepBest
    start_step: int
    extra: dict[str, Any]


@contextlib.contextmanager
def policy_gradient_run(config: Any, run: RunContext, n_envs: int) -> Iterator[TrainingState]:
    """The set-up both policy-gradient agents share: seeded training envs, the actor-critic on the run's
    device, its optimizer, keep-the-best evaluation, and the checkpoint of ``run.resume`` restored; the
    envs are closed however the run ends."""
    run.start()
    seed_everything(run.seed)
    envs = make_vector_env(run.env_id, run.env_kwargs, n_envs, run.seed)
    try:
        model = build_actor_critic(config, envs.single_observation_space, envs.single_action_space)
        model = model.to(run.torch_device)
        optimizer = make_optimizer(config.optimizer, model.parameters(), config.learning_rate)
        keeper = keep_best(model, actor_from_network(model), run, config.eval_every_episodes)
        try:
            start_step, extra = restore_training_state(run, model, keeper, optimizer)
            yield TrainingState(envs, model, optimizer, keeper, start_step, extra)
        finally:
            keeper.close()
    finally:
        envs.close()


def save_training_state(run: RunContext, step: int, model: ActorCritic, keeper: KeepBest,
                        optimizer: torch.optim.Optimizer, **extra: Any) -> None:
    """One checkpoint holds the live model (to resume), the best one (to deploy) and the optimizer."""
    run.save(step, {"policy": model, "best_policy": keeper.best}, {"optimizer": optimizer}, **keeper.state(), **extra)


def restore_training_state(run: RunContext, model: ActorCritic, keeper: KeepBest,
                           optimizer: torch.optim.Optimizer) -> tuple[int, dict[str, Any]]:
    step, extra = run.restore({"policy": model, "best_policy": keeper.best}, {"optimizer": optimizer})
    keeper.load_state(extra)
    return step, extra


# ---------------------------------------------------------------------------------------------------
# A trained network back from its run directory


def load_network(path: str | Path, env: gym.Env, config_type: type,
                 build: Callable[[Any, gym.Space, gym.Space], nn.Module], weights: Sequence[str],
                 device: str | torch.device = "cpu") -> nn.Module:
    """The network of a run (``path``: its directory or ``checkpoint.pt``): ``build(config, observation_space,
    action_space)`` with the hyperparameters of its ``config.json`` and the env's spaces (a vector env's
    ``single_*`` ones), loaded with the first of ``weights`` the checkpoint holds, on ``device``, in eval mode."""
    state = load_torch(path, required=("step", "modules"))
    hyperparameters = load_config(path).get("hyperparameters", {})
    try:
        config = config_type(**hyperparameters)
    except TypeError as err:
        raise CheckpointError(f"{path}: config.json does not hold {config_type.__name__} hyperparameters "
                              f"({err})") from err
    observation_space = getattr(env, "single_observation_space", env.observation_space)
    action_space = getattr(env, "single_action_space", env.action_space)
    network = build(config, observation_space, action_space)
    name = next((name for name in weights if name in state["modules"]), None)
    if name is None:
        raise CheckpointError(f"{path}: no {' or '.join(map(repr, weights))} weights "
                              f"(found: {sorted(state['modules'])})")
    load_state_dict_checked(network, state["modules"][name], str(path))
    return network.to(torch.device(device)).eval()
