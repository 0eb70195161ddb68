r"""Deep Q-network, DQN (Mnih et al., 2015), with the double-DQN target (van Hasselt et al., 2016) as an option.

Q-learning with a neural network Q_theta(s, a) trained by stochastic gradient descent on the TD loss
over transitions (s, a, r, s', d) drawn uniformly from a replay buffer D:

    L(theta) = E_{(s, a, r, s', d) ~ D} [ (y - Q_theta(s, a))^2 ]

    y = r + gamma (1 - d) max_a' Q_target(s', a')                         (DQN)
    y = r + gamma (1 - d) Q_target(s', argmax_a' Q_theta(s', a'))          (double DQN)

d = 1 only when s' is terminal: a time-limit truncation is not the end of the task, so its target
still bootstraps. y is a constant: it is computed under ``torch.no_grad()`` and the gradient flows
only through Q_theta(s, a). Q_target is a lagged copy of Q_theta, refreshed every
``target_update_interval`` env steps either by a copy (``target_update="hard"``) or by Polyak
averaging theta_target <- (1 - tau) theta_target + tau theta (``"polyak"``). Double DQN picks a' with
Q_theta and scores it with Q_target, which removes most of the max operator's overestimation. With
``loss="huber"`` the square becomes the Huber loss (quadratic for |y - Q| < 1, linear beyond), which
bounds the gradient of rare large TD errors; the gradient's norm is clipped as well.

The behaviour policy is epsilon-greedy in Q_theta, epsilon decaying linearly from ``epsilon_start``
to ``epsilon_end`` over the first ``exploration_fraction`` of the run. Every ``train_frequency`` env
steps the agent takes ``gradient_steps`` gradient steps, once the buffer holds ``learning_starts``
transitions.

Reading order: DQNConfig -> checks -> the Q-network -> the TD target and loss -> target updates ->
acting, evaluation and keeping the best -> the training loop (:func:`train_dqn`) -> :func:`load_policy`.

Keep the best: every ``eval_every`` env steps (and at the end) the greedy policy plays
``eval_every_episodes`` episodes on a separate env; the weights with the best mean return so far are
kept as ``best_q_network``. :func:`train_dqn` returns them and :func:`load_policy` loads them, since
DQN's greedy policy can get worse late in training (the final weights are used if no evaluation ran).

Checkpoints (every ``run.checkpoint_every`` env steps and at the end) hold the Q-network, the target
network, the best Q-network, Adam's state and the step counter; resuming continues the step counter
and with it the epsilon schedule. The replay buffer is not saved (it would dwarf the networks): a
resumed run refills it for ``learning_starts`` steps, acting with the restored network, before it
learns again.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.buffers import Batch, ReplayBuffer
from agents.envs import make_env, make_vector_env
from agents.evaluate import EVAL_SEED_OFFSET, KeepBest
from agents.networks import encoder_for, is_image_space, layer_init, parse_hidden_sizes
from agents.optim import gradient_step, make_optimizer
from agents.run import RunContext, check_config_fields, load_network
from agents.tabular import agent_rng, linear_schedule
from mpenv.device import module_device, seed_everything
from mpenv.networks import polyak_update

LOG_EVERY = 100  # env steps between logged losses and epsilons
SAMPLE_BYTES = 32 * 2**20  # memory for the minibatches drawn at once (see minibatches)


@dataclass
class DQNConfig:
    """Hyperparameters of DQN. The defaults, rl-baselines3-zoo's tuned CartPole-v1 schedule with
    CleanRL's 120-84 network, solve CartPole-v1 (greedy return 500) within 50k env steps."""

    learning_rate: float = field(default=2.3e-3, metadata={"help": "Adam step size"})
    buffer_size: int = field(default=100_000, metadata={"help": "replay buffer capacity (transitions)"})
    batch_size: int = field(default=64, metadata={"help": "transitions per gradient step"})
    gamma: float = field(default=0.99, metadata={"help": "discount factor in [0, 1]"})
    learning_starts: int = field(default=1_000, metadata={
        "help": "transitions collected (at epsilon-greedy) before the first gradient step, again after a resume"})
    train_frequency: int = field(default=256, metadata={"help": "env steps between two rounds of gradient steps"})
    gradient_steps: int = field(default=128, metadata={"help": "gradient steps per round"})
    target_update: str = field(default="hard", metadata={
        "help": "'hard': copy Q_theta into Q_target; 'polyak': theta_target <- (1 - tau) theta_target + tau theta"})
    target_update_interval: int = field(default=10, metadata={"help": "env steps between target-network updates"})
    tau: float = field(default=0.005, metadata={"help": "Polyak step in (0, 1] (target_update='polyak' only)"})
    epsilon_start: float = field(default=1.0, metadata={"help": "exploration probability at the start"})
    epsilon_end: float = field(default=0.04, metadata={"help": "exploration probability after the decay"})
    exploration_fraction: float = field(default=0.16, metadata={
        "help": "fraction of the run over which epsilon decays linearly, in (0, 1]"})
    loss: str = field(default="huber", metadata={"help": "TD loss: 'huber' (smooth L1) or 'mse'"})
    max_grad_norm: float = field(default=10.0, metadata={"help": "clip the gradient's global L2 norm to this"})
    double_dqn: bool = field(default=False, metadata={
        "help": "double-DQN target: a' chosen by Q_theta, valued by Q_target"})
    hidden_sizes: str = field(default="120,84", metadata={
        "help": "widths of the MLP's hidden layers, comma-separated (vector observations; images use the Nature CNN)"})
    eval_every: int = field(default=2_500, metadata={
        "help": "env steps between greedy evaluations that keep the best weights (0: keep the final weights)"})
    # Not "eval_episodes": mpenv-train's --eval-episodes is its own evaluation after training.
    eval_every_episodes: int = field(default=10, metadata={"help": "episodes per greedy evaluation during training"})


