"""Every deep agent trains and evaluates, through mpenv-train and mpenv-eval, on every gridworld id mpenv
registers (the T-mazes' feature vectors included) and on gymnasium's Discrete-observation envs (one-hot encoded
states), plus one humanoid smoke run.
Tiny budgets: this checks that the pipeline runs end to end, not that anything is learned."""

from pathlib import Path

import gymnasium as gym
import pytest

import mpenv  # noqa: F401  (registers the ids)
from agents import evaluate, train

TINY = {
    "dqn": ["--learning-starts", "40", "--batch-size", "8", "--train-frequency", "10", "--gradient-steps", "1",
            "--hidden-sizes", "16", "--eval-every", "60", "--eval-every-episodes", "2"],
    "reinforce": ["--episodes-per-update", "1", "--hidden-sizes", "16", "--eval-every", "60",
                  "--eval-every-episodes", "2"],
    "a2c": ["--n-envs", "2", "--n-steps", "5", "--hidden-sizes", "16", "--eval-every", "60",
            "--eval-every-episodes", "2"],
}
GRIDWORLDS = sorted(env_id for env_id in gym.registry if env_id.startswith("mpenv/") and "Humanoid" not in env_id)
GYMNASIUM_DISCRETE = ["FrozenLake-v1", "FrozenLake8x8-v1", "CliffWalking-v1", "Taxi-v4"]


def only_run_dir(logdir: Path) -> Path:
    (run_dir,) = [p for p in logdir.iterdir() if p.is_dir()]
    return run_dir


def test_the_matrix_covers_every_gridworld_the_suite_registers():
    assert {"mpenv/GridWorld-v0", "mpenv/FrozenLake4x4-v0", "mpenv/CliffWalking-v0", "mpenv/FourRooms-v0"} \
        <= set(GRIDWORLDS)
    assert {"mpenv/TMaze-v0", "mpenv/TMazeLong-v0"} <= set(GRIDWORLDS)
    for env_id in GRIDWORLDS + GYMNASIUM_DISCRETE:
        # The T-mazes observe a 4-feature vector (cue, junction, corridor), not a state index.
        expected = gym.spaces.Box if env_id.startswith("mpenv/TMaze") else gym.spaces.Discrete
        assert isinstance(gym.make(env_id).observation_space, expected), env_id


@pytest.mark.parametrize("env_id", GRIDWORLDS + GYMNASIUM_DISCRETE)
@pytest.mark.parametrize("algo", sorted(TINY))
def test_a_deep_agent_trains_and_evaluates_on_every_gridworld(tmp_path, capsys, algo, env_id):
    # A time limit keeps the untrained policies' evaluations short on the grids that have none.
    args = [algo, "--env", env_id, "--env-kwargs", '{"max_episode_steps": 40}', "--logdir", str(tmp_path),
            "--total-steps", "120", "--eval-episodes", "2", *TINY[algo]]
    assert train.main(args) == 0, capsys.readouterr().err
    assert "evaluation over 2 episodes" in capsys.readouterr().out
    assert evaluate.main([str(only_run_dir(tmp_path)), "--episodes", "2"]) == 0
    assert f"{env_id} | {algo} | 2 episodes" in capsys.readouterr().out


def test_a_humanoid_smoke_run_trains_and_evaluates(tmp_path, capsys):
    args = ["a2c", "--env", "mpenv/HumanoidMimicWalk-v0", "--logdir", str(tmp_path), "--total-steps", "40",
            "--eval-episodes", "1", "--n-envs", "2", "--n-steps", "4", "--hidden-sizes", "16",
            "--eval-every-episodes", "1"]
    assert train.main(args) == 0, capsys.readouterr().err
    assert evaluate.main([str(only_run_dir(tmp_path)), "--episodes", "1"]) == 0
    assert "mpenv/HumanoidMimicWalk-v0 | a2c | 1 episodes" in capsys.readouterr().out
