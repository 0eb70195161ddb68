"""Dynamic programming (agents.dp) against an exact dense linear solve built independently from ``P``."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import mpenv  # noqa: F401  (registers the mpenv/ ids)
from agents.dp import (
    MDP,
    ConvergenceError,
    policy_evaluation,
    policy_iteration,
    proper_policy,
    q_from_v,
    value_iteration,
)

# (env id, make kwargs, gamma): gymnasium's own toy-text envs and mpenv's gridworlds.
CASES = [
    ("FrozenLake-v1", {}, 0.99),
    ("FrozenLake-v1", {}, 0.9),
    ("CliffWalking-v1", {}, 1.0),
    ("CliffWalking-v1", {}, 0.9),
    ("mpenv/FrozenLake4x4-v0", {}, 0.99),
    ("mpenv/FrozenLake8x8-v0", {}, 0.95),
    ("mpenv/CliffWalking-v0", {}, 1.0),
    ("mpenv/WindyGridWorld-v0", {}, 1.0),
    ("mpenv/FourRooms-v0", {}, 0.99),
]
IDS = [f"{env_id}-gamma{gamma}" for env_id, _, gamma in CASES]
TIGHT = 1e-12


def make(env_id: str, **kwargs) -> gym.Env:
    return gym.make(env_id, **kwargs)


def exact_values(env: gym.Env, pi: np.ndarray, gamma: float) -> np.ndarray:
    """v_pi = (I - gamma P_pi)^-1 r_pi, dense, straight from the toy-text ``P`` (no agents.dp code).

    A transition flagged terminated contributes its reward but no continuation value.
    """
    P = env.unwrapped.P
    n = env.observation_space.n
    P_pi = np.zeros((n, n))
    r_pi = np.zeros(n)
    for s in range(n):
        for prob, s_next, reward, terminated in P[s][int(pi[s])]:
            r_pi[s] += prob * reward
            if not terminated:
                P_pi[s, s_next] += prob
    return np.linalg.solve(np.eye(n) - gamma * P_pi, r_pi)


@pytest.mark.parametrize(("env_id", "kwargs", "gamma"), CASES, ids=IDS)
def test_value_iteration_and_policy_evaluation_match_linear_solve(env_id, kwargs, gamma):
    env = make(env_id, **kwargs)
    mdp = MDP.from_env(env)
    V, pi = value_iteration(mdp, gamma=gamma, tol=TIGHT)
    assert V.dtype == np.float64 and V.shape == (mdp.n_states,)
    assert pi.dtype == np.int64 and pi.shape == (mdp.n_states,)

    V_exact = exact_values(env, pi, gamma)
    np.testing.assert_allclose(V, V_exact, rtol=0, atol=1e-8)
    np.testing.assert_allclose(policy_evaluation(mdp, pi, gamma, tol=TIGHT), V_exact, rtol=0, atol=1e-8)
    # Bellman optimality: V* = max_a q*(s, a).
    np.testing.assert_allclose(q_from_v(mdp, V, gamma).max(axis=1), V, rtol=0, atol=1e-8)


@pytest.mark.parametrize(("env_id", "kwargs", "gamma"), [*CASES, ("Taxi-v4", {}, 0.99), ("Taxi-v4", {}, 1.0)],
                         ids=[*IDS, "Taxi-v4-gamma0.99", "Taxi-v4-gamma1.0"])  # fmt: skip
def test_policy_iteration_agrees_with_value_iteration(env_id, kwargs, gamma):
    mdp = MDP.from_env(make(env_id, **kwargs))
    V_vi, pi_vi = value_iteration(mdp, gamma=gamma, tol=TIGHT)
    V_pi, pi_pi = policy_iteration(mdp, gamma=gamma, tol=TIGHT)
    np.testing.assert_allclose(V_pi, V_vi, rtol=0, atol=1e-8)

    q = q_from_v(mdp, V_vi, gamma)
    assert np.all(q[np.arange(mdp.n_states), pi_pi] >= q.max(axis=1) - 1e-8), "PI's actions must be optimal"
    top_two = np.sort(q, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 1e-6  # states with a unique optimal action
    np.testing.assert_array_equal(pi_pi[clear], pi_vi[clear])


def test_stochastic_policy_evaluation_matches_linear_solve():
    env = make("FrozenLake-v1")
    mdp = MDP.from_env(env)
    uniform = np.full((mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions)
    V = policy_evaluation(mdp, uniform, gamma=0.95, tol=TIGHT)
    # The average over actions of the four deterministic linear systems is not v_pi; build v_pi densely.
    n = mdp.n_states
    P_pi, r_pi = np.zeros((n, n)), np.zeros(n)
    for s in range(n):
        for a in range(mdp.n_actions):
            for prob, s_next, reward, terminated in env.unwrapped.P[s][a]:
                r_pi[s] += 0.25 * prob * reward
                P_pi[s, s_next] += 0.0 if terminated else 0.25 * prob
    np.testing.assert_allclose(V, np.linalg.solve(np.eye(n) - 0.95 * P_pi, r_pi), rtol=0, atol=1e-8)


@pytest.mark.parametrize("env_id", ["mpenv/FrozenLake8x8-v0", "mpenv/WindyGridWorld-v0", "mpenv/FourRooms-v0"])
def test_sparse_model_and_toy_text_P_give_the_same_mdp(env_id):
    env = make(env_id)
    from_sparse = MDP.from_env(env)
    from_P = MDP.from_transitions(env.unwrapped.P, from_sparse.n_states, from_sparse.n_actions)
    np.testing.assert_allclose(from_P.expected_reward, from_sparse.expected_reward, atol=1e-12)
    V_sparse, _ = value_iteration(from_sparse, gamma=0.9, tol=TIGHT)
    V_P, _ = value_iteration(from_P, gamma=0.9, tol=TIGHT)
    np.testing.assert_allclose(V_P, V_sparse, rtol=0, atol=1e-10)


def test_gymnasium_and_mpenv_frozen_lake_have_the_same_optimal_values():
    V_gym, _ = value_iteration(MDP.from_env(make("FrozenLake-v1")), gamma=0.99, tol=TIGHT)
    V_mp, _ = value_iteration(MDP.from_env(make("mpenv/FrozenLake4x4-v0")), gamma=0.99, tol=TIGHT)
    np.testing.assert_allclose(V_mp, V_gym, rtol=0, atol=1e-9)


def test_cliff_walking_optimal_path_is_13_steps():
    V, _ = value_iteration(MDP.from_env(make("CliffWalking-v1")), gamma=1.0)
    assert V[36] == -13.0  # start state, undiscounted: 13 steps of -1 along the cliff edge


def test_improper_policy_with_gamma_1_raises_a_clear_error():
    mdp = MDP.from_env(make("CliffWalking-v1"))
    always_up = np.zeros(mdp.n_states, dtype=np.int64)  # walks into the top wall forever: never terminates
    with pytest.raises(ConvergenceError, match="improper"):
        policy_evaluation(mdp, always_up, gamma=1.0, max_iterations=500)
    # With discounting the same policy has finite values: -1 / (1 - gamma) on the top row.
    V = policy_evaluation(mdp, always_up, gamma=0.9, tol=1e-10)
    assert V[0] == pytest.approx(-10.0)


def test_proper_policy_terminates_from_every_state():
    for env_id in ("CliffWalking-v1", "mpenv/CliffWalking-v0", "FrozenLake-v1", "Taxi-v4"):
        mdp = MDP.from_env(make(env_id))
        V = policy_evaluation(mdp, proper_policy(mdp), gamma=1.0, tol=1e-9, max_iterations=200_000)
        assert np.isfinite(V).all()


def test_policy_iteration_from_an_improper_start_with_gamma_1_raises():
    mdp = MDP.from_env(make("CliffWalking-v1"))
    with pytest.raises(ConvergenceError, match="gamma < 1"):
        policy_iteration(mdp, gamma=1.0, initial_policy=np.zeros(48, dtype=np.int64), eval_max_iterations=300)


def test_dp_logs_delta_and_policy_changes():
    mdp = MDP.from_env(make("FrozenLake-v1"))
    records: list[tuple[str, float, int]] = []
    value_iteration(mdp, gamma=0.9, tol=1e-8, log=lambda tag, value, step: records.append((tag, value, step)))
    assert {tag for tag, _, _ in records} == {"charts/delta"}
    assert [step for _, _, step in records] == list(range(1, len(records) + 1))
    assert all(np.isfinite(value) for _, value, _ in records) and records[-1][1] < 1e-8

    records.clear()
    policy_iteration(mdp, gamma=0.9, log=lambda tag, value, step: records.append((tag, value, step)))
    tags = {tag for tag, _, _ in records}
    assert {"charts/delta", "charts/policy_changes"} <= tags
    changes = [value for tag, value, _ in records if tag == "charts/policy_changes"]
    assert changes[-1] == 0 and all(np.isfinite(value) for _, value, _ in records)


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "mpenv/FrozenLake8x8-v0"])
@pytest.mark.parametrize("tol", [1e-3, 1e-6])
def test_value_iteration_default_stop_returns_values_within_tol(env_id, tol):
    """The default rule stops on the error bound gamma/(1-gamma) delta < tol, so V is within tol of v*
    (the dense solve of the optimal policy); stopping on delta < tol alone leaves errors far above tol."""
    env = make(env_id)
    mdp = MDP.from_env(env)
    _, pi_star = value_iteration(mdp, gamma=0.99, tol=TIGHT)
    V_star = exact_values(env, pi_star, 0.99)
    V, _ = value_iteration(mdp, gamma=0.99, tol=tol)
    assert np.abs(V - V_star).max() < tol
    V_delta, _ = value_iteration(mdp, gamma=0.99, tol=tol, stop="delta")
    assert np.abs(V_delta - V_star).max() > 10 * tol  # measured: 28 to 38 tol (the 3e-5 at 1e-6)
    assert np.abs(V_delta - V_star).max() <= 0.99 / 0.01 * tol  # the bound the delta rule guarantees


def test_value_iteration_stop_rules_at_the_ends_of_gamma():
    mdp = MDP.from_env(make("FrozenLake-v1"))
    records: list[int] = []
    V, _ = value_iteration(mdp, gamma=0.0, log=lambda tag, value, step: records.append(step))
    assert records == [1]  # gamma = 0: one sweep gives V = max_a r(s, a) exactly
    np.testing.assert_array_equal(V, q_from_v(mdp, np.zeros(mdp.n_states), 0.0).max(axis=1))
    cliff = MDP.from_env(make("CliffWalking-v1"))  # gamma = 1: no bound, both rules are delta < tol
    np.testing.assert_array_equal(value_iteration(cliff, gamma=1.0)[0], value_iteration(cliff, 1.0, stop="delta")[0])
    with pytest.raises(ValueError, match="stop must be one of \\['error_bound', 'delta'\\], got 'sweep'"):
        value_iteration(mdp, stop="sweep")


@pytest.mark.parametrize("kwargs", [{"gamma": 1.5}, {"gamma": -0.1}, {"tol": 0.0}, {"max_iterations": 0}], ids=str)
def test_bad_dp_hyperparameters_raise(kwargs):
    mdp = MDP.from_env(make("FrozenLake-v1"))
    with pytest.raises(ValueError):
        value_iteration(mdp, **kwargs)
    with pytest.raises(ValueError):
        policy_iteration(mdp, **kwargs)
    with pytest.raises(ValueError):
        policy_evaluation(mdp, np.zeros(mdp.n_states, dtype=np.int64), **kwargs)


def test_bad_policy_arrays_raise():
    mdp = MDP.from_env(make("FrozenLake-v1"))
    for pi in (np.zeros(5, dtype=np.int64), np.full(16, 4), np.full((16, 4), 0.3), np.zeros(16)):
        with pytest.raises(ValueError, match="policy|pi"):
            policy_evaluation(mdp, pi)


def test_mdp_from_env_errors_are_clear():
    with pytest.raises(ValueError, match="Discrete observation space.*obs_mode"):
        MDP.from_env(make("mpenv/GridWorld-v0", obs_mode="coords"))

    class NoModel(gym.Env):
        observation_space = gym.spaces.Discrete(3)
        action_space = gym.spaces.Discrete(2)

    with pytest.raises(ValueError, match="neither sparse_model"):
        MDP.from_env(NoModel())
    with pytest.raises(ValueError, match="every state and action"):
        MDP.from_transitions({0: {0: [(1.0, 0, 0.0, True)]}}, n_states=2, n_actions=1)


def test_mdp_validates_its_arrays():
    shape = (2, 1, 1)
    ok = {"next_state": np.zeros(shape, int), "prob": np.ones(shape), "reward": np.zeros(shape),
          "done": np.zeros(shape, bool)}  # fmt: skip
    MDP(**ok)
    with pytest.raises(ValueError, match="sum to 1"):
        MDP(**{**ok, "prob": np.full(shape, 0.5)})
    with pytest.raises(ValueError, match="outside"):
        MDP(**{**ok, "next_state": np.full(shape, 2)})
    with pytest.raises(ValueError, match="one shape"):
        MDP(**{**ok, "reward": np.zeros((2, 1, 2))})


def test_value_iteration_on_a_large_random_grid_is_fast_and_exact():
    """200 x 200 deterministic maze (40k states): V* is gamma^(distance to goal), as a BFS from the goal says."""
    from mpenv.gridworld import random_layout

    layout = random_layout(200, 200, wall_density=0.25, seed=3)
    mdp = MDP.from_env(make("mpenv/GridWorld-v0", layout=layout))
    V, pi = value_iteration(mdp, gamma=0.99, tol=1e-10, max_iterations=5_000)

    # Breadth-first search from the goal over free cells, independent of agents.dp.
    grid = np.array([list(row) for row in layout])
    distance = np.full(grid.shape, -1)
    goal = tuple(np.argwhere(grid == "G")[0])
    distance[goal], frontier, d = 0, [goal], 0
    while frontier:
        d += 1
        nxt = []
        for r, c in frontier:
            for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if 0 <= rr < 200 and 0 <= cc < 200 and grid[rr, cc] != "#" and distance[rr, cc] < 0:
                    distance[rr, cc] = d
                    nxt.append((rr, cc))
        frontier = nxt
    reachable = (distance > 0).ravel()
    # Reward 1 on entering the goal after `distance` moves: V = gamma^(distance - 1).
    np.testing.assert_allclose(V[reachable], 0.99 ** (distance.ravel()[reachable] - 1.0), rtol=0, atol=1e-9)


def test_value_iteration_benchmark_runs_on_small_grids(capsys, benchmark_script):
    """Keeps benchmarks/bench_value_iteration.py working; the timing targets are checked by `make bench`."""
    bench = benchmark_script("bench_value_iteration")
    bench.main(["--size", "60", "--baseline-size", "12", "--slip", "0.2"])
    out = capsys.readouterr().out
    assert "PASS  same V as the loop" in out and "PASS  60x60 solve" in out


def test_value_iteration_help_explains_the_stopping_rule():
    from agents.train import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "algo")
    text = " ".join(subparsers.choices["value-iteration"].format_help().split())
    assert "--stop STR stopping rule" in text and "'error_bound' stops when gamma / (1 - gamma) * delta < tol" in text
    assert "(default: error_bound)" in text
