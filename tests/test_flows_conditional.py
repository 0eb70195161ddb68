"""Conditional flows (generative.flows.ConditionalFlow, SRFlow): exact inverses and log-determinants under a
condition against autograd's Jacobian, the condition actually used, bad conditions as clear errors, the CLI, a
class-conditional 2D flow that learns two different toy densities for two labels (slow), and SRFlow's
super-resolved digits consistent with their low-res input and diverse (slow), and C-Flow's digits generated from a
low-res partner classified as the partner's digit (the shipped C-Flow; a small one still learns in a few epochs)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from test_flows import example as flow_example
from test_flows import perturbed  # the unconditional flows' test helpers (tests/ is on sys.path)

from generative import data, train
from generative.fit import FitHistory, fit
from generative.flows import (
    AffineInjector,
    CFlow,
    ConditionalFlow,
    FeatureAffineCoupling,
    SRFlow,
    channel_mask,
    load_digits_flow,
)
from generative.flows.srflow import downsample
from generative.metrics import load_classifier


@pytest.fixture(autouse=True)
def seeded() -> None:
    torch.manual_seed(0)


def example(shape: tuple[int, ...], n: int = 3, seed: int = 1, scale: float = 0.7) -> torch.Tensor:
    return flow_example(shape, n, seed, scale)


def jacobian_logabsdet(flow: ConditionalFlow, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """``log|det dz/dx|`` per example from autograd's full Jacobian of ``x -> f(x; c)``."""
    out = []
    for i in range(len(x)):

        def fn(v: torch.Tensor, i=i) -> torch.Tensor:
            return flow(v.view(1, *x.shape[1:]), cond[i : i + 1])[0].flatten()

        out.append(torch.linalg.slogdet(torch.autograd.functional.jacobian(fn, x[i].flatten()))[1])
    return torch.stack(out)


MODELS = {  # name -> (a small conditional flow, its input shape, a condition for 3 examples)
    "realnvp-one-hot": (lambda: ConditionalFlow((4,), n_classes=3, n_couplings=3, hidden=(16,)), (4,),
                        lambda: torch.tensor([0, 2, 1])),  # fmt: skip
    "realnvp-embedded": (lambda: ConditionalFlow((4,), n_classes=5, embedding_dim=2, n_couplings=3, hidden=(16,)),
                         (4,), lambda: torch.tensor([4, 0, 4])),  # fmt: skip
    "spline-vector-condition": (lambda: ConditionalFlow((4,), n_classes=0, cond_dim=3, architecture="spline-flow",
                                                        n_couplings=3, tail_bound=2.0, hidden=(16,)),
                                (4,), lambda: example((3,), seed=5)),  # fmt: skip
    "realnvp-image": (lambda: ConditionalFlow((1, 4, 4), n_classes=2, hidden=(8,)), (1, 4, 4),
                      lambda: torch.tensor([1, 0, 1])),  # fmt: skip
    "glow": (lambda: ConditionalFlow((1, 4, 4), n_classes=3, architecture="glow", levels=2, steps=1, hidden=(8,)),
             (1, 4, 4), lambda: torch.tensor([2, 1, 0])),  # fmt: skip
}


@pytest.mark.parametrize("name", list(MODELS))
def test_inverse_and_logabsdet_are_exact_under_a_condition(name: str) -> None:
    make, shape, make_c = MODELS[name]
    flow, x, c = perturbed(make()), example(shape), make_c()
    with torch.no_grad():
        cond = flow.condition(c, len(x))
        flow(x, cond)  # ActNorm (Glow) initializes on its first batch: test the map it then is
        z, logabsdet = flow(x, cond)
        x_back, inverse_logabsdet = flow.inverse(z, cond)
        assert torch.equal(flow.encode(x, c), z)
        assert (flow.decode(z, c) - x).abs().max() < 1e-10
        log_p = flow.log_prob(x, c)
    assert (x_back - x).abs().max() < 1e-10
    assert (logabsdet + inverse_logabsdet).abs().max() < 1e-10
    assert (logabsdet - jacobian_logabsdet(flow, x, cond)).abs().max() < 1e-8
    assert logabsdet.abs().max() > 1e-2  # not the identity
    reference = -0.5 * (z.pow(2) + torch.log(torch.tensor(2 * torch.pi, dtype=z.dtype))).flatten(1).sum(1)
    assert torch.allclose(log_p, reference + logabsdet, atol=1e-12)  # the change of variables, by hand


