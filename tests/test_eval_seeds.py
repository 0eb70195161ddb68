"""Keep-the-best selection never plays the episodes that judge the kept weights: the seeds of every selection
round, of the training envs and of the held-out evaluations (mpenv-train's final one, the learning tests) are
three disjoint ranges, for every deep agent (agents.evaluate documents them)."""

import numpy as np
import pytest

from agents import evaluate
from agents.actor_critic import A2CConfig, train_a2c
from agents.dqn import DQNConfig, train_dqn
from agents.evaluate import EVAL_SEED_OFFSET, HELD_OUT_SEED_OFFSET, SEEDS_PER_ROUND
from agents.reinforce import ReinforceConfig, train_reinforce
from agents.run import RunContext

HELD_OUT_EPISODES = 1_000  # far more than any test or final evaluation seeds

RUNS = {
    "dqn": lambda: train_dqn(DQNConfig(learning_starts=50, batch_size=8, train_frequency=10, gradient_steps=1,
                                       hidden_sizes="8", eval_every=100, eval_every_episodes=3), CONTEXT),
    "reinforce": lambda: train_reinforce(ReinforceConfig(hidden_sizes="8", eval_every=100, eval_every_episodes=3),
                                         CONTEXT),
    "a2c": lambda: train_a2c(A2CConfig(hidden_sizes="8", n_envs=2, eval_every=100, eval_every_episodes=3), CONTEXT),
}
CONTEXT = RunContext("CartPole-v1", total_steps=600, seed=7, device="cpu")


@pytest.mark.parametrize("algo", sorted(RUNS))
def test_selection_rounds_play_seeds_no_held_out_evaluation_and_no_training_env_plays(monkeypatch, algo):
    played: list[int] = []
    real_returns = evaluate.vector_returns

    def recording_returns(envs, act, seed, max_steps=10_000):
        played.extend(seed + i for i in range(envs.num_envs))  # copy i of a reset with seed x plays seed x + i
        return real_returns(envs, act, seed, max_steps)

    monkeypatch.setattr(evaluate, "vector_returns", recording_returns)
    RUNS[algo]()
    rounds = len(played) // 3
    assert rounds >= 5  # every 100 steps and at the end
    seed = CONTEXT.seed
    expected = {seed + EVAL_SEED_OFFSET + SEEDS_PER_ROUND * k + i for k in range(rounds) for i in range(3)}
    assert set(played) == expected and len(played) == len(expected)  # each round new episodes
    held_out = set(range(seed + HELD_OUT_SEED_OFFSET, seed + HELD_OUT_SEED_OFFSET + HELD_OUT_EPISODES))
    training = set(range(seed, seed + 8))
    assert not set(played) & held_out and not set(played) & training and not held_out & training
    # The documented range holds for any budget: every round at or above the offset.
    assert min(played) >= seed + EVAL_SEED_OFFSET > seed + HELD_OUT_SEED_OFFSET + HELD_OUT_EPISODES
    assert np.all(np.diff(sorted(played)) > 0)
