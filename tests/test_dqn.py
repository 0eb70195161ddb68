"""DQN: target networks, the TD target, transitions with autoreset, checks, NaN stops, checkpoints,
resume, determinism, and (slow) solving CartPole."""

import copy
import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from agents import dqn
from agents.buffers import Batch
from agents.evaluate import run_episodes
from agents.run import RunContext
from mpenv.checkpoint import CheckpointError, load_torch
from mpenv.logger import NonFiniteLossError, RunLogger, read_scalars


def quick_config(**overrides) -> dqn.DQNConfig:
    """A tiny, fast setting that takes a gradient step every env step soon after the start."""
    settings = dict(hidden_sizes="32,32", buffer_size=2_000, batch_size=32, learning_starts=64, train_frequency=1,
                    gradient_steps=1, target_update_interval=50, exploration_fraction=0.5, eval_every=0)
    return dqn.DQNConfig(**(settings | overrides))


def context(total_steps: int, seed: int = 1, **kwargs) -> RunContext:
    return RunContext("CartPole-v1", total_steps=total_steps, seed=seed, device="cpu", **kwargs)


def logged_run(run_dir, config: dqn.DQNConfig, total_steps: int, resume=None, env_id: str = "CartPole-v1",
               env_kwargs: dict | None = None, **kwargs) -> nn.Module:
    """A run as the CLI does it: config.json and TensorBoard scalars in ``run_dir``."""
    saved = {"algo": "dqn", "env_id": env_id, "env_kwargs": env_kwargs or {},
             "hyperparameters": dataclasses.asdict(config)}
    with RunLogger(run_dir, saved, total_steps=total_steps, progress=False) as logger:
        run = RunContext(env_id, total_steps=total_steps, seed=1, env_kwargs=env_kwargs or {}, device="cpu",
                         log=logger.log, run_dir=run_dir, resume=resume, **kwargs)
        return dqn.train_dqn(config, run)


