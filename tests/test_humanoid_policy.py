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
    stats = EpisodeStats(EPISODES)
    run_episodes(env, lambda obs: act(obs[None])[0], EPISODES, seed=0, on_step=stats.add)
    means = stats.info_means.means()
    # Every episode walks the whole time limit (300 steps = 10 s; a fall ends an episode early): checked one by
    # one, since a mean of lengths hides a fall (300, 300, 240 averages 280).
    assert env.spec.max_episode_steps == 300
    assert np.all(stats.lengths == env.spec.max_episode_steps), stats.lengths
    assert means["mpjpe"] < MAX_MPJPE, means


def test_unknown_shipped_policy_names_the_choices():
    with pytest.raises(ValueError, match="no shipped policy 'moonwalk'.*walk"):
        shipped_policy("moonwalk")


EPISODES = 3  # seed 0
MAX_MPJPE = 0.06  # mean over all steps; measured: 0.033 (the policy shipped before this one: 0.040)
