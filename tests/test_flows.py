"""Normalizing flows (generative.flows): exact inverses and log-determinants against autograd's Jacobian, the LU
1x1 convolution against the plain one, ActNorm's data-dependent init, normalization by grid quadrature, any base
distribution, temperature, bad input, the CLI, learning the 2D toy densities to their known floors (slow; the
checkerboard's flow shipped, a few epochs of it still learning), and the shipped flows as their documented runs."""

from __future__ import annotations

import inspect
import itertools
import json
import math
import re

import pytest
import torch
from torch.distributions import Independent, Laplace, Normal

from generative import data, train
from generative.fit import fit_phases
from generative.flows import (
    DIGITS_FLOWS,
    TOY_FLOWS,
    ActNorm,
    AdditiveCoupling,
    AffineCoupling,
    CFlow,
    Flow,
    Glow,
    InvConv1x1,
    Inverse,
    LUInvConv1x1,
    Permutation,
    RationalQuadraticCoupling,
    RealNVP,
    SplineFlow,
    Split,
    Squeeze,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
    load_digits_flow,
    load_toy_flow,
    rational_quadratic_spline,
    shipped_flow_dir,
)
from generative.flows.dequantize import dequantize


@pytest.fixture(autouse=True)
def seeded() -> None:
    """Every test builds its networks from the same seed, whatever ran before it."""
    torch.manual_seed(0)


VECTOR, IMAGE, COND = (4,), (2, 4, 4), 3
TRANSFORMS = {  # name -> (a small transform in float64, its input shape, whether it takes a condition)
    "affine-alternating": (lambda: AffineCoupling(alternating_mask(4, 0), hidden=(16, 16)), VECTOR, False),
    "affine-checkerboard": (lambda: AffineCoupling(checkerboard_mask(IMAGE, 1), hidden=(8,)), IMAGE, False),
    "affine-channel": (lambda: AffineCoupling(channel_mask(IMAGE, 1), hidden=(8,)), IMAGE, False),
    "affine-conditional": (lambda: AffineCoupling(alternating_mask(4, 1), hidden=(16,), cond_dim=COND), VECTOR, True),
    "affine-conditional-image": (lambda: AffineCoupling(checkerboard_mask(IMAGE, 0), hidden=(8,), cond_dim=COND),
                                 IMAGE, True),  # fmt: skip
    "additive": (lambda: AdditiveCoupling(alternating_mask(4, 1), hidden=(16,)), VECTOR, False),
    "spline": (lambda: RationalQuadraticCoupling(alternating_mask(4, 0), bins=5, tail_bound=2.0, hidden=(16,)),
               VECTOR, False),  # fmt: skip
    "spline-image": (lambda: RationalQuadraticCoupling(checkerboard_mask(IMAGE, 0), bins=4, tail_bound=2.0,
                                                       hidden=(8,)), IMAGE, False),  # fmt: skip
    "spline-conditional": (lambda: RationalQuadraticCoupling(alternating_mask(4, 1), tail_bound=2.0, hidden=(16,),
                                                             cond_dim=COND), VECTOR, True),  # fmt: skip
    "permutation-random": (lambda: Permutation.random(4, seed=1), VECTOR, False),
    "permutation-reverse": (lambda: Permutation.reverse(2), IMAGE, False),
    "actnorm-vector": (lambda: ActNorm(4), VECTOR, False),
    "actnorm-image": (lambda: ActNorm(2), IMAGE, False),
    "conv1x1": (lambda: InvConv1x1(2, seed=1), IMAGE, False),
    "conv1x1-vector": (lambda: InvConv1x1(4, seed=2), VECTOR, False),
    "conv1x1-lu": (lambda: LUInvConv1x1(2, seed=1), IMAGE, False),
    "squeeze": (lambda: Squeeze(), IMAGE, False),
    "unsqueeze": (lambda: Inverse(Squeeze()), (8, 2, 2), False),
    "realnvp-vector": (lambda: RealNVP(VECTOR, n_couplings=4, hidden=(16, 16)), VECTOR, False),
    "realnvp-image": (lambda: RealNVP(IMAGE, hidden=(8,)), IMAGE, False),
    "realnvp-conditional": (lambda: RealNVP(VECTOR, n_couplings=3, hidden=(16,), cond_dim=COND), VECTOR, True),
    "spline-flow-vector": (lambda: SplineFlow(VECTOR, n_couplings=3, bins=6, tail_bound=2.0, hidden=(16,)),
                           VECTOR, False),  # fmt: skip
    "spline-flow-image": (lambda: SplineFlow(IMAGE, n_couplings=4, tail_bound=2.0, hidden=(8,)), IMAGE, False),
    "glow-step": (lambda: Flow(IMAGE, [ActNorm(2), LUInvConv1x1(2), AffineCoupling(channel_mask(IMAGE, 0), (8,))]),
                  IMAGE, False),  # fmt: skip
    "split": (lambda: Split(AffineCoupling(checkerboard_mask((1, 4, 4), 0), (8,))), IMAGE, False),
    "glow": (lambda: Glow((1, 4, 4), levels=2, steps=2, hidden=(8,)), (1, 4, 4), False),
    "glow-conditional": (lambda: Glow((1, 4, 4), levels=2, steps=1, hidden=(8,), cond_dim=COND), (1, 4, 4), True),
}


