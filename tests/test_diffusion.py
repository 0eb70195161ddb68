"""Diffusion (generative.diffusion): the forward process's closed forms by Monte Carlo and by Bayes' rule, the
posterior in its two forms, the samplers driven by the closed-form optimal noise predictor of a Gaussian
mixture (which checks them independently of any training), the prediction parametrizations, bad input, and
learning the eight Gaussians (slow)."""

from __future__ import annotations

import math

import pytest
import torch

from generative import data, metrics
from generative.diffusion import DDPM, ContinuousSchedule, NoiseSchedule, ddim_sample, ddim_timesteps, ddpm_sample
from generative.fit import fit_phases

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("kind", ["linear", "cosine", "quadratic"])
def test_iterating_the_forward_step_gives_the_closed_form(kind: str) -> None:
    """``t`` steps of ``q(x_t | x_{t-1})`` from a fixed ``x_0``: the mean and variance of 200,000 chains match
    ``sqrt(alpha_bar_t) x_0`` and ``1 - alpha_bar_t`` (4 standard errors)."""
    schedule = NoiseSchedule(kind, steps=100)
    g = torch.Generator().manual_seed(0)
    x0, n = 1.5, 200_000
    x = torch.full((n,), x0, dtype=torch.float64)
    for t in range(1, 101):
        x = schedule.alphas[t].sqrt() * x + schedule.betas[t].sqrt() * torch.randn(n, generator=g, dtype=torch.float64)
        if t in (1, 10, 50, 100):
            ab = schedule.alphas_cumprod[t]
            assert abs(float(x.mean()) - float(ab.sqrt()) * x0) < 4 * math.sqrt(float(1 - ab) / n) + 1e-12
            assert float(x.var()) == pytest.approx(float(1 - ab), rel=4 * math.sqrt(2 / n))
    assert schedule.alphas_cumprod[0] == 1 and torch.all(schedule.alphas_cumprod[1:] < 1)


def test_posterior_is_bayes_rule_and_its_eps_form_matches() -> None:
    """1D: ``q(x_{t-1} | x_t, x_0)`` from the product of ``q(x_t | x_{t-1})`` (as a likelihood in ``x_{t-1}``) and
    ``q(x_{t-1} | x_0)``, by completing the square; and ``mu_q`` written with ``eps``."""
    schedule = NoiseSchedule("cosine", steps=50)
    x0, xt = torch.tensor([[0.7]], dtype=torch.float64), torch.tensor([[-0.4]], dtype=torch.float64)
    for step in (1, 2, 25, 50):
        t = torch.tensor([step])
        a, b = schedule.alphas[step], schedule.betas[step]
        ab_prev = schedule.alphas_cumprod[step - 1]
        # likelihood N(x_t; sqrt(a) y, b) in y, prior N(y; sqrt(ab_prev) x0, 1 - ab_prev): precisions add
        precision = a / b + (1 / (1 - ab_prev) if ab_prev < 1 else math.inf)
        if math.isinf(precision):  # t = 1: x_0 is known exactly
            mean, variance = x0, torch.zeros_like(x0)
        else:
            mean = (a.sqrt() / b * xt + ab_prev.sqrt() / (1 - ab_prev) * x0) / precision
            variance = torch.full_like(x0, 1 / precision)
        mu, var = schedule.posterior_mean_variance(x0, xt, t)
        assert torch.allclose(mu, mean, atol=1e-12) and torch.allclose(var, variance, atol=1e-12)
        eps = schedule.eps_from_x0(xt, t, x0)
        mu_eps = (xt - b / (1 - schedule.alphas_cumprod[step]).sqrt() * eps) / a.sqrt()
        assert torch.allclose(mu_eps, mu, atol=1e-12)
        assert torch.allclose(schedule.x0_from_eps(xt, t, eps), x0, atol=1e-12)


def test_continuous_schedule_is_variance_preserving() -> None:
    schedule = ContinuousSchedule()
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    alpha, sigma = schedule.alpha_sigma(t)
    assert torch.allclose(alpha**2 + sigma**2, torch.ones_like(t))
    assert torch.allclose((alpha**2 / sigma**2).log(), schedule.log_snr(t))
    assert bool((alpha[1:] < alpha[:-1]).all())  # less signal as t grows


# ------------------------------------------------------------------------------- samplers, independent of training

WEIGHTS, MEANS, SPREAD = torch.tensor([0.3, 0.7], dtype=torch.float64), torch.tensor([-2.0, 1.5]), 0.3


