"""The shared pieces of the tabular agents (agents.tabular)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from agents.tabular import (
    EpisodeLoop,
    PolicySampler,
    agent_rng,
    discrete_sizes,
    epsilon_greedy_action,
    epsilon_greedy_probs,
    greedy_action,
    linear_schedule,
)


def test_greedy_action_breaks_ties_uniformly_at_random():
    rng = np.random.default_rng(0)
    q = np.array([1.0, 3.0, 0.0, 3.0])
    counts = np.bincount([greedy_action(q, rng) for _ in range(4_000)], minlength=4)
    assert counts[0] == counts[2] == 0
    assert abs(counts[1] - 2_000) < 150 and abs(counts[3] - 2_000) < 150


def test_epsilon_greedy_draws_match_its_probabilities():
    rng = np.random.default_rng(1)
    q = np.array([0.0, 2.0, 2.0, -1.0])
    probs = epsilon_greedy_probs(q, 0.3)
    np.testing.assert_allclose(probs, [0.075, 0.425, 0.425, 0.075])
    draws = np.bincount([epsilon_greedy_action(q, 0.3, rng) for _ in range(20_000)], minlength=4) / 20_000
    np.testing.assert_allclose(draws, probs, atol=0.015)


def test_linear_schedule():
    constant = linear_schedule(0.5, None)
    assert constant(0.0) == constant(1.0) == 0.5
    decay = linear_schedule(1.0, 0.1, fraction=0.5)
    assert decay(0.0) == 1.0 and decay(0.25) == pytest.approx(0.55) and decay(0.5) == decay(1.0) == 0.1
    with pytest.raises(ValueError):
        linear_schedule(1.0, 0.1, fraction=0.0)


def test_policy_sampler_deterministic_and_stochastic():
    rng = np.random.default_rng(2)
    assert PolicySampler(np.array([2, 0, 1]), 3, 4)(0, rng) == 2
    pi = np.array([[0.7, 0.0, 0.3], [0.0, 0.0, 1.0]])
    sample = PolicySampler(pi, 2, 3)
    draws = np.bincount([sample(0, rng) for _ in range(10_000)], minlength=3) / 10_000
    np.testing.assert_allclose(draws, pi[0], atol=0.02)
    assert {sample(1, rng) for _ in range(100)} == {2}


def test_agent_rng_is_reproducible_and_independent_of_the_envs_generator():
    assert agent_rng(5).random() == agent_rng(5).random()
    env_rng = np.random.default_rng(5)  # what env.reset(seed=5) seeds
    assert not np.allclose(agent_rng(5).random(100), env_rng.random(100))


def test_discrete_sizes_names_the_space_and_the_fix():
    env = gym.make("MountainCar-v0")
    with pytest.raises(ValueError, match=r"q_learning .*Discrete observation space.*Box\(.*obs_mode"):
        discrete_sizes(env, "q_learning")
    assert discrete_sizes(gym.make("Taxi-v4"), "q_learning") == (500, 6)


def test_episode_loop_seeds_only_the_first_reset_and_respects_the_budget():
    env = gym.make("FrozenLake-v1")
    log: list[tuple[str, float, int]] = []
    loop = EpisodeLoop(env, n_episodes=1_000, seed=3, total_steps=50, log=lambda *r: log.append(r))
    lengths = []
    for _ in loop.episodes():
        episode_over = False
        while not episode_over:
            *_, episode_over = loop.step(0)
        lengths.append(loop.episode_length)
        loop.end_episode({"charts/epsilon": 0.5})
    assert loop.global_step == 50 and sum(lengths) == 50
    assert loop.cut_by_budget or lengths[-1] == loop.episode_length
    logged = [value for tag, value, _ in log if tag == "charts/episodic_length"]
    assert sum(logged) == 50 - (lengths[-1] if loop.cut_by_budget else 0)