def perturbed(module: torch.nn.Module, seed: int = 0, std: float = 0.1) -> torch.nn.Module:
    """``module`` in float64 with every parameter moved by ``N(0, std^2)``: the zero-initialized output layers
    of the couplings no longer make them the identity."""
    module = module.double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(std * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def example(shape: tuple[int, ...], n: int = 3, seed: int = 1, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def conditions(n: int = 3, seed: int = 2) -> torch.Tensor:
    return torch.randn(n, COND, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def jacobian_logabsdet(transform, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
    """``log|det dy/dx|`` of every example from autograd's full Jacobian (independent of the transform's own)."""
    out = []
    for i in range(len(x)):
        c = None if cond is None else cond[i : i + 1]

        def fn(v: torch.Tensor, c=c) -> torch.Tensor:
            return transform(v.view(1, *x.shape[1:]), c)[0].flatten()

        jac = torch.autograd.functional.jacobian(fn, x[i].flatten())
        out.append(torch.linalg.slogdet(jac)[1])
    return torch.stack(out)


# ------------------------------------------------------------------------------------- exact inverse, exact det


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_inverse_and_logabsdet_are_exact(name: str) -> None:
    make, shape, conditional = TRANSFORMS[name]
    transform = perturbed(make())
    x = example(shape, scale=0.7)  # within the splines' tail bound mostly; a few values lie in the tails
    cond = conditions() if conditional else None
    with torch.no_grad():
        transform(x, cond)  # ActNorm initializes on its first batch: test the map it then is
        y, logabsdet = transform(x, cond)
        x_back, inverse_logabsdet = transform.inverse(y, cond)
    assert y.numel() == x.numel() and logabsdet.shape == (len(x),)  # a squeeze reshapes
    assert (x_back - x).abs().max() < 1e-10
    assert (logabsdet + inverse_logabsdet).abs().max() < 1e-10
    assert (logabsdet - jacobian_logabsdet(transform, x, cond)).abs().max() < 1e-8
    volume_preserving = name.startswith(("additive", "permutation", "squeeze", "unsqueeze"))
    assert volume_preserving or logabsdet.abs().max() > 1e-2  # not a trivially identity map


def test_spline_is_monotone_identity_at_init_and_identity_in_the_tails() -> None:
    coupling = RationalQuadraticCoupling(alternating_mask(2, 0), bins=6, tail_bound=3.0).double()
    x = example((2,), n=50, scale=2.0)
    y, logabsdet = coupling(x)
    assert torch.allclose(y, x, atol=1e-12) and logabsdet.abs().max() < 1e-12  # zero last layer: identity
    coupling = perturbed(coupling, std=0.3)
    grid = torch.stack([torch.zeros(2001), torch.linspace(-5, 5, 2001)], 1).double()
    y, _ = coupling(grid)
    assert (y[1:, 1] - y[:-1, 1] > 0).all()  # strictly increasing
    tails = grid[:, 1].abs() > 3.0
    assert torch.equal(y[tails], grid[tails]) and (y[~tails, 1].abs() <= 3.0 + 1e-12).all()


def test_spline_gradients_match_finite_differences_inside_and_in_the_tails() -> None:
    """The forward spline's hand-written backward (``_ForwardSpline``) against finite differences in float64, for
    the input and all three raw parameter sets, with points inside ``[-B, B]`` and in both tails."""
    g = torch.Generator().manual_seed(4)
    for bins, shape in [(5, (6, 3)), (2, (4,))]:
        x = 1.5 * torch.randn(*shape, generator=g, dtype=torch.float64)
        x.view(-1)[:2] = torch.tensor([2.7, -3.1])  # one point in each tail
        x.requires_grad_()
        raw = [torch.randn(*shape, k, generator=g, dtype=torch.float64, requires_grad=True)
               for k in (bins, bins, bins - 1)]  # fmt: skip
        assert torch.autograd.gradcheck(lambda *a: rational_quadratic_spline(*a, bound=2.0), (x, *raw))


def test_split_factors_out_the_first_half_of_the_channels() -> None:
    glow = perturbed(Glow((1, 4, 4), levels=2, steps=1, hidden=(8,)))
    x = example((1, 4, 4))
    glow(x)  # ActNorm's init
    outer = glow.transforms[:-2]  # squeeze and the first scale's steps, before the split
    h = x
    for transform in outer:
        h = transform(h)[0]
    split = glow.transforms[-2]
    assert isinstance(split, Split)
    y = split(h)[0]
    assert torch.equal(y[:, :2], h[:, :2]) and not torch.allclose(y[:, 2:], h[:, 2:])


def test_coupling_leaves_the_masked_half_unchanged() -> None:
    mask = checkerboard_mask(IMAGE, 0)
    for coupling in (AffineCoupling(mask, (8,)), RationalQuadraticCoupling(mask, tail_bound=2.0, hidden=(8,))):
        x = example(IMAGE, scale=0.5)
        y, _ = perturbed(coupling)(x)
        assert torch.equal(y * mask, x * mask) and not torch.allclose(y, x)


def test_lu_conv_equals_the_plain_conv_with_the_same_weight() -> None:
    weight = torch.randn(5, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    plain, lu = InvConv1x1(5, weight).double(), LUInvConv1x1(5, weight).double()
    assert torch.allclose(lu.weight, weight, atol=1e-12)  # P L (U + diag s) rebuilds W
    x = example((5, 3, 3))
    (y_plain, ld_plain), (y_lu, ld_lu) = plain(x), lu(x)
    assert torch.allclose(y_plain, y_lu, atol=1e-12) and torch.allclose(ld_plain, ld_lu, atol=1e-12)
    assert torch.allclose(ld_plain, 9 * torch.linalg.slogdet(weight)[1].expand(3), atol=1e-12)
    assert torch.allclose(plain.inverse(y_plain)[0], lu.inverse(y_lu)[0], atol=1e-12)


def test_actnorm_first_batch_comes_out_standardized_and_the_init_is_kept() -> None:
    g = torch.Generator().manual_seed(0)
    scale, shift = torch.tensor([0.1, 5.0, 2.0]).view(1, 3, 1, 1), torch.tensor([3.0, -7.0, 0.5]).view(1, 3, 1, 1)
    x = torch.randn(32, 3, 4, 4, generator=g, dtype=torch.float64) * scale.double() + shift.double()
    norm = ActNorm(3).double()
    y, _ = norm(x)
    per_channel = y.transpose(0, 1).reshape(3, -1)
    assert per_channel.mean(1).abs().max() < 1e-12 and (per_channel.std(1, unbiased=False) - 1).abs().max() < 1e-12
    state = {k: v.clone() for k, v in norm.state_dict().items()}
    norm(5 * x)  # a second batch does not re-initialize
    assert all(torch.equal(v, norm.state_dict()[k]) for k, v in state.items())
    loaded = ActNorm(3).double()
    loaded.load_state_dict(state)  # nor does a loaded one
    assert torch.equal(loaded(x)[0], y)


# ----------------------------------------------------------------------------------------------- the density


def _grid(half_width: float, n: int) -> tuple[torch.Tensor, float]:
    step = 2 * half_width / n
    centres = -half_width + step * (torch.arange(n, dtype=torch.float64) + 0.5)
    xx, yy = torch.meshgrid(centres, centres, indexing="xy")
    return torch.stack([xx.flatten(), yy.flatten()], 1), step * step


@pytest.mark.parametrize("make", [lambda: RealNVP((2,), n_couplings=4, hidden=(16, 16)),
                                  lambda: SplineFlow((2,), n_couplings=3, tail_bound=3.0, hidden=(16,))])  # fmt: skip
def test_2d_density_integrates_to_one_and_matches_its_samples(make) -> None:
    torch.manual_seed(0)
    flow = perturbed(make(), std=0.2)
    points, area = _grid(8.0, 500)
    with torch.no_grad():
        density = flow.log_prob(points).exp()
    assert float(density.sum() * area) == pytest.approx(1.0, abs=0.01)
    # samples fall in 1x1 cells of [-4, 4]^2 as often as the density integrated over each cell says
    x = flow.sample(40_000)
    cell_of = lambda p: ((p + 4).floor().clamp(-1, 8) + 1).long() @ torch.tensor([1, 10])  # noqa: E731
    expected = torch.zeros(100, dtype=torch.float64).index_add_(0, cell_of(points), density * area)
    observed = torch.bincount(cell_of(x), minlength=100).double() / len(x)
    assert (observed - expected).abs().max() < 0.01


def test_any_base_distribution_and_temperature() -> None:
    x = example((2,), n=5)
    laplace = Flow((2,), [Permutation.reverse(2)], base=Laplace(0.0, 1.0)).double()
    assert torch.allclose(laplace.log_prob(x), Laplace(0.0, 1.0).log_prob(x.flip(1)).sum(1))
    wide = Independent(Normal(torch.zeros(2, dtype=torch.float64), 2 * torch.ones(2, dtype=torch.float64)), 1)
    flow = Flow((2,), [Permutation.reverse(2)], base=wide).double()
    assert torch.allclose(flow.log_prob(x), wide.log_prob(x.flip(1)))
    assert flow.sample(7).shape == laplace.sample(7).shape == (7, 2)
    with pytest.raises(ValueError, match="temperature 0.5 needs the standard normal base"):
        flow.sample(3, temperature=0.5)
    torch.manual_seed(0)
    normal = Flow((2,), [Permutation.reverse(2)]).double()
    assert float(normal.sample(40_000, temperature=0.5).std()) == pytest.approx(0.5, rel=0.02)


@pytest.mark.parametrize("make", [lambda: RealNVP((2,), hidden=(16,)), lambda: RealNVP((1, 4, 4), hidden=(8,)),
                                  lambda: SplineFlow((2,), hidden=(16,)),
                                  lambda: Glow((1, 4, 4), hidden=(8,))])  # fmt: skip
def test_encode_decode_and_sample(make) -> None:
    flow = perturbed(make())
    x = example(flow.input_shape, n=6, scale=0.8)
    z = flow.encode(x)
    assert z.shape == x.shape and (flow.decode(z) - x).abs().max() < 1e-10
    # log p(x) = log N(z) + log|det|, the model's own pieces
    assert torch.allclose(flow.log_prob(x), flow.base_log_prob(z) + flow(x)[1])
    assert flow.sample(5, temperature=0.7).shape == (5, *flow.input_shape)
    assert float(flow.loss(x).detach()) == pytest.approx(float(-flow.log_prob(x).detach().mean()))


def test_dequantization_bounds_the_discrete_probabilities() -> None:
    """With ``n_bins = L`` the flow is a model of discrete images: ``P(k) = int p_Y((k + u) / L) L^-D du`` (by
    quadrature over ``u``) sums to at most 1 over all images, ``log_prob`` estimates ``E_u log p_Y - D log L``,
    which is below ``log P(k)`` (Jensen), and decoding the bins' latents gives the images back."""
    levels = 4
    flow = perturbed(RealNVP((2,), n_couplings=2, hidden=(8,), n_bins=levels), std=0.3)
    images = torch.tensor(list(itertools.product(range(levels), repeat=2)), dtype=torch.float64) / (levels - 1)
    u = (torch.arange(40, dtype=torch.float64) + 0.5) / 40
    grid = torch.stack(torch.meshgrid(u, u, indexing="xy"), -1).reshape(-1, 2)  # 1,600 points of [0, 1)^2
    with torch.no_grad():
        per_u = torch.stack([flow.base_log_prob(flow(s)[0]) + flow(s)[1] + correction
                             for s, correction in (dequantize(images, levels, noise) for noise in grid)])  # fmt: skip
        log_prob_k = torch.logsumexp(per_u, 0) - math.log(len(grid))  # log P(k), quadrature
        assert 0.5 < float(log_prob_k.exp().sum()) <= 1.0
        bound = per_u.mean(0)
        assert (bound <= log_prob_k).all()
        torch.manual_seed(0)
        estimate = torch.stack([flow.log_prob(images) for _ in range(400)]).mean(0)  # fresh u each call
        assert ((estimate - bound).abs() < 4 * per_u.std(0) / math.sqrt(400)).all()  # within 4 standard errors
        assert torch.equal(flow.decode(flow.encode(images)), images)
        samples = flow.sample(100)
        assert torch.equal(samples * (levels - 1), (samples * (levels - 1)).round())
    with pytest.raises(ValueError, match=r"RealNVP: n_bins=4 expects pixels k / 3"):
        flow.log_prob(torch.tensor([[0.5, 0.0]], dtype=torch.float64))


def test_every_model_constructor_has_defaults_and_the_package_exports_them() -> None:
    import generative

    for cls in (RealNVP, SplineFlow, Glow):
        params = list(inspect.signature(cls).parameters.values())
        assert params[0].name == "input_shape"
        assert all(p.default is not inspect.Parameter.empty for p in params[1:]), cls
    assert generative.RealNVP is RealNVP and generative.SplineFlow is SplineFlow and generative.Glow is Glow
    assert generative.flows.Flow is Flow


# ---------------------------------------------------------------------------------------------------- bad input


def test_bad_input_is_a_clear_error() -> None:
    flow = RealNVP((2,), hidden=(8,))
    with pytest.raises(ValueError, match=r"RealNVP: expected input of shape \[N, 2\], got \[4, 3\]"):
        flow.log_prob(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="RealNVP: the input contains NaN"):
        flow.log_prob(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="RealNVP: the latent contains NaN"):
        flow.decode(torch.tensor([[float("inf"), 0.0]]))
    with pytest.raises(ValueError, match="temperature must be a positive number"):
        flow.sample(2, temperature=0.0)
    with pytest.raises(ValueError, match="built for a condition of size 0"):
        flow.log_prob(torch.zeros(2, 2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"condition must be \[N, cond_dim\] with N = 2"):
        RealNVP((2,), cond_dim=3).log_prob(torch.zeros(2, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="built for a condition of size 3, given none"):
        RealNVP((2,), cond_dim=3).log_prob(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="InvConv1x1: the weight is singular"):
        InvConv1x1(2, torch.tensor([[1.0, 2.0], [2.0, 4.0]]))(torch.zeros(1, 2))
    with pytest.raises(ValueError, match="LUInvConv1x1: the weight is singular"):
        LUInvConv1x1(2, torch.tensor([[1.0, 2.0], [2.0, 4.0]]))
    with pytest.raises(ValueError, match=r"ActNorm: channel\(s\) \[1\] have zero variance"):
        ActNorm(2)(torch.tensor([[0.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="Squeeze: expected images .* even H and W"):
        Squeeze()(torch.zeros(1, 1, 3, 4))
    with pytest.raises(ValueError, match="Permutation: perm must be a permutation"):
        Permutation(torch.tensor([0, 0, 1]))
    with pytest.raises(ValueError, match="RealNVP: vectors need at least 2 features"):
        RealNVP((1,))
    with pytest.raises(ValueError, match="RealNVP: images need even height and width"):
        RealNVP((1, 3, 4))
    with pytest.raises(ValueError, match=r"Glow: height and width must be divisible by 2\^levels = 4"):
        Glow((1, 6, 6))
    with pytest.raises(ValueError, match="Split: needs an even number of channels"):
        Split(Squeeze())(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="scale_bound must be positive"):
        AffineCoupling(alternating_mask(2, 0), scale_bound=0.0)
    with pytest.raises(ValueError, match="bins must be at least 2"):
        SplineFlow((2,), bins=1)
    diverged = RealNVP((2,), hidden=(8,))
    with torch.no_grad():
        diverged.transforms[0].net.net[0].weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="log-probability is NaN"):
        diverged.log_prob(torch.zeros(2, 2))


# ------------------------------------------------------------------------------------------------------ the CLI


@pytest.mark.parametrize("model", ["realnvp", "spline-flow"])
def test_cli_trains_samples_and_evaluates_a_flow_on_a_toy_density(model, tmp_path, capsys) -> None:
    logdir = tmp_path / "runs"
    argv = ["train", model, "--data", "toy:two_moons", "--epochs", "2", "--batch-size", "512", "--logdir", str(logdir),
            "--model-kwargs", '{"hidden": [16, 16]}', "--sample-every", "2"]  # fmt: skip
    assert train.main(argv) == 0
    trained = capsys.readouterr().out
    assert f"{model} on toy:two_moons: test NLL" in trained
    (run_dir,) = [p for p in logdir.iterdir() if p.is_dir()]
    assert train.main(["eval", str(run_dir)]) == 0
    nll_line = [line for line in trained.splitlines() if "test NLL" in line][0]
    assert capsys.readouterr().out.strip() == nll_line
    out = tmp_path / "s.png"
    assert train.main(["sample", str(run_dir), "-n", "16", "--out", str(out), "--temperature", "0.7"]) == 0
    assert out.is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    assert {"samples", "density"} <= set(events.Tags()["images"])
    # the heatmap is the model's density: it integrates to 1 over [-4, 4]^2 (the grid's cells, midpoint rule)
    flow, _ = train.load_run(str(run_dir), torch.device("cpu"))
    image = train.density_figure(flow, torch.device("cpu")).axes[0].images[0].get_array()
    cell = (2 * train.DENSITY_EXTENT / (train.DENSITY_CELLS - 1)) ** 2
    assert float(image.sum()) * cell == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "realnvp", "--data", "toy:two_moons", "--model-kwargs", '{"n_bins": 1}'], "n_bins must be at least 2"),
    (["train", "spline-flow", "--data", "toy:moons"], "unknown toy density 'moons'"),
    (["train", "realnvp", "--data", "toy:two_moons", "--model-kwargs", '{"n_couplings": 0}'],
     "n_couplings must be at least 1"),
    (["train", "realnvp", "--data", "toy:two_moons", "--model-kwargs", '{"bins": 8}'], "bad model kwargs"),
])  # fmt: skip
def test_cli_flow_errors_are_one_line_and_write_nothing(argv, message, tmp_path, capsys) -> None:
    assert train.main([*argv, "--logdir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("model", "source", "levels"), [("glow", "digits", 17), ("realnvp", "digits-binary", 2)])
def test_cli_flows_dequantize_image_data(model, source, levels, tmp_path, capsys) -> None:
    logdir = tmp_path / "runs"
    argv = ["train", model, "--data", source, "--epochs", "1", "--logdir", str(logdir), "--model-kwargs",
            '{"hidden": [8]}']  # fmt: skip
    assert train.main(argv) == 0
    assert f"bits/dim (dequantization bound, {levels} levels)" in capsys.readouterr().out
    (run_dir,) = [p for p in logdir.iterdir() if p.is_dir()]
    assert json.loads((run_dir / "config.json").read_text())["model_kwargs"]["n_bins"] == levels
    assert train.main(["eval", str(run_dir)]) == 0 and "dequantization bound" in capsys.readouterr().out


def test_cli_temperature_is_for_flows_only(tmp_path, capsys) -> None:
    logdir = tmp_path / "runs"
    assert train.main(["train", "fvsbn", "--data", "digits-binary", "--epochs", "1", "--logdir", str(logdir)]) == 0
    (run_dir,) = [p for p in logdir.iterdir() if p.is_dir()]
    out = tmp_path / "s.png"
    assert train.main(["sample", str(run_dir), "--out", str(out), "--temperature", "0.5"]) == 2
    assert "--temperature: FVSBN does not take it (the flows take one)" in capsys.readouterr().err and not out.exists()
    assert train.main(["sample", str(run_dir), "--out", str(out), "--temperature", "-1"]) == 2
    assert "--temperature must be a positive number" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- learning the floors


def moons_log_density(x: torch.Tensor, sigma: float = 0.05, n_angles: int = 500) -> torch.Tensor:
    """The two-moons density of ``generative.data`` (scikit-learn's ``make_moons``, noise 0.05) by quadrature:
    two unit half-circles, points evenly spread in angle (each moon half the mass), plus isotropic
    ``N(0, sigma^2 I)`` noise, so ``p(x) = 1/(2 pi) sum_moon int_0^pi N(x; c_moon(t), sigma^2 I) dt``; the
    midpoint rule on ``n_angles`` angles per moon (spacing 6.3e-3, an eighth of sigma: within 1e-4 nats on average
    of 4,000 angles)."""
    t = (torch.arange(n_angles, dtype=torch.float64) + 0.5) * math.pi / n_angles
    centres = torch.cat([torch.stack([t.cos(), t.sin()], 1), torch.stack([1 - t.cos(), 0.5 - t.sin()], 1)])
    out = []
    for chunk in x.double().split(1000):
        sq = ((chunk[:, None] - centres[None]) ** 2).sum(-1)
        log_normal = -sq / (2 * sigma**2) - math.log(2 * math.pi * sigma**2)
        out.append(torch.logsumexp(log_normal, 1) - math.log(2 * n_angles))
    return torch.cat(out)


def true_log_density(name: str, x: torch.Tensor) -> torch.Tensor:
    return moons_log_density(x) if name == "two_moons" else data.log_density(name, x).double()


def test_moons_quadrature_is_a_normalized_density_with_the_known_floor() -> None:
    points, area = _grid(3.0, 240)  # cells of sigma / 2
    assert float(moons_log_density(points).exp().sum() * area) == pytest.approx(1.0, abs=0.005)
    near = data.sample("two_moons", 500, seed=7)  # where the density lives (far off it only the tails differ)
    error = (moons_log_density(near) - moons_log_density(near, n_angles=4000)).abs()
    assert error.mean() < 1e-4 and error.max() < 0.01  # the largest at the moons' ends (midpoint rule, O(h^2))
    x = data.sample("two_moons", 20_000, seed=123)
    assert float(-moons_log_density(x).mean()) == pytest.approx(0.286, abs=0.01)  # the floor


EVAL_SAMPLES = 20_000  # fresh points: the NLL's standard error is about 0.007 nats (the test split's 2,000: 0.02)
BATCH = 256  # 40 steps per epoch of the 10,000 training points
LEARNING = {  # (density, model) -> (model, [(epochs, learning rate), ...]): step budgets, never time
    ("two_moons", "realnvp"): (lambda: RealNVP((2,)), [(40, 3e-3), (20, 3e-4)]),
    ("two_moons", "spline-flow"): (lambda: SplineFlow((2,)), [(40, 3e-3), (20, 3e-4)]),
    # the checkerboard's sharp edges take the longest: 8,000 steps (gap 0.048; 4,000 steps left 0.055-0.060)
    ("checkerboard", "spline-flow"): (lambda: SplineFlow((2,), bins=16, tail_bound=3.0), [(140, 5e-3), (60, 5e-4)]),
    ("eight_gaussians", "spline-flow"): (lambda: SplineFlow((2,)), [(40, 3e-3), (20, 3e-4)]),
}
SHIPPED = {("checkerboard", "spline-flow"): "checkerboard_spline_flow"}
"""(density, model) -> the shipped flow trained with that ``LEARNING`` recipe (``benchmarks/flow_assets.py``, seed 0),
which the test evaluates instead of training it in CI."""


@pytest.mark.parametrize(("name", "model"), [pytest.param(*key, marks=() if key in SHIPPED else pytest.mark.slow)
                                             for key in LEARNING])  # fmt: skip
def test_flows_learn_the_toy_densities_to_within_005_nats_of_the_floor(name: str, model: str) -> None:
    """The floor is the true density's NLL on the same fresh points: the gap is an estimate of KL(p || q).

    The floors (20,000 points, seed 123): two moons 0.289 (the issue's 0.286: its sampling error is 0.007),
    eight Gaussians 1.708, checkerboard ln 8 = 2.079 (``generative.data``'s board: 8 dark unit squares of 16 on
    [-2, 2]^2, density 1/8; the issue's ln 32 is another board's). The checkerboard's spline flow is the shipped
    ``checkerboard_spline_flow`` (``SHIPPED``: its ``LEARNING`` recipe, trained by ``benchmarks/flow_assets.py``);
    measured gap 0.048."""
    if (name, model) in SHIPPED:
        flow = load_toy_flow(SHIPPED[(name, model)])
    else:
        make, phases = LEARNING[(name, model)]
        torch.manual_seed(0)
        flow = make()
        train_split, val_split, _ = data.load(f"toy:{name}", seed=0)
        fit_phases(flow, train_split, val_split, phases, batch_size=BATCH)
    x = data.sample(name, EVAL_SAMPLES, seed=123)
    with torch.no_grad():
        nll = float(-flow.log_prob(x).double().mean())
    floor = float(-true_log_density(name, x).mean())
    assert nll - floor < 0.05, f"{model} on {name}: NLL {nll:.4f}, floor {floor:.4f}"


def test_the_spline_flow_learns_the_checkerboard_in_a_few_epochs() -> None:
    """The cheap learning check beside the shipped checkerboard flow: its model (``LEARNING``'s), 5 epochs at 5e-3
    (200 Adam steps of the 8,000), comes within ``CHEAP_GAP`` nats of the floor ln 8 on the same fresh points
    (untrained: 1.090). Measured, seeds 0, 1, 2 (model and batch order): 0.227, 0.203, 0.221; about 5 s."""
    make, _ = LEARNING[("checkerboard", "spline-flow")]
    flow = make()  # seeded 0 by the fixture
    train_split, val_split, _ = data.load("toy:checkerboard", seed=0)
    fit_phases(flow, train_split, val_split, [(CHEAP_EPOCHS, 5e-3)], batch_size=BATCH)
    x = data.sample("checkerboard", EVAL_SAMPLES, seed=123)
    with torch.no_grad():
        nll = float(-flow.log_prob(x).double().mean())
    floor = float(-true_log_density("checkerboard", x).mean())
    assert nll - floor < CHEAP_GAP, f"NLL {nll:.4f}, floor {floor:.4f}"


CHEAP_EPOCHS, CHEAP_GAP = 5, 0.3


def test_shipped_flows_are_the_documented_runs(benchmark_script) -> None:
    """The flows in ``generative/assets/`` (what the slow tests evaluate instead of training them in CI) are the
    recipes of ``benchmarks/flow_assets.py``: its config (model, kwargs, data, seed, epochs and learning-rate phases,
    batch size, patience, ``made_by``), every epoch trained and logged (the TensorBoard events beside), the loader's
    model class; the checkerboard's recipe is ``LEARNING``'s."""
    assets = benchmark_script("flow_assets")
    assert {recipe["folder"] for recipe in assets.RECIPES.values()} == set(DIGITS_FLOWS + TOY_FLOWS)
    classes = {"glow": Glow, "cflow": CFlow, "spline-flow": SplineFlow}
    for name, recipe in assets.RECIPES.items():
        run_dir = shipped_flow_dir(recipe["folder"])
        config = json.loads((run_dir / "config.json").read_text())
        expected = assets.recipe_config(name)
        assert {k: v for k, v in config.items() if k != "torch"} == {k: v for k, v in expected.items() if k != "torch"}
        state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
        assert state["step"] == config["epochs"] == len(state["extra"]["val_loss"]) == len(state["extra"]["train_loss"])
        assert any(p.name.startswith("events.out.tfevents") for p in run_dir.iterdir())
        flow = (load_toy_flow if recipe["folder"] in TOY_FLOWS else load_digits_flow)(recipe["folder"])
        assert type(flow) is classes[config["model"]] and not flow.training
    (shipped,) = [r for r in assets.RECIPES.values() if r["folder"] == SHIPPED[("checkerboard", "spline-flow")]]
    make, phases = LEARNING[("checkerboard", "spline-flow")]
    assert [tuple(p) for p in shipped["phases"]] == phases and shipped["batch_size"] == BATCH
    flow = load_toy_flow(shipped["folder"])
    rebuilt = make().eval()  # LEARNING's model with the shipped weights: the same map (bins, tail bound, ...)
    rebuilt.load_state_dict(flow.state_dict())
    x = data.sample("checkerboard", 100, seed=1) * 1.6  # some points beyond the tail bound, 3
    with torch.no_grad():
        assert torch.equal(rebuilt.log_prob(x), flow.log_prob(x))
