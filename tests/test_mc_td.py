"""Monte Carlo and TD agents (agents.mc, agents.td): prediction converges to the DP value, control learns
the textbook behaviour, inputs are checked, and the training-CLI hooks (log, total_steps) work."""

from __future__ import annotations

import dataclasses
import inspect

import gymnasium as gym
import numpy as np
import pytest

import mpenv  # noqa: F401  (registers the mpenv/ ids)
from agents import dp, mc, td
from agents.dp import MDP, policy_evaluation, value_iteration
from agents.mc import mc_control, mc_prediction
from agents.td import expected_sarsa, q_learning, sarsa, td0_prediction


class RandomWalk(gym.Env):
    """Sutton & Barto, Example 6.2: states 1..5 (A..E) between two terminal ends 0 and 6, start in C,
    each step left or right with probability 1/2 (one dummy action), reward 1 on exiting right.
    v_pi(s) = s / 6."""

    observation_space = gym.spaces.Discrete(7)
    action_space = gym.spaces.Discrete(1)

    def __init__(self):
        self.P = {s: {0: [(0.5, s - 1, 0.0, s - 1 == 0), (0.5, s + 1, float(s + 1 == 6), s + 1 == 6)]}
                  for s in range(1, 6)}  # fmt: skip
        self.P[0] = {0: [(1.0, 0, 0.0, True)]}
        self.P[6] = {0: [(1.0, 6, 0.0, True)]}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.s = 3
        return self.s, {}

    def step(self, action):
        self.s += 1 if self.np_random.random() < 0.5 else -1
        terminated = self.s in (0, 6)
        return self.s, float(self.s == 6), terminated, False, {}


class StepCounter(gym.Wrapper):
    def __init__(self, env):
        super().__init__(env)
        self.steps = self.resets = 0

    def reset(self, **kwargs):
        self.resets += 1
        return self.env.reset(**kwargs)

    def step(self, action):
        self.steps += 1
        return self.env.step(action)


def rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def greedy_path(env: gym.Env, Q: np.ndarray, max_steps: int = 100) -> list[int]:
    state, _ = env.reset(seed=0)
    path = [int(state)]
    for _ in range(max_steps):
        state, _, terminated, truncated, _ = env.step(int(np.argmax(Q[state])))
        path.append(int(state))
        if terminated or truncated:
            break
    return path


def success_rate(env: gym.Env, pi: np.ndarray, n_episodes: int, seed: int) -> float:
    """Fraction of greedy episodes that reach the goal (reward > 0). Same seed -> same slips for both
    policies compared (common random numbers), which makes the comparison sharper."""
    env.reset(seed=seed)
    wins = 0
    for _ in range(n_episodes):
        state, _ = env.reset()
        while True:
            state, reward, terminated, truncated, _ = env.step(int(pi[state]))
            if terminated or truncated:
                break
        wins += reward > 0
    return wins / n_episodes


# ----------------------------------------------------------------------------------------------------------
# Prediction converges to the DP value of the policy
# ----------------------------------------------------------------------------------------------------------

PREDICTORS = {
    "mc-first-visit": lambda env, pi, n, gamma, seed: mc_prediction(env, pi, n, gamma, first_visit=True, seed=seed),
    "mc-every-visit": lambda env, pi, n, gamma, seed: mc_prediction(env, pi, n, gamma, first_visit=False, seed=seed),
    "td0": lambda env, pi, n, gamma, seed: td0_prediction(env, pi, n, alpha=0.05, alpha_end=0.005, gamma=gamma,
                                                          seed=seed),
}  # fmt: skip


@pytest.mark.parametrize("method", PREDICTORS)
def test_prediction_on_the_random_walk_converges_to_the_true_values(method):
    env = RandomWalk()
    pi = np.zeros(7, dtype=np.int64)
    true_values = np.arange(1, 6) / 6.0
    np.testing.assert_allclose(policy_evaluation(MDP.from_env(env), pi, gamma=1.0, tol=1e-12)[1:6], true_values)
    V = PREDICTORS[method](env, pi, 3_000, 1.0, 0)
    assert rms(V[1:6], true_values) < 0.03


