"""``mpenv.nn.activations``, ``mpenv.nn.mlp`` and ``mpenv.nn.perceptron`` against torch: every activation, loss and
MLP gradient equals torch's function and autograd's gradient in float64; the perceptron converges within Novikoff's
bound on separable data and not on XOR, which one hidden layer solves; softmax regression fitted by maximum
likelihood reaches the Bayes accuracy of Gaussian classes with a shared covariance."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mpenv.nn.activations import (
    ACTIVATIONS,
    activation,
    activation_derivative,
    bce_with_logits,
    bce_with_logits_backward,
    cross_entropy_with_logits,
    cross_entropy_with_logits_backward,
    softmax,
)
from mpenv.nn.mlp import MLP, fit
from mpenv.nn.perceptron import PerceptronResult, train_perceptron

DT = torch.float64

# Each activation's torch counterpart, with the keyword arguments tested (defaults first).
TORCH_ACTIVATIONS = {
    ("sigmoid", ()): torch.sigmoid,
    ("tanh", ()): torch.tanh,
    ("relu", ()): torch.relu,
    ("leaky_relu", ()): F.leaky_relu,
    ("leaky_relu", (("negative_slope", 0.2),)): lambda z: F.leaky_relu(z, negative_slope=0.2),
    ("gelu", ()): F.gelu,
    ("softplus", ()): F.softplus,
    ("softplus", (("beta", 2.5),)): lambda z: F.softplus(z, beta=2.5),
    ("identity", ()): lambda z: z,
}


def grid() -> torch.Tensor:
    """A fine grid over [-8, 8] with exactly 0, the points around softplus's switch, and large |z|."""
    extra = [0.0, -1e-300, 1e-300, 7.99, 8.01, 19.99, 20.01, -30.0, 30.0, -50.0, 50.0, -800.0, 800.0, -1000.0, 1000.0]
    return torch.cat([torch.linspace(-8, 8, 321, dtype=DT), torch.tensor(extra, dtype=DT)])


# ----------------------------------------------------------------------------------------------------------------
# Activations


def test_the_activations_are_the_courses_seven():
    assert set(ACTIVATIONS) == {"sigmoid", "tanh", "relu", "leaky_relu", "gelu", "softplus", "identity"}
    assert set(ACTIVATIONS) == {name for name, _ in TORCH_ACTIVATIONS}


