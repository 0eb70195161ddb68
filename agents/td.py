r"""Temporal-difference learning: TD(0) prediction, SARSA, expected SARSA, Q-learning (Sutton & Barto, ch. 6).

TD(0) prediction of v_pi (6.2):

    V(S_t) <- V(S_t) + alpha [R_{t+1} + gamma V(S_{t+1}) - V(S_t)]

TD control updates an action-value table towards a one-step target Y_t:

    delta_t = Y_t - Q(S_t, A_t),    Q(S_t, A_t) <- Q(S_t, A_t) + alpha delta_t

and the three methods differ only in Y_t (see the three ``*_target`` functions below):

    SARSA (6.7)            Y_t = R_{t+1} + gamma Q(S_{t+1}, A_{t+1})
    expected SARSA (6.9)   Y_t = R_{t+1} + gamma sum_a pi(a|S_{t+1}) Q(S_{t+1}, a)
    Q-learning (6.8)       Y_t = R_{t+1} + gamma max_a Q(S_{t+1}, a)

with Y_t = R_{t+1} when S_{t+1} is terminal. A time-limit truncation is not termination: the target still
bootstraps from S_{t+1}. The behaviour policy is epsilon-greedy in Q with random tie-breaking; epsilon and
alpha can decay linearly (``epsilon_end``, ``alpha_end``).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from agents.tabular import (
    EpisodeLoop,
    LogFn,
    PolicySampler,
    agent_rng,
    check_budget,
    check_gamma,
    check_step_size,
    check_unit_interval,
    discrete_sizes,
    epsilon_greedy_action,
    epsilon_greedy_probs,
    linear_schedule,
)


@dataclass
class TD0Config:
    n_episodes: int = field(default=500, metadata={"help": "number of episodes"})
    alpha: float = field(default=0.1, metadata={"help": "step size in (0, 1] (at the start if decayed)"})
    alpha_end: float | None = field(
        default=None, metadata={"help": "if set, alpha decays linearly to this value over the run"}
    )
    gamma: float = field(default=0.99, metadata={"help": "discount factor in [0, 1]"})
    seed: int = field(default=0, metadata={"help": "seeds the agent's RNG and the first env.reset"})


@dataclass
class TDControlConfig:
    n_episodes: int = field(default=500, metadata={"help": "number of episodes"})
    alpha: float = field(default=0.5, metadata={"help": "step size in (0, 1] (at the start if decayed)"})
    alpha_end: float | None = field(
        default=None, metadata={"help": "if set, alpha decays linearly to this value over the run"}
    )
    gamma: float = field(default=0.99, metadata={"help": "discount factor in [0, 1]"})
    epsilon: float = field(default=0.1, metadata={"help": "exploration probability (at the start if decayed)"})
    epsilon_end: float | None = field(default=None, metadata={"help": "if set, epsilon decays linearly to this value"})
    exploration_fraction: float = field(
        default=0.5, metadata={"help": "fraction of the run over which epsilon decays to epsilon_end"}
    )
    seed: int = field(default=0, metadata={"help": "seeds the agent's RNG and the first env.reset"})


@dataclass
class SarsaConfig(TDControlConfig):
    """Hyperparameters of :func:`sarsa`."""


@dataclass
class ExpectedSarsaConfig(TDControlConfig):
    """Hyperparameters of :func:`expected_sarsa`."""


@dataclass
class QLearningConfig(TDControlConfig):
    """Hyperparameters of :func:`q_learning`."""


# ----------------------------------------------------------------------------------------------------------
# The three TD targets (for a non-terminal S_{t+1})
# ----------------------------------------------------------------------------------------------------------

TDTarget = Callable[[float, float, np.ndarray, int, float], float]


def sarsa_target(reward: float, gamma: float, q_next: np.ndarray, next_action: int, epsilon: float) -> float:
    """R_{t+1} + gamma Q(S_{t+1}, A_{t+1}): the action actually taken next (on-policy)."""
    return reward + gamma * q_next[next_action]


def expected_sarsa_target(reward: float, gamma: float, q_next: np.ndarray, next_action: int, epsilon: float) -> float:
    """R_{t+1} + gamma sum_a pi(a|S_{t+1}) Q(S_{t+1}, a), pi the epsilon-greedy policy: no sampling noise."""
    return reward + gamma * float(epsilon_greedy_probs(q_next, epsilon) @ q_next)


def q_learning_target(reward: float, gamma: float, q_next: np.ndarray, next_action: int, epsilon: float) -> float:
    """R_{t+1} + gamma max_a Q(S_{t+1}, a): the greedy policy's value, whatever is done next (off-policy)."""
    return reward + gamma * q_next.max()


# ----------------------------------------------------------------------------------------------------------
# Algorithms
# ----------------------------------------------------------------------------------------------------------


