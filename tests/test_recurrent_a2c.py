"""The recurrent A2C (``mpenv-train a2c --recurrent``): the LSTM actor-critic replays a rollout exactly as it acted,
zeroes its memory where episodes end, and its unrolled forward and gradients equal torch's nn.LSTMCell run by hand
with the same weights; runs checkpoint, resume and evaluate with their memory. The learning test is the course's
point: on the T-maze of length 10, where the cue must be remembered for 11 steps, the recurrent agent succeeds in
at least 95% of held-out episodes and the feed-forward one stays near chance (50%)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import mpenv  # noqa: F401  (registers mpenv/TMaze-v0)
from agents import evaluate
from agents.actor_critic import A2CConfig, Rollout, a2c_loss, collect_rollout, load_policy, train_a2c
from agents.envs import make_env, make_vector_env
from agents.evaluate import HELD_OUT_SEED_OFFSET, OneAtATime, run_episodes, vector_returns
from agents.policies import RecurrentActor, RecurrentActorCritic, actor_from_network, build_actor_critic, forget
from agents.run import RunContext
from agents.train import main as train_main
from mpenv.nn import RecurrentModule

ENV = "mpenv/TMaze-v0"
# The settings of the learning test, and of the command in agents/actor_critic.py's docstring and the README.
SOLVING = dict(n_envs=16, n_steps=32, hidden_sizes="32", lstm_size=32, learning_rate=2e-3, gamma=0.95,
               ent_coef=0.01)


def small_model(seed: int = 0, **overrides) -> tuple[RecurrentActorCritic, object]:
    torch.manual_seed(seed)
    envs = make_vector_env(ENV, {}, 4, seed)
    config = A2CConfig(recurrent=True, hidden_sizes="8", lstm_size=6, **overrides)
    return build_actor_critic(config, envs.single_observation_space, envs.single_action_space), envs


def collected(model, envs, n_steps: int = 40, seed: int = 0) -> Rollout:
    """A rollout long enough that every env finishes an episode inside it (the T-maze's limit is 44 steps)."""
    rollout = Rollout(n_steps, envs, torch.device("cpu"))
    obs, _ = envs.reset(seed=seed)
    collect_rollout(model, envs, rollout, obs, model.initial_state(envs.num_envs), 0, lambda *args: None)
    return rollout


def test_the_replayed_rollout_is_what_the_agent_saw_while_acting():
    model, envs = small_model()
    seen = []
    step = model.step

    def recording_step(obs, state, deterministic=False):
        hidden, _ = model.unroll(obs[None], state)
        seen.append(model.critic(hidden[0]).squeeze(-1))
        return step(obs, state, deterministic)

    model.step = recording_step
    rollout = collected(model, envs, n_steps=60)
    assert (rollout.terminated + rollout.truncated).sum(0).min() >= 1  # every env crossed an episode boundary
    obs = torch.from_numpy(rollout.obs)
    _, _, values = model.evaluate_rollout(obs, rollout.actions, rollout.state0, rollout.starts())
    torch.testing.assert_close(values, torch.stack(seen), atol=1e-6, rtol=0)


def test_an_episode_starts_from_the_zero_state():
    """The values of a new episode inside a rollout equal those of a fresh rollout of that episode alone."""
    model, envs = small_model(seed=1)
    rollout = collected(model, envs, n_steps=60, seed=1)
    starts = rollout.starts()
    obs = torch.from_numpy(rollout.obs)
    _, _, values = model.evaluate_rollout(obs, rollout.actions, rollout.state0, starts)
    for env_index in range(envs.num_envs):
        t = int(torch.nonzero(starts[:, env_index])[0])  # the second episode's first step
        alone, _ = model.unroll(obs[t:, env_index : env_index + 1], model.initial_state(1))
        torch.testing.assert_close(values[t:, env_index], model.critic(alone).squeeze(-1)[:, 0][: len(values) - t],
                                   atol=1e-6, rtol=0)
    state = (torch.ones(3, 2), torch.full((3, 2), 2.0))
    h, c = forget(state, np.array([False, True, False]))
    assert torch.equal(h[1], torch.zeros(2)) and torch.equal(c[0], torch.full((2,), 2.0))
    assert forget(None, np.array([True])) is None


def test_unroll_and_gradients_equal_torch_lstm_cell_stepped_by_hand():
    """An independent replay: nn.LSTMCell with the LSTM's weights, the state multiplied by 0 at each episode start;
    the A2C loss and its gradient on every weight agree."""
    model, envs = small_model(seed=2)
    assert isinstance(model.core, RecurrentModule)  # the hand-written BPTT computes the LSTM's gradients
    rollout = collected(model, envs, n_steps=50, seed=2)
    model.double()
    obs = torch.from_numpy(rollout.obs).double()
    starts = rollout.starts()
    state0 = tuple(s.double() for s in rollout.state0)
    log_prob, entropy, values = model.evaluate_rollout(obs, rollout.actions, state0, starts)
    (log_prob.sum() + values.square().sum()).backward()
    mine = {name: p.grad.clone() for name, p in model.core.named_parameters()}

    cell = torch.nn.LSTMCell(model.core.layer.input_size, model.core.hidden_size, dtype=torch.float64)
    cell.load_state_dict({name.removesuffix("_l0"): p.detach() for name, p in model.core.named_parameters()})
    h, c = state0
    hidden = []
    for t in range(len(obs)):
        keep = (~starts[t]).double()[:, None]
        h, c = cell(model.encoder(obs[t]), (h * keep, c * keep))
        hidden.append(h)
    hidden = torch.stack(hidden)
    ref_log_prob, _ = model.head.log_prob_and_entropy(model.head(hidden.flatten(0, 1)), rollout.actions.flatten(0, 1))
    ref_values = model.critic(hidden).squeeze(-1)
    torch.testing.assert_close(values, ref_values, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(log_prob, ref_log_prob, atol=1e-12, rtol=1e-10)
    (ref_log_prob.sum() + ref_values.square().sum()).backward()
    for name, p in cell.named_parameters():
        torch.testing.assert_close(mine[name + "_l0"], p.grad, atol=1e-10, rtol=1e-8)


def test_the_loss_bootstraps_cut_episodes_with_the_memory_they_had():
    torch.manual_seed(3)
    envs = make_vector_env(ENV, {"max_episode_steps": 5}, 2, 3)  # the agent cannot reach the junction in 5 steps
    model = build_actor_critic(A2CConfig(recurrent=True, hidden_sizes="8", lstm_size=6), envs.single_observation_space,
                               envs.single_action_space)
    rollout = collected(model, envs, n_steps=12, seed=3)
    assert [(t, env) for t, env, _ in rollout.cut] == [(4, 0), (4, 1), (9, 0), (9, 1)]
    # Five steps never reach the junction of a 10-cell corridor: every final observation is "in the corridor".
    in_corridor = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    obs = torch.from_numpy(rollout.obs)
    for t, env_index, value in rollout.cut:
        episode = torch.cat([obs[t - 4 : t + 1, env_index], in_corridor])[:, None]  # its 5 steps, then the cut
        with torch.no_grad():
            hidden, _ = model.unroll(episode, model.initial_state(1))
            expected = float(model.critic(hidden[-1]))
        assert value == pytest.approx(expected, abs=1e-6)
    loss, terms = a2c_loss(model, rollout, A2CConfig(recurrent=True))
    assert torch.isfinite(loss) and set(terms) == {"policy_loss", "value_loss", "entropy"}


def test_the_deterministic_actor_forgets_when_the_envs_reset(monkeypatch):
    model, envs = small_model(seed=4)
    actor = actor_from_network(model)
    assert isinstance(actor, RecurrentActor)
    vector_returns(envs, actor, seed=7)
    remembered = actor.state
    assert remembered is not None and remembered[1].abs().sum() > 0
    resets = []
    monkeypatch.setattr(actor, "reset", lambda: (resets.append(1), RecurrentActor.reset(actor)))
    vector_returns(envs, actor, seed=7)
    run_episodes(make_env(ENV), OneAtATime(actor), 3, seed=5)
    assert len(resets) == 1 + 3  # once per vector reset, once per episode

    obs, _ = envs.reset(seed=9)
    actor.reset()
    fresh = RecurrentActor(model)
    for _ in range(5):
        np.testing.assert_array_equal(actor(obs), fresh(obs))
    torch.testing.assert_close(actor.state, fresh.state)
    torch.testing.assert_close(fresh.state, model.unroll(torch.from_numpy(obs).expand(5, *obs.shape),
                                                         model.initial_state(len(obs)))[1])


def test_cli_trains_resumes_and_evaluates_a_recurrent_policy(tmp_path, capsys):
    args = ["a2c", "--env", ENV, "--recurrent", "--lstm-size", "8", "--hidden-sizes", "8", "--n-envs", "4",
            "--n-steps", "16", "--eval-every", "512", "--eval-episodes", "4", "--checkpoint-every", "512",
            "--seed", "3", "--logdir", str(tmp_path)]
    train_main([*args, "--total-steps", "1024"])
    (run_dir,) = [path for path in tmp_path.iterdir() if path.is_dir()]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["hyperparameters"]["recurrent"] is True and config["hyperparameters"]["lstm_size"] == 8
    train_main(["a2c", "--resume", str(run_dir), "--total-steps", "2048"])
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["step"] == 2048

    act = load_policy(run_dir, make_env(ENV))
    assert isinstance(act, RecurrentActor) and act.model.core.hidden_size == 8
    evaluate.main([str(run_dir), "--episodes", "3"])
    assert "mpenv/TMaze-v0 | a2c | 3 episodes" in capsys.readouterr().out


def test_bad_recurrent_settings_are_named():
    with pytest.raises(ValueError, match="lstm_size must be an integer >= 1, got 0"):
        train_a2c(A2CConfig(recurrent=True, lstm_size=0), RunContext(ENV, total_steps=10))


# ---------------------------------------------------------------------------------------------------
# Learning: memory


def held_out_success(model, seed: int, episodes: int = 200) -> float:
    """The fraction of held-out T-maze episodes that end in the cued arm (the return is 1 there, 0 elsewhere)."""
    envs = make_vector_env(ENV, {}, episodes, HELD_OUT_SEED_OFFSET + seed)
    return float(vector_returns(envs, actor_from_network(model), HELD_OUT_SEED_OFFSET + seed).mean())


TMAZE_STEPS = 400_000  # the step budget of both learning tests: memory or not, the same experience


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_recurrent_a2c_solves_the_tmaze(seed):
    """The bar is 95% of 200 held-out episodes within 400k steps. Seeds 1 to 7 all reached 100% by 600k steps;
    seeds 1, 2, 3 first evaluate at 100% after 240k, 320k and 200k steps; seeds 1 to 5 score 1.0 held out at 400k."""
    model = train_a2c(A2CConfig(recurrent=True, eval_every=20_000, **SOLVING), RunContext(ENV, TMAZE_STEPS, seed=seed))
    assert held_out_success(model, seed) >= 0.95


@pytest.mark.slow
def test_feed_forward_a2c_stays_at_chance_on_the_tmaze():
    """The same budget and settings without memory: at the junction it cannot know the arm, so it succeeds in about
    half the episodes (a memoryless policy's best; 200 episodes: +-3.5% standard error; measured 0.495)."""
    model = train_a2c(A2CConfig(recurrent=False, eval_every=20_000, **SOLVING), RunContext(ENV, TMAZE_STEPS, seed=1))
    assert 0.4 <= held_out_success(model, 1) <= 0.6