@pytest.mark.parametrize("method", PREDICTORS)
@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "mpenv/FrozenLake4x4-v0"])
def test_prediction_of_the_uniform_policy_on_frozen_lake_matches_dp(env_id, method):
    env = gym.make(env_id)
    uniform = np.full((16, 4), 0.25)
    V_dp = policy_evaluation(MDP.from_env(env), uniform, gamma=1.0, tol=1e-12)  # V(0) = 0.0139, V(14) = 0.44
    V = PREDICTORS[method](env, uniform, 10_000, 1.0, 0)
    assert rms(V, V_dp) < 0.03


# ----------------------------------------------------------------------------------------------------------
# Control
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["CliffWalking-v1", "mpenv/CliffWalking-v0"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cliff_walking_sarsa_walks_safe_q_learning_walks_the_edge(env_id, seed):
    """Sutton & Barto, Example 6.6: gamma=1, epsilon=0.1, alpha=0.5, 500 episodes. The grid is 4 x 12,
    start (3, 0), goal (3, 11), the cliff between them on row 3; row 2 is the cliff edge.

    alpha decays linearly to 0.1 so that the greedy policy read off the final Q is not blurred by the last
    noisy updates: with a constant 0.5, SARSA's greedy policy has a loop near the goal in ~1 of 5 seeds.
    """
    env = gym.make(env_id)
    hyper = {"n_episodes": 500, "alpha": 0.5, "alpha_end": 0.1, "gamma": 1.0, "epsilon": 0.1, "seed": seed}

    edge_path = greedy_path(env, q_learning(env, **hyper))
    assert edge_path == [36, 24, *range(25, 36), 47], "Q-learning: up, 11 steps along the edge, down"

    safe_path = greedy_path(env, sarsa(env, **hyper))
    rows, cols = np.divmod(safe_path, 12)
    assert safe_path[-1] == 47 and len(safe_path) - 1 > 13, safe_path
    assert np.sum((rows == 2) & (cols >= 1) & (cols <= 10)) <= 1, f"SARSA walked along the edge: {safe_path}"

    expected_path = greedy_path(env, expected_sarsa(env, **hyper))
    assert expected_path[-1] == 47 and len(expected_path) - 1 <= 17, expected_path


def test_cliff_walking_online_return_sarsa_beats_q_learning():
    """Figure 6.4: with epsilon = 0.1 kept on, SARSA's episodes (safe path) earn more than Q-learning's
    (the edge path, where exploration sometimes falls off the cliff)."""
    env = gym.make("CliffWalking-v1")
    returns: dict[str, list[float]] = {"sarsa": [], "q_learning": []}
    for name, learn in (("sarsa", sarsa), ("q_learning", q_learning)):
        learn(env, n_episodes=500, alpha=0.5, gamma=1.0, epsilon=0.1, seed=0,
              log=lambda tag, value, step, name=name: returns[name].append(value)
              if tag == "charts/episodic_return" else None)  # fmt: skip
    late_sarsa, late_q = np.mean(returns["sarsa"][-200:]), np.mean(returns["q_learning"][-200:])
    assert late_sarsa > late_q + 10, (late_sarsa, late_q)


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "mpenv/FrozenLake4x4-v0"])
def test_q_learning_on_slippery_frozen_lake_reaches_the_dp_optimal_success_rate(env_id):
    env = gym.make(env_id)  # slippery, 100-step time limit
    _, pi_star = value_iteration(MDP.from_env(env), gamma=0.99, tol=1e-10)
    Q = q_learning(env, n_episodes=10_000, alpha=0.1, alpha_end=0.01, gamma=0.99, epsilon=1.0, epsilon_end=0.05,
                   exploration_fraction=0.5, seed=0)  # fmt: skip
    optimal = success_rate(env, pi_star, 2_000, seed=123)
    learned = success_rate(env, Q.argmax(axis=1), 2_000, seed=123)
    assert optimal > 0.7
    assert learned >= optimal - 0.05, (learned, optimal)


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "mpenv/GridWorld-v0"])
def test_mc_control_finds_the_shortest_path_on_a_deterministic_lake(env_id):
    """Deterministic 4 x 4 FrozenLake: the shortest safe path takes 6 steps (gamma < 1 prefers it)."""
    env = gym.make(env_id, is_slippery=False) if env_id == "FrozenLake-v1" else gym.make(env_id)
    _, pi_star = value_iteration(MDP.from_env(env), gamma=0.99)
    assert len(greedy_path(env, np.eye(4)[pi_star])) - 1 == 6
    Q = mc_control(env, n_episodes=2_000, gamma=0.99, epsilon=1.0, epsilon_end=0.05, seed=0)
    path = greedy_path(env, Q)
    assert path[-1] == 15 and len(path) - 1 == 6, path