# ---------------------------------------------------------------------------------------------------
# Checks: everything that can be wrong is reported before the first env step


def check_config(config: DQNConfig) -> None:
    """Raise ``ValueError`` naming every hyperparameter that cannot work."""
    problems = []
    if not 0.0 < config.tau <= 1.0:
        problems.append(f"tau must be in (0, 1], got {config.tau}")
    if not 0.0 < config.exploration_fraction <= 1.0:
        problems.append(f"exploration_fraction must be in (0, 1], got {config.exploration_fraction}")
    if isinstance(config.batch_size, int) and isinstance(config.buffer_size, int) \
            and config.batch_size > config.buffer_size:
        problems.append(f"batch_size ({config.batch_size}) cannot exceed buffer_size ({config.buffer_size})")
    check_config_fields(
        "DQN", config,
        at_least_one=("buffer_size", "batch_size", "train_frequency", "gradient_steps", "target_update_interval",
                      "eval_every_episodes"),
        non_negative=("learning_starts", "eval_every"),
        positive=("learning_rate", "max_grad_norm"),
        unit_interval=("gamma", "epsilon_start", "epsilon_end"),
        choices={"target_update": ("hard", "polyak"), "loss": ("huber", "mse")},
        problems=problems)


def check_action_space(space: gym.Space, env_id: str) -> int:
    """DQN has one output per action, so it needs a finite action set; returns the number of actions."""
    if isinstance(space, gym.spaces.Discrete) and int(space.start) == 0:
        return int(space.n)
    if isinstance(space, gym.spaces.Box):
        raise ValueError(f"dqn needs a Discrete action space, but {env_id} has continuous actions {space}; "
                         "use reinforce or a2c, which learn a Gaussian policy for Box actions")
    if isinstance(space, gym.spaces.Discrete):
        raise ValueError(f"dqn needs actions numbered from 0, but {env_id} has {space}; shift them with a wrapper")
    raise ValueError(f"dqn needs a Discrete action space, but {env_id} has {space}")


# ---------------------------------------------------------------------------------------------------
# The Q-network: observation -> one value per action


