"""Generalized distance transforms and exact tree MAP inference against brute force on tiny grids."""

import numpy as np
import pytest

from vision3d.body.pictorial_structures import (
    configuration_cost,
    distance_transform_1d,
    distance_transform_2d,
    map_inference,
    tree_order,
)


def brute_force_1d(f, w, mu):
    """``C[..., p, q] = f(q) + w (p - q - mu)^2`` and its minimum over ``q``."""
    n = f.shape[-1]
    p = np.arange(n)
    costs = f[..., None, :] + w * (p[:, None] - p[None, :] - mu) ** 2
    return costs, costs.min(-1)


def brute_force_map(unary, parents, weights, means):
    """Minimum energy and every minimizing configuration, by enumerating all (H W)^P placements at once."""
    count, height, width = unary.shape
    cells = np.indices((height * width,) * count).reshape(count, -1)  # [P, (H W)^P] cell index of every part
    xs, ys = cells % width, cells // width
    costs = unary.reshape(count, -1)[np.arange(count)[:, None], cells].sum(0)
    for i, p in enumerate(parents):
        if p >= 0:
            costs += weights[i, 0] * (xs[i] - xs[p] - means[i, 0]) ** 2
            costs += weights[i, 1] * (ys[i] - ys[p] - means[i, 1]) ** 2
    best = costs.min()
    argbest = [
        tuple(zip(xs[:, j].tolist(), ys[:, j].tolist(), strict=True)) for j in np.flatnonzero(costs <= best + 1e-9)
    ]
    return best, argbest


@pytest.mark.parametrize("w", [0.05, 0.5, 1.0, 7.0])
@pytest.mark.parametrize("mu", [0.0, 1.0, -2.5, 0.3, 25.0])
def test_gdt_1d_matches_brute_force(w, mu):
    rng = np.random.default_rng(0)
    f = rng.normal(scale=3.0, size=(20, 17))
    f[rng.random(f.shape) < 0.3] = np.inf  # forbidden positions
    f[0, :] = np.inf  # a line with no allowed position at all
    f[1, :] = np.inf
    f[1, 5] = 0.0  # a single allowed position
    values, argmin = distance_transform_1d(f, w, mu)
    costs, expected = brute_force_1d(f, w, mu)
    assert values.shape == argmin.shape == f.shape and argmin.dtype == np.int64
    assert np.all(np.isinf(values[0]))
    np.testing.assert_allclose(values[1:], expected[1:], rtol=1e-12, atol=1e-9)
    # argmins up to ties: the chosen q attains the minimum.
    np.testing.assert_allclose(np.take_along_axis(costs, argmin[..., None], -1)[..., 0][1:], expected[1:], atol=1e-9)
    assert np.all(argmin[1] == 5)


def test_gdt_1d_single_line_and_length_one():
    values, argmin = distance_transform_1d([3.0, 0.0, 5.0, 1.0], 1.0)
    np.testing.assert_allclose(values, [1.0, 0.0, 1.0, 1.0])
    assert argmin[1] == 1 and argmin[3] == 3
    values, argmin = distance_transform_1d([2.0], 1.0, 0.5)
    np.testing.assert_allclose(values, [2.25])
    assert argmin.tolist() == [0]


