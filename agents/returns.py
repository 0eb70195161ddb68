"""Returns and advantages of a rollout, computed backwards in time over [T, N] tensors (T steps of N
parallel envs), with episode ends anywhere in the rollout.

Conventions: row ``t`` is the transition s_t, a_t -> r_t, s'_t of every env. ``terminated[t]`` says s'_t
is terminal (its value is 0 by definition); ``truncated[t]`` says the episode was cut by a time limit
at s'_t, which is not terminal: its return continues beyond what we saw, so we bootstrap from V(s'_t).
``next_values[t]`` is V(s'_t): for a step that ended an episode that is the value of its *final*
observation, not of the next episode's first one. In the course's notation
``d_{t+1} = terminated[t]`` and ``V(s_{t+1}) = next_values[t]``.

    advantages = gae(rewards, values, next_values, terminated, truncated, gamma=0.99, lam=0.95)
    value_targets = advantages + values
"""

from __future__ import annotations

import torch


def reward_to_go(rewards: torch.Tensor, dones: torch.Tensor, gamma: float) -> torch.Tensor:
    """Discounted Monte Carlo return from every step to the end of its episode,
    G_t = r_t + gamma (1 - done_t) G_{t+1}, with nothing after the last row (a rollout of whole episodes).

    ``dones`` marks the last step of each episode (terminated or truncated alike: a Monte Carlo return
    does not bootstrap).
    """
    returns = torch.zeros_like(rewards)
    future = torch.zeros_like(rewards[0])
    for t in reversed(range(len(rewards))):
        future = rewards[t] + gamma * (1.0 - dones[t].float()) * future
        returns[t] = future
    return returns


def n_step_returns(rewards: torch.Tensor, next_values: torch.Tensor, terminated: torch.Tensor,
                   truncated: torch.Tensor, gamma: float, n: int | None = None) -> torch.Tensor:
    """G_t^(n) = r_t + gamma r_{t+1} + ... + gamma^(k-1) r_{t+k-1} + gamma^k V(s_{t+k}), k <= n steps.

    The sum stops early at the end of the episode (no bootstrap after termination, V of the final
    observation after truncation) and at the end of the rollout (``n=None``: every step looks as far as
    the rollout goes, the A2C/A3C target).
    """
    n_steps = len(rewards)
    horizon = n_steps if n is None else n
    if horizon < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    terminated, truncated = terminated.float(), truncated.float()
    returns = torch.zeros_like(rewards)
    for t in range(n_steps):
        last = min(t + horizon, n_steps) - 1
        # Walk back from the horizon: at step k the tail is either V(s'_k) (cut there) or G_{k+1}.
        tail = next_values[last]
        for k in reversed(range(t, last + 1)):
            cut_here = truncated[k] if k < last else torch.ones_like(truncated[k])
            tail = cut_here * next_values[k] + (1.0 - cut_here) * tail
            tail = rewards[k] + gamma * (1.0 - terminated[k]) * tail
        returns[t] = tail
    return returns


def gae(rewards: torch.Tensor, values: torch.Tensor, next_values: torch.Tensor, terminated: torch.Tensor,
        truncated: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalized advantage estimation (Schulman et al., 2016):

        delta_t = r_t + gamma V(s_{t+1}) (1 - d_{t+1}) - V(s_t)
        A_t = sum_l (gamma lambda)^l delta_{t+l}      (the sum stops at the end of the episode)

    computed backwards as A_t = delta_t + gamma lambda (1 - done_t) A_{t+1}. lambda = 0 is the one-step
    TD error, lambda = 1 the n-step return (to the end of the rollout) minus V(s_t).
    """
    not_terminal = 1.0 - terminated.float()
    # gamma lambda where the next row belongs to the same episode, else 0
    decay = (gamma * lam) * not_terminal * (1.0 - truncated.float())
    deltas = rewards + gamma * next_values * not_terminal - values
    advantages = [deltas[-1]]  # backwards in time; one op a step, then one stack (A2C's rollouts are 5 steps)
    for t in reversed(range(len(rewards) - 1)):
        advantages.append(torch.addcmul(deltas[t], decay[t], advantages[-1]))
    return torch.stack(advantages[::-1])
