"""Policy heads and the actor-critic network shared by the policy-gradient agents (REINFORCE, A2C).

A stochastic policy pi_theta(a|s) is a network that outputs the parameters of a distribution over
actions. The agents need four things from it, written out here by hand rather than taken from
``torch.distributions`` so that the formulas of the course are the code:

* Discrete actions, a Categorical over logits l(s):
      log pi(a|s) = l_a - log sum_b exp(l_b)                  (log softmax)
      H[pi(.|s)] = - sum_a pi(a|s) log pi(a|s)
* Box actions, a diagonal Gaussian N(mu(s), diag(sigma^2)) with a learned, state-independent log sigma:
      log N(a; mu, sigma) = -1/2 sum_i [((a_i - mu_i) / sigma_i)^2 + 2 log sigma_i + log 2 pi]
      H[N(mu, sigma)] = sum_i (log sigma_i + 1/2 log 2 pi e)
* sampling (``act``) and the deterministic action (the mode: argmax / the mean) for evaluation;
* the action the env is stepped with: a Gaussian sample lives in a normalised space where [-1, 1]
  spans the Box, and is scaled and clipped to the bounds only on its way to the env. Log-probabilities
  are always of the unclipped sample, so the gradient sees the distribution the action came from.

    model = ActorCritic(env.observation_space, env.action_space, hidden=(64, 64))
    actions = model.act(obs)                                  # sampling, under torch.no_grad()
    env.step(model.env_action(actions))                       # scaled and clipped for Box actions
    log_prob, entropy = model.log_prob_and_entropy(obs, actions)
    values = model.value(obs)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from agents.networks import encoder_for, is_image_space, layer_init, parse_hidden_sizes

LOG_2PI = math.log(2 * math.pi)
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}

# ---------------------------------------------------------------------------------------------------
# The formulas


def categorical_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log pi(a|s) = l_a - log sum_b exp(l_b) for every action: log softmax over the last dimension."""
    return torch.log_softmax(logits, dim=-1)  # one fused kernel; stable for large logits


def categorical_log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log pi(a|s) of the taken actions: one per row of ``logits`` [B, A], ``actions`` [B]."""
    return categorical_log_probs(logits).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H = -sum_a pi(a) log pi(a), per row of ``logits`` [B, A]."""
    log_pi = categorical_log_probs(logits)
    return -(log_pi.exp() * log_pi).sum(-1)


