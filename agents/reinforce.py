"""REINFORCE (Williams, 1992): Monte Carlo policy gradient with reward-to-go and a baseline.

The policy-gradient theorem turns "make good actions more likely" into an expectation we can sample:

    grad J(theta) = E[ sum_t grad log pi_theta(a_t|s_t) (G_t - b(s_t)) ]

    G_t = sum_{k>=t} gamma^(k-t) r_k        reward-to-go: an action can only influence rewards after it
    b(s_t)                                  any baseline that does not depend on a_t keeps the estimate
                                            unbiased and, close to E[G_t|s_t], cuts its variance

Here b is a learned state value V_phi(s) fitted to G_t by least squares (``baseline="value"``), a running
mean of past returns (``"mean"``) or nothing (``"none"``). The algorithm, top to bottom:

    1. play ``episodes_per_update`` whole episodes with the current stochastic policy;
    2. compute G_t for every step (agents.returns.reward_to_go);
    3. one gradient step on  -mean_t[log pi(a_t|s_t) (G_t - b(s_t))] - c_H H[pi] + c_V (V(s_t) - G_t)^2.

Discrete actions use a Categorical policy, Box actions a diagonal Gaussian (agents.policies).

    from agents.reinforce import ReinforceConfig, train_reinforce
    policy = train_reinforce(ReinforceConfig(), RunContext("CartPole-v1", total_steps=150_000))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from agents.envs import finished_episodes
from agents.evaluate import KeepBest
from agents.optim import OPTIMIZERS, gradient_step
from agents.policies import ACTIVATIONS, ActorCritic, actor_from_network, build_actor_critic, observations_to_tensor
from agents.returns import reward_to_go
from agents.run import (
    Every,
    LogFn,
    RunContext,
    check_config_fields,
    load_network,
    policy_gradient_run,
    save_training_state,
)

BASELINES = ("value", "mean", "none")

# ---------------------------------------------------------------------------------------------------
# Config


@dataclass
class ReinforceConfig:
    """Monte Carlo policy gradient; the defaults learn CartPole-v1 in about 150k steps."""

    learning_rate: float = field(default=1e-3, metadata={"help": "Adam/RMSprop step size"})
    gamma: float = field(default=0.99, metadata={"help": "discount factor of the reward-to-go"})
    episodes_per_update: int = field(default=4, metadata={"help": "whole episodes per gradient step"})
    baseline: str = field(default="value", metadata={
        "help": "b(s) subtracted from G_t: 'value' (learned V(s)), 'mean' (running mean of returns) or 'none'"})
    mean_baseline_rate: float = field(default=0.1, metadata={
        "help": "baseline='mean': weight of the newest batch in the running mean of returns"})
    normalize_advantage: bool = field(default=True, metadata={
        "help": "standardise G_t - b(s_t) within each batch (a second, batch-wise baseline and a fixed scale)"})
    vf_coef: float = field(default=0.5, metadata={"help": "weight of the value baseline's squared error"})
    ent_coef: float = field(default=0.0, metadata={"help": "weight of the entropy bonus"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "clip the gradient's global norm (0: no clipping)"})
    optimizer: str = field(default="adam", metadata={"help": "'adam' or 'rmsprop'"})
    hidden_sizes: str = field(default="64,64", metadata={"help": "hidden layer widths of the actor and the critic"})
    activation: str = field(default="tanh", metadata={"help": "'tanh' or 'relu'"})
    init_log_std: float = field(default=0.0, metadata={"help": "Box actions: initial log sigma of the Gaussian"})
    normalize_obs: bool = field(default=False, metadata={"help": "standardise observations with running statistics"})
    eval_every: int = field(default=20_000, metadata={
        "help": "env steps between evaluations of the deterministic policy (the best one is kept; 0: only at the end)"})
    eval_every_episodes: int = field(default=10, metadata={"help": "episodes per evaluation during training"})
    log_every: int = field(default=1_000, metadata={"help": "env steps between loss logs"})


def check_config(config: ReinforceConfig) -> None:
    """Raise ``ValueError`` naming every hyperparameter that cannot work."""
    problems = []
    if not 0.0 < config.mean_baseline_rate <= 1.0:
        problems.append(f"mean_baseline_rate must be in (0, 1], got {config.mean_baseline_rate}")
    check_config_fields(
        "REINFORCE", config,
        at_least_one=("episodes_per_update", "eval_every_episodes", "log_every"),
        non_negative=("vf_coef", "ent_coef", "max_grad_norm", "eval_every"),
        positive=("learning_rate",),
        unit_interval=("gamma",),
        choices={"baseline": BASELINES, "optimizer": OPTIMIZERS, "activation": tuple(ACTIVATIONS)},
        problems=problems)


# ---------------------------------------------------------------------------------------------------
# Rollout: whole episodes


@dataclass
class Episodes:
    """A batch of consecutive whole episodes of one env, as [T, 1] tensors (the layout of agents.returns)."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    dones: torch.Tensor


