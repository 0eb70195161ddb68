"""Hand-written reinforcement-learning agents, one algorithm per file.

Tabular:  :mod:`agents.dp` (policy evaluation, value iteration, policy iteration),
          :mod:`agents.mc` (Monte Carlo prediction and control),
          :mod:`agents.td` (TD(0), SARSA, expected SARSA, Q-learning), sharing :mod:`agents.tabular`.
Deep:     :mod:`agents.dqn` (with :mod:`agents.buffers`), :mod:`agents.reinforce`,
          :mod:`agents.actor_critic` (A2C), sharing :mod:`agents.networks`, :mod:`agents.policies` (policy
          heads), :mod:`agents.optim` (optimizers, the gradient step), :mod:`agents.returns` and
          :mod:`agents.run` (budget, device, threads, checkpoints, resume); :mod:`agents.sb3_ppo` runs
          stable-baselines3's PPO behind the same flags, logs and checkpoints.
Tools:    :mod:`agents.train` (``mpenv-train``), :mod:`agents.evaluate` (``mpenv-eval``, keep-the-best),
          :mod:`mpenv.logger` (TensorBoard run directory), :mod:`mpenv.checkpoint`, :mod:`agents.plots`,
          :mod:`agents.envs`, :mod:`agents.demo` (``make demo``).

The main names are re-exported here and imported on first use, so ``import agents`` stays light (no torch)::

    from agents import value_iteration, q_learning, train_dqn, DQNConfig, RunContext
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "agents.dp": ("MDP", "policy_evaluation", "value_iteration", "policy_iteration"),
    "agents.mc": ("mc_prediction", "mc_control"),
    "agents.td": ("td0_prediction", "sarsa", "expected_sarsa", "q_learning"),
    "agents.dqn": ("DQNConfig", "train_dqn"),
    "agents.reinforce": ("ReinforceConfig", "train_reinforce"),
    "agents.actor_critic": ("A2CConfig", "train_a2c"),
    "agents.sb3_ppo": ("PPOConfig", "train_ppo"),
    "agents.run": ("RunContext",),
    "agents.evaluate": ("run_episodes", "evaluate_policy"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """``agents.train_dqn`` and ``from agents import train_dqn``: the module that defines it is imported now."""
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'agents' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value  # the next access skips __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