def test_same_seed_same_result_different_seed_different_result():
    env = gym.make("FrozenLake-v1")
    first = q_learning(env, n_episodes=200, seed=7)
    np.testing.assert_array_equal(q_learning(env, n_episodes=200, seed=7), first)
    assert not np.array_equal(q_learning(env, n_episodes=200, seed=8), first)


# ----------------------------------------------------------------------------------------------------------
# Inputs are checked before any work
# ----------------------------------------------------------------------------------------------------------

UNIFORM = np.full((16, 4), 0.25)
SAMPLE_BASED = {
    "mc_prediction": lambda env, **kw: mc_prediction(env, UNIFORM, **kw),
    "mc_control": mc_control,
    "td0_prediction": lambda env, **kw: td0_prediction(env, UNIFORM, **kw),
    "sarsa": sarsa,
    "expected_sarsa": expected_sarsa,
    "q_learning": q_learning,
}


@pytest.mark.parametrize("name", SAMPLE_BASED)
def test_box_observation_space_is_rejected_with_a_hint(name):
    env = StepCounter(gym.make("mpenv/GridWorld-v0", obs_mode="coords"))
    with pytest.raises(ValueError, match=r"Discrete observation space.*Box.*obs_mode='discrete'"):
        SAMPLE_BASED[name](env)
    assert env.resets == 0


BAD_HYPERPARAMETERS = {
    "mc_prediction": [{"gamma": 1.5}, {"gamma": -0.1}, {"n_episodes": 0}, {"total_steps": 0}],
    "mc_control": [{"gamma": 2.0}, {"epsilon": 1.5}, {"epsilon": -0.1}, {"epsilon_end": 2.0}, {"n_episodes": 0},
                   {"epsilon_end": 0.0, "exploration_fraction": 0.0}, {"exploration_fraction": 1.5}],
    "td0_prediction": [{"alpha": 0.0}, {"alpha": -0.5}, {"alpha_end": 0.0}, {"gamma": 1.01}, {"n_episodes": -3}],
    "sarsa": [{"alpha": 0.0}, {"epsilon": 1.5}, {"gamma": -1.0}, {"n_episodes": 0}],
    "expected_sarsa": [{"alpha": -0.1}, {"epsilon": -0.5}, {"gamma": 1.5}, {"n_episodes": 2.5}],
    "q_learning": [{"alpha": 0.0}, {"alpha": 1.5}, {"epsilon": 1.01}, {"gamma": 1.1}, {"n_episodes": 0}],
}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "kwargs"), [(name, kw) for name, cases in BAD_HYPERPARAMETERS.items() for kw in cases], ids=str
)
def test_bad_hyperparameters_raise_before_any_work(name, kwargs):
    env = StepCounter(gym.make("FrozenLake-v1"))
    with pytest.raises(ValueError):
        SAMPLE_BASED[name](env, **kwargs)
    assert env.resets == 0


@pytest.mark.parametrize("bad_policy", [np.zeros(16), np.full(16, 4), np.zeros(15, dtype=int), np.ones((16, 4))])
def test_bad_policy_arrays_raise(bad_policy):
    env = gym.make("FrozenLake-v1")
    for predict in (mc_prediction, td0_prediction):
        with pytest.raises(ValueError, match="policy"):
            predict(env, bad_policy)


# ----------------------------------------------------------------------------------------------------------
# Hooks of the training CLI: log, total_steps, configs
# ----------------------------------------------------------------------------------------------------------

