"""The walking policy shipped in mpenv/humanoid/policies/walk: it loads safely and walks the clip."""

import numpy as np
import pytest

from agents.envs import make_env
from agents.evaluate import EpisodeStats, run_episodes
from agents.sb3_ppo import load_policy
from mpenv.checkpoint import load_config
from mpenv.humanoid import shipped_policy


def test_shipped_walk_policy_imitates_the_walk():
    folder = shipped_policy("walk")
    config = load_config(folder)
    env = make_env(config["env_id"], config["env_kwargs"])
    act = load_policy(folder, env)
    stats = EpisodeStats(3)
    run_episodes(env, lambda obs: act(obs[None])[0], 3, seed=0, on_step=stats.add)
    means = stats.info_means.means()
    # Bars below the measured figures of the README (seed 0, 3 episodes of at most 300 steps = 10 s).
    assert np.mean(stats.lengths) >= MIN_MEAN_LENGTH, stats.lengths
    assert means["mpjpe"] < MAX_MPJPE, means


def test_unknown_shipped_policy_names_the_choices():
    with pytest.raises(ValueError, match="no shipped policy 'moonwalk'.*walk"):
        shipped_policy("moonwalk")


MIN_MEAN_LENGTH = 280  # measured: every episode runs the full 300 steps
MAX_MPJPE = 0.06  # measured: 0.040
