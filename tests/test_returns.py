"""Reward-to-go, n-step returns and GAE against numbers worked out by hand on small rollouts."""

import pytest
import torch

from agents.returns import gae, n_step_returns, reward_to_go


def t(rows):
    return torch.tensor(rows, dtype=torch.float64)


def test_reward_to_go_of_one_episode():
    # G_2 = 3, G_1 = 2 + 0.5 * 3 = 3.5, G_0 = 1 + 0.5 * 3.5 = 2.75
    returns = reward_to_go(t([[1.0], [2.0], [3.0]]), t([[0], [0], [1]]), gamma=0.5)
    assert torch.allclose(returns, t([[2.75], [3.5], [3.0]]))


def test_reward_to_go_restarts_at_an_episode_end_in_the_middle_of_a_parallel_rollout():
    # env 0: episode [1, 1] ends at t=1, a new one [1, 1] ends at t=3; env 1: one episode of 4 steps of 2.
    rewards = t([[1, 2], [1, 2], [1, 2], [1, 2]])
    dones = t([[0, 0], [1, 0], [0, 0], [1, 1]])
    returns = reward_to_go(rewards, dones, gamma=0.5)
    # env 0: 1 + 0.5 = 1.5, 1 | 1.5, 1;  env 1: 2 + 1 + 0.5 + 0.25 = 3.75, 3.5, 3, 2
    assert torch.allclose(returns, t([[1.5, 3.75], [1.0, 3.5], [1.5, 3.0], [1.0, 2.0]]))


def test_n_step_returns_bootstrap_at_the_rollout_end_but_not_after_termination():
    rewards = t([[1, 1], [1, 1], [1, 1]])
    next_values = t([[10, 10], [10, 10], [10, 10]])  # V(s'_t)
    terminated = t([[0, 0], [1, 0], [0, 0]])  # env 0's episode terminates after t=1
    truncated = t([[0, 0], [0, 0], [0, 0]])
    returns = n_step_returns(rewards, next_values, terminated, truncated, gamma=0.5)
    # env 0: G_2 = 1 + 0.5 * 10 = 6;  G_1 = 1 (terminal);  G_0 = 1 + 0.5 * 1 = 1.5
    # env 1: G_2 = 6;  G_1 = 1 + 0.5 * 6 = 4;  G_0 = 1 + 0.5 * 4 = 3
    assert torch.allclose(returns, t([[1.5, 3.0], [1.0, 4.0], [6.0, 6.0]]))


def test_a_truncated_episode_bootstraps_from_its_final_observation_a_terminated_one_does_not():
    rewards = t([[1, 1], [1, 1]])
    next_values = t([[4, 4], [8, 8]])  # next_values[0] is V(final observation) for both envs
    terminated = t([[1, 0], [0, 0]])
    truncated = t([[0, 1], [0, 0]])
    returns = n_step_returns(rewards, next_values, terminated, truncated, gamma=0.5)
    # t=0: env 0 terminated -> 1; env 1 truncated -> 1 + 0.5 * 4 = 3 (the next row is another episode)
    assert torch.allclose(returns, t([[1.0, 3.0], [5.0, 5.0]]))
    advantages = gae(rewards, t([[0, 0], [0, 0]]), next_values, terminated, truncated, gamma=0.5, lam=1.0)
    assert torch.allclose(advantages, returns)


def test_n_step_returns_with_a_fixed_horizon():
    rewards = t([[1], [2], [3], [4]])
    next_values = t([[10], [20], [30], [40]])
    zeros = torch.zeros(4, 1, dtype=torch.float64)
    returns = n_step_returns(rewards, next_values, zeros, zeros, gamma=0.5, n=2)
    # G_0 = 1 + 0.5 * 2 + 0.25 * V(s_2)=20 -> 7;  G_1 = 2 + 1.5 + 0.25 * 30 = 11;  G_2 = 3 + 2 + 10 = 15
    # G_3 = 4 + 0.5 * 40 = 24 (the rollout ends after one step)
    assert torch.allclose(returns, t([[7.0], [11.0], [15.0], [24.0]]))
    with pytest.raises(ValueError, match="n must be at least 1"):
        n_step_returns(rewards, next_values, zeros, zeros, gamma=0.5, n=0)


