"""mpenv-train ppo / mpenv-eval on PPO runs: a short run end to end, resume, Ctrl-C, learning, the
imitation/* logs of a fake imitation env, and bad input."""

import json
import re
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents import evaluate, sb3_ppo, train
from agents.envs import make_env
from mpenv.checkpoint import load_arrays, load_torch
from mpenv.logger import read_scalars

# Two envs of 128 steps per rollout: a Pendulum episode (200 steps) ends within every second rollout.
TINY = ["--n-envs", "2", "--n-steps", "128", "--batch-size", "64", "--n-epochs", "2", "--hidden-sizes", "16,16",
        "--eval-every-episodes", "2", "--eval-episodes", "2", "--seed", "3"]


def only_run_dir(logdir: Path) -> Path:
    runs = [p for p in logdir.iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


def scalar_tags(run_dir: Path) -> dict[str, np.ndarray]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: np.array([p.value for p in events.Scalars(tag)]) for tag in events.Tags()["scalars"]}


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory) -> Path:
    """One short PPO run on Pendulum-v1, in worker processes (the default ``--vec subproc``)."""
    logdir = tmp_path_factory.mktemp("runs")
    assert train.main(["ppo", "--env", "Pendulum-v1", "--logdir", str(logdir), "--total-steps", "1024",
                       "--checkpoint-every", "512", "--eval-every", "512", *TINY]) == 0
    return only_run_dir(logdir)


def test_a_short_run_writes_config_checkpoints_statistics_and_finite_scalars(pendulum_run):
    config = json.loads((pendulum_run / "config.json").read_text())
    assert config["algo"] == "ppo" and config["env_id"] == "Pendulum-v1" and config["total_steps"] == 1024
    assert config["hyperparameters"]["gamma"] == 0.95 and config["hyperparameters"]["vec"] == "subproc"
    state = load_torch(pendulum_run)
    assert state["step"] == 1024 and {"policy", "best_policy"} <= set(state["modules"])
    assert "optimizer" in state["optimizers"]
    stats = load_arrays(pendulum_run)
    assert int(stats["step"]) == 1024 and stats["obs_mean"].shape == (3,) and stats["obs_count"] > 1000
    tags = scalar_tags(pendulum_run)
    for tag in ("charts/episodic_return", "charts/SPS", "charts/episode_length_fraction", "losses/policy_loss",
                "losses/value_loss", "losses/entropy", "train/approx_kl", "train/clip_fraction", "train/std",
                "eval/mean_return", "eval/final_return"):
        assert tag in tags and np.all(np.isfinite(tags[tag])), tag
    assert np.all(tags["charts/episode_length_fraction"] == 1.0)  # Pendulum only ends at its time limit
    assert not any(tag.startswith(("time/", "rollout/", "imitation/")) for tag in tags)
    assert read_scalars(pendulum_run, "train/n_updates")[0].max() == 1024  # the last update is logged too


def test_eval_equals_a_direct_rollout_of_the_reloaded_policy(pendulum_run, capsys):
    capsys.readouterr()
    assert evaluate.main([str(pendulum_run), "--episodes", "2", "--seed", "7"]) == 0
    printed = re.search(r"return (-?[\d.]+) \+- ([\d.]+)", capsys.readouterr().out)
    env = make_env("Pendulum-v1")
    act = sb3_ppo.load_policy(pendulum_run, env)
    returns = evaluate.run_episodes(env, lambda obs: act(obs[None])[0], 2, seed=7)
    assert printed.groups() == (f"{returns.mean():.3f}", f"{returns.std():.3f}")


def test_exported_policy_plays_the_same_and_is_smaller(pendulum_run, tmp_path, capsys):
    out = sb3_ppo.export_policy(pendulum_run, tmp_path / "exported")
    assert (out / "checkpoint.pt").stat().st_size < 0.5 * (pendulum_run / "checkpoint.pt").stat().st_size
    reports = []
    for run in (pendulum_run, out):
        capsys.readouterr()
        assert evaluate.main([str(run), "--episodes", "2", "--seed", "3"]) == 0
        reports.append(re.search(r"return (-?[\d.]+) \+- ([\d.]+)", capsys.readouterr().out).groups())
    assert reports[0] == reports[1]


def test_eval_writes_a_video(pendulum_run, tmp_path, capsys):
    assert evaluate.main([str(pendulum_run), "--episodes", "1", "--video", str(tmp_path / "pendulum.mp4")]) == 0
    assert (tmp_path / "pendulum.mp4").stat().st_size > 1000