def test_the_condition_changes_the_map_and_each_example_uses_its_own() -> None:
    flow = perturbed(ConditionalFlow((4,), n_classes=3, n_couplings=3, hidden=(16,)))
    x = example((4,), n=1).expand(3, 4)
    with torch.no_grad():
        z = flow.encode(x, torch.tensor([0, 1, 2]))
        assert (z[0] - z[1]).abs().max() > 1e-3 and (z[1] - z[2]).abs().max() > 1e-3
        for label in range(3):  # batched and one-by-one agree: no mixing of conditions across the batch
            assert torch.allclose(z[label], flow.encode(x[:1], label)[0], atol=1e-12)


def test_sample_takes_labels_one_label_or_vectors_and_a_temperature() -> None:
    flow = ConditionalFlow((2,), n_classes=2, n_couplings=2, hidden=(8,))
    assert flow.sample(5, 1, temperature=0.5).shape == (5, 2)
    assert flow.sample(4).shape == (4, 2)  # labels 0, 1, 0, 1
    torch.manual_seed(3)
    cold = flow.sample(2000, 0, temperature=0.5)
    torch.manual_seed(3)
    warm = flow.sample(2000, 0, temperature=1.0)
    assert torch.allclose(cold * 2, warm, atol=1e-5)  # untrained: the identity map of z ~ N(0, T^2 I)
    vector = ConditionalFlow((3,), n_classes=0, cond_dim=2, n_couplings=2, hidden=(8,))
    assert vector.sample(4, torch.randn(4, 2), temperature=0.7).shape == (4, 3)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f, v: f.log_prob(torch.randn(3, 2), torch.tensor([0, 1])), r"int64 labels \[3\]"),
        (lambda f, v: f.log_prob(torch.randn(3, 2), torch.tensor([0.0, 1.0, 0.0])), r"int64 labels \[3\]"),
        (lambda f, v: f.log_prob(torch.randn(3, 2), torch.tensor([0, 1, 2])), r"labels must be in 0..1"),
        (lambda f, v: f.log_prob(torch.randn(3, 2), torch.tensor([-1, 0, 1])), r"labels must be in 0..1"),
        (lambda f, v: f.log_prob(torch.tensor([[0.0, float("nan")]]), 0), "NaN"),
        (lambda f, v: f.log_prob(torch.randn(3, 3), torch.tensor([0, 1, 0])), r"\[N, 2\]|shape"),
        (lambda f, v: f.sample(0, 0), "n must be at least 1"),
        (lambda f, v: f.sample(3, 0, temperature=0.0), "temperature"),
        (lambda f, v: v.log_prob(torch.randn(2, 3), torch.randn(2, 3)), r"float vector \[2, 2\]"),
        (lambda f, v: v.log_prob(torch.randn(2, 3), torch.tensor([[0.0, float("nan")]] * 2)), "NaN"),
        (lambda f, v: v.log_prob(torch.randn(2, 3), torch.tensor([0, 1])), r"float vector \[2, 2\]"),
        (lambda f, v: v.sample(2), "needs the condition"),
    ],
)
def test_bad_input_is_a_clear_value_error(call, message) -> None:
    labelled = ConditionalFlow((2,), n_classes=2, n_couplings=2, hidden=(8,))
    vector = ConditionalFlow((3,), n_classes=0, cond_dim=2, n_couplings=2, hidden=(8,))
    with pytest.raises(ValueError, match=message):
        call(labelled, vector)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"architecture": "maf"}, "architecture must be one of"),
        ({"n_classes": 0}, "give labels"),
        ({"n_classes": 3, "cond_dim": 2}, "give labels"),
        ({"n_classes": 0, "cond_dim": 2, "embedding_dim": 4}, "embedding_dim embeds labels"),
        ({"n_classes": -1}, "must not be negative"),
    ],
)
def test_bad_configuration_is_a_clear_value_error(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        ConditionalFlow((2,), **kwargs)


def test_cli_trains_a_class_conditional_flow_on_the_digits(tmp_path, capsys) -> None:
    argv = ["train", "conditional-flow", "--data", "digits", "--epochs", "1", "--batch-size", "256",
            "--logdir", str(tmp_path), "--model-kwargs", '{"hidden": [8]}']  # fmt: skip
    assert train.main(argv) == 0
    (run,) = [p for p in tmp_path.rglob("config.json")]
    out = tmp_path / "samples.png"
    assert train.main(["sample", str(run.parent), "-n", "10", "--temperature", "0.7", "--out", str(out)]) == 0
    assert out.exists()
    assert train.main(["eval", str(run.parent)]) == 0
    assert "bits/dim" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------- learning (slow)

DENSITIES = ("eight_gaussians", "rings")  # label 0, label 1: both with exact log-densities in generative.data
BAR = 0.15  # nats above each density's floor: one network holds both, in 2,800 Adam steps


def labelled_toy(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.cat([data.sample(name, n, seed=seed + k) for k, name in enumerate(DENSITIES)])
    return x, torch.arange(len(DENSITIES)).repeat_interleave(n)


@pytest.mark.slow
def test_a_class_conditional_flow_learns_two_densities_for_two_labels() -> None:
    """``p(x | 0)`` = eight Gaussians and ``p(x | 1)`` = rings, from one spline flow: each label's NLL on fresh
    points within ``BAR`` of the true density's (the floor), and the wrong label far worse (the condition is used).
    Measured (seed 0): gaps 0.040 and 0.098 nats; the wrong label costs 2.0 and 4.9 nats more."""
    torch.manual_seed(0)
    flow = ConditionalFlow((2,), n_classes=2, architecture="spline-flow")
    optimizer, history, total = torch.optim.Adam(flow.parameters()), FitHistory(), 0
    for epochs, lr in [(30, 3e-3), (40, 3e-4)]:  # 10,000 points, batch 256: 40 steps per epoch
        for group in optimizer.param_groups:
            group["lr"] = lr
        total += epochs
        fit(flow, labelled_toy(5000, 0), labelled_toy(1000, 100), epochs=total, batch_size=256, patience=1000,
            optimizer=optimizer, history=history)  # fmt: skip
    for label, name in enumerate(DENSITIES):
        x = data.sample(name, 20_000, seed=123)
        with torch.no_grad():
            nll = float(-flow.log_prob(x, label).double().mean())
            wrong = float(-flow.log_prob(x, 1 - label).double().mean())
        floor = float(-data.log_density(name, x).double().mean())
        assert nll - floor < BAR, f"label {label} ({name}): NLL {nll:.4f}, floor {floor:.4f}"
        assert wrong - nll > 1.0, f"label {label} ({name}): the other label's NLL {wrong:.4f} vs {nll:.4f}"


# ------------------------------------------------------------------------------------------------- SRFlow

LOW = (2, 2, 2)  # the low-res of the (2, 4, 4) images below


def features(n: int = 3, channels: int = 4, size: int = 2, seed: int = 6) -> torch.Tensor:
    return torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


SR_TRANSFORMS = {  # name -> (a small feature-conditioned transform, its input shape)
    "injector": (lambda: AffineInjector(2, 4, hidden=8), (2, 4, 4)),
    "injector-same-size": (lambda: AffineInjector(3, 4, hidden=8), (3, 2, 2)),
    "feature-coupling": (lambda: FeatureAffineCoupling(channel_mask((4, 2, 2), 1), 4, hidden=8), (4, 2, 2)),
}


@pytest.mark.parametrize("name", list(SR_TRANSFORMS))
def test_injector_and_feature_coupling_are_exact(name: str) -> None:
    make, shape = SR_TRANSFORMS[name]
    transform, x, g = perturbed(make()), example(shape), features()
    with torch.no_grad():
        y, logabsdet = transform(x, g)
        x_back, inverse_logabsdet = transform.inverse(y, g)
    assert (x_back - x).abs().max() < 1e-10
    assert (logabsdet + inverse_logabsdet).abs().max() < 1e-10
    assert (logabsdet - jacobian_logabsdet(transform, x, g)).abs().max() < 1e-8
    assert logabsdet.abs().max() > 1e-2


def test_the_injector_is_exp_s_times_h_plus_b_with_log_det_sum_s() -> None:
    """The equation by hand: ``h' = exp(s) h + b``, ``log|det| = sum s``, with ``(s_raw, b)`` from the network."""
    injector, h, g = perturbed(AffineInjector(2, 4, hidden=8)), example((2, 4, 4)), features(size=4)
    with torch.no_grad():
        raw_s, b = injector.net(g).chunk(2, dim=1)
        s = injector.scale_bound * torch.tanh(raw_s / injector.scale_bound)
        y, logabsdet = injector(h, g)
    assert torch.allclose(y, torch.exp(s) * h + b, atol=1e-12)
    assert torch.allclose(logabsdet, s.flatten(1).sum(1), atol=1e-12)


def test_srflow_is_exact_and_conditions_on_the_low_res_image() -> None:
    flow = perturbed(SRFlow((2, 4, 4), levels=2, steps=1, hidden=8, features=4))
    x, u = example((2, 4, 4)), example(LOW, seed=4)
    with torch.no_grad():
        g = flow.encoder(u)
        flow(x, g)  # ActNorm initializes on its first batch
        z, logabsdet = flow(x, g)
        x_back, inverse_logabsdet = flow.inverse(z, g)
        assert torch.equal(flow.encode(x, u), z)
        assert (flow.decode(z, u) - x).abs().max() < 1e-10
        own = flow.log_prob(x)  # the condition from the data itself: x's own downsampled image
        assert torch.equal(own, flow.log_prob(x, downsample(x, 2)))
        assert (own - flow.log_prob(x, u)).abs().min() > 1e-3  # another low-res image, another density
    assert (x_back - x).abs().max() < 1e-10
    assert (logabsdet + inverse_logabsdet).abs().max() < 1e-10
    assert (logabsdet - jacobian_logabsdet(flow, x, g)).abs().max() < 1e-8
    n_injectors = sum(isinstance(m, AffineInjector) for m in flow.modules())
    assert n_injectors == 2  # one per step, two scales


def test_srflow_samples_and_super_resolves_many_images_per_input() -> None:
    flow = SRFlow((1, 8, 8), levels=2, steps=1, hidden=8, features=4, n_bins=17)
    u = downsample(data.digits()[0][:3], 2)
    out = flow.super_resolve(u, n_samples=5, temperature=0.7)
    assert out.shape == (3, 5, 1, 8, 8)
    assert flow.sample(4, 0.5, u[:1]).shape == (4, 1, 8, 8)  # one low-res image for all


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f: f.log_prob(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8)),
         r"low-resolution image must be \[2, 1, 4, 4\]"),
        (lambda f: f.log_prob(torch.rand(2, 1, 8, 8), torch.rand(3, 1, 4, 4)), r"low-resolution image must be"),
        (lambda f: f.log_prob(torch.rand(2, 1, 8, 8), torch.full((2, 1, 4, 4), float("nan"))), "NaN"),
        (lambda f: f.log_prob(torch.full((2, 1, 8, 8), float("nan"))), "NaN"),
        (lambda f: f.log_prob(torch.rand(2, 1, 6, 6)), r"shape|\[N, 1, 8, 8\]"),
        (lambda f: f.sample(3, 0.7), "needs low_res"),
        (lambda f: f.sample(3, 0.0, torch.rand(1, 1, 4, 4)), "temperature"),
        (lambda f: f.super_resolve(torch.rand(1, 4, 4)), r"low_res must be \[N, 1, 4, 4\]"),
    ],
)
def test_srflow_bad_input_is_a_clear_value_error(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call(SRFlow((1, 8, 8), levels=2, steps=1, hidden=8, features=4))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"factor": 1}, "factor must be at least 2"), ({"factor": 3}, "divisible"), ({"levels": 4}, "divisible"),
     ({"scale_bound": 0.0}, "scale_bound must be positive")],
)  # fmt: skip
def test_srflow_bad_configuration_is_a_clear_value_error(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        SRFlow((1, 8, 8), **kwargs)



def test_cli_trains_samples_and_evaluates_srflow_on_the_digits(tmp_path, capsys) -> None:
    """The condition comes from the data itself (each image's low-res), so ``srflow`` trains on plain images;
    ``sample`` super-resolves test images: rows of the upscaled low-res input and 7 samples for it."""
    argv = ["train", "srflow", "--data", "digits", "--epochs", "1", "--batch-size", "256", "--logdir", str(tmp_path),
            "--model-kwargs", '{"levels": 1, "steps": 1, "hidden": 8, "features": 4}']  # fmt: skip
    assert train.main(argv) == 0
    (run,) = [p.parent for p in tmp_path.rglob("config.json")]
    config = json.loads((run / "config.json").read_text())
    assert config["model_kwargs"]["n_bins"] == 17  # dequantized like the other flows on the digits
    out = tmp_path / "sr.png"
    assert train.main(["sample", str(run), "-n", "16", "--temperature", "0.7", "--out", str(out)]) == 0
    assert out.exists()
    assert train.main(["eval", str(run)]) == 0
    assert "bits/dim" in capsys.readouterr().out
    model, _ = train.load_run(str(run), torch.device("cpu"))
    test_images = data.digits()[2]
    grid = train.draw_samples(model, 16, 0, torch.device("cpu"), 0.7, test_images)
    assert grid.shape == (16, 1, 8, 8)
    upscaled = torch.nn.functional.interpolate(downsample(test_images[:2], 2), scale_factor=2, mode="nearest")
    assert torch.equal(grid[[0, 8]], upscaled)  # each row starts with its input
    with pytest.raises(ValueError, match="low-res inputs"):
        train.draw_samples(model, 16, 0, torch.device("cpu"))


def test_cli_srflow_on_2d_points_is_a_one_line_error_and_writes_nothing(tmp_path, capsys) -> None:
    assert train.main(["train", "srflow", "--data", "toy:two_moons", "--logdir", str(tmp_path)]) == 2
    assert "SRFlow: input_shape must be (C, H, W)" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


SR_TEMPERATURE, SR_SAMPLES = 0.8, 8
SR_CONSISTENCY_BAR = 0.05  # mean |downsample(sample) - u|; another digit's low-res image is 0.17 away
SR_DIVERSITY_BAR = 0.03  # mean |pixel difference| between two samples for the same u


@pytest.mark.slow
def test_srflow_samples_reproduce_the_low_res_input_and_differ_from_each_other() -> None:
    """SRFlow on the digits (8x8, 17 grey levels, dequantized) from their 2x average-pooled 4x4 images: 600 Adam
    steps. For 50 test digits, 8 samples each at temperature 0.8: downsampled, they reproduce the low-res input
    (mean absolute error below ``SR_CONSISTENCY_BAR``; the low-res images of two different test digits differ by
    0.17), and they are not copies of one image (mean pairwise absolute difference above ``SR_DIVERSITY_BAR``).
    Measured (seed 0): error 0.020, diversity 0.073."""
    torch.manual_seed(0)
    train_split, val_split, test_split = data.digits()
    flow = SRFlow((1, 8, 8), levels=2, steps=2, hidden=32, features=16, n_bins=17)
    fit(flow, train_split, val_split, epochs=30, batch_size=64, patience=1000,
        optimizer=torch.optim.Adam(flow.parameters(), lr=2e-3))  # fmt: skip
    u = downsample(test_split[:50], 2)
    torch.manual_seed(1)
    samples = flow.super_resolve(u, SR_SAMPLES, SR_TEMPERATURE)  # [50, 8, 1, 8, 8]
    error = float((downsample(samples.flatten(0, 1), 2).view(50, SR_SAMPLES, *u.shape[1:]) - u[:, None]).abs().mean())
    pairwise = (samples[:, :, None] - samples[:, None]).abs().flatten(3).mean(-1)  # [50, 8, 8], zero diagonal
    diversity = float(pairwise.sum((1, 2)).mean() / (SR_SAMPLES * (SR_SAMPLES - 1)))
    other_input = float((u - u.roll(1, 0)).abs().mean())
    assert error < SR_CONSISTENCY_BAR < other_input, f"error {error:.4f}, another input {other_input:.4f}"
    assert diversity > SR_DIVERSITY_BAR, f"diversity {diversity:.4f}"


# ------------------------------------------------------------------------------------------------- C-Flow


def test_cflow_joint_map_is_exact_and_its_log_prob_is_the_sum_of_both_flows() -> None:
    """The pair ``(u, x) -> (z_A, z_B) = (f_A(u), f_B(x; f_A(u)))`` is block-triangular: its log-determinant (autograd,
    over the 4 + 16 joint values) is ``log|det f_A'| + log|det f_B'|``, and it inverts exactly."""
    cflow = perturbed(CFlow((1, 4, 4), levels=1, steps=1, hidden=8, features=4))
    x, u = example((1, 4, 4)), example((1, 2, 2), seed=4)
    with torch.no_grad():
        cflow.partner_flow(u)  # ActNorms initialize on their first batch
        cflow.flow(x, cflow.flow.encoder(cflow.partner_flow(u)[0]))

    def joint(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u_, x_ = v[:, :4].view(-1, 1, 2, 2), v[:, 4:].view(-1, 1, 4, 4)
        z_a, ld_a = cflow.partner_flow(u_)
        z_b, ld_b = cflow.flow(x_, cflow.flow.encoder(z_a))
        return torch.cat([z_a.flatten(1), z_b.flatten(1)], 1), ld_a + ld_b

    v = torch.cat([u.flatten(1), x.flatten(1)], 1)
    with torch.no_grad():
        z, logabsdet = joint(v)
        z_a, z_b = z[:, :4].view(-1, 1, 2, 2), z[:, 4:].view(-1, 1, 4, 4)
        u_back = cflow.partner_flow.decode(z_a)
        x_back = cflow.flow.decode(z_b, z_a)
        log_p = cflow.log_prob(x, u)
        reference = cflow.partner_flow.log_prob(u) + cflow.flow.log_prob(x, cflow.partner_flow.encode(u))
        assert torch.equal(cflow.log_prob(x), cflow.log_prob(x, downsample(x, 2)))  # the partner from x itself
    assert (u_back - u).abs().max() < 1e-10 and (x_back - x).abs().max() < 1e-10
    jac = torch.stack([torch.linalg.slogdet(torch.autograd.functional.jacobian(lambda w: joint(w[None])[0][0], row))[1]
                       for row in v])  # fmt: skip
    assert (logabsdet - jac).abs().max() < 1e-8 and logabsdet.abs().max() > 1e-2
    assert torch.allclose(log_p, reference, atol=1e-12)


def test_cflow_samples_and_samples_given_a_partner() -> None:
    cflow = CFlow((1, 8, 8), levels=2, steps=1, hidden=8, features=4, n_bins=17)
    assert cflow.partner_flow.n_bins == 65  # averages of 4 pixels on 17 levels: 65 levels
    x = data.digits()[0][:4]
    assert cflow.loss(x).isfinite()
    assert cflow.sample(5, temperature=0.7).shape == (5, 1, 8, 8)
    assert cflow.sample_given(downsample(x, 2), n_samples=3).shape == (4, 3, 1, 8, 8)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f: f.log_prob(torch.rand(2, 1, 4, 4)), r"shape|\[N, 1, 8, 8\]"),
        (lambda f: f.log_prob(torch.full((2, 1, 8, 8), float("nan"))), "NaN"),
        (lambda f: f.log_prob(torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8)), r"shape|\[N, 1, 4, 4\]"),
        (lambda f: f.log_prob(torch.zeros(2, 1, 8, 8), torch.full((2, 1, 4, 4), 0.3)), "n_bins=65"),
        (lambda f: f.sample_given(torch.zeros(2, 1, 8, 8)), r"shape|\[N, 1, 4, 4\]"),
        (lambda f: f.sample(2, temperature=-1.0), "temperature"),
    ],
)
def test_cflow_bad_input_is_a_clear_value_error(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call(CFlow((1, 8, 8), levels=2, steps=1, hidden=8, features=4, n_bins=17))


@pytest.mark.parametrize(("shape", "kwargs"), [((1, 8, 8), {"levels": 3}), ((1, 8, 8), {"factor": 1}), ((8,), {})])
def test_cflow_bad_configuration_is_a_clear_value_error(shape, kwargs) -> None:
    with pytest.raises(ValueError, match="CFlow"):
        CFlow(shape, **kwargs)


def test_cli_trains_samples_and_evaluates_cflow_on_the_digits(tmp_path, capsys) -> None:
    argv = ["train", "cflow", "--data", "digits", "--epochs", "1", "--batch-size", "256", "--logdir", str(tmp_path),
            "--model-kwargs", '{"levels": 1, "steps": 1, "hidden": 8, "features": 4}']  # fmt: skip
    assert train.main(argv) == 0
    (run,) = [p.parent for p in tmp_path.rglob("config.json")]
    out = tmp_path / "c.png"
    assert train.main(["sample", str(run), "-n", "8", "--temperature", "0.7", "--out", str(out)]) == 0
    assert out.exists()
    assert train.main(["eval", str(run)]) == 0
    assert "bits/dim" in capsys.readouterr().out


CFLOW_TEMPERATURE, CFLOW_ACCURACY_BAR = 0.5, 0.90  # the bar


def test_cflow_samples_given_a_low_res_digit_are_that_digit() -> None:
    """C-Flow on the digits (partner: the 2x average-pooled image), 1,000 Adam steps: the shipped ``digits_cflow``
    (``CFlow((1, 8, 8), levels=2, steps=2, hidden=32, features=16, n_bins=17)``, 50 epochs of Adam 2e-3, batch 64,
    seed 0: the training this test ran until it was shipped, ``benchmarks/flow_assets.py``). For 200 test digits, 8
    samples each given the digit's low-res image at temperature 0.5: the shipped digits classifier
    (``generative.metrics``, 98% on real test digits, 72.5% on the partners themselves upscaled) labels at least 90%
    of them as the conditioning digit's class, and they downsample back to the partner. Measured (seed 0): 92.3%
    (T = 0.7: 91.5%; 600 steps: 91.2%), error 0.021; the shipped run (torch 2.13 CPU): 92.75%, error 0.0216."""
    _, _, (test_x, test_y) = data.digits(labels=True)
    cflow = load_digits_flow("digits_cflow")
    u = downsample(test_x[:200], 2)
    torch.manual_seed(1)
    samples = cflow.sample_given(u, 8, CFLOW_TEMPERATURE)  # [200, 8, 1, 8, 8]
    with torch.no_grad():
        predicted = load_classifier()(samples.flatten(0, 1)).argmax(-1).view(200, 8)
    accuracy = float((predicted == test_y[:200, None]).float().mean())
    error = float((downsample(samples.flatten(0, 1), 2).view(200, 8, 1, 4, 4) - u[:, None]).abs().mean())
    assert accuracy >= CFLOW_ACCURACY_BAR, f"accuracy {accuracy:.3f}"
    assert error < SR_CONSISTENCY_BAR, f"error {error:.4f}"


def test_cflow_learns_in_a_few_epochs() -> None:
    """The cheap learning check beside the shipped C-Flow: a small one (1 level of 2 steps, hidden 16, features 8),
    5 epochs of Adam 2e-3 on the digits (100 steps), lowers its test NLL bound by more than ``CHEAP_CFLOW_BAR``
    nats from the untrained model's 222.0 (ActNorms initialized on the data). Measured, seeds 0, 1, 2 (model and
    batch order): 53.4, 54.1, 53.7 nats; about 10 s."""
    (train_x, _), (val_x, _), (test_x, _) = data.digits(labels=True)
    cflow = CFlow((1, 8, 8), levels=1, steps=2, hidden=16, features=8, n_bins=17)  # seeded 0 by the fixture
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        untrained = train.mean_nll(copy.deepcopy(cflow), test_x)  # the copy's ActNorms initialize, not cflow's
    fit(cflow, train_x, val_x, epochs=CHEAP_CFLOW_EPOCHS, batch_size=64, patience=1000,
        optimizer=torch.optim.Adam(cflow.parameters(), lr=2e-3))  # fmt: skip
    torch.manual_seed(1)
    trained = train.mean_nll(cflow, test_x)
    assert trained < untrained - CHEAP_CFLOW_BAR, (trained, untrained)


CHEAP_CFLOW_EPOCHS, CHEAP_CFLOW_BAR = 5, 45.0


def test_cli_fit_check_leaves_actnorm_to_initialize_on_the_first_training_batch(tmp_path) -> None:
    """``mpenv-gen train`` checks that the model fits the data on 2 examples before making a run directory; done on
    the model itself, ActNorm would initialize on those 2 (C-Flow's partner Glow: a validation NLL of 1.5e8 nats
    instead of 214 at the start). The check runs on a copy, so the first training batch initializes it."""
    argv = ["train", "cflow", "--data", "digits", "--epochs", "1", "--batch-size", "256", "--logdir", str(tmp_path),
            "--model-kwargs", '{"hidden": 16, "features": 8}']  # fmt: skip
    assert train.main(argv) == 0
    (run,) = [p.parent for p in tmp_path.rglob("config.json")]
    model, config = train.load_run(str(run), torch.device("cpu"))
    _, val_split, _ = data.digits()
    with torch.no_grad():
        assert float(model.loss(val_split)) < 400  # 1.0e7 when ActNorm initializes on the check's 2 examples