def collect_episodes(model: ActorCritic, envs: gym.vector.VectorEnv, obs: np.ndarray, n_episodes: int, step: int,
                     total_steps: int, log: LogFn) -> tuple[Episodes | None, np.ndarray, int]:
    """Play ``n_episodes`` episodes with the stochastic policy; ``None`` if the step budget ends first
    (a cut episode has no Monte Carlo return, so the partial batch is dropped)."""
    device = next(model.parameters()).device
    observations, actions, rewards, dones = [], [], [], []
    finished = 0
    while finished < n_episodes:
        if step >= total_steps:
            return None, obs, step
        observations.append(obs)
        with torch.no_grad():
            action = model.act(observations_to_tensor(obs, device))
        obs, reward, terminated, truncated, infos = envs.step(model.env_action(action))
        step += 1
        done = bool(terminated[0] or truncated[0])
        actions.append(action)
        rewards.append(float(reward[0]))
        dones.append(done)
        finished += done
        for episode_return, length in finished_episodes(infos):
            log("charts/episodic_return", episode_return, step)
            log("charts/episodic_length", length, step)
    batch = Episodes(obs=observations_to_tensor(np.concatenate(observations), device), actions=torch.cat(actions),
                     rewards=torch.tensor(rewards, device=device).unsqueeze(1),
                     dones=torch.tensor(dones, device=device).unsqueeze(1))
    return batch, obs, step


# ---------------------------------------------------------------------------------------------------
# Update


def reinforce_loss(model: ActorCritic, batch: Episodes, config: ReinforceConfig,
                   mean_baseline: float | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The surrogate whose gradient is the REINFORCE estimate, plus the baseline's regression loss."""
    returns = reward_to_go(batch.rewards, batch.dones, config.gamma).squeeze(1)
    log_prob, entropy = model.log_prob_and_entropy(batch.obs, batch.actions)
    value_loss = torch.zeros((), device=returns.device)
    if config.baseline == "value":
        values = model.value(batch.obs)
        value_loss = (values - returns).pow(2).mean()
        advantages = returns - values.detach()  # the baseline must not carry the policy's gradient
    elif config.baseline == "mean" and mean_baseline is not None:
        advantages = returns - mean_baseline
    else:
        advantages = returns
    if config.normalize_advantage and len(advantages) > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy_loss = -(log_prob * advantages).mean()
    entropy = entropy.mean()
    loss = policy_loss - config.ent_coef * entropy + config.vf_coef * value_loss
    terms = {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy, "mean_return": returns.mean()}
    return loss, terms


# ---------------------------------------------------------------------------------------------------
# Training loop


def train_reinforce(config: ReinforceConfig, run: RunContext) -> ActorCritic:
    """Train with REINFORCE on ``run.env_id``; returns the best policy found by evaluation."""
    check_config(config)
    with policy_gradient_run(config, run, n_envs=1) as state:  # one env: batches end at episode ends
        train_loop(state.model, state.optimizer, state.keeper, state.envs, config, run, state.start_step,
                   state.extra.get("mean_baseline"))
    return state.keeper.best


def train_loop(model: ActorCritic, optimizer: torch.optim.Optimizer, keeper: KeepBest,
               envs: gym.vector.VectorEnv, config: ReinforceConfig, run: RunContext, step: int,
               mean_baseline: float | None) -> None:
    obs, _ = envs.reset(seed=run.seed + step)  # a resumed run plays new episodes, not the first ones again
    checkpoint, evaluation = Every(run.checkpoint_every, step), Every(config.eval_every, step)
    loss_log = Every(config.log_every, step)
    save_training_state(run, step, model, keeper, optimizer, mean_baseline=mean_baseline)
    while step < run.total_steps:
        batch, obs, step = collect_episodes(model, envs, obs, config.episodes_per_update, step, run.total_steps,
                                            run.log)
        if batch is None:
            break
        loss, terms = reinforce_loss(model, batch, config, mean_baseline)
        gradient_step(optimizer, loss, config.max_grad_norm, step)
        model.update_normalizer(batch.obs)
        if config.baseline == "mean":  # after the loss: a baseline must not depend on this batch's actions
            batch_mean = float(terms["mean_return"])
            mean_baseline = batch_mean if mean_baseline is None else \
                mean_baseline + config.mean_baseline_rate * (batch_mean - mean_baseline)
        if loss_log.due(step):
            for name in ("policy_loss", "value_loss", "entropy"):
                run.log(f"losses/{name}", float(terms[name].detach()), step)
        if evaluation.due(step):
            run.log("eval/mean_return", keeper.evaluate(), step)
        if checkpoint.due(step):
            save_training_state(run, step, model, keeper, optimizer, mean_baseline=mean_baseline)
    run.log("eval/mean_return", keeper.evaluate(), step)  # the final policy competes too
    save_training_state(run, step, model, keeper, optimizer, mean_baseline=mean_baseline)


def load_policy(path: str | Path, env: gym.Env, device: str | torch.device = "cpu"
                ) -> Callable[[np.ndarray], np.ndarray]:
    """The best deterministic policy of a REINFORCE run: a batch of observations -> a batch of actions."""
    model = load_network(path, env, ReinforceConfig, build_actor_critic, ("best_policy", "policy"), device)
    return actor_from_network(model)

