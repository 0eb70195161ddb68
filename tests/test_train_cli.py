"""mpenv-train / mpenv-eval end to end: event files read back, checkpoints, and clear errors."""

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import mpenv  # noqa: F401
from agents import dp, evaluate, train
from mpenv.checkpoint import CheckpointError, load_arrays, load_config, save_arrays
from mpenv.logger import NonFiniteLossError, RunLogger, progress_enabled, read_scalars


def only_run_dir(logdir: Path) -> Path:
    runs = [p for p in logdir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def test_help_shows_every_hyperparameter_with_its_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["q-learning", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--alpha", "--gamma", "--epsilon", "--n-episodes", "--env", "--total-steps", "--logdir"):
        assert flag in text
    assert "(default: 0.5)" in text  # alpha's default from QLearningConfig


def test_every_algorithm_has_a_subcommand():
    result = subprocess.run([sys.executable, "-m", "agents.train", "--help"], capture_output=True, text=True,
                            check=True)
    for name in train.ALGORITHMS:
        assert name in result.stdout


def test_unknown_algorithm_is_rejected_with_the_choices(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["deep-magic", "--env", "FrozenLake-v1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'deep-magic'" in err and "q-learning" in err


def test_q_learning_run_writes_scalars_config_checkpoint_and_picture(tmp_path, capsys):
    code = train.main(["q-learning", "--env", "mpenv/CliffWalking-v0", "--total-steps", "4000", "--seed", "0",
                       "--logdir", str(tmp_path), "--eval-episodes", "5"])
    assert code == 0
    run_dir = only_run_dir(tmp_path)
    assert run_dir.name.startswith("mpenv_CliffWalking-v0__q-learning__0__")
    for tag in ("charts/episodic_return", "charts/episodic_length", "charts/epsilon", "charts/SPS",
                "losses/td_error"):
        steps, values = read_scalars(run_dir, tag)
        assert len(values) > 3, tag
        assert np.all(np.isfinite(values)), tag
        assert np.all(np.diff(steps) >= 0) and steps[-1] <= 4000, tag
    _, lengths = read_scalars(run_dir, "charts/episodic_length")
    assert lengths.sum() <= 4000  # the step budget ended the run
    config = json.loads((run_dir / "config.json").read_text())
    assert config["algo"] == "q-learning" and config["env_id"] == "mpenv/CliffWalking-v0"
    assert config["hyperparameters"]["alpha"] == 0.5 and config["total_steps"] == 4000
    arrays = load_arrays(run_dir, required={"Q": 2, "V": 1, "pi": 1})
    assert arrays["Q"].shape == (48, 4)
    np.testing.assert_array_equal(arrays["pi"], arrays["Q"].argmax(axis=1))
    assert (run_dir / "values.png").stat().st_size > 1000
    assert str(run_dir) in capsys.readouterr().out


def test_value_iteration_run_logs_deltas_and_saves_the_dp_solution(tmp_path):
    assert train.main(["vi", "--env", "FrozenLake-v1", "--logdir", str(tmp_path), "--gamma", "0.9",
                       "--eval-episodes", "0"]) == 0
    run_dir = only_run_dir(tmp_path)
    _, deltas = read_scalars(run_dir, "charts/delta")
    assert deltas[-1] < deltas[0]
    V, pi = dp.value_iteration(dp.MDP.from_env(gym.make("FrozenLake-v1")), gamma=0.9)
    arrays = load_arrays(run_dir)
    np.testing.assert_allclose(arrays["V"], V, atol=1e-12)
    np.testing.assert_array_equal(arrays["pi"], pi)


def test_eval_reports_the_same_return_as_a_direct_rollout(tmp_path, capsys):
    assert train.main(["vi", "--env", "mpenv/CliffWalking-v0", "--logdir", str(tmp_path), "--gamma", "1.0",
                       "--eval-episodes", "0"]) == 0
    run_dir = only_run_dir(tmp_path)
    capsys.readouterr()
    assert evaluate.main([str(run_dir), "--episodes", "3"]) == 0
    assert "return -13.000 +- 0.000" in capsys.readouterr().out  # the optimal path: 13 steps at -1
    env = gym.make("mpenv/CliffWalking-v0")
    returns = evaluate.evaluate_policy(env, load_arrays(run_dir)["pi"], episodes=3)
    np.testing.assert_array_equal(returns, [-13, -13, -13])


def test_prediction_can_evaluate_a_saved_policy(tmp_path):
    assert train.main(["vi", "--env", "mpenv/CliffWalking-v0", "--logdir", str(tmp_path / "vi"), "--gamma", "1.0",
                       "--eval-episodes", "0"]) == 0
    policy_run = only_run_dir(tmp_path / "vi")
    assert train.main(["td0", "--env", "mpenv/CliffWalking-v0", "--logdir", str(tmp_path / "td"),
                       "--policy", str(policy_run), "--n-episodes", "50", "--eval-episodes", "0"]) == 0
    arrays = load_arrays(only_run_dir(tmp_path / "td"))
    np.testing.assert_array_equal(arrays["pi"], load_arrays(policy_run)["pi"])
    assert arrays["V"][36] < 0  # the start state has a negative value under any policy


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["q-learning", "--env", "mpenv/FrozenLake4x4-v0", "--env-kwargs", '{"obs_mode": "onehot"}'],
         "needs a Discrete observation space"),
        (["q-learning", "--env", "CartPole-v1"], "needs a Discrete observation space"),
        (["value-iteration", "--env", "Taxi-v4", "--gamma", "1.5"], "gamma"),
        (["sarsa", "--env", "mpenv/CliffWalking-v0", "--env-kwargs", "{slip: 1}"], "not valid JSON"),
        (["sarsa", "--env", "mpenv/CliffWalking-v0", "--env-kwargs", "[1, 2]"], "JSON object"),
        (["sarsa", "--env", "mpenv/NoSuchEnv-v0"], "cannot make env"),
        (["sarsa", "--env", "mpenv/CliffWalking-v0", "--device", "gpu"], "unknown device"),
        (["td0", "--env", "mpenv/CliffWalking-v0", "--policy", "/nonexistent/run"], "no such checkpoint"),
    ],
)
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, capsys, argv, message):
    assert train.main([*argv, "--logdir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_bad_flag_values_are_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["q-learning", "--alpha", "fast"])
    assert exit_info.value.code == 2
    assert "invalid float value: 'fast'" in capsys.readouterr().err


def test_eval_of_unreadable_or_mismatched_checkpoints_is_a_clear_error(tmp_path, capsys):
    assert evaluate.main([str(tmp_path / "missing")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "checkpoint.npz").write_bytes(b"not a zip file at all")
    (garbage / "config.json").write_text(json.dumps({"env_id": "mpenv/CliffWalking-v0"}))
    assert evaluate.main([str(garbage)]) == 2
    assert f"{garbage / 'checkpoint.npz'}: not a readable checkpoint" in capsys.readouterr().err

    wrong = tmp_path / "wrong"
    save_arrays(wrong, {"pi": np.zeros(7, dtype=np.int64)})
    (wrong / "config.json").write_text(json.dumps({"env_id": "mpenv/CliffWalking-v0"}))
    assert evaluate.main([str(wrong)]) == 2
    assert "policy must be an int array [S]=[48]" in capsys.readouterr().err

    no_config = tmp_path / "no_config"
    save_arrays(no_config, {"pi": np.zeros(48, dtype=np.int64)})
    assert evaluate.main([str(no_config)]) == 2
    assert "config.json: missing" in capsys.readouterr().err


def test_checkpoint_loading_refuses_pickled_objects_and_checks_ranks(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    np.savez(run / "checkpoint.npz", pi=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_arrays(run)
    save_arrays(run, {"V": np.zeros((2, 2))})
    with pytest.raises(CheckpointError, match=r"'V' has shape \(2, 2\), expected 1"):
        load_arrays(run, required={"V": 1})
    with pytest.raises(CheckpointError, match="missing array 'pi'"):
        load_arrays(run, required={"pi": 1})
    (run / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not a readable JSON config"):
        load_config(run)


def test_a_non_finite_loss_stops_the_run_naming_the_step(tmp_path):
    with RunLogger(tmp_path, {"algo": "test"}, progress=False) as logger:
        logger.log("losses/td_error", 0.5, 4)
        with pytest.raises(NonFiniteLossError, match="losses/td_error became nan at step 5"):
            logger.log("losses/td_error", math.nan, 5)
    assert read_scalars(tmp_path, "losses/td_error")[1].tolist() == [0.5]


def test_ctrl_c_flushes_the_logs(tmp_path, monkeypatch, capsys):
    def interrupted_run(env, log, **params):
        for step in range(1, 4):
            log("charts/episodic_return", -float(step), step)
        raise KeyboardInterrupt

    original = train.ALGORITHMS["sarsa"]
    monkeypatch.setitem(train.ALGORITHMS, "sarsa", train.Algorithm(original.config, interrupted_run, "control", ""))
    assert train.main(["sarsa", "--env", "mpenv/CliffWalking-v0", "--logdir", str(tmp_path)]) == 130
    assert "interrupted" in capsys.readouterr().err
    steps, values = read_scalars(only_run_dir(tmp_path), "charts/episodic_return")
    assert steps.tolist() == [1, 2, 3] and values.tolist() == [-1, -2, -3]


def test_progress_bar_is_off_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert not progress_enabled()


def test_a_hyperparameter_may_not_shadow_a_run_flag():
    @dataclasses.dataclass
    class Shadowing:
        eval_episodes: int = 3
        seed: int = 0  # shared on purpose

    with pytest.raises(TypeError, match=r"\['eval_episodes'\] that shadow"):
        train.check_no_shadowed_fields("shadowing", Shadowing)
    for name, algorithm in train.ALGORITHMS.items():
        train.check_no_shadowed_fields(name, algorithm.config)


def test_the_demo_seed_reaches_the_learners_two_seeds_differ_and_one_repeats(tmp_path):
    """``python -m agents.demo --seed S`` trains through train(RunConfig(seed=S), config): the run's seed must
    seed the agent, not only name the run directory."""
    from agents import demo, td

    def curve(seed: int, logdir: str) -> np.ndarray:
        run = train.RunConfig(env=demo.CLIFF, seed=seed, logdir=str(tmp_path / logdir), eval_episodes=0)
        run_dir = train.train("sarsa", run, td.SarsaConfig(**demo.CLIFF_TD), progress=False)
        assert json.loads((run_dir / "config.json").read_text())["hyperparameters"]["seed"] == seed
        return read_scalars(run_dir, "charts/episodic_return")[1]

    first, again, other = curve(1, "a"), curve(1, "b"), curve(5, "c")
    np.testing.assert_array_equal(first, again)
    assert len(first) == len(other) == demo.CLIFF_TD["n_episodes"] and not np.array_equal(first, other)