class QNetwork(nn.Module):
    """Q_theta(s, .): an encoder chosen by the observation space (MLP for vectors and one-hot states,
    the Nature CNN for uint8 images) and a linear layer with one output per action."""

    def __init__(self, observation_space: gym.Space, n_actions: int, hidden: tuple[int, ...] = (120, 84)):
        super().__init__()
        self.encoder, n_features = encoder_for(observation_space, hidden, activation=nn.ReLU)
        self.head = layer_init(nn.Linear(n_features, n_actions), std=1.0)
        # The CNN scales uint8 pixels itself and the one-hot encoder wants integers; vectors must be float32
        # (an env may return float64, and observations from a caller may be anything numeric).
        self.float_input = not (is_image_space(observation_space) or isinstance(observation_space, gym.spaces.Discrete))
        # An MLP's linear layers in order (with the head), for the direct path of forward; None otherwise.
        leaves = [module for module in self.encoder.modules() if not isinstance(module, nn.Sequential)]
        is_mlp = [type(module) for module in leaves] == [nn.Flatten] + [nn.Linear, nn.ReLU] * len(hidden)
        self.linears = [*leaves[1::2], self.head] if self.float_input and is_mlp else None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.float_input:
            obs = obs.float()  # no copy when it already is
        if self.linears is None:
            return self.head(self.encoder(obs))
        # The same MLP written out: calling its seven nested modules costs more than the arithmetic of a
        # 120-84 network, on every env step (acting) and every gradient step. ReLU in place: no new
        # tensor, and the linear layer's backward needs only its input, not the output overwritten here.
        features = obs.flatten(1)
        for linear in self.linears[:-1]:
            features = torch.relu_(F.linear(features, linear.weight, linear.bias))
        return F.linear(features, self.head.weight, self.head.bias)


def storage_dtype(space: gym.Space) -> type:
    """How the replay buffer stores observations: images as uint8 (4x smaller than float), states as int64."""
    if is_image_space(space):
        return np.uint8
    if isinstance(space, gym.spaces.Discrete):
        return np.int64
    return np.float32


# ---------------------------------------------------------------------------------------------------
# The TD target and loss


def td_target(q_net: nn.Module, target_net: nn.Module, rewards: torch.Tensor, next_obs: torch.Tensor,
              dones: torch.Tensor, gamma: float, double_dqn: bool) -> torch.Tensor:
    """y = r + gamma (1 - d) max_a' Q_target(s', a'), or with double DQN
    y = r + gamma (1 - d) Q_target(s', argmax_a' Q_theta(s', a')); a constant for the gradient."""
    with torch.no_grad():
        next_q = target_net(next_obs)
        if double_dqn:
            next_actions = q_net(next_obs).argmax(dim=1, keepdim=True)
            next_value = next_q.gather(1, next_actions).squeeze(1)
        else:
            next_value = next_q.max(dim=1).values
        return rewards + gamma * (1.0 - dones) * next_value


