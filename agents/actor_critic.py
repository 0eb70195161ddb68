"""Advantage actor-critic (A2C; Mnih et al., 2016, in its synchronous form) on vectorized envs.

REINFORCE waits for the end of an episode and weighs log pi(a_t|s_t) by a noisy Monte Carlo return.
An actor-critic replaces that return by a critic's estimate after a few steps: the critic V_phi learns
by temporal differences, and the actor follows the advantage of what it did.

    TD error:   delta_t = r_t + gamma V(s_{t+1}) (1 - d_{t+1}) - V(s_t)
    advantage:  A_t = sum_l (gamma lambda)^l delta_{t+l}                    (GAE, agents.returns.gae)
                lambda = 1: the n-step return  r_t + ... + gamma^k V(s_{t+k})  minus V(s_t)
                lambda = 0: the one-step TD error delta_t
    actor:      grad J(theta) = E[ grad log pi_theta(a_t|s_t) A_t ]
    critic:     min_phi E[ (A_t + V_old(s_t) - V_phi(s_t))^2 ]             (regress on the TD(lambda) target)
    loss:       L = -mean[log pi(a_t|s_t) A_t] + c_V mean[(target_t - V(s_t))^2] - c_H mean[H[pi(.|s_t)]]

The algorithm, top to bottom:

    1. step ``n_envs`` envs in lock-step for ``n_steps`` steps with the stochastic policy; the critic
       runs only to value what the rollout bootstraps from: the observation after its last step and
       the final observation of any episode cut by a time limit;
    2. value every observation of the rollout at once, compute advantages and value targets;
    3. one gradient step on L, with the gradient's global norm clipped;
    4. optionally fold the rollout into the running observation statistics.

    from agents.actor_critic import A2CConfig, train_a2c
    policy = train_a2c(A2CConfig(), RunContext("CartPole-v1", total_steps=200_000))

**Recurrent A2C** (``--recurrent``). Where the observation o_t does not determine the state (the T-maze's cue is
shown once, at the start), the policy needs memory: an LSTM carries h_t = LSTM(f(o_t), h_{t-1}) and the actor and
critic read pi(a_t|h_t), V(h_t) (agents.policies.RecurrentActorCritic). The equations above hold with h_t for s_t.
What changes is bookkeeping:

    acting:     the state is carried from step to step and zeroed where an episode ends, so a new episode
                starts from h_0 = 0 (its reset mask: starts_t = d_{t-1}, the previous step ended one);
    bootstrap:  V(s_{t+1}) needs the state too, so it is computed while acting, with the state of that moment;
    update:     the rollout is replayed from its first state h_start (detached: the previous rollout's graph is
                gone) with the same reset mask, and the loss back-propagates through time over the rollout --
                truncated BPTT with a window of n_steps, by mpenv.nn's hand-written LSTM backward.

So ``n_steps`` bounds what can be learned: a cue must be remembered for fewer steps than a rollout holds.
The T-maze of length 10 (the cue needed 11 steps later) is solved with 32-step rollouts
(tests/test_recurrent_a2c.py)::

    mpenv-train a2c --env mpenv/TMaze-v0 --recurrent --total-steps 600000 --n-envs 16 --n-steps 32 \\
        --hidden-sizes 32 --lstm-size 32 --learning-rate 2e-3 --gamma 0.95 --ent-coef 0.01

Pendulum-v1 (continuous torques) is learned in about 250k steps with short rollouts (many updates),
a short horizon, normalised observations, scaled-down rewards and ReLU networks (tanh ones need about
three times as many steps with the same settings)::

    mpenv-train a2c --env Pendulum-v1 --total-steps 250000 --n-envs 8 --n-steps 8 --optimizer rmsprop \\
        --gamma 0.9 --gae-lambda 0.9 --normalize-obs --reward-scale 0.1 --init-log-std -0.5 --activation relu
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from agents.envs import InfoMeans, finished_episodes
from agents.evaluate import KeepBest
from agents.optim import OPTIMIZERS, gradient_step
from agents.policies import (
    ACTIVATIONS,
    ActorCritic,
    RecurrentActorCritic,
    State,
    actor_from_network,
    build_actor_critic,
    forget,
    observations_to_tensor,
)
from agents.returns import gae
from agents.run import (
    Every,
    LogFn,
    RunContext,
    check_config_fields,
    load_network,
    policy_gradient_run,
    save_training_state,
)

# ---------------------------------------------------------------------------------------------------
# Config


@dataclass
class A2CConfig:
    """Synchronous advantage actor-critic. The defaults are stable-baselines3's A2C settings with Adam in place
    of RMSprop; they solve CartPole-v1 in about 100k steps."""

    learning_rate: float = field(default=7e-4, metadata={"help": "optimizer step size"})
    optimizer: str = field(default="adam", metadata={"help": "'adam' or 'rmsprop' (as in the A2C paper)"})
    anneal_lr: bool = field(default=False, metadata={"help": "decay the learning rate linearly to 0"})
    n_envs: int = field(default=8, metadata={"help": "parallel envs stepped in lock-step"})
    n_steps: int = field(default=5, metadata={"help": "steps per env per update (the rollout length)"})
    gamma: float = field(default=0.99, metadata={"help": "discount factor"})
    gae_lambda: float = field(default=1.0, metadata={
        "help": "GAE lambda: 1 = n-step returns to the end of the rollout, 0 = one-step TD"})
    reward_scale: float = field(default=1.0, metadata={
        "help": "multiply rewards by this for learning (e.g. 0.1 keeps Pendulum's value targets near 1)"})
    ent_coef: float = field(default=0.0, metadata={"help": "weight of the entropy bonus"})
    vf_coef: float = field(default=0.5, metadata={"help": "weight of the critic's squared error"})
    max_grad_norm: float = field(default=0.5, metadata={"help": "clip the gradient's global norm (0: no clipping)"})
    normalize_advantage: bool = field(default=False, metadata={"help": "standardise advantages within a rollout"})
    normalize_obs: bool = field(default=False, metadata={
        "help": "standardise observations with running statistics (saved in the checkpoint)"})
    hidden_sizes: str = field(default="64,64", metadata={"help": "hidden layer widths of the actor and the critic"})
    activation: str = field(default="tanh", metadata={"help": "'tanh' or 'relu'"})
    recurrent: bool = field(default=False, metadata={
        "help": "an LSTM policy: memory across steps, zeroed at episode ends, trained by BPTT over each rollout "
                "(remembers at most n_steps steps back)"})
    lstm_size: int = field(default=64, metadata={"help": "--recurrent: the LSTM's hidden units (after the "
                                                          "hidden_sizes encoder)"})
    init_log_std: float = field(default=0.0, metadata={
        "help": "Box actions: initial log sigma of the Gaussian (in units of half the action range)"})
    eval_every: int = field(default=20_000, metadata={
        "help": "env steps between evaluations of the deterministic policy (the best one is kept; 0: only at the end)"})
    eval_every_episodes: int = field(default=10, metadata={"help": "episodes per evaluation during training"})
    log_every: int = field(default=1_000, metadata={"help": "env steps between loss logs"})


def check_config(config: A2CConfig) -> None:
    """Raise ``ValueError`` naming every hyperparameter that cannot work."""
    check_config_fields(
        "A2C", config,
        at_least_one=("n_envs", "n_steps", "lstm_size", "eval_every_episodes", "log_every"),
        non_negative=("ent_coef", "vf_coef", "max_grad_norm", "eval_every"),
        positive=("learning_rate", "reward_scale"),
        unit_interval=("gamma", "gae_lambda"),
        choices={"optimizer": OPTIMIZERS, "activation": tuple(ACTIVATIONS)})


# ---------------------------------------------------------------------------------------------------
# Rollout storage, allocated once


class Rollout:
    """One rollout's [T, N] arrays, plus what bootstrapping needs: V of the observation after the last step and
    of the final observations of episodes cut by a time limit (their next row is a new episode), both computed
    while acting, and (recurrent policies) the state the rollout started from.

    What the envs return is stored in NumPy arrays (a copy per step costs a microsecond) and becomes
    tensors once per rollout; the sampled actions are tensors already.
    """

    def __init__(self, n_steps: int, envs: gym.vector.VectorEnv, device: torch.device):
        shape = (n_steps, envs.num_envs)
        obs_space, action_space = envs.single_observation_space, envs.single_action_space
        self.obs = np.zeros(shape + obs_space.shape, dtype=np.uint8 if obs_space.dtype == np.uint8 else np.float32)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.terminated = np.zeros(shape, dtype=np.float32)
        self.truncated = np.zeros(shape, dtype=np.float32)
        action_dtype = torch.long if isinstance(action_space, gym.spaces.Discrete) else torch.float32
        self.actions = torch.zeros(shape + action_space.shape, dtype=action_dtype, device=device)
        self.last_values = torch.zeros(envs.num_envs, device=device)
        self.cut: list[tuple[int, int, float]] = []  # (t, env, V(final observation)) of truncated episodes
        self.state0: State | None = None
        self.device = device

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    def starts(self) -> torch.Tensor:
        """[T, N] bool: an episode starts at step t (the previous step ended one; row 0's state is already zero)."""
        done = torch.from_numpy((self.terminated > 0) | (self.truncated > 0)).to(self.device)
        return torch.cat([torch.zeros_like(done[:1]), done[:-1]])


def state_rows(state: State | None, index: int) -> State | None:
    return None if state is None else (state[0][index : index + 1], state[1][index : index + 1])


@torch.inference_mode()  # lighter than no_grad: the tensors made while acting need no version counters
def collect_rollout(model: ActorCritic | RecurrentActorCritic, envs: gym.vector.VectorEnv, rollout: Rollout,
                    obs: np.ndarray, state: State | None, step: int, log: LogFn
                    ) -> tuple[np.ndarray, State | None, int]:
    """Fill ``rollout`` with ``n_steps`` steps of every env; returns the next observations, the policy's state
    (None for a feed-forward one) and the env-step count. Logs finished episodes and the rollout means of
    numeric info terms (the humanoid's ``imitation/*``)."""
    rollout.cut.clear()
    rollout.state0 = state
    info_means = InfoMeans()
    for t in range(len(rollout.obs)):
        rollout.obs[t] = obs
        actions, state = model.step(observations_to_tensor(obs, rollout.device), state)
        obs, rewards, terminated, truncated, infos = envs.step(model.env_action(actions))
        step += envs.num_envs
        rollout.actions[t] = actions
        rollout.rewards[t], rollout.terminated[t], rollout.truncated[t] = rewards, terminated, truncated
        if truncated.any():
            for env_index in np.flatnonzero(truncated & ~terminated):
                final = observations_to_tensor(np.asarray(infos["final_obs"][env_index])[None], rollout.device)
                value = model.state_value(final, state_rows(state, env_index))
                rollout.cut.append((t, int(env_index), float(value[0])))
        state = forget(state, terminated | truncated)
        if "episode" in infos:
            for episode_return, length in finished_episodes(infos):
                log("charts/episodic_return", episode_return, step)
                log("charts/episodic_length", length, step)
        info_means.add(infos)
    for key, mean in info_means.pop_means().items():
        log(f"imitation/{key}", mean, step)
    rollout.last_values[:] = model.state_value(observations_to_tensor(obs, rollout.device), state)
    return obs, state, step


# ---------------------------------------------------------------------------------------------------
# Update


def a2c_loss(model: ActorCritic | RecurrentActorCritic, rollout: Rollout, config: A2CConfig
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    rewards = rollout.tensor(rollout.rewards)
    if config.reward_scale != 1.0:
        rewards = rewards * config.reward_scale
    terminated, truncated = rollout.tensor(rollout.terminated), rollout.tensor(rollout.truncated)
    obs = observations_to_tensor(rollout.obs, rollout.device)
    log_prob, entropy, values = model.evaluate_rollout(obs, rollout.actions, rollout.state0, rollout.starts())
    with torch.no_grad():
        # V(s'_t): the next row's value, except after the last row and where an episode was cut.
        next_values = torch.cat([values[1:], rollout.last_values[None]])
        for t, env_index, value in rollout.cut:
            next_values[t, env_index] = value
        advantages = gae(rewards, values, next_values, terminated, truncated, config.gamma, config.gae_lambda)
        targets = advantages + values
        if config.normalize_advantage:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    policy_loss = -(log_prob * advantages.flatten()).mean()
    value_loss = nn.functional.mse_loss(values, targets)
    entropy = entropy.mean()
    loss = policy_loss + config.vf_coef * value_loss
    if config.ent_coef > 0:  # without a weight, keep the entropy out of the graph: a cheaper backward pass
        loss = loss - config.ent_coef * entropy
    return loss, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}


# ---------------------------------------------------------------------------------------------------
# Training loop


def train_a2c(config: A2CConfig, run: RunContext) -> ActorCritic | RecurrentActorCritic:
    """Train A2C on ``run.env_id``; returns the best policy found by evaluation."""
    check_config(config)
    with policy_gradient_run(config, run, n_envs=config.n_envs) as state:
        train_loop(state.model, state.optimizer, state.keeper, state.envs, config, run, state.start_step)
    return state.keeper.best


def train_loop(model: ActorCritic | RecurrentActorCritic, optimizer: torch.optim.Optimizer, keeper: KeepBest,
               envs: gym.vector.VectorEnv, config: A2CConfig, run: RunContext, step: int) -> None:
    rollout = Rollout(config.n_steps, envs, next(model.parameters()).device)
    obs, _ = envs.reset(seed=run.seed + step)  # a resumed run plays new episodes, not the first ones again
    state = model.initial_state(envs.num_envs)
    checkpoint, evaluation = Every(run.checkpoint_every, step), Every(config.eval_every, step)
    loss_log = Every(config.log_every, step)
    save_training_state(run, step, model, keeper, optimizer)
    while step < run.total_steps:
        if config.anneal_lr:
            learning_rate = config.learning_rate * (1.0 - step / run.total_steps)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate
        obs, state, step = collect_rollout(model, envs, rollout, obs, state, step, run.log)
        loss, terms = a2c_loss(model, rollout, config)
        gradient_step(optimizer, loss, config.max_grad_norm, step)
        # Only after the gradient step, so that the gradient saw the statistics the actions were sampled with.
        model.update_normalizer(rollout.tensor(rollout.obs))
        if loss_log.due(step):
            for name, value in terms.items():
                run.log(f"losses/{name}", float(value.detach()), step)
            if config.anneal_lr:
                run.log("charts/learning_rate", optimizer.param_groups[0]["lr"], step)
        if evaluation.due(step):
            run.log("eval/mean_return", keeper.evaluate(), step)
        if checkpoint.due(step):
            save_training_state(run, step, model, keeper, optimizer)
    run.log("eval/mean_return", keeper.evaluate(), step)  # the final policy competes too
    save_training_state(run, step, model, keeper, optimizer)


def load_policy(path: str | Path, env: gym.Env, device: str | torch.device = "cpu"
                ) -> Callable[[np.ndarray], np.ndarray]:
    """The best deterministic policy of an A2C run: a batch of observations -> a batch of actions."""
    model = load_network(path, env, A2CConfig, build_actor_critic, ("best_policy", "policy"), device)
    return actor_from_network(model)

