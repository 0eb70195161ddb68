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


def make_normalizer(observation_space: gym.Space, normalize_obs: bool) -> nn.Module:
    """Running observation statistics (vector Box observations only), or the identity."""
    if not normalize_obs:
        return nn.Identity()
    if not isinstance(observation_space, gym.spaces.Box) or is_image_space(observation_space):
        raise ValueError(f"normalize_obs needs vector Box observations, not {observation_space}")
    return RunningNormalizer(observation_space.shape)


def make_head(n_features: int, action_space: gym.Space, init_log_std: float) -> CategoricalHead | GaussianHead:
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalHead(n_features, int(action_space.n))
    return GaussianHead(n_features, action_space, init_log_std)


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs on the same (optionally normalised) observations.

    Separate networks keep the two losses from fighting over shared features: the critic's squared
    error, large while values are still far off, cannot drag the policy's features around.
    """

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, hidden: Sequence[int] = (64, 64),
                 activation: type[nn.Module] = nn.Tanh, init_log_std: float = 0.0, normalize_obs: bool = False):
        super().__init__()
        check_spaces(observation_space, action_space)
        self.normalizer = make_normalizer(observation_space, normalize_obs)
        self.actor_body, n_features = encoder_for(observation_space, hidden, activation)
        self.head = make_head(n_features, action_space, init_log_std)
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

    # The rollout interface of A2C, shared with RecurrentActorCritic: a feed-forward policy carries no state.

    recurrent = False

    def initial_state(self, batch: int) -> None:
        return None

    def step(self, obs: torch.Tensor, state: None, deterministic: bool = False) -> tuple[torch.Tensor, None]:
        return (self.deterministic_action(obs) if deterministic else self.act(obs)), None

    def state_value(self, obs: torch.Tensor, state: None) -> torch.Tensor:
        return self.value(obs)

    def evaluate_rollout(self, obs: torch.Tensor, actions: torch.Tensor, state0: None, starts: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log pi(a_t|s_t) and the entropy [T * N], and V(s_t) [T, N], of a rollout's ``obs`` [T, N, ...]."""
        flat_obs = obs.flatten(0, 1)
        log_prob, entropy = self.log_prob_and_entropy(flat_obs, actions.flatten(0, 1))
        return log_prob, entropy, self.value(flat_obs).view(starts.shape)


# ---------------------------------------------------------------------------------------------------
# The recurrent actor-critic

State = tuple[torch.Tensor, torch.Tensor]  # the LSTM's (h, c), each [N, H]