def optimal_eps(schedule: NoiseSchedule):
    """The minimizer of the simple loss for 1D data ``sum_k w_k N(m_k, s^2)``: ``eps* = -sqrt(1 - ab) score``,
    with ``q(x_t) = sum_k w_k N(sqrt(ab) m_k, ab s^2 + 1 - ab)`` in closed form."""

    def eps(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = schedule.at(schedule.alphas_cumprod, t, xt)  # [N, 1]
        means = ab.sqrt() * MEANS.to(xt)  # [N, 2]
        variance = ab * SPREAD**2 + 1 - ab
        log_r = WEIGHTS.to(xt).log() - (xt - means) ** 2 / (2 * variance)
        r = torch.softmax(log_r, dim=1)
        score = (r * -(xt - means) / variance).sum(1, keepdim=True)
        return -(1 - ab).sqrt() * score

    return eps


def mixture_report(x: torch.Tensor) -> tuple[float, float, float]:
    """Weight of the right mode, and the mean and standard deviation of the samples near it."""
    right = x[:, 0] > 0
    near = x[right, 0]
    return float(right.double().mean()), float(near.mean()), float(near.std())


@pytest.mark.parametrize("how", ["ddpm-beta", "ddpm-posterior", "ddim-50", "ddim-1000-eta1"])
def test_samplers_with_the_optimal_predictor_reproduce_the_data(how: str) -> None:
    """The samplers turn noise into the mixture when given its exact optimal noise predictor: the right mode's
    weight within 0.02 of 0.7, its mean within 0.03 of 1.5 and its spread within 0.03 of 0.3 (20,000 samples).
    (Stochastic DDIM, eta = 1, needs many steps: over 50 its spread comes out 0.255, a coarse discretization.)"""
    schedule = NoiseSchedule("linear", steps=1000)
    torch.manual_seed(0)
    x_T = torch.randn(20_000, 1, dtype=torch.float64)
    eps = optimal_eps(schedule)
    if how.startswith("ddpm"):
        x = ddpm_sample(eps, schedule, x_T, variance=how.split("-")[1])
    else:
        x = ddim_sample(eps, schedule, x_T, steps=int(how.split("-")[1]), eta=1.0 if how.endswith("eta1") else 0.0)
    weight, mean, spread = mixture_report(x)
    assert abs(weight - 0.7) < 0.02 and abs(mean - 1.5) < 0.03 and abs(spread - SPREAD) < 0.03, (weight, mean, spread)


def test_ddim_timesteps_and_trajectory() -> None:
    assert ddim_timesteps(1000, 1) == [1] and ddim_timesteps(10, 10) == list(range(10, 0, -1))
    steps = ddim_timesteps(1000, 50)
    assert len(steps) == 50 and steps[0] == 1000 and steps[-1] == 1
    schedule, trajectory = NoiseSchedule(steps=20), []
    ddim_sample(optimal_eps(schedule), schedule, torch.randn(5, 1, dtype=torch.float64), steps=5, trajectory=trajectory)
    assert len(trajectory) == 5
    with pytest.raises(ValueError, match="1 <= steps <= 1000"):
        ddim_timesteps(1000, 0)


# ------------------------------------------------------------------------------------------------ the model


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_every_prediction_converts_to_the_same_noise(prediction: str) -> None:
    """Whatever the network predicts, ``eps`` and the training target are consistent: a network that outputs
    the target for the true ``(x_0, eps)`` gives back that ``eps``."""
    torch.manual_seed(0)
    model = DDPM((3,), steps=100, prediction=prediction, hidden=(8,)).double()
    x0, noise = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    t = torch.randint(1, 101, (6,))
    xt = model.schedule.q_sample(x0, t, noise)
    model.network = lambda xt_, t_: model.target(x0, noise, t)  # an oracle network
    assert torch.allclose(model.eps(xt, t), noise, atol=1e-9)


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown noise schedule 'sigmoid'"):
        NoiseSchedule("sigmoid")
    with pytest.raises(ValueError, match=r"t must be integer steps in 0..10"):
        NoiseSchedule(steps=10).q_sample(torch.zeros(2, 1), torch.tensor([3, 11]))
    with pytest.raises(ValueError, match="continuous t must lie in"):
        ContinuousSchedule().log_snr(torch.tensor([1.5]))
    with pytest.raises(ValueError, match="prediction must be one of"):
        DDPM((2,), prediction="score")
    with pytest.raises(ValueError, match="points"):
        DDPM((1, 8, 8))
    model = DDPM((2,), steps=10, hidden=(8,))
    with pytest.raises(ValueError, match=r"DDPM: expected|shape"):
        model.loss(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="use sampler='ddim'"):
        model.sample(4, steps=5)
    with pytest.raises(ValueError, match="eta must lie in"):
        model.sample(4, sampler="ddim", eta=2.0)
    with pytest.raises(ValueError, match="cosine schedule ends at alpha_bar = 0"):
        DDPM((2,), schedule="cosine", hidden=(8,)).sample(4, sampler="ddim")


@pytest.mark.slow
def test_ddpm_learns_the_eight_gaussians() -> None:
    """The cosine schedule, 200 epochs of the simple loss at 1e-3 and 100 more at 1e-4 (batch 256, seed 0; the
    best validation epoch's weights are kept): all 8 modes with >= 95% of 5,000 ancestral samples within 3
    standard deviations of a mode (measured 95.1%; the linear schedule gives 92.8% with the same budget)."""
    train_split, val_split, _ = data.load("toy:eight_gaussians", seed=0)
    torch.manual_seed(0)
    model = DDPM((2,), schedule="cosine")
    fit_phases(model, train_split, val_split, [(200, 1e-3), (100, 1e-4)], batch_size=256)
    torch.manual_seed(1)
    covered, good = metrics.mode_coverage(model.sample(5000), *data.mixture_modes("eight_gaussians"))
    assert covered == 8 and good >= 0.95, (covered, good)