@pytest.mark.parametrize(
    ("name", "kw"),
    list(TORCH_ACTIVATIONS),
    ids=[name + "".join(f"-{k}={v}" for k, v in kw) for name, kw in TORCH_ACTIVATIONS],
)
def test_activation_and_derivative_equal_torch_and_autograd(name, kw):
    z = grid().requires_grad_()
    expected = TORCH_ACTIVATIONS[name, kw](z)
    (expected_grad,) = torch.autograd.grad(expected.sum(), z)
    z = z.detach()
    value, derivative = activation(name, z, **dict(kw)), activation_derivative(name, z, **dict(kw))
    assert torch.isfinite(value).all() and torch.isfinite(derivative).all()
    torch.testing.assert_close(value, expected.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(derivative, expected_grad, rtol=0, atol=1e-12)


def test_derivatives_at_the_kink_are_autograds():
    zero = torch.zeros(1, dtype=DT)
    assert float(activation_derivative("relu", zero)) == 0.0
    assert float(activation_derivative("leaky_relu", zero)) == 0.01
    assert float(activation_derivative("gelu", zero)) == 0.5  # Phi(0) + 0 phi(0)
    assert float(activation_derivative("sigmoid", zero)) == 0.25


def test_an_unknown_activation_is_a_value_error_listing_the_names():
    for call in (activation, activation_derivative):
        with pytest.raises(ValueError, match="swish") as info:
            call("swish", torch.zeros(3))
        assert all(name in str(info.value) for name in ACTIVATIONS)
    with pytest.raises(ValueError, match="leaky_relu"):
        MLP([2, 3, 1], activation="swish")


# ----------------------------------------------------------------------------------------------------------------
# Losses


def random_logits(n: int, k: int, extreme: bool, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.randn(n, k, generator=g, dtype=DT)
    if extreme:  # +-1000 where the naive log(softmax) is log(0)
        logits[::2, 0], logits[1::2, -1], logits[::3, 1] = 1000.0, -1000.0, -1000.0
    return logits


@pytest.mark.parametrize("extreme", [False, True], ids=["moderate", "extreme"])
def test_cross_entropy_and_its_gradient_equal_torch(extreme):
    logits = random_logits(12, 5, extreme).requires_grad_()
    targets = torch.randint(0, 5, (12,), generator=torch.Generator().manual_seed(1))
    targets[:4] = torch.tensor([0, 4, 1, 1])  # include the +-1000 classes
    expected = F.cross_entropy(logits, targets)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    logits = logits.detach()
    loss, grad = cross_entropy_with_logits(logits, targets), cross_entropy_with_logits_backward(logits, targets)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    torch.testing.assert_close(loss, expected.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("extreme", [False, True], ids=["moderate", "extreme"])
def test_binary_cross_entropy_and_its_gradient_equal_torch(extreme):
    logits = random_logits(10, 3, extreme).requires_grad_()
    targets = torch.rand(10, 3, generator=torch.Generator().manual_seed(2), dtype=DT)
    targets[:, 0] = (targets[:, 0] > 0.5).to(DT)  # hard labels as well as soft ones
    expected = F.binary_cross_entropy_with_logits(logits, targets)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    logits = logits.detach()
    loss, grad = bce_with_logits(logits, targets), bce_with_logits_backward(logits, targets)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    torch.testing.assert_close(loss, expected.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-12)


def test_losses_reject_mismatched_targets_naming_both_shapes():
    with pytest.raises(ValueError, match=r"\[4, 3\].*\[5\]"):
        cross_entropy_with_logits(torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[4, 1\].*\[4\]"):
        bce_with_logits(torch.zeros(4, 1), torch.zeros(4))


# ----------------------------------------------------------------------------------------------------------------
# MLP against nn.Sequential and autograd

ARCHITECTURES = [
    ([3, 5, 2], "relu", "identity"),
    ([4, 8, 8, 3], "tanh", "identity"),
    ([2, 6, 1], "sigmoid", "sigmoid"),
    ([5, 7, 4, 6, 2], "gelu", "identity"),
    ([3, 9, 4], "leaky_relu", "softplus"),
    ([6, 5, 5, 1], "softplus", "tanh"),
    ([4, 3], "identity", "identity"),  # no hidden layer: softmax or linear regression
]


@pytest.mark.parametrize(("sizes", "act", "out"), ARCHITECTURES, ids=lambda v: str(v))
def test_mlp_forward_and_every_gradient_equal_torch_autograd(sizes, act, out):
    g = torch.Generator().manual_seed(len(sizes) * 10 + sizes[1])
    mlp = MLP(sizes, activation=act, output=out, generator=g)
    for b in mlp.biases:  # nonzero biases, so their gradients and the activations' offsets are exercised
        b.copy_(0.3 * torch.randn(b.shape, generator=g, dtype=DT))
    seq = mlp.to_torch()
    x = torch.randn(7, sizes[0], generator=g, dtype=DT, requires_grad=True)
    upstream = torch.randn(7, sizes[-1], generator=g, dtype=DT)  # dL/doutput of L = sum(output * upstream)

    expected = seq(x)
    torch_grads = torch.autograd.grad((expected * upstream).sum(), [x, *seq.parameters()])
    output = mlp.forward(x.detach())
    grads = mlp.backward(upstream)

    torch.testing.assert_close(output, expected.detach(), rtol=0, atol=1e-10)
    assert set(grads) == {*mlp.parameter_names(), "input"}
    torch.testing.assert_close(grads["input"], torch_grads[0], rtol=0, atol=1e-10)
    for name, torch_grad in zip(mlp.parameter_names(), torch_grads[1:], strict=True):
        torch.testing.assert_close(grads[name], torch_grad, rtol=0, atol=1e-10, msg=name)
    for param, grad in mlp.parameters_and_grads():  # backward also filled .grad, for torch optimizers
        assert param.grad is grad


def test_mlp_load_from_torch_round_trips_and_checks_shapes():
    seq = MLP([3, 4, 2], activation="tanh", generator=torch.Generator().manual_seed(0)).to_torch()
    mlp = MLP([3, 4, 2], activation="tanh", generator=torch.Generator().manual_seed(1)).load_from_torch(seq)
    x = torch.randn(5, 3, dtype=DT)
    torch.testing.assert_close(mlp(x), seq(x).detach(), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"\[\[4, 3\], \[2, 4\]\].*\[\[4, 3\], \[3, 4\]\]"):
        mlp.load_from_torch(MLP([3, 4, 3]).to_torch())


def test_mlp_initialization_is_he_for_relu_and_glorot_for_tanh():
    g = torch.Generator().manual_seed(0)
    he, glorot = MLP([400, 300, 1], "relu", generator=g), MLP([400, 300, 1], "tanh", generator=g)
    assert abs(float(he.weights[0].std()) / math.sqrt(2 / 400) - 1) < 0.02
    assert abs(float(glorot.weights[0].std()) / math.sqrt(2 / 700) - 1) < 0.02
    assert all(float(b.abs().max()) == 0.0 for b in he.biases)


def test_mlp_rejects_bad_shapes_naming_both():
    mlp = MLP([3, 4, 2])
    with pytest.raises(ValueError, match=r"\[N, 3\].*\[5, 4\]"):
        mlp.forward(torch.zeros(5, 4, dtype=DT))
    with pytest.raises(ValueError, match=r"\[N, 3\].*\[3\]"):
        mlp.forward(torch.zeros(3, dtype=DT))
    with pytest.raises(RuntimeError, match="forward"):
        mlp.backward(torch.zeros(5, 2, dtype=DT))
    mlp.forward(torch.zeros(5, 3, dtype=DT))
    with pytest.raises(ValueError, match=r"\[5, 2\].*\[5, 3\]"):
        mlp.backward(torch.zeros(5, 3, dtype=DT))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_fit_steps_the_weights_as_torch_optim_steps_the_equivalent_sequential(optimizer):
    """Five full-batch steps on MSE by the hand-written backward move the weights exactly as autograd and the same
    torch.optim optimizer move the equivalent nn.Sequential."""
    g = torch.Generator().manual_seed(3)
    mlp = MLP([2, 5, 1], activation="tanh", generator=g)
    seq = mlp.to_torch()
    x, y = torch.randn(16, 2, generator=g, dtype=DT), torch.randn(16, 1, generator=g, dtype=DT)
    history = fit(mlp, x, y, loss="mse", steps=5, lr=0.1, optimizer=optimizer)
    opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(seq.parameters(), lr=0.1)
    for step in range(5):
        loss = F.mse_loss(seq(x), y)
        assert abs(loss.item() - history[step]) < 1e-12
        opt.zero_grad()
        loss.backward()
        opt.step()
    for ours, theirs in zip(mlp.parameters(), seq.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs.detach(), rtol=0, atol=1e-12)


def test_fit_on_minibatches_is_reproducible_from_its_generator():
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0), dtype=DT)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=DT)
    runs = []
    for _ in range(2):
        mlp = MLP([3, 1], activation="identity", generator=torch.Generator().manual_seed(0))
        runs.append(fit(mlp, x, y, steps=100, lr=0.05, batch_size=8, generator=torch.Generator().manual_seed(1)))
    assert runs[0] == runs[1]
    assert runs[0][-1] < 1e-3 * runs[0][0]
    with pytest.raises(ValueError, match="'identity'"):
        fit(MLP([3, 1], output="sigmoid"), x, y[:, 0], loss="bce", steps=1)


# ----------------------------------------------------------------------------------------------------------------
# The perceptron


def separable_data(n: int, gamma: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` points in [-1, 1]^2 labelled by the unit vector ``u`` of the folded space (x, 1), keeping only those at
    least ``gamma`` from its boundary: ``y_i u . (x_i, 1) >= gamma``. Returns x, y, u."""
    g = torch.Generator().manual_seed(seed)
    u = torch.tensor([1.0, -2.0, 0.3], dtype=DT)
    u = u / u.norm()
    x = 2 * torch.rand(8 * n, 2, generator=g, dtype=DT) - 1
    score = torch.cat([x, torch.ones(len(x), 1, dtype=DT)], 1) @ u
    keep = score.abs() >= gamma
    return x[keep][:n], torch.sign(score[keep][:n]), u


def test_perceptron_converges_within_novikoffs_bound_on_separable_data():
    x, y, u = separable_data(200, gamma=0.1)
    folded = torch.cat([x, torch.ones(len(x), 1, dtype=DT)], 1)
    gamma = float((y * (folded @ u)).min())  # the data's margin for u: at least 0.1 by construction
    radius = float(folded.norm(dim=1).max())
    bound = (radius / gamma) ** 2
    result = train_perceptron(x, y, generator=torch.Generator().manual_seed(0))
    assert isinstance(result, PerceptronResult)
    assert result.converged and result.epochs < 1000
    assert bool((torch.sign(x @ result.weights + result.bias) == y).all())  # every point separated
    assert 0 < result.mistakes <= bound, (result.mistakes, bound)
    # From the zero start the learning rate only scales (w, b): the same mistakes, the same predictions.
    scaled = train_perceptron(x, y, lr=0.01, generator=torch.Generator().manual_seed(0))
    assert scaled.mistakes == result.mistakes
    torch.testing.assert_close(scaled.weights, 0.01 * result.weights)


def test_perceptron_fails_on_xor():
    """No line separates XOR: the perceptron keeps making mistakes and stops only at max_epochs, unconverged."""
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=DT)
    y = torch.tensor([-1.0, 1.0, 1.0, -1.0], dtype=DT)
    result = train_perceptron(x, y, max_epochs=200, generator=torch.Generator().manual_seed(0))
    assert not result.converged
    assert result.epochs == 200 and result.mistakes >= 200
    assert not bool((torch.sign(x @ result.weights + result.bias) == y).all())


def test_perceptron_rejects_labels_that_are_not_signs():
    with pytest.raises(ValueError, match="-1 or \\+1"):
        train_perceptron(torch.zeros(3, 2), torch.tensor([0.0, 1.0, 1.0]))


def test_one_hidden_layer_solves_xor_with_the_hand_written_backward():
    """[2, 4, 1] tanh MLP, logit output, BCE, full-batch plain SGD at lr 0.5 for 2,000 steps, Glorot init from
    seed 0 (the same setting solves XOR from all of the seeds 0..49)."""
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=DT)
    y = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=DT)
    mlp = MLP([2, 4, 1], activation="tanh", generator=torch.Generator().manual_seed(0))
    history = fit(mlp, x, y, loss="bce", steps=2000, lr=0.5, optimizer="sgd")
    predictions = (mlp(x)[:, 0] > 0).to(DT)
    assert bool((predictions == y).all())
    assert history[-1] < 0.05 < history[0]  # confident on all four points


# ----------------------------------------------------------------------------------------------------------------
# Maximum likelihood: softmax regression reaches the Bayes accuracy

MEANS = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, math.sqrt(3.0)]], dtype=DT)  # an equilateral triangle, side 2


def gaussian_classes(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Equally likely classes, ``x | k ~ N(mu_k, I)``."""
    labels = torch.randint(0, len(MEANS), (n,), generator=g)
    return MEANS[labels] + torch.randn(n, 2, generator=g, dtype=DT), labels


def test_softmax_regression_fitted_by_cross_entropy_reaches_the_bayes_accuracy():
    """With a shared covariance the true posterior is a softmax of linear functions, p(k | x) = softmax_k(mu_k . x -
    |mu_k|^2 / 2), so minimizing the cross-entropy (the negative log-likelihood) of a linear model over 3,000
    samples must recover it: accuracy within 0.01 of the Bayes rule's (Monte Carlo, 50,000 samples, about 0.75)."""
    g = torch.Generator().manual_seed(0)
    x, labels = gaussian_classes(3000, g)
    x_test, labels_test = gaussian_classes(50_000, g)
    bayes_accuracy = float((torch.cdist(x_test, MEANS).argmin(1) == labels_test).to(DT).mean())  # nearest mean
    mlp = MLP([2, 3], activation="identity", generator=torch.Generator().manual_seed(0))
    history = fit(mlp, x, labels, loss="cross_entropy", steps=300, lr=1.0, optimizer="sgd")
    accuracy = float((mlp(x_test).argmax(1) == labels_test).to(DT).mean())
    assert 0.70 < bayes_accuracy < 0.80
    assert accuracy >= bayes_accuracy - 0.01, (accuracy, bayes_accuracy)
    assert history[-1] < history[0]
    true_posterior = softmax(x_test @ MEANS.T - 0.5 * (MEANS**2).sum(1))
    assert float((softmax(mlp(x_test)) - true_posterior).abs().mean()) < 0.02