def td_loss(q_net: nn.Module, target_net: nn.Module, batch: Batch,
            config: DQNConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The minibatch estimate of L(theta) and the Q_theta(s, a) it was computed from (for logging)."""
    y = batch.targets
    if y is None:
        y = td_target(q_net, target_net, batch.rewards, batch.next_obs, batch.dones, config.gamma, config.double_dqn)
    q_taken = q_net(batch.obs).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
    loss = F.smooth_l1_loss(q_taken, y) if config.loss == "huber" else F.mse_loss(q_taken, y)
    return loss, q_taken


def as_tensors(batch: Batch, device: torch.device) -> Batch:
    """The sampled numpy arrays as torch tensors; ``from_numpy`` shares their memory (no copy on CPU)."""
    return Batch(*(None if array is None else torch.from_numpy(array).to(device) for array in batch))


def minibatches(buffer: ReplayBuffer, config: DQNConfig, device: torch.device, q_net: nn.Module,
                target_net: nn.Module) -> Iterator[Batch]:
    """The ``gradient_steps`` minibatches of one round, each drawn uniformly from the buffer (which does
    not change during the round). They are drawn together, as many at a time as fit in
    ``SAMPLE_BYTES`` (image observations are large), and handed out one by one as views.

    Q_target does not change during a round either (the round happens at one env step, the target
    update after it), so the DQN targets y of all the minibatches drawn together come from one forward
    pass of Q_target: the same numbers as one pass per minibatch, at a fraction of the cost. The
    double-DQN target also needs Q_theta, which changes with every gradient step: it stays per step."""
    per_draw = max(1, min(config.gradient_steps, SAMPLE_BYTES // (buffer.transition_bytes * config.batch_size)))
    for first in range(0, config.gradient_steps, per_draw):
        stacked = as_tensors(buffer.sample(config.batch_size, min(per_draw, config.gradient_steps - first)), device)
        if not config.double_dqn:
            targets = td_target(q_net, target_net, stacked.rewards.flatten(), stacked.next_obs.flatten(0, 1),
                                stacked.dones.flatten(), config.gamma, double_dqn=False)
            stacked = stacked._replace(targets=targets.view_as(stacked.rewards))
        for i in range(len(stacked.obs)):
            yield Batch(*(None if column is None else column[i] for column in stacked))


# ---------------------------------------------------------------------------------------------------
# Target-network updates


def hard_update(target_net: nn.Module, q_net: nn.Module) -> None:
    """theta_target <- theta (a parameter copy: cheaper than load_state_dict, which is called often)."""
    with torch.no_grad():
        for target_param, param in zip(target_net.parameters(), q_net.parameters(), strict=True):
            target_param.copy_(param)


def update_target(target_net: nn.Module, q_net: nn.Module, config: DQNConfig) -> None:
    if config.target_update == "hard":
        hard_update(target_net, q_net)
    else:
        polyak_update(target_net, q_net, config.tau)


# ---------------------------------------------------------------------------------------------------
# Acting and evaluation


def greedy_actions(q_net: nn.Module, obs: np.ndarray, device: torch.device) -> np.ndarray:
    """argmax_a Q_theta(s, a) for a batch of observations."""
    with torch.inference_mode():  # lighter than no_grad: no version counters on the new tensors
        return q_net(torch.as_tensor(obs, device=device)).argmax(dim=1).cpu().numpy()


def epsilon_greedy_actions(q_net: nn.Module, obs: np.ndarray, epsilon: float, n_actions: int,
                           rng: np.random.Generator, device: torch.device) -> np.ndarray:
    """With probability epsilon uniformly random actions (without running the network), else greedy."""
    if rng.random() < epsilon:
        return rng.integers(n_actions, size=len(obs))
    return greedy_actions(q_net, obs, device)


def actor_from_network(q_net: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """The greedy policy of a Q-network as a function of a batch of observations."""
    device = module_device(q_net)
    return lambda obs: greedy_actions(q_net, np.asarray(obs), device)


# ---------------------------------------------------------------------------------------------------
# The training loop


def train_dqn(config: DQNConfig, run: RunContext) -> nn.Module:
    """Train a Q-network on ``run.env_id`` until env step ``run.total_steps`` (a resumed run does the
    steps left); returns the best evaluated Q-network (the final one if ``eval_every`` is 0)."""
    check_config(config)
    run.start()
    with contextlib.ExitStack() as closing:
        # One env, stepped directly: DQN acts in one env at a time, and a vector env's bookkeeping (autoreset,
        # info merging, episode statistics) would cost more than CartPole's physics, every step.
        env = make_env(run.env_id, run.env_kwargs)
        closing.callback(env.close)
        n_actions = check_action_space(env.action_space, run.env_id)
        eval_envs = None
        if config.eval_every:
            eval_envs = make_vector_env(run.env_id, run.env_kwargs, config.eval_every_episodes,
                                        run.seed + EVAL_SEED_OFFSET)
            closing.callback(eval_envs.close)
        return training_loop(config, run, env, eval_envs, n_actions)


def training_loop(config: DQNConfig, run: RunContext, env: gym.Env, eval_envs: gym.vector.VectorEnv | None,
                  n_actions: int) -> nn.Module:
    """The body of :func:`train_dqn`, given its envs (``eval_envs`` None: no evaluation)."""
    seed_everything(run.seed)
    rng = agent_rng(run.seed)  # epsilon coins and random actions
    device = run.torch_device
    obs_space = env.observation_space
    q_net = QNetwork(obs_space, n_actions, parse_hidden_sizes(config.hidden_sizes)).to(device)
    target_net = copy.deepcopy(q_net)
    # Adam with torch's default eps (1e-8), as in the DQN implementations the defaults come from.
    optimizer = make_optimizer("adam", q_net.parameters(), config.learning_rate, eps=1e-8)
    keeper = KeepBest(q_net, actor_from_network(q_net), eval_envs, run.seed + EVAL_SEED_OFFSET)
    start_step, extra = run.restore({"q_network": q_net, "target_network": target_net, "best_q_network": keeper.best},
                                    {"optimizer": optimizer})
    keeper.load_state(extra)

    def save(step: int) -> None:
        run.save(step, {"q_network": q_net, "target_network": target_net, "best_q_network": keeper.network},
                 {"optimizer": optimizer}, **keeper.state())

    # The buffer is not checkpointed; it never needs to hold more than the steps left in this run.
    buffer = ReplayBuffer(min(config.buffer_size, max(run.total_steps - start_step, 1)), obs_space.shape,
                          storage_dtype(obs_space), seed=run.seed)
    epsilon_at = linear_schedule(config.epsilon_start, config.epsilon_end, config.exploration_fraction)
    min_transitions = max(config.learning_starts, config.batch_size)
    last_loss_log = -LOG_EVERY
    obs, _ = env.reset(seed=run.seed)
    obs = np.asarray(obs, dtype=buffer.obs.dtype)[None]  # a batch of one, as the network and the buffer take
    episode_return, episode_length = 0.0, 0
    step = start_step
    for step in range(start_step + 1, run.total_steps + 1):
        # Act epsilon-greedily; store (s, a, r, s', d) with d = terminated: a truncation still bootstraps.
        epsilon = epsilon_at(step / run.total_steps)
        actions = epsilon_greedy_actions(q_net, obs, epsilon, n_actions, rng, device)
        next_obs, reward, terminated, truncated, _ = env.step(actions[0])
        next_obs = np.asarray(next_obs, dtype=buffer.obs.dtype)[None]
        # s' is the episode's true last observation at its end (the reset comes after)
        buffer.add(obs, next_obs, actions, np.array([reward]), np.array([terminated]))
        episode_return, episode_length = episode_return + float(reward), episode_length + 1
        if terminated or truncated:
            run.log("charts/episodic_return", episode_return, step)
            run.log("charts/episodic_length", episode_length, step)
            episode_return, episode_length = 0.0, 0
            next_obs, _ = env.reset()
            next_obs = np.asarray(next_obs, dtype=buffer.obs.dtype)[None]
        obs = next_obs

        # Learn: a round of gradient steps on L(theta) every train_frequency steps; refresh Q_target.
        if len(buffer) >= min_transitions:
            if step % config.train_frequency == 0:
                for batch in minibatches(buffer, config, device, q_net, target_net):
                    loss, q_taken = td_loss(q_net, target_net, batch, config)
                    gradient_step(optimizer, loss, config.max_grad_norm, step, "losses/td_loss")
                if step - last_loss_log >= LOG_EVERY:  # .item() waits for the device: only when logging
                    run.log("losses/td_loss", loss.item(), step)
                    run.log("losses/q_values", q_taken.mean().item(), step)
                    last_loss_log = step
            if step % config.target_update_interval == 0:
                update_target(target_net, q_net, config)
        if step % LOG_EVERY == 0:
            run.log("charts/epsilon", epsilon, step)

        # Evaluated at the end too, so the final weights compete (unless there is nothing to compete with).
        if eval_envs is not None and (step % config.eval_every == 0 or step == run.total_steps > config.eval_every):
            run.log("eval/mean_return", keeper.evaluate(), step)
        if step % run.checkpoint_every == 0:
            save(step)
    if step % run.checkpoint_every != 0 or step == start_step:
        save(step)
    return keeper.network


# ---------------------------------------------------------------------------------------------------
# Reloading a trained policy


def load_policy(path: str | Path, env: gym.Env,
                device: str | torch.device = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """The greedy policy of a DQN run (its best evaluated weights) as a function of a batch of
    observations; ``path`` is the run directory or its ``checkpoint.pt``, whose ``config.json``
    supplies the network's shape."""
    env_id = str(getattr(env.spec, "id", env))

    def build(config: DQNConfig, observation_space: gym.Space, action_space: gym.Space) -> QNetwork:
        n_actions = check_action_space(action_space, env_id)
        return QNetwork(observation_space, n_actions, parse_hidden_sizes(config.hidden_sizes))

    return actor_from_network(load_network(path, env, DQNConfig, build, ("best_q_network",), device))
