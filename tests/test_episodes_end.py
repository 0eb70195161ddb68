"""Tabular training counted in episodes refuses an env whose episodes can never end (a gridworld layout with no
reachable goal or hole and no time limit), instead of hanging in its first episode."""

from __future__ import annotations

import gymnasium as gym
import pytest

import mpenv  # noqa: F401  (registers the ids)
from agents import train
from agents.tabular import EpisodeLoop, time_limit
from mpenv.gridworld import GridWorld

NO_GOAL = ["S..", "...", "..."]
MESSAGE = "episodes of mpenv/GridWorld-v0 never end: no goal 'G' or hole 'H' can be reached from the start"


def test_training_by_episodes_without_an_end_is_refused():
    """Every sample-based tabular agent (MC, TD) runs its episodes through EpisodeLoop."""
    with pytest.raises(ValueError, match=MESSAGE):
        EpisodeLoop(gym.make("mpenv/GridWorld-v0", layout=NO_GOAL), n_episodes=5, seed=0)


def test_a_time_limit_or_a_step_budget_makes_it_a_continuing_task_that_runs():
    limited = gym.make("mpenv/GridWorld-v0", layout=NO_GOAL, max_episode_steps=20)
    assert time_limit(limited) == 20
    assert episode_lengths(EpisodeLoop(limited, n_episodes=3, seed=0)) == [20, 20, 20]
    own = GridWorld(NO_GOAL, max_episode_steps=7)  # GridWorld's own truncation, no wrapper
    assert time_limit(own) == 7
    assert episode_lengths(EpisodeLoop(own, n_episodes=2, seed=0)) == [7, 7]
    budget = EpisodeLoop(gym.make("mpenv/GridWorld-v0", layout=NO_GOAL), n_episodes=5, seed=0, total_steps=50)
    assert episode_lengths(budget) == [50]
    unlimited = gym.make("mpenv/GridWorld-v0", layout=NO_GOAL, max_episode_steps=-1)  # -1: no TimeLimit wrapper
    assert time_limit(unlimited) is None


def episode_lengths(loop: EpisodeLoop) -> list[int]:
    lengths = []
    for _ in loop.episodes():
        while not loop.step(0).episode_over:
            pass
        lengths.append(loop.episode_length)
    return lengths


def test_the_cli_says_so_and_writes_nothing(tmp_path, capsys):
    argv = ["q-learning", "--env", "mpenv/GridWorld-v0", "--env-kwargs", '{"layout": ["S..", "...", "..."]}',
            "--logdir", str(tmp_path)]  # fmt: skip
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    assert MESSAGE in err and "--total-steps" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