EXPECTED_TAGS = {
    "mc_prediction": {"charts/episodic_return", "charts/episodic_length"},
    "mc_control": {"charts/episodic_return", "charts/episodic_length", "charts/epsilon"},
    "td0_prediction": {"charts/episodic_return", "charts/episodic_length", "losses/td_error"},
    "sarsa": {"charts/episodic_return", "charts/episodic_length", "charts/epsilon", "losses/td_error"},
    "expected_sarsa": {"charts/episodic_return", "charts/episodic_length", "charts/epsilon", "losses/td_error"},
    "q_learning": {"charts/episodic_return", "charts/episodic_length", "charts/epsilon", "losses/td_error"},
}


@pytest.mark.parametrize("name", SAMPLE_BASED)
def test_log_is_called_at_each_episode_end_with_the_documented_tags(name):
    env = StepCounter(gym.make("FrozenLake-v1"))
    records: list[tuple[str, float, int]] = []
    SAMPLE_BASED[name](env, n_episodes=30, log=lambda tag, value, step: records.append((tag, value, step)))
    assert {tag for tag, _, _ in records} == EXPECTED_TAGS[name]
    for tag in EXPECTED_TAGS[name]:
        assert sum(t == tag for t, _, _ in records) == 30
    assert all(isinstance(v, float) and np.isfinite(v) for _, v, _ in records)
    steps = [step for _, _, step in records]
    assert steps == sorted(steps) and steps[-1] == env.steps
    lengths = [v for t, v, _ in records if t == "charts/episodic_length"]
    assert sum(lengths) == env.steps


@pytest.mark.parametrize("name", SAMPLE_BASED)
def test_total_steps_stops_the_run(name):
    env = StepCounter(gym.make("FrozenLake-v1"))
    records: list[tuple[str, float, int]] = []
    SAMPLE_BASED[name](env, n_episodes=10_000, total_steps=137, log=lambda *r: records.append(r))
    assert env.steps == 137
    # The episode cut by the budget is not logged as finished.
    assert sum(v for t, v, _ in records if t == "charts/episodic_length") < 137


def test_epsilon_decays_linearly_over_the_exploration_fraction():
    env = gym.make("FrozenLake-v1")
    eps: list[float] = []
    q_learning(env, n_episodes=100, epsilon=1.0, epsilon_end=0.1, exploration_fraction=0.5,
               log=lambda tag, value, step: eps.append(value) if tag == "charts/epsilon" else None)  # fmt: skip
    assert eps[0] == 1.0 and eps[25] == pytest.approx(0.55) and eps[50:] == [pytest.approx(0.1)] * 50


CONFIGS = [
    (dp.policy_evaluation, dp.PolicyEvaluationConfig),
    (dp.value_iteration, dp.ValueIterationConfig),
    (dp.policy_iteration, dp.PolicyIterationConfig),
    (mc.mc_prediction, mc.MCPredictionConfig),
    (mc.mc_control, mc.MCControlConfig),
    (td.td0_prediction, td.TD0Config),
    (td.sarsa, td.SarsaConfig),
    (td.expected_sarsa, td.ExpectedSarsaConfig),
    (td.q_learning, td.QLearningConfig),
]
NOT_CONFIG = {"env", "mdp", "policy", "pi", "log", "total_steps", "initial_policy"}


@pytest.mark.parametrize(("function", "config"), CONFIGS, ids=lambda x: x.__name__)
def test_config_fields_are_the_keyword_parameters_with_the_same_defaults(function, config):
    parameters = {name: p.default for name, p in inspect.signature(function).parameters.items()
                  if name not in NOT_CONFIG}  # fmt: skip
    fields = {f.name: f.default for f in dataclasses.fields(config)}
    assert fields == parameters
    assert all(f.metadata.get("help") for f in dataclasses.fields(config))


@pytest.mark.parametrize(("function", "config"), CONFIGS[3:], ids=lambda x: x.__name__)
def test_the_cli_call_pattern_works(function, config):
    env = gym.make("FrozenLake-v1")
    cfg = dataclasses.replace(config(), n_episodes=5)
    args = (env, UNIFORM) if function in (mc.mc_prediction, td.td0_prediction) else (env,)
    out = function(*args, **dataclasses.asdict(cfg), total_steps=1_000, log=lambda *r: None)
    assert out.dtype == np.float64 and out.shape[0] == 16