@pytest.mark.parametrize(
    ("w_x", "w_y", "mu_x", "mu_y"), [(1.0, 1.0, 0.0, 0.0), (0.3, 2.0, 1.5, -2.0), (5.0, 0.1, -4, 3)]
)
def test_gdt_2d_matches_brute_force(w_x, w_y, mu_x, mu_y):
    rng = np.random.default_rng(1)
    height, width = 9, 12
    f = rng.normal(scale=4.0, size=(height, width))
    f[rng.random(f.shape) < 0.2] = np.inf
    values, arg_x, arg_y = distance_transform_2d(f, w_x, w_y, mu_x, mu_y)
    ys, xs = np.mgrid[:height, :width]
    # costs[y, x, y', x'] = f(x', y') + w_x (x - x' - mu_x)^2 + w_y (y - y' - mu_y)^2
    costs = (
        f[None, None]
        + w_x * (xs[:, :, None, None] - xs[None, None] - mu_x) ** 2
        + w_y * (ys[:, :, None, None] - ys[None, None] - mu_y) ** 2
    )
    expected = costs.reshape(height, width, -1).min(-1)
    np.testing.assert_allclose(values, expected, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(costs[ys, xs, arg_y, arg_x], expected, rtol=1e-12, atol=1e-9)


def random_model(rng, parents, height, width):
    count = len(parents)
    unary = rng.normal(scale=2.0, size=(count, height, width))
    weights = rng.uniform(0.2, 2.0, size=(count, 2))
    means = rng.uniform(-2.0, 2.0, size=(count, 2))
    return unary, weights, means


@pytest.mark.parametrize(
    ("parents", "height", "width", "seed"),
    [
        ([-1, 0, 1], 4, 5, 0),  # a chain of 3 parts on 5 x 4: 20^3 configurations
        ([-1, 0, 1], 4, 5, 1),
        ([1, -1, 1], 4, 5, 2),  # root in the middle, parents not in topological order
        ([-1, 0, 0, 1], 4, 4, 3),  # branching 4-part tree on 4 x 4: 16^4 configurations
    ],
)
def test_map_inference_matches_brute_force(parents, height, width, seed):
    rng = np.random.default_rng(seed)
    unary, weights, means = random_model(rng, parents, height, width)
    locations, total = map_inference(unary, parents, weights, means)
    best, argbest = brute_force_map(unary, parents, weights, means)
    assert total == pytest.approx(best, abs=1e-9)
    assert configuration_cost(unary, parents, weights, means, locations) == pytest.approx(best, abs=1e-9)
    assert tuple(map(tuple, locations.tolist())) in argbest
    assert len(argbest) == 1  # continuous random costs: the minimizer is unique, so the locations must match


def test_map_inference_with_forbidden_locations():
    rng = np.random.default_rng(4)
    parents = [-1, 0, 0]
    unary, weights, means = random_model(rng, parents, 4, 4)
    unary[rng.random(unary.shape) < 0.4] = np.inf
    locations, total = map_inference(unary, parents, weights, means)
    best, argbest = brute_force_map(unary, parents, weights, means)
    assert total == pytest.approx(best, abs=1e-9)
    assert tuple(map(tuple, locations.tolist())) in argbest


def test_map_inference_recovers_planted_configuration():
    rng = np.random.default_rng(5)
    parents = [-1, 0, 1, 1, 0, 4]
    height, width = 30, 40
    truth = np.array([[20, 15], [20, 8], [14, 10], [26, 10], [20, 22], [21, 27]])
    means = np.zeros((6, 2))
    means[1:] = truth[1:] - truth[parents[1:]]
    means[1:] += rng.uniform(-1.5, 1.5, size=(5, 2))  # imperfect spring rest offsets
    weights = rng.uniform(0.05, 0.3, size=(6, 2))
    unary = rng.uniform(0.0, 1.0, size=(6, height, width))  # clutter
    unary[np.arange(6), truth[:, 1], truth[:, 0]] -= 10.0  # strong detections at the planted locations
    locations, total = map_inference(unary, parents, weights, means)
    np.testing.assert_array_equal(locations, truth)
    assert total == pytest.approx(configuration_cost(unary, parents, weights, means, truth))


def test_single_part_is_the_argmin():
    unary = np.full((1, 3, 4), 2.0)
    unary[0, 2, 1] = -1.0
    locations, total = map_inference(unary, [-1], np.ones((1, 2)), np.zeros((1, 2)))
    assert locations.tolist() == [[1, 2]] and total == -1.0


def test_tree_order():
    assert tree_order([-1, 0, 0, 1]) == [0, 1, 2, 3]
    assert tree_order([2, 2, -1]) == [2, 0, 1]


@pytest.mark.parametrize(
    ("parents", "message"),
    [
        ([], "empty"),
        ([0, 0], "exactly one root"),
        ([-1, -1], "exactly one root"),
        ([-1, 5], "outside"),
        ([-1, 2, 1], "cycle"),
        ([-1, 1], "own parent"),
    ],
)
def test_non_tree_parents_raise(parents, message):
    with pytest.raises(ValueError, match=message):
        tree_order(parents)
    count = max(len(parents), 1)
    with pytest.raises(ValueError, match=message):
        map_inference(np.zeros((count, 3, 3)), parents, np.ones((count, 2)), np.zeros((count, 2)))


def test_bad_model_inputs_raise():
    parents = [-1, 0]
    unary, weights, means = np.zeros((2, 3, 4)), np.ones((2, 2)), np.zeros((2, 2))
    with pytest.raises(ValueError, match="unary_costs must have shape"):
        map_inference(np.zeros((3, 3, 4)), parents, weights, means)
    with pytest.raises(ValueError, match="unary_costs must have shape"):
        map_inference(np.zeros((3, 4)), parents, weights, means)
    with pytest.raises(ValueError, match="spring_weights must have shape"):
        map_inference(unary, parents, np.ones(2), means)
    with pytest.raises(ValueError, match="spring_means must have shape"):
        map_inference(unary, parents, weights, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="positive"):
        map_inference(unary, parents, np.array([[1.0, 1.0], [0.0, 1.0]]), means)
    with pytest.raises(ValueError, match="positive"):
        map_inference(unary, parents, np.array([[1.0, 1.0], [1.0, -2.0]]), means)
    with pytest.raises(ValueError, match="NaN"):
        map_inference(np.full((2, 3, 4), np.nan), parents, weights, means)
    with pytest.raises(ValueError, match="no feasible configuration"):
        map_inference(np.full((2, 3, 4), np.inf), parents, weights, means)
    # The root has no spring: its row may hold anything.
    map_inference(unary, parents, np.array([[np.nan, 0.0], [1.0, 1.0]]), means)


def test_bad_transform_inputs_raise():
    with pytest.raises(ValueError, match="positive"):
        distance_transform_1d(np.zeros(4), 0.0)
    with pytest.raises(ValueError, match="positive"):
        distance_transform_2d(np.zeros((3, 3)), 1.0, -1.0)
    with pytest.raises(ValueError, match="-inf"):
        distance_transform_1d(np.array([0.0, -np.inf]), 1.0)
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        distance_transform_2d(np.zeros(3), 1.0, 1.0)
    with pytest.raises(ValueError, match="at least one entry"):
        distance_transform_1d(np.zeros(0), 1.0)