def gaussian_log_prob(actions: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(a; mu, sigma) = -1/2 sum_i [((a_i - mu_i)/sigma_i)^2 + 2 log sigma_i + log 2 pi], per row [B, D]."""
    z = (actions - mean) * torch.exp(-log_std)
    return -0.5 * (z.pow(2) + 2 * log_std + LOG_2PI).sum(-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """H = sum_i (log sigma_i + 1/2 log 2 pi e); reduces the last dimension of ``log_std``."""
    return (log_std + 0.5 * (LOG_2PI + 1.0)).sum(-1)


# ---------------------------------------------------------------------------------------------------
# Policy heads: features -> distribution parameters, and everything that follows from them


class CategoricalHead(nn.Module):
    """Logits over ``n_actions`` discrete actions."""

    def __init__(self, n_features: int, n_actions: int):
        super().__init__()
        # A small output gain makes the initial policy close to uniform: maximal exploration at the start.
        self.logits = layer_init(nn.Linear(n_features, n_actions), std=0.01)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.logits(features)

    def sample(self, logits: torch.Tensor) -> torch.Tensor:
        # Gumbel-max trick: argmax_a (l_a + g_a) with g_a = -log E_a, E_a ~ Exp(1), is a sample of
        # softmax(l); cheaper than normalising the probabilities and drawing from them.
        return (logits - torch.empty_like(logits).exponential_().log()).argmax(-1)

    def mode(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(-1)

    def log_prob_and_entropy(self, logits: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return categorical_log_prob(logits, actions), categorical_entropy(logits)

    def env_action(self, actions: torch.Tensor) -> np.ndarray:
        return actions.cpu().numpy()


class GaussianHead(nn.Module):
    """A diagonal Gaussian over a flat Box: the mean is a function of the state, log sigma a learned vector.

    The Gaussian lives in a normalised action space: ``env_action`` maps [-1, 1] to [low, high] in every
    dimension with finite bounds (other dimensions pass unscaled) and clips to the Box, so one initial
    sigma suits a torque of +-2 and a throttle of [0, 1] alike.
    """

    def __init__(self, n_features: int, action_space: gym.spaces.Box, init_log_std: float = 0.0):
        super().__init__()
        n_dims = int(action_space.shape[0])
        self.mean = layer_init(nn.Linear(n_features, n_dims), std=0.01)
        self.log_std = nn.Parameter(torch.full((n_dims,), float(init_log_std)))
        low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
        self.low, self.high = low.astype(np.float32), high.astype(np.float32)
        bounded = np.isfinite(low) & np.isfinite(high)
        low, high = np.where(bounded, low, -1.0), np.where(bounded, high, 1.0)  # unbounded: identity map
        self.center = ((high + low) / 2).astype(np.float32)
        self.half_range = ((high - low) / 2).astype(np.float32)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mean(features)

    def sample(self, mean: torch.Tensor) -> torch.Tensor:
        return mean + torch.exp(self.log_std) * torch.randn_like(mean)

    def mode(self, mean: torch.Tensor) -> torch.Tensor:
        return mean

    def log_prob_and_entropy(self, mean: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return gaussian_log_prob(actions, mean, self.log_std), gaussian_entropy(self.log_std).expand(mean.shape[:-1])

    def env_action(self, actions: torch.Tensor) -> np.ndarray:
        return np.clip(self.center + self.half_range * actions.cpu().numpy(), self.low, self.high)


# ---------------------------------------------------------------------------------------------------
# Observation normalisation


class RunningNormalizer(nn.Module):
    """Standardises observations with a running mean and variance of everything seen so far.

    The statistics are buffers, so they travel with the model's ``state_dict`` into checkpoints and a
    loaded policy sees inputs scaled exactly as in training. They change only through ``update``.
    """

    def __init__(self, shape: Sequence[int], clip: float = 10.0, eps: float = 1e-8):
        super().__init__()
        self.register_buffer("mean", torch.zeros(tuple(shape), dtype=torch.float64))
        self.register_buffer("var", torch.ones(tuple(shape), dtype=torch.float64))
        self.register_buffer("count", torch.tensor(eps, dtype=torch.float64))
        self.clip, self.eps = clip, eps

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        """Merge the moments of ``batch`` [B, *shape] into the running ones (Chan et al.'s parallel formula)."""
        batch = batch.reshape(-1, *self.mean.shape).double()
        n, mean, var = batch.shape[0], batch.mean(0), batch.var(0, unbiased=False)
        total = self.count + n
        delta = mean - self.mean
        self.var.copy_((self.var * self.count + var * n + delta.pow(2) * self.count * n / total) / total)
        self.mean.add_(delta * n / total)
        self.count.copy_(total)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        scaled = (obs - self.mean.float()) / torch.sqrt(self.var.float() + self.eps)
        return scaled.clamp(-self.clip, self.clip)


# ---------------------------------------------------------------------------------------------------
# The actor-critic module


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    """The spaces a policy-gradient agent can handle; anything else is a ValueError naming the space."""
    if isinstance(action_space, gym.spaces.Box):
        if len(action_space.shape) != 1 or not np.issubdtype(action_space.dtype, np.floating):
            raise ValueError(f"unsupported action space {action_space}: Box actions must be a flat float vector")
    elif not isinstance(action_space, gym.spaces.Discrete):
        raise ValueError(f"unsupported action space {action_space}: policy-gradient agents take Discrete "
                         "or flat Box actions")
    if not isinstance(observation_space, (gym.spaces.Box, gym.spaces.Discrete)):
        raise ValueError(f"unsupported observation space {observation_space}: policy-gradient agents take Box or "
                         "Discrete observations; flatten Dict/Tuple spaces with gymnasium.wrappers.FlattenObservation")


def activation_named(name: str) -> type[nn.Module]:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs on the same (optionally normalised) observations.

    Separate networks keep the two losses from fighting over shared features: the critic's squared
    error, large while values are still far off, cannot drag the policy's features around.
    """

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, hidden: Sequence[int] = (64, 64),
                 activation: type[nn.Module] = nn.Tanh, init_log_std: float = 0.0, normalize_obs: bool = False):
        super().__init__()
        check_spaces(observation_space, action_space)
        if normalize_obs and (not isinstance(observation_space, gym.spaces.Box) or is_image_space(observation_space)):
            raise ValueError(f"normalize_obs needs vector Box observations, not {observation_space}")
        self.normalizer: nn.Module = RunningNormalizer(observation_space.shape) if normalize_obs else nn.Identity()
        self.actor_body, n_features = encoder_for(observation_space, hidden, activation)
        self.head: CategoricalHead | GaussianHead
        if isinstance(action_space, gym.spaces.Discrete):
            self.head = CategoricalHead(n_features, int(action_space.n))
        else:
            self.head = GaussianHead(n_features, action_space, init_log_std)
        critic_body, n_features = encoder_for(observation_space, hidden, activation)
        self.critic = nn.Sequential(critic_body, layer_init(nn.Linear(n_features, 1), std=1.0))

    def distribution(self, obs: torch.Tensor) -> torch.Tensor:
        """The policy's distribution parameters for a batch of observations: logits, or the Gaussian mean."""
        return self.head(self.actor_body(self.normalizer(obs)))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(self.normalizer(obs)).squeeze(-1)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Sampled actions (Gaussian ones unclipped, in the normalised action space)."""
        return self.head.sample(self.distribution(obs))

    def deterministic_action(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head.mode(self.distribution(obs))

    def log_prob_and_entropy(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head.log_prob_and_entropy(self.distribution(obs), actions)

    def env_action(self, actions: torch.Tensor) -> np.ndarray:
        """What to pass to ``env.step``: integer actions, or Gaussian samples scaled and clipped to the Box."""
        return self.head.env_action(actions)

    def update_normalizer(self, obs: torch.Tensor) -> None:
        if isinstance(self.normalizer, RunningNormalizer):
            self.normalizer.update(obs)


def build_actor_critic(config: Any, observation_space: gym.Space, action_space: gym.Space) -> ActorCritic:
    """The network a config describes (fields ``hidden_sizes``, ``activation``, ``init_log_std``, ``normalize_obs``)."""
    return ActorCritic(observation_space, action_space, parse_hidden_sizes(config.hidden_sizes),
                       activation_named(config.activation), config.init_log_std, config.normalize_obs)


# ---------------------------------------------------------------------------------------------------
# Acting with a trained policy


def observations_to_tensor(obs: np.ndarray, device: torch.device) -> torch.Tensor:
    tensor = torch.as_tensor(obs, device=device)
    return tensor if tensor.dtype == torch.uint8 else tensor.float()


def actor_from_network(model: ActorCritic) -> Callable[[np.ndarray], np.ndarray]:
    """A batch of observations -> the batch of deterministic actions, ready for ``env.step``."""
    device = next(model.parameters()).device
    model.eval()  # no layer behaves differently today; a future dropout or norm layer would

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model.env_action(model.deterministic_action(observations_to_tensor(obs, device)))

    return act
