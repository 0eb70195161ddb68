"""Diffusion models on binarized digits (slow): the shipped DDPM (``generative/assets/digits_ddpm``) measured by
the Frechet distance in the shipped classifier's features (the likelihood table's protocol: 360 samples against
the 360 test digits), DDIM against the ancestral loop, the shipped ControlNet on it following its control, RePaint
completing half-hidden digits (on 250 respaced steps), and the shipped class-conditional DDPM's guided samples
classified as their labels.

The two DDPMs and the ControlNet are loaded, not trained here: ``python benchmarks/diffusion_assets.py ddpm`` (and
``ddpm-cond``, ``controlnet``) made them with the training this module used to run itself, call for call (7, 5 and
1.5 CPU-minutes), and ships the run's TensorBoard events beside the weights; ``tests/test_diffusion.py`` keeps
checking cheaply that DDPM and classifier-free guidance learn, ``tests/test_diffusion_models.py`` that a ControlNet
learns to follow its control. The fixtures are cheap and function-scoped except the 1000-step ancestral FD, so
under pytest-xdist only the two tests that share it stay on one worker."""

from __future__ import annotations

import pytest
import torch

from generative import data, metrics
from generative.diffusion import DDPM, inpaint, load_digits_controlnet, load_digits_ddpm

pytestmark = pytest.mark.slow

VAE_FD = 32.0
"""The VAE's Frechet distance on binarized digits in the README's likelihood table (NADE's is also 32, the best
of the autoregressive models; the independent-pixel baseline 261)."""


def fd(samples: torch.Tensor, test: torch.Tensor) -> float:
    return metrics.sample_quality(test, samples)["fd"]


@pytest.fixture
def digits():
    return data.load("digits-binary", seed=0)


@pytest.fixture
def digits_ddpm() -> DDPM:
    """The shipped DDPM: the package's defaults (U-Net of 16 and 32 channels, T = 1000, linear schedule, eps
    prediction, EMA 0.999) trained for 300 epochs of the simple loss (Adam 1e-3, batch 64, seed 0; the best
    validation epoch's weights; at 200 epochs the FD is about 32). A fresh copy per test."""
    return load_digits_ddpm()


@pytest.fixture(scope="module")
def ancestral_fd() -> float:
    """The FD of 360 samples of the 1000-step ancestral loop, sampling seed 1 (computed once for two tests)."""
    test = data.load("digits-binary", seed=0).test
    torch.manual_seed(1)
    return fd(load_digits_ddpm().sample(len(test)), test)


def test_ddpm_samples_digits_better_than_the_vae(ancestral_fd) -> None:
    """The ancestral loop's FD is below the VAE's 32 (the shipped model: 22.8; the same recipe trained on other
    CPUs: 29.5 and 29.7). One sampling seed: the FD of 360 samples moves by about 4 between seeds (the README's
    400-epoch model: 23.7 and 31.1 at seeds 0 and 1)."""
    assert ancestral_fd < VAE_FD, ancestral_fd


@pytest.mark.xfail(strict=True, reason="bar not met on the shipped model: DDIM-50 is 11.2 FD behind its "
                   "1000-step loop (34.0 against 22.8); models trained on other CPUs were 4.3 to 7.6 behind, "
                   "400-epoch runs 5.8 behind to 3.2 ahead by seed")
def test_ddim_with_50_steps_keeps_up_with_the_ancestral_loop(digits, digits_ddpm, ancestral_fd) -> None:
    """DDIM with 50 steps (eta 0) within 5 FD of the 1000-step loop, at 1/20 of the network calls."""
    torch.manual_seed(1)
    ddim = fd(digits_ddpm.sample(len(digits.test), sampler="ddim", steps=50), digits.test)
    print(f"FD: DDPM-1000 {ancestral_fd:.1f}, DDIM-50 {ddim:.1f}")
    assert ddim < ancestral_fd + 5.0, (ancestral_fd, ddim)


def test_controlnet_samples_follow_the_mask(digits) -> None:
    """The shipped ControlNet (coarse-mask control trained 40 epochs on the frozen shipped DDPM): its samples'
    masks overlap the test digits' masks they were given (mean IoU) at least 0.2 more than the base's samples from
    the same noise (measured 0.896 against 0.630)."""
    test = digits.test
    model = load_digits_controlnet()
    control = model.control_of(test)
    torch.manual_seed(1)
    controlled = model.sample(len(test), control, sampler="ddim", steps=50, eta=1.0)
    torch.manual_seed(1)
    free = model.base.sample(len(test), sampler="ddim", steps=50, eta=1.0)
    with_control, without = model.agreement(controlled, control), model.agreement(free, control)
    print(f"mask IoU: controlled {with_control:.3f}, base {without:.3f}")
    assert with_control > without + 0.2, (with_control, without)


def test_repaint_completes_half_hidden_digits(digits, digits_ddpm) -> None:
    """The bottom half of 120 test digits hidden and filled on 250 of the 1000 steps, respaced as RePaint does:
    RePaint (4 rounds a step) gets closer to the hidden pixels than replacement alone (mean squared error), and
    its completions are classified as the original digit at least 0.1 more often than the top halves alone (0.32
    over all 360; the full binarized digits: 0.947). Measured on the shipped model: pixel error 0.237 with
    replacement, 0.213 with RePaint; classified as the original 0.250 (top halves), 0.400 (replacement), 0.467
    (RePaint). On all 1000 steps (four times the network calls): 0.244 and 0.213; 0.467 and 0.500."""
    x, y = (part[:120] for part in data.load("digits-binary", seed=0, labels=True).test)
    mask = torch.zeros_like(x)
    mask[..., :4, :] = 1
    classifier = metrics.load_classifier()
    error, accuracy = {}, {}
    for resample in (1, 4):
        torch.manual_seed(0)
        filled = inpaint(digits_ddpm, x, mask, resample=resample, steps=250)
        error[resample] = float((filled - x)[..., 4:, :].square().mean())
        accuracy[resample] = metrics.accuracy(classifier, filled, y)
    top_only = metrics.accuracy(classifier, x * mask, y)
    print(f"inpainting: pixel error replacement {error[1]:.3f}, RePaint {error[4]:.3f}; classified as the original: "
          f"top half {top_only:.3f}, replacement {accuracy[1]:.3f}, RePaint {accuracy[4]:.3f}")
    assert error[4] < error[1] and accuracy[4] >= top_only + 0.1, (error, accuracy, top_only)


def test_guided_class_conditional_samples_are_their_class() -> None:
    """The shipped class-conditional DDPM (the defaults with label dropout 0.1, 200 epochs, seed 0): with guidance
    rho = 2 at least 90% of 360 samples (the test labels) are classified as their label, and more than without
    guidance (measured 1.000 against 0.933)."""
    _, _, (_, test_y) = data.load("digits-binary", seed=0, labels=True)
    model = load_digits_ddpm(conditional=True)
    classifier = metrics.load_classifier()
    accuracy = {}
    for rho in (0.0, 2.0):
        torch.manual_seed(1)
        samples = model.sample(len(test_y), test_y, sampler="ddim", steps=50, eta=1.0, guidance=rho)
        accuracy[rho] = metrics.accuracy(classifier, samples, test_y)
    print(f"classified as their label: rho 0 {accuracy[0.0]:.3f}, rho 2 {accuracy[2.0]:.3f}")
    assert accuracy[2.0] >= 0.9 and accuracy[2.0] > accuracy[0.0], accuracy