def parameters(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def cartpole_observations(n: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform([-2.4, -3, -0.2, -3], [2.4, 3, 0.2, 3], size=(n, 4)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# Target networks


def test_the_hard_target_stays_fixed_between_syncs_and_then_equals_the_online_network(monkeypatch):
    syncs = []  # the target's weights right after each sync
    real_update = dqn.update_target

    def checked_update(target_net, q_net, config):
        if syncs:  # nothing touched the target since the previous sync, while Q_theta learned
            for after_last_sync, now in zip(syncs[-1], target_net.parameters(), strict=True):
                assert torch.equal(after_last_sync, now)
        assert any(not torch.equal(t, q) for t, q in zip(target_net.parameters(), q_net.parameters(), strict=True))
        real_update(target_net, q_net, config)
        for t, q in zip(target_net.parameters(), q_net.parameters(), strict=True):
            assert torch.equal(t, q)
        syncs.append(parameters(target_net))

    monkeypatch.setattr(dqn, "update_target", checked_update)
    dqn.train_dqn(quick_config(target_update_interval=100), context(600))
    assert len(syncs) == 6  # steps 100, 200, ..., 600 (the buffer holds 64 >= batch_size from step 64)


def test_polyak_moves_the_target_by_exactly_tau():
    torch.manual_seed(0)
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = parameters(target)
    dqn.polyak_update(target, online, tau=0.25)
    for old, new, theta in zip(before, target.parameters(), online.parameters(), strict=True):
        torch.testing.assert_close(new, 0.75 * old + 0.25 * theta, rtol=1e-6, atol=1e-7)
    dqn.polyak_update(target, online, tau=1.0)
    for t, q in zip(target.parameters(), online.parameters(), strict=True):
        torch.testing.assert_close(t, q)


def test_in_a_run_each_polyak_update_moves_the_target_by_tau(monkeypatch):
    updates = []
    real_update = dqn.update_target

    def checked_update(target_net, q_net, config):
        before, online = parameters(target_net), parameters(q_net)
        real_update(target_net, q_net, config)
        for old, theta, new in zip(before, online, target_net.parameters(), strict=True):
            torch.testing.assert_close(new, (1 - config.tau) * old + config.tau * theta, rtol=1e-5, atol=1e-7)
        updates.append(max(float((theta - new).abs().max()) for theta, new in zip(online, parameters(target_net),
                                                                                      strict=True)))

    monkeypatch.setattr(dqn, "update_target", checked_update)
    dqn.train_dqn(quick_config(target_update="polyak", tau=0.05, target_update_interval=5), context(300))
    assert len(updates) == len(range(65, 301, 5))  # from the first multiple of 5 with 64 transitions stored
    assert all(gap > 0 for gap in updates)  # the target lags: it is never the online network


# ---------------------------------------------------------------------------------------------------
# The TD target and loss, by hand


class TableQ(nn.Module):
    """Q values read from a table: the observation is the row index (as a float, like a Box observation)."""

    def __init__(self, table: list[list[float]]):
        super().__init__()
        self.table = nn.Parameter(torch.tensor(table))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.table[obs.long().reshape(-1)]


def hand_batch() -> Batch:
    # Two transitions: s=0, a=1, r=1, s'=2, not done; s=1, a=0, r=0.5, s'=3, done.
    return Batch(obs=torch.tensor([0.0, 1.0]), actions=torch.tensor([1, 0]), rewards=torch.tensor([1.0, 0.5]),
                 next_obs=torch.tensor([2.0, 3.0]), dones=torch.tensor([0.0, 1.0]))


ONLINE = [[0.0, 2.0], [1.0, 0.0], [4.0, 0.0], [0.0, 1.0]]
TARGET = [[9.0, 9.0], [9.0, 9.0], [1.0, 3.0], [2.0, 5.0]]


def test_the_td_target_of_a_batch_matches_a_hand_computation():
    q_net, target_net, batch = TableQ(ONLINE), TableQ(TARGET), hand_batch()
    y = dqn.td_target(q_net, target_net, batch.rewards, batch.next_obs, batch.dones, gamma=0.9, double_dqn=False)
    # y = r + gamma (1 - d) max_a' Q_target(s', a') = [1 + 0.9 * 3, 0.5 + 0]
    torch.testing.assert_close(y, torch.tensor([3.7, 0.5]))
    assert not y.requires_grad


def test_the_double_dqn_target_picks_with_the_online_network_and_values_with_the_target():
    q_net, target_net, batch = TableQ(ONLINE), TableQ(TARGET), hand_batch()
    y = dqn.td_target(q_net, target_net, batch.rewards, batch.next_obs, batch.dones, gamma=0.9, double_dqn=True)
    # argmax_a' Q_theta(2, a') = 0, so y_0 = 1 + 0.9 Q_target(2, 0) = 1.9; s'=3 is terminal: y_1 = 0.5.
    torch.testing.assert_close(y, torch.tensor([1.9, 0.5]))


@pytest.mark.parametrize(("loss", "expected"), [("mse", (1.7**2 + 0.5**2) / 2),
                                                ("huber", ((1.7 - 0.5) + 0.5 * 0.5**2) / 2)])
def test_the_td_loss_matches_a_hand_computation_and_only_moves_q_theta(loss, expected):
    q_net, target_net, batch = TableQ(ONLINE), TableQ(TARGET), hand_batch()
    config = dqn.DQNConfig(gamma=0.9, loss=loss)
    value, q_taken = dqn.td_loss(q_net, target_net, batch, config)
    # Q_theta(s, a) = [Q(0, 1), Q(1, 0)] = [2, 1]; y = [3.7, 0.5]; errors 1.7 and -0.5.
    torch.testing.assert_close(q_taken, torch.tensor([2.0, 1.0]))
    torch.testing.assert_close(value, torch.tensor(expected))
    value.backward()
    assert q_net.table.grad is not None and target_net.table.grad is None


@pytest.mark.parametrize("sample_bytes", [dqn.SAMPLE_BYTES, 1])  # all minibatches of a round in one draw, or one each
def test_each_round_takes_gradient_steps_steps_on_fresh_minibatches(monkeypatch, sample_bytes):
    batches, shapes = [], []
    real_step, real_loss = dqn.gradient_step, dqn.td_loss

    def recording_loss(q_net, target_net, batch, config):
        shapes.append((batch.obs.shape, batch.actions.shape))
        return real_loss(q_net, target_net, batch, config)

    def recording_step(optimizer, loss, max_grad_norm, step, tag):
        batches.append((step, *shapes[-1]))
        return real_step(optimizer, loss, max_grad_norm, step, tag)

    monkeypatch.setattr(dqn, "td_loss", recording_loss)
    monkeypatch.setattr(dqn, "gradient_step", recording_step)
    monkeypatch.setattr(dqn, "SAMPLE_BYTES", sample_bytes)
    dqn.train_dqn(quick_config(train_frequency=50, gradient_steps=7, batch_size=16), context(300))
    assert [step for step, _, _ in batches] == [step for step in (100, 150, 200, 250, 300) for _ in range(7)]
    assert all(obs == (16, 4) and actions == (16,) for _, obs, actions in batches)


def test_the_written_out_mlp_equals_the_modules_it_reads_and_a_copy_reads_its_own():
    torch.manual_seed(0)
    q_net = dqn.QNetwork(gym.spaces.Box(-1.0, 1.0, (2, 3), np.float32), 3, (16, 8))
    obs = torch.randn(5, 2, 3)
    assert q_net.linears is not None
    assert torch.equal(q_net(obs), q_net.head(q_net.encoder(obs)))
    target_net = copy.deepcopy(q_net)
    with torch.no_grad():
        target_net.head.bias.add_(1.0)
    torch.testing.assert_close(target_net(obs), q_net(obs) + 1.0)
    assert dqn.QNetwork(gym.spaces.Discrete(5), 2, (8,)).linears is None  # one-hot states: the modules


@pytest.mark.parametrize("double_dqn", [False, True])
def test_the_targets_of_a_round_computed_at_once_equal_those_of_each_minibatch(double_dqn):
    torch.manual_seed(0)
    space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float32)
    q_net = dqn.QNetwork(space, 2, (16, 16))
    target_net = dqn.QNetwork(space, 2, (16, 16))  # other weights than Q_theta
    buffer = dqn.ReplayBuffer(500, (4,), seed=0)
    rng = np.random.default_rng(0)
    buffer.add(cartpole_observations(500), cartpole_observations(500)[::-1].copy(), rng.integers(2, size=500),
               rng.normal(size=500), (rng.random(500) < 0.2).astype(np.float32))
    config = dqn.DQNConfig(gradient_steps=5, batch_size=32, gamma=0.9, double_dqn=double_dqn)
    batches = list(dqn.minibatches(buffer, config, torch.device("cpu"), q_net, target_net))
    assert len(batches) == 5
    for batch in batches:
        if double_dqn:  # Q_theta changes with every gradient step: its targets are left to each step
            assert batch.targets is None
            continue
        expected = dqn.td_target(q_net, target_net, batch.rewards, batch.next_obs, batch.dones, 0.9, double_dqn=False)
        torch.testing.assert_close(batch.targets, expected)
        assert batch.targets.shape == (32,) and not batch.targets.requires_grad


# ---------------------------------------------------------------------------------------------------
# Transitions at episode ends: s' is the final observation, d is `terminated` only


class Counter(gym.Env):
    """obs = number of steps taken; terminates after ``terminate_at`` steps if given (a time limit
    truncates it otherwise)."""

    observation_space = gym.spaces.Box(0.0, 100.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, terminate_at: int | None = None):
        self.terminate_at, self.t = terminate_at, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), 1.0, self.t == self.terminate_at, False, {}


gym.register("test/Counter-v0", entry_point=Counter, max_episode_steps=5)


@pytest.mark.parametrize(("terminate_at", "done_at_end"), [(None, 0.0), (3, 1.0)])
def test_episode_ends_store_the_final_observation_and_only_termination_as_done(monkeypatch, terminate_at,
                                                                               done_at_end):
    stored = []

    class RecordingBuffer(dqn.ReplayBuffer):
        def add(self, obs, next_obs, actions, rewards, dones):
            stored.append((float(obs[0, 0]), float(next_obs[0, 0]), float(dones[0])))
            super().add(obs, next_obs, actions, rewards, dones)

    monkeypatch.setattr(dqn, "ReplayBuffer", RecordingBuffer)
    run = RunContext("test/Counter-v0", total_steps=20, env_kwargs={"terminate_at": terminate_at}, device="cpu")
    dqn.train_dqn(quick_config(learning_starts=1_000, batch_size=8), run)
    length = terminate_at or 5
    for obs, next_obs, done in stored:
        assert next_obs == obs + 1  # never the next episode's first observation (0)
        assert done == (done_at_end if next_obs == length else 0.0)
    assert sum(next_obs == length for _, next_obs, _ in stored) == 20 // length


# ---------------------------------------------------------------------------------------------------
# Clear errors before any env step


def test_continuous_actions_are_a_clear_error_before_any_step(monkeypatch):
    def no_step(*args, **kwargs):
        raise AssertionError("an env step was taken")

    monkeypatch.setattr(gym.vector.SyncVectorEnv, "step", no_step)
    with pytest.raises(ValueError, match=r"dqn needs a Discrete action space.*Box.*reinforce or a2c"):
        dqn.train_dqn(dqn.DQNConfig(), RunContext("Pendulum-v1", total_steps=100, device="cpu"))


@pytest.mark.parametrize("bad", [
    {"learning_rate": 0.0}, {"learning_rate": float("nan")}, {"gamma": 1.5}, {"batch_size": 0},
    {"batch_size": 128, "buffer_size": 64}, {"train_frequency": 0}, {"target_update": "soft"}, {"tau": 0.0},
    {"epsilon_end": -0.1}, {"exploration_fraction": 0.0}, {"loss": "l1"}, {"max_grad_norm": 0.0},
    {"hidden_sizes": "64,x"}, {"hidden_sizes": ""}, {"eval_every": -1}, {"learning_starts": -5},
])
def test_bad_hyperparameters_are_a_value_error_naming_them(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        dqn.train_dqn(dqn.DQNConfig(**bad), context(100))


def test_every_config_field_is_a_plain_scalar_with_help():
    for f in dataclasses.fields(dqn.DQNConfig):
        assert f.type in ("int", "float", "str", "bool"), f
        assert f.metadata.get("help"), f.name


# ---------------------------------------------------------------------------------------------------
# Non-finite losses, checkpoints, resume


def test_a_nan_loss_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = 0
    real_loss = dqn.td_loss

    def poisoned_loss(*args):
        nonlocal calls
        calls += 1
        loss, q_taken = real_loss(*args)
        return (loss * float("nan") if calls == 150 else loss), q_taken

    monkeypatch.setattr(dqn, "td_loss", poisoned_loss)
    config = quick_config(learning_starts=100)
    with pytest.raises(NonFiniteLossError, match="at step 249"):  # gradient steps from step 100, one per step
        logged_run(tmp_path, config, 1_000, checkpoint_every=100)
    state = load_torch(tmp_path)
    assert state["step"] == 200
    for weights in state["modules"].values():
        assert all(torch.isfinite(tensor).all() for tensor in weights.values())
    actions = dqn.load_policy(tmp_path, gym.make("CartPole-v1"))(cartpole_observations())
    assert actions.shape == (64,) and set(actions) <= {0, 1}


def test_a_diverging_learning_rate_stops_the_run_before_the_weights_become_nan(tmp_path):
    config = quick_config(learning_rate=1e30, max_grad_norm=1e30, loss="mse")
    with pytest.raises(NonFiniteLossError, match=r"losses/td_loss became (nan|inf) at step \d+"):
        logged_run(tmp_path, config, 5_000, checkpoint_every=64)
    state = load_torch(tmp_path)
    for weights in state["modules"].values():
        assert all(torch.isfinite(tensor).all() for tensor in weights.values())


@pytest.mark.parametrize("eval_every", [0, 400])
def test_a_checkpoint_reloads_to_the_same_greedy_actions(tmp_path, eval_every):
    q_net = logged_run(tmp_path, quick_config(eval_every=eval_every, eval_every_episodes=3), 1_000)
    observations = cartpole_observations()
    trained = dqn.actor_from_network(q_net)(observations)
    loaded = dqn.load_policy(tmp_path / "checkpoint.pt", gym.make("CartPole-v1"))(observations)
    np.testing.assert_array_equal(loaded, trained)
    assert len(set(trained)) == 2  # a real comparison: both actions occur
    state = load_torch(tmp_path)
    assert state["step"] == 1_000
    assert set(state["modules"]) == {"q_network", "target_network", "best_q_network"}
    assert set(state["optimizers"]) == {"optimizer"}


def test_a_checkpoint_for_another_env_or_without_its_config_is_a_checkpoint_error(tmp_path):
    logged_run(tmp_path, quick_config(), 200)
    with pytest.raises(CheckpointError, match="checkpoint.pt: weights do not fit"):
        dqn.load_policy(tmp_path / "checkpoint.pt", gym.make("Acrobot-v1"))
    (tmp_path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json: missing"):
        dqn.load_policy(tmp_path, gym.make("CartPole-v1"))


def test_a_run_shorter_than_eval_every_is_not_evaluated_and_keeps_its_final_weights(tmp_path):
    q_net = logged_run(tmp_path, quick_config(eval_every=5_000), 300)
    with pytest.raises(KeyError, match="eval/mean_return"):
        read_scalars(tmp_path, "eval/mean_return")
    state = load_torch(tmp_path)
    for name, weights in state["modules"]["best_q_network"].items():
        assert torch.equal(weights, state["modules"]["q_network"][name])
        assert torch.equal(weights, q_net.state_dict()[name])


def test_the_best_evaluated_weights_are_returned_and_loaded(tmp_path):
    logged_run(tmp_path, quick_config(eval_every=250, eval_every_episodes=3), 1_000)
    steps, returns = read_scalars(tmp_path, "eval/mean_return")
    np.testing.assert_array_equal(steps, [250, 500, 750, 1000])
    state = load_torch(tmp_path)
    assert state["extra"]["best_return"] == pytest.approx(returns.max())
    best = dqn.QNetwork(gym.make("CartPole-v1").observation_space, 2, (32, 32))
    best.load_state_dict(state["modules"]["best_q_network"])
    observations = cartpole_observations()
    loaded = dqn.load_policy(tmp_path, gym.make("CartPole-v1"))(observations)
    np.testing.assert_array_equal(loaded, dqn.actor_from_network(best)(observations))


def test_resume_continues_the_step_counter_and_the_epsilon_schedule(tmp_path):
    config = quick_config()
    logged_run(tmp_path, config, 600, checkpoint_every=300)
    first_steps, _ = read_scalars(tmp_path, "charts/episodic_return")
    logged_run(tmp_path, config, 1_200, resume=tmp_path, checkpoint_every=300)
    steps, _ = read_scalars(tmp_path, "charts/episodic_return")
    assert first_steps.max() <= 600 < steps.max() <= 1_200
    assert len(steps) > len(first_steps)
    epsilon_steps, epsilons = read_scalars(tmp_path, "charts/epsilon")
    resumed = epsilon_steps > 600
    assert epsilon_steps[resumed].min() == 700  # not 100: the counter went on from 600
    # epsilon at step 700 of 1200 with a decay over half the run: 1 -> 0.04 by step 600, then flat
    np.testing.assert_allclose(epsilons[resumed], config.epsilon_end, rtol=1e-6)
    assert load_torch(tmp_path)["step"] == 1_200


def test_resume_restores_the_weights_exactly(tmp_path):
    """A resume at the budget already reached takes no step, says so, and saves what it restored."""
    logged_run(tmp_path, quick_config(), 300)
    before = load_torch(tmp_path)
    with pytest.warns(UserWarning, match="already took 300 env steps and total_steps is 300: nothing to train"):
        logged_run(tmp_path, quick_config(), 300, resume=tmp_path)
    after = load_torch(tmp_path)
    assert after["step"] == 300
    for name, weights in before["modules"]["q_network"].items():
        assert torch.equal(weights, after["modules"]["q_network"][name])


# ---------------------------------------------------------------------------------------------------
# Determinism, observation kinds


def td_losses(seed: int, **overrides) -> list[float]:
    log = []
    dqn.train_dqn(quick_config(**overrides), context(800, seed=seed, log=lambda tag, value, step: log.append(
        (tag, value, step))))
    losses = [(step, value) for tag, value, step in log if tag == "losses/td_loss"]
    assert len(losses) >= 7
    return losses


def test_the_same_seed_gives_the_same_learning_curve():
    assert td_losses(seed=5) == td_losses(seed=5)
    assert td_losses(seed=5) != td_losses(seed=6)


def test_the_same_seed_gives_the_same_curve_with_double_dqn_and_polyak():
    settings = dict(double_dqn=True, target_update="polyak", tau=0.1, target_update_interval=1)
    assert td_losses(seed=2, **settings) == td_losses(seed=2, **settings)


@pytest.mark.parametrize(("obs_mode", "encoder"), [("discrete", "OneHot"), ("rgb", "NatureCNN"),
                                                   ("onehot", "Flatten")])
def test_discrete_and_image_observations_train_and_reload(tmp_path, obs_mode, encoder):
    env_kwargs = {"obs_mode": obs_mode, "layout": "4x4", "slip": 0.0}
    # GridWorld-v0 has no time limit: an evaluation of a policy that walks into a wall is cut at 10,000 steps,
    # too slow with images.
    config = quick_config(learning_starts=40, batch_size=16, train_frequency=4,
                          eval_every=0 if obs_mode == "rgb" else 100, eval_every_episodes=2)
    q_net = logged_run(tmp_path, config, 200, env_id="mpenv/GridWorld-v0", env_kwargs=env_kwargs)
    assert encoder in str(q_net.encoder)
    env = gym.make("mpenv/GridWorld-v0", **env_kwargs)
    obs, _ = env.reset(seed=0)
    batch = np.stack([obs, obs])
    np.testing.assert_array_equal(dqn.load_policy(tmp_path, env)(batch), dqn.actor_from_network(q_net)(batch))


# ---------------------------------------------------------------------------------------------------
# Learning


@pytest.mark.slow
def test_dqn_solves_cartpole_with_the_default_hyperparameters(tmp_path):
    config = dqn.DQNConfig()
    logged_run(tmp_path, config, 50_000)
    env = gym.make("CartPole-v1")
    act = dqn.load_policy(tmp_path, env)
    returns = run_episodes(env, lambda obs: act(obs[None])[0], episodes=10, seed=12_345)
    assert returns.mean() >= 475, returns
