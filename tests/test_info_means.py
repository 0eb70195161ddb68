"""agents.envs.InfoMeans: rollout means of numeric info terms, from single and vector envs."""

import numpy as np
import pytest

from agents.envs import InfoMeans


def test_means_of_single_env_infos_skip_other_keys():
    means = InfoMeans()
    means.add({"reward_pose": 0.5, "mpjpe": 0.2, "frame": 3, "TimeLimit.truncated": True})
    means.add({"reward_pose": 1.0, "mpjpe": 0.4, "reward_flag": True, "reward_name": "x"})
    assert means.pop_means() == pytest.approx({"mpjpe": 0.3, "reward_pose": 0.75})
    assert means.pop_means() == {}


def test_vector_env_infos_use_the_masks():
    means = InfoMeans()
    means.add({"reward_pose": np.array([0.2, 9.0, 0.4]), "_reward_pose": np.array([True, False, True])})
    means.add({"reward_pose": np.array([0.6, 0.6, 0.6])})  # no mask: every env reported it
    assert means.means() == pytest.approx({"reward_pose": (0.2 + 0.4 + 1.8) / 5})