def test_resume_continues_the_step_counter_weights_and_statistics(pendulum_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(pendulum_run, run_dir)
    count_before = float(load_arrays(run_dir)["obs_count"])
    assert train.main(["ppo", "--env", "Pendulum-v1", "--resume", str(run_dir), "--total-steps", "1536",
                       "--eval-episodes", "0"]) == 0
    assert load_torch(run_dir)["step"] == 1536
    # 512 steps more, plus the 2 first observations of the resumed run's reset
    assert float(load_arrays(run_dir)["obs_count"]) == pytest.approx(count_before + 512 + 2)
    steps, _ = read_scalars(run_dir, "train/n_updates")
    assert steps.max() == 1536 and sorted(steps) == list(steps)


def test_init_from_starts_a_new_run_from_another_runs_best_policy(pendulum_run, tmp_path, monkeypatch):
    """With PPO's updates switched off, the new run's saved policy is the source's best, weights and
    observation statistics; a source with another network shape is refused before anything is written."""
    monkeypatch.setattr(sb3_ppo.PPO, "learn", lambda self, **kwargs: self)
    assert train.main(["ppo", "--env", "Pendulum-v1", "--logdir", str(tmp_path / "a"), "--total-steps", "256",
                       "--init-from", str(pendulum_run), "--eval-every", "0", "--vec", "dummy", *TINY]) == 0
    run_dir = only_run_dir(tmp_path / "a")
    source, started = load_torch(pendulum_run)["modules"]["best_policy"], load_torch(run_dir)["modules"]
    for name in ("policy", "best_policy"):
        assert source.keys() == started[name].keys()
        assert all(torch.equal(source[key], started[name][key]) for key in source), name
    np.testing.assert_array_equal(load_arrays(run_dir)["obs_mean"], load_arrays(pendulum_run)["best_obs_mean"])
    assert json.loads((run_dir / "config.json").read_text())["hyperparameters"]["init_from"] == str(pendulum_run)
    args = ["ppo", "--env", "Pendulum-v1", "--logdir", str(tmp_path / "b"), "--init-from", str(pendulum_run),
            *TINY[:-8], "--hidden-sizes", "8,8"]
    assert train.main(args) == 2
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())


def test_ctrl_c_keeps_the_last_checkpoint_usable(tmp_path, monkeypatch, capsys):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(sb3_ppo, "evaluate", interrupt)  # Ctrl-C at the first evaluation, after the 512-step checkpoint
    assert train.main(["ppo", "--env", "Pendulum-v1", "--logdir", str(tmp_path), "--total-steps", "2048",
                       "--checkpoint-every", "512", "--eval-every", "1024", "--vec", "dummy", *TINY]) == 130
    run_dir = only_run_dir(tmp_path)
    assert load_torch(run_dir)["step"] == 512 and int(load_arrays(run_dir)["step"]) == 512
    assert len(read_scalars(run_dir, "charts/episodic_return")[1]) > 0  # the logs were flushed
    monkeypatch.undo()
    assert evaluate.main([str(run_dir), "--episodes", "1"]) == 0


def test_the_same_seed_gives_the_same_run(tmp_path):
    runs = []
    for name in ("a", "b"):
        assert train.main(["ppo", "--env", "Pendulum-v1", "--logdir", str(tmp_path / name), "--total-steps", "512",
                           "--vec", "dummy", *TINY]) == 0
        runs.append(read_scalars(only_run_dir(tmp_path / name), "losses/value_loss")[1])
    assert np.array_equal(*runs)


def test_ppo_learns_cartpole(tmp_path):
    """The rl-zoo's CartPole settings: the best evaluated policy balances for the full 500 steps within
    16k steps (each of seeds 1-4 does; about 6 s)."""
    assert train.main(["ppo", "--env", "CartPole-v1", "--logdir", str(tmp_path), "--total-steps", "16384",
                       "--vec", "dummy", "--n-envs", "8", "--n-steps", "32", "--batch-size", "256", "--n-epochs", "20",
                       "--gamma", "0.98", "--gae-lambda", "0.8", "--learning-rate", "1e-3", "--hidden-sizes", "64,64",
                       "--activation", "tanh", "--eval-every", "4096", "--eval-episodes", "20", "--seed", "1"]) == 0
    _, final = read_scalars(only_run_dir(tmp_path), "eval/final_return")
    assert final[-1] >= 475


# ---------------------------------------------------------------------------------------------------
# imitation/* from a fake imitation env


