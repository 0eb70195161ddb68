"""The policies shipped in mpenv/humanoid/policies: they load safely and imitate their clips (the walk to the
issue's 5 cm; the run, trained for a shorter time, stays up for whole episodes but tracks less closely; the global
walk follows the un-synced reference within the issue's 10 cm; the heading policy walks where it is told)."""

import numpy as np
import pytest

from agents.envs import make_env
from agents.evaluate import EpisodeStats, run_episodes
from agents.sb3_ppo import load_policy
from mpenv.checkpoint import load_config
from mpenv.humanoid import shipped_policy


def test_shipped_walk_policy_imitates_the_walk():
    stats = run_policy("walk", EPISODES)
    # Every episode walks the whole time limit (300 steps = 10 s; a fall ends an episode early) and tracks within
    # the 5 cm: checked one by one, since a mean hides a bad episode (300, 300, 240 averages 280).
    assert np.all(stats.lengths == 300), stats.lengths
    assert np.all(stats.episode_means("mpjpe") <= MAX_MPJPE), stats.episode_means("mpjpe")


def run_policy(name: str, episodes: int) -> EpisodeStats:
    folder = shipped_policy(name)
    config = load_config(folder)
    env = make_env(config["env_id"], config["env_kwargs"])
    act = load_policy(folder, env)
    stats = EpisodeStats(episodes)
    run_episodes(env, lambda obs: act(obs[None])[0], episodes, seed=0, on_step=stats.add)
    return stats


def test_shipped_run_policy_runs_whole_episodes():
    """The 3 seeded episodes last the 10 s limit (checked one by one; over 20 episodes 18 do, README)."""
    stats = run_policy("run", EPISODES)
    assert np.all(stats.lengths == 300), stats.lengths


@pytest.mark.xfail(strict=True, reason="the run policy tracks the clip at about 8 cm MPJPE, not yet the issue's 5 cm")
def test_shipped_run_policy_tracks_within_5_cm():
    stats = run_policy("run", EPISODES)
    assert np.all(stats.episode_means("mpjpe") <= MAX_MPJPE), stats.episode_means("mpjpe")


def test_shipped_global_walk_keeps_tracking_the_unsynced_reference():
    """walk_global tracks the reference without the per-cycle re-sync (the field's global tracking): every
    episode walks the 10 s, never loses tracking by PHC's criterion, and stays within 5 cm root-relative."""
    stats = run_policy("walk_global", EPISODES)
    assert np.all(stats.lengths == 300), stats.lengths
    assert stats.lost is not None and not stats.lost.any(), stats.lost
    assert np.all(stats.episode_means("mpjpe") <= MAX_MPJPE), stats.episode_means("mpjpe")


def test_shipped_global_walk_tracks_within_10_cm_globally():
    """The issue's 100 mm global MPJPE, episode by episode. Measured when shipped (README): 20 episodes each of
    seeds 0, 1, 2: 52-53 mm on average, worst episodes 70, 68 and 67 mm."""
    stats = run_policy("walk_global", EPISODES)
    assert np.all(stats.episode_means("mpjpe_global") <= 0.10), stats.episode_means("mpjpe_global")


def test_shipped_heading_policy_walks_where_it_is_told():
    """The issue's target-heading bars over 10 s episodes whose command turns once, 3-7 s in: a mean heading error
    below 15 degrees, and in every episode a speed within 20% of the command and a root-relative MPJPE within
    70 mm (against the steered reference, so lagging the turn counts too). Measured when shipped: README."""
    stats = run_policy("heading", EPISODES)
    assert np.all(stats.lengths == 300), stats.lengths
    errors = stats.episode_means("task_heading_error")
    assert errors.mean() < 15.0, errors
    ratios = stats.episode_means("task_speed_ratio")
    assert np.all(np.abs(ratios - 1.0) <= 0.2), ratios
    assert np.all(stats.episode_means("mpjpe") <= 0.07), stats.episode_means("mpjpe")


@pytest.mark.xfail(strict=True, reason="over 20 episodes of seed 0 the heading policy's speed ratios span 0.798-1.254: "
                   "three episodes fall outside 20% of the command (all 20 of seed 1 are within)")
def test_shipped_heading_policy_keeps_the_speed_within_20_percent_in_20_episodes():
    stats = run_policy("heading", 20)
    ratios = stats.episode_means("task_speed_ratio")
    assert np.all(np.abs(ratios - 1.0) <= 0.2), ratios


def test_unknown_shipped_policy_names_the_choices():
    with pytest.raises(ValueError, match="no shipped policy 'moonwalk'.*run.*walk"):
        shipped_policy("moonwalk")


EPISODES = 3  # seed 0
MAX_MPJPE = 0.05  # the root-relative MPJPE bar, per episode; the walk measures 0.033 (mean of the 3)