def td0_prediction(
    env: gym.Env,
    policy: np.ndarray,
    n_episodes: int = 500,
    alpha: float = 0.1,
    alpha_end: float | None = None,
    gamma: float = 0.99,
    seed: int = 0,
    *,
    total_steps: int | None = None,
    log: LogFn | None = None,
) -> np.ndarray:
    """TD(0) estimate of v_pi (6.2); ``policy`` is int [S] or float [S, A]. Returns V float64 [S]."""
    n_states, n_actions = discrete_sizes(env, "td0_prediction")
    check_step_size("alpha", alpha)
    check_step_size("alpha_end", alpha_end)
    check_gamma(gamma)
    check_budget(n_episodes, total_steps)
    sample_action = PolicySampler(policy, n_states, n_actions)
    alpha_at = linear_schedule(alpha, alpha_end)
    rng = agent_rng(seed)

    V = np.zeros(n_states)
    loop = EpisodeLoop(env, n_episodes, seed, total_steps, log)
    for state in loop.episodes():
        step_size = alpha_at(loop.progress)
        sum_abs_delta = 0.0
        episode_over = False
        while not episode_over:
            next_state, reward, terminated, episode_over = loop.step(sample_action(state, rng))
            target = reward if terminated else reward + gamma * V[next_state]
            delta = target - V[state]
            V[state] += step_size * delta
            sum_abs_delta += abs(delta)
            state = next_state
        loop.end_episode({"losses/td_error": sum_abs_delta / loop.episode_length})
    return V


# The three control methods: one loop (:func:`td_control`) with their target; the parameters of each are the
# fields of its config (``q_learning(env, n_episodes=500, alpha=0.5, gamma=1.0, epsilon=0.1, seed=0)``).

Method = Callable[..., np.ndarray]


def hyperparameters_of(config_type: type) -> Callable[[Method], Method]:
    """Give ``method(env, *hyperparameters, total_steps=None, log=None, **hyperparameters)`` the signature
    ``method(env, <the fields of config_type with their defaults>, *, total_steps=None, log=None)``, so that
    ``help`` and ``inspect`` show the parameters that live in the config, written once."""

    def decorate(method: Method) -> Method:
        fields = [inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=f.default,
                                    annotation=f.type) for f in dataclasses.fields(config_type)]
        keyword = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
                   for name, annotation in (("total_steps", "int | None"), ("log", "LogFn | None"))]
        env = inspect.Parameter("env", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="gym.Env")
        method.__signature__ = inspect.Signature([env, *fields, *keyword], return_annotation="np.ndarray")
        return method

    return decorate


@hyperparameters_of(SarsaConfig)
def sarsa(env: gym.Env, *args: Any, total_steps: int | None = None, log: LogFn | None = None,
          **hyperparameters: Any) -> np.ndarray:
    """SARSA, on-policy TD control (6.7). Returns Q float64 [S, A]; greedy policy ``Q.argmax(axis=1)``."""
    return td_control(env, sarsa_target, SarsaConfig(*args, **hyperparameters), total_steps, log, "sarsa")


@hyperparameters_of(ExpectedSarsaConfig)
def expected_sarsa(env: gym.Env, *args: Any, total_steps: int | None = None, log: LogFn | None = None,
                   **hyperparameters: Any) -> np.ndarray:
    """Expected SARSA (6.9), target policy = the epsilon-greedy behaviour policy. Returns Q float64 [S, A]."""
    config = ExpectedSarsaConfig(*args, **hyperparameters)
    return td_control(env, expected_sarsa_target, config, total_steps, log, "expected_sarsa")


@hyperparameters_of(QLearningConfig)
def q_learning(env: gym.Env, *args: Any, total_steps: int | None = None, log: LogFn | None = None,
               **hyperparameters: Any) -> np.ndarray:
    """Q-learning, off-policy TD control (6.8). Returns Q float64 [S, A]; greedy policy ``Q.argmax(axis=1)``."""
    return td_control(env, q_learning_target, QLearningConfig(*args, **hyperparameters), total_steps, log,
                      "q_learning")


def td_control(
    env: gym.Env,
    td_target: TDTarget,
    hyper: TDControlConfig,
    total_steps: int | None = None,
    log: LogFn | None = None,
    name: str = "td_control",
) -> np.ndarray:
    """The control loop shared by SARSA, expected SARSA and Q-learning; only ``td_target`` differs.

    A_{t+1} is chosen before Q(S_t, A_t) is updated, as SARSA needs it in its target. For the other two
    methods this differs from the book's pseudocode only when S_{t+1} = S_t.
    """
    n_states, n_actions = discrete_sizes(env, name)
    check_step_size("alpha", hyper.alpha)
    check_step_size("alpha_end", hyper.alpha_end)
    check_gamma(hyper.gamma)
    check_unit_interval("epsilon", hyper.epsilon)
    check_unit_interval("epsilon_end", hyper.epsilon_end)
    check_budget(hyper.n_episodes, total_steps)
    alpha_at = linear_schedule(hyper.alpha, hyper.alpha_end)
    epsilon_at = linear_schedule(hyper.epsilon, hyper.epsilon_end, hyper.exploration_fraction)
    gamma = hyper.gamma
    rng = agent_rng(hyper.seed)

    Q = np.zeros((n_states, n_actions))
    loop = EpisodeLoop(env, hyper.n_episodes, hyper.seed, total_steps, log)
    for state in loop.episodes():
        step_size, eps = alpha_at(loop.progress), epsilon_at(loop.progress)
        action = epsilon_greedy_action(Q[state], eps, rng)
        sum_abs_delta = 0.0
        episode_over = False
        while not episode_over:
            next_state, reward, terminated, episode_over = loop.step(action)
            next_action = epsilon_greedy_action(Q[next_state], eps, rng)
            target = reward if terminated else td_target(reward, gamma, Q[next_state], next_action, eps)
            delta = target - Q[state, action]
            Q[state, action] += step_size * delta
            sum_abs_delta += abs(delta)
            state, action = next_state, next_action
        loop.end_episode({"charts/epsilon": eps, "losses/td_error": sum_abs_delta / loop.episode_length})
    return Q