class RecurrentActorCritic(nn.Module):
    """An LSTM policy for partially observable envs: pi(a_t | h_t) and V(h_t), where the hidden state
    h_t = LSTM(f(o_t), h_{t-1}) summarises the observations so far (f an MLP encoder).

    The actor and the critic share the encoder and the LSTM (one memory for both, as in CleanRL's
    ``ppo_atari_lstm.py``), with a linear head each. The LSTM is ``mpenv.nn``'s, so its gradients come from the
    hand-written BPTT (``mpenv.nn.RecurrentModule``); its forget gate starts at bias 1, open enough to carry a
    cue across tens of steps from the first update.

    The state is zeroed where an episode starts, while acting (:func:`forget`) and in the unrolled forward of a
    training rollout (``starts``), so no episode sees another's memory.
    """

    recurrent = True

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, hidden: Sequence[int] = (64,),
                 lstm_size: int = 64, activation: type[nn.Module] = nn.Tanh, init_log_std: float = 0.0,
                 normalize_obs: bool = False):
        super().__init__()
        from mpenv.nn import LSTM, RecurrentModule  # loads mpenv.nn only for recurrent agents

        check_spaces(observation_space, action_space)
        self.normalizer = make_normalizer(observation_space, normalize_obs)
        self.encoder, n_features = encoder_for(observation_space, hidden, activation)
        lstm = LSTM(n_features, lstm_size, generator=torch.Generator().manual_seed(int(torch.randint(2**31, ()))))
        lstm.init_forget_bias(1.0)
        self.core = RecurrentModule(lstm)
        self.head = make_head(lstm_size, action_space, init_log_std)
        self.critic = layer_init(nn.Linear(lstm_size, 1), std=1.0)

    def initial_state(self, batch: int) -> State:
        zeros = torch.zeros(batch, self.core.hidden_size, device=self.critic.weight.device)
        return zeros, zeros.clone()

    def unroll(self, obs: torch.Tensor, state: State, starts: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, State]:
        """h_1 .. h_T [T, N, H] and the final state for ``obs`` [T, N, ...] from ``state``; ``starts`` [T, N] bool
        marks the steps where an episode begins (its state is zeroed there)."""
        steps, batch = obs.shape[:2]
        features = self.encoder(self.normalizer(obs.flatten(0, 1))).view(steps, batch, -1)
        hidden, final = self.core(features, state, starts)
        return hidden, (final[0], final[1])

    def advance(self, obs: torch.Tensor, state: State) -> State:
        """The state after one observation ``obs`` [N, ...]: ``unroll`` of a one-step sequence, its h_1 = the new h.

        Outside autograd (acting, bootstrapping) it calls the LSTM cell directly -- the same operations on the
        same [N, ...] shapes, so the same numbers -- and skips the autograd Function, the input checks and the
        caches that ``unroll`` keeps for BPTT: about a third of the time of an acting step on the T-maze."""
        if torch.is_grad_enabled():
            return self.unroll(obs[None], state)[1]
        return self.core.layer.step(self.encoder(self.normalizer(obs)), state)

    def step(self, obs: torch.Tensor, state: State, deterministic: bool = False) -> tuple[torch.Tensor, State]:
        """One env step: actions for ``obs`` [N, ...] and the next state."""
        state = self.advance(obs, state)
        params = self.head(state[0])
        return (self.head.mode(params) if deterministic else self.head.sample(params)), state

    def state_value(self, obs: torch.Tensor, state: State) -> torch.Tensor:
        """V of ``obs`` [N, ...] seen after ``state``: what a rollout bootstraps from."""
        return self.critic(self.advance(obs, state)[0]).squeeze(-1)

    def evaluate_rollout(self, obs: torch.Tensor, actions: torch.Tensor, state0: State, starts: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The rollout replayed from its first state, with gradients: log pi and the entropy [T * N], V [T, N]."""
        hidden, _ = self.unroll(obs, state0, starts)
        log_prob, entropy = self.head.log_prob_and_entropy(self.head(hidden.flatten(0, 1)), actions.flatten(0, 1))
        return log_prob, entropy, self.critic(hidden).squeeze(-1)

    def env_action(self, actions: torch.Tensor) -> np.ndarray:
        return self.head.env_action(actions)

    def update_normalizer(self, obs: torch.Tensor) -> None:
        if isinstance(self.normalizer, RunningNormalizer):
            self.normalizer.update(obs)


def forget(state: State | None, done: np.ndarray) -> State | None:
    """The state with the rows of finished episodes zeroed: the next observation there starts a new episode."""
    if state is None or not done.any():
        return state
    keep = torch.as_tensor(~done, device=state[0].device).unsqueeze(-1)
    return state[0] * keep, state[1] * keep


def build_actor_critic(config: Any, observation_space: gym.Space, action_space: gym.Space
                       ) -> ActorCritic | RecurrentActorCritic:
    """The network a config describes (fields ``hidden_sizes``, ``activation``, ``init_log_std``, ``normalize_obs``,
    and ``recurrent`` with ``lstm_size`` where the config has them)."""
    hidden, activation = parse_hidden_sizes(config.hidden_sizes), activation_named(config.activation)
    if getattr(config, "recurrent", False):
        return RecurrentActorCritic(observation_space, action_space, hidden, config.lstm_size, activation,
                                    config.init_log_std, config.normalize_obs)
    return ActorCritic(observation_space, action_space, hidden, activation, config.init_log_std, config.normalize_obs)


# ---------------------------------------------------------------------------------------------------
# Acting with a trained policy


def observations_to_tensor(obs: np.ndarray, device: torch.device) -> torch.Tensor:
    tensor = torch.as_tensor(obs, device=device)
    return tensor if tensor.dtype == torch.uint8 else tensor.float()


def actor_from_network(model: ActorCritic | RecurrentActorCritic) -> Callable[[np.ndarray], np.ndarray]:
    """A batch of observations -> the batch of deterministic actions, ready for ``env.step``. A recurrent
    policy's actor remembers: see :class:`RecurrentActor`."""
    if model.recurrent:
        return RecurrentActor(model)
    device = next(model.parameters()).device
    model.eval()  # no layer behaves differently today; a future dropout or norm layer would

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model.env_action(model.deterministic_action(observations_to_tensor(obs, device)))

    return act


class RecurrentActor:
    """A recurrent policy acting deterministically on a batch of envs, carrying its hidden state from call to
    call. ``reset()`` forgets it: the evaluation loops of ``agents.evaluate`` call it whenever they reset the
    envs, so every episode starts from the zero state, as in training."""

    def __init__(self, model: RecurrentActorCritic):
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.state: State | None = None

    def reset(self) -> None:
        self.state = None

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            obs_tensor = observations_to_tensor(obs, self.device)
            if self.state is None or self.state[0].shape[0] != obs_tensor.shape[0]:
                self.state = self.model.initial_state(obs_tensor.shape[0])
            actions, self.state = self.model.step(obs_tensor, self.state, deterministic=True)
            return self.model.env_action(actions)