class FakeImitationEnv(gym.Env):
    """Ends after 10 steps (half its time limit); ``info`` carries imitation terms and a few other entries."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        info = {"reward_pose": float(self.t), "reward_vel": 0.25, "mpjpe": np.float32(0.1), "mpjpe_global": 0.2,
                "reward_note": "text", "other": 3.0, "flag": True}
        return np.full(2, self.t / 10, np.float32), 1.0, self.t == 10, False, info


gym.register("test/FakeImitation-v0", entry_point=FakeImitationEnv, max_episode_steps=20)


@pytest.mark.parametrize(("target_kl", "epochs_per_rollout"), [("0", 4), ("1e-9", 1)])
def test_target_kl_stops_a_rollouts_epochs_once_the_policy_moved_that_far(tmp_path, target_kl, epochs_per_rollout):
    """SB3 counts an update per epoch begun: with a KL bound no step can stay under, each rollout's training stops
    in its first epoch (after one minibatch step); without one, all four epochs run."""
    assert train.main(["ppo", "--env", "Pendulum-v1", "--logdir", str(tmp_path), "--total-steps", "512",
                       "--vec", "dummy", "--n-envs", "2", "--n-steps", "128", "--batch-size", "64", "--n-epochs", "4",
                       "--hidden-sizes", "16", "--eval-every-episodes", "1", "--eval-episodes", "0",
                       "--target-kl", target_kl]) == 0
    run_dir = only_run_dir(tmp_path)
    assert json.loads((run_dir / "config.json").read_text())["hyperparameters"]["target_kl"] == float(target_kl)
    assert read_scalars(run_dir, "train/n_updates")[1].max() == 2 * epochs_per_rollout  # two rollouts of 256


def test_imitation_terms_are_logged_as_rollout_means(tmp_path):
    assert train.main(["ppo", "--env", "test/FakeImitation-v0", "--logdir", str(tmp_path), "--total-steps", "80",
                       "--vec", "dummy", "--n-envs", "2", "--n-steps", "20", "--batch-size", "20", "--n-epochs", "1",
                       "--hidden-sizes", "8", "--eval-every-episodes", "1", "--eval-episodes", "1"]) == 0
    tags = scalar_tags(only_run_dir(tmp_path))
    assert sorted(tag for tag in tags if tag.startswith("imitation/")) == [
        "imitation/mpjpe", "imitation/mpjpe_global", "imitation/reward_pose", "imitation/reward_vel"]
    assert np.allclose(tags["imitation/reward_pose"], 5.5)  # the mean of 1..10: two whole episodes per env
    assert np.allclose(tags["imitation/reward_vel"], 0.25) and np.allclose(tags["imitation/mpjpe"], 0.1)
    assert np.allclose(tags["charts/episode_length_fraction"], 0.5)


def test_forward_to_run_log_maps_the_losses_and_skips_the_rest():
    logged = []
    writer = sb3_ppo.ForwardToRunLog(lambda tag, value, step: logged.append((tag, value, step)))
    writer.write({"train/entropy_loss": -1.5, "train/approx_kl": np.float32(0.25), "time/fps": 900,
                  "rollout/ep_rew_mean": 3.0, "train/note": "text"}, {}, step=64)
    assert sorted(logged) == [("losses/entropy", 1.5, 64), ("train/approx_kl", 0.25, 64),
                              ("train/entropy_loss", -1.5, 64)]


# ---------------------------------------------------------------------------------------------------
# Help and bad input


def test_help_lists_the_flags_with_defaults_and_an_example(capsys):
    with pytest.raises(SystemExit):
        train.main(["ppo", "--help"])
    out = capsys.readouterr().out
    for flag in ("--n-envs", "--vec", "--clip-range", "--log-std-init", "--normalize-obs", "--hidden-sizes"):
        assert flag in out
    assert re.search(r"--gamma FLOAT\s+discount factor \(DeepMimic: 0.95\) \(default:\s+0.95\)", out)
    assert "example:\n  mpenv-train ppo --env mpenv/HumanoidMimicWalk-v0" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--env", "NoSuchEnv-v0"], "cannot make env 'NoSuchEnv-v0'"),
    (["--env", "Pendulum-v1", "--batch-size", "1"], "batch_size must be in [2, n_envs * n_steps"),
    (["--env", "Pendulum-v1", "--vec", "threads"], "vec must be 'subproc' or 'dummy'"),
    (["--env", "mpenv/FrozenLake4x4-v0", "--vec", "dummy"], "normalize_obs needs vector Box observations"),
])
def test_bad_input_is_a_clear_error_that_writes_nothing(tmp_path, capsys, argv, message):
    assert train.main(["ppo", *argv, "--logdir", str(tmp_path), "--total-steps", "256"]) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.fixture
def run_copy(pendulum_run, tmp_path) -> Path:
    return Path(shutil.copytree(pendulum_run, tmp_path / "run"))


def test_eval_of_a_corrupt_checkpoint_names_the_file(run_copy, capsys):
    (run_copy / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert evaluate.main([str(run_copy), "--episodes", "1"]) == 2
    assert "checkpoint.pt: not a readable torch checkpoint" in capsys.readouterr().err


def test_eval_without_the_statistics_says_so(run_copy, capsys):
    (run_copy / "checkpoint.npz").unlink()
    assert evaluate.main([str(run_copy), "--episodes", "1"]) == 2
    assert "checkpoint.npz: missing; this PPO run normalises observations" in capsys.readouterr().err


def test_eval_on_an_env_with_other_spaces_is_a_clear_error(run_copy, capsys):
    config = json.loads((run_copy / "config.json").read_text())
    (run_copy / "config.json").write_text(json.dumps(config | {"env_id": "MountainCarContinuous-v0"}))
    assert evaluate.main([str(run_copy), "--episodes", "1"]) == 2
    assert "weights do not fit the network" in capsys.readouterr().err


class PendulumWithExtraFeatures(gym.ObservationWrapper):
    """Pendulum observing two more features, appended at the end (as the humanoid's future frames are)."""

    def __init__(self):
        super().__init__(gym.make("Pendulum-v1"))
        low = np.append(self.env.observation_space.low, [-5, -5]).astype(np.float32)
        self.observation_space = gym.spaces.Box(low, -low, dtype=np.float32)

    def observation(self, obs):
        return np.append(obs, [obs[0] * 3.0, 1.0]).astype(np.float32)


def test_init_from_a_policy_that_observes_fewer_features_starts_where_it_was(pendulum_run, tmp_path, monkeypatch):
    """--init-from into an env with two more observed features: the new inputs start with zero weights and
    standard statistics, so the widened policy's actions and values equal the source's on every observation
    whatever the new features hold; a source observing more than the env is refused."""
    gym.register("PendulumWithExtraFeatures-v0", entry_point=PendulumWithExtraFeatures)
    monkeypatch.setattr(sb3_ppo.PPO, "learn", lambda self, **kwargs: self)
    assert train.main(["ppo", "--env", "PendulumWithExtraFeatures-v0", "--logdir", str(tmp_path / "a"),
                       "--total-steps", "256", "--init-from", str(pendulum_run), "--eval-every", "0",
                       "--vec", "dummy", *TINY]) == 0
    run_dir = only_run_dir(tmp_path / "a")
    stats = load_arrays(run_dir)
    np.testing.assert_array_equal(stats["obs_mean"][3:], 0.0)
    np.testing.assert_array_equal(stats["obs_var"][3:], 1.0)
    source = sb3_ppo.load_policy(pendulum_run, gym.make("Pendulum-v1"))
    widened = sb3_ppo.load_policy(run_dir, PendulumWithExtraFeatures())
    obs = np.random.default_rng(0).uniform(-1.0, 1.0, (64, 3)).astype(np.float32)
    extras = np.random.default_rng(1).uniform(-5.0, 5.0, (64, 2)).astype(np.float32)
    np.testing.assert_allclose(widened(np.concatenate([obs, extras], axis=1)), source(obs), rtol=0, atol=1e-6)
    values = {}
    for name, folder, x in (("source", pendulum_run, obs), ("widened", run_dir, np.concatenate([obs, extras], 1))):
        config = sb3_ppo.load_ppo_config(folder)
        env = gym.make("Pendulum-v1") if name == "source" else PendulumWithExtraFeatures()
        policy = sb3_ppo.NormalizedPolicy(sb3_ppo.build_policy(config, env.observation_space, env.action_space),
                                          config.normalize_obs)
        sb3_ppo.load_best_policy(folder, policy)
        with torch.no_grad():
            values[name] = policy.policy.predict_values(policy.normalizer(torch.as_tensor(x))).numpy()
    np.testing.assert_allclose(values["widened"], values["source"], rtol=0, atol=1e-5)
    args = ["ppo", "--env", "Pendulum-v1", "--logdir", str(tmp_path / "b"), "--total-steps", "256",
            "--init-from", str(run_dir), "--eval-every", "0", "--vec", "dummy", *TINY]
    assert train.main(args) == 2