def test_gae_by_hand():
    rewards = t([[1.0], [0.0], [2.0]])
    values = t([[1.0], [2.0], [3.0]])
    next_values = t([[2.0], [3.0], [4.0]])
    zeros = torch.zeros(3, 1, dtype=torch.float64)
    gamma, lam = 0.5, 0.5
    # deltas: 1 + 1 - 1 = 1;  0 + 1.5 - 2 = -0.5;  2 + 2 - 3 = 1
    # A_2 = 1;  A_1 = -0.5 + 0.25 * 1 = -0.25;  A_0 = 1 + 0.25 * -0.25 = 0.9375
    advantages = gae(rewards, values, next_values, zeros, zeros, gamma, lam)
    assert torch.allclose(advantages, t([[0.9375], [-0.25], [1.0]]))


def test_gae_stops_at_an_episode_end_in_the_middle_of_the_rollout():
    rewards = t([[1, 1], [1, 1], [1, 1]])
    values = t([[1, 1], [1, 1], [1, 1]])
    next_values = t([[1, 1], [5, 1], [1, 1]])  # env 0, t=1: V of the truncated episode's final observation
    terminated = t([[0, 1], [0, 0], [0, 0]])
    truncated = t([[0, 0], [1, 0], [0, 0]])
    advantages = gae(rewards, values, next_values, terminated, truncated, gamma=1.0, lam=1.0)
    # env 0: deltas 1, 5, 1 and the sum stops after t=1: A = 1 + 5, 5, 1
    # env 1: deltas 0 (terminal: 1 + 0 - 1), 1, 1 and the sum stops after t=0: A = 0, 2, 1
    assert torch.allclose(advantages, t([[6.0, 0.0], [5.0, 2.0], [1.0, 1.0]]))


def random_rollout(seed: int, n_steps: int = 7, n_envs: int = 3):
    generator = torch.Generator().manual_seed(seed)
    rewards = torch.randn(n_steps, n_envs, generator=generator, dtype=torch.float64)
    values = torch.randn(n_steps, n_envs, generator=generator, dtype=torch.float64)
    last_values = torch.randn(n_envs, generator=generator, dtype=torch.float64)
    next_values = torch.cat([values[1:], last_values[None]])
    ends = torch.rand(n_steps, n_envs, generator=generator) < 0.25
    terminated = (ends & (torch.rand(n_steps, n_envs, generator=generator) < 0.5)).double()
    truncated = ends.double() - terminated
    final_values = torch.randn(n_steps, n_envs, generator=generator, dtype=torch.float64)
    next_values = torch.where(truncated.bool(), final_values, next_values)
    return rewards, values, next_values, terminated, truncated


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gae_with_lambda_one_is_the_n_step_return_minus_the_value(seed):
    rewards, values, next_values, terminated, truncated = random_rollout(seed)
    advantages = gae(rewards, values, next_values, terminated, truncated, gamma=0.9, lam=1.0)
    returns = n_step_returns(rewards, next_values, terminated, truncated, gamma=0.9)
    assert torch.allclose(advantages, returns - values)


def test_gae_with_lambda_one_on_whole_episodes_is_the_monte_carlo_return_minus_the_value():
    rewards = t([[1, 3], [2, 1], [3, 2]])
    values = t([[0.5, 1], [2, 0], [1, 1]])
    dones = t([[0, 1], [0, 0], [1, 1]])
    next_values = torch.cat([values[1:], torch.zeros(1, 2, dtype=torch.float64)])  # V(s_{t+1}); the end is terminal
    advantages = gae(rewards, values, next_values, dones, torch.zeros_like(dones), gamma=0.9, lam=1.0)
    assert torch.allclose(advantages, reward_to_go(rewards, dones, gamma=0.9) - values)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gae_with_lambda_zero_is_the_one_step_td_error(seed):
    rewards, values, next_values, terminated, truncated = random_rollout(seed)
    advantages = gae(rewards, values, next_values, terminated, truncated, gamma=0.9, lam=0.0)
    assert torch.allclose(advantages, rewards + 0.9 * next_values * (1 - terminated) - values)


def test_returns_work_on_float32_with_boolean_flags():
    rewards = torch.ones(2, 2)
    flags = torch.tensor([[False, True], [True, True]])
    assert reward_to_go(rewards, flags, 0.5).dtype == torch.float32
    # env 0: truncated at t=0 (delta 1 + 0.5 - 1), terminated at t=1 (delta 1 - 1); env 1: terminal deltas 0
    advantages = gae(rewards, rewards, rewards, flags, ~flags, 0.5, 0.5)
    assert torch.allclose(advantages, torch.tensor([[0.5, 0.0], [0.0, 0.0]]))
