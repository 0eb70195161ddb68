"""mpenv-train / mpenv-eval with the deep agents: short runs through the real CLI, resume, video, errors."""

import json
from pathlib import Path

import numpy as np
import pytest

from agents import evaluate, train
from mpenv.checkpoint import load_torch
from mpenv.logger import read_scalars

SHORT = ["--total-steps", "1200", "--checkpoint-every", "600", "--eval-episodes", "2", "--seed", "3"]


def only_run_dir(logdir: Path) -> Path:
    runs = [p for p in logdir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.parametrize("algo", ["dqn", "reinforce", "a2c"])
def test_a_short_deep_run_writes_config_checkpoint_and_scalars(tmp_path, algo, capsys):
    assert train.main([algo, "--env", "CartPole-v1", "--logdir", str(tmp_path), *SHORT]) == 0
    run_dir = only_run_dir(tmp_path)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["algo"] == algo and config["env_id"] == "CartPole-v1" and config["total_steps"] == 1200
    assert (run_dir / "checkpoint.pt").exists()
    steps, returns = read_scalars(run_dir, "charts/episodic_return")
    assert len(returns) > 5 and np.all(np.isfinite(returns)) and steps[-1] <= 1200
    assert len(read_scalars(run_dir, "charts/SPS")[1]) > 0
    assert "evaluation over 2 episodes" in capsys.readouterr().out
    assert evaluate.main([str(run_dir), "--episodes", "2"]) == 0
    assert "CartPole-v1 | " + algo in capsys.readouterr().out


def test_resume_continues_the_step_counter_and_the_curve(tmp_path):
    assert train.main(["dqn", "--env", "CartPole-v1", "--logdir", str(tmp_path), *SHORT]) == 0
    run_dir = only_run_dir(tmp_path)
    first_steps, _ = read_scalars(run_dir, "charts/episodic_return")
    assert train.main(["dqn", "--env", "CartPole-v1", "--resume", str(run_dir), "--total-steps", "2400",
                       "--eval-episodes", "0"]) == 0
    assert only_run_dir(tmp_path) == run_dir  # no second run directory
    steps, _ = read_scalars(run_dir, "charts/episodic_return")
    assert steps.max() > 1200 and steps.max() <= 2400
    assert len(steps) > len(first_steps)


def test_resume_refuses_a_run_of_another_algorithm_env_or_seed(tmp_path, capsys):
    assert train.main(["dqn", "--env", "CartPole-v1", "--logdir", str(tmp_path), *SHORT]) == 0
    run_dir = only_run_dir(tmp_path)
    assert train.main(["a2c", "--env", "CartPole-v1", "--resume", str(run_dir)]) == 2
    assert "that run is algo='dqn', not 'a2c'" in capsys.readouterr().err
    assert train.main(["dqn", "--env", "Acrobot-v1", "--resume", str(run_dir)]) == 2
    assert "env_id='CartPole-v1'" in capsys.readouterr().err
    assert train.main(["dqn", "--resume", str(run_dir), "--seed", "4", "--total-steps", "2400"]) == 2
    assert "seed=3, not 4; leave --seed out" in capsys.readouterr().err
    assert train.main(["dqn", "--env", "CartPole-v1", "--resume", str(tmp_path / "nothing")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert train.main(["q-learning", "--resume", str(run_dir)]) == 2
    assert "only the deep agents can be resumed" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == [run_dir.name]  # nothing written by the refused commands


def test_resume_without_flags_continues_the_run_as_it_was_started(tmp_path):
    """Env, env kwargs and seed come from config.json, and an interrupted run (here: its budget raised in
    config.json, as Ctrl-C at 1,200 of 2,400 steps leaves it) goes on towards the budget it was given."""
    assert train.main(["dqn", "--env", "mpenv/FrozenLake4x4-v0", "--env-kwargs", '{"slip": 0.1}',
                       "--logdir", str(tmp_path), *SHORT]) == 0
    run_dir = only_run_dir(tmp_path)
    config_path = run_dir / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps(config | {"total_steps": 2400}))
    assert train.main(["dqn", "--resume", str(run_dir), "--eval-episodes", "0"]) == 0
    resumed = json.loads(config_path.read_text())
    assert {k: resumed[k] for k in ("env_id", "env_kwargs", "seed", "total_steps")} == {
        "env_id": "mpenv/FrozenLake4x4-v0", "env_kwargs": {"slip": 0.1}, "seed": 3, "total_steps": 2400}
    assert load_torch(run_dir)["step"] == 2400


def test_dqn_on_continuous_actions_is_a_clear_error_that_writes_nothing(tmp_path, capsys):
    assert train.main(["dqn", "--env", "Pendulum-v1", "--logdir", str(tmp_path), "--total-steps", "100"]) == 2
    err = capsys.readouterr().err
    assert "Box" in err and "dqn" in err.lower()
    assert not any(tmp_path.iterdir())


def test_video_of_a_gridworld_policy(tmp_path, capsys):
    env_kwargs = '{"obs_mode": "onehot", "slip": 0.0, "layout": "4x4"}'
    assert train.main(["dqn", "--env", "mpenv/GridWorld-v0", "--env-kwargs", env_kwargs, "--logdir",
                       str(tmp_path / "runs"), "--total-steps", "300", "--eval-episodes", "0"]) == 0
    run_dir = only_run_dir(tmp_path / "runs")
    assert evaluate.main([str(run_dir), "--episodes", "1", "--video", str(tmp_path / "videos")]) == 0
    videos = list((tmp_path / "videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000
    import imageio.v2 as imageio

    frames = imageio.mimread(videos[0])
    assert len(frames) >= 2 and frames[0].ndim == 3


def test_eval_of_a_corrupt_deep_checkpoint_names_the_file(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"algo": "dqn", "env_id": "CartPole-v1",
                                                     "hyperparameters": {}}))
    (run_dir / "checkpoint.pt").write_bytes(b"\x80\x04garbage")
    assert evaluate.main([str(run_dir)]) == 2
    assert "checkpoint.pt" in capsys.readouterr().err


def test_video_of_a_cartpole_policy(tmp_path, capsys):
    assert train.main(["a2c", "--env", "CartPole-v1", "--logdir", str(tmp_path / "runs"), "--total-steps", "500",
                       "--eval-episodes", "0"]) == 0
    run_dir = only_run_dir(tmp_path / "runs")
    assert evaluate.main([str(run_dir), "--episodes", "1", "--video", str(tmp_path / "videos")]) == 0
    assert "video of one episode" in capsys.readouterr().out
    (video,) = (tmp_path / "videos").glob("CartPole-v1__a2c.mp4")
    import imageio.v2 as imageio

    frames = imageio.mimread(video)
    assert frames[0].shape == (400, 600, 3)  # CartPole's rgb_array size


@pytest.mark.parametrize(("argv", "flag"), [
    (["dqn", "--env", "CartPole-v1", "--total-steps", "0"], "--total-steps"),
    (["dqn", "--env", "CartPole-v1", "--total-steps", "-5"], "--total-steps"),
    (["a2c", "--env", "CartPole-v1", "--checkpoint-every", "0"], "--checkpoint-every"),
    (["reinforce", "--env", "CartPole-v1", "--eval-episodes", "-1"], "--eval-episodes"),
    (["dqn", "--env", "CartPole-v1", "--threads", "-1"], "--threads"),
    (["q-learning", "--env", "mpenv/CliffWalking-v0", "--total-steps", "0"], "--total-steps"),
    (["dqn", "--env", "mpenv/HumanoidMimic-v0", "--env-kwargs", '{"motion": "/nope.bvh"}'], "/nope.bvh"),
    (["a2c", "--env", "mpenv/HumanoidMimic-v0", "--env-kwargs", '{"no_such_kwarg": 1}'], "no_such_kwarg"),
])
def test_bad_run_flags_are_one_line_errors_naming_the_flag_that_write_nothing(tmp_path, capsys, argv, flag):
    assert train.main([*argv, "--logdir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpenv-train: error: ") and err.count("\n") == 1 and flag in err, err
    assert not (tmp_path / "runs").exists()


def test_resuming_with_a_budget_already_reached_is_a_clear_error_that_changes_nothing(tmp_path, capsys):
    assert train.main(["dqn", "--env", "CartPole-v1", "--logdir", str(tmp_path), *SHORT]) == 0
    run_dir = only_run_dir(tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    capsys.readouterr()
    for budget in ("1200", "600"):
        assert train.main(["dqn", "--env", "CartPole-v1", "--resume", str(run_dir), "--total-steps", budget]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--total-steps {budget}" in err and "done 1200 env steps" in err, err
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == before


def test_eval_with_a_render_mode_the_env_lacks_is_a_one_line_error(tmp_path, capsys):
    assert train.main(["reinforce", "--env", "CartPole-v1", "--logdir", str(tmp_path / "runs"), "--total-steps", "50",
                       "--eval-episodes", "0"]) == 0
    run_dir = only_run_dir(tmp_path / "runs")
    capsys.readouterr()
    assert evaluate.main([str(run_dir), "--episodes", "1", "--render", "ansi"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--render" in err and "'ansi'" in err and "rgb_array" in err, err
