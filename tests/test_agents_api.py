"""The agents package's Python API: lazy re-exports (no torch at import) and the run context's threads."""

import subprocess
import sys

import pytest
import torch

import agents
from agents.dqn import DQNConfig, train_dqn
from agents.run import RunContext


def test_import_agents_and_mpenv_import_no_torch_and_the_names_resolve_lazily():
    code = (
        "import sys, agents, mpenv\n"
        "assert 'torch' not in sys.modules, 'import agents imported torch'\n"
        "from agents import value_iteration, q_learning, sarsa, MDP\n"
        "assert 'torch' not in sys.modules, 'the tabular names imported torch'\n"
        "from agents import train_dqn, DQNConfig, RunContext, train_a2c, A2CConfig, train_reinforce\n"
        "import agents.dqn, agents.dp\n"
        "assert train_dqn is agents.dqn.train_dqn and value_iteration is agents.dp.value_iteration\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_every_exported_name_is_found_and_an_unknown_one_is_an_attribute_error():
    for name in agents.__all__:
        assert getattr(agents, name) is not None, name
    assert set(agents.__all__) <= set(dir(agents))
    with pytest.raises(AttributeError, match="no attribute 'train_dqm'"):
        agents.train_dqm  # noqa: B018


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("threads", "expected"), [(None, 1), (2, 2), (0, 3)])  # default, given, torch's own
def test_training_runs_on_the_run_contexts_threads(restore_threads, threads, expected):
    torch.set_num_threads(3)
    kwargs = {} if threads is None else {"threads": threads}
    train_dqn(DQNConfig(learning_starts=10, batch_size=4, train_frequency=10, hidden_sizes="4", eval_every=0),
              RunContext("CartPole-v1", total_steps=20, device="cpu", **kwargs))
    assert torch.get_num_threads() == expected


def test_negative_threads_are_a_value_error():
    with pytest.raises(ValueError, match="threads must be >= 0"):
        RunContext("CartPole-v1", total_steps=10, threads=-1)


@pytest.mark.parametrize(("module", "config", "name"), [
    ("agents.dqn", "DQNConfig", "DQN"), ("agents.reinforce", "ReinforceConfig", "REINFORCE"),
    ("agents.actor_critic", "A2CConfig", "A2C"), ("agents.sb3_ppo", "PPOConfig", "PPO"),
])
def test_the_four_deep_configs_report_every_bad_field_at_once_in_one_style(module, config, name):
    import importlib

    agent = importlib.import_module(module)
    bad = getattr(agent, config)(learning_rate=float("nan"), gamma=1.5, hidden_sizes="64,x", eval_every_episodes=0)
    with pytest.raises(ValueError) as error:
        agent.check_config(bad)
    message = str(error.value)
    assert message.startswith(f"bad {name} hyperparameters: ")
    for field in ("learning_rate", "gamma", "hidden_sizes", "eval_every_episodes"):
        assert field in message, (field, message)
    agent.check_config(getattr(agent, config)())  # the defaults pass
